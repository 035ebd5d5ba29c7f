"""Streaming video tracking: frames arrive one at a time, prompts on any frame, all objects of a
frame in one batch, and a memory bank that stays the same size over an unbounded stream.

The maths is the official SAM 2 tracking step (``SAM2Base.track_step`` via
:class:`sam2_fast.model.tracking.Sam2TrackingMixin`) with the bookkeeping of the official
``SAM2VideoPredictor`` (``add_new_points_or_box`` + ``propagate_in_video``): on a stream whose
prompts all come on the first frame, the masks and object scores equal
``Sam2VideoPredictor.propagate_in_video``'s frame by frame (tests/test_streaming.py).

Memory bank (:class:`Sam2VideoState`), per *group* of objects:

* objects that received their first prompt on the same frame form one group and are batched
  through memory attention, the mask decoder and the memory encoder (their steps read the same
  frames, so one ``track_step`` serves them all); the image encoder runs once
  per frame for every group;
* several streams (``Sam2.predict_video_frames``): one image-encoder batch for all frames, and
  groups of different streams whose layouts match relative to their current frames (streams
  prompted alike) share one tracking batch (B streams x N objects);
* conditioning memories: the frames where the group's objects were first prompted (and
  corrections when ``add_all_frames_to_correct_as_cond``), at most ``max_cond_frames`` of
  them; beyond that the oldest one after the first is dropped (policy: keep the initial prompt
  and the most recent prompts);
* non-conditioning memories: exactly what the next frame's step reads by the one read rule
  (:func:`sam2_fast.engine.memory_bank.plan_memory_read`): with the published configs the
  spatial memories of the last ``num_maskmem - 1`` (6) frames (spaced by
  ``memory_temporal_stride_for_eval`` beyond the previous frame) and the object pointers of the
  last ``max_obj_ptrs_in_encoder - 1`` (15) frames; everything older is never read again and is
  dropped. Nothing else is kept (no per-frame outputs), so host and device memory stay flat.

Every group is tracked by the shared engine (:class:`sam2_fast.engine.core.TrackingCore`),
reading its memory from fixed-capacity buffers, with no host synchronisation in a step.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import NO_OBJ_SCORE, PIXEL_MEAN, PIXEL_STD
from ..io import av_errors
from ..io.frames import _normalize, _preprocess_pil, resize_frame_tensor
from ..model.sam2_model import Sam2Model
from ..prompts import check_count, check_flag, check_obj_id
from ..engine.core import FrameFeatures, StepOutput, TrackingCore
from ..engine.memory_bank import MemoryEntry, MemoryReadPlan, MemoryStore

DEFAULT_MAX_COND_FRAMES = 16


# ----------------------------------------------------------------------------- frames
_MEAN_STD: Dict[torch.device, tuple] = {}


def _mean_std(device: torch.device) -> tuple:
    """ImageNet mean/std as (1, 3, 1, 1) float32 tensors on ``device``, made once per device (a
    fresh host-to-device copy per frame would make the host wait for the device)."""
    if device not in _MEAN_STD:
        _MEAN_STD[device] = (torch.tensor(PIXEL_MEAN, device=device).view(1, 3, 1, 1),
                             torch.tensor(PIXEL_STD, device=device).view(1, 3, 1, 1))
    return _MEAN_STD[device]


def preprocess_frame(frame, image_size: int, device: torch.device,
                     dtype: torch.dtype = torch.float32) -> tuple:
    """One video frame -> ((1, 3, S, S) normalized tensor in ``dtype`` on ``device``, H, W).

    ``frame``: an (H, W, 3) uint8 RGB ndarray or PIL RGB image — resized with PIL's default
    (bicubic) filter exactly as the official video loader (``sam2.utils.misc``) — or an
    (H, W, 3) uint8 torch tensor (any device), resized on its device with torch's antialiased
    bicubic (the same filter family; not bit-identical to PIL's uint8 rounding).

    Raises:
        ValueError: not RGB, not uint8, wrong rank or channel count, empty.
    """
    if isinstance(frame, torch.Tensor):
        if frame.dim() != 3 or frame.shape[-1] != 3 or frame.dtype != torch.uint8:
            raise ValueError(f"frame tensor must be (H, W, 3) uint8 RGB, got {tuple(frame.shape)} "
                             f"{frame.dtype}")
        h, w = int(frame.shape[0]), int(frame.shape[1])
        if h == 0 or w == 0:
            raise ValueError(f"frame is empty: {tuple(frame.shape)}")
        x = resize_frame_tensor(frame.to(device), image_size)[None]
        mean, std = _mean_std(x.device)
        return ((x - mean) / std).to(dtype), h, w
    else:
        if isinstance(frame, Image.Image):
            if frame.mode != "RGB":
                raise ValueError(f"frame must be an RGB image, got PIL mode {frame.mode!r}")
            img = frame
        elif isinstance(frame, np.ndarray):
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame must be (H, W, 3) RGB, got shape {frame.shape}")
            if frame.dtype != np.uint8:
                raise ValueError(f"frame must be uint8, got {frame.dtype}")
            if frame.shape[0] == 0 or frame.shape[1] == 0:
                raise ValueError(f"frame is empty: {frame.shape}")
            img = Image.fromarray(frame)
        else:
            raise ValueError(f"frame must be an (H, W, 3) uint8 array, PIL RGB image or uint8 "
                             f"tensor, got {type(frame).__name__}")
        w, h = img.size
        # the official video loader's maths, shared with Sam2VideoPredictor (io/frames.py)
        x = _normalize(_preprocess_pil(img, image_size)[None])
        return x.to(device=device, dtype=dtype), h, w


def iter_frames(source) -> Iterator[np.ndarray]:
    """Yield frames from any frame source: (H, W, 3) uint8 RGB arrays, except that the items of
    an iterable are passed through as they are (arrays, tensors or PIL images, which
    :meth:`sam2_fast.Sam2.predict_video_frame` accepts and checks).

    ``source``: a video file path or URL (``rtsp://``, ``http://``...) decoded with PyAV; an
    open ``av`` container; an int camera index (needs OpenCV, ``pip install opencv-python``);
    a folder of numbered JPEG/PNG frames; or any iterable of frames.

    Raises:
        ValueError: an unsupported source or a missing file/folder.
        RuntimeError: PyAV/OpenCV cannot open or decode it.
    """
    if isinstance(source, bool):
        raise ValueError("frame source must not be a bool")
    if isinstance(source, int):
        try:
            import cv2
        except ImportError as e:
            raise RuntimeError("camera input needs OpenCV (pip install opencv-python)") from e
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise RuntimeError(f"cannot open camera {source}")
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield np.ascontiguousarray(bgr[:, :, ::-1])
        finally:
            cap.release()
    if isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        if os.path.isdir(s):
            from ..io.frames import list_frame_files

            from ..io.images import to_rgb

            for p in list_frame_files(s):
                with Image.open(p) as img:
                    yield np.asarray(to_rgb(img, str(p)))
            return
        if "://" not in s and not os.path.isfile(s):
            raise ValueError(f"frame source {s!r} does not exist")
        import av

        try:
            container = av.open(s)
        except av_errors() as e:
            raise RuntimeError(f"cannot open video {s!r}: {e}") from e
        with container:
            yield from _decode(container, s)
        return
    if hasattr(source, "decode") and hasattr(source, "streams"):  # an open av container
        yield from _decode(source, "container")
        return
    if isinstance(source, Iterable):
        yield from source
        return
    raise ValueError(f"unsupported frame source {type(source).__name__}")


def _decode(container, name: str) -> Iterator[np.ndarray]:
    try:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")
    except av_errors() as e:
        raise RuntimeError(f"cannot decode video {name!r}: {e}") from e


# ----------------------------------------------------------------------------- state
class _Group:
    """Objects tracked as one batch (first prompted on the same frame): their ids and one
    :class:`~sam2_fast.engine.memory_bank.MemoryStore` whose entries hold a row per object."""

    def __init__(self, obj_ids: List[Any], store: Optional[MemoryStore] = None) -> None:
        self.obj_ids = obj_ids
        self.store = store if store is not None else MemoryStore()

    @property
    def cond(self) -> Dict[int, MemoryEntry]:
        return self.store.cond

    @property
    def non_cond(self) -> Dict[int, MemoryEntry]:
        return self.store.non_cond

    def select(self, rows: List[int]) -> None:
        """Keep only batch rows ``rows`` in every stored tensor (object removal)."""
        self.store.select_rows(rows)


class Sam2VideoState:
    """The bounded state of one video stream (see the module docstring for what it keeps).

    Made by :meth:`sam2_fast.Sam2.new_video_state`. Attributes: ``frame_idx`` (index of the
    next frame), ``video_size`` ((H, W) fixed by the first frame), ``obj_ids`` (tracked ids in
    the order they were added).
    """

    def __init__(self, num_frames: Optional[int], max_cond_frames: int, fill_hole_area: int,
                 non_overlap_masks: bool, add_all_frames_to_correct_as_cond: bool) -> None:
        self.num_frames = num_frames
        self.max_cond_frames = max_cond_frames
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.frame_idx = 0
        self.video_size: Optional[tuple] = None
        self.groups: List[_Group] = []
        self.removed_ids: set = set()
        self._added: List[Any] = []  # tracked ids in the order they were added

    @property
    def obj_ids(self) -> List[Any]:
        # the order objects were added in, whatever groups they are tracked in (a correction
        # with add_all_frames_to_correct_as_cond moves objects into a group of their own)
        return list(self._added)

    def _group_of(self, obj_id):
        for g in self.groups:
            if obj_id in g.obj_ids:
                return g
        return None

    def remove_object(self, obj_id) -> None:
        """Stop tracking ``obj_id`` (its id cannot be reused in this stream).
        Raises ValueError for an unknown id (or one that is not an id: True would be 1)."""
        obj_id = check_obj_id(obj_id)
        g = self._group_of(obj_id)
        if g is None:
            raise ValueError(f"unknown obj_id {obj_id!r}; tracked: {self.obj_ids}")
        keep = [i for i, o in enumerate(g.obj_ids) if o != obj_id]
        if keep:
            g.select(keep)
            g.obj_ids = [g.obj_ids[i] for i in keep]
        else:
            self.groups.remove(g)
        self._added.remove(obj_id)
        self.removed_ids.add(obj_id)

    def nbytes(self) -> int:
        """Bytes of every tensor the state holds (host and device; shared tensors once)."""
        return MemoryStore.nbytes_of([g.store for g in self.groups])


@dataclass
class Sam2VideoFramePrediction:
    """What :meth:`sam2_fast.Sam2.predict_video_frame` returns for one frame (N tracked objects).

    Attributes:
        frame_idx: index of this frame in the stream.
        obj_ids: the N object ids, in the order of the tensors below.
        mask_logits: (N, 1, H, W) float32 logits at the frame size (NO_OBJ_SCORE = -1024 where
            an object is predicted absent).
        masks: (N, 1, H, W) bool, ``mask_logits > 0``.
        object_score_logits: (N, 1) float32; > 0 means the object is visible.
    """

    frame_idx: int
    obj_ids: List[Any]
    mask_logits: torch.Tensor
    masks: torch.Tensor
    object_score_logits: torch.Tensor


# ----------------------------------------------------------------------------- prompts
def _parse_prompt(obj_id, p: dict, state: Sam2VideoState, S: int, h: int, w: int, device) -> dict:
    from ..prompts import stream_prompt  # the one set of prompt rules

    kind, *val = stream_prompt(obj_id, p, (h, w), S)
    fi = p.get("frame_idx")
    if fi is not None and (isinstance(fi, bool) or not isinstance(fi, (int, np.integer))):
        raise ValueError(f"prompt for obj_id {obj_id!r}: frame_idx must be an int, got {fi!r}")
    if fi is not None and fi != state.frame_idx:
        when = "already passed" if fi < state.frame_idx else "not arrived yet"
        raise ValueError(f"prompt for obj_id {obj_id!r} targets frame {fi}, which has {when}; "
                         f"the stream is at frame {state.frame_idx}")
    if obj_id in state.removed_ids:
        raise ValueError(f"obj_id {obj_id!r} was removed from this stream and cannot be reused")
    if kind == "mask":
        m = val[0][None, None].float().to(device)
        m = (F.interpolate(m, size=(S, S), align_corners=False, mode="bilinear", antialias=True) >= 0.5).float()
        return {"mask": m}
    coords, labels = val
    coords = coords / torch.tensor([w, h], dtype=torch.float32) * S
    return {"points": {"point_coords": coords.to(device), "point_labels": labels.to(device)}}


# ----------------------------------------------------------------------------- the tracker
class StreamingTracker:
    """Runs one frame of one :class:`Sam2VideoState` (or of several) through a
    :class:`Sam2Model` with the shared :class:`~sam2_fast.engine.core.TrackingCore`.
    Used by :class:`sam2_fast.Sam2`; see :meth:`sam2_fast.Sam2.predict_video_frame`."""

    def __init__(self, model: Sam2Model, cuda_graphs: Optional[bool] = None) -> None:
        self.model = model
        self.core = TrackingCore(model, cuda_graphs)

    def new_state(self, num_frames: Optional[int] = None, max_cond_frames: int = DEFAULT_MAX_COND_FRAMES,
                  fill_hole_area: int = 8, non_overlap_masks: bool = False,
                  add_all_frames_to_correct_as_cond: bool = False) -> Sam2VideoState:
        """A new empty stream; see :meth:`sam2_fast.Sam2.new_video_state` for the arguments.
        Raises ValueError for a bad argument."""
        if num_frames is not None:
            num_frames = check_count(num_frames, "num_frames (or None)", 1)
        return Sam2VideoState(
            num_frames, check_count(max_cond_frames, "max_cond_frames", 1),
            check_count(fill_hole_area, "fill_hole_area"),
            check_flag(non_overlap_masks, "non_overlap_masks"),
            check_flag(add_all_frames_to_correct_as_cond, "add_all_frames_to_correct_as_cond"))

    # -- helpers --------------------------------------------------------------
    def _num_frames(self, state: Sam2VideoState) -> Optional[int]:
        # None = an unbounded stream: the full pointer window (like any video of
        # >= max_obj_ptrs_in_encoder frames offline)
        return state.num_frames

    def _plan(self, state: Sam2VideoState, store: MemoryStore, t: int) -> MemoryReadPlan:
        return store.plan(self.model.config, t, self._num_frames(state))

    def _track(self, state: Sam2VideoState, t: int, features: FrameFeatures,
               stores: List[MemoryStore], offsets: Optional[List[int]] = None) -> StepOutput:
        """The tracking step (memory read + heads + memory encoder + hole filling) of the
        objects of ``stores`` on frame ``t`` (of the first store; ``offsets`` shift the
        others)."""
        plan = self._plan(state, stores[0], t)
        memory = self.core.read_memory(plan, stores, features.batch_size,
                                       features.feat_sizes[-1], offsets)
        return self.core.step(t, features, is_init_cond_frame=False, memory=memory,
                              run_mem_encoder=True, fill_hole_area=state.fill_hole_area)

    def _prompt_step(self, state: Sam2VideoState, t: int, backbone_out: dict, prompt: dict,
                     store: Optional[MemoryStore], prev_logits: Optional[torch.Tensor]) -> StepOutput:
        """Official ``add_new_points_or_box`` / ``add_new_mask`` maths for one object (no memory
        encoded yet): a first prompt when ``store`` is None, else a correction reading the
        object's memory."""
        features = self.core.features(backbone_out, 1)
        mask = prompt.get("mask")
        memory = None
        if store is not None and not (mask is not None and
                                      self.model.config.use_mask_input_as_output_without_sam):
            memory = self.core.read_memory(self._plan(state, store, t), [store], 1,
                                           features.feat_sizes[-1])
        return self.core.step(t, features, is_init_cond_frame=store is None, memory=memory,
                              point_inputs=prompt.get("points"), mask_inputs=mask,
                              run_mem_encoder=False, prev_sam_mask_logits=prev_logits,
                              fill_hole_area=state.fill_hole_area)

    # -- one frame --------------------------------------------------------------
    def prepare(self, state: Sam2VideoState, frame, prompts: Optional[Dict[Any, dict]]):
        """Validate a frame and its prompts without touching the state; returns
        (image (1, 3, S, S), h, w, parsed prompts). Raises ValueError (see ``step``)."""
        if not isinstance(state, Sam2VideoState):
            raise ValueError(f"state must be a Sam2VideoState from Sam2.new_video_state(), got "
                             f"{type(state).__name__}")
        m = self.model
        S = m.image_size
        img, h, w = preprocess_frame(frame, S, m.device, m.dtype)
        if state.video_size is not None and (h, w) != state.video_size:
            raise ValueError(f"frame {state.frame_idx} is {h}x{w} but the stream's frames are "
                             f"{state.video_size[0]}x{state.video_size[1]}; resize frames before "
                             "feeding them (the stream never resizes silently)")
        if prompts is not None and not isinstance(prompts, dict):
            raise ValueError("prompts must be a dict {obj_id: {points, labels, box, mask}}")
        parsed = {}
        for oid, p in (prompts or {}).items():
            oid = check_obj_id(oid, "a prompt's obj_id (its key)")
            parsed[oid] = _parse_prompt(oid, p, state, S, h, w, m.device)
        if not state.obj_ids and not parsed:
            if state.frame_idx > 0:
                raise ValueError(f"the stream has no objects left at frame {state.frame_idx} (all "
                                 "were removed): give prompts for at least one object")
            raise ValueError("the first frame of a stream needs prompts (points, a box or a mask) "
                             "for at least one object")
        return img, h, w, parsed

    @torch.inference_mode()
    def step(self, state: Sam2VideoState, frame, prompts: Optional[Dict[Any, dict]] = None
             ) -> Sam2VideoFramePrediction:
        """Track every object of ``state`` on the next frame (prompts applied first)."""
        img, h, w, parsed = self.prepare(state, frame, prompts)
        return self.run(state, self.core.encode_image(img), h, w, parsed)

    @torch.inference_mode()
    def step_many(self, states: Sequence[Sam2VideoState], frames: Sequence,
                  prompts: Optional[Sequence[Optional[Dict[Any, dict]]]] = None
                  ) -> List[Sam2VideoFramePrediction]:
        """One frame for each of several independent streams: the image encoder runs once on
        the batch of frames, then each stream tracks its objects."""
        if len(states) != len(frames) or (prompts is not None and len(prompts) != len(states)):
            raise ValueError("states, frames and prompts must have the same length")
        if len({id(s) for s in states}) != len(states):
            raise ValueError("each stream (state) can appear only once per call")
        preps = [self.prepare(s, f, None if prompts is None else prompts[i])
                 for i, (s, f) in enumerate(zip(states, frames))]
        bo = self.core.encode_image(torch.cat([p[0] for p in preps]))
        singles = [{"backbone_fpn": [f[i:i + 1] for f in bo["backbone_fpn"]],
                    "vision_pos_enc": [p[i:i + 1] for p in bo["vision_pos_enc"]]} for i in range(len(states))]
        outs: List[Optional[Sam2VideoFramePrediction]] = [None] * len(states)
        quiet = [i for i, p in enumerate(preps) if not p[3]]  # no prompts: batch across streams
        if len(quiet) > 1:
            results = self._track_across_streams([(states[i], singles[i]) for i in quiet])
            for i, res in zip(quiet, results):
                states[i].video_size = (preps[i][1], preps[i][2])
                outs[i] = self._finish(states[i], res, preps[i][1], preps[i][2])
        for i, (st, (_, h, w, parsed)) in enumerate(zip(states, preps)):
            if outs[i] is None:
                outs[i] = self.run(st, singles[i], h, w, parsed)
        return outs

    def run(self, state: Sam2VideoState, backbone_out: dict, h: int, w: int, parsed: dict
            ) -> Sam2VideoFramePrediction:
        """The tracking step of one stream on a frame whose features are ``backbone_out``."""
        tracked_ids = set(state.obj_ids)
        t = state.frame_idx
        state.video_size = (h, w)
        results: Dict[Any, tuple] = {}  # obj_id -> (filled low-res (1,1,h4,w4), score (1,1))

        # 1) existing groups: one batched tracking step each
        for g in list(state.groups):
            ids_before = list(g.obj_ids)
            B = len(ids_before)
            out = self._track(state, t, self.core.features(backbone_out, B), [g.store])
            filled = out.pred_masks
            corrected = [i for i, o in enumerate(g.obj_ids) if o in parsed]
            mem_f, mem_p = out.maskmem_features, out.maskmem_pos_enc
            ptr, score = out.obj_ptr, out.object_score_logits
            if corrected:
                # correction prompts on a tracked frame: official add_new_points_or_box with the
                # tracked logits as prev mask, memory re-encoded from the corrected mask
                mem_f, ptr, score, filled = mem_f.clone(), ptr.clone(), score.clone(), filled.clone()
                for i in corrected:
                    pr = parsed[g.obj_ids[i]]
                    prev = torch.clamp(filled[i:i + 1], -32.0, 32.0) if "points" in pr else None
                    c = self._prompt_step(state, t, backbone_out, pr, self._row_store(g, i), prev)
                    f1, _ = self.core.encode_prompted_memory(self.core.features(backbone_out, 1),
                                                             c.pred_masks, c.object_score_logits)
                    mem_f[i:i + 1], ptr[i:i + 1] = f1, c.obj_ptr
                    score[i:i + 1], filled[i:i + 1] = c.object_score_logits, c.pred_masks
            entry = MemoryEntry(obj_ptr=ptr, object_score_logits=score, maskmem_features=mem_f,
                                maskmem_pos_enc=mem_p)
            if corrected and state.add_all_frames_to_correct_as_cond:
                if len(corrected) < B:  # the corrected objects get their own history from now on
                    rest = [i for i in range(B) if i not in corrected]
                    ng = _Group([g.obj_ids[i] for i in corrected],
                                MemoryStore({f: e.select(corrected) for f, e in g.cond.items()},
                                            {f: e.select(corrected) for f, e in g.non_cond.items()}))
                    ng.cond[t] = entry.select(corrected)
                    g.select(rest)
                    g.obj_ids = [g.obj_ids[i] for i in rest]
                    g.non_cond[t] = entry.select(rest)
                    state.groups.insert(state.groups.index(g) + 1, ng)
                else:
                    g.cond[t] = entry
            else:
                g.non_cond[t] = entry
            for i, o in enumerate(ids_before):
                results[o] = (filled[i:i + 1], score[i:i + 1])

        # 2) new objects prompted on this frame: one new group
        new_ids = [o for o in parsed if o not in tracked_ids]
        if new_ids:
            outs = [self._prompt_step(state, t, backbone_out, parsed[o], None, None)
                    for o in new_ids]
            filled = torch.cat([c.pred_masks for c in outs])
            scores = torch.cat([c.object_score_logits for c in outs])
            mem_f, mem_p = self.core.encode_prompted_memory(
                self.core.features(backbone_out, len(new_ids)), filled, scores)
            g = _Group(list(new_ids))
            g.cond[t] = MemoryEntry(obj_ptr=torch.cat([c.obj_ptr for c in outs]),
                                    object_score_logits=scores, maskmem_features=mem_f,
                                    maskmem_pos_enc=mem_p)
            state.groups.append(g)
            state._added += new_ids
            for i, o in enumerate(new_ids):
                results[o] = (filled[i:i + 1], scores[i:i + 1])

        return self._finish(state, results, h, w)

    def _finish(self, state: Sam2VideoState, results: Dict[Any, tuple], h: int, w: int
                ) -> Sam2VideoFramePrediction:
        """Prune the bank, advance the stream, and assemble the frame's prediction."""
        t = state.frame_idx
        if state.num_frames is not None and t == state.num_frames:
            warnings.warn(f"the stream has passed num_frames={state.num_frames} (frame {t}); "
                          "num_frames bounds the object-pointer window as the video's length "
                          "would: give the real length, or None for an open-ended stream",
                          stacklevel=4)
        self._prune(state, t)
        state.frame_idx = t + 1
        ids = state.obj_ids
        low = torch.cat([results[o][0] for o in ids])
        scores = torch.cat([results[o][1] for o in ids]).float()
        logits = self.core.to_video(low, (h, w), state.non_overlap_masks)
        return Sam2VideoFramePrediction(t, ids, logits, logits > 0, scores)

    def _track_across_streams(self, items: List[tuple]) -> List[Dict[Any, tuple]]:
        """Track the groups of several prompt-free streams; groups whose steps read the same
        frames relative to their streams' current frames (e.g. streams prompted alike) run as
        one batch. ``items``: [(state, backbone_out)]. Returns per-stream results
        {obj_id: (filled low-res, score)}; the stores are updated as in :meth:`run`."""
        batches: Dict[tuple, List[tuple]] = {}
        for si, (state, bo) in enumerate(items):
            t = state.frame_idx
            for g in state.groups:
                key = (self._plan(state, g.store, t).relative(), state.num_frames,
                       state.fill_hole_area)
                batches.setdefault(key, []).append((si, state, g, bo))
        per_stream: List[Dict[Any, tuple]] = [{} for _ in items]
        for members in batches.values():
            lead = members[0][1]
            features = FrameFeatures.cat([self.core.features(bo, len(g.obj_ids))
                                          for _, _, g, bo in members])
            offsets = [st.frame_idx - lead.frame_idx for _, st, _, _ in members]
            out = self._track(lead, lead.frame_idx, features, [g.store for _, _, g, _ in members],
                              offsets)
            entry = out.entry(keep_masks=False)
            start = 0
            for si, st, g, _ in members:
                n = len(g.obj_ids)
                rows = list(range(start, start + n))
                g.non_cond[st.frame_idx] = entry if n == entry.batch_size else _rows_view(entry, rows)
                for i, o in enumerate(g.obj_ids):
                    per_stream[si][o] = (out.pred_masks[start + i:start + i + 1],
                                         out.object_score_logits[start + i:start + i + 1])
                start += n
        return per_stream

    def _row_store(self, g: _Group, i: int) -> MemoryStore:
        """Object ``i`` of group ``g`` as a one-object store (views, no copies)."""
        return MemoryStore({t: e.row(i) for t, e in g.cond.items()},
                           {t: e.row(i) for t, e in g.non_cond.items()})

    def _prune(self, state: Sam2VideoState, t: int) -> None:
        """Keep exactly what the next frame's step reads (the one read rule; older frames are
        never read again), and at most ``max_cond_frames`` conditioning frames (the first one
        and the most recent ones)."""
        for g in state.groups:
            g.store.retain(self._plan(state, g.store, t + 1))
            while len(g.cond) > state.max_cond_frames:
                frames = list(g.cond)
                del g.cond[sorted(frames)[1]]  # keep the initial prompt and the most recent ones


def _rows_view(entry: MemoryEntry, rows: List[int]) -> MemoryEntry:
    """Consecutive batch ``rows`` of ``entry`` as views."""
    lo, hi = rows[0], rows[-1] + 1
    return MemoryEntry(**{n: (None if getattr(entry, n) is None else getattr(entry, n)[lo:hi])
                          for n in MemoryEntry._TENSORS})


__all__ = ["Sam2VideoState", "Sam2VideoFramePrediction", "StreamingTracker", "iter_frames",
           "preprocess_frame", "NO_OBJ_SCORE"]
