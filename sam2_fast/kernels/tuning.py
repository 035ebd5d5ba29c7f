"""``sam2-fast tune``: measure every implementation of every kernel op at the model's shapes on
the GPU at hand and build a runtime profile (:mod:`.profile`) from what won.

For each op and shape bucket (:func:`~.profile.rope_bucket`, :func:`~.profile.windowed_bucket`,
:func:`~.profile.fpn_bucket`) every candidate runs on the same random inputs (never zeros):

* ``rope_attention`` (memory attention, d = 256, one head, Nq = (image_size / 16)^2): the
  torch reference, ``rotate_sdpa`` (Triton rotation + SDPA), and the Triton flash kernel with
  every shipped tile config of :mod:`._flash`, with the split-K heuristic and without split
  (the default tiles also with 2 / 8 splits for one or two objects; the tensor-descriptor
  twins with the heuristic only). Shapes: self-attention and cross-attention with
  1, 3 and 7 memory frames + ``ptr_tokens`` pointers (the largest member of each key bucket),
  for each object count.
* ``fpn_upsample_add``: the neck's top-down step -- torch (conv + add), ``triton`` (conv + the
  Triton add), ``triton_lateral`` (one fused kernel) -- for each variant's channel count.
* ``windowed_attention``: torch vs the Triton kernel, for every distinct block shape of the
  chosen Hiera variants, in the order given (global blocks: every shipped flash config).

In that order, so that a ``time_budget`` cuts the per-variant Hiera shapes last.

A candidate is eligible when its relative L2 error against the fp32 reference is within
:data:`ERR_LIMIT` for the dtype. The bucket's entry is the fastest eligible candidate, but a
non-torch one only if it takes at most :data:`~.profile.WIN_MARGIN` of torch's time in the
same run (so auto never picks a path measured slower than torch). Times: median GPU time of
CUDA-graph replays with the L2 flushed before each (:func:`timed`; the runtime replays captured
steps on CUDA, so host launch cost is not what it pays), ``do_bench`` for a candidate that
cannot be captured -- per bucket the sum over its measured shapes.

``dry=True`` runs on the CPU with the Triton interpreter and tiny shapes (about a minute on a
busy CPU): it checks the plumbing, and its profile names no real GPU.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ._backend import interpreter_enabled
from ._flash import INTERPRETER_CONFIG, FlashConfig, auto_splits, gpu_supported, shipped_configs
from .profile import (WIN_MARGIN, Choice, KernelProfile, dtype_name, fpn_bucket, new_profile,
                      rope_bucket, windowed_bucket)

ERR_LIMIT = {torch.bfloat16: 2e-2, torch.float16: 1e-2, torch.float32: 1e-4}
"""Largest relative L2 error against the fp32 reference a candidate may have (per dtype)."""

VARIANTS = ("tiny", "small", "base_plus", "large")
OPS = ("rope_attention", "windowed_attention", "fpn_upsample_add")
DRY_GPU_NAME = "dry run (CPU, Triton interpreter)"


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


def hiera_attention_shapes(variant: str, image_size: int = 1024) -> List[Dict[str, int]]:
    """Distinct window-attention shapes of one Hiera variant, in block order, with counts.

    Mirrors the block construction of :class:`sam2_fast.model.hiera.Hiera` (the official
    ``Hiera``): the first block of a stage still uses the previous stage's window (0 for the
    global blocks), gets the new width and heads, and pools q by 2 for the first ``q_pool``
    stage changes. qkv is (1, grid, grid, 3 * dim_out) on the block's *input* grid.

    Returns: dicts with grid, channels, heads, window, q_stride, blocks (how many blocks share
    the shape), first_block, stage.
    """
    from ..config import CONFIGS

    h = CONFIGS[f"sam2.1_hiera_{variant}"].hiera
    stage_ends = [sum(h.stages[: i + 1]) - 1 for i in range(len(h.stages))]
    q_pool_blocks = [e + 1 for e in stage_ends[:-1]][: h.q_pool]
    dim, heads, grid, stage = h.embed_dim, h.num_heads, image_size // 4, 0
    shapes: Dict[Tuple[int, ...], Dict[str, int]] = {}
    for i in range(sum(h.stages)):
        dim_out = dim
        window = 0 if i in h.global_att_blocks else h.window_spec[stage]
        if i - 1 in stage_ends:
            dim_out = int(dim * h.dim_mul)
            heads = int(heads * h.head_mul)
            stage += 1
        s = h.q_stride[0] if i in q_pool_blocks else 1
        key = (grid, dim_out, heads, window, s)
        if key not in shapes:
            shapes[key] = dict(grid=grid, channels=dim_out, heads=heads, window=window,
                               q_stride=s, blocks=0, first_block=i, stage=stage + 1)
        shapes[key]["blocks"] += 1
        grid //= s
        dim = dim_out
    return list(shapes.values())


def fpn_lateral_shapes(variant: str, image_size: int = 1024) -> List[Dict[str, int]]:
    """The neck's top-down steps: (Cin of the trunk level, d_model, grid) per top-down level."""
    from ..config import CONFIGS

    cfg = CONFIGS[f"sam2.1_hiera_{variant}"]
    chans = list(cfg.backbone_channel_list)  # coarsest first
    n = len(chans) - 1
    out = []
    for i in cfg.fpn_top_down_levels:
        if i >= n:
            continue  # the coarsest level has nothing above it
        out.append(dict(cin=chans[n - i], channels=cfg.d_model, grid=image_size // (4 << i)))
    return out


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


class Timing(NamedTuple):
    """A median time and how it was taken: ``"cuda_graph"`` (GPU time of graph replays),
    ``"do_bench"`` (``triton.testing.do_bench``, when ``fn`` could not be captured; ``note``
    says why) or ``"host"`` (host clock, off CUDA)."""

    ms: float
    method: str
    note: str = ""


_FLUSH_BYTES = 256 * 1024 * 1024  # more than an H200's 50 MB L2, as do_bench flushes


def cuda_graph_time_ms(fn: Callable[[], object], device: torch.device, rep_ms: float = 20.0,
                       max_reps: int = 1000) -> float:
    """Median GPU time in ms of one ``fn()`` captured in a CUDA graph and replayed.

    This is what the runtime pays where it replays captured steps (the image encoder and the
    steady tracking step on CUDA): no host launch cost, which ``do_bench`` counts whenever
    ``fn``'s host side is slower than the GPU (small kernels, Python dispatch). Method: ``fn()``
    once, two warm-up calls on a side stream (as ``torch.cuda.graph`` asks: lazy workspaces,
    Triton compiles), capture one call, then replays between CUDA events, each after a 256 MB
    write that flushes the L2 (cold-cache numbers, as ``do_bench``); the host enqueues all
    replays ahead of the GPU, so the events see GPU time only. Repeats: ``rep_ms`` of GPU time
    (flushes included, as ``do_bench`` counts them), at least 5, at most ``max_reps``.

    Raises: RuntimeError when ``fn`` cannot be captured (a host sync, CPU work, ...).
    """
    fn()
    torch.cuda.synchronize(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    flush = torch.empty(_FLUSH_BYTES, dtype=torch.int8, device=device)
    try:
        graph.replay()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(5):
            flush.zero_()
            graph.replay()
        b.record()
        b.synchronize()
        est = max(a.elapsed_time(b) / 5, 1e-3)  # per repeat, flush included (as do_bench)
        n = int(min(max(rep_ms / est, 5), max_reps))
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        for i in range(n):
            flush.zero_()
            starts[i].record()
            graph.replay()
            ends[i].record()
        torch.cuda.synchronize(device)
        return float(statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)))
    finally:
        del graph, flush


def timed(fn: Callable[[], object], device: torch.device, warmup_ms: float = 5.0,
          rep_ms: float = 20.0, cpu_reps: int = 3) -> Timing:
    """Median time of ``fn()`` (the caller has already run it once).

    CUDA: :func:`cuda_graph_time_ms`; where ``fn`` cannot be captured, ``triton.testing.do_bench``
    (CUDA events, L2 flushed before each repeat; host launch cost included when it exceeds the
    GPU's) -- ``method`` says which, ``note`` why. CPU: ``cpu_reps`` host-clock calls.
    Raises whatever ``fn`` raises outside a capture.
    """
    if device.type == "cuda":
        try:
            return Timing(cuda_graph_time_ms(fn, device, rep_ms), "cuda_graph")
        except RuntimeError as e:  # not capturable: time it eagerly
            torch.cuda.synchronize(device)
            note = f"not capturable: {type(e).__name__}: {str(e)[:160]}"
        from triton.testing import do_bench

        return Timing(float(do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median")),
                      "do_bench", note)
    times = []
    for _ in range(max(1, cpu_reps)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(float(statistics.median(times)), "host")


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    o, r = out.detach().double(), ref.detach().double()
    if o.shape != r.shape or not torch.isfinite(o).all():
        return math.inf
    return float((o - r).norm() / max(r.norm().item(), 1e-30))


# ---------------------------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------------------------


def _configs(dtype: torch.dtype, d: int) -> Sequence[Optional[FlashConfig]]:
    """The flash tile configs to try (None = the launcher's own path: fp32 on the GPU has no
    flash config and runs SDPA / the window kernel)."""
    if interpreter_enabled():
        return (INTERPRETER_CONFIG,)
    return shipped_configs(dtype, d) if gpu_supported(dtype) else (None,)


def _rope_candidates(q, k, v, cos, sin, excl, device, dry=False):
    from .rope_attention import (_rope_attention_launch, _rope_attention_rotate_sdpa,
                                 rope_attention_reference)

    yield Choice("torch"), lambda: rope_attention_reference(q, k, v, cos, sin, excl)
    yield Choice("rotate_sdpa"), lambda: _rope_attention_rotate_sdpa(q, k, v, cos, sin, excl,
                                                                      False)
    B, Hh, Nq, d = q.shape
    cfgs = _configs(q.dtype, d)
    for cfg in cfgs:
        if cfg is None:
            yield Choice("triton"), lambda: _rope_attention_launch(q, k, v, cos, sin, excl, 0,
                                                                   False, None)
            continue
        nqb = -(-Nq // cfg.block_m)
        nkb = -(-k.shape[2] // cfg.block_n)
        auto = auto_splits(nqb * B * Hh, nkb, device)
        # the split policy, no split, and (default tiles, 1-2 objects) 2 and 8 splits; the
        # descriptor twins with the policy only (tune's time budget)
        splits = [0] + ([1] if auto > 1 else [])
        if cfg == cfgs[0] and B * Hh <= 2 and not dry:
            splits += [2, 8]
        if cfg.tma:
            splits = [0]
        for sp in dict.fromkeys(splits):
            yield (Choice("triton", config=cfg, splits=sp),
                   lambda cfg=cfg, sp=sp: _rope_attention_launch(q, k, v, cos, sin, excl, sp,
                                                                 False, cfg))


def _windowed_candidates(qkv, bias, heads, window, q_stride):
    from .windowed_attention import _windowed_attention_launch, windowed_attention_reference

    yield Choice("torch"), lambda: windowed_attention_reference(qkv, bias, heads, window,
                                                                q_stride)
    if window == 0 and q_stride == 1:
        d = qkv.shape[-1] // 3 // heads
        for cfg in _configs(qkv.dtype, d):
            yield (Choice("triton", config=cfg),
                   lambda cfg=cfg: _windowed_attention_launch(qkv, bias, heads, 0, 1, cfg))
    else:
        yield Choice("triton"), lambda: _windowed_attention_launch(qkv, bias, heads, window,
                                                                   q_stride)


def _fpn_candidates(x, w, b, coarse):
    from .fpn_upsample_add import (_fpn_lateral_upsample_add_triton, _fpn_upsample_add_triton,
                                   fpn_lateral_upsample_add_reference)

    yield Choice("torch"), lambda: fpn_lateral_upsample_add_reference(x, w, b, coarse)
    yield Choice("triton"), lambda: _fpn_upsample_add_triton(F.conv2d(x, w, b), coarse, None)
    yield Choice("triton_lateral"), lambda: _fpn_lateral_upsample_add_triton(x, w, b, coarse,
                                                                             None)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------


def _choice_key(c: Choice) -> Tuple:
    return (c.impl, c.config, c.splits)


def tune(
    device: torch.device,
    *,
    dtype: torch.dtype = torch.bfloat16,
    image_size: int = 1024,
    variants: Sequence[str] = VARIANTS,
    objects: Sequence[int] = (1, 4, 16),
    ptr_tokens: int = 64,
    ops: Sequence[str] = OPS,
    time_budget: Optional[float] = None,
    warmup_ms: float = 5.0,
    rep_ms: float = 20.0,
    dry: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> Tuple[KernelProfile, List[Dict[str, object]]]:
    """Measure the candidates and return ``(profile, rows)``.

    Args:
        device: a CUDA device (``dry``: the CPU, under ``TRITON_INTERPRET=1``).
        dtype: the model dtype to tune for (bf16 by default, the benchmark precision).
        image_size: the model input size (multiple of 32); shapes follow from it.
        variants: Hiera variants whose block shapes to tune.
        objects: object counts (the memory-attention batch).
        ptr_tokens: object-pointer tokens in the cross-attention keys (64 at a full bank).
        ops: which ops to tune (:data:`OPS`).
        time_budget: seconds; shapes not started by then are skipped (listed in the rows).
        warmup_ms, rep_ms: warm-up (``do_bench`` fallback only) and repetition time per
            candidate (:func:`timed`).
        dry: tiny shapes on the CPU with the interpreter (plumbing only).
        seed: input seed. log: progress lines.

    Returns: the profile (one entry per measured bucket, torch included where it won) and one
    row per (shape, candidate): op, bucket, shape, impl, config, splits, ms, err, eligible,
    chosen.

    Raises: ValueError for a bad device / dtype / variant / op, or a non-dry run without CUDA.
    """
    if dry:
        if device.type != "cpu" or not interpreter_enabled():
            raise ValueError("dry tuning runs on the CPU under TRITON_INTERPRET=1")
    elif device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError("tuning measures a GPU: it needs a CUDA device (or dry=True)")
    if dtype not in ERR_LIMIT:
        raise ValueError(f"dtype must be one of {list(ERR_LIMIT)}, got {dtype}")
    bad = [v for v in variants if v not in VARIANTS] + [o for o in ops if o not in OPS]
    if bad:
        raise ValueError(f"unknown variants / ops {bad}; known: {VARIANTS}, {OPS}")
    if image_size % 32 or image_size < 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape, dt=dtype):
        return torch.randn(shape, device=device, dtype=torch.float32, generator=gen).to(dt)

    t_start = time.perf_counter()
    rows: List[Dict[str, object]] = []
    sums: Dict[Tuple[str, str], Dict[Tuple, List]] = {}  # (op, bucket) -> key -> [choice, ms]

    def measure(op, bucket, shape, candidates, ref):
        if time_budget is not None and time.perf_counter() - t_start > time_budget:
            rows.append(dict(op=op, bucket=bucket, shape=shape, skipped="time budget"))
            log(f"skip {op} {shape}: time budget")
            return
        slot = sums.setdefault((op, bucket), {})
        for choice, fn in candidates:
            row = dict(op=op, bucket=bucket, shape=shape, impl=choice.impl,
                       config=choice.config.name if choice.config else None,
                       splits=choice.splits)
            try:
                row["err"] = _rel_err(fn().float(), ref)
                t = timed(fn, device, warmup_ms, rep_ms, cpu_reps=1 if dry else 3)
                row.update(ms=t.ms, timing=t.method)
                if t.note:
                    row["timing_note"] = t.note
            except Exception as e:  # noqa: BLE001 - a failing candidate is reported, not chosen
                row["skipped"] = f"{type(e).__name__}: {str(e)[:200]}"
                rows.append(row)
                log(f"  {op} {shape} {choice.impl} {row['config']}: {row['skipped']}")
                continue
            row["eligible"] = bool(row["err"] <= ERR_LIMIT[dtype])
            rows.append(row)
            entry = slot.setdefault(_choice_key(choice), [choice, 0.0, True])
            entry[1] += row["ms"]
            entry[2] = entry[2] and row["eligible"]
            log(f"  {op} {shape} {choice.impl:14s} {row['config'] or '':18s} "
                f"splits={choice.splits} {row['ms']:.4f} ms err={row['err']:.1e}")

    # ---- memory attention -----------------------------------------------------------------
    if "rope_attention" in ops:
        from .rope_attention import axial_rope_tables, rope_attention_reference

        grid, d = (4, 32) if dry else (image_size // 16, 256)
        nq = grid * grid
        cos, sin = axial_rope_tables(d, grid, grid, device=device)
        kinds = [("self", 0)] + [("cross", f) for f in ((1,) if dry else (1, 3, 7))]
        for n_obj in ((1,) if dry else objects):
            for kind, frames in kinds:
                ptr = 0 if kind == "self" else (4 if dry else ptr_tokens)
                nk = nq if kind == "self" else frames * nq + ptr
                q = randn(n_obj, nq, 1, d).transpose(1, 2)
                k = randn(n_obj, nk, 1, d).transpose(1, 2)
                v = randn(n_obj, nk, 1, d).transpose(1, 2)
                ref = rope_attention_reference(q.float(), k.float(), v.float(), cos, sin, ptr)
                shape = f"{kind} obj{n_obj} frames{frames} nk{nk}"
                measure("rope_attention", rope_bucket(dtype, nq, nk, n_obj), shape,
                        _rope_candidates(q, k, v, cos, sin, ptr, device, dry), ref)
                del q, k, v, ref

    # ---- FPN top-down step ----------------------------------------------------------------
    if "fpn_upsample_add" in ops:
        from .fpn_upsample_add import fpn_lateral_upsample_add_reference

        for var in (variants[:1] if dry else variants):
            for sh in fpn_lateral_shapes(var, 64 if dry else image_size):
                cin, C, g = sh["cin"], sh["channels"], sh["grid"]
                if dry:
                    cin, C = min(cin, 48), 32
                x = randn(1, cin, g, g)
                w = (randn(C, cin, 1, 1, dt=torch.float32) / math.sqrt(cin)).to(dtype)
                b = randn(C, dt=torch.float32).to(dtype)
                coarse = randn(1, C, g // 2, g // 2)
                ref = fpn_lateral_upsample_add_reference(x.float(), w.float(), b.float(),
                                                         coarse.float())
                measure("fpn_upsample_add", fpn_bucket(dtype, C, g, g),
                        f"{var} Cin{cin} C{C} {g}x{g}", _fpn_candidates(x, w, b, coarse), ref)
                del x, ref

    # ---- Hiera attention ------------------------------------------------------------------
    if "windowed_attention" in ops:
        from .windowed_attention import windowed_attention_reference

        seen = set()
        for var in (variants[:1] if dry else variants):
            for sh in hiera_attention_shapes(var, 32 if dry else image_size):
                g, C, nh, ws, s = (sh["grid"], sh["channels"], sh["heads"], sh["window"],
                                   sh["q_stride"])
                bucket = windowed_bucket(dtype, g, g, C, nh, ws, s)
                if bucket in seen or (dry and len(seen) == 2):
                    continue
                seen.add(bucket)
                qkv = randn(1, g, g, 3 * C)
                bias = randn(3 * C, dt=torch.float32) * 0.5
                ref = windowed_attention_reference(qkv.float(), bias, nh, ws, s)
                shape = f"{var} s{sh['stage']} g{g} C{C} h{nh} w{ws} q{s}"
                measure("windowed_attention", bucket, shape,
                        _windowed_candidates(qkv, bias, nh, ws, s), ref)
                del qkv, ref

    # ---- choose -----------------------------------------------------------------------------
    entries: Dict[str, Dict[str, Choice]] = {}
    for (op, bucket), slot in sums.items():
        torch_ms = slot.get(_choice_key(Choice("torch")), [None, math.inf])[1]
        best: Optional[Tuple[Choice, float]] = None
        for choice, ms, ok in slot.values():
            if not ok or choice.impl == "torch":
                continue
            if ms <= WIN_MARGIN * torch_ms and (best is None or ms < best[1]):
                best = (choice, ms)
        if best is None:
            chosen = Choice("torch", ms=torch_ms if math.isfinite(torch_ms) else None,
                            torch_ms=torch_ms if math.isfinite(torch_ms) else None)
        else:
            c, ms = best
            chosen = Choice(c.impl, config=c.config, splits=c.splits, ms=ms, torch_ms=torch_ms)
        entries.setdefault(op, {})[bucket] = chosen
        for r in rows:
            if r.get("op") == op and r.get("bucket") == bucket and "ms" in r:
                r["chosen"] = (r["impl"] == chosen.impl and r["config"] ==
                               (chosen.config.name if chosen.config else None)
                               and r["splits"] == chosen.splits)
    if dry:
        gpu, cap = DRY_GPU_NAME, ""
    else:
        props = torch.cuda.get_device_properties(device)
        gpu, cap = torch.cuda.get_device_name(device), f"{props.major}.{props.minor}"
    prof = new_profile(entries, gpu=gpu, capability=cap, precision=dtype_name(dtype),
                       image_size=image_size)
    return prof, rows
