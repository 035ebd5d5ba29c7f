"""Streaming video tracking: frames arrive one at a time, prompts on any frame, all objects of a
frame in one batch, and a memory bank that stays the same size over an unbounded stream.

The maths is the official SAM 2 tracking step (``SAM2Base.track_step`` via
:class:`sam2_fast.model.tracking.Sam2TrackingMixin`) with the bookkeeping of the official
``SAM2VideoPredictor`` (``add_new_points_or_box`` + ``propagate_in_video``): on a stream whose
prompts all come on the first frame, the masks and object scores equal
``Sam2VideoPredictor.propagate_in_video``'s frame by frame (tests/test_streaming.py).

Memory bank (:class:`Sam2VideoState`), per *group* of objects:

* objects that received their first prompt on the same frame form one group and are batched
  through memory attention, the mask decoder and the memory encoder (their memory banks have
  the same frame layout, so one ``track_step`` serves them all); the image encoder runs once
  per frame for every group;
* several streams (``Sam2.predict_video_frames``): one image-encoder batch for all frames, and
  groups of different streams whose layouts match relative to their current frames (streams
  prompted alike) share one tracking batch (B streams x N objects);
* conditioning memories: the frames where the group's objects were first prompted (and
  corrections when ``add_all_frames_to_correct_as_cond``), at most ``max_cond_frames`` of
  them; beyond that the oldest one after the first is dropped (policy: keep the initial prompt
  and the most recent prompts);
* non-conditioning memories: spatial memories of the last ``num_maskmem - 1`` (6) frames and
  object pointers of the last ``max_obj_ptrs_in_encoder - 1`` (15) frames; everything older is
  dropped. Nothing else is kept (no per-frame outputs), so host and device memory stay flat.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import NO_OBJ_SCORE, PIXEL_MEAN, PIXEL_STD
from ..io import av_errors
from ..io.frames import _normalize, _preprocess_pil
from ..model.sam2_model import Sam2Model
from .video import _CatBank, fill_holes_in_mask_scores

DEFAULT_MAX_COND_FRAMES = 16


# ----------------------------------------------------------------------------- frames
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
        x = frame.to(device).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False,
                          antialias=True).clamp(0, 255).round() / 255.0
        mean = torch.tensor(PIXEL_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD, device=x.device).view(1, 3, 1, 1)
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
    """Yield (H, W, 3) uint8 RGB frames from any frame source.

    ``source``: a video file path or URL (``rtsp://``, ``http://``...) decoded with PyAV; an
    open ``av`` container; an int camera index (needs OpenCV, ``pip install opencv-python``);
    a folder of numbered JPEG/PNG frames; or any iterable of frames (arrays / PIL images) —
    passed through.

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

            for p in list_frame_files(s):
                with Image.open(p) as img:
                    yield np.asarray(img.convert("RGB"))
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
@dataclass
class _Group:
    """Objects that share one memory-bank layout (first prompted on the same frame)."""

    obj_ids: List[Any]
    cond: Dict[int, dict] = field(default_factory=dict)
    non_cond: Dict[int, dict] = field(default_factory=dict)

    def output_dict(self) -> dict:
        return {"cond_frame_outputs": self.cond, "non_cond_frame_outputs": self.non_cond}

    def select(self, rows: List[int]) -> None:
        """Keep only batch rows ``rows`` in every stored tensor (object removal)."""
        self.cond = _copy_rows(self.cond, rows)
        self.non_cond = _copy_rows(self.non_cond, rows)


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

    @property
    def obj_ids(self) -> List[Any]:
        return [o for g in self.groups for o in g.obj_ids]

    def _group_of(self, obj_id):
        for g in self.groups:
            if obj_id in g.obj_ids:
                return g
        return None

    def remove_object(self, obj_id) -> None:
        """Stop tracking ``obj_id`` (its id cannot be reused in this stream).
        Raises ValueError for an unknown id."""
        g = self._group_of(obj_id)
        if g is None:
            raise ValueError(f"unknown obj_id {obj_id!r}; tracked: {self.obj_ids}")
        keep = [i for i, o in enumerate(g.obj_ids) if o != obj_id]
        if keep:
            g.select(keep)
            g.obj_ids = [g.obj_ids[i] for i in keep]
        else:
            self.groups.remove(g)
        self.removed_ids.add(obj_id)

    def nbytes(self) -> int:
        """Bytes of every tensor the state holds (host and device)."""
        seen, total = set(), 0

        def add(t):
            nonlocal total
            if isinstance(t, torch.Tensor) and id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()

        for g in self.groups:
            for bank in (g.cond, g.non_cond):
                for out in bank.values():
                    for v in out.values():
                        if isinstance(v, list):
                            for p in v:
                                add(p)
                        else:
                            add(v)
        return total


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


def _copy_rows(bank: Dict[int, dict], rows: List[int]) -> Dict[int, dict]:
    """A copy of a memory bank holding only batch rows ``rows``."""
    out_bank = {}
    for t, out in bank.items():
        new = {}
        for k, v in out.items():
            if isinstance(v, torch.Tensor):
                new[k] = v[torch.tensor(rows, device=v.device)]
            elif isinstance(v, list):
                new[k] = [p[torch.tensor(rows, device=p.device)] for p in v]
            else:
                new[k] = v
        out_bank[t] = new
    return out_bank


# ----------------------------------------------------------------------------- prompts
def _parse_prompt(obj_id, p: dict, state: Sam2VideoState, S: int, h: int, w: int, device) -> dict:
    from ..prompts import stream_prompt  # the one set of prompt rules

    kind, *val = stream_prompt(obj_id, p, (h, w), S)
    fi = p.get("frame_idx")
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
    """Runs one frame of one :class:`Sam2VideoState` through a :class:`Sam2Model`.
    Used by :class:`sam2_fast.Sam2`; see :meth:`sam2_fast.Sam2.predict_video_frame`."""

    def __init__(self, model: Sam2Model) -> None:
        self.model = model

    def new_state(self, num_frames: Optional[int] = None, max_cond_frames: int = DEFAULT_MAX_COND_FRAMES,
                  fill_hole_area: int = 8, non_overlap_masks: bool = False,
                  add_all_frames_to_correct_as_cond: bool = False) -> Sam2VideoState:
        """A new empty stream; see :meth:`sam2_fast.Sam2.new_video_state` for the arguments.
        Raises ValueError for a bad argument."""
        if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 1):
            raise ValueError(f"num_frames must be a positive int or None, got {num_frames!r}")
        if not isinstance(max_cond_frames, int) or max_cond_frames < 1:
            raise ValueError(f"max_cond_frames must be a positive int, got {max_cond_frames!r}")
        if fill_hole_area < 0:
            raise ValueError(f"fill_hole_area must be >= 0, got {fill_hole_area}")
        return Sam2VideoState(num_frames, max_cond_frames, int(fill_hole_area), non_overlap_masks,
                              add_all_frames_to_correct_as_cond)

    # -- helpers --------------------------------------------------------------
    def _features(self, backbone_out: dict, rows: int):
        exp = {"backbone_fpn": [f.expand(rows, -1, -1, -1) for f in backbone_out["backbone_fpn"]],
               "vision_pos_enc": [p.expand(rows, -1, -1, -1) for p in backbone_out["vision_pos_enc"]]}
        _, feats, pos, sizes = self.model._prepare_backbone_features(exp)
        return feats, pos, sizes

    def _fill(self, state: Sam2VideoState, low_res: torch.Tensor) -> torch.Tensor:
        low_res = low_res.float()
        return fill_holes_in_mask_scores(low_res, state.fill_hole_area) if state.fill_hole_area > 0 else low_res

    def _num_frames(self, state: Sam2VideoState) -> int:
        # an unbounded stream: enough frames for the full pointer window (like any video of
        # >= max_obj_ptrs_in_encoder frames offline)
        return state.num_frames if state.num_frames is not None else 1 << 30

    def _prompt_step(self, state, t, backbone_out, prompt, is_init, prev_logits, reverse=False):
        """Official ``add_new_points_or_box`` / ``add_new_mask`` maths for one object: returns the
        track_step output (no memory yet)."""
        m = self.model
        feats, pos, sizes = self._features(backbone_out, 1)
        return m.track_step(frame_idx=t, is_init_cond_frame=is_init, current_vision_feats=feats,
                            current_vision_pos_embeds=pos, feat_sizes=sizes,
                            point_inputs=prompt.get("points"), mask_inputs=prompt.get("mask"),
                            output_dict=prompt["_bank"], num_frames=self._num_frames(state),
                            track_in_reverse=reverse, run_mem_encoder=False,
                            prev_sam_mask_logits=prev_logits)

    def _encode_prompted(self, backbone_out, filled_low_res, obj_scores):
        """Memory of prompted frames as the official ``propagate_in_video_preflight``: the
        (hole-filled) low-res masks upsampled to the input size, binarized."""
        m = self.model
        feats, _, sizes = self._features(backbone_out, filled_low_res.shape[0])
        high = F.interpolate(filled_low_res, size=(m.image_size, m.image_size), mode="bilinear",
                             align_corners=False)
        return m._encode_new_memory(feats, sizes, high, obj_scores, is_mask_from_pts=True)

    # -- one frame --------------------------------------------------------------
    def prepare(self, state: Sam2VideoState, frame, prompts: Optional[Dict[Any, dict]]):
        """Validate a frame and its prompts without touching the state; returns
        (image (1, 3, S, S), h, w, parsed prompts). Raises ValueError (see ``step``)."""
        m = self.model
        S = m.image_size
        img, h, w = preprocess_frame(frame, S, m.device, m.dtype)
        if state.video_size is not None and (h, w) != state.video_size:
            raise ValueError(f"frame {state.frame_idx} is {h}x{w} but the stream's frames are "
                             f"{state.video_size[0]}x{state.video_size[1]}; resize frames before "
                             "feeding them (the stream never resizes silently)")
        if prompts is not None and not isinstance(prompts, dict):
            raise ValueError("prompts must be a dict {obj_id: {points, labels, box, mask}}")
        parsed = {oid: _parse_prompt(oid, p, state, S, h, w, m.device) for oid, p in (prompts or {}).items()}
        if not state.obj_ids and not parsed:
            raise ValueError("the first frame of a stream needs prompts (points, a box or a mask) "
                             "for at least one object")
        return img, h, w, parsed

    @torch.inference_mode()
    def step(self, state: Sam2VideoState, frame, prompts: Optional[Dict[Any, dict]] = None
             ) -> Sam2VideoFramePrediction:
        """Track every object of ``state`` on the next frame (prompts applied first)."""
        img, h, w, parsed = self.prepare(state, frame, prompts)
        return self.run(state, self.model.forward_image(img), h, w, parsed)

    @torch.inference_mode()
    def step_many(self, states: Sequence[Sam2VideoState], frames: Sequence,
                  prompts: Optional[Sequence[Optional[Dict[Any, dict]]]] = None
                  ) -> List[Sam2VideoFramePrediction]:
        """One frame for each of several independent streams: the image encoder runs once on
        the batch of frames, then each stream tracks its objects."""
        if len(states) != len(frames) or (prompts is not None and len(prompts) != len(states)):
            raise ValueError("states, frames and prompts must have the same length")
        if len({id(s) for s in states}) != len(states):
            raise ValueError("each stream can appear only once per step_many call")
        preps = [self.prepare(s, f, None if prompts is None else prompts[i])
                 for i, (s, f) in enumerate(zip(states, frames))]
        bo = self.model.forward_image(torch.cat([p[0] for p in preps]))
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
        m = self.model
        tracked_ids = set(state.obj_ids)
        t = state.frame_idx
        state.video_size = (h, w)
        results: Dict[Any, tuple] = {}  # obj_id -> (filled low-res (1,1,h4,w4), score (1,1))

        # 1) existing groups: one batched tracking step each
        for g in list(state.groups):
            ids_before = list(g.obj_ids)
            B = len(ids_before)
            feats, pos, sizes = self._features(backbone_out, B)
            out = m.track_step(frame_idx=t, is_init_cond_frame=False, current_vision_feats=feats,
                               current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=None,
                               mask_inputs=None, output_dict=g.output_dict(),
                               num_frames=self._num_frames(state), run_mem_encoder=True)
            filled = self._fill(state, out["pred_masks"])
            corrected = [i for i, o in enumerate(g.obj_ids) if o in parsed]
            mem_f, mem_p = out["maskmem_features"], out["maskmem_pos_enc"]
            ptr, score = out["obj_ptr"], out["object_score_logits"]
            if corrected:
                # correction prompts on a tracked frame: official add_new_points_or_box with the
                # tracked logits as prev mask, memory re-encoded from the corrected mask
                mem_f, mem_p = mem_f.clone(), [p.clone() for p in mem_p]
                ptr, score, filled = ptr.clone(), score.clone(), filled.clone()
                for i in corrected:
                    pr = dict(parsed[g.obj_ids[i]])
                    pr["_bank"] = self._row_bank(g, i)
                    prev = torch.clamp(filled[i:i + 1], -32.0, 32.0) if "points" in pr else None
                    c = self._prompt_step(state, t, backbone_out, pr, False, prev)
                    cf = self._fill(state, c["pred_masks"])
                    f1, p1 = self._encode_prompted(backbone_out, cf, c["object_score_logits"])
                    mem_f[i:i + 1], ptr[i:i + 1] = f1, c["obj_ptr"]
                    score[i:i + 1], filled[i:i + 1] = c["object_score_logits"], cf
                    for a, b in zip(mem_p, p1):
                        a[i:i + 1] = b
            entry = {"maskmem_features": mem_f, "maskmem_pos_enc": mem_p, "obj_ptr": ptr,
                     "object_score_logits": score}
            if corrected and state.add_all_frames_to_correct_as_cond:
                if len(corrected) < B:  # the corrected objects get their own history from now on
                    rest = [i for i in range(B) if i not in corrected]
                    ng = _Group([g.obj_ids[i] for i in corrected], _copy_rows(g.cond, corrected),
                                _copy_rows(g.non_cond, corrected))
                    ng.cond[t] = _copy_rows({t: entry}, corrected)[t]
                    g.select(rest)
                    g.obj_ids = [g.obj_ids[i] for i in rest]
                    g.non_cond[t] = _copy_rows({t: entry}, rest)[t]
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
            outs = []
            for o in new_ids:
                pr = dict(parsed[o])
                pr["_bank"] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
                outs.append(self._prompt_step(state, t, backbone_out, pr, True, None))
            filled = torch.cat([self._fill(state, c["pred_masks"]) for c in outs])
            scores = torch.cat([c["object_score_logits"] for c in outs])
            mem_f, mem_p = self._encode_prompted(backbone_out, filled, scores)
            g = _Group(list(new_ids))
            g.cond[t] = {"maskmem_features": mem_f, "maskmem_pos_enc": mem_p,
                         "obj_ptr": torch.cat([c["obj_ptr"] for c in outs]), "object_score_logits": scores}
            state.groups.append(g)
            for i, o in enumerate(new_ids):
                results[o] = (filled[i:i + 1], scores[i:i + 1])

        return self._finish(state, results, h, w)

    def _finish(self, state: Sam2VideoState, results: Dict[Any, tuple], h: int, w: int
                ) -> Sam2VideoFramePrediction:
        """Prune the bank, advance the stream, and assemble the frame's prediction."""
        t = state.frame_idx
        self._prune(state, t)
        state.frame_idx = t + 1
        ids = state.obj_ids
        low = torch.cat([results[o][0] for o in ids])
        scores = torch.cat([results[o][1] for o in ids]).float()
        logits = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        if state.non_overlap_masks:
            logits = self.model._apply_non_overlapping_constraints(logits)
        return Sam2VideoFramePrediction(t, ids, logits, logits > 0, scores)

    def _track_across_streams(self, items: List[tuple]) -> List[Dict[Any, tuple]]:
        """Track the groups of several prompt-free streams; groups whose memory layouts match
        relative to their streams' current frames (e.g. streams prompted alike) run as one
        batch. ``items``: [(state, backbone_out)]. Returns per-stream results
        {obj_id: (filled low-res, score)}; the banks are updated as in :meth:`run`."""
        m = self.model
        batches: Dict[tuple, List[tuple]] = {}
        for si, (state, bo) in enumerate(items):
            t = state.frame_idx
            for g in state.groups:
                key = (tuple(f - t for f in g.cond), tuple(f - t for f in g.non_cond),
                       state.num_frames, state.fill_hole_area)
                batches.setdefault(key, []).append((si, state, g, bo))
        per_stream: List[Dict[Any, tuple]] = [{} for _ in items]
        for members in batches.values():
            T = max(st.frame_idx for _, st, _, _ in members)  # a common frame index
            rekeyed = [{f - st.frame_idx + T: o for f, o in bank.items()}
                       for _, st, g, _ in members for bank in (g.cond, g.non_cond)]
            bank = {"cond_frame_outputs": _CatBank(rekeyed[0::2]),
                    "non_cond_frame_outputs": _CatBank(rekeyed[1::2])}
            rows = [len(g.obj_ids) for _, _, g, _ in members]
            feats_pos = [self._features(bo, n) for (_, _, _, bo), n in zip(members, rows)]
            feats = [torch.cat(level, dim=1) for level in zip(*(fp[0] for fp in feats_pos))]
            pos = [torch.cat(level, dim=1) for level in zip(*(fp[1] for fp in feats_pos))]
            out = m.track_step(frame_idx=T, is_init_cond_frame=False, current_vision_feats=feats,
                               current_vision_pos_embeds=pos, feat_sizes=feats_pos[0][2],
                               point_inputs=None, mask_inputs=None, output_dict=bank,
                               num_frames=self._num_frames(members[0][1]), run_mem_encoder=True)
            filled = self._fill(members[0][1], out["pred_masks"])
            start = 0
            for (si, st, g, _), n in zip(members, rows):
                sl = slice(start, start + n)
                g.non_cond[st.frame_idx] = {
                    "maskmem_features": out["maskmem_features"][sl],
                    "maskmem_pos_enc": [p[sl] for p in out["maskmem_pos_enc"]],
                    "obj_ptr": out["obj_ptr"][sl], "object_score_logits": out["object_score_logits"][sl]}
                for i, o in enumerate(g.obj_ids):
                    per_stream[si][o] = (filled[start + i:start + i + 1],
                                         out["object_score_logits"][start + i:start + i + 1])
                start += n
        return per_stream

    def _row_bank(self, g: _Group, i: int) -> dict:
        """Object ``i`` of group ``g`` as a one-object memory bank (views, no copies)."""
        def row(out):
            r = {k: (v[i:i + 1] if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
            if out.get("maskmem_pos_enc") is not None:
                r["maskmem_pos_enc"] = [p[i:i + 1] for p in out["maskmem_pos_enc"]]
            return r
        return {"cond_frame_outputs": {t: row(o) for t, o in g.cond.items()},
                "non_cond_frame_outputs": {t: row(o) for t, o in g.non_cond.items()}}

    def _prune(self, state: Sam2VideoState, t: int) -> None:
        """Drop what the next frames can no longer attend to (module docstring)."""
        cfg = self.model.config
        spatial_keep = self.model.num_maskmem - 1  # frames t-5..t are read at t+1
        ptr_keep = cfg.max_obj_ptrs_in_encoder - 1  # pointers of t-14..t are read at t+1
        for g in state.groups:
            for f in list(g.non_cond):
                if f <= t - ptr_keep:
                    del g.non_cond[f]
                elif f <= t - spatial_keep and g.non_cond[f].get("maskmem_features") is not None:
                    g.non_cond[f] = {"maskmem_features": None, "maskmem_pos_enc": None,
                                     "obj_ptr": g.non_cond[f]["obj_ptr"],
                                     "object_score_logits": g.non_cond[f]["object_score_logits"]}
            while len(g.cond) > state.max_cond_frames:
                frames = sorted(g.cond)
                del g.cond[frames[1]]  # keep the initial prompt and the most recent ones


__all__ = ["Sam2VideoState", "Sam2VideoFramePrediction", "StreamingTracker", "iter_frames",
           "preprocess_frame", "NO_OBJ_SCORE"]
