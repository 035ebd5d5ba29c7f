"""The runtime kernel profile (sam2_fast.kernels.profile), auto dispatch, and ``sam2-fast tune``.

On the CPU: the TOML round trip, a bad file of each kind (error or warning, as documented),
auto falling back to torch (no GPU, an unknown GPU, nothing measured), the built-in H200 table
against the committed measurements, a profile found next to a checkpoint by ``build_sam2``,
and ``tune --dry`` (the Triton interpreter, tiny shapes).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from sam2_fast.kernels import _flash
from sam2_fast.kernels import profile as P
from sam2_fast.kernels.profile import Choice, KernelProfile, ProfileError, ProfileWarning

REPO = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda", 0)
BF = torch.bfloat16


def _sample_profile(gpu="NVIDIA H200") -> KernelProfile:
    cfg = _flash.SM90_CONFIGS[("16", 256)][1]
    tma = [c for c in _flash.SM90_CONFIGS[("16", 256)] if c.tma][0]
    g = _flash.SM90_CONFIGS[("16", 128)][0]
    return P.new_profile({
        "rope_attention": {
            P.rope_bucket(BF, 4096, 28736, 1): Choice("triton", config=cfg, splits=4, ms=0.31,
                                                      torch_ms=0.89),
            P.rope_bucket(BF, 4096, 12352, 2): Choice("triton", config=tma, ms=0.2,
                                                      torch_ms=0.45),
            P.rope_bucket(BF, 4096, 4096, 4): Choice("rotate_sdpa", ms=0.2, torch_ms=0.5),
            P.rope_bucket(BF, 4096, 8256, 16): Choice("torch", ms=1.0, torch_ms=1.0),
        },
        "windowed_attention": {
            P.windowed_bucket(BF, 64, 64, 384, 4, 0, 1): Choice("triton", config=g, ms=0.05,
                                                                torch_ms=0.0575),
            P.windowed_bucket(BF, 256, 256, 96, 1, 8, 1): Choice("torch"),
        },
        "fpn_upsample_add": {P.fpn_bucket(BF, 256, 64, 64): Choice("triton_lateral", ms=0.01,
                                                                   torch_ms=0.02)},
    }, gpu=gpu, capability="9.0", precision="bfloat16", image_size=1024)


# =============================================================================================
# file format
# =============================================================================================


def test_round_trip(tmp_path):
    prof = _sample_profile()
    path = P.save_profile(prof, tmp_path / P.PROFILE_FILENAME)
    assert not list(tmp_path.glob("*.partial"))  # written atomically
    back = P.load_profile(path)
    assert back.entries == prof.entries
    for k in ("gpu", "capability", "precision", "image_size", "torch", "triton", "sam2_fast",
              "created"):
        assert getattr(back, k) == getattr(prof, k), k
    assert back.source == str(path)
    assert P.dumps(back) == P.dumps(prof)  # stable text
    # the writer's output is plain TOML
    import tomllib

    data = tomllib.loads(path.read_text())
    assert data["format"] == P.FORMAT and data["gpu"] == "NVIDIA H200"
    assert data["rope_attention"]["bfloat16/nq4096/nk32768/b1"]["splits"] == 4
    assert "tma" not in data["rope_attention"]["bfloat16/nq4096/nk32768/b1"]
    tma = back.entries["rope_attention"]["bfloat16/nq4096/nk16384/b2"].config
    assert data["rope_attention"]["bfloat16/nq4096/nk16384/b2"]["tma"] is True and tma.tma


GOOD = P.dumps(_sample_profile())
RB = '[rope_attention."bfloat16/nq4096/nk32768/b1"]'


@pytest.mark.parametrize("text,match", [
    ("format = 1\ngpu = \"x\"\n[rope_attention\n", "not valid TOML"),
    (GOOD.replace("format = 1", "format = 2"), "format must be 1"),
    (GOOD.replace("precision =", "colour = \"red\"\nprecision ="), r"unknown keys \['colour'\]"),
    (GOOD + '\n[flash_attention."bfloat16/x"]\nimpl = "triton"\n', "unknown keys"),
    (GOOD.replace(RB, RB + "\nwarps = 8"), r"unknown keys \['warps'\]"),
    (GOOD.replace('impl = "rotate_sdpa"', 'impl = "cuda"'), "impl must be one of"),
    (GOOD.replace("nq4096/nk32768/b1", "nq4096/k32768/b1"), "malformed bucket"),
    (GOOD.replace("block_m = 64", "block_m = 48"), "not shipped|malformed"),
    (GOOD.replace("block_n = 64\n", "", 1), "needs all of"),
    (GOOD.replace("splits = 4", "splits = -1"), "non-negative integer"),
    (GOOD.replace("ms = 0.31", "ms = \"fast\""), "must be a number"),
    (GOOD.replace('gpu = "NVIDIA H200"', 'gpu = ""'), "gpu must be"),
    (GOOD.replace("image_size = 1024", "image_size = \"1024\""), "image_size must be"),
    (GOOD.replace('impl = "triton_lateral"', 'impl = "triton_lateral"\nblock_m = 128\n'
                  'block_n = 64\nnum_warps = 8\nnum_stages = 2'), "tile config belongs"),
    (GOOD.replace("tma = true", "tma = 1"), "tma must be true or false"),
    (GOOD.replace('impl = "rotate_sdpa"', 'impl = "rotate_sdpa"\ntma = true'),
     "tma belongs to a tile config"),
])
def test_bad_files_are_errors(tmp_path, text, match):
    assert text != GOOD
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=match) as e:
        P.load_profile(path)
    assert str(path) in str(e.value)  # the message names the file
    assert isinstance(e.value, ValueError)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ProfileError, match="cannot read"):
        P.load_profile(tmp_path / "none.toml")
    with pytest.raises(ValueError, match="profile must be"):
        P.resolve_profile(profile=3.5)


def test_other_gpu_warns_and_uses_the_builtin_table(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(P, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    with pytest.warns(ProfileWarning, match="made on 'NVIDIA H200'.*built-in table"):
        assert P.resolve_profile(_sample_profile(), device="cuda") is None


def test_other_versions_warn_and_use_the_profile(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(P, "device_name", lambda device: "NVIDIA H200")
    prof = _sample_profile()
    old = KernelProfile(**{**prof.__dict__, "triton": "3.0.0"})
    with pytest.warns(ProfileWarning, match="triton 3.0.0 ->"):
        assert P.resolve_profile(old, device="cuda") is old
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_profile(prof, device="cuda") is prof  # same versions: silent
        assert P.resolve_profile(prof, device="cpu") is prof  # no GPU to check against


# =============================================================================================
# dispatch
# =============================================================================================


@pytest.fixture
def fake_gpu(monkeypatch):
    """choose() as on a CUDA machine whose GPU has the name written into the fixture."""
    name = {"gpu": "NVIDIA H200"}
    monkeypatch.setattr(P, "device_name", lambda device: name["gpu"])
    monkeypatch.setattr(P, "triton_available", lambda: True)
    monkeypatch.setattr(P, "interpreter_enabled", lambda: False)
    monkeypatch.delenv("SAM2_FAST_BACKEND", raising=False)
    return name


WIN = P.windowed_bucket(BF, 64, 64, 384, 4, 14, 1)  # tiny stage 3: Triton won on the H200
GLOBAL = P.windowed_bucket(BF, 64, 64, 384, 4, 0, 1)  # global: torch won
ROPE = P.rope_bucket(BF, 4096, 28736, 1)
FPN = P.fpn_bucket(BF, 256, 64, 64)


def _c(op, bucket, backend="auto", profile=None, device=CUDA):
    return P.choose(op, backend, device, profile, lambda: bucket)


def test_auto_builtin_table_on_h200(fake_gpu):
    assert _c("windowed_attention", WIN) == Choice("triton", ms=0.1167, torch_ms=0.1683)
    assert _c("windowed_attention", GLOBAL).impl == "torch"
    assert _c("windowed_attention", WIN.replace("bfloat16", "float32")).impl == "torch"
    assert _c("rope_attention", ROPE).impl == "torch"  # Triton lost: never picked without tune
    assert _c("fpn_upsample_add", FPN).impl == "torch"


def test_auto_falls_back_to_torch(fake_gpu, monkeypatch):
    fake_gpu["gpu"] = "NVIDIA A100-SXM4-80GB"  # no built-in table: nothing measured
    for op, b in (("windowed_attention", WIN), ("rope_attention", ROPE),
                  ("fpn_upsample_add", FPN)):
        assert _c(op, b).impl == "torch"
    # an H200 profile does not apply on another GPU
    assert _c("rope_attention", ROPE, profile=_sample_profile()).impl == "torch"
    fake_gpu["gpu"] = "NVIDIA H200"
    assert _c("windowed_attention", WIN, device=torch.device("cpu")).impl == "torch"  # no GPU
    monkeypatch.setattr(P, "triton_available", lambda: False)
    assert _c("windowed_attention", WIN).impl == "torch"  # no triton


def test_profile_overrides_the_builtin_table(fake_gpu, monkeypatch):
    prof = _sample_profile()
    c = _c("rope_attention", ROPE, profile=prof)
    assert c.impl == "triton" and c.config == _flash.SM90_CONFIGS[("16", 256)][1] and c.splits == 4
    assert _c("rope_attention", P.rope_bucket(BF, 4096, 4096, 4), profile=prof).impl == \
        "rotate_sdpa"
    g = _c("windowed_attention", GLOBAL, profile=prof)
    assert g.impl == "triton" and g.config is not None
    assert _c("windowed_attention", P.windowed_bucket(BF, 256, 256, 96, 1, 8, 1),
              profile=prof).impl == "torch"
    assert _c("windowed_attention", WIN, profile=prof).impl == "triton"  # not in it: built-in
    assert _c("fpn_upsample_add", FPN, profile=prof).impl == "triton_lateral"
    # explicit backends
    assert _c("rope_attention", ROPE, backend="torch", profile=prof).impl == "torch"
    t = _c("rope_attention", P.rope_bucket(BF, 4096, 4096, 4), backend="triton", profile=prof)
    assert t == Choice("triton")  # the profile's entry is not a Triton config
    assert _c("rope_attention", ROPE, backend="triton", profile=prof).config is not None
    monkeypatch.setenv("SAM2_FAST_BACKEND", "torch")
    assert _c("rope_attention", ROPE, profile=prof).impl == "torch"
    with pytest.raises(ValueError, match="backend"):
        _c("rope_attention", ROPE, backend="cuda")


def test_builtin_table_follows_the_committed_h200_measurements():
    """The built-in H200 table is exactly the measured wins of
    bench/results/2026-11-30_h200_kernels.json: Triton for a Hiera shape iff it took at most
    WIN_MARGIN of torch's time; no memory-attention or FPN entry (Triton lost both)."""
    data = json.loads((REPO / "bench" / "results" / "2026-11-30_h200_kernels.json").read_text())
    assert data["env"]["gpu"] == "NVIDIA H200"
    ms = {}
    for r in data["rows"]:
        if "ms" in r:
            ms.setdefault((r["op"], r["case"]), {})[r["provider"]] = r
    table = P.BUILTIN_PROFILES["NVIDIA H200"]
    wins = {}
    for (op, _), d in ms.items():
        t, ref = d["triton"], d["torch"]
        if op == "hiera":
            b = P.windowed_bucket(BF, t["grid"], t["grid"], t["channels"], t["heads"],
                                  t["window"], t["q_stride"])
            win = t["ms"] <= P.WIN_MARGIN * ref["ms"]
            assert wins.setdefault(b, win) == win  # tiny and small share shapes: same verdict
        else:
            assert t["ms"] > ref["ms"], (op, t["ms"], ref["ms"])  # rope, fpn: Triton lost
    chosen = {b for b, c in table.entries["windowed_attention"].items() if c.impl == "triton"}
    assert chosen == {b for b, w in wins.items() if w}
    assert set(table.entries) == {"windowed_attention"}


