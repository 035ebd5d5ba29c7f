"""Keep decoding and writing off the tracking thread's critical path.

* :func:`prefetch` — decode ahead on a background thread (PyAV and Pillow release the GIL while
  decoding), at most ``depth`` items waiting, in order; an error of the source is raised at its
  position in the stream.
* :func:`device_frames` — frames as uint8 tensors on the model's device: on CUDA each decoded
  frame is copied into pinned host memory on the decode thread and sent with an asynchronous
  copy, so the GPU resize and normalisation of
  :func:`sam2_fast.predictors.streaming.preprocess_frame` start without the host waiting; on the
  CPU the arrays pass through (and take the official PIL resize).
* :class:`OrderedWriter` — runs write jobs on one background thread in submission order with a
  bounded queue: when the writer falls behind, :meth:`OrderedWriter.submit` waits (no frame is
  dropped and memory stays bounded); the first error is raised by the next ``submit`` or by
  :meth:`OrderedWriter.close`.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import numpy as np
import torch

T = TypeVar("T")


class _End:
    pass


def prefetch(items: Iterable[T], depth: int = 4,
             transform: Optional[Callable[[T], object]] = None,
             name: str = "sam2-fast-decode") -> Iterator:
    """Iterate ``items`` on a background thread, ``depth`` items ahead at most.

    Args:
        items: any iterable (a frame decoder); closed (``close()``) when done or abandoned.
        depth: the most items decoded but not yet consumed (>= 1).
        transform: applied to each item on the background thread (e.g. pinning).
        name: the thread's name.

    Yields:
        the (transformed) items, in order.

    Raises:
        ValueError: ``depth`` < 1.
        whatever ``items`` or ``transform`` raised, at the position where it happened.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        it = iter(items)
        try:
            for x in it:
                if not put(transform(x) if transform is not None else x):
                    break
            else:
                put(_End)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer and raised there
            put(e)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    t = threading.Thread(target=run, name=name, daemon=True)
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


def _pinned(frame) -> torch.Tensor:
    """An (H, W, 3) uint8 frame (array, PIL image or CPU tensor) in pinned host memory."""
    if isinstance(frame, torch.Tensor):
        t = frame
    else:
        t = torch.from_numpy(np.require(np.asarray(frame), requirements=["C", "W"]))
    if t.dtype != torch.uint8 or t.dim() != 3 or t.shape[-1] != 3:
        raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {tuple(t.shape)} {t.dtype}")
    return t.pin_memory()


def device_frames(frames: Iterable, device, depth: int = 4, keep_host: bool = False) -> Iterator:
    """Decode ``frames`` ahead (:func:`prefetch`) and deliver them where the model runs.

    Args:
        frames: an iterable of (H, W, 3) uint8 RGB frames (e.g.
            :func:`sam2_fast.io.sources.iter_source_frames`).
        device: the model's device.
        depth: frames decoded ahead.
        keep_host: also yield the host array (for writers that draw on the frame).

    Yields:
        on CUDA, (H, W, 3) uint8 CUDA tensors (copied asynchronously from pinned memory that the
        decode thread filled); on other devices, the frames unchanged. With ``keep_host``,
        (host array, that frame) pairs.

    Raises:
        ValueError: a frame that is not (H, W, 3) uint8 (on CUDA); the source's own errors.
    """
    device = torch.device(device)
    if device.type != "cuda":
        for f in prefetch(frames, depth):
            yield (f, f) if keep_host else f
        return

    def pin(f):
        return f, _pinned(f)

    for host, pinned in prefetch(frames, depth, transform=pin):
        dev = pinned.to(device, non_blocking=True)
        yield (host, dev) if keep_host else dev


class OrderedWriter:
    """Write jobs on one background thread, in submission order, at most ``max_pending`` queued.

    Args:
        max_pending: jobs submitted but not finished before :meth:`submit` waits (>= 1).
        name: the thread's name.

    Raises:
        ValueError: ``max_pending`` < 1.
    """

    def __init__(self, max_pending: int = 8, name: str = "sam2-fast-write") -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_pending = int(max_pending)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: "deque[Future]" = deque()
        self.submitted = 0
        self.done = 0

    def _reap(self, keep: int) -> None:
        while len(self._pending) > keep:
            self._pending.popleft().result()  # raises the job's error
            self.done += 1
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()
            self.done += 1

    def submit(self, fn: Callable, *args, **kwargs) -> None:
        """Queue ``fn(*args, **kwargs)``; waits while ``max_pending`` jobs are queued.

        Raises:
            the error of an earlier job (the writer stops taking jobs after it).
        """
        self._reap(self.max_pending - 1)
        self._pending.append(self._pool.submit(fn, *args, **kwargs))
        self.submitted += 1

    def close(self) -> None:
        """Wait for every job; raises the first error."""
        try:
            self._reap(0)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Drop the queued jobs, wait for the running one, never raise."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    def __enter__(self) -> "OrderedWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["prefetch", "device_frames", "OrderedWriter"]
