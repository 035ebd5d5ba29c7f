"""The tracking core shared by every video front end: feature expansion, the tracking step over
a :class:`~sam2_fast.engine.memory_bank.MemoryBank`, memory encoding of prompted frames, hole
filling, video resolution and non-overlap.

:class:`~sam2_fast.predictors.video.Sam2VideoPredictor` (official books and API) and the streams
of :mod:`sam2_fast.predictors.streaming` only keep books and call this. One step of a batch of
objects:

1. :meth:`TrackingCore.features` — the frame's features expanded to the B objects;
2. :meth:`TrackingCore.read_memory` — the frames named by the
   :class:`~sam2_fast.engine.memory_bank.MemoryReadPlan` copied into the fixed-capacity bank;
3. :meth:`TrackingCore.step` — ``Sam2Model.track_step`` + hole filling, returning a
   :class:`StepOutput` (its :meth:`StepOutput.entry` is what goes into the store);
4. :meth:`TrackingCore.to_video` — upsampling to the video size and the non-overlap constraint.

None of these synchronise with the host (tests/test_engine.py runs steady-state steps under a
dispatch mode that fails on any synchronising op). On CUDA, the image encoder and the
steady-state step (bank full, no prompts) are replayed as CUDA graphs
(:mod:`sam2_fast.engine.graphs`; ``cuda_graphs=False`` turns that off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .graphs import GraphRunner, default_graph_runner
from .memory_bank import MemoryBank, MemoryEntry, MemoryInputs, MemoryReadPlan, MemoryStore
from .postprocess import apply_non_overlapping_constraints, fill_holes_in_mask_scores, \
    to_video_resolution


@dataclass
class FrameFeatures:
    """A frame's image features laid out for tracking B objects (official
    ``_prepare_backbone_features`` output).

    Attributes:
        vision_feats: per level (HW_i, B, C_i), model dtype.
        vision_pos: per level (HW_i, B, C_i).
        feat_sizes: per level (h_i, w_i).
    """

    vision_feats: List[torch.Tensor]
    vision_pos: List[torch.Tensor]
    feat_sizes: List[Tuple[int, int]]

    @property
    def batch_size(self) -> int:
        return int(self.vision_feats[-1].shape[1])

    @staticmethod
    def cat(parts: Sequence["FrameFeatures"]) -> "FrameFeatures":
        """Batch rows of several frames (several streams) together."""
        if len(parts) == 1:
            return parts[0]
        return FrameFeatures([torch.cat(lv, dim=1) for lv in zip(*(p.vision_feats for p in parts))],
                             [torch.cat(lv, dim=1) for lv in zip(*(p.vision_pos for p in parts))],
                             parts[0].feat_sizes)


@dataclass
class StepOutput:
    """What one step of B objects produced.

    Attributes:
        pred_masks: (B, 1, 4h, 4w) float32 low-res mask logits, hole-filled when the step filled
            holes (NO_OBJ_SCORE where an object is predicted absent).
        obj_ptr: (B, hidden_dim).
        object_score_logits: (B, 1).
        maskmem_features: (B, mem_dim, h, w) or None (memory encoder not run).
        maskmem_pos_enc: (B, mem_dim, h, w) or None.
    """

    pred_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    maskmem_features: Optional[torch.Tensor] = None
    maskmem_pos_enc: Optional[torch.Tensor] = None

    def entry(self, keep_masks: bool = True) -> MemoryEntry:
        return MemoryEntry(obj_ptr=self.obj_ptr, object_score_logits=self.object_score_logits,
                           maskmem_features=self.maskmem_features,
                           maskmem_pos_enc=self.maskmem_pos_enc,
                           pred_masks=self.pred_masks if keep_masks else None)


class TrackingCore:
    """The steps every video front end shares, for one :class:`~sam2_fast.model.sam2_model.Sam2Model`.

    Holds one :class:`MemoryBank` per batch size (the fixed-capacity buffers a step reads; the
    ``MAX_BANKS`` most recently used are kept), the constant position encoding of the memories,
    and the :class:`~sam2_fast.engine.graphs.GraphRunner` (``graphs``) that replays the image
    encoder and the steady-state step as CUDA graphs.

    Args:
        model: a :class:`~sam2_fast.model.sam2_model.Sam2Model`.
        cuda_graphs: None = on when the model is on CUDA; False = never.

    Raises:
        ValueError: ``cuda_graphs=True`` for a model that is not on CUDA.
    """

    MAX_BANKS = 8

    def __init__(self, model, cuda_graphs: Optional[bool] = None) -> None:
        self.model = model
        self._banks: Dict[tuple, MemoryBank] = {}
        self._maskmem_pos: Dict[tuple, torch.Tensor] = {}
        self.graphs: GraphRunner = default_graph_runner(model.device, cuda_graphs)

    # ------------------------------------------------------------------ image encoder
    def encode_image(self, images: torch.Tensor) -> dict:
        """``Sam2Model.forward_image`` of (N, 3, S, S) preprocessed frames, replayed as a CUDA
        graph per batch size when graphs are on. Replayed outputs are the graph's buffers,
        valid until the next call: use them for this frame only."""
        m = self.model

        def fn(x):
            out = m.forward_image(x)
            return tuple(out["backbone_fpn"]) + tuple(out["vision_pos_enc"]) + (out["vision_features"],)

        flat, _ = self.graphs.run(("image",), fn, (images,))
        n = (len(flat) - 1) // 2
        return {"backbone_fpn": list(flat[:n]), "vision_pos_enc": list(flat[n:2 * n]),
                "vision_features": flat[-1]}

    # ------------------------------------------------------------------ features
    def features(self, backbone_out: dict, rows: int) -> FrameFeatures:
        """One frame's ``forward_image`` output (batch 1) expanded to ``rows`` objects (views)."""
        exp = {"backbone_fpn": [f.expand(rows, -1, -1, -1) for f in backbone_out["backbone_fpn"]],
               "vision_pos_enc": [p.expand(rows, -1, -1, -1) for p in backbone_out["vision_pos_enc"]]}
        _, feats, pos, sizes = self.model._prepare_backbone_features(exp)
        return FrameFeatures(feats, pos, [tuple(s) for s in sizes])

    # ------------------------------------------------------------------ memory
    def bank(self, batch_size: int, feat_hw: Tuple[int, int]) -> MemoryBank:
        """The fixed-capacity bank for ``batch_size`` objects (allocated once, then reused)."""
        key = (int(batch_size), tuple(feat_hw), self.model.device, self.model.dtype)
        bank = self._banks.pop(key, None)
        if bank is None:
            bank = MemoryBank(self.model, batch_size, feat_hw)
        self._banks[key] = bank  # most recently used last
        while len(self._banks) > self.MAX_BANKS:
            self._banks.pop(next(iter(self._banks)))
        return bank

    def read_memory(self, plan: MemoryReadPlan, stores: Sequence[MemoryStore], batch_size: int,
                    feat_hw: Tuple[int, int], offsets: Optional[Sequence[int]] = None):
        """Load what ``plan`` reads from ``stores`` (row blocks of the batch) into the bank;
        returns the ``memory`` argument of ``Sam2Model.track_step``."""
        return self.bank(batch_size, feat_hw).load(plan, stores, offsets)

    def _steady_step_fn(self, feat_sizes: List[Tuple[int, int]], num_obj_ptr_tokens: int,
                        fill_hole_area: int):
        """The steady-state step as a function of tensors only (what a graph captures):
        (level features..., last-level pos, memory, memory_pos) -> (filled low-res masks,
        obj_ptr, object scores, maskmem_features, one row of maskmem_pos_enc)."""
        m = self.model
        n = len(feat_sizes)

        def fn(*t):
            feats, pos_last, mem, mem_pos = list(t[:n]), t[n], t[n + 1], t[n + 2]
            out = m.track_step(frame_idx=-1, is_init_cond_frame=False, current_vision_feats=feats,
                               current_vision_pos_embeds=[None] * (n - 1) + [pos_last],
                               feat_sizes=feat_sizes, point_inputs=None, mask_inputs=None,
                               memory=(mem, mem_pos, num_obj_ptr_tokens), run_mem_encoder=True)
            low = out["pred_masks"].float()
            if fill_hole_area > 0:
                low = fill_holes_in_mask_scores(low, fill_hole_area)
            return (low, out["obj_ptr"], out["object_score_logits"], out["maskmem_features"],
                    out["maskmem_pos_enc"][-1][:1])
        return fn

    def maskmem_pos_enc(self, pos: torch.Tensor, rows: int) -> torch.Tensor:
        """The memories' position encoding as ``rows`` views of one stored constant (it depends
        only on the memory's size: the official keeps one copy too)."""
        key = (tuple(pos.shape[1:]), pos.device, pos.dtype)
        const = self._maskmem_pos.get(key)
        if const is None:
            const = self._maskmem_pos[key] = pos[0:1].clone()
        return const.expand(rows, -1, -1, -1)

    # ------------------------------------------------------------------ the step
    def step(self, frame_idx: int, features: FrameFeatures, *, is_init_cond_frame: bool,
             memory=None, point_inputs: Optional[dict] = None,
             mask_inputs: Optional[torch.Tensor] = None, run_mem_encoder: bool = True,
             prev_sam_mask_logits: Optional[torch.Tensor] = None,
             fill_hole_area: int = 0) -> StepOutput:
        """``Sam2Model.track_step`` for B objects, then hole filling of the low-res masks
        (official ``SAM2VideoPredictor._run_single_frame_inference``; the memory is encoded
        from the unfilled prediction, as the official).

        Args:
            frame_idx: the frame.
            features: :meth:`features` of the frame for the B objects.
            is_init_cond_frame: a first prompt (nothing read from memory).
            memory: :meth:`read_memory` output for a non-initial frame.
            point_inputs / mask_inputs / prev_sam_mask_logits / run_mem_encoder: as
                ``Sam2Model.track_step``.
            fill_hole_area: fill background holes up to this many pixels (0: off).

        Returns:
            a :class:`StepOutput`. A steady-state step (``memory.steady``, no prompts, memory
            encoder on) goes through :attr:`graphs` (replayed as a CUDA graph once captured).
        """
        steady = (isinstance(memory, MemoryInputs) and memory.steady and not is_init_cond_frame
                  and point_inputs is None and mask_inputs is None and run_mem_encoder
                  and prev_sam_mask_logits is None)
        if steady:
            sizes = [tuple(s) for s in features.feat_sizes]
            fn = self._steady_step_fn(sizes, memory.num_obj_ptr_tokens, int(fill_hole_area))
            key = ("track", tuple(sizes), memory.num_obj_ptr_tokens, int(fill_hole_area))
            inputs = tuple(features.vision_feats) + (features.vision_pos[-1], memory.memory,
                                                     memory.memory_pos)
            persistent = [False] * (len(inputs) - 2) + [True, True]  # the bank's buffers
            outs, replayed = self.graphs.run(key, fn, inputs, persistent)
            if replayed:  # the graph's buffers are overwritten by its next replay
                outs = tuple(o.clone() for o in outs)
            low, ptr, score, feats, pos_row = outs
            return StepOutput(pred_masks=low, obj_ptr=ptr, object_score_logits=score,
                              maskmem_features=feats,
                              maskmem_pos_enc=self.maskmem_pos_enc(pos_row, feats.shape[0]))
        out = self.model.track_step(
            frame_idx=frame_idx, is_init_cond_frame=is_init_cond_frame,
            current_vision_feats=features.vision_feats,
            current_vision_pos_embeds=features.vision_pos, feat_sizes=features.feat_sizes,
            point_inputs=point_inputs, mask_inputs=mask_inputs, memory=memory,
            run_mem_encoder=run_mem_encoder, prev_sam_mask_logits=prev_sam_mask_logits)
        low = out["pred_masks"].float()
        if fill_hole_area > 0:
            low = fill_holes_in_mask_scores(low, fill_hole_area)
        feats, pos = out["maskmem_features"], out["maskmem_pos_enc"]
        return StepOutput(pred_masks=low, obj_ptr=out["obj_ptr"],
                          object_score_logits=out["object_score_logits"],
                          maskmem_features=feats,
                          maskmem_pos_enc=None if pos is None else
                          self.maskmem_pos_enc(pos[-1], feats.shape[0]))

    def encode_prompted_memory(self, features: FrameFeatures, pred_masks: torch.Tensor,
                               object_score_logits: torch.Tensor
                               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Memory of a prompted frame (official ``propagate_in_video_preflight``): the low-res
        masks (hole-filled when filling is on) upsampled to the model input size, binarized as
        a mask from points, through the memory encoder.

        Args:
            features: the frame's features for the B objects.
            pred_masks: (B, 1, 4h, 4w) float32 logits.
            object_score_logits: (B, 1).

        Returns:
            (maskmem_features (B, mem_dim, h, w), maskmem_pos_enc (B, mem_dim, h, w)).
        """
        m = self.model
        high = F.interpolate(pred_masks.float(), size=(m.image_size, m.image_size),
                             mode="bilinear", align_corners=False)
        f, p = m._encode_new_memory(features.vision_feats, features.feat_sizes, high,
                                    object_score_logits, is_mask_from_pts=True)
        return f, self.maskmem_pos_enc(p[-1], f.shape[0])

    # ------------------------------------------------------------------ outputs
    @staticmethod
    def to_video(pred_masks: torch.Tensor, video_hw: Tuple[int, int],
                 non_overlap: bool = False) -> torch.Tensor:
        """Low-res logits of the N objects of a frame -> (N, 1, H, W) float32 logits at the video
        size, with the non-overlap constraint when asked."""
        out = to_video_resolution(pred_masks, video_hw)
        if non_overlap:
            out = apply_non_overlapping_constraints(out)
        return out


__all__ = ["TrackingCore", "FrameFeatures", "StepOutput"]
