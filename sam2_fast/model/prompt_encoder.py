"""SAM prompt encoder (official ``sam2.modeling.sam.prompt_encoder.PromptEncoder``).

Points and box corners -> sparse tokens (random Fourier features of the pixel-centre
coordinates + a learned embedding per label); mask prompts -> dense embedding by a small
strided conv stack; no mask -> the learned ``no_mask_embed`` everywhere.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import PositionEmbeddingRandom


class PromptEncoder(nn.Module):
    """Parameters: ``pe_layer.positional_encoding_gaussian_matrix``, ``point_embeddings.{0..3}``
    (negative, positive, box top-left, box bottom-right), ``not_a_point_embed``,
    ``mask_downscaling.{0,1,3,4,6}``, ``no_mask_embed``.

    Args:
        embed_dim: token width (256).
        image_embedding_size: (h, w) of the stride-16 embedding.
        input_image_size: (H, W) of the model input, in pixels.
        mask_in_chans: hidden channels of the mask downscaler (16).
    """

    def __init__(self, embed_dim: int, image_embedding_size: Tuple[int, int],
                 input_image_size: Tuple[int, int], mask_in_chans: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """(1, embed_dim, h, w) encoding of the embedding grid."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """points (B, N, 2) model-input pixels (x, y), labels (B, N) in {-1,0,1,2,3} ->
        (B, N(+1), embed_dim). Label -1 = padding ("not a point")."""
        points = points + 0.5  # pixel centre
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        emb = self.pe_layer.forward_with_coords(points, self.input_image_size)
        table = torch.cat([e.weight for e in self.point_embeddings], dim=0)  # (4, C)
        lab = labels.long()
        is_pad = (lab == -1).unsqueeze(-1)
        added = table[lab.clamp(min=0)]  # gather; padding rows replaced below
        emb = torch.where(is_pad, self.not_a_point_embed.weight.to(emb.dtype).expand_as(emb), emb + added)
        return emb

    def forward(self, points: Optional[Tuple[torch.Tensor, torch.Tensor]],
                boxes: Optional[torch.Tensor], masks: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns sparse (B, N, embed_dim) and dense (B, embed_dim, h, w) embeddings.

        points: (coords (B, N, 2) pixels in the model input frame, labels (B, N) int);
        boxes: (B, 4) x0, y0, x1, y1 pixels; masks: (B, 1, 4h, 4w) logits.
        """
        if points is not None:
            bs = points[0].shape[0]
        elif boxes is not None:
            bs = boxes.shape[0]
        elif masks is not None:
            bs = masks.shape[0]
        else:
            bs = 1
        device = self.point_embeddings[0].weight.device
        sparse = torch.empty((bs, 0, self.embed_dim), device=device)
        if points is not None:
            sparse = torch.cat([sparse, self._embed_points(points[0], points[1], pad=boxes is None)], dim=1)
        if boxes is not None:
            corners = self.pe_layer.forward_with_coords((boxes + 0.5).reshape(-1, 2, 2), self.input_image_size)
            corners = corners + torch.stack(
                [self.point_embeddings[2].weight[0], self.point_embeddings[3].weight[0]], dim=0)
            sparse = torch.cat([sparse, corners], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                bs, -1, self.image_embedding_size[0], self.image_embedding_size[1])
        return sparse, dense
