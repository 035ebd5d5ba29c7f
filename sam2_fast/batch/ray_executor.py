"""The Ray executor: an actor pool of :class:`BatchWorker` (see :func:`ray_worker_plan`)."""

from __future__ import annotations

import dataclasses
import socket
import uuid
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .manifest import VideoJob
from .runner import BatchError
from .video import ModelSpec, OutputOptions, VideoResult, _ModelCache, _one_line, _worker_name, process_video


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
