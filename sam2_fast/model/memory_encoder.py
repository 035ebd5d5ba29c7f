"""The memory encoder of SAM 2: fuses a frame's stride-16 features with its predicted mask into a
64-channel memory feature map.

Mirrors ``sam2.modeling.memory_encoder`` of the official SAM 2 (``MaskDownSampler``, ``CXBlock``,
``Fuser``, ``MemoryEncoder``) with the same parameter names, so official checkpoints load with no
key remapping (``memory_encoder.mask_downsampler.encoder.{i}.*``, ``memory_encoder.pix_feat_proj.*``,
``memory_encoder.fuser.layers.{i}.{dwconv,norm,pwconv1,pwconv2,gamma}``,
``memory_encoder.out_proj.*``).
"""

from __future__ import annotations

import math
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from sam2_fast.model.common import LayerNorm2d
from sam2_fast.model.position_encoding import PositionEmbeddingSine


class MaskDownSampler(nn.Module):
    """Downsample a mask by ``total_stride`` in stages of ``stride`` (official ``MaskDownSampler``).

    Each stage: Conv2d(c, c*stride^2, kernel_size, stride, padding) -> LayerNorm2d -> GELU; then a
    final 1x1 Conv2d to ``embed_dim``. SAM 2 uses kernel 3, stride 2, padding 1, total stride 16,
    so ``encoder`` holds 4 x (conv, norm, GELU) + 1 conv = 13 entries (channels 1->4->16->64->256
    ->256).

    ``forward(x)``: x (B, 1, H, W) float (mask probabilities after scale/bias) -> (B, embed_dim,
    H/16, W/16), same dtype.

    Raises:
        ValueError: ``total_stride`` is not a power of ``stride``.
    """

    def __init__(self, embed_dim: int = 256, kernel_size: int = 3, stride: int = 2,
                 padding: int = 1, total_stride: int = 16) -> None:
        super().__init__()
        num_layers = int(round(math.log(total_stride) / math.log(stride)))
        if stride**num_layers != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        self.encoder = nn.Sequential()
        c_in = 1
        for _ in range(num_layers):
            c_out = c_in * stride * stride
            self.encoder.append(nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding))
            self.encoder.append(LayerNorm2d(c_out))
            self.encoder.append(nn.GELU())
            c_in = c_out
        self.encoder.append(nn.Conv2d(c_in, embed_dim, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block (official ``CXBlock``): depthwise conv -> LayerNorm2d -> Linear(dim, 4 dim)
    -> GELU -> Linear(4 dim, dim) -> layer scale ``gamma`` -> residual.

    ``forward(x)``: x (B, dim, H, W) -> (B, dim, H, W), same dtype.
    """

    def __init__(self, dim: int, kernel_size: int = 7, padding: int = 3,
                 layer_scale_init_value: float = 1e-6, use_dwconv: bool = True) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding,
                                groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (nn.Parameter(layer_scale_init_value * torch.ones(dim))
                      if layer_scale_init_value > 0 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x)
        # LayerNorm over channels, channels-last, then the pointwise MLP in the same layout
        y = y.permute(0, 2, 3, 1)
        y = F.layer_norm(y, (y.shape[-1],), self.norm.weight, self.norm.bias, self.norm.eps)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = y * self.gamma
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of ``num_layers`` CXBlocks (official ``Fuser``, no input projection).

    ``forward(x)``: (B, dim, H, W) -> (B, dim, H, W).
    """

    def __init__(self, dim: int = 256, num_layers: int = 2, kernel_size: int = 7,
                 padding: int = 3, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.proj = nn.Identity()
        self.layers = nn.ModuleList(
            CXBlock(dim, kernel_size, padding, layer_scale_init_value) for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Encode a frame's features and its mask into a memory (official ``MemoryEncoder`` as
    configured by every published SAM 2 / 2.1 config).

    Sub-modules: ``mask_downsampler`` (MaskDownSampler to ``in_dim``), ``pix_feat_proj``
    (1x1 conv), ``fuser`` (2 CXBlocks), ``out_proj`` (1x1 conv ``in_dim -> out_dim``, identity
    when equal), ``position_encoding`` (PositionEmbeddingSine(out_dim)).
    """

    def __init__(self, out_dim: int = 64, in_dim: int = 256) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(embed_dim=in_dim, kernel_size=3, stride=2,
                                                padding=1, total_stride=16)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(dim=in_dim, num_layers=2)
        self.position_encoding = PositionEmbeddingSine(out_dim)
        self.out_proj = nn.Identity() if out_dim == in_dim else nn.Conv2d(in_dim, out_dim, 1)

    def forward(self, pix_feat: torch.Tensor, masks: torch.Tensor,
                skip_mask_sigmoid: bool = False) -> Dict[str, object]:
        """Fuse features and masks into a memory.

        Args:
            pix_feat: (B, in_dim, H/16, W/16) image features (the top level of the backbone,
                without memory conditioning), float of the model's dtype.
            masks: (B, 1, H, W) mask logits (sigmoid applied here) or, with
                ``skip_mask_sigmoid=True``, already-activated values (the tracking step passes
                ``sigmoid(logits) * 20 - 10`` or the binarized mask scaled the same way).
            skip_mask_sigmoid: skip the sigmoid on ``masks``.

        Returns:
            ``{"vision_features": (B, out_dim, H/16, W/16), "vision_pos_enc": [(B, out_dim,
            H/16, W/16)]}``, both in the dtype of ``pix_feat``/``masks`` (the sine encoding is
            computed in float32 and cast).

        Raises:
            ValueError: batch sizes differ, or the downsampled mask and the features have
                different spatial sizes.
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        pix_feat = pix_feat.to(masks.device)
        if masks.shape[0] != pix_feat.shape[0] or masks.shape[-2:] != pix_feat.shape[-2:]:
            raise ValueError(
                f"memory encoder: mask downsampled to {tuple(masks.shape)} does not match "
                f"features {tuple(pix_feat.shape)} (masks must be 16x the feature size)"
            )
        x = self.pix_feat_proj(pix_feat) + masks
        x = self.fuser(x)
        x = self.out_proj(x)
        pos: List[torch.Tensor] = [self.position_encoding(x).to(x.dtype)]
        return {"vision_features": x, "vision_pos_enc": pos}
