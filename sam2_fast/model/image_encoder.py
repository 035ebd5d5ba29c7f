"""Image encoder = Hiera trunk + FPN neck (official ``sam2.modeling.backbones.image_encoder``)."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from .. import kernels
from .hiera import Hiera
from .position_encoding import PositionEmbeddingSine


class FpnNeck(nn.Module):
    """Feature pyramid neck (official ``FpnNeck`` with nearest top-down fusion, sum).

    Lateral 1x1 convs (``convs.N.conv``, N=0 for the coarsest level) project every trunk level
    to ``d_model``; on ``fpn_top_down_levels`` the coarser output is upsampled 2x (nearest) and
    added (:func:`sam2_fast.kernels.fpn_lateral_upsample_add`: the conv and the add, torch or
    Triton per the kernel profile). Levels dropped by ``scalp`` still feed the top-down path but
    get no position encoding.

    forward(xs: list of (B, C_i, H_i, W_i), finest first) -> (features, pos), each a list of
    (B, d_model, H_i, W_i), finest first, ``scalp`` coarsest levels removed.
    """

    def __init__(self, d_model: int, backbone_channel_list: Sequence[int],
                 fpn_top_down_levels: Sequence[int], scalp: int = 0) -> None:
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.position_encoding = PositionEmbeddingSine(d_model)
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            seq = nn.Sequential()
            seq.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            self.convs.append(seq)
        self.fpn_top_down_levels = list(fpn_top_down_levels)
        self.scalp = scalp
        self.backend = "auto"
        self.kernel_profile = None  # a kernels.KernelProfile (set by build_sam2), or None

    def forward(self, xs: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        n = len(self.convs) - 1
        if len(xs) != n + 1:
            raise ValueError(f"expected {n + 1} trunk levels, got {len(xs)}")
        out: List[torch.Tensor] = [None] * (n + 1)  # type: ignore[list-item]
        prev = None
        for i in range(n, -1, -1):
            if i in self.fpn_top_down_levels and prev is not None:
                # lateral 1x1 conv + top-down add: torch, conv + Triton add, or one fused kernel
                conv = self.convs[n - i].conv
                prev = kernels.fpn_lateral_upsample_add(xs[i], conv.weight, conv.bias, prev,
                                                        backend=self.backend,
                                                        profile=self.kernel_profile)
            else:
                prev = self.convs[n - i](xs[i])
            out[i] = prev
        keep = n + 1 - self.scalp
        feats = out[:keep]
        pos = [self.position_encoding(f).to(f.dtype) for f in feats]
        return feats, pos


class ImageEncoder(nn.Module):
    """Hiera trunk + FPN neck (official ``ImageEncoder``): (B, 3, S, S) ->
    ``{"vision_features": (B, 256, S/16, S/16), "vision_pos_enc": [...], "backbone_fpn": [...]}``
    with the FPN levels at strides 4, 8, 16 (scalp 1)."""

    def __init__(self, trunk: Hiera, neck: FpnNeck) -> None:
        super().__init__()
        if list(trunk.channel_list) != list(neck.backbone_channel_list):
            raise ValueError(f"trunk channels {trunk.channel_list} != neck {neck.backbone_channel_list}")
        self.trunk = trunk
        self.neck = neck

    def forward(self, sample: torch.Tensor) -> Dict[str, object]:
        features, pos = self.neck(self.trunk(sample))
        return {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}
