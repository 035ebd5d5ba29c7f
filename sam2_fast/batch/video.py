"""One video of a batch: load its model (once per group), track it with the streaming engine,
write its outputs into a hidden staging folder and publish it with one rename
(:func:`process_video`)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..io.pipeline import prefetch
from .manifest import VideoJob

DONE_MARKER = "DONE"
_PARTIAL = ".partial-"
# Fault injection for the crash-recovery tests: "ID:FRAME:MARKER[;ID:FRAME:MARKER...]" makes the
# process that tracks video ID exit at once (os._exit(77), like a killed worker) before frame
# FRAME, if the file MARKER does not exist yet (it is created first: only the first attempt dies).
FAULT_ENV = "SAM2_FAST_BATCH_FAULT"

PathLike = Union[str, os.PathLike]


@dataclass
class VideoResult:
    """The outcome of one video.

    Attributes:
        id, line: the manifest id and line number.
        status: ``"done"``, ``"failed"``, ``"skipped"`` (already done) or ``"invalid"``.
        frames: frames written (0 unless done).
        wall_s: seconds from the start of the video to its commit (model loading excluded).
        tracking_s: seconds in the frame loop (decode + track + write).
        error: ``"Type: message"`` for failed/invalid videos.
        traceback: for unexpected exception types (not ValueError/RuntimeError/OSError).
        worker: ``host:pid`` that ran it.
        notes: what the attempt found, e.g. ``"removed 1 partial folder of an earlier
            attempt"``, ``"worker restarted by Ray"``.
    """

    id: Optional[str]
    line: int
    status: str
    frames: int = 0
    wall_s: float = 0.0
    tracking_s: float = 0.0
    error: Optional[str] = None
    traceback: Optional[str] = None
    worker: Optional[str] = None
    notes: List[str] = field(default_factory=list)

    def status_record(self, run_id: str) -> dict:
        rec = {"id": self.id, "line": self.line, "status": self.status, "frames": self.frames,
               "wall_s": round(self.wall_s, 3), "tracking_s": round(self.tracking_s, 3),
               "fps": round(self.frames / self.tracking_s, 3) if self.tracking_s > 0 else None,
               "error": self.error, "worker": self.worker, "run": run_id,
               "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if self.traceback:
            rec["traceback"] = self.traceback
        if self.notes:
            rec["notes"] = self.notes
        return rec


# ============================================================================ models
@dataclass(frozen=True)
class ModelSpec:
    """What a worker loads: ``model`` (published name or absolute checkpoint path), ``config``
    (forced config name or None = detect), ``image_size`` (None = the config's), ``device``
    (None = CUDA if available), ``dtype``, ``backend``."""

    model: str
    config: Optional[str] = None
    image_size: Optional[int] = None
    device: Optional[str] = None
    dtype: str = "float32"
    backend: str = "auto"


class _LoadedModel:
    """A :class:`sam2_fast.Sam2` built from ``spec`` (a published name is fetched into the cache
    first) and ``info``: what run.json records about it. Raises what ``build_sam2`` /
    ``hub.fetch_checkpoint`` raise."""

    def __init__(self, spec: ModelSpec) -> None:
        from .. import hub
        from ..api import Sam2
        from ..build import build_sam2
        from ..cli import inspect_checkpoint

        path = Path(spec.model) if os.path.isabs(spec.model) else hub.fetch_checkpoint(spec.model, progress=False)
        model = build_sam2(spec.config, str(path), device=spec.device, dtype=spec.dtype,
                           image_size=spec.image_size, backend=spec.backend)
        self.sam = Sam2(model)
        self.spec = spec
        self.info = {"checkpoint": str(path), "config": model.config.name,
                     "image_size": model.image_size, "device": str(model.device),
                     "dtype": spec.dtype, "backend": spec.backend,
                     "random_weights": bool(inspect_checkpoint(path).random_weights)}


class _ModelCache:
    """Keeps the last loaded model (videos arrive grouped by model, so each loads once)."""

    def __init__(self) -> None:
        self._spec: Optional[ModelSpec] = None
        self._model: Optional[_LoadedModel] = None
        self._error: Optional[str] = None

    def get(self, spec: ModelSpec) -> _LoadedModel:
        if spec != self._spec:
            self._model = None
            self._error = None
            _free_device_memory()
            self._spec = spec
            try:
                self._model = _LoadedModel(spec)
            except Exception as e:  # noqa: BLE001 - every video of this model reports it
                self._error = f"cannot load model {spec.model}: {_one_line(e)}"
        if self._error is not None:
            raise RuntimeError(self._error)
        return self._model


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ============================================================================ one video
@dataclass(frozen=True)
class OutputOptions:
    """``format``: ``"png"`` | ``"rle"`` | ``"both"``; ``overlay``: also ``overlay.mp4``;
    ``fps``: overlay frame rate (None = the video's, or 24 for frame folders)."""

    format: str = "png"
    overlay: bool = False
    fps: Optional[float] = None


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_done(out: PathLike, video_id: str) -> bool:
    """True when ``out/<video_id>`` is a finished output (its ``DONE`` marker exists)."""
    return (Path(out) / video_id / DONE_MARKER).is_file()


def _remove_stale(out: Path, video_id: str) -> List[str]:
    """Delete partial folders of earlier attempts and an unfinished ``out/<id>``."""
    notes = []
    n = 0
    for p in out.glob(f".{video_id}{_PARTIAL}*"):
        shutil.rmtree(p, ignore_errors=True)
        n += 1
    if n:
        notes.append(f"removed {n} partial folder(s) of an earlier attempt")
    final = out / video_id
    if (final.exists() or final.is_symlink()) and not (final / DONE_MARKER).is_file():
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        else:
            final.unlink()
        notes.append(f"removed unfinished {final.name}/ (no {DONE_MARKER} marker)")
    return notes


def _commit(staging: Path, final: Path) -> bool:
    """Rename the finished staging folder to ``final``. False when another attempt finished
    first (its output is kept, this one is dropped)."""
    if (final / DONE_MARKER).is_file():
        shutil.rmtree(staging, ignore_errors=True)
        return False
    if final.exists():
        shutil.rmtree(final)
    try:
        os.rename(staging, final)
    except OSError:
        if (final / DONE_MARKER).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            return False
        raise
    return True


def _load_mask(path: str, value: Optional[int]) -> np.ndarray:
    """A mask prompt image -> (H, W) bool: pixels == value, or non-zero (palette index /
    grey level; RGB converted to grey). Raises OSError for an unreadable image, ValueError for
    a multi-channel array or a ``value`` that no pixel has (a wrong palette index would
    otherwise prompt an empty object)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.array(im if im.mode in ("P", "L", "1", "I", "I;16") else im.convert("L"))
    if arr.ndim != 2:
        raise ValueError(f"mask {path} is not a single-channel image (shape {arr.shape})")
    if value is None:
        return arr != 0
    m = arr == value
    if not m.any():
        present = np.unique(arr)
        shown = ", ".join(str(int(v)) for v in present[:12]) + (", ..." if len(present) > 12 else "")
        raise ValueError(f"mask {path}: no pixel has mask_value {value} (values present: {shown})")
    return m


def _engine_prompts(frame_prompts: Dict[int, dict], frame_idx: int, frame_hw: Tuple[int, int],
                    clipped: List[dict]) -> Dict[int, dict]:
    """A manifest frame's prompts for the stream, checked by the command line's rules now that
    the frame size is known (:func:`sam2_fast.prompts.command_line_rules`: a click outside the
    frame is an error, a box crossing the border is clipped and recorded in ``clipped``)."""
    from ..prompts import command_line_rules

    out = {}
    for oid, p in frame_prompts.items():
        q = {}
        if "mask" in p:
            q["mask"] = _load_mask(p["mask"], p.get("mask_value"))
        where = f" of object {oid} on frame {frame_idx}"
        used, given = command_line_rules(p.get("points", []), p.get("labels", []),
                                         [p["box"]] if "box" in p else [], frame_hw, where,
                                         names=("points", "box"))
        if "points" in p:
            q["points"] = np.asarray(p["points"], dtype=np.float32)
            q["labels"] = np.asarray(p["labels"], dtype=np.int32)
        if "box" in p:
            q["box"] = np.asarray(used[0], dtype=np.float32)
            if given[0] is not None:
                clipped.append({"obj_id": oid, "frame": frame_idx, "given": list(given[0]),
                                "used": list(used[0])})
        out[oid] = q
    return out


def _fault_hook(video_id: str) -> Optional[Callable[[int], None]]:
    for spec in filter(None, os.environ.get(FAULT_ENV, "").split(";")):
        vid, frame, marker = spec.split(":", 2)
        if vid == video_id:
            def hook(idx: int, frame: int = int(frame), marker: str = marker) -> None:
                if idx == frame and not os.path.exists(marker):
                    Path(marker).touch()
                    os._exit(77)

            return hook
    return None


class _FrameTap:
    """Passes frames through, remembering the last one (for the overlay) and calling the
    fault hook before each."""

    def __init__(self, frames: Iterator[np.ndarray], hook: Optional[Callable[[int], None]]) -> None:
        self._frames = frames
        self._hook = hook
        self.last: Optional[np.ndarray] = None
        self.count = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for f in self._frames:
            if self._hook is not None:
                self._hook(self.count)
            self.last = f
            self.count += 1
            yield f


class _LazyWriter:
    """A :class:`~sam2_fast.io.video_output.FrameOutputWriter` made at the first frame (whose
    size it takes), writing the layout of ``sam2-fast video`` into the staging folder."""

    def __init__(self, staging: Path, src, opts: OutputOptions, note: Optional[str]) -> None:
        self.staging, self.src, self.opts, self.note = staging, src, opts, note
        self._w = None
        self.clipped_boxes: List[dict] = []
        self.size: Optional[Tuple[int, int]] = None

    def _names(self, idx: int) -> str:
        return self.src.frame_name(idx)

    def write(self, idx: int, frame: np.ndarray, pred) -> None:
        if self._w is None:
            from ..io.video_output import FrameOutputWriter, OutputOptions as IoOptions

            h, w = frame.shape[:2]
            self.size = (h, w)
            io_opts = IoOptions(self.opts.format,
                                self.staging / "overlay.mp4" if self.opts.overlay else None,
                                self.opts.fps or self.src.fps or 24.0)
            self._w = FrameOutputWriter(self.staging, w, h, self._names, io_opts, self.note)
        self._w.write(idx, frame, pred)

    @property
    def frames(self) -> int:
        return 0 if self._w is None else self._w.frames

    @property
    def first(self) -> Optional[int]:
        return None if self._w is None else self._w.first

    @property
    def last(self) -> Optional[int]:
        return None if self._w is None else self._w.last

    def close(self) -> None:
        if self._w is not None:
            self._w.close()

    def abort(self) -> None:
        if self._w is not None:
            self._w.abort()


def _prompt_records(job: VideoJob):
    if job.prompts == "auto":
        return "auto"
    recs = []
    for frame in sorted(job.prompts):
        for oid in sorted(job.prompts[frame]):
            p = job.prompts[frame][oid]
            recs.append({"obj_id": oid, "frame": frame, "points": p.get("points", []),
                         "labels": p.get("labels", []), "box": p.get("box"),
                         **({"mask": p["mask"]} if "mask" in p else {}),
                         **({"mask_value": p["mask_value"]} if p.get("mask_value") is not None else {})})
    return recs


def _track(job: VideoJob, lm: _LoadedModel, staging: Path, opts: OutputOptions,
           on_frame: Optional[Callable[[], None]]) -> Tuple[_LazyWriter, float]:
    """Track ``job`` into ``staging``. Returns (writer, tracking seconds). Raises on any error."""
    from ..io.masks import RANDOM_WEIGHTS_NOTE
    from ..io.sources import iter_source_frames, open_video

    src = open_video(job.video)  # frames turned upright (EXIF, video rotation) as the CLI
    note = RANDOM_WEIGHTS_NOTE if lm.info["random_weights"] else None
    writer = _LazyWriter(staging, src, opts, note)
    sam = lm.sam
    hook = _fault_hook(job.id)
    t0 = time.perf_counter()
    auto = job.prompts == "auto"
    start = 0 if auto else min(job.prompts)
    stop = None if job.max_frames is None else start + job.max_frames
    n = src.num_frames  # the video's length bounds the object-pointer window, as offline
    state = sam.new_video_state(n if n is not None and n > 0 else None)
    frames = prefetch(iter_source_frames(src, 0, None if stop is None else stop - 1), depth=4,
                      name="sam2-fast-batch-decode")
    tap = _FrameTap(frames, hook)
    try:
        if auto:
            kw = {} if job.max_objects is None else {"max_objects": job.max_objects}
            if job.amg:
                from ..predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator

                kw["mask_generator"] = Sam2AutomaticMaskGenerator(sam.model, **job.amg)
            for pred in sam.track(tap, prompts="auto", state=state, **kw):
                writer.write(tap.count - 1, tap.last, pred)
                if on_frame is not None:
                    on_frame()
        else:
            pending = dict(job.prompts)
            for idx, frame in enumerate(tap):
                if idx < start:
                    continue
                p = pending.pop(idx, None)
                p = _engine_prompts(p, idx, frame.shape[:2], writer.clipped_boxes) if p else None
                pred = sam.predict_video_frame(state, frame, p)
                writer.write(idx, frame, pred)
                if on_frame is not None:
                    on_frame()
            if pending:
                raise ValueError(f"prompt frame {min(pending)} is past the end: {job.video} has "
                                 f"{tap.count} frames (0..{tap.count - 1})")
        if writer.frames == 0:
            raise ValueError(f"{job.video} gave no frames to track")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        frames.close()
    return writer, time.perf_counter() - t0


def process_video(job: VideoJob, model: _LoadedModel, out: PathLike, opts: OutputOptions,
                  on_frame: Optional[Callable[[], None]] = None) -> VideoResult:
    """Track one video and commit its outputs to ``out/<job.id>`` (layout and commit protocol:
    :mod:`sam2_fast.batch`).

    Never raises for a failing video: any exception (unreadable video, prompt outside the
    frame, out of memory...) is returned as a ``"failed"`` :class:`VideoResult` and its partial
    output is deleted. ``KeyboardInterrupt``/``SystemExit`` propagate (partial output deleted).
    """
    out = Path(out)
    t0 = time.perf_counter()
    if is_done(out, job.id):
        return VideoResult(job.id, job.line, "skipped", worker=_worker_name())
    res = VideoResult(job.id, job.line, "failed", worker=_worker_name())
    staging = None
    try:
        res.notes = _remove_stale(out, job.id)
        staging = Path(tempfile.mkdtemp(prefix=f".{job.id}{_PARTIAL}", dir=out))
        writer, track_s = _track(job, model, staging, opts, on_frame)
        from ..io.masks import save_json

        info = model.info
        run = {"command": "batch", "id": job.id, "manifest_line": job.line, "video": job.video,
               **{k: info[k] for k in ("checkpoint", "config", "image_size", "device", "dtype",
                                       "backend", "random_weights")},
               "backend_requested": model.spec.backend, "sample": False,
               "engine": "streaming", "complete": True,
               "cuda_graphs": model.sam.graph_stats if model.sam.model.device.type == "cuda" else None,
               "frames": [writer.first, writer.last], "reverse": False,
               "width": writer.src.width, "height": writer.src.height,
               **writer.src.orientation_record(), "clipped_boxes": writer.clipped_boxes,
               "num_frames_written": writer.frames, "format": opts.format,
               "overlay": "overlay.mp4" if opts.overlay else None,
               "prompts": _prompt_records(job), "max_frames": job.max_frames,
               "max_objects": job.max_objects, "amg": job.amg,
               "wall_s": round(time.perf_counter() - t0, 3), "tracking_s": round(track_s, 3),
               "frames_per_s": round(writer.frames / track_s, 3) if track_s > 0 else None,
               "worker": res.worker}
        if writer.note:
            run["note"] = writer.note
        save_json(staging / "run.json", run)
        save_json(staging / DONE_MARKER, {"id": job.id, "frames": writer.frames,
                                          "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        if not _commit(staging, out / job.id):
            res.notes.append("another attempt finished first; its output was kept")
        staging = None
        res.status, res.frames, res.tracking_s = "done", writer.frames, track_s
    except Exception as e:  # noqa: BLE001 - a failing video is recorded and the batch goes on
        res.error = _one_line(e)
        if not isinstance(e, (ValueError, RuntimeError, OSError)):
            res.traceback = traceback.format_exc()
        _free_device_memory()
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    res.wall_s = time.perf_counter() - t0
    return res
