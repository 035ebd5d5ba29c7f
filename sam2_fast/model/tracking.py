"""The tracking step of SAM 2 as methods on the model: condition the current frame's features on
the memory bank, run the SAM heads, and encode the prediction into a new memory.

Mirrors the tracking half of the official ``sam2.modeling.sam2_base.SAM2Base``
(``_prepare_memory_conditioned_features``, ``_encode_new_memory``, ``_track_step``,
``_encode_memory_in_output``, ``track_step``, ``_use_multimask``,
``_apply_non_overlapping_constraints``) with its evaluation-mode semantics, for every published
config (flags read from ``self.config``, a :class:`sam2_fast.config.Sam2Config`).

Differences from the official, all on purpose:

* Everything runs in the model's dtype (``self.dtype``): memories are not forced to bf16 (the
  official video predictor casts them, upstream #308). Masks and mask logits stay float32 like
  the official; features, memories, pointers and position encodings are in the model dtype.
* Inference only (``self.training`` is ignored; the eval branches are taken).

The memory a step reads is chosen by the one rule
:func:`sam2_fast.engine.memory_bank.plan_memory_read` and handed over as fixed-capacity buffers
(:class:`sam2_fast.engine.memory_bank.MemoryBank`): ``memory`` (T, B, mem_dim), ``memory_pos``
(T, B, mem_dim) and the number of object-pointer tokens at its end. The step itself holds no
books and performs no host synchronisation.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from sam2_fast.config import NO_OBJ_SCORE
from sam2_fast.model.position_encoding import get_1d_sine_pe

MemoryInputs = Tuple  # (memory, memory_pos, num_obj_ptr_tokens, ...): engine.memory_bank.MemoryInputs


def _seq_to_map(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """(HW, B, C) -> (B, C, H, W)."""
    return x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], hw[0], hw[1])


class Sam2TrackingMixin:
    """Tracking step of the official ``SAM2Base`` (eval mode). Mixed into
    :class:`sam2_fast.model.sam2_model.Sam2Model`, which provides the modules under the official
    names and ``config``, ``hidden_dim``, ``mem_dim``, ``num_maskmem``, ``image_size``,
    ``dtype``, ``_forward_sam_heads``, ``_use_mask_as_output``.

    Sequence layout as the official: per-level features (HW, B, C), ``feat_sizes`` [(h, w)].
    """

    # ------------------------------------------------------------------ memory read
    def _object_pointer_tokens(self, ptrs: torch.Tensor, distances: List[int], max_ptrs: int
                               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Object pointers as memory tokens with their temporal position encodings (the pointer
        half of the official ``_prepare_memory_conditioned_features``).

        Args:
            ptrs: (P, B, hidden_dim) pointers in the order the memory reads them.
            distances: P host ints, the temporal positions (see
                :class:`sam2_fast.engine.memory_bank.MemoryReadPlan`).
            max_ptrs: the pointer window; positions are divided by ``max_ptrs - 1``.

        Returns:
            (tokens (P*k, B, mem_dim), pos (P*k, B, mem_dim)) with k = hidden_dim // mem_dim
            tokens per pointer (official split 256 -> 4 x 64), model dtype.
        """
        from sam2_fast.engine.memory_bank import host_to_device

        cfg = self.config
        C, M = self.hidden_dim, self.mem_dim
        P, B = ptrs.shape[0], ptrs.shape[1]
        dtype = ptrs.dtype
        if cfg.add_tpos_enc_to_obj_ptrs:
            t_diff_max = max_ptrs - 1
            tpos_dim = C if cfg.proj_tpos_enc_in_obj_ptrs else M
            rel = host_to_device(distances, ptrs.device, torch.float32) / t_diff_max
            pos = get_1d_sine_pe(rel, dim=tpos_dim).to(dtype)
            pos = self.obj_ptr_tpos_proj(pos)
            pos = pos.unsqueeze(1).expand(-1, B, M)
        else:
            pos = ptrs.new_zeros(P, B, M)
        if M < C:
            k = C // M
            ptrs = ptrs.reshape(-1, B, k, M).permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(k, dim=0)
        return ptrs, pos

    def _prepare_memory_conditioned_features(self, frame_idx: int, is_init_cond_frame: bool,
                                             current_vision_feats: List[torch.Tensor],
                                             current_vision_pos_embeds: List[torch.Tensor],
                                             feat_sizes: List[Tuple[int, int]],
                                             memory: Optional[MemoryInputs]) -> torch.Tensor:
        """Fuse the current frame's top-level features with the memory (official
        ``SAM2Base._prepare_memory_conditioned_features``, eval mode; the frames to read were
        chosen by :func:`sam2_fast.engine.memory_bank.plan_memory_read` and loaded into
        ``memory`` by :class:`sam2_fast.engine.memory_bank.MemoryBank`).

        Args:
            frame_idx: index of the current frame (unused by the maths; kept for the official
                signature).
            is_init_cond_frame: a first-prompt frame: no memory is read; ``no_mem_embed`` is
                added directly (``directly_add_no_mem_embed``, all published configs) or
                attended as a single dummy memory token.
            current_vision_feats: [(HW, B, hidden_dim)] (the last entry is used).
            current_vision_pos_embeds: [(HW, B, hidden_dim)] (the last entry is used).
            feat_sizes: [(h, w)] (the last entry is used).
            memory: (memory (T, B, mem_dim), memory_pos (T, B, mem_dim), num_obj_ptr_tokens)
                for a non-initial frame; ignored on an initial one.

        Returns:
            (B, hidden_dim, h, w) features in the dtype of ``current_vision_feats``.

        Raises:
            RuntimeError: a non-initial frame without memory.
        """
        feats = current_vision_feats[-1]
        B = feats.shape[1]
        hw = tuple(feat_sizes[-1])
        dtype = feats.dtype
        if self.num_maskmem == 0:
            return _seq_to_map(feats, hw)
        if not is_init_cond_frame:
            if memory is None:
                raise RuntimeError(f"frame {frame_idx}: a tracking step needs its memory")
            mem, mem_pos, num_obj_ptr_tokens = memory[0], memory[1], memory[2]
        else:
            if self.config.directly_add_no_mem_embed:
                return _seq_to_map(feats + self.no_mem_embed.to(dtype), hw)
            mem = self.no_mem_embed.to(dtype).expand(1, B, self.mem_dim)
            mem_pos = self.no_mem_pos_enc.to(dtype).expand(1, B, self.mem_dim)
            num_obj_ptr_tokens = 0
        out = self.memory_attention(curr=current_vision_feats[-1:],
                                    curr_pos=current_vision_pos_embeds[-1:],
                                    memory=mem, memory_pos=mem_pos,
                                    num_obj_ptr_tokens=num_obj_ptr_tokens, feat_hw=hw)
        return _seq_to_map(out, hw)

    # ------------------------------------------------------------------ memory write
    def _encode_new_memory(self, current_vision_feats: List[torch.Tensor],
                           feat_sizes: List[Tuple[int, int]], pred_masks_high_res: torch.Tensor,
                           object_score_logits: torch.Tensor,
                           is_mask_from_pts: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Encode the current frame and its predicted mask into a memory (official
        ``SAM2Base._encode_new_memory``, eval mode).

        Args:
            current_vision_feats: [(HW, B, hidden_dim)] (last entry used, without memory).
            feat_sizes: [(h, w)].
            pred_masks_high_res: (B, 1, image_size, image_size) mask logits (float32).
            object_score_logits: (B, 1); where <= 0, ``no_obj_embed_spatial`` is added (2.1).
            is_mask_from_pts: the mask comes from user prompts: binarized (logit > 0) when
                ``binarize_mask_from_pts_for_mem_enc``, else sigmoid. Then x20 - 10.

        Returns:
            (maskmem_features (B, mem_dim, h, w), maskmem_pos_enc [(B, mem_dim, h, w)]) in the
            model dtype.
        """
        cfg = self.config
        feats = current_vision_feats[-1]
        pix_feat = _seq_to_map(feats, tuple(feat_sizes[-1]))
        masks = pred_masks_high_res
        if cfg.non_overlap_masks_for_mem_enc:
            masks = self._apply_non_overlapping_constraints(masks)
        if cfg.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts:
            mask_for_mem = (masks > 0).float()
        else:
            mask_for_mem = torch.sigmoid(masks.float())
        if cfg.sigmoid_scale_for_mem_enc != 1.0:
            mask_for_mem = mask_for_mem * cfg.sigmoid_scale_for_mem_enc
        if cfg.sigmoid_bias_for_mem_enc != 0.0:
            mask_for_mem = mask_for_mem + cfg.sigmoid_bias_for_mem_enc
        out = self.memory_encoder(pix_feat, mask_for_mem.to(pix_feat.dtype), skip_mask_sigmoid=True)
        maskmem_features = out["vision_features"]
        maskmem_pos_enc = out["vision_pos_enc"]
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).to(maskmem_features.dtype)  # (B, 1)
            maskmem_features = maskmem_features + absent[..., None, None] * \
                self.no_obj_embed_spatial.to(maskmem_features.dtype)[..., None, None]
        return maskmem_features, maskmem_pos_enc

    # ------------------------------------------------------------------ the step
    def _use_multimask(self, is_init_cond_frame: bool, point_inputs: Optional[dict]) -> bool:
        """Official ``SAM2Base._use_multimask``: 3 masks when 0..1 points (a box is 2) on an
        initial frame or when tracking."""
        cfg = self.config
        num_pts = 0 if point_inputs is None else point_inputs["point_labels"].shape[1]
        return bool(cfg.multimask_output_in_sam
                    and (is_init_cond_frame or cfg.multimask_output_for_tracking)
                    and cfg.multimask_min_pt_num <= num_pts <= cfg.multimask_max_pt_num)

    def _apply_non_overlapping_constraints(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """Keep only the highest-scoring object per pixel; others clamped to <= -10 (official
        ``SAM2Base._apply_non_overlapping_constraints``). pred_masks (B, 1, H, W)."""
        if pred_masks.shape[0] == 1:
            return pred_masks
        best = torch.argmax(pred_masks, dim=0, keepdim=True)
        ids = torch.arange(pred_masks.shape[0], device=pred_masks.device)[:, None, None, None]
        return torch.where(best == ids, pred_masks, torch.clamp(pred_masks, max=-10.0))

    def _track_step(self, frame_idx, is_init_cond_frame, current_vision_feats,
                    current_vision_pos_embeds, feat_sizes, point_inputs, mask_inputs,
                    memory, prev_sam_mask_logits):
        """Official ``SAM2Base._track_step``: returns (current_out, sam_outputs 7-tuple,
        high_res_features, pix_feat)."""
        current_out = {"point_inputs": point_inputs, "mask_inputs": mask_inputs}
        if len(current_vision_feats) > 1:
            high_res_features = [_seq_to_map(x, tuple(s))
                                 for x, s in zip(current_vision_feats[:-1], feat_sizes[:-1])]
        else:
            high_res_features = None
        if mask_inputs is not None and self.config.use_mask_input_as_output_without_sam:
            pix_feat = _seq_to_map(current_vision_feats[-1], tuple(feat_sizes[-1]))
            sam_outputs = self._use_mask_as_output(pix_feat, high_res_features, mask_inputs)
        else:
            pix_feat = self._prepare_memory_conditioned_features(
                frame_idx=frame_idx, is_init_cond_frame=is_init_cond_frame,
                current_vision_feats=current_vision_feats[-1:],
                current_vision_pos_embeds=current_vision_pos_embeds[-1:],
                feat_sizes=feat_sizes[-1:], memory=memory)
            if prev_sam_mask_logits is not None:
                if point_inputs is None or mask_inputs is not None:
                    raise ValueError("prev_sam_mask_logits needs point inputs and no mask input")
                mask_inputs = prev_sam_mask_logits
            sam_outputs = self._forward_sam_heads(
                backbone_features=pix_feat, point_inputs=point_inputs, mask_inputs=mask_inputs,
                high_res_features=high_res_features,
                multimask_output=self._use_multimask(is_init_cond_frame, point_inputs))
        return current_out, sam_outputs, high_res_features, pix_feat

    def _encode_memory_in_output(self, current_vision_feats, feat_sizes, point_inputs,
                                 run_mem_encoder, high_res_masks, object_score_logits,
                                 current_out) -> None:
        """Official ``SAM2Base._encode_memory_in_output``: fills ``maskmem_features`` /
        ``maskmem_pos_enc`` of ``current_out`` (None when not run)."""
        if run_mem_encoder and self.num_maskmem > 0:
            f, p = self._encode_new_memory(current_vision_feats, feat_sizes, high_res_masks,
                                           object_score_logits,
                                           is_mask_from_pts=point_inputs is not None)
            current_out["maskmem_features"] = f
            current_out["maskmem_pos_enc"] = p
        else:
            current_out["maskmem_features"] = None
            current_out["maskmem_pos_enc"] = None

    @torch.inference_mode()
    def track_step(self, frame_idx: int, is_init_cond_frame: bool,
                   current_vision_feats: List[torch.Tensor],
                   current_vision_pos_embeds: List[torch.Tensor],
                   feat_sizes: List[Tuple[int, int]], point_inputs: Optional[dict],
                   mask_inputs: Optional[torch.Tensor], memory: Optional[MemoryInputs],
                   run_mem_encoder: bool = True,
                   prev_sam_mask_logits: Optional[torch.Tensor] = None) -> dict:
        """One tracking step for a batch of B objects on one frame (official
        ``SAM2Base.track_step``, eval mode).

        Args:
            frame_idx: current frame index.
            is_init_cond_frame: first prompt for these objects (no memory read).
            current_vision_feats / current_vision_pos_embeds: per-level (HW_i, B, C_i) from
                :meth:`_prepare_backbone_features` (3 levels with high-res features).
            feat_sizes: per-level (h_i, w_i).
            point_inputs: ``{"point_coords": (B, P, 2) float32 pixels of the model input,
                "point_labels": (B, P) int32}`` or None.
            mask_inputs: (B, 1, image_size, image_size) binary float mask or None (with
                ``use_mask_input_as_output_without_sam`` it is output as-is, logits +-10).
            memory: (memory (T, B, mem_dim), memory_pos (T, B, mem_dim), num_obj_ptr_tokens)
                from :meth:`sam2_fast.engine.memory_bank.MemoryBank.load`; None on an initial
                conditioning frame (nothing is read there).
            run_mem_encoder: also encode the prediction into a memory.
            prev_sam_mask_logits: (B, 1, 4h, 4w) previous low-res logits fed with new clicks.

        Returns:
            dict with ``point_inputs``, ``mask_inputs``, ``pred_masks`` (B, 1, 4h, 4w) and
            ``pred_masks_high_res`` (B, 1, S, S) float logits (NO_OBJ_SCORE where the object is
            absent), ``obj_ptr`` (B, hidden_dim), ``object_score_logits`` (B, 1),
            ``maskmem_features`` (B, mem_dim, h, w) or None, ``maskmem_pos_enc`` [...] or None.

        Raises:
            RuntimeError: a non-initial frame without memory.
            ValueError: ``prev_sam_mask_logits`` without point inputs.
        """
        current_out, sam_outputs, _, _ = self._track_step(
            frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds,
            feat_sizes, point_inputs, mask_inputs, memory, prev_sam_mask_logits)
        _, _, _, low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs
        current_out["pred_masks"] = low_res_masks
        current_out["pred_masks_high_res"] = high_res_masks
        current_out["obj_ptr"] = obj_ptr
        current_out["object_score_logits"] = object_score_logits
        self._encode_memory_in_output(current_vision_feats, feat_sizes, point_inputs,
                                      run_mem_encoder, high_res_masks, object_score_logits,
                                      current_out)
        return current_out


__all__ = ["Sam2TrackingMixin", "MemoryInputs", "NO_OBJ_SCORE"]