def test_ops_auto_on_cpu_are_the_reference():
    """With a profile saying Triton, auto on CPU tensors still runs the torch reference."""
    from sam2_fast import kernels as K

    prof = _sample_profile()
    qkv = torch.randn(1, 6, 6, 3 * 16)
    assert torch.equal(K.windowed_attention(qkv, None, 2, 0, 1, profile=prof),
                       K.windowed_attention_reference(qkv, None, 2, 0, 1))
    q, k = torch.randn(1, 1, 4, 16), torch.randn(1, 1, 8, 16)
    cos, sin = K.axial_rope_tables(16, 2, 2)
    assert torch.equal(K.rope_attention(q, k, k, cos, sin, 4, profile=prof),
                       K.rope_attention_reference(q, k, k, cos, sin, 4))


# =============================================================================================
# build_sam2: explicit profile, next to the checkpoint, environment
# =============================================================================================


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from sam2_fast import build_sam2
    from sam2_fast.checkpoint import randomize_, save_state_dict

    d = tmp_path_factory.mktemp("ckpt")
    model = randomize_(build_sam2("sam2.1_hiera_tiny", device="cpu", image_size=64), 0)
    path = d / "tiny.safetensors"
    save_state_dict(model.state_dict(), path)
    return path


def _profiles_in(model):
    return {id(m.kernel_profile) for m in model.modules() if hasattr(m, "kernel_profile")}


