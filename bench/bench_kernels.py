#!/usr/bin/env python3
"""Kernel benchmarks of sam2_fast at the real SAM 2 shapes (1024 px), against the official way.

Ops and shapes (bf16, batch 1 image):

* ``hiera``: Hiera window attention (:func:`sam2_fast.kernels.windowed_attention`) for every
  distinct block shape of the four Hiera variants, derived from
  :data:`sam2_fast.config.CONFIGS` (windowed, global, and the q-pooling stage entries). The
  ``blocks`` column says how many blocks of the variant share the shape; ``ms x blocks`` summed
  gives the variant's attention time per frame.
* ``mem_self`` / ``mem_cross``: memory attention (:func:`sam2_fast.kernels.rope_attention`),
  d = 256, one head, 4096 queries (64 x 64), axial RoPE; cross-attention keys = 1..7 memory
  frames x 4096 + 64 object-pointer tokens (not rotated); 1 / 4 / 16 objects (= batch).
* ``fpn``: the neck's FPN top-down step (:func:`sam2_fast.kernels.fpn_lateral_upsample_add`):
  the lateral 1x1 conv of the stride-16 trunk level (1, Cin, 64, 64) to 256 channels + the
  nearest-2x of (1, 256, 32, 32), for each variant's Cin.

Providers: ``triton`` (our kernel: the fused flash kernel with the rotation pass for memory
attention, the fused lateral kernel for FPN), ``triton_cached`` (memory attention with keys
already rotated, as a memory bank that caches them would run; the rotation is not timed),
``triton_tma`` (memory attention: the default tiles' tensor-descriptor twin, q / k / v tiles
copied by Hopper's tensor memory accelerator),
``rotate_sdpa`` (memory attention: the Triton rotation pass + torch SDPA), ``auto`` (what
``backend="auto"`` runs without a profile: the built-in table for this GPU), ``torch`` (our
pure-torch reference), ``official`` (the official functions: ``window_partition`` +
``do_pool`` + SDPA + ``window_unpartition`` of ``sam2.modeling.backbones``;
``apply_rotary_enc`` of ``sam2.modeling.position_encoding`` + SDPA; the conv + ``lateral +
F.interpolate(coarse.float())``), ``compile`` (``torch.compile`` of the reference,
``dynamic=False``, one compile per shape, under ``--compile-budget`` seconds in total).

Columns: median ms (``common.timed``: GPU time of CUDA-graph replays, L2 flushed before each
repeat, as the runtime replays its captured steps; ``timing`` names the method, ``do_bench``
for a call that cannot be captured),
TFLOP/s and GB/s (minimum bytes: inputs read once, output written once), ``roof`` = the
roofline floor time over the measured time, the floor being max(FLOP / matmul ceiling,
bytes / copy ceiling) with both ceilings measured in the same run, and ``err`` = relative L2
error against the fp32 reference on the same inputs.

``--dry``: tiny shapes on the CPU (seconds); Triton only under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common  # noqa: E402

VARIANTS = ("tiny", "small", "base_plus", "large")
PROVIDERS = ("triton", "triton_cached", "triton_tma", "rotate_sdpa", "auto", "torch", "official",
             "compile")
ERR_LIMIT = 2e-2  # rel. L2 error above this (bf16) is flagged "BAD"


# ----------------------------------------------------------------------------- shapes
def hiera_attention_shapes(variant: str, image_size: int = 1024) -> List[Dict[str, int]]:
    """Distinct window-attention shapes of one Hiera variant, in block order, with counts
    (:func:`sam2_fast.kernels.tuning.hiera_attention_shapes`, which ``sam2-fast tune`` uses)."""
    from sam2_fast.kernels.tuning import hiera_attention_shapes as shapes

    return shapes(variant, image_size)


def hiera_flops_bytes(sh: Dict[str, int], elt: int) -> Tuple[float, float]:
    """FLOP (QK^T and PV, on the padded grid both implementations compute) and minimum bytes
    (qkv read once, output written once)."""
    g, C, nh, ws, s = sh["grid"], sh["channels"], sh["heads"], sh["window"], sh["q_stride"]
    D = C // nh
    if ws > 0:
        n_win = math.ceil(g / ws) ** 2
        nq, nk = (ws // s) ** 2, ws * ws
    else:
        n_win, nq, nk = 1, (g // s) ** 2, g * g
    flops = 4.0 * n_win * nh * nq * nk * D
    nbytes = (g * g * 3 * C + (g // s) ** 2 * C) * elt
    return flops, nbytes


# ----------------------------------------------------------------------------- official ways
def _official_modules():
    """The official functions, or None when ``sam2`` is not importable."""
    try:
        from sam2.modeling.backbones.hieradet import do_pool
        from sam2.modeling.backbones.utils import window_partition, window_unpartition
        from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return None, f"{type(e).__name__}: {e}"
    return dict(do_pool=do_pool, window_partition=window_partition,
                window_unpartition=window_unpartition, apply_rotary_enc=apply_rotary_enc,
                compute_axial_cis=compute_axial_cis), None


def official_windowed_attention(off, qkv, bias, num_heads, ws, s):
    """The official ``MultiScaleBlock`` windowing + ``MultiScaleAttention`` core, from qkv.

    The official pads the normed tokens with zeros *before* the qkv Linear, so padded tokens
    carry q/k/v = bias: pad qkv with ``F.pad`` (as ``window_partition`` would) and write the
    bias into the pad; then the official ``window_partition`` / ``do_pool`` / SDPA /
    ``window_unpartition``.
    """
    B, H, W, C3 = qkv.shape
    x = qkv
    pool = torch.nn.MaxPool2d(kernel_size=s, stride=s) if s > 1 else None
    if ws > 0:
        ph, pw = (ws - H % ws) % ws, (ws - W % ws) % ws
        if ph or pw:
            x = F.pad(qkv, (0, 0, 0, pw, 0, ph))
            b = bias.to(x.dtype)
            x[:, H:] = b
            x[:, :, W:] = b
        x, _ = off["window_partition"](x, ws)
    Bw, h, w, _ = x.shape
    q, k, v = torch.unbind(x.reshape(Bw, h * w, 3, num_heads, -1), 2)
    if pool is not None:
        q = off["do_pool"](q.reshape(Bw, h, w, -1), pool)
        h, w = q.shape[1:3]
        q = q.reshape(Bw, h * w, num_heads, -1)
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    o = o.transpose(1, 2).reshape(Bw, h, w, -1)
    if ws > 0:
        ws2 = ws // s
        Ho, Wo = H // s, W // s
        pad_hw = (Ho + (ws2 - Ho % ws2) % ws2, Wo + (ws2 - Wo % ws2) % ws2)
        o = off["window_unpartition"](o, ws2, pad_hw, (Ho, Wo))
    return o


def official_rope_attention(off, q, k_work, v, freqs_cis, n_rope):
    """The official ``RoPEAttention`` core: ``apply_rotary_enc`` (in place into k, as the
    official ``k[:, :, :num_k_rope] = ...``) then SDPA."""
    Nq = q.shape[-2]
    q2, k_rot = off["apply_rotary_enc"](q, k_work[:, :, :n_rope], freqs_cis=freqs_cis,
                                        repeat_freqs_k=n_rope != Nq)
    k_work[:, :, :n_rope] = k_rot
    return F.scaled_dot_product_attention(q2, k_work, v)


# ----------------------------------------------------------------------------- cases
class Case:
    """One op at one shape: inputs, providers (name -> fn), FLOP, bytes, fp32 reference."""

    def __init__(self, op: str, label: str, params: Dict[str, object], flops: float,
                 nbytes: float, providers: Dict[str, Callable[[], torch.Tensor]],
                 reference: Callable[[], torch.Tensor], compile_fn: Optional[Callable] = None,
                 skipped: Optional[Dict[str, str]] = None):
        self.op, self.label, self.params = op, label, params
        self.flops, self.nbytes = flops, nbytes
        self.providers, self.reference = providers, reference
        self.compile_fn = compile_fn  # () -> callable, built lazily under the compile budget
        self.skipped = dict(skipped or {})


def _randn(shape, device, dtype, gen):
    return torch.randn(shape, device=device, dtype=torch.float32, generator=gen).to(dtype)


def make_hiera_case(variant, sh, device, dtype, gen, providers, off, off_err):
    from sam2_fast import kernels as K

    g, C, nh, ws, s = sh["grid"], sh["channels"], sh["heads"], sh["window"], sh["q_stride"]
    qkv = _randn((1, g, g, 3 * C), device, dtype, gen)
    bias = _randn((3 * C,), device, torch.float32, gen) * 0.5
    flops, nbytes = hiera_flops_bytes(sh, qkv.element_size())
    fns, skipped = {}, {}
    if "triton" in providers:
        fns["triton"] = lambda: K.windowed_attention(qkv, bias, nh, ws, s, backend="triton")
    if "auto" in providers:
        fns["auto"] = lambda: K.windowed_attention(qkv, bias, nh, ws, s, backend="auto")
    if "torch" in providers:
        fns["torch"] = lambda: K.windowed_attention_reference(qkv, bias, nh, ws, s)
    if "official" in providers:
        if off is None:
            skipped["official"] = off_err
        else:
            fns["official"] = lambda: official_windowed_attention(off, qkv, bias, nh, ws, s)

    def build_compiled():
        f = torch.compile(K.windowed_attention_reference, dynamic=False)
        return lambda: f(qkv, bias, nh, ws, s)

    kind = "global" if ws == 0 else f"win{ws}"
    label = f"{variant} s{sh['stage']} g{g} C{C} h{nh} {kind}" + (" qpool" if s > 1 else "")
    params = dict(variant=variant, **sh, head_dim=C // nh, dtype=str(dtype))
    ref = lambda: K.windowed_attention_reference(qkv.float(), bias.float(), nh, ws, s)  # noqa: E731
    return Case("hiera", label, params, flops, nbytes, fns, ref,
                build_compiled if "compile" in providers else None, skipped)


def make_rope_case(kind, objects, frames, ptrs, grid, d, device, dtype, gen, providers, off,
                   off_err):
    from sam2_fast import kernels as K

    nq = grid * grid
    nk = nq if kind == "self" else frames * nq + ptrs
    excl = 0 if kind == "self" else ptrs
    n_rope = nk - excl
    # (B, N, heads, d) storage transposed to (B, heads, N, d), as the model's projections give
    q = _randn((objects, nq, 1, d), device, dtype, gen).transpose(1, 2)
    k = _randn((objects, nk, 1, d), device, dtype, gen).transpose(1, 2)
    v = _randn((objects, nk, 1, d), device, dtype, gen).transpose(1, 2)
    cos, sin = K.axial_rope_tables(d, grid, grid, device=device)
    elt = q.element_size()
    flops = 4.0 * objects * nq * nk * d
    nbytes = (2 * objects * nq * d + 2 * objects * nk * d) * elt + 2 * cos.numel() * 4
    fns, skipped = {}, {}
    if "triton" in providers:
        fns["triton"] = lambda: K.rope_attention(q, k, v, cos, sin, excl, backend="triton")
    if "triton_cached" in providers:
        try:
            k_rot = K.rope_rotate(k, cos, sin, excl, backend="triton")
            fns["triton_cached"] = lambda: K.rope_attention(q, k_rot, v, cos, sin, excl,
                                                            k_rotated=True, backend="triton")
        except RuntimeError as e:  # no Triton here
            skipped["triton_cached"] = str(e)[:200]
    if "triton_tma" in providers:
        try:
            cfg = dataclasses.replace(K._flash.default_config(dtype, d), tma=True)
            K._flash.check_config(cfg, dtype, d)
            fns["triton_tma"] = lambda: K.rope_attention(q, k, v, cos, sin, excl, config=cfg,
                                                         backend="triton")
        except (ValueError, RuntimeError) as e:  # fp32 on the GPU, no Triton here
            skipped["triton_tma"] = str(e)[:200]
    if "rotate_sdpa" in providers:
        from sam2_fast.kernels.rope_attention import _rope_attention_rotate_sdpa

        fns["rotate_sdpa"] = lambda: _rope_attention_rotate_sdpa(q, k, v, cos, sin, excl, False)
    if "auto" in providers:
        fns["auto"] = lambda: K.rope_attention(q, k, v, cos, sin, excl, backend="auto")
    if "torch" in providers:
        fns["torch"] = lambda: K.rope_attention_reference(q, k, v, cos, sin, excl)
    if "official" in providers:
        if off is None:
            skipped["official"] = off_err
        else:
            freqs = off["compute_axial_cis"](dim=d, end_x=grid, end_y=grid, theta=10000.0)
            freqs = freqs.to(device)
            k_work = k.clone()  # rotated in place, as the official does with its fresh k
            fns["official"] = lambda: official_rope_attention(off, q, k_work, v, freqs, n_rope)
            # the in-place rotation compounds over repeats (norm-preserving): the error
            # column is taken on the first call, from a fresh copy

            def reset():
                k_work.copy_(k)
            fns["official"].reset = reset  # type: ignore[attr-defined]

    def build_compiled():
        f = torch.compile(K.rope_attention_reference, dynamic=False)
        return lambda: f(q, k, v, cos, sin, excl)

    label = (f"self  obj{objects:<2d} Nk{nk}" if kind == "self"
             else f"cross obj{objects:<2d} mem{frames} Nk{nk}")
    params = dict(kind=kind, objects=objects, frames=frames if kind == "cross" else 0,
                  ptr_tokens=excl, nq=nq, nk=nk, d=d, heads=1, dtype=str(dtype))
    ref = lambda: K.rope_attention_reference(q.float(), k.float(), v.float(), cos, sin, excl)  # noqa: E731
    return Case(f"mem_{kind}", label, params, flops, nbytes, fns, ref,
                build_compiled if "compile" in providers else None, skipped)


def make_fpn_case(variant, cin, C, H, device, dtype, gen, providers, off, off_err):
    from sam2_fast import kernels as K

    x = _randn((1, cin, H, H), device, dtype, gen)
    w = (_randn((C, cin, 1, 1), device, torch.float32, gen) / math.sqrt(cin)).to(dtype)
    b = _randn((C,), device, dtype, gen)
    coarse = _randn((1, C, H // 2, H // 2), device, dtype, gen)
    flops = 2.0 * C * cin * H * H
    nbytes = (x.numel() + w.numel() + coarse.numel() + C * H * H) * x.element_size()
    fns, skipped = {}, {}
    if "triton" in providers:
        fns["triton"] = lambda: K.fpn_lateral_upsample_add(x, w, b, coarse, backend="triton")
    if "auto" in providers:
        fns["auto"] = lambda: K.fpn_lateral_upsample_add(x, w, b, coarse, backend="auto")
    if "torch" in providers:
        fns["torch"] = lambda: K.fpn_lateral_upsample_add_reference(x, w, b, coarse)
    if "official" in providers:
        if off is None:
            skipped["official"] = off_err
        else:  # FpnNeck.forward: the conv, then lateral + F.interpolate(prev.float())
            fns["official"] = lambda: F.conv2d(x, w, b) + F.interpolate(
                coarse.float(), scale_factor=2.0, mode="nearest")

    def build_compiled():
        f = torch.compile(K.fpn_lateral_upsample_add_reference, dynamic=False)
        return lambda: f(x, w, b, coarse)

    ref = lambda: K.fpn_lateral_upsample_add_reference(x.float(), w.float(), b.float(),  # noqa: E731
                                                       coarse.float())
    return Case("fpn", f"{variant} Cin{cin} C{C} {H}x{H} + {H // 2}x{H // 2}",
                dict(variant=variant, cin=cin, channels=C, H=H, dtype=str(dtype)), flops,
                nbytes, fns, ref, build_compiled if "compile" in providers else None, skipped)


# ----------------------------------------------------------------------------- driver
def case_specs(args) -> List[Tuple[str, tuple]]:
    """(kind, spec) in run order, breadth first so that a run cut short by --time-budget still
    covers every op: memory attention at one object (self, and cross with the first and last
    memory-frame counts), every Hiera shape, FPN; then the other memory-frame counts and the
    other object counts. Dry: tiny shapes."""
    from sam2_fast.kernels.tuning import fpn_lateral_shapes

    if args.dry:
        grid, d, ptrs = 4, 32, 4
        objects, frames = [1, 2], [1, 2]
        variants, image_size, fpn = ["tiny"], 64, [("tiny", 24, 16, 8)]
    else:
        grid, d, ptrs = args.image_size // 16, 256, args.ptr_tokens
        objects, frames = args.objects, args.frames
        variants, image_size = args.variants, args.image_size
        fpn = [(v, f["cin"], f["channels"], f["grid"]) for v in variants
               for f in fpn_lateral_shapes(v, image_size)]
    mem = []
    if "mem" in args.ops:
        for ob in objects:
            mem.append(("rope", ("self", ob, 0, 0, grid, d)))
            for fr in frames:
                mem.append(("rope", ("cross", ob, fr, ptrs, grid, d)))
    first = [m for m in mem if m[1][1] == objects[0]
             and (m[1][0] == "self" or m[1][2] in (frames[0], frames[-1]))]
    specs: List[Tuple[str, tuple]] = list(first)
    if "hiera" in args.ops:
        for var in variants:
            for sh in hiera_attention_shapes(var, image_size):
                if args.dry and sh["channels"] > 192:
                    continue  # keep the dry run to seconds
                specs.append(("hiera", (var, sh)))
    if "fpn" in args.ops:
        for spec in fpn:
            specs.append(("fpn", spec))
    specs += [m for m in mem if m not in first]
    return specs


def build_case(kind, spec, device, dtype, gen, providers, off, off_err):
    if kind == "rope":
        return make_rope_case(*spec, device=device, dtype=dtype, gen=gen, providers=providers,
                              off=off, off_err=off_err)
    if kind == "hiera":
        return make_hiera_case(*spec, device=device, dtype=dtype, gen=gen, providers=providers,
                               off=off, off_err=off_err)
    return make_fpn_case(*spec, device=device, dtype=dtype, gen=gen, providers=providers,
                         off=off, off_err=off_err)


def run_case(case: Case, args, device, ceilings, compile_budget: common.Budget) -> List[Dict]:
    rows = []
    ref = case.reference()
    fns = dict(case.providers)
    compile_s = {}
    if case.compile_fn is not None:
        if compile_budget.spent():
            case.skipped["compile"] = f"compile budget ({args.compile_budget:.0f} s) spent"
        else:
            try:
                t0 = time.perf_counter()
                fn = case.compile_fn()
                fn()  # compiles
                common.sync(device)
                compile_s["compile"] = time.perf_counter() - t0
                fns["compile"] = fn
            except Exception as e:  # noqa: BLE001 - report, keep going
                case.skipped["compile"] = f"{type(e).__name__}: {str(e)[:200]}"
    for name in PROVIDERS:
        if name not in fns and name not in case.skipped:
            continue
        row = dict(op=case.op, case=case.label, provider=name, **case.params)
        if name in case.skipped:
            row["skipped"] = case.skipped[name]
            rows.append(row)
            continue
        fn = fns[name]
        try:
            out = fn()
            row["err"] = common.rel_err(out.float(), ref)
            del out
            reset = getattr(fn, "reset", None)
            t = common.timed(fn, device, warmup_ms=args.warmup_ms, rep_ms=args.rep_ms)
            ms = t.ms
            row["timing"] = t.method
            if t.note:
                row["timing_note"] = t.note
            if reset is not None:
                reset()
        except Exception as e:  # noqa: BLE001 - one failing provider must not end the run
            row["skipped"] = f"{type(e).__name__}: {str(e)[:200]}"
            rows.append(row)
            continue
        floor_s = max(case.flops / (ceilings["matmul_tflops"] * 1e12),
                      case.nbytes / (ceilings["copy_gbs"] * 1e9))
        row.update(ms=ms, flops=case.flops, bytes=case.nbytes,
                   tflops=case.flops / (ms * 1e-3) / 1e12,
                   gbs=case.nbytes / (ms * 1e-3) / 1e9,
                   roof=floor_s / (ms * 1e-3),
                   bound="math" if case.flops / (ceilings["matmul_tflops"] * 1e12)
                   >= case.nbytes / (ceilings["copy_gbs"] * 1e9) else "memory",
                   bad=bool(not (row["err"] <= ERR_LIMIT)))
        if name in compile_s:
            row["compile_s"] = compile_s[name]
        rows.append(row)
    return rows


def summarize(rows: List[Dict]) -> List[Dict]:
    """Per Hiera variant: attention ms per frame (sum of ms x blocks) per provider; per memory
    case: speed-up of triton over official."""
    out = []
    by = {}
    for r in rows:
        if r.get("op") == "hiera" and "ms" in r:
            key = (r["variant"], r["provider"])
            by[key] = by.get(key, 0.0) + r["ms"] * r["blocks"]
    for (var, prov), ms in sorted(by.items()):
        out.append(dict(what=f"hiera {var} attention/frame", provider=prov, ms=ms))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="tiny shapes on the CPU, seconds")
    p.add_argument("--device", default=None)
    p.add_argument("--providers", default=None,
                   help=f"comma list of {PROVIDERS}; default all (dry: all but compile)")
    p.add_argument("--ops", default="mem,hiera,fpn")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--objects", default="1,4,16")
    p.add_argument("--frames", default="1,2,3,4,5,6,7")
    p.add_argument("--ptr-tokens", type=int, default=64)
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--warmup-ms", type=float, default=10.0)
    p.add_argument("--rep-ms", type=float, default=40.0)
    p.add_argument("--compile-budget", type=float, default=60.0,
                   help="seconds of torch.compile in total; later shapes skip 'compile'")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode for the 'compile' provider")
    p.add_argument("--time-budget", type=float, default=None,
                   help="stop starting new cases after this many seconds (reported)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.providers is None:
        args.providers = ",".join(p_ for p_ in PROVIDERS if not (args.dry and p_ == "compile"))
    args.providers = common.parse_list(args.providers)
    args.ops = common.parse_list(args.ops)
    args.variants = common.parse_list(args.variants)
    args.objects = common.parse_list(args.objects, int)
    args.frames = common.parse_list(args.frames, int)
    bad = [x for x in args.providers if x not in PROVIDERS]
    if bad:
        p.error(f"unknown providers {bad}; known: {PROVIDERS}")

    device = common.pick_device(args.device, args.dry)
    if args.dry and device.type == "cpu":
        torch.set_num_threads(1)  # a shared, busy CPU: more threads spin and run 10-25x slower
    dtype = getattr(torch, args.dtype)
    if args.dry and device.type == "cpu":
        args.warmup_ms, args.rep_ms = 0.0, 0.0
        from sam2_fast.kernels import interpreter_enabled

        if not interpreter_enabled():  # no Triton on the CPU without the interpreter
            dropped = [p for p in ("triton", "triton_cached", "triton_tma", "rotate_sdpa")
                       if p in args.providers]
            args.providers = [p for p in args.providers if p not in dropped]
            if dropped:
                print(f"# --dry without TRITON_INTERPRET=1: {', '.join(dropped)} not run", flush=True)
    if "compile" in args.providers:
        import torch._dynamo as dynamo

        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(dynamo.config, knob):
                setattr(dynamo.config, knob, 4096)
        if args.compile_mode != "default":
            _compile = torch.compile
            torch.compile = lambda f, **kw: _compile(f, mode=args.compile_mode, **kw)

    info = common.env_info(device)
    ceilings = common.measure_ceilings(device, dry=args.dry)
    print(f"# ceilings: bf16 matmul {ceilings['matmul_tflops']:.1f} TFLOP/s, "
          f"d2d copy {ceilings['copy_gbs']:.0f} GB/s (read+write)", flush=True)
    off, off_err = _official_modules()
    gen = torch.Generator(device=device).manual_seed(args.seed)
    budget = common.Budget(args.time_budget)
    compile_budget = common.Budget(args.compile_budget)
    rows: List[Dict] = []
    not_run: List[str] = []
    for kind, spec in case_specs(args):
        if budget.spent():
            not_run.append(f"{kind} {spec}")
            continue
        case = build_case(kind, spec, device, dtype, gen, args.providers, off, off_err)
        rows += run_case(case, args, device, ceilings, compile_budget)
        del case
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    summary = summarize(rows)
    payload = dict(kind="bench_kernels", env=info, ceilings=ceilings, dry=args.dry,
                   args={k: v for k, v in vars(args).items()}, rows=rows, summary=summary,
                   not_run=not_run)
    common.write_json(args.json, payload)

    cols = ["case", "provider", "ms", "tflops", "gbs", "roof", "err"]
    print(common.format_table(
        [dict(r, provider=r["provider"] + (" (skip)" if "skipped" in r else "")
              + (" BAD" if r.get("bad") else "")) for r in rows], cols,
        specs={"ms": ".4g", "tflops": ".3g", "gbs": ".4g", "roof": ".0%", "err": ".1e"}))
    if summary:
        print(common.format_table(summary, ["what", "provider", "ms"], specs={"ms": ".4g"}))
    skipped = sorted({f"{r['provider']}: {r['skipped']}" for r in rows if "skipped" in r})
    for s in skipped:
        print(f"# skipped {s}")
    if not_run:
        print(f"# time budget {args.time_budget} s spent: {len(not_run)} cases not run")
    n_bad = sum(1 for r in rows if r.get("bad"))
    print(f"# {len(rows)} rows, {n_bad} with err > {ERR_LIMIT:g}; ceilings "
          f"{ceilings['matmul_tflops']:.1f} TFLOP/s, {ceilings['copy_gbs']:.0f} GB/s")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
