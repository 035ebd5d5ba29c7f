"""Drop-in video predictor with the official (12/2024) ``SAM2VideoPredictor`` API and semantics.

Mirrors ``sam2.sam2_video_predictor.SAM2VideoPredictor`` of the official ``sam2==1.1.0``: an
inference state dict per video, prompts (points, boxes, masks) per frame and object, objects
tracked independently (each with its own memory bank), objects addable after tracking started,
correction clicks on tracked frames, propagation forwards or backwards.

Differences from the official, all on purpose:

* Composition: ``Sam2VideoPredictor(model)`` wraps a :class:`sam2_fast.model.sam2_model.Sam2Model`
  instead of subclassing it.
* Memories stay in the model's dtype (the official casts them to bf16 and then fails in fp32,
  upstream #308); ``memory_dtype=torch.bfloat16`` keeps the official's storage explicitly.
* The tracking itself is the shared engine (:mod:`sam2_fast.engine`): the books hold typed
  :class:`~sam2_fast.engine.memory_bank.MemoryEntry` values (official key access still works),
  what a step reads is decided by the one rule
  :func:`~sam2_fast.engine.memory_bank.plan_memory_read`, and a step reads it from
  fixed-capacity buffers. Objects whose steps read the same frames are tracked as one batch.
* Hole filling (``fill_hole_area``) gives the official CUDA extension's result on every device
  with no host synchronisation (:mod:`sam2_fast.engine.postprocess`; the official silently skips
  it without its extension, #243).
* ``clear_non_cond_mem_around_input=True`` works (the official calls a missing method, #571):
  it drops the object's tracked memories that the steps next to an interacted frame would read
  (:func:`~sam2_fast.engine.memory_bank.frames_read_around`; the official's window is
  ``memory_temporal_stride_for_eval * num_maskmem`` frames each side); the interacted frame is
  kept.
* Bad input (frame index out of range, wrong mask size, malformed points/boxes, ...) raises
  ``ValueError`` before the state is touched, so the state stays usable. Prompts follow the
  rules of :mod:`sam2_fast.prompts`. ``propagate_in_video`` shows a tqdm bar like the official
  (``progress=False`` turns it off); nothing else prints.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from sam2_fast.config import NO_OBJ_SCORE
from sam2_fast.engine.core import TrackingCore
from sam2_fast.engine.memory_bank import MemoryEntry, MemoryStore, frames_read_around
from sam2_fast.engine.postprocess import connected_components, fill_holes_in_mask_scores
from sam2_fast.io.frames import AsyncFrameLoader, LazyFrameLoader, load_video_frames


# ----------------------------------------------------------------------------- predictor
class Sam2VideoPredictor:
    """Video object segmentation with prompts (official ``SAM2VideoPredictor`` API).

    Args:
        model: a :class:`sam2_fast.model.sam2_model.Sam2Model` (eval mode is set).
        fill_hole_area: fill background holes up to this many pixels (of the 1/4-resolution
            mask) in every output; 0 disables. Default 8 as the official
            ``build_sam2_video_predictor(..., apply_postprocessing=True)``.
        non_overlap_masks: keep only the best object per pixel in the returned masks.
        clear_non_cond_mem_around_input: drop the object's tracked (non-conditioning) memories
            near frames that receive prompts.
        add_all_frames_to_correct_as_cond: correction clicks on tracked frames make them
            conditioning frames.
        memory_dtype: dtype the spatial memories are stored in; None = the model's dtype.
        batch_objects: during propagation, track objects whose steps read the same memory frames
            (e.g. all prompted on the same frame) as one batch through memory attention, the
            mask decoder and the memory encoder (the official loops over objects; results agree
            within fp32 rounding). False = one object at a time.
        cuda_graphs: replay the image encoder and the steady-state tracking step as CUDA graphs
            (:mod:`sam2_fast.engine.graphs`); None = on when the model is on CUDA, False = off.

    Raises (constructor): ValueError for a switch that is not True/False or a
    ``fill_hole_area`` that is not an int >= 0.

    All methods run under ``torch.inference_mode``. Masks returned are float32 logits at the
    video resolution, (num_objects, 1, H, W), ``NO_OBJ_SCORE`` (-1024) where an object is
    predicted absent.
    """

    def __init__(self, model, fill_hole_area: int = 8, non_overlap_masks: bool = False,
                 clear_non_cond_mem_around_input: bool = False,
                 add_all_frames_to_correct_as_cond: bool = False,
                 memory_dtype: Optional[torch.dtype] = None, batch_objects: bool = True,
                 cuda_graphs: Optional[bool] = None) -> None:
        from sam2_fast.prompts import check_count, check_flag

        self.fill_hole_area = check_count(fill_hole_area, "fill_hole_area")
        self.non_overlap_masks = check_flag(non_overlap_masks, "non_overlap_masks")
        self.clear_non_cond_mem_around_input = check_flag(clear_non_cond_mem_around_input,
                                                          "clear_non_cond_mem_around_input")
        self.add_all_frames_to_correct_as_cond = check_flag(add_all_frames_to_correct_as_cond,
                                                            "add_all_frames_to_correct_as_cond")
        self.batch_objects = check_flag(batch_objects, "batch_objects")
        self.model = model.eval()
        self.memory_dtype = memory_dtype
        self.core = TrackingCore(self.model, cuda_graphs)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> "Sam2VideoPredictor":
        """Official ``SAM2VideoPredictor.from_pretrained``: a Hugging Face id
        (``"facebook/sam2.1-hiera-tiny"``) or a sam2_fast name, downloaded once into the cache
        of :mod:`sam2_fast.hub`; see :func:`sam2_fast.build.build_sam2_video_predictor_hf`.
        Raises HubError (a ValueError) for an unknown id or offline without a cached file."""
        from sam2_fast.build import build_sam2_video_predictor_hf

        return build_sam2_video_predictor_hf(model_id, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    # ------------------------------------------------------------------ state
    @torch.inference_mode()
    def init_state(self, video_path, offload_video_to_cpu: bool = False,
                   offload_state_to_cpu: bool = False,
                   async_loading_frames: bool = False, lazy_frames: bool = False) -> dict:
        """Load a video and create its inference state (official ``init_state``).

        Args:
            video_path: a folder of numbered JPEG/PNG frames, a video file (.mp4, decoded with
                PyAV), or a list of (H, W, 3) uint8 RGB frames.
            offload_video_to_cpu: keep the preprocessed frames on the CPU.
            offload_state_to_cpu: keep memories and masks on the CPU between frames.
            async_loading_frames: for a frame folder, load frame 0 now and the others in a
                background thread (kept on the CPU, moved per frame); ignored for video files
                and frame lists (loaded at once), as the official.
            lazy_frames: read and preprocess each frame when it is needed and keep only the 16
                most recent (:class:`~sam2_fast.io.frames.LazyFrameLoader`: a folder's files,
                a video file decoded on demand with keyframe seeks, or a sequence of frames such
                as :class:`~sam2_fast.io.sources.RandomAccessFrames`); for videos too long to
                hold in memory (not in the official). On CUDA (without
                ``offload_video_to_cpu``) the frames are resized and normalized on the GPU.

        Returns:
            the inference state (a dict with the official keys: ``images``, ``num_frames``,
            ``video_height``, ``video_width``, ``obj_ids``, ``output_dict_per_obj``, ...).
            The image features of frame 0 are computed and cached.

        Raises:
            ValueError: a missing/empty folder, an empty frame list, bad frame arrays;
                :class:`~sam2_fast.io.frames.FrameSizeError` (a ValueError) for a frame of another
                size than frame 0 (never stretched, where the official would).
            RuntimeError: an unreadable frame or an undecodable video file.
        """
        device = self.device
        is_folder = isinstance(video_path, (str, os.PathLike)) and os.path.isdir(video_path)
        if lazy_frames:
            images = LazyFrameLoader(video_path, self.image_size,
                                     device=None if offload_video_to_cpu else device)
            video_height, video_width = images.video_height, images.video_width
        elif async_loading_frames and is_folder:
            images = AsyncFrameLoader(video_path, self.image_size)
            video_height, video_width = images.video_height, images.video_width
        else:
            # on CUDA the frames are resized and normalized on the GPU (decoded on the CPU)
            images, video_height, video_width = load_video_frames(
                video_path, self.image_size, device=None if offload_video_to_cpu else device)
            if not offload_video_to_cpu:
                images = images.to(device)
        state: dict = {
            "images": images,
            "num_frames": len(images),
            "offload_video_to_cpu": offload_video_to_cpu,
            "offload_state_to_cpu": offload_state_to_cpu,
            "video_height": video_height,
            "video_width": video_width,
            "device": device,
            "storage_device": torch.device("cpu") if offload_state_to_cpu else device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }
        self._get_image_feature(state, frame_idx=0, batch_size=1)
        return state

    @torch.inference_mode()
    def reset_state(self, inference_state: dict) -> None:
        """Remove every prompt, result and object (official ``reset_state``)."""
        self._reset_tracking_results(inference_state)
        inference_state["obj_id_to_idx"].clear()
        inference_state["obj_idx_to_id"].clear()
        inference_state["obj_ids"].clear()
        for key in ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj",
                    "temp_output_dict_per_obj", "frames_tracked_per_obj"):
            inference_state[key].clear()

    def _reset_tracking_results(self, inference_state: dict) -> None:
        for key in ("point_inputs_per_obj", "mask_inputs_per_obj", "frames_tracked_per_obj"):
            for v in inference_state[key].values():
                v.clear()
        for key in ("output_dict_per_obj", "temp_output_dict_per_obj"):
            for v in inference_state[key].values():
                v.clear()

    # ------------------------------------------------------------------ object ids
    def _obj_id_to_idx(self, inference_state: dict, obj_id) -> int:
        idx = inference_state["obj_id_to_idx"].get(obj_id)
        if idx is not None:
            return idx
        idx = len(inference_state["obj_id_to_idx"])
        inference_state["obj_id_to_idx"][obj_id] = idx
        inference_state["obj_idx_to_id"][idx] = obj_id
        inference_state["obj_ids"] = list(inference_state["obj_id_to_idx"])
        inference_state["point_inputs_per_obj"][idx] = {}
        inference_state["mask_inputs_per_obj"][idx] = {}
        inference_state["output_dict_per_obj"][idx] = MemoryStore()
        inference_state["temp_output_dict_per_obj"][idx] = MemoryStore()
        inference_state["frames_tracked_per_obj"][idx] = {}
        return idx

    def _obj_idx_to_id(self, inference_state: dict, obj_idx: int):
        return inference_state["obj_idx_to_id"][obj_idx]

    def _get_obj_num(self, inference_state: dict) -> int:
        return len(inference_state["obj_idx_to_id"])

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_frame_idx(inference_state: dict, frame_idx, what: str = "frame_idx") -> int:
        n = inference_state["num_frames"]
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise ValueError(f"{what} must be an int, got {type(frame_idx).__name__}")
        if not 0 <= int(frame_idx) < n:
            raise ValueError(f"{what}={int(frame_idx)} is out of range: the video has {n} frames "
                             f"(valid 0..{n - 1})")
        return int(frame_idx)

    @staticmethod
    def _check_obj_id(obj_id):
        from sam2_fast.prompts import check_obj_id

        return check_obj_id(obj_id)

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(self, inference_state: dict, frame_idx: int, obj_id,
                              points=None, labels=None, clear_old_points: bool = True,
                              normalize_coords: bool = True, box=None):
        """Add clicks and/or a box for one object on one frame (official
        ``add_new_points_or_box``).

        Args:
            frame_idx: frame index in [0, num_frames).
            obj_id: client object id (any hashable scalar but None and booleans,
                :func:`sam2_fast.prompts.check_obj_id`); a new id creates an object, also
                after tracking started.
            points: (N, 2) or (1, N, 2) (x, y) in video pixels (or [0, 1] when
                ``normalize_coords=False``), array-like/tensor.
            labels: (N,) or (1, N) ints: 1 positive, 0 negative.
            clear_old_points: replace this frame's earlier clicks (else append to them).
            normalize_coords: ``points``/``box`` are in video pixels (else in [0, 1]).
            box: (4,) x0, y0, x1, y1 (stored as the first two points, labels 2 and 3).

        Returns:
            (frame_idx, obj_ids, video_res_masks (num_objects, 1, H, W) float32 logits).

        Raises:
            ValueError: frame out of range; points without labels or vice versa; neither
                points nor box; malformed shapes; a box with ``clear_old_points=False``; NaN/inf,
                labels outside (-1, 0, 1, 2, 3), an inverted or empty box (the rules of
                :mod:`sam2_fast.prompts`; coordinates outside the frame are accepted).
        """
        frame_idx = self._check_frame_idx(inference_state, frame_idx)
        obj_id = self._check_obj_id(obj_id)
        from sam2_fast.prompts import video_points_and_box  # the one set of prompt rules

        pts, lbs = video_points_and_box(points, labels, box, clear_old_points=clear_old_points)
        if normalize_coords:
            pts = pts / torch.tensor([inference_state["video_width"],
                                      inference_state["video_height"]], dtype=torch.float32)
        pts = (pts * self.image_size).to(inference_state["device"])
        lbs = lbs.to(inference_state["device"])

        obj_idx = self._obj_id_to_idx(inference_state, obj_id)
        point_inputs_per_frame = inference_state["point_inputs_per_obj"][obj_idx]
        mask_inputs_per_frame = inference_state["mask_inputs_per_obj"][obj_idx]
        old = None if clear_old_points else point_inputs_per_frame.get(frame_idx)
        if old is None:
            point_inputs = {"point_coords": pts, "point_labels": lbs}
        else:
            point_inputs = {"point_coords": torch.cat([old["point_coords"], pts], dim=1),
                            "point_labels": torch.cat([old["point_labels"], lbs], dim=1)}
        point_inputs_per_frame[frame_idx] = point_inputs
        mask_inputs_per_frame.pop(frame_idx, None)

        is_init_cond_frame, reverse, is_cond, storage_key = self._frame_role(
            inference_state, obj_idx, frame_idx)
        obj_output_dict = inference_state["output_dict_per_obj"][obj_idx]
        obj_temp_output_dict = inference_state["temp_output_dict_per_obj"][obj_idx]
        prev_out = self._find_output(inference_state, obj_idx, frame_idx, storage_key)
        prev_sam_mask_logits = None
        if prev_out is not None and prev_out["pred_masks"] is not None:
            prev_sam_mask_logits = torch.clamp(
                prev_out["pred_masks"].to(inference_state["device"], non_blocking=True),
                -32.0, 32.0)
        current_out, _ = self._run_single_frame_inference(
            inference_state, [obj_output_dict], frame_idx, batch_size=1,
            is_init_cond_frame=is_init_cond_frame, point_inputs=point_inputs,
            mask_inputs=None, reverse=reverse, run_mem_encoder=False,
            prev_sam_mask_logits=prev_sam_mask_logits)
        obj_temp_output_dict[storage_key][frame_idx] = current_out
        return self._frame_output(inference_state, frame_idx, is_cond)

    def add_new_points(self, *args, **kwargs):
        """Deprecated alias of :meth:`add_new_points_or_box` (as the official)."""
        return self.add_new_points_or_box(*args, **kwargs)

    @torch.inference_mode()
    def add_new_mask(self, inference_state: dict, frame_idx: int, obj_id, mask):
        """Give one object's mask on one frame (official ``add_new_mask``).

        Args:
            frame_idx: frame index in [0, num_frames).
            obj_id: client object id (as :meth:`add_new_points_or_box`).
            mask: (H, W) bool, integer (nonzero = object) or float 0/1 array or tensor at the
                video resolution (video_height, video_width) or at the model's (image_size,
                image_size); resized to the model size with antialiased bilinear and
                thresholded at 0.5 like the official. Float masks with other values
                (probabilities, logits) are refused (:func:`sam2_fast.prompts.check_mask`).

        Returns:
            (frame_idx, obj_ids, video_res_masks (num_objects, 1, H, W) float32 logits).

        Raises:
            ValueError: frame out of range, a mask that is not 2-D or of another size, a float
                mask that is not 0/1.
        """
        frame_idx = self._check_frame_idx(inference_state, frame_idx)
        obj_id = self._check_obj_id(obj_id)
        from sam2_fast.prompts import check_mask  # the one set of prompt rules

        vh, vw = inference_state["video_height"], inference_state["video_width"]
        s = self.image_size
        m = check_mask(mask, [(vh, vw), (s, s)])
        m = m.bool()[None, None].float().to(inference_state["device"])
        if tuple(m.shape[-2:]) != (s, s):
            m = F.interpolate(m, size=(s, s), align_corners=False, mode="bilinear",
                              antialias=True)
            m = (m >= 0.5).float()

        obj_idx = self._obj_id_to_idx(inference_state, obj_id)
        inference_state["mask_inputs_per_obj"][obj_idx][frame_idx] = m
        inference_state["point_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        is_init_cond_frame, reverse, is_cond, storage_key = self._frame_role(
            inference_state, obj_idx, frame_idx)
        obj_output_dict = inference_state["output_dict_per_obj"][obj_idx]
        current_out, _ = self._run_single_frame_inference(
            inference_state, [obj_output_dict], frame_idx, batch_size=1,
            is_init_cond_frame=is_init_cond_frame, point_inputs=None, mask_inputs=m,
            reverse=reverse, run_mem_encoder=False)
        inference_state["temp_output_dict_per_obj"][obj_idx][storage_key][frame_idx] = current_out
        return self._frame_output(inference_state, frame_idx, is_cond)

    def _frame_role(self, inference_state, obj_idx, frame_idx):
        """(is_init_cond_frame, reverse, is_cond, storage_key) of a prompt on ``frame_idx``.

        As the official, a prompt on a frame the object was tracked on corrects it (with
        memory); unlike the official (which fails an assertion), an object left with no
        conditioning frame at all (its prompts were cleared) starts afresh from the prompt."""
        tracked = inference_state["frames_tracked_per_obj"][obj_idx]
        has_cond = bool(
            inference_state["output_dict_per_obj"][obj_idx]["cond_frame_outputs"]
            or inference_state["temp_output_dict_per_obj"][obj_idx]["cond_frame_outputs"])
        is_init_cond_frame = frame_idx not in tracked or not has_cond
        reverse = False if is_init_cond_frame else tracked[frame_idx]["reverse"]
        is_cond = is_init_cond_frame or self.add_all_frames_to_correct_as_cond
        storage_key = "cond_frame_outputs" if is_cond else "non_cond_frame_outputs"
        return is_init_cond_frame, reverse, is_cond, storage_key

    def _frame_output(self, inference_state, frame_idx, is_cond):
        consolidated = self._consolidate_temp_output_across_obj(
            inference_state, frame_idx, is_cond=is_cond, consolidate_at_video_res=True)
        _, video_res_masks = self._get_orig_video_res_output(
            inference_state, consolidated["pred_masks_video_res"])
        return frame_idx, inference_state["obj_ids"], video_res_masks

    # ------------------------------------------------------------------ outputs
    @staticmethod
    def _find_output(inference_state: dict, obj_idx: int, frame_idx: int, storage_key: str):
        """An object's newest output on a frame: the unconsolidated one (``storage_key`` of the
        temporary dict) first, then its conditioning, then its tracked outputs; None if none."""
        out = inference_state["temp_output_dict_per_obj"][obj_idx][storage_key].get(frame_idx)
        outd = inference_state["output_dict_per_obj"][obj_idx]
        if out is None:
            out = outd["cond_frame_outputs"].get(frame_idx)
        if out is None:
            out = outd["non_cond_frame_outputs"].get(frame_idx)
        return out

    def _get_orig_video_res_output(self, inference_state, any_res_masks):
        device = inference_state["device"]
        vh, vw = inference_state["video_height"], inference_state["video_width"]
        any_res_masks = any_res_masks.to(device, non_blocking=True)
        video_res_masks = self.core.to_video(any_res_masks, (vh, vw), self.non_overlap_masks)
        return any_res_masks, video_res_masks

    def _consolidate_temp_output_across_obj(self, inference_state, frame_idx, is_cond,
                                            consolidate_at_video_res=False):
        batch_size = self._get_obj_num(inference_state)
        storage_key = "cond_frame_outputs" if is_cond else "non_cond_frame_outputs"
        if consolidate_at_video_res:
            h, w = inference_state["video_height"], inference_state["video_width"]
            key = "pred_masks_video_res"
        else:
            h = w = self.image_size // 4
            key = "pred_masks"
        masks = torch.full((batch_size, 1, h, w), NO_OBJ_SCORE, dtype=torch.float32,
                           device=inference_state["storage_device"])
        for obj_idx in range(batch_size):
            out = self._find_output(inference_state, obj_idx, frame_idx, storage_key)
            if out is None:
                continue
            m = out["pred_masks"].to(masks.device).float()
            if tuple(m.shape[-2:]) != (h, w):
                m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
            masks[obj_idx:obj_idx + 1] = m
        return {key: masks}

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: dict) -> None:
        """Encode the memories of newly prompted frames and move them into the memory banks
        (official ``propagate_in_video_preflight``).

        Raises:
            RuntimeError: no object has a prompt, or some object has no conditioning frame.
        """
        batch_size = self._get_obj_num(inference_state)
        if batch_size == 0:
            raise RuntimeError(
                "No input points or masks are provided for any object; please add inputs first.")
        # check every object first so an error leaves the state untouched
        for obj_idx in range(batch_size):
            temp = inference_state["temp_output_dict_per_obj"][obj_idx]
            outd = inference_state["output_dict_per_obj"][obj_idx]
            if not outd["cond_frame_outputs"] and not temp["cond_frame_outputs"]:
                obj_id = self._obj_idx_to_id(inference_state, obj_idx)
                raise RuntimeError(
                    f"No input points or masks are provided for object id {obj_id}; please "
                    "add inputs first.")
        for obj_idx in range(batch_size):
            outd = inference_state["output_dict_per_obj"][obj_idx]
            temp = inference_state["temp_output_dict_per_obj"][obj_idx]
            for storage_key in ("non_cond_frame_outputs", "cond_frame_outputs"):
                for frame_idx, out in temp[storage_key].items():
                    if out.maskmem_features is None:
                        out = self._run_memory_encoder(inference_state, frame_idx, out)
                    outd[storage_key][frame_idx] = out
                    if self.clear_non_cond_mem_around_input:
                        self._clear_obj_non_cond_mem_around_input(inference_state, frame_idx,
                                                                  obj_idx)
                temp[storage_key].clear()
            for frame_idx in outd["cond_frame_outputs"]:
                outd["non_cond_frame_outputs"].pop(frame_idx, None)

    @torch.inference_mode()
    def propagate_in_video(self, inference_state: dict, start_frame_idx: Optional[int] = None,
                           max_frame_num_to_track: Optional[int] = None,
                           reverse: bool = False, progress: bool = True
                           ) -> Iterator[Tuple[int, List, torch.Tensor]]:
        """Track every object through the video (official ``propagate_in_video``).

        Args:
            start_frame_idx: first frame (default: the earliest conditioning frame).
            max_frame_num_to_track: number of frames after the start (default: all).
            reverse: track towards frame 0.
            progress: show a tqdm progress bar on stderr ("propagate in video", as the
                official); False turns it off (not in the official).

        Yields:
            (frame_idx, obj_ids, video_res_masks (num_objects, 1, H, W) float32 logits).

        Raises:
            RuntimeError: no prompts yet (raised at the first ``next()``).
            ValueError: ``start_frame_idx`` out of range, ``max_frame_num_to_track`` not an
                int >= 0, ``reverse`` not a bool.
        """
        if start_frame_idx is not None:
            start_frame_idx = self._check_frame_idx(inference_state, start_frame_idx,
                                                    "start_frame_idx")
        from sam2_fast.prompts import check_count, check_flag

        if max_frame_num_to_track is not None:
            max_frame_num_to_track = check_count(max_frame_num_to_track, "max_frame_num_to_track")

        reverse = check_flag(reverse, "reverse")
        self.propagate_in_video_preflight(inference_state)
        obj_ids = inference_state["obj_ids"]
        num_frames = inference_state["num_frames"]
        batch_size = self._get_obj_num(inference_state)
        if start_frame_idx is None:
            start_frame_idx = min(t for d in inference_state["output_dict_per_obj"].values()
                                  for t in d["cond_frame_outputs"])
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end + 1)
        device = inference_state["device"]
        from tqdm.auto import tqdm

        for frame_idx in tqdm(order, desc="propagate in video", disable=not progress):
            pred: List[Optional[torch.Tensor]] = [None] * batch_size
            to_track = []
            for obj_idx in range(batch_size):
                outd = inference_state["output_dict_per_obj"][obj_idx]
                if frame_idx in outd["cond_frame_outputs"]:
                    pred[obj_idx] = outd["cond_frame_outputs"][frame_idx]["pred_masks"].to(
                        device, non_blocking=True)
                    if self.clear_non_cond_mem_around_input:
                        self._clear_obj_non_cond_mem_around_input(inference_state, frame_idx,
                                                                  obj_idx)
                else:
                    to_track.append(obj_idx)
            # objects whose steps read the same memory frames are tracked as one batch
            for group in self._layout_groups(inference_state, to_track, frame_idx, reverse):
                stores = [inference_state["output_dict_per_obj"][i] for i in group]
                current_out, pred_masks = self._run_single_frame_inference(
                    inference_state, stores, frame_idx, batch_size=len(group),
                    is_init_cond_frame=False, point_inputs=None, mask_inputs=None,
                    reverse=reverse, run_mem_encoder=True)
                for j, obj_idx in enumerate(group):
                    row = current_out if len(group) == 1 else current_out.row(j)
                    stores[j].non_cond[frame_idx] = row
                    pred[obj_idx] = pred_masks[j:j + 1]
            for obj_idx in range(batch_size):
                inference_state["frames_tracked_per_obj"][obj_idx][frame_idx] = {
                    "reverse": reverse}
            all_masks = torch.cat(pred, dim=0) if len(pred) > 1 else pred[0]
            _, video_res_masks = self._get_orig_video_res_output(inference_state, all_masks)
            yield frame_idx, obj_ids, video_res_masks

    def _layout_groups(self, inference_state: dict, obj_idxs: List[int], frame_idx: int,
                       reverse: bool = False) -> List[List[int]]:
        """Split objects into batches whose steps on ``frame_idx`` read the same memory frames
        (equal :class:`~sam2_fast.engine.memory_bank.MemoryReadPlan`); one batch each when
        ``batch_objects`` is off."""
        if not self.batch_objects:
            return [[i] for i in obj_idxs]
        groups: Dict[object, List[int]] = {}
        for i in obj_idxs:
            plan = inference_state["output_dict_per_obj"][i].plan(
                self.model.config, frame_idx, inference_state["num_frames"], reverse)
            groups.setdefault(plan, []).append(i)
        return list(groups.values())

    # ------------------------------------------------------------------ edits
    @torch.inference_mode()
    def clear_all_prompts_in_frame(self, inference_state: dict, frame_idx: int, obj_id,
                                   need_output: bool = True):
        """Remove one object's prompts on one frame (official ``clear_all_prompts_in_frame``);
        a conditioning output there is downgraded to a tracked one.

        Returns:
            (frame_idx, obj_ids, video_res_masks) when ``need_output``, else None.

        Raises:
            ValueError: frame out of range; an ``obj_id`` that is not tracked (the official
                would register it as a new object without prompts, and the next propagation
                would then fail).
        """
        frame_idx = self._check_frame_idx(inference_state, frame_idx)
        obj_id = self._check_obj_id(obj_id)
        if obj_id not in inference_state["obj_id_to_idx"]:
            raise ValueError(f"obj_id {obj_id!r} is not tracked (objects: {inference_state['obj_ids']})")
        obj_idx = self._obj_id_to_idx(inference_state, obj_id)
        inference_state["point_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        inference_state["mask_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        temp_all = inference_state["temp_output_dict_per_obj"]
        temp_all[obj_idx]["cond_frame_outputs"].pop(frame_idx, None)
        temp_all[obj_idx]["non_cond_frame_outputs"].pop(frame_idx, None)
        outd = inference_state["output_dict_per_obj"][obj_idx]
        out = outd["cond_frame_outputs"].pop(frame_idx, None)
        if out is not None:
            outd["non_cond_frame_outputs"][frame_idx] = out
            inference_state["frames_tracked_per_obj"][obj_idx].pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in t["cond_frame_outputs"] for t in temp_all.values())
        return self._frame_output(inference_state, frame_idx, is_cond)

    @torch.inference_mode()
    def remove_object(self, inference_state: dict, obj_id, strict: bool = False,
                      need_output: bool = True):
        """Remove an object (official ``remove_object``).

        Args:
            obj_id: the object's id.
            strict: raise for an id that is not tracked (default: return unchanged).
            need_output: compute the masks of the frames where the object had prompts (the
                remaining objects', as the official).

        Returns:
            (obj_ids, updated_frames): the remaining ids and, when ``need_output``, a list of
            (frame_idx, video_res_masks) for the frames where the removed object had prompts.

        Raises:
            RuntimeError: ``strict`` and the id does not exist (message lists the ids).
            ValueError: not an id (None, a bool: ``True`` would remove object 1).
        """
        obj_id = self._check_obj_id(obj_id)
        old_idx = inference_state["obj_id_to_idx"].get(obj_id)
        updated: List[Tuple[int, torch.Tensor]] = []
        if old_idx is None:
            if not strict:
                return inference_state["obj_ids"], updated
            raise RuntimeError(f"Cannot remove object id {obj_id} as it doesn't exist. "
                               f"All existing object ids: {inference_state['obj_ids']}.")
        if len(inference_state["obj_id_to_idx"]) == 1:
            self.reset_state(inference_state)
            return inference_state["obj_ids"], updated
        input_frames = set(inference_state["point_inputs_per_obj"][old_idx])
        input_frames.update(inference_state["mask_inputs_per_obj"][old_idx])
        for t in input_frames:
            self.clear_all_prompts_in_frame(inference_state, t, obj_id, need_output=False)
        old_ids = inference_state["obj_ids"]
        old_inds = list(range(len(old_ids)))
        remain = [i for i in old_inds if i != old_idx]
        new_ids = [old_ids[i] for i in remain]
        old_to_new = {o: n for n, o in enumerate(remain)}
        inference_state["obj_id_to_idx"] = OrderedDict((i, n) for n, i in enumerate(new_ids))
        inference_state["obj_idx_to_id"] = OrderedDict((n, i) for n, i in enumerate(new_ids))
        inference_state["obj_ids"] = new_ids
        for key in ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj",
                    "temp_output_dict_per_obj", "frames_tracked_per_obj"):
            container = inference_state[key]
            items = [(old_to_new[k], container.pop(k)) for k in old_inds if k in old_to_new]
            container.pop(old_idx, None)
            container.update(items)
        if need_output:
            temp_all = inference_state["temp_output_dict_per_obj"]
            for t in sorted(input_frames):
                is_cond = any(t in d["cond_frame_outputs"] for d in temp_all.values())
                _, _, masks = self._frame_output(inference_state, t, is_cond)
                updated.append((t, masks))
        return inference_state["obj_ids"], updated

    def _clear_obj_non_cond_mem_around_input(self, inference_state: dict, frame_idx: int,
                                             obj_idx: int) -> None:
        """Drop object ``obj_idx``'s tracked memories that the steps next to ``frame_idx`` would
        read (:func:`~sam2_fast.engine.memory_bank.frames_read_around`; the frame itself is
        kept, so a correction stored as non-conditioning survives). This is what the official
        ``clear_non_cond_mem_around_input=True`` path means to do (#571), with the window taken
        from the one read rule instead of ``memory_temporal_stride_for_eval * num_maskmem``
        frames each side."""
        store = inference_state["output_dict_per_obj"][obj_idx]
        for t in frames_read_around(self.model.config, frame_idx, list(store.cond),
                                    store.non_cond, inference_state["num_frames"]):
            store.non_cond.pop(t, None)

    # ------------------------------------------------------------------ model calls
    def _get_image_feature(self, inference_state: dict, frame_idx: int, batch_size: int):
        """The frame's features for ``batch_size`` objects (the last frame's image-encoder output
        is cached, as the official)."""
        image, backbone_out = inference_state["cached_features"].get(frame_idx, (None, None))
        if backbone_out is None:
            device = inference_state["device"]
            image = inference_state["images"][frame_idx].to(device).to(self.dtype).unsqueeze(0)
            backbone_out = self.core.encode_image(image)
            inference_state["cached_features"] = {frame_idx: (image, backbone_out)}
        return self.core.features(backbone_out, batch_size)

    def _stored(self, inference_state: dict, entry: MemoryEntry) -> MemoryEntry:
        """An entry as the books keep it: spatial memory in ``memory_dtype`` and masks on the
        storage device (``offload_state_to_cpu``)."""
        storage = inference_state["storage_device"]
        f = entry.maskmem_features
        if f is not None:
            f = f.to(dtype=self.memory_dtype or f.dtype).to(storage, non_blocking=True)
        return MemoryEntry(obj_ptr=entry.obj_ptr, object_score_logits=entry.object_score_logits,
                           maskmem_features=f, maskmem_pos_enc=entry.maskmem_pos_enc,
                           pred_masks=entry.pred_masks.to(storage, non_blocking=True))

    def _run_single_frame_inference(self, inference_state, stores: List[MemoryStore], frame_idx,
                                    batch_size, is_init_cond_frame, point_inputs, mask_inputs,
                                    reverse, run_mem_encoder, prev_sam_mask_logits=None):
        """One step for the objects of ``stores`` (their steps read the same frames) through
        the shared engine. Returns (the entry as stored, hole-filled low-res masks on the
        device (B, 1, 4h, 4w))."""
        if point_inputs is not None and mask_inputs is not None:
            raise ValueError("point and mask inputs cannot be given together on one frame")
        features = self._get_image_feature(inference_state, frame_idx, batch_size)
        memory = None
        reads_memory = not (mask_inputs is not None
                            and self.model.config.use_mask_input_as_output_without_sam)
        if not is_init_cond_frame and reads_memory:
            plan = stores[0].plan(self.model.config, frame_idx, inference_state["num_frames"],
                                  reverse)
            memory = self.core.read_memory(plan, stores, batch_size, features.feat_sizes[-1])
        out = self.core.step(frame_idx, features, is_init_cond_frame=is_init_cond_frame,
                             memory=memory, point_inputs=point_inputs, mask_inputs=mask_inputs,
                             run_mem_encoder=run_mem_encoder,
                             prev_sam_mask_logits=prev_sam_mask_logits,
                             fill_hole_area=self.fill_hole_area)
        return self._stored(inference_state, out.entry()), out.pred_masks

    def _run_memory_encoder(self, inference_state, frame_idx: int, out: MemoryEntry) -> MemoryEntry:
        """Encode the memory of a prompted frame from its stored (hole-filled) low-res masks
        (official ``propagate_in_video_preflight``)."""
        features = self._get_image_feature(inference_state, frame_idx, out.batch_size)
        f, p = self.core.encode_prompted_memory(
            features, out.pred_masks.to(inference_state["device"]), out.object_score_logits)
        return self._stored(inference_state, out.with_memory(f, p))


def build_sam2_video_predictor(*args, **kwargs) -> Sam2VideoPredictor:
    """:func:`sam2_fast.build.build_sam2_video_predictor` (the official arguments), kept here
    for code that imports it from this module."""
    from sam2_fast.build import build_sam2_video_predictor as build

    return build(*args, **kwargs)


__all__ = ["Sam2VideoPredictor", "build_sam2_video_predictor", "fill_holes_in_mask_scores",
           "connected_components"]  # the last two re-exported from sam2_fast.engine.postprocess
