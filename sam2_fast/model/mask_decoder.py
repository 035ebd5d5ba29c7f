"""SAM 2 mask decoder (official ``sam2.modeling.sam.mask_decoder.MaskDecoder``) with the
high-resolution feature path, the object-score token and dynamic multimask via stability."""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from .common import MLP, LayerNorm2d
from .two_way_transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Parameters: ``transformer``, ``iou_token``, ``mask_tokens`` (4), ``obj_score_token``,
    ``output_upscaling.{0,1,3}``, ``conv_s0``, ``conv_s1``, ``output_hypernetworks_mlps.N``,
    ``iou_prediction_head``, ``pred_obj_score_head``."""

    def __init__(self, transformer_dim: int = 256, num_multimask_outputs: int = 3,
                 iou_head_depth: int = 3, iou_head_hidden_dim: int = 256,
                 use_high_res_features: bool = True, iou_prediction_use_sigmoid: bool = True,
                 dynamic_multimask_via_stability: bool = True,
                 dynamic_multimask_stability_delta: float = 0.05,
                 dynamic_multimask_stability_thresh: float = 0.98,
                 pred_obj_scores: bool = True, pred_obj_scores_mlp: bool = True,
                 use_multimask_token_for_obj_ptr: bool = True) -> None:
        super().__init__()
        d = transformer_dim
        self.transformer_dim = d
        self.transformer = TwoWayTransformer(depth=2, embedding_dim=d, num_heads=8, mlp_dim=2048)
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, d)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2d(d // 4),
            nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(d, d // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(d, d // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(d, d, d // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(d, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth,
                                       sigmoid_output=iou_prediction_use_sigmoid)
        if pred_obj_scores:
            self.pred_obj_score_head = MLP(d, d, 1, 3) if pred_obj_scores_mlp else nn.Linear(d, 1)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool, repeat_image: bool,
                high_res_features: Optional[List[torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict masks from image and prompt embeddings.

        Args:
            image_embeddings: (B or 1, C, h, w); repeated over the prompt batch if ``repeat_image``.
            image_pe: (1, C, h, w) from ``PromptEncoder.get_dense_pe``.
            sparse_prompt_embeddings: (B, N, C); dense_prompt_embeddings: (B, C, h, w).
            high_res_features: [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)] (after conv_s0/conv_s1).

        Returns:
            masks (B, M, 4h, 4w) logits, iou_pred (B, M), sam_tokens_out (B, M' , C),
            object_score_logits (B, 1); M = 3 with multimask_output else 1.
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
            repeat_image, high_res_features)
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens_out = mask_tokens_out[:, 1:]
        else:
            sam_tokens_out = mask_tokens_out[:, 0:1]
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def predict_masks(self, image_embeddings, image_pe, sparse_prompt_embeddings,
                      dense_prompt_embeddings, repeat_image, high_res_features=None):
        """All 4 masks, IoU for all, the mask tokens, and the object-score logits."""
        s = 1 if self.pred_obj_scores else 0
        parts = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            parts.insert(0, self.obj_score_token.weight)
        out_tokens = torch.cat(parts, dim=0)
        b = sparse_prompt_embeddings.shape[0]
        tokens = torch.cat((out_tokens.unsqueeze(0).expand(b, -1, -1).to(sparse_prompt_embeddings.dtype),
                            sparse_prompt_embeddings), dim=1)
        shared_dense = dense_prompt_embeddings.shape[0] == 1 or dense_prompt_embeddings.stride(0) == 0
        if repeat_image and image_embeddings.shape[0] == 1 and shared_dense:
            # one image and one dense prompt for every prompt set: the transformer's first block
            # works on the image tokens once (same maths as repeating them b times)
            src = image_embeddings + dense_prompt_embeddings[:1]
        elif repeat_image:
            src = torch.repeat_interleave(image_embeddings, b, dim=0) + dense_prompt_embeddings
        else:
            if image_embeddings.shape[0] != b:
                raise ValueError(f"image batch {image_embeddings.shape[0]} != prompt batch {b}")
            src = image_embeddings + dense_prompt_embeddings
        pos_src = image_pe.expand(src.shape[0], -1, -1, -1)
        _, c, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, s]
        mask_tokens_out = hs[:, s + 1: s + 1 + self.num_mask_tokens]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        if self.use_high_res_features:
            feat_s0, feat_s1 = high_res_features
            up = act1(ln1(dc1(src) + feat_s1))
            up = act2(dc2(up) + feat_s0)
        else:
            up = act2(dc2(act1(ln1(dc1(src)))))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        _, cu, hu, wu = up.shape
        masks = (hyper_in @ up.reshape(b, cu, hu * wu)).reshape(b, -1, hu, wu)
        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            object_score_logits = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _get_stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """IoU between the masks thresholded at +delta and -delta; (B, M, H, W) -> (B, M)."""
        flat = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        area_i = (flat > delta).sum(-1).float()
        area_u = (flat > -delta).sum(-1).float()
        return torch.where(area_u > 0, area_i / area_u, 1.0)

    def _dynamic_multimask_via_stability(self, all_mask_logits, all_iou_scores):
        """Single-mask output, falling back to the best of the 3 multimask outputs (by predicted
        IoU) when the single mask is unstable (stability < threshold)."""
        multi_logits, multi_iou = all_mask_logits[:, 1:], all_iou_scores[:, 1:]
        best = multi_iou.argmax(dim=-1)
        idx = torch.arange(multi_iou.shape[0], device=all_iou_scores.device)
        best_logits = multi_logits[idx, best].unsqueeze(1)
        best_iou = multi_iou[idx, best].unsqueeze(1)
        single_logits, single_iou = all_mask_logits[:, 0:1], all_iou_scores[:, 0:1]
        stable = self._get_stability_scores(single_logits) >= self.dynamic_multimask_stability_thresh
        logits = torch.where(stable[..., None, None].expand_as(single_logits), single_logits, best_logits)
        iou = torch.where(stable.expand_as(single_iou), single_iou, best_iou)
        return logits, iou
