"""CUDA-graph replay of the engine's fixed-shape steps: the image encoder (once per batch of
frames) and the steady-state tracking step (once per object batch, bank full).

A captured graph replays every kernel of a step with one launch, so a step costs its GPU time
and not hundreds of kernel launches from Python. It needs what the engine guarantees in steady
state: the same shapes, the same input addresses (the fixed-capacity
:class:`~sam2_fast.engine.memory_bank.MemoryBank`), and no host synchronisation inside.

* :class:`StaticGraph` — one graph over static input buffers: inputs are copied into the
  graph's buffers (persistent ones, like the fixed-capacity memory bank that the caller refills
  in place, are read where they are), the graph is replayed, and the outputs are the graph's
  static output tensors (overwritten by the next replay: callers clone what they keep). Inputs
  that are broadcast views (a stride-0 batch dimension: one frame's features expanded to B
  objects) are stored once and expanded inside the graph.
* :class:`GraphRunner` — the bookkeeping: which calls replay, which run eagerly. A key (the op
  and every shape it depends on) is run eagerly ``warmup`` times (that also compiles and tunes
  every kernel), captured at its next call, and replayed from then on. Steps with prompts, the
  frames before the bank is full, and anything else without a key run eagerly.

On the CPU, :class:`EagerStaticGraph` gives the same static-buffer semantics without CUDA, so
the bookkeeping and the aliasing of static outputs are tested without a GPU.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import torch

Tensors = Tuple[torch.Tensor, ...]


def _broadcast_dims(t: torch.Tensor) -> Tuple[int, ...]:
    """Dimensions along which ``t`` is a broadcast view (stride 0, size > 1)."""
    return tuple(d for d in range(t.dim()) if t.stride(d) == 0 and t.shape[d] > 1)


def _compact(t: torch.Tensor, dims: Tuple[int, ...]) -> torch.Tensor:
    for d in dims:
        t = t.narrow(d, 0, 1)
    return t


def input_signature(inputs: Sequence[torch.Tensor]) -> tuple:
    """What a graph over ``inputs`` depends on: shapes, dtypes, devices, broadcast dims."""
    return tuple((tuple(t.shape), t.dtype, t.device, _broadcast_dims(t)) for t in inputs)


class EagerStaticGraph:
    """Static-buffer semantics without a graph: inputs copied into fixed buffers, ``fn`` run on
    them, results copied into fixed output tensors that the next call overwrites. Used on the
    CPU (tests) and as the reference behaviour of :class:`StaticGraph`."""

    def __init__(self, fn: Callable[..., Tensors], inputs: Sequence[torch.Tensor],
                 persistent: Optional[Sequence[bool]] = None) -> None:
        self.fn = fn
        self.dims = [_broadcast_dims(t) for t in inputs]
        self.shapes = [tuple(t.shape) for t in inputs]
        keep = persistent or [False] * len(inputs)
        # persistent inputs (buffers the caller refills in place, e.g. the memory bank) are
        # used as they are; the others are copied into buffers of the graph's own
        self.static_inputs = [_compact(t, d) if k else _compact(t, d).clone()
                              for t, d, k in zip(inputs, self.dims, keep)]
        self.static_outputs: Optional[Tensors] = None

    def _views(self) -> List[torch.Tensor]:
        return [s.expand(shape) for s, shape in zip(self.static_inputs, self.shapes)]

    def _load(self, inputs: Sequence[torch.Tensor]) -> None:
        for dst, src, d in zip(self.static_inputs, inputs, self.dims):
            src = _compact(src, d)
            if src.data_ptr() != dst.data_ptr():
                dst.copy_(src, non_blocking=True)

    def __call__(self, inputs: Sequence[torch.Tensor]) -> Tensors:
        self._load(inputs)
        out = self.fn(*self._views())
        if self.static_outputs is None:
            self.static_outputs = tuple(o.clone() for o in out)
        else:
            for dst, src in zip(self.static_outputs, out):
                dst.copy_(src)
        return self.static_outputs


class StaticGraph(EagerStaticGraph):
    """``fn`` captured as a CUDA graph over static copies of ``inputs`` (a few eager warm-up
    runs on a side stream first, as CUDA graph capture requires). Calling it copies the inputs
    in and replays the graph; the returned tensors are the graph's own outputs.

    Raises:
        RuntimeError: capture failed (e.g. an op that synchronises with the host).
    """

    def __init__(self, fn: Callable[..., Tensors], inputs: Sequence[torch.Tensor],
                 persistent: Optional[Sequence[bool]] = None, warmup_runs: int = 2) -> None:
        super().__init__(fn, inputs, persistent)
        self._load(inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup_runs):
                fn(*self._views())
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_outputs = tuple(fn(*self._views()))

    def __call__(self, inputs: Sequence[torch.Tensor]) -> Tensors:
        self._load(inputs)
        self.graph.replay()
        return self.static_outputs


class GraphRunner:
    """Runs keyed, fixed-shape functions eagerly first and as captured graphs afterwards.

    Args:
        enabled: off = always eager.
        warmup: eager calls of a key before it is captured (they compile and tune kernels).
        graph_cls: :class:`StaticGraph` on CUDA; :class:`EagerStaticGraph` to test the
            bookkeeping on the CPU.
        max_graphs: graphs kept (least recently used dropped; each holds its memory pool).

    Attributes:
        stats: ``{"eager": n, "replayed": n, "captured": n, "capture_s": seconds}`` — the
            capture time is first-call overhead, reported apart from the per-frame time.
        op_stats: the same counts per op (the first element of a key, e.g. ``"image"``,
            ``"track"``; ``None`` for unkeyed calls).
    """

    def __init__(self, enabled: bool, warmup: int = 1, graph_cls=StaticGraph,
                 max_graphs: int = 16) -> None:
        self.enabled = bool(enabled)
        self.warmup = int(warmup)
        self.graph_cls = graph_cls
        self.max_graphs = int(max_graphs)
        self.graphs: Dict[Hashable, EagerStaticGraph] = {}
        self.calls: Dict[Hashable, int] = {}
        self.stats = {"eager": 0, "replayed": 0, "captured": 0, "capture_s": 0.0}
        self.op_stats: Dict[Hashable, Dict[str, float]] = {}

    def _count(self, key, what: str, n: float = 1) -> None:
        op = key[0] if isinstance(key, tuple) and key else key
        d = self.op_stats.setdefault(op, {"eager": 0, "replayed": 0, "captured": 0,
                                          "capture_s": 0.0})
        d[what] += n
        self.stats[what] += n

    def run(self, key: Optional[Hashable], fn: Callable[..., Tensors],
            inputs: Sequence[torch.Tensor],
            persistent: Optional[Sequence[bool]] = None) -> Tuple[Tensors, bool]:
        """``fn(*inputs)``: eagerly, or by replaying its graph. ``key`` = None: always eager.
        ``persistent[i]``: input i is a buffer the caller refills in place for every call (the
        graph reads it directly instead of copying it).

        Returns:
            (outputs, replayed). Replayed outputs are static tensors overwritten by the next
            replay of the same key: clone what you keep.
        """
        if not self.enabled or key is None:
            self._count(key, "eager")
            return tuple(fn(*inputs)), False
        op_key = key
        key = (key, input_signature(inputs))
        g = self.graphs.pop(key, None)
        if g is None:
            n = self.calls.get(key, 0) + 1
            self.calls[key] = n
            if n <= self.warmup:
                self._count(op_key, "eager")
                return tuple(fn(*inputs)), False
            t0 = time.perf_counter()
            g = self._capture(fn, inputs, persistent)
            self._count(op_key, "capture_s", time.perf_counter() - t0)
            self._count(op_key, "captured")
        self.graphs[key] = g
        while len(self.graphs) > self.max_graphs:
            self.graphs.pop(next(iter(self.graphs)))
        out = g(inputs)
        self._count(op_key, "replayed")
        return out, True

    def _capture(self, fn, inputs, persistent) -> EagerStaticGraph:
        # one private memory pool per graph: a shared pool would let one graph's scratch memory
        # overlap another graph's outputs while the caller still reads them
        return self.graph_cls(fn, inputs, persistent)


def default_graph_runner(device: torch.device, cuda_graphs: Optional[bool]) -> GraphRunner:
    """On by default on CUDA (``cuda_graphs=None``), off elsewhere; ``True`` on a non-CUDA
    device is refused.

    Raises:
        ValueError: ``cuda_graphs=True`` without a CUDA device.
    """
    on_cuda = torch.device(device).type == "cuda"
    if cuda_graphs and not on_cuda:
        raise ValueError(f"cuda_graphs=True needs a CUDA device; the model is on {device}")
    return GraphRunner(enabled=on_cuda if cuda_graphs is None else bool(cuda_graphs))


__all__ = ["GraphRunner", "StaticGraph", "EagerStaticGraph", "default_graph_runner",
           "input_signature"]
