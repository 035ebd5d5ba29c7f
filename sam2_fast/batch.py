"""Many videos: :func:`run_batch` tracks every video of a JSON-lines manifest, in this process
(``executor="local"``) or on a Ray cluster (``executor="ray"``); ``sam2-fast batch`` is its
command line.

The manifest (one JSON object per line, described by ``schemas/batch_manifest.schema.json``,
shipped in the package, see :data:`SCHEMA_PATH`)::

    {"id": "cat", "video": "videos/cat.mp4", "prompts": {"0": {"1": {"points": [[210, 350]]}}}}
    {"id": "dog", "video": "frames/dog", "prompts": {"0": {"1": {"box": [10, 20, 200, 220]}},
                                                     "30": {"2": {"mask": "dog_ball.png"}}}}
    {"id": "street", "video": "street.mkv", "prompts": "auto", "max_objects": 8, "model": "sam2.1_hiera_small"}

Every line is checked before any video runs (:func:`load_manifest`); a bad line is reported
with its line number and nothing runs unless ``skip_invalid``.

Each video goes through the streaming engine's public API (:class:`sam2_fast.Sam2`:
``new_video_state`` + ``predict_video_frame`` on frames from :func:`sam2_fast.iter_frames`,
PyAV for video files and Pillow for frame folders; ``Sam2.track(prompts="auto")`` for
``"auto"``). Its outputs, ``OUT/<id>/``, have the layout of ``sam2-fast video``: one DAVIS
palette PNG per tracked frame named like the frame (``00000.png`` ... for a video file), the
COCO-RLE JSON per frame with ``format="rle"``/``"both"``, ``run.json``, ``overlay.mp4`` with
``overlay=True``, and a ``DONE`` marker. They are written into a hidden folder
``OUT/.<id>.partial-XXXX`` and that folder is renamed to ``OUT/<id>`` after ``DONE`` was
written in it, so ``OUT/<id>`` holds either a finished video or (when a user deleted ``DONE``)
something that the next run replaces: a video counts as done only when ``OUT/<id>/DONE``
exists, and a re-run skips exactly those. An attempt that died (process killed, machine lost)
leaves only its hidden partial folder, which the next attempt of that id deletes.

Each finished or failed video appends one line to ``OUT/status.jsonl`` (written by the driver
only; the last line of an id is its latest state); ``OUT/summary.json`` holds the counts of the
last run. ``shard=(i, n)`` runs only the ids with ``crc32(id) % n == i`` and names those files
``status.shard-<i>-of-<n>.jsonl`` / ``summary.shard-<i>-of-<n>.json``, so independent drivers
can share one output folder.

Ray (``pip install sam2_fast[ray]``): one actor per GPU of the cluster (``workers_per_gpu``
to share a GPU; ``num_workers`` one-CPU actors when there is no GPU or ``device="cpu"``; see
:func:`ray_worker_plan`), each loading a model once per
(model, image_size) group; the videos are sent one at a time to idle actors in group order.
Actors are created with ``max_restarts=-1`` and ``max_task_retries=max_retries``: a worker that
dies is restarted by Ray and its video is run again from scratch (the dead attempt's partial
folder is never renamed into place). Workers read the videos and write the results
**directly** under ``OUT``, which must therefore be a filesystem mounted at the same path on
every node (NFS, Lustre, GPFS, CephFS...; it needs atomic ``rename``, which object-store
mounts such as s3fs lack); the driver checks that every worker sees ``OUT`` before sending work.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import traceback
import uuid
import warnings
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "batch_manifest.schema.json"
DONE_MARKER = "DONE"
EXIT_CODE_CAP = 100
_PARTIAL = ".partial-"
# Fault injection for the crash-recovery tests: "ID:FRAME:MARKER[;ID:FRAME:MARKER...]" makes the
# process that tracks video ID exit at once (os._exit(77), like a killed worker) before frame
# FRAME, if the file MARKER does not exist yet (it is created first: only the first attempt dies).
FAULT_ENV = "SAM2_FAST_BATCH_FAULT"

PathLike = Union[str, os.PathLike]


# ============================================================================ manifest
@dataclass(frozen=True)
class VideoJob:
    """One valid manifest line, paths made absolute.

    Attributes:
        line: 1-based line number in the manifest.
        id: the output folder name under ``out``.
        video: absolute path of the video file or frame folder.
        prompts: ``"auto"``, or ``{frame_index: {obj_id: prompt}}`` where a prompt is
            ``{"points": [[x, y], ...] (pixels), "labels": [1/0, ...], "box": [x0, y0, x1, y1]
            (pixels)}`` or ``{"mask": absolute path, "mask_value": int | None}``.
        model: a published model name or an absolute checkpoint path; None = the batch's.
        image_size: model input side (pixels) for this video; None = the batch's.
        max_frames: track at most this many frames from the first prompted one; None = all.
        max_objects: with ``"auto"``: at most this many objects; None = the engine's default.
    """

    line: int
    id: str
    video: str
    prompts: Union[str, Dict[int, Dict[int, dict]]]
    model: Optional[str] = None
    image_size: Optional[int] = None
    max_frames: Optional[int] = None
    max_objects: Optional[int] = None


@dataclass(frozen=True)
class ManifestError:
    """A bad manifest line: ``line`` (1-based), the ``id`` when it could be read, the message."""

    line: int
    message: str
    id: Optional[str] = None

    def __str__(self) -> str:
        who = f" (id {self.id!r})" if self.id is not None else ""
        return f"line {self.line}{who}: {self.message}"


class BatchError(RuntimeError):
    """The batch cannot run where it was asked to (Ray workers that cannot see the output
    folder, ``device="cuda"`` on a cluster without GPUs)."""


class ManifestInvalid(ValueError):
    """Raised by :func:`run_batch` when lines are bad and ``skip_invalid`` is False (nothing
    ran). ``errors`` lists every bad line."""

    def __init__(self, errors: Sequence[ManifestError], source: str = "manifest") -> None:
        self.errors = list(errors)
        self.source = source
        first = self.errors[0] if self.errors else "no error"
        super().__init__(f"{len(self.errors)} invalid line(s) in {source}, first: {first}")


def auto_prompts_supported() -> bool:
    """True when this build's :meth:`sam2_fast.Sam2.track` takes ``prompts="auto"`` (it then
    has a ``max_objects`` argument)."""
    from .api import Sam2

    return "max_objects" in inspect.signature(Sam2.track).parameters


_SCHEMA_VALIDATOR = None


def _validator():
    """The compiled schema (jsonschema-rs: a few microseconds per line, so a 100,000-line
    manifest is checked in well under a second of schema time)."""
    global _SCHEMA_VALIDATOR
    if _SCHEMA_VALIDATOR is None:
        import jsonschema_rs

        _SCHEMA_VALIDATOR = jsonschema_rs.validator_for(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    return _SCHEMA_VALIDATOR


def _where(path: Sequence[Any]) -> str:
    return "/" + "/".join(str(p) for p in path)


def _schema_at(path: Sequence[Any]) -> Any:
    node = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    for p in path:
        node = node[p]
    return node


def _schema_message(err) -> str:
    """A readable message for one schema error (descending into the anyOf of ``prompts``)."""
    path = list(err.instance_path)
    spath = [str(p) for p in err.schema_path]
    kind = type(err.kind).__name__
    inst = err.instance
    if kind == "AnyOf" and path == ["prompts"]:
        if not isinstance(inst, dict):
            return f"/prompts: must be \"auto\" or {{\"<frame>\": {{\"<obj_id>\": prompt}}}}, got {json.dumps(inst)}"
        branch = err.kind.context[1] if len(err.kind.context) > 1 else []
        return _schema_message(branch[0]) if branch else f"/prompts: {err.message}"
    if kind == "AnyOf" and len(path) == 3 and path[0] == "prompts":
        return f"{_where(path)}: give points, a box or a mask"
    if kind == "Not" and path == ["id"]:
        return f"/id: {inst!r} is reserved for the batch's own files (status..., summary..., *.partial-*)"
    if kind == "Not":
        return f"{_where(path)}: a mask cannot be combined with points or a box"
    if "propertyNames" in spath and isinstance(inst, dict):
        pattern = _schema_at(spath[:spath.index("propertyNames") + 1])["pattern"]
        key = json.dumps(next((k for k in inst if not re.fullmatch(pattern, k)), "?"))
        if len(path) == 1:
            return f"/prompts: frame key {key} must be a frame index (0, 1, 2, ...)"
        return f"{_where(path)}: object id {key} must be an integer 1..255"
    if kind == "Pattern" and path == ["id"]:
        return (f"/id: {inst!r} must be letters, digits, '_', '-', '.', not starting with '.' or "
                f"'-', at most 200 characters")
    if "dependentSchemas" in spath:
        return "/max_objects: goes with prompts \"auto\" only"
    return f"{_where(path)}: {err.message}" if path else err.message


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _resolve(base: Path, p: str) -> str:
    return os.path.abspath(os.path.join(base, os.path.expanduser(p)))  # os.path: 5x pathlib's speed


def resolve_model(model: str, base: Path) -> str:
    """A manifest/CLI model string -> an absolute checkpoint path when that file exists, else
    the canonical published name. Raises ValueError naming both readings when it is neither."""
    from . import hub

    path = _resolve(base, model)
    if os.path.isfile(path):
        return path
    try:
        return hub.canonical_name(model)
    except hub.HubError:
        raise ValueError(f"model {model!r} is neither a checkpoint file ({path} not found) nor a "
                         f"published name ({', '.join(hub.MODEL_URLS)})") from None


def _check_line(obj: dict, base: Path, default_model: Optional[str]) -> VideoJob:
    """Semantic checks of one schema-valid line -> VideoJob. Raises ValueError."""
    video = _resolve(base, obj["video"])
    if not os.path.exists(video):
        raise ValueError(f"/video: {video} does not exist")
    prompts: Union[str, Dict[int, Dict[int, dict]]]
    if obj["prompts"] == "auto":
        if not auto_prompts_supported():
            raise ValueError("/prompts: \"auto\" needs Sam2.track(prompts=\"auto\"), which this "
                             "build of sam2_fast does not have")
        prompts = "auto"
    else:
        prompts = {}
        for fkey, objs in obj["prompts"].items():
            frame = int(fkey)
            prompts[frame] = {}
            for okey, p in objs.items():
                where = f"/prompts/{fkey}/{okey}"
                q: dict = {}
                if "mask" in p:
                    mpath = _resolve(base, p["mask"])
                    if not os.path.isfile(mpath):
                        raise ValueError(f"{where}/mask: {mpath} does not exist")
                    q = {"mask": mpath, "mask_value": p.get("mask_value")}
                if "points" in p:
                    labels = p.get("labels", [1] * len(p["points"]))
                    if len(labels) != len(p["points"]):
                        raise ValueError(f"{where}: {len(p['points'])} points but {len(labels)} labels")
                    q["points"] = [[float(v) for v in xy] for xy in p["points"]]
                    q["labels"] = [int(v) for v in labels]
                if "box" in p:
                    x0, y0, x1, y1 = (float(v) for v in p["box"])
                    if x1 < x0 or y1 < y0:
                        raise ValueError(f"{where}/box: need x1 >= x0 and y1 >= y0, got {p['box']}")
                    q["box"] = [x0, y0, x1, y1]
                prompts[frame][int(okey)] = q
        frames = sorted(prompts)
        mf = obj.get("max_frames")
        if mf is not None and frames[-1] - frames[0] >= mf:
            raise ValueError(f"/prompts: frame {frames[-1]} is outside the tracked frames "
                             f"{frames[0]}..{frames[0] + mf - 1} (max_frames {mf} from the first "
                             f"prompted frame {frames[0]})")
    model = None
    if obj.get("model") is not None:
        model = resolve_model(obj["model"], base)
    elif default_model is None:
        raise ValueError("no model: give the batch a model (--checkpoint / --model) or the line a "
                         "\"model\"")
    return VideoJob(0, obj["id"], video, prompts, model, obj.get("image_size"),
                    obj.get("max_frames"), obj.get("max_objects"))


def load_manifest(manifest: Union[PathLike, Iterable[Union[dict, str]]], *,
                  default_model: Optional[str] = None, base_dir: Optional[PathLike] = None
                  ) -> Tuple[List[VideoJob], List[ManifestError]]:
    """Read and check a manifest; nothing is run or written.

    Args:
        manifest: a JSON-lines file, or an iterable of lines (JSON strings or dicts; line i of
            the iterable is line i + 1).
        default_model: the batch's model; when None every line must name its ``model``.
        base_dir: folder that relative paths are relative to (default: the manifest file's
            folder, or the current folder for an iterable).

    Returns:
        (valid jobs in manifest order, one :class:`ManifestError` per bad line). A line is bad
        when it is not JSON, not an object, breaks the schema (:data:`SCHEMA_PATH`), repeats an
        id (also ignoring case), names a missing video/mask file or an unknown model, prompts a
        frame outside its ``max_frames`` range, asks for ``"auto"`` where the engine lacks it,
        or has no model. Blank lines are skipped.

    Raises:
        OSError: the manifest file cannot be read.
    """
    if isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest)
        base = Path(base_dir) if base_dir is not None else path.absolute().parent
        with open(path, encoding="utf-8") as f:
            lines: List[Union[dict, str]] = f.read().splitlines()
    else:
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        lines = list(manifest)
    validator = _validator()
    jobs: List[VideoJob] = []
    errors: List[ManifestError] = []
    seen: Dict[str, Tuple[int, str]] = {}
    for n, raw in enumerate(lines, start=1):
        if isinstance(raw, str):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw, parse_constant=_reject_constant)
            except ValueError as e:
                errors.append(ManifestError(n, f"not valid JSON: {e}"))
                continue
        else:
            obj = raw
        if not isinstance(obj, dict):
            errors.append(ManifestError(n, f"must be a JSON object, got {type(obj).__name__}"))
            continue
        oid = obj.get("id") if isinstance(obj.get("id"), str) else None
        err = None if validator.is_valid(obj) else next(iter(validator.iter_errors(obj)))
        if err is not None:
            errors.append(ManifestError(n, _schema_message(err), oid))
            continue
        key = oid.casefold()
        if key in seen:
            ln, other = seen[key]
            same = "" if other == oid else f" ({other!r}: ids must differ beyond letter case)"
            errors.append(ManifestError(n, f"/id: {oid!r} repeats line {ln}{same}", oid))
            continue
        seen[key] = (n, oid)
        try:
            job = _check_line(obj, base, default_model)
        except ValueError as e:
            errors.append(ManifestError(n, str(e), oid))
            continue
        jobs.append(dataclasses.replace(job, line=n))
    return jobs, errors


# ============================================================================ results
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


@dataclass
class BatchSummary:
    """What :func:`run_batch` returns.

    Attributes:
        results: one :class:`VideoResult` per manifest line handled in this run (done, failed,
            skipped, invalid), in completion order.
        wall_s: the whole batch, seconds (manifest checks, model loads, all videos).
        out: the output folder; status_path / summary_path: its status log and summary.
        executor: ``"local"`` or ``"ray"``; workers: how many processes tracked videos.
    """

    results: List[VideoResult]
    wall_s: float
    out: Path
    status_path: Path
    summary_path: Path
    executor: str
    workers: int

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results if r.status == "done")

    @property
    def exit_code(self) -> int:
        """Videos without output because of an error (failed + invalid lines skipped), capped at
        :data:`EXIT_CODE_CAP` (100 means 100 or more)."""
        return min(self.count("failed") + self.count("invalid"), EXIT_CODE_CAP)

    def as_dict(self) -> dict:
        done = [r for r in self.results if r.status == "done"]
        track = sum(r.tracking_s for r in done)
        return {"done": len(done), "failed": self.count("failed"), "skipped": self.count("skipped"),
                "invalid": self.count("invalid"), "frames": self.frames,
                "wall_s": round(self.wall_s, 3), "tracking_s": round(track, 3),
                "fps_wall": round(self.frames / self.wall_s, 3) if self.wall_s > 0 else None,
                "fps_per_worker": round(self.frames / track, 3) if track > 0 else None,
                "executor": self.executor, "workers": self.workers, "exit_code": self.exit_code,
                "failed_ids": [r.id for r in self.results if r.status == "failed"]}

    def table(self, max_errors: int = 10) -> str:
        """The summary table printed by ``sam2-fast batch`` (plus the first failures)."""
        d = self.as_dict()
        rows = [("done", d["done"], d["frames"]), ("failed", d["failed"], None),
                ("skipped", d["skipped"], None), ("invalid", d["invalid"], None)]
        lines = [f"{'videos':<8} {'count':>7} {'frames':>9}"]
        lines += [f"{k:<8} {v:>7} {'' if f is None else f:>9}" for k, v, f in rows]
        fps_w = "-" if d["fps_wall"] is None else f"{d['fps_wall']:.2f}"
        fps_k = "-" if d["fps_per_worker"] is None else f"{d['fps_per_worker']:.2f}"
        lines.append(f"{d['frames']} frames in {d['wall_s']:.1f} s: {fps_w} FPS overall, "
                     f"{fps_k} FPS per worker ({self.workers} {self.executor} worker"
                     f"{'s' if self.workers != 1 else ''}); status: {self.status_path}")
        bad = [r for r in self.results if r.status in ("failed", "invalid")]
        for r in bad[:max_errors]:
            lines.append(f"  {r.status} {r.id if r.id is not None else '-'} (line {r.line}): {r.error}")
        if len(bad) > max_errors:
            lines.append(f"  ... {len(bad) - max_errors} more in {self.status_path}")
        return "\n".join(lines)


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

    def label(self) -> str:
        name = os.path.basename(self.model)
        return f"{name} @ {self.image_size or 'default'} px"


class _LoadedModel:
    def __init__(self, spec: ModelSpec) -> None:
        from . import hub
        from .api import Sam2
        from .build import build_sam2
        from .cli import inspect_checkpoint

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


@dataclass
class _Source:
    kind: str  # "folder" | "file"
    names: Optional[List[str]]
    num_frames: Optional[int]
    fps: Optional[float]


def _probe(video: str) -> _Source:
    """Frame names/count/fps of a folder or video file without decoding frames.
    Raises RuntimeError for an unreadable file, ValueError for an empty folder."""
    from .io import av_errors
    from .io.frames import list_frame_files

    if os.path.isdir(video):
        files = list_frame_files(video)
        return _Source("folder", [os.path.splitext(os.path.basename(f))[0] for f in files], len(files), None)
    import av

    try:
        with av.open(video) as c:
            if not c.streams.video:
                raise RuntimeError(f"cannot read video {video}: no video stream")
            st = c.streams.video[0]
            rate = st.average_rate or st.guessed_rate
            n = int(st.frames or 0)
    except av_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RuntimeError(f"cannot read video {video}: {msg}") from None
    return _Source("file", None, n if n > 0 else None, float(rate) if rate else None)


def _load_mask(path: str, value: Optional[int]) -> np.ndarray:
    """A mask prompt image -> (H, W) bool: pixels == value, or non-zero (palette index /
    grey level; RGB converted to grey). Raises OSError for an unreadable image."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.array(im if im.mode in ("P", "L", "1", "I", "I;16") else im.convert("L"))
    if arr.ndim != 2:
        raise ValueError(f"mask {path} is not a single-channel image (shape {arr.shape})")
    return arr == value if value is not None else arr != 0