def test_build_finds_the_profile_next_to_the_checkpoint(tiny_ckpt, monkeypatch):
    from sam2_fast import build_sam2

    monkeypatch.delenv(P.PROFILE_ENV, raising=False)
    assert P.find_profile(tiny_ckpt) is None
    m = build_sam2(None, tiny_ckpt, device="cpu", image_size=64)
    assert m.kernel_profile is None
    path = P.save_profile(_sample_profile(), tiny_ckpt.parent / P.PROFILE_FILENAME)
    try:
        assert P.find_profile(tiny_ckpt) == path
        m = build_sam2(None, tiny_ckpt, device="cpu", image_size=64)
        assert m.kernel_profile is not None and m.kernel_profile.source == str(path)
        assert _profiles_in(m) == {id(m.kernel_profile)}  # every kernel-calling module has it
        n = sum(1 for x in m.modules() if hasattr(x, "kernel_profile"))
        assert n >= 12 + 1 + 8 + 1  # Hiera blocks, the neck, 8 RoPE attentions, the model
        assert build_sam2(None, tiny_ckpt, device="cpu", image_size=64,
                          profile=False).kernel_profile is None
        monkeypatch.setenv(P.PROFILE_ENV, "none")
        assert build_sam2(None, tiny_ckpt, device="cpu", image_size=64).kernel_profile is None
        other = P.save_profile(_sample_profile("NVIDIA H100"), tiny_ckpt.parent / "other.toml")
        monkeypatch.setenv(P.PROFILE_ENV, str(other))
        assert build_sam2(None, tiny_ckpt, device="cpu",
                          image_size=64).kernel_profile.gpu == "NVIDIA H100"
        monkeypatch.delenv(P.PROFILE_ENV)
        m = build_sam2(None, tiny_ckpt, device="cpu", image_size=64, profile=other)
        assert m.kernel_profile.source == str(other)
        # a corrupt file next to the checkpoint is an error, not silently ignored
        path.write_text("format = 1\ngpu = [\n")
        with pytest.raises(ProfileError, match="not valid TOML"):
            build_sam2(None, tiny_ckpt, device="cpu", image_size=64)
    finally:
        path.unlink(missing_ok=True)
        (tiny_ckpt.parent / "other.toml").unlink(missing_ok=True)


