"""The SAM 2 model: all modules under the official state-dict names, and the image-path
steps of the official ``sam2.modeling.sam2_base.SAM2Base`` (``forward_image``,
``_prepare_backbone_features``, ``_forward_sam_heads``, ``_use_mask_as_output``).

The tracking step (memory attention, memory encoder, object pointers) lives in
:class:`sam2_fast.model.tracking.Sam2TrackingMixin`. No predictor logic here: the predictors in
:mod:`sam2_fast.predictors` keep the books and call these steps.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NO_OBJ_SCORE, Sam2Config
from ..kernels._backend import check_backend_name
from .common import MLP
from .hiera import Hiera
from .image_encoder import FpnNeck, ImageEncoder
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .prompt_encoder import PromptEncoder
from .tracking import Sam2TrackingMixin


class Sam2Model(Sam2TrackingMixin, nn.Module):
    """SAM 2 / SAM 2.1 with the official parameter names (load official state dicts as-is).

    Args:
        config: one of :data:`sam2_fast.config.CONFIGS` (possibly ``with_image_size``).
        backend: ``"auto"`` / ``"triton"`` / ``"torch"`` for every kernel call
            (see :mod:`sam2_fast.kernels`).
    """

    def __init__(self, config: Sam2Config, backend: str = "auto") -> None:
        super().__init__()
        cfg = self.config = config
        self.image_size = cfg.image_size
        self.backbone_stride = cfg.backbone_stride
        self.hidden_dim = cfg.d_model
        self.mem_dim = cfg.mem_dim
        self.num_maskmem = cfg.num_maskmem
        self.num_feature_levels = 3 if cfg.use_high_res_features_in_sam else 1
        self.sam_prompt_embed_dim = cfg.d_model
        self.sam_image_embedding_size = cfg.feat_size

        self.image_encoder = ImageEncoder(
            Hiera(cfg.hiera),
            FpnNeck(cfg.d_model, cfg.backbone_channel_list, cfg.fpn_top_down_levels, cfg.scalp),
        )
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = MemoryAttention(
            d_model=cfg.d_model, num_layers=cfg.memory_attention_layers,
            dim_feedforward=cfg.memory_attention_ffn_dim, kv_in_dim=cfg.mem_dim,
            rope_theta=cfg.rope_theta, feat_size=cfg.feat_size)
        self.memory_encoder = MemoryEncoder(out_dim=cfg.mem_dim, in_dim=cfg.d_model)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(cfg.num_maskmem, 1, 1, cfg.mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, cfg.d_model))
        if cfg.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, cfg.mem_dim))
        else:
            self.no_obj_embed_spatial = None
        fs = cfg.feat_size
        self.sam_prompt_encoder = PromptEncoder(cfg.d_model, (fs, fs), (cfg.image_size, cfg.image_size), 16)
        self.sam_mask_decoder = MaskDecoder(
            transformer_dim=cfg.d_model,
            use_high_res_features=cfg.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=cfg.iou_prediction_use_sigmoid,
            dynamic_multimask_via_stability=cfg.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=cfg.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=cfg.dynamic_multimask_stability_thresh,
            pred_obj_scores=cfg.pred_obj_scores, pred_obj_scores_mlp=cfg.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=cfg.use_multimask_token_for_obj_ptr)
        self.obj_ptr_proj = MLP(cfg.d_model, cfg.d_model, cfg.d_model, 3)
        if cfg.proj_tpos_enc_in_obj_ptrs:
            self.obj_ptr_tpos_proj = nn.Linear(cfg.d_model, cfg.mem_dim)
        else:
            self.obj_ptr_tpos_proj = nn.Identity()
        self.backend = "auto"
        self.set_backend(backend)

    # ------------------------------------------------------------------ plumbing
    def set_backend(self, backend: str) -> "Sam2Model":
        """Set the kernel backend of every submodule that calls a kernel (in place)."""
        check_backend_name(backend)
        for mod in self.modules():
            if hasattr(mod, "backend") and isinstance(mod.backend, str):
                mod.backend = backend
        return self

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    @property
    def dtype(self) -> torch.dtype:
        return self.no_mem_embed.dtype

    # ------------------------------------------------------------------ image path
    def forward_image(self, img_batch: torch.Tensor) -> Dict[str, object]:
        """Image encoder + the mask decoder's conv_s0/conv_s1 on the two high-res levels.

        img_batch (B, 3, S, S) normalized, model dtype -> ``{"vision_features": (B, 256, S/16,
        S/16), "vision_pos_enc": [3 x (B, 256, h_i, w_i)], "backbone_fpn": [(B, 32, S/4, S/4),
        (B, 64, S/8, S/8), (B, 256, S/16, S/16)]}`` (official ``SAM2Base.forward_image``).
        """
        if img_batch.dim() != 4 or img_batch.shape[1] != 3:
            raise ValueError(f"img_batch must be (B, 3, H, W), got {tuple(img_batch.shape)}")
        if tuple(img_batch.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"img_batch must be {self.image_size}x{self.image_size}, got "
                             f"{tuple(img_batch.shape[-2:])}")
        out = self.image_encoder(img_batch)
        if self.config.use_high_res_features_in_sam:
            fpn = list(out["backbone_fpn"])
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
            out["backbone_fpn"] = fpn
        return out

    encode_image = forward_image

    def _prepare_backbone_features(self, backbone_out: Dict[str, object]):
        """Flatten the last ``num_feature_levels`` levels to (HW, B, C) sequences; returns
        (backbone_out, vision_feats, vision_pos_embeds, feat_sizes) as the official does."""
        backbone_out = dict(backbone_out)
        maps = backbone_out["backbone_fpn"][-self.num_feature_levels:]
        pos = backbone_out["vision_pos_enc"][-self.num_feature_levels:]
        feat_sizes = [(x.shape[-2], x.shape[-1]) for x in pos]
        vision_feats = [x.flatten(2).permute(2, 0, 1) for x in maps]
        vision_pos = [x.flatten(2).permute(2, 0, 1) for x in pos]
        return backbone_out, vision_feats, vision_pos, feat_sizes

    def _forward_sam_heads(self, backbone_features: torch.Tensor,
                           point_inputs: Optional[Dict[str, torch.Tensor]] = None,
                           mask_inputs: Optional[torch.Tensor] = None,
                           high_res_features: Optional[List[torch.Tensor]] = None,
                           multimask_output: bool = False) -> Tuple[torch.Tensor, ...]:
        """Prompt encoder + mask decoder for a batch of objects (official
        ``SAM2Base._forward_sam_heads``).

        Args:
            backbone_features: (B, 256, h, w) (memory-conditioned) image features.
            point_inputs: ``{"point_coords": (B, P, 2) float pixels in the model input frame,
                "point_labels": (B, P) int32}`` or None.
            mask_inputs: (B, 1, H, W) mask logits/binary at any size (resized to 4h x 4w with
                antialiased bilinear) or None.
            high_res_features: [(B, 32, 4h, 4w), (B, 64, 2h, 2w)].
            multimask_output: 3 candidate masks instead of 1.

        Returns:
            (low_res_multimasks (B, M, 4h, 4w), high_res_multimasks (B, M, S, S), ious (B, M),
            low_res_masks (B, 1, 4h, 4w), high_res_masks (B, 1, S, S), obj_ptr (B, 256),
            object_score_logits (B, 1)); mask logits gated to NO_OBJ_SCORE where the object
            score is <= 0.
        """
        B = backbone_features.shape[0]
        device = backbone_features.device
        if point_inputs is not None:
            coords, labels = point_inputs["point_coords"], point_inputs["point_labels"]
        else:
            coords = torch.zeros(B, 1, 2, device=device)
            labels = -torch.ones(B, 1, dtype=torch.int32, device=device)
        sam_mask_prompt = None
        if mask_inputs is not None:
            if tuple(mask_inputs.shape[-2:]) != self.sam_prompt_encoder.mask_input_size:
                sam_mask_prompt = F.interpolate(mask_inputs.float(), size=self.sam_prompt_encoder.mask_input_size,
                                                align_corners=False, mode="bilinear", antialias=True)
            else:
                sam_mask_prompt = mask_inputs
            sam_mask_prompt = sam_mask_prompt.to(backbone_features.dtype)
        sparse, dense = self.sam_prompt_encoder((coords.to(self.dtype), labels), None, sam_mask_prompt)
        sparse, dense = sparse.to(backbone_features.dtype), dense.to(backbone_features.dtype)
        low_res_multimasks, ious, sam_output_tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe().to(backbone_features.dtype),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=multimask_output, repeat_image=False,
            high_res_features=high_res_features)
        is_obj_appearing = object_score_logits > 0
        if self.config.pred_obj_scores:
            low_res_multimasks = torch.where(is_obj_appearing[:, None, None], low_res_multimasks,
                                             torch.full_like(low_res_multimasks, NO_OBJ_SCORE))
        low_res_multimasks = low_res_multimasks.float()  # official: mask logits leave the heads in fp32
        high_res_multimasks = F.interpolate(low_res_multimasks, size=(self.image_size, self.image_size),
                                            mode="bilinear", align_corners=False)
        sam_output_token = sam_output_tokens[:, 0]
        if multimask_output:
            best = torch.argmax(ious, dim=-1)
            idx = torch.arange(B, device=device)
            low_res_masks = low_res_multimasks[idx, best].unsqueeze(1)
            high_res_masks = high_res_multimasks[idx, best].unsqueeze(1)
            if sam_output_tokens.shape[1] > 1:
                sam_output_token = sam_output_tokens[idx, best]
        else:
            low_res_masks, high_res_masks = low_res_multimasks, high_res_multimasks
        obj_ptr = self.obj_ptr_proj(sam_output_token)
        if self.config.pred_obj_scores:
            lam = is_obj_appearing.to(obj_ptr.dtype)
            if self.config.fixed_no_obj_ptr:
                obj_ptr = lam * obj_ptr
            obj_ptr = obj_ptr + (1 - lam) * self.no_obj_ptr
        return (low_res_multimasks, high_res_multimasks, ious, low_res_masks, high_res_masks,
                obj_ptr, object_score_logits)

    def _use_mask_as_output(self, backbone_features: torch.Tensor,
                            high_res_features: Optional[List[torch.Tensor]],
                            mask_inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Turn a binary mask prompt (B, 1, S, S) directly into output logits (scale 20, bias
        -10), with the object pointer from the SAM heads on the downsampled mask (official
        ``SAM2Base._use_mask_as_output``). Same 7-tuple as :meth:`_forward_sam_heads`."""
        out_scale, out_bias = 20.0, -10.0
        m = mask_inputs.to(backbone_features.dtype)
        high_res_masks = m * out_scale + out_bias
        low_res_masks = F.interpolate(high_res_masks,
                                      size=(high_res_masks.shape[-2] // 4, high_res_masks.shape[-1] // 4),
                                      align_corners=False, mode="bilinear", antialias=True)
        ious = mask_inputs.new_ones(mask_inputs.shape[0], 1).to(backbone_features.dtype)
        obj_ptr = self._forward_sam_heads(backbone_features, mask_inputs=self.mask_downsample(m),
                                          high_res_features=high_res_features)[5]
        lam = torch.any(mask_inputs.flatten(1).float() > 0.0, dim=1)[..., None].to(backbone_features.dtype)
        object_score_logits = out_scale * lam + out_bias
        if self.config.pred_obj_scores:
            if self.config.fixed_no_obj_ptr:
                obj_ptr = lam * obj_ptr
            obj_ptr = obj_ptr + (1 - lam) * self.no_obj_ptr
        return (low_res_masks, high_res_masks, ious, low_res_masks, high_res_masks, obj_ptr,
                object_score_logits)