def _engine_prompts(frame_prompts: Dict[int, dict]) -> Dict[int, dict]:
    out = {}
    for oid, p in frame_prompts.items():
        q = {}
        if "mask" in p:
            q["mask"] = _load_mask(p["mask"], p.get("mask_value"))
        if "points" in p:
            q["points"] = np.asarray(p["points"], dtype=np.float32)
            q["labels"] = np.asarray(p["labels"], dtype=np.int32)
        if "box" in p:
            q["box"] = np.asarray(p["box"], dtype=np.float32)
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


class _Writer:
    """Writes one video's per-frame outputs into its staging folder. The PNG/JSON encoding and
    the overlay run on one background thread (in frame order), overlapping the next frame's
    tracking; at most ``MAX_PENDING`` frames wait. :meth:`close` waits for them and raises the
    first error."""

    MAX_PENDING = 8

    def __init__(self, staging: Path, src: _Source, opts: OutputOptions, note: Optional[str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.staging = staging
        self.src = src
        self.opts = opts
        self.note = note
        self.video = None
        self.frames = 0
        self.first: Optional[int] = None
        self.last: Optional[int] = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2-fast-batch-write")
        self._pending: deque = deque()

    def write(self, idx: int, frame: np.ndarray, pred) -> None:
        masks = pred.masks.detach().cpu().numpy()[:, 0]
        scores = pred.object_score_logits.detach().float().cpu().numpy().reshape(-1)
        obj_ids = [int(o) for o in pred.obj_ids]
        name = self.src.names[idx] if self.src.names is not None else f"{idx:05d}"
        self._pending.append(self._pool.submit(self._files, idx, name, frame, masks, obj_ids, scores))
        while len(self._pending) > self.MAX_PENDING:
            self._pending.popleft().result()
        self.frames += 1
        self.first = idx if self.first is None else self.first
        self.last = idx

    def _files(self, idx: int, name: str, frame: np.ndarray, masks: np.ndarray, obj_ids: List[int],
               scores: np.ndarray) -> None:
        from .io.masks import (VideoWriter, combine_object_masks, overlay_masks, rle_frame_record,
                               save_json, save_palette_png)

        h, w = frame.shape[:2]
        index = combine_object_masks(masks, obj_ids) if obj_ids else np.zeros((h, w), np.uint8)
        if self.opts.format in ("png", "both"):
            save_palette_png(self.staging / f"{name}.png", index, note=self.note)
        if self.opts.format in ("rle", "both"):
            if obj_ids:
                rec = rle_frame_record(idx, obj_ids, masks, name, object_scores=scores, note=self.note)
            else:
                rec = {"frame_index": idx, "frame_name": name, "height": h, "width": w, "objects": []}
                if self.note:
                    rec["note"] = self.note
            save_json(self.staging / f"{name}.json", rec)
        if self.opts.overlay:
            if self.video is None:
                self.video = VideoWriter(self.staging / "overlay.mp4", w, h,
                                         fps=self.opts.fps or self.src.fps or 24.0,
                                         metadata={"comment": self.note} if self.note else None)
            self.video.write(overlay_masks(frame, index, banner="RANDOM WEIGHTS" if self.note else None))

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self.video is not None:
            self.video.close()

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.video is not None:
            self.video.abort()


class _End:
    pass


def _prefetch(frames: Iterator[np.ndarray], depth: int = 4) -> Iterator[np.ndarray]:
    """Decode ahead on a background thread (PyAV and Pillow release the GIL while decoding):
    yields the frames of ``frames`` in order, at most ``depth`` waiting; re-raises its error."""
    import queue

    q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for f in frames:
                if not put(f):
                    break
            else:
                put(_End)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put(e)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    t = threading.Thread(target=run, name="sam2-fast-batch-decode", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _End:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


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
           on_frame: Optional[Callable[[], None]]) -> Tuple[_Writer, float]:
    """Track ``job`` into ``staging``. Returns (writer, tracking seconds). Raises on any error."""
    from .io.masks import RANDOM_WEIGHTS_NOTE
    from .predictors.streaming import iter_frames

    src = _probe(job.video)
    note = RANDOM_WEIGHTS_NOTE if lm.info["random_weights"] else None
    writer = _Writer(staging, src, opts, note)
    sam = lm.sam
    hook = _fault_hook(job.id)
    t0 = time.perf_counter()
    auto = job.prompts == "auto"
    start = 0 if auto else min(job.prompts)
    stop = None if job.max_frames is None else start + job.max_frames
    n = src.num_frames
    if n is not None:  # the video length bounds the object-pointer window, as offline
        n = (n if stop is None else min(n, stop)) - start
    state = sam.new_video_state(n if n is not None and n > 0 else None)
    frames = _prefetch(islice(iter_frames(job.video), stop))
    tap = _FrameTap(frames, hook)
    try:
        if auto:
            kw = {} if job.max_objects is None else {"max_objects": job.max_objects}
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
                pred = sam.predict_video_frame(state, frame, _engine_prompts(p) if p else None)
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
    """Track one video and commit its outputs to ``out/<job.id>`` (see the module docstring).

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
        from .io.masks import save_json

        info = model.info
        run = {"command": "batch", "id": job.id, "manifest_line": job.line, "video": job.video,
               **{k: info[k] for k in ("checkpoint", "config", "image_size", "device", "dtype",
                                       "backend", "random_weights")},
               "engine": "streaming", "frames": [writer.first, writer.last], "reverse": False,
               "num_frames_written": writer.frames, "format": opts.format,
               "overlay": "overlay.mp4" if opts.overlay else None,
               "prompts": _prompt_records(job), "max_frames": job.max_frames,
               "max_objects": job.max_objects,
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


# ============================================================================ the driver
def _shard_of(video_id: str, n: int) -> int:
    return zlib.crc32(video_id.encode("utf-8")) % n


class _StatusLog:
    """Appends one JSON line per result (flushed at once); the driver is the only writer."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._f = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, res: VideoResult) -> None:
        line = json.dumps(res.status_record(self.run_id)) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()

    def close(self) -> None:
        self._f.close()


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm
        import sys

        self.videos = tqdm(total=total, unit="video", desc="videos", disable=not enabled,
                           file=sys.stderr, dynamic_ncols=True, position=0)
        self.frames = tqdm(unit="frame", desc="frames", disable=not enabled, file=sys.stderr,
                           dynamic_ncols=True, position=1)
        self.failed = 0

    def frame(self, n: int = 1) -> None:
        self.frames.update(n)

    def video(self, res: VideoResult, frames_counted: bool) -> None:
        if res.status == "failed":
            self.failed += 1
            self.videos.set_postfix(failed=self.failed, refresh=False)
        if not frames_counted and res.frames:
            self.frames.update(res.frames)
        self.videos.update(1)

    def close(self) -> None:
        self.frames.close()
        self.videos.close()


def _spec_for(job: VideoJob, base: ModelSpec) -> ModelSpec:
    if job.model is not None and job.model != base.model:
        spec = dataclasses.replace(base, model=job.model, config=None)
    else:
        spec = base
    if job.image_size is not None:
        spec = dataclasses.replace(spec, image_size=job.image_size)
    return spec


def run_batch(manifest: Union[PathLike, Iterable[Union[dict, str]]], out: PathLike,
              executor: str = "local", *, model: Optional[str] = None,
              config: Optional[str] = None, image_size: Optional[int] = None,
              device: Optional[str] = None, dtype: str = "float32", backend: str = "auto",
              format: str = "png", overlay: bool = False, fps: Optional[float] = None,
              skip_invalid: bool = False, shard: Optional[Tuple[int, int]] = None,
              progress: bool = True, ray_address: Optional[str] = None,
              num_workers: Optional[int] = None, workers_per_gpu: int = 1, max_retries: int = 2,
              ray_init_kwargs: Optional[dict] = None, base_dir: Optional[PathLike] = None
              ) -> BatchSummary:
    """Track every video of a manifest; the Python side of ``sam2-fast batch``.

    Args:
        manifest: a JSON-lines file or an iterable of lines (see :func:`load_manifest` and
            ``schemas/batch_manifest.schema.json``).
        out: output folder (created): ``out/<id>/`` per video, ``out/status.jsonl``,
            ``out/summary.json``.
        executor: ``"local"`` (this process, one model at a time, videos one after another)
            or ``"ray"``.
        model: the batch's model, a published name or a checkpoint path (relative to the
            current folder); the default for lines without ``model``. A line's ``model`` /
            ``image_size`` win over these.
        config: force this config for ``model`` (lines with their own model detect theirs).
        image_size: model input side in pixels (multiple of 32) for lines without one.
        device: ``"cpu"``/``"cuda"``; None = CUDA if available (Ray: one GPU per actor).
        dtype, backend: as :func:`sam2_fast.build_sam2`.
        format: ``"png"`` (palette PNG per frame), ``"rle"`` (COCO-RLE JSON) or ``"both"``.
        overlay: also write ``out/<id>/overlay.mp4``; fps: its frame rate (default: the video's).
        skip_invalid: run the valid lines even when some are bad (the bad ones are recorded
            as ``"invalid"`` in the status log and counted in the exit code).
        shard: ``(i, n)``: only ids with ``crc32(id) % n == i``; status/summary files get a
            ``.shard-<i>-of-<n>`` suffix.
        progress: tqdm bars (videos, frames) on stderr.
        ray_address: Ray cluster address (``"auto"``, ``"ray://host:10001"`` ...); None =
            ``ray.init()`` (a new local instance, or ``RAY_ADDRESS``). An already initialized
            Ray connection in this process is used as it is (and left open).
        num_workers: Ray actors: default ``workers_per_gpu`` per GPU of the cluster (at most
            this many); without GPUs (or with ``device="cpu"``) this many one-CPU actors
            (default 1; torch uses 1 thread each). See :func:`ray_worker_plan`.
        workers_per_gpu: Ray actors sharing one GPU (``num_gpus=1/k``), default 1.
        max_retries: Ray's ``max_task_retries`` per video when its worker process dies (the
            actor is restarted each time, ``max_restarts=-1``).
        ray_init_kwargs: extra ``ray.init`` arguments (e.g. ``{"num_cpus": 2}``).
        base_dir: folder that relative manifest paths are relative to (default: the
            manifest's folder).

    Returns:
        :class:`BatchSummary` (``exit_code`` = failed + invalid-skipped videos, capped at 100).

    Raises:
        ManifestInvalid: bad lines and ``skip_invalid`` is False (nothing ran, nothing written).
        ValueError: bad arguments (executor, format, shard, image_size, unknown model).
        ImportError: ``executor="ray"`` without Ray installed.
        BatchError: a Ray worker cannot see ``out`` (not a shared filesystem), or
            ``device="cuda"`` on a Ray cluster without GPUs.
        ConnectionError: no Ray cluster at ``ray_address``.
        OSError: the manifest cannot be read, ``out`` cannot be created.
    """
    t0 = time.perf_counter()
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray', got {executor!r}")
    if format not in ("png", "rle", "both"):
        raise ValueError(f"format must be 'png', 'rle' or 'both', got {format!r}")
    if image_size is not None and (image_size <= 0 or image_size % 32):
        raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
    if shard is not None:
        i, n = shard
        if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if workers_per_gpu < 1:
        raise ValueError(f"workers_per_gpu must be >= 1, got {workers_per_gpu}")
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ImportError("the Ray executor needs Ray: pip install 'sam2_fast[ray]'")
    default_model = resolve_model(model, Path.cwd()) if model is not None else None
    jobs, errors = load_manifest(manifest, default_model=default_model, base_dir=base_dir)
    src_name = os.fspath(manifest) if isinstance(manifest, (str, os.PathLike)) else "manifest"
    if errors and not skip_invalid:
        raise ManifestInvalid(errors, src_name)
    if shard is not None:
        jobs = [j for j in jobs if _shard_of(j.id, shard[1]) == shard[0]]
        errors = [e for e in errors if e.id is None or _shard_of(e.id, shard[1]) == shard[0]]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"
    status_path = out / f"status{suffix}.jsonl"
    summary_path = out / f"summary{suffix}.json"
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    log = _StatusLog(status_path, run_id)
    results: List[VideoResult] = []
    base = ModelSpec(default_model or "", config, image_size, device, dtype, backend)
    opts = OutputOptions(format, overlay, fps)
    workers = 1
    try:
        for e in errors:
            r = VideoResult(e.id, e.line, "invalid", error=e.message)
            log.write(r)
            results.append(r)
        todo = []
        for j in jobs:
            if is_done(out, j.id):
                results.append(VideoResult(j.id, j.line, "skipped"))
            else:
                todo.append(j)
        # group by model so each loads once per worker; manifest order inside a group
        groups: Dict[ModelSpec, List[VideoJob]] = {}
        for j in todo:
            groups.setdefault(_spec_for(j, base), []).append(j)
        ordered = [(spec, j) for spec, js in groups.items() for j in js]
        bar = _Progress(len(ordered), progress)
        try:
            def record(res: VideoResult, frames_counted: bool) -> None:
                log.write(res)
                results.append(res)
                bar.video(res, frames_counted)

            if executor == "local":
                _run_local(ordered, out, opts, record, bar)
            else:
                workers = _run_ray(ordered, out, opts, record, ray_address, num_workers,
                                   workers_per_gpu, max_retries, device, dict(ray_init_kwargs or {}))
        finally:
            bar.close()
    finally:
        log.close()
    summary = BatchSummary(results, time.perf_counter() - t0, out, status_path, summary_path,
                           executor, workers)
    from .io.masks import save_json

    save_json(summary_path, {"run": run_id, **summary.as_dict()})
    return summary


def _run_local(ordered, out: Path, opts: OutputOptions, record, bar: _Progress) -> None:
    cache = _ModelCache()
    for spec, job in ordered:
        try:
            lm = cache.get(spec)
        except RuntimeError as e:
            record(VideoResult(job.id, job.line, "failed", error=str(e), worker=_worker_name()), True)
            continue
        record(process_video(job, lm, out, opts, on_frame=bar.frame), True)


# ----------------------------------------------------------------------------- Ray
class BatchWorker:
    """The Ray actor (``ray.remote(BatchWorker)``): loads a model once per (model, image_size)
    group and runs :func:`process_video` for one video per call."""

    def __init__(self, out: str, opts: OutputOptions, threads: Optional[int]) -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.out = out
        self.opts = opts
        self.cache = _ModelCache()

    def check(self, probe: str, token: str) -> Tuple[str, bool]:
        """(host, whether ``probe`` is readable here and holds ``token``)."""
        try:
            ok = Path(probe).read_text(encoding="utf-8") == token
        except OSError:
            ok = False
        return socket.gethostname(), ok

    def run(self, job: VideoJob, spec: ModelSpec) -> VideoResult:
        import ray

        with warnings.catch_warnings():  # Ray's own property uses a deprecated Ray API inside
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        try:
            lm = self.cache.get(spec)
        except RuntimeError as e:
            return VideoResult(job.id, job.line, "failed", error=str(e), worker=_worker_name())
        res = process_video(job, lm, self.out, self.opts)
        if restarted:
            res.notes.append("worker restarted by Ray (an earlier worker process died)")
        return res


def ray_worker_plan(resources: Dict[str, float], device: Optional[str], num_workers: Optional[int],
                    workers_per_gpu: int = 1) -> Tuple[int, dict, Optional[int], str]:
    """How many Ray actors, with which resources: (count, actor options, torch threads or None,
    device).

    GPUs in ``resources`` (``ray.cluster_resources()``) and ``device`` not ``"cpu"``:
    ``workers_per_gpu`` actors per GPU, each ``num_gpus=1/workers_per_gpu`` and one CPU (two per
    GPU let one actor's CPU work, decoding and the PIL resize, overlap the other's GPU work),
    at most ``num_workers`` in all. Otherwise ``num_workers`` (default 1) one-CPU actors whose
    torch uses one thread. Raises BatchError for ``device="cuda"`` without a GPU.
    """
    gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
    if device == "cuda" and gpus == 0:
        raise BatchError("device 'cuda' but the Ray cluster has no GPU")
    if gpus:
        slots = gpus * workers_per_gpu
        return min(num_workers or slots, slots), {"num_gpus": 1 / workers_per_gpu, "num_cpus": 1}, None, "cuda"
    return num_workers or 1, {"num_cpus": 1}, 1, "cpu"


def _run_ray(ordered, out: Path, opts: OutputOptions, record, address: Optional[str],
             num_workers: Optional[int], workers_per_gpu: int, max_retries: int,
             device: Optional[str], init_kwargs: dict) -> int:
    import ray
    from ray.exceptions import RayActorError

    started = False
    if not ray.is_initialized():
        kw = dict(init_kwargs)
        if address is None:
            kw.setdefault("include_dashboard", False)
        ray.init(address=address, **kw)
        started = True
    actors = []
    probe = out / f".batch-probe-{uuid.uuid4().hex}"
    try:
        n, opt, threads, dev = ray_worker_plan(ray.cluster_resources(), device, num_workers, workers_per_gpu)
        if not ordered:
            return n
        n = min(n, len(ordered))
        remote = ray.remote(BatchWorker).options(max_restarts=-1, max_task_retries=max_retries, **opt)
        actors = [remote.remote(str(out), opts, threads) for _ in range(n)]
        token = uuid.uuid4().hex
        probe.write_text(token, encoding="utf-8")
        blind = [host for host, ok in ray.get([a.check.remote(str(probe), token) for a in actors]) if not ok]
        if blind:
            raise BatchError(f"Ray workers on {', '.join(sorted(set(blind)))} cannot see {out}: the "
                               f"output folder must be on a filesystem mounted at the same path on "
                               f"every node")
        pending = deque(ordered)
        idle = list(actors)
        inflight: Dict[Any, Tuple[Any, VideoJob]] = {}
        while pending or inflight:
            while idle and pending:
                spec, job = pending.popleft()
                spec = dataclasses.replace(spec, device=dev)
                a = idle.pop()
                inflight[a.run.remote(job, spec)] = (a, job)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                a, job = inflight.pop(ref)
                try:
                    r = ray.get(ref)
                except RayActorError as e:
                    r = VideoResult(job.id, job.line, "failed",
                                    error=f"worker died {max_retries + 1} time(s) on this video: "
                                          f"{_one_line(e).splitlines()[0][:300]}")
                idle.append(a)
                record(r, False)
        return n
    finally:
        probe.unlink(missing_ok=True)
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()


def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N. Raises ValueError."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must be I/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return i, n


__all__ = ["run_batch", "BatchError", "load_manifest", "VideoJob", "ManifestError", "ManifestInvalid",
           "VideoResult", "BatchSummary", "ModelSpec", "OutputOptions",
           "is_done", "auto_prompts_supported", "ray_worker_plan", "resolve_model", "parse_shard", "SCHEMA_PATH",
           "DONE_MARKER", "EXIT_CODE_CAP"]
