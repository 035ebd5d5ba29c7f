"""The driver: :func:`run_batch` (checks the manifest, skips finished videos, groups by model,
runs the local or the Ray executor, writes the status log and the summary)."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from .manifest import ManifestInvalid, VideoJob, load_manifest, resolve_model
from .video import ModelSpec, OutputOptions, VideoResult, _ModelCache, _worker_name, is_done, process_video

EXIT_CODE_CAP = 100

PathLike = Union[str, os.PathLike]


class BatchError(RuntimeError):
    """The batch cannot run where it was asked to (Ray workers that cannot see the output
    folder, ``device="cuda"`` on a Ray cluster without GPUs)."""


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
        import sys

        from tqdm.auto import tqdm

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
                from .ray_executor import _run_ray

                workers = _run_ray(ordered, out, opts, record, ray_address, num_workers,
                                   workers_per_gpu, max_retries, device, dict(ray_init_kwargs or {}))
        finally:
            bar.close()
    finally:
        log.close()
    summary = BatchSummary(results, time.perf_counter() - t0, out, status_path, summary_path,
                           executor, workers)
    from ..io.masks import save_json

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

def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N. Raises ValueError."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must be I/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return i, n