# =============================================================================================
# sam2-fast tune
# =============================================================================================


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is for the CPU")
def test_tune_dry_cli(tmp_path, capsys):
    """``sam2-fast tune --dry`` measures every op's candidates under the interpreter and
    writes a profile that loads back; every entry is torch or beat torch in the same run."""
    from sam2_fast.cli import main
    from sam2_fast.kernels import interpreter_enabled

    if not interpreter_enabled():
        pytest.skip("needs TRITON_INTERPRET=1 (set by conftest without CUDA)")
    out, rows_json = tmp_path / "p.toml", tmp_path / "rows.json"
    assert main(["tune", "--dry", "-q", "--out", str(out), "--json", str(rows_json)]) == 0
    prof = P.load_profile(out)
    assert prof.gpu.startswith("dry run") and prof.precision == "bfloat16"
    assert set(prof.entries) == {"rope_attention", "windowed_attention", "fpn_upsample_add"}
    rows = json.loads(rows_json.read_text())["rows"]
    impls = {(r["op"], r["impl"]) for r in rows if "ms" in r}
    assert {("rope_attention", "torch"), ("rope_attention", "rotate_sdpa"),
            ("rope_attention", "triton"), ("windowed_attention", "triton"),
            ("fpn_upsample_add", "triton_lateral")} <= impls
    assert all(r["err"] < 2e-2 for r in rows if "ms" in r)
    assert {r["timing"] for r in rows if "ms" in r} == {"host"}  # CUDA: cuda_graph / do_bench
    for op, entries in prof.entries.items():
        for b, c in entries.items():
            assert c.impl == "torch" or c.ms <= P.WIN_MARGIN * c.torch_ms, (op, b, c)
    assert sum(1 for r in rows if r.get("chosen")) == sum(len(e) for e in prof.entries.values())


