"""Position encodings of SAM 2: 2-D sine, random Fourier features, 1-D sine, axial RoPE tables.

Mirrors ``sam2.modeling.position_encoding`` (``PositionEmbeddingSine``,
``PositionEmbeddingRandom``, ``compute_axial_cis``) and ``sam2.modeling.sam2_utils.get_1d_sine_pe``.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """DETR-style 2-D sine/cosine encoding of a feature map's grid (official
    ``PositionEmbeddingSine`` with ``normalize=True``, ``scale=2*pi``).

    ``forward(x)``: x (B, C, H, W) any dtype -> (B, num_pos_feats, H, W) float32, channels
    ordered [y-features, x-features], each interleaving sin/cos. Cached per (H, W, device).
    """

    def __init__(self, num_pos_feats: int, temperature: int = 10000, normalize: bool = True,
                 scale: float | None = None) -> None:
        super().__init__()
        if num_pos_feats % 2 != 0:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats // 2
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self._cache: Dict[Tuple[int, int, str], torch.Tensor] = {}

    @torch.no_grad()
    def _grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._cache:
            y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
            x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
            if self.normalize:
                eps = 1e-6
                y = y / (y[-1] + eps) * self.scale
                x = x / (x[-1] + eps) * self.scale
            dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=device)
            dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
            px = x[:, None] / dim_t  # (W, F)
            py = y[:, None] / dim_t  # (H, F)
            px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
            py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
            pos = torch.cat(
                (py[:, None, :].expand(h, w, -1), px[None, :, :].expand(h, w, -1)), dim=2
            ).permute(2, 0, 1)
            self._cache[key] = pos.contiguous()
        return self._cache[key]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = self._grid(x.shape[-2], x.shape[-1], x.device)
        return pos[None].expand(x.shape[0], -1, -1, -1)


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier-feature encoding of normalized coordinates (official
    ``PositionEmbeddingRandom``, from SAM). Buffer: ``positional_encoding_gaussian_matrix``
    (2, num_pos_feats)."""

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        if scale is None or scale <= 0.0:
            scale = 1.0
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _apply(self, fn, recurse=True):
        # the Fourier matrix stays float32 whatever dtype the model is cast to (the official
        # keeps it fp32 under autocast); outputs are float32, callers cast
        super()._apply(fn, recurse)
        self.positional_encoding_gaussian_matrix = self.positional_encoding_gaussian_matrix.float()
        return self

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (..., 2) in [0, 1] (x, y) -> (..., 2*num_pos_feats) float32."""
        coords = 2 * coords.float() - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: Tuple[int, int]) -> torch.Tensor:
        """Dense encoding of an (h, w) grid of pixel centres -> (C, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._pe_encoding(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords_input: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """coords (B, N, 2) in input-image pixels (x, y); image_size (H, W) -> (B, N, C)."""
        coords = torch.stack(
            (coords_input[..., 0] / image_size[1], coords_input[..., 1] / image_size[0]), dim=-1
        )
        return self._pe_encoding(coords.to(torch.float))


def get_1d_sine_pe(pos_inds: torch.Tensor, dim: int, temperature: float = 10000) -> torch.Tensor:
    """1-D sine encoding (official ``get_1d_sine_pe``): pos_inds (N,) -> (N, dim) float32,
    [sin | cos] halves."""
    pe_dim = dim // 2
    dim_t = torch.arange(pe_dim, dtype=torch.float32, device=pos_inds.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / pe_dim)
    pos_embed = pos_inds.unsqueeze(-1) / dim_t
    return torch.cat([pos_embed.sin(), pos_embed.cos()], dim=-1)
