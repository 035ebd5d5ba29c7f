#!/usr/bin/env python3
"""The short table printed last by ``gpu_check.sh`` (and pasted into BENCHMARKS.md), from
the JSON of ``bench_kernels.py`` and ``bench_vos.py`` and the runtime profile written by
``sam2-fast tune``.

usage: python bench/summarize.py KERNELS_JSON [VOS_JSON] [PROFILE_TOML] [--amg AMG_JSON] [--markdown]

Sections: kernels (triton / torch / official / compile ms per op family), the tuned profile
(per op and shape bucket: the implementation chosen, its time and torch's), end to end (FPS of
the official, of sam2_fast with the built-in table and with the tuned profile), the top 10
CUDA kernels (and top CPU ops) of one profiled sam2_fast propagation, and the automatic mask
generator against the official (``--amg``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def _load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def kernel_rows(k):
    """Per op family: total ms of each provider, triton's TFLOP/s (memory attention) and the
    speed-ups over the official (Hiera per frame = sum of ms x blocks; memory attention at 7
    memory frames + 64 pointers, and self-attention, per object count; FPN per variant)."""
    rows = []
    ms, tf = {}, {}
    for r in k.get("rows", []):
        if "ms" not in r:
            continue
        key = None
        if r["op"] == "hiera":
            key = f"hiera {r['variant']} /frame"
            ms.setdefault(key, {}).setdefault(r["provider"], 0.0)
            ms[key][r["provider"]] += r["ms"] * r["blocks"]
            continue
        if r["op"] == "mem_cross" and r["frames"] == 7:
            key = f"mem cross obj{r['objects']} 7+ptr"
        elif r["op"] == "mem_self":
            key = f"mem self obj{r['objects']}"
        elif r["op"] == "fpn":
            key = "fpn" + (f" {r['variant']}" if r.get("variant") else "")
        if key:
            ms.setdefault(key, {})[r["provider"]] = r["ms"]
            if r["op"].startswith("mem") and r.get("tflops"):
                tf.setdefault(key, {})[r["provider"]] = r["tflops"]
    for what, d in ms.items():
        row = dict(what=what, **{f"{p}_ms": v for p, v in d.items()})
        for p in ("triton", "triton_cached", "triton_tma"):
            if p in tf.get(what, {}):
                row[f"{p}_tflops"] = tf[what][p]
        for p, col in (("triton", "x_official"), ("triton_cached", "x_official_cached"),
                       ("triton_tma", "x_official_tma"), ("auto", "x_official_auto")):
            if p in d and "official" in d:
                row[col] = d["official"] / d[p]
        if "triton" in d and "compile" in d:
            row["x_compile"] = d["compile"] / d["triton"]
        rows.append(row)
    return rows


KERNEL_COLS = ["what", "triton_ms", "triton_cached_ms", "triton_tma_ms", "rotate_sdpa_ms",
               "auto_ms", "torch_ms", "official_ms", "compile_ms", "triton_tflops",
               "triton_tma_tflops", "x_official", "x_official_cached", "x_official_tma",
               "x_official_auto", "x_compile"]


def print_profile(path, table) -> None:
    """The tuned profile's entries: op, bucket, implementation (tiles, splits), ms, torch ms."""
    try:
        from sam2_fast.kernels.profile import load_profile

        prof = load_profile(path)
    except (ImportError, ValueError) as e:
        print(f"## tuned profile: not readable ({e})")
        return
    rows = []
    for op in sorted(prof.entries):
        for bucket, c in sorted(prof.entries[op].items()):
            impl = c.impl + (f" {c.config.name}" if c.config else "") + (
                f" splits={c.splits}" if c.splits else "")
            rows.append(dict(op=op, bucket=bucket, impl=impl, ms=c.ms, torch_ms=c.torch_ms,
                             x_torch=(c.torch_ms / c.ms) if c.ms and c.torch_ms else None))
    print(f"## tuned profile ({prof.gpu}, {prof.precision}, {prof.image_size} px; "
          f"x_torch = torch ms / chosen ms)")
    print(table(rows, ["op", "bucket", "impl", "ms", "torch_ms", "x_torch"],
                {"ms": ".4g", "torch_ms": ".4g", "x_torch": ".2f"}))