_TIMED_SCRIPT = """
import torch, pytest
from triton.testing import do_bench
from sam2_fast.kernels.tuning import cuda_graph_time_ms, timed
dev = torch.device("cuda")
a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
b = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
t = timed(lambda: a @ b, dev)
assert t.method == "cuda_graph" and t.note == "", t
assert 2 * 4096 ** 3 / 2e15 * 1e3 < t.ms, t  # not faster than 2 PFLOP/s: no replay skipped
assert t.ms <= 1.2 * do_bench(lambda: a @ b, return_mode="median"), t
x = torch.randn(1000, device=dev)
synced = timed(lambda: x.sum().item(), dev)
assert synced.method == "do_bench" and "not capturable" in synced.note and synced.ms > 0, synced
assert float((x + 1).sum()) == pytest.approx(float(x.sum()) + 1000, rel=1e-4)  # device still fine
try:
    cuda_graph_time_ms(lambda: x.sum().item(), dev)
except RuntimeError:
    pass
else:
    raise AssertionError("a host sync was captured")
print("TIMED OK", t.ms, synced.ms)
"""


@pytest.mark.gpu
def test_timed_replays_a_cuda_graph_and_falls_back_to_do_bench():
    """The timer of ``tune`` and the kernel benchmark: GPU time of graph replays for a call that
    can be captured (a 4096^3 bf16 matmul: not below its FLOP at 2 PFLOP/s, not above
    ``do_bench``); ``do_bench`` with the reason for one that syncs the host, and the device
    still works after the failed capture. In a subprocess: a failed capture must not be able to
    disturb the other GPU tests."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _TIMED_SCRIPT], capture_output=True, text=True,
                         timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0 and "TIMED OK" in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]


def test_timed_on_the_cpu_is_the_host_clock():
    from sam2_fast.kernels.tuning import timed

    calls = []
    t = timed(lambda: calls.append(1), torch.device("cpu"), cpu_reps=4)
    assert t.method == "host" and t.ms >= 0 and len(calls) == 4


def test_tune_needs_a_gpu(tmp_path, capsys, monkeypatch):
    from sam2_fast.cli import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["tune", "--out", str(tmp_path / "p.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert main(["tune", "--dry", "--out", str(tmp_path / "p.toml")]) == 2
    assert "TRITON_INTERPRET=1" in capsys.readouterr().err
    assert not (tmp_path / "p.toml").exists()


def test_tune_rejects_bad_arguments(tmp_path):
    from sam2_fast.kernels import tuning

    with pytest.raises(ValueError, match="CUDA"):
        tuning.tune(torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown variants"):
        tuning.tune(torch.device("cpu"), dry=True, variants=["huge"])


def test_hiera_and_fpn_shapes():
    from sam2_fast.config import CONFIGS
    from sam2_fast.kernels import tuning

    for var in tuning.VARIANTS:
        shapes = tuning.hiera_attention_shapes(var, 1024)
        assert sum(s["blocks"] for s in shapes) == sum(CONFIGS[f"sam2.1_hiera_{var}"].hiera.stages)
        fpn = tuning.fpn_lateral_shapes(var, 1024)
        assert [f["grid"] for f in fpn] == [64] and fpn[0]["channels"] == 256
        assert fpn[0]["cin"] == CONFIGS[f"sam2.1_hiera_{var}"].backbone_channel_list[1]


def test_gpu_name_is_cached_and_cpu_has_none():
    assert P.device_name(torch.device("cpu")) == ""
    assert os.environ.get("SAM2_FAST_BACKEND", "auto") in ("auto", "torch", "triton")
