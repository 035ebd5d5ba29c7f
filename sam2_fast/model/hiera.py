"""Hiera trunk of SAM 2 (hierarchical vision transformer with q-pooling).

Mirrors ``sam2.modeling.backbones.hieradet`` (``Hiera``, ``MultiScaleBlock``,
``MultiScaleAttention``) and ``sam2.modeling.backbones.utils.PatchEmbed``; paper: Ryali et al.,
"Hiera", arXiv:2306.00989. The windowing, window padding and q max-pooling around attention are
one op, :func:`sam2_fast.kernels.windowed_attention` (Triton on CUDA, torch elsewhere).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels
from ..config import PATCH_KERNEL_SIZE, PATCH_PADDING, PATCH_STRIDE, HieraConfig
from .common import MLP


class PatchEmbed(nn.Module):
    """7x7 stride-4 conv: (B, 3, H, W) -> (B, H/4, W/4, C) channels-last (official ``PatchEmbed``)."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=PATCH_KERNEL_SIZE,
                              stride=PATCH_STRIDE, padding=PATCH_PADDING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """qkv projection -> windowed attention (+ q pooling) -> output projection.

    x (B, H, W, dim) normed, unpadded -> (B, H//s, W//s, dim_out), s = q_stride (1 if none).
    Parameters: ``qkv`` (dim -> 3*dim_out), ``proj`` (dim_out -> dim_out).
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, window_size: int, q_stride: int) -> None:
        super().__init__()
        self.dim, self.dim_out, self.num_heads = dim, dim_out, num_heads
        self.window_size, self.q_stride = window_size, q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)
        self.backend = "auto"
        self.kernel_profile = None  # a kernels.KernelProfile (set by build_sam2), or None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        out = kernels.windowed_attention(qkv, self.qkv.bias, self.num_heads, self.window_size,
                                         self.q_stride, backend=self.backend,
                                         profile=self.kernel_profile)
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """One Hiera block (official ``MultiScaleBlock``): pre-norm windowed attention with an
    optional q-pooling stage change, then a GELU MLP. (B, H, W, dim) -> (B, H', W', dim_out)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, window_size: int,
                 q_stride: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.dim, self.dim_out, self.window_size, self.q_stride = dim, dim_out, window_size, q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, window_size, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.q_stride > 1:
                s = self.q_stride
                shortcut = F.max_pool2d(shortcut.permute(0, 3, 1, 2), s, s).permute(0, 2, 3, 1)
        x = shortcut + self.attn(x)
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """The Hiera trunk: (B, 3, S, S) normalized image -> 4 feature maps (B, C_i, S/4/2^i, ...),
    finest first (official ``Hiera`` with ``return_interm_layers=True``).

    Parameters: ``patch_embed``, ``pos_embed`` (1, C, *bkg), ``pos_embed_window`` (1, C, w0, w0),
    ``blocks.N``.
    """

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stage_ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        q_pool_blocks = [e + 1 for e in self.stage_ends[:-1]][: cfg.q_pool]
        embed_dim, num_heads = cfg.embed_dim, cfg.num_heads
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *cfg.window_pos_embed_bkg_spatial_size))
        w0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, w0, w0))
        self.blocks = nn.ModuleList()
        stage = 0
        for i in range(cfg.depth):
            dim_out = embed_dim
            # the first block of a stage still uses the previous stage's window size
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            if i - 1 in self.stage_ends:
                dim_out = int(embed_dim * cfg.dim_mul)
                num_heads = int(num_heads * cfg.head_mul)
                stage += 1
            q_stride = cfg.q_stride[0] if i in q_pool_blocks else 1
            self.blocks.append(MultiScaleBlock(embed_dim, dim_out, num_heads, window, q_stride))
            embed_dim = dim_out
        self.channel_list = [self.blocks[i].dim_out for i in self.stage_ends[::-1]]

    def _get_pos_embed(self, hw: Tuple[int, int]) -> torch.Tensor:
        """Background embedding bicubically resized to (h, w) plus the tiled window embedding;
        returns (1, h, w, C)."""
        h, w = hw
        win = self.pos_embed_window
        if h % win.shape[-2] or w % win.shape[-1]:
            raise ValueError(f"token grid {h}x{w} is not a multiple of the window embedding "
                             f"{tuple(win.shape[-2:])}; image_size must be a multiple of 32")
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        pos = pos + win.tile(1, 1, h // win.shape[-2], w // win.shape[-1])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self._get_pos_embed(tuple(x.shape[1:3]))
        outputs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
