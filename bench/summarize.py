#!/usr/bin/env python3
"""The short table printed last by ``gpu_check.sh`` (and pasted into BENCHMARKS.md), from
the JSON of ``bench_kernels.py`` and ``bench_vos.py``.

usage: python bench/summarize.py KERNELS_JSON VOS_JSON [--markdown]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def _load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def kernel_rows(k):
    """Per op family: total ms of triton / torch / official / compile and triton's speed-up
    over the official (Hiera per frame = sum of ms x blocks; memory attention at 1 object,
    7 memory frames + 64 pointers, and self-attention; FPN)."""
    rows = []
    ms = {}
    for r in k.get("rows", []):
        if "ms" not in r:
            continue
        if r["op"] == "hiera":
            key = f"hiera {r['variant']} /frame"
            ms.setdefault(key, {}).setdefault(r["provider"], 0.0)
            ms[key][r["provider"]] += r["ms"] * r["blocks"]
        elif r["op"] == "mem_cross" and r["frames"] == 7:
            ms.setdefault(f"mem cross obj{r['objects']} 7+ptr", {})[r["provider"]] = r["ms"]
        elif r["op"] == "mem_self":
            ms.setdefault(f"mem self obj{r['objects']}", {})[r["provider"]] = r["ms"]
        elif r["op"] == "fpn":
            ms.setdefault("fpn", {})[r["provider"]] = r["ms"]
    for what, d in ms.items():
        row = dict(what=what, **{f"{p}_ms": v for p, v in d.items()})
        if "triton" in d and "official" in d:
            row["x_official"] = d["official"] / d["triton"]
        if "triton" in d and "compile" in d:
            row["x_compile"] = d["compile"] / d["triton"]
        rows.append(row)
    return rows


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    md = "--markdown" in argv
    argv = [a for a in argv if a != "--markdown"]
    k = _load(argv[0]) if argv else None
    v = _load(argv[1]) if len(argv) > 1 else None
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
        print("## kernels (median ms; x_official = official / triton)")
        print(table(rows, ["what", "triton_ms", "torch_ms", "official_ms", "compile_ms",
                           "x_official", "x_compile"],
                    {"triton_ms": ".4g", "torch_ms": ".4g", "official_ms": ".4g",
                     "compile_ms": ".4g", "x_official": ".2f", "x_compile": ".2f"}))
        bad = [r for r in k.get("rows", []) if r.get("bad")]
        if bad:
            print(f"# {len(bad)} kernel rows with error above the limit: "
                  + ", ".join(f"{r['case']}/{r['provider']}={r['err']:.1e}" for r in bad[:8]))
    else:
        print("## kernels: no results")
    if v:
        print("## end to end (FPS; x_ = sam2_fast over the official; floor = fraction of the "
              "compute floor)")
        print(table(v.get("headline", []),
                    ["size", "objects", "fps_official", "fps_compiled", "fps_fast", "x_official",
                     "x_compiled", "compile_s", "floor_fraction", "mem_official", "mem_fast",
                     "img_ms_official", "img_ms_fast", "img_x"],
                    {"fps_official": ".4g", "fps_compiled": ".4g", "fps_fast": ".4g",
                     "x_official": ".2f", "x_compiled": ".2f", "compile_s": ".0f",
                     "floor_fraction": ".1%", "mem_official": ".3g", "mem_fast": ".3g",
                     "img_ms_official": ".4g", "img_ms_fast": ".4g", "img_x": ".2f"}))
        for r in v.get("results", []):
            if "skipped" in r:
                print(f"# vos skipped {r.get('provider')} {r.get('size')} x{r.get('objects')}: "
                      f"{str(r['skipped'])[:160]}")
        if v.get("not_run"):
            print(f"# vos not run (time budget): {', '.join(v['not_run'])}")
    else:
        print("## end to end: no results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
