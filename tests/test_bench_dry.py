"""The benchmark scripts cannot rot: ``bench/gpu_check.sh --dry`` runs the whole GPU check on
the CPU with tiny shapes (pytest -m gpu collection, ``sam2-fast tune --dry`` and
``bench_kernels.py --dry`` with the Triton interpreter, ``bench_vos.py --dry`` with the official
predictors and sam2_fast with the built-in table and with the tuned profile, the profiled
propagation, the ``vos_optimized`` child with compile stubbed, the summary), writing to a temp
dir; then the JSON is checked for every provider's rows. About 60-70 s on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _needs_official():
    try:
        import hydra  # noqa: F401
        import sam2  # noqa: F401
    except ImportError:
        pytest.skip("the official sam2 (and hydra) are not installed")


@pytest.mark.slow
def test_gpu_check_dry(tmp_path):
    _needs_official()
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils timeout")
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    env.pop("TRITON_INTERPRET", None)  # the script sets it for the kernel dry run only
    res = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=400)
    log = res.stdout[-4000:] + res.stderr[-2000:]
    assert res.returncode == 0, log
    names = sorted(p.name for p in out.iterdir())
    assert len(names) <= 8, names  # the script keeps its output to 8 files
    for f in ("check.log", "kernels.json", "vos.json", "summary.txt", "profile.toml"):
        assert f in names, (names, log)
    from sam2_fast.kernels.profile import load_profile

    prof = load_profile(out / "profile.toml")  # sam2-fast tune --dry wrote a valid profile
    assert set(prof.entries) == {"rope_attention", "windowed_attention", "fpn_upsample_add"}

    k = json.loads((out / "kernels.json").read_text())
    assert k["ceilings"]["matmul_tflops"] > 0 and k["ceilings"]["copy_gbs"] > 0
    provs = {r["provider"] for r in k["rows"] if "ms" in r}
    assert {"triton", "triton_cached", "triton_tma", "rotate_sdpa", "auto", "torch",
            "official"} <= provs, (
        provs, log)
    assert {r["timing"] for r in k["rows"] if "ms" in r} == {"host"}  # CUDA: cuda_graph / do_bench
    ops = {r["op"] for r in k["rows"] if "ms" in r}
    assert ops == {"hiera", "mem_self", "mem_cross", "fpn"}, ops
    assert not [r for r in k["rows"] if r.get("bad")], [r for r in k["rows"] if r.get("bad")]

    v = json.loads((out / "vos.json").read_text())
    done = {(r["task"], r["provider"], r.get("objects")) for r in v["results"] if "skipped" not in r}
    skipped = [r for r in v["results"] if "skipped" in r]
    assert not skipped, skipped
    for want in [("vos", "official", 1), ("vos", "sam2_fast", 1), ("vos", "sam2_fast_tuned", 1),
                 ("vos", "official_compiled", 1),
                 ("image", "official", None), ("image", "sam2_fast", None),
                 ("vos", "official", 2), ("vos", "sam2_fast", 2), ("profile", "sam2_fast_tuned", 1)]:
        assert want in done, (want, done)
    hl = {(h["size"], h["objects"]): h for h in v["headline"]}
    assert hl[("tiny", 1)]["x_official"] > 0 and hl[("tiny", 1)]["x_official_tuned"] > 0
    prof_row = next(r for r in v["results"] if r["task"] == "profile")
    assert prof_row["top_cpu"] and prof_row["top_cpu"][0]["self_ms"] > 0
    summary = (out / "summary.txt").read_text()
    for part in ("end to end", "kernels", "tuned profile", "top CPU ops", "# timing: host",
                 "automatic mask generator (tiny 128 px"):
        assert part in summary, part
    assert "x_official" in res.stdout  # the short table is printed last

    a = json.loads((out / "amg.json").read_text())  # bench_amg.py --dry (automatic mask generator)
    assert a["images"] and all(r["x_official"] > 0 and r["masks_sam2_fast"] == r["masks_official"]
                               for r in a["images"].values()), a["images"]


def test_hiera_shapes_cover_the_published_models():
    """The kernel benchmark derives every Hiera attention shape from the configs: the block
    counts add up to each variant's depth, and the q-pooling entries halve the grid."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench_kernels
    finally:
        sys.path.remove(str(REPO / "bench"))
    from sam2_fast.config import CONFIGS

    for var in ("tiny", "small", "base_plus", "large"):
        shapes = bench_kernels.hiera_attention_shapes(var, 1024)
        h = CONFIGS[f"sam2.1_hiera_{var}"].hiera
        assert sum(s["blocks"] for s in shapes) == sum(h.stages)
        assert sum(s["blocks"] for s in shapes if s["window"] == 0) == len(h.global_att_blocks)
        pooled = [s for s in shapes if s["q_stride"] == 2]
        assert [s["grid"] for s in pooled] == [256, 128, 64]
        assert {s["grid"] for s in shapes} == {256, 128, 64, 32}