def print_top(r, table) -> None:
    """Top kernels of the profiled propagation (vos.json task "profile")."""
    print(f"## profile: sam2_fast ({r['provider']}) {r['size']}, {r['frames']} frames, one "
          f"propagation: {r.get('fps', 0):.1f} FPS under the profiler; self CUDA "
          f"{r.get('self_device_ms', 0):.1f} ms, self CPU {r.get('self_cpu_ms', 0):.1f} ms")
    if r.get("top_cuda"):
        print("### top 10 CUDA kernels by self time")
        print(table([dict(x, name=x["name"][:70]) for x in r["top_cuda"]],
                    ["name", "self_ms", "pct", "calls"], {"self_ms": ".2f", "pct": ".1%"}))
    print("### top CPU ops by self time")
    print(table([dict(x, name=x["name"][:70]) for x in r["top_cpu"]],
                ["name", "self_ms", "pct", "calls"], {"self_ms": ".2f", "pct": ".1%"}))


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="The short table of a GPU check from its files.")
    ap.add_argument("kernels", metavar="KERNELS_JSON", help="bench_kernels.py --json output")
    ap.add_argument("vos", metavar="VOS_JSON", nargs="?", help="bench_vos.py --json output")
    ap.add_argument("profile", metavar="PROFILE_TOML", nargs="?", help="sam2-fast tune output")
    ap.add_argument("--amg", metavar="AMG_JSON", help="bench_amg.py --json output (automatic mask generator)")
    ap.add_argument("--markdown", action="store_true", help="tables as Markdown (for BENCHMARKS.md)")
    args = ap.parse_args(argv)
    md = args.markdown
    missing = [p for p in (args.kernels, args.vos, args.profile, args.amg) if p and not Path(p).is_file()]
    for p in missing:  # a check that stopped early leaves some files out: say so, go on
        print(f"# missing: {p}")
    k = _load(args.kernels) if args.kernels else None
    v = _load(args.vos) if args.vos else None
    prof_path = args.profile
    env = (k or v or {}).get("env", {})
    ceil = (k or v or {}).get("ceilings") or {}
    if isinstance(ceil, str):
        ceil = {}
    print(f"# {env.get('date')}  gpu={env.get('gpu')}  driver={env.get('driver')}  "
          f"torch={env.get('torch')}  triton={env.get('triton')}  python={env.get('python')}")
    if ceil:
        print(f"# ceilings (measured in the run): matmul {ceil.get('matmul_tflops', 0):.1f} "
              f"TFLOP/s ({ceil.get('matmul_dtype')}, n={ceil.get('matmul_n')}), copy "
              f"{ceil.get('copy_gbs', 0):.0f} GB/s (read+write)")
    table = (lambda rows, cols, specs=None: common.format_markdown(rows, cols, specs)) if md \
        else common.format_table
    if k:
        rows = kernel_rows(k)
        cols = [c for c in KERNEL_COLS if c == "what" or any(c in r for r in rows)]
        print("## kernels (median ms; x_official = official / triton; _cached = keys already "
              "rotated; auto = what backend='auto' runs without a profile)")
        print(table(rows, cols, {c: (".2f" if c.startswith("x_") else ".4g") for c in cols}))
        methods = Counter(r.get("timing", "?") for r in k.get("rows", []) if "ms" in r)
        eager = [r for r in k.get("rows", []) if r.get("timing") == "do_bench"]
        print("# timing: " + ", ".join(f"{m} {n} rows" for m, n in sorted(methods.items()))
              + (" (not capturable: " + ", ".join(f"{r['case']}/{r['provider']}" for r in eager[:6])
                 + ")" if eager else ""))
        bad = [r for r in k.get("rows", []) if r.get("bad")]
        if bad:
            print(f"# {len(bad)} kernel rows with error above the limit: "
                  + ", ".join(f"{r['case']}/{r['provider']}={r['err']:.1e}" for r in bad[:8]))
    else:
        print("## kernels: no results")
    if prof_path:
        print_profile(prof_path, table)
    if v:
        print("## end to end (FPS; x_ = sam2_fast over the official; fast = built-in kernel "
              "table, tuned = the tuned profile; floor = fraction of the compute floor)")
        print(table(v.get("headline", []),
                    ["size", "objects", "fps_official", "fps_compiled", "fps_fast", "fps_tuned",
                     "x_official", "x_official_tuned", "x_compiled", "compile_s",
                     "floor_fraction", "mem_official", "mem_fast", "img_ms_official",
                     "img_ms_fast", "img_x"],
                    {"fps_official": ".4g", "fps_compiled": ".4g", "fps_fast": ".4g",
                     "fps_tuned": ".4g", "x_official": ".2f", "x_official_tuned": ".2f",
                     "x_compiled": ".2f", "compile_s": ".0f",
                     "floor_fraction": ".1%", "mem_official": ".3g", "mem_fast": ".3g",
                     "img_ms_official": ".4g", "img_ms_fast": ".4g", "img_x": ".2f"}))
        for r in v.get("results", []):
            if r.get("task") == "profile" and "top_cpu" in r:
                print_top(r, table)
        for r in v.get("results", []):
            if "skipped" in r:
                print(f"# vos skipped {r.get('provider')} {r.get('size')} x{r.get('objects')}: "
                      f"{str(r['skipped'])[:160]}")
        if v.get("not_run"):
            print(f"# vos not run (time budget): {', '.join(v['not_run'])}")
    else:
        print("## end to end: no results")
    a = _load(args.amg) if args.amg else None
    if a and a.get("images"):
        st = a.get("settings", {})
        print(f"## automatic mask generator ({st.get('size')} {st.get('image_size')} px, "
              f"points_per_side {st.get('points_per_side')}, sam2_fast {st.get('dtype_fast')}; "
              f"median s of {st.get('runs')} alternating calls; x_official = official / sam2_fast)")
        rows = [{"image": name, "hw": "x".join(str(v) for v in r.get("hw", [])),
                 "s_official": r.get("median_s_official"), "s_fast": r.get("median_s_sam2_fast"),
                 "x_official": r.get("x_official"), "masks_official": r.get("masks_official"),
                 "masks_fast": r.get("masks_sam2_fast")} for name, r in a["images"].items()]
        print(table(rows, ["image", "hw", "s_official", "s_fast", "x_official", "masks_official", "masks_fast"],
                    {"s_official": ".4g", "s_fast": ".4g", "x_official": ".2f"}))
    elif args.amg:
        print("## automatic mask generator: no results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
