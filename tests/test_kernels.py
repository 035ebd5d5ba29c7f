"""Kernel tests: windowed_attention, rope_attention, fpn_upsample_add (+ fused lateral).

Runs on CUDA when present, else on the CPU through the Triton interpreter (conftest sets
``TRITON_INTERPRET=1``). Inputs are drawn fresh each run (the seed is in every failure message).

Accuracy rule (flash-attention's, bounds from tests/tolerances.py): with ``oracle`` the torch
reference run in fp64 on the same (rounded) inputs,
``rel_l2(kernel, oracle) <= KERNEL_ERR_FACTOR * rel_l2(torch reference in dtype, oracle)
+ KERNEL_ATOL[dtype]``.

bf16: under the interpreter the kernels upcast their tl.dot operands to fp32 (the interpreter's
bf16 dot is wrong) and the interpreter rounds fp32 -> bf16 toward zero, so the CPU bf16 runs
check loads/stores/masks, with about 2-3x torch's rounding error (covered by the bf16 atol);
the real bf16 dot path is checked by the same tests on CUDA.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from sam2_fast import kernels as K
from sam2_fast.kernels import (
    axial_rope_tables,
    fpn_lateral_upsample_add,
    fpn_lateral_upsample_add_reference,
    fpn_upsample_add,
    fpn_upsample_add_reference,
    rope_attention,
    rope_attention_reference,
    windowed_attention,
    windowed_attention_reference,
)
from tests.tolerances import KERNEL_ATOL, KERNEL_ERR_FACTOR, rel_l2

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture
def seed():
    """A fresh seed per test, reported in failure messages."""
    return torch.seed()


def _check_rule(ours, torch_same_dtype, oracle, dtype, what):
    err = rel_l2(ours, oracle)
    ref_err = rel_l2(torch_same_dtype, oracle)
    bound = KERNEL_ERR_FACTOR * ref_err + KERNEL_ATOL[dtype]
    assert torch.isfinite(ours.float()).all(), f"{what}: non-finite output"
    assert err <= bound, (
        f"{what}: kernel err {err:.3e} > {KERNEL_ERR_FACTOR} x torch err {ref_err:.3e} "
        f"+ atol {KERNEL_ATOL[dtype]:.0e}"
    )
    return err


def _noncontig(shape, dtype, mode):
    """A random tensor of ``shape`` with awkward strides: 0 contiguous, 1 a channel slice of a
    bigger tensor, 2 a transposed view (dims 1, 2) of a channel slice."""
    if mode == 0:
        return torch.randn(shape, dtype=dtype, device=DEVICE)
    *lead, last = shape
    if mode == 1:
        big = torch.randn(*lead, last + 7, dtype=dtype, device=DEVICE)
        return big[..., 3 : 3 + last]
    t = list(lead)
    t[1], t[2] = t[2], t[1]
    big = torch.randn(*t, last + 5, dtype=dtype, device=DEVICE)
    return big[..., 2 : 2 + last].transpose(1, 2)


# =============================================================================================
# windowed_attention
# =============================================================================================

# (B, H, W, heads, head_dim, window, q_stride, has_bias, layout)
WIN_CASES = [
    (1, 8, 8, 1, 16, 4, 1, True, 0),  # exact windows
    (2, 9, 11, 2, 24, 4, 1, True, 1),  # padding, B > 1, head_dim 24
    (1, 15, 13, 2, 24, 7, 2, True, 2),  # odd window pooled 7 -> 3, padding
    (1, 16, 16, 2, 24, 14, 2, True, 1),  # stage-4 entry analogue: 14 -> 7, padding
    (1, 8, 10, 2, 16, 4, 2, False, 0),  # 4 -> 2 (stage-3 entry), no bias
    (2, 6, 5, 3, 12, 8, 1, True, 2),  # grid smaller than the window, head_dim 12
    (1, 12, 12, 1, 48, 8, 1, False, 1),  # padding with no bias (zeros), head_dim 48
    (1, 9, 8, 1, 20, 3, 3, True, 0),  # q_stride 3 (general)
    (1, 10, 10, 1, 20, 0, 1, True, 1),  # global: the shared flash kernel (strided views)
    (1, 9, 11, 2, 16, 0, 2, True, 2),  # global, pooled odd grid: the window kernel
    (2, 7, 9, 3, 36, 0, 1, False, 0),  # global, 2 images, head_dim 36: the flash kernel
    (1, 6, 7, 2, 24, 0, 1, True, 2),  # global, rows not evenly spaced: the window kernel
]


def _win_inputs(case, dtype):
    B, H, W, nh, D, ws, s, has_bias, layout = case
    C = nh * D
    qkv = _noncontig((B, H, W, 3 * C), dtype, layout)
    bias = torch.randn(3 * C, device=DEVICE) if has_bias else None
    return qkv, bias, nh, ws, s


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", WIN_CASES, ids=lambda c: "x".join(map(str, c)))
def test_windowed_attention_matches_reference(case, dtype, seed):
    qkv, bias, nh, ws, s = _win_inputs(case, dtype)
    out = windowed_attention(qkv, bias, nh, ws, s, backend="triton")
    ref = windowed_attention_reference(qkv, bias, nh, ws, s)
    oracle = windowed_attention_reference(
        qkv.double(), None if bias is None else bias.to(dtype).double(), nh, ws, s
    )
    B, H, W = qkv.shape[:3]
    assert out.shape == (B, H // s, W // s, qkv.shape[-1] // 3)
    assert out.dtype == dtype and out.is_contiguous()
    _check_rule(out, ref, oracle, dtype, f"windowed {case} {dtype} seed={seed}")


def test_windowed_reference_matches_official_windowing(seed):
    """Reference vs the official window_partition -> qkv Linear -> do_pool -> SDPA ->
    window_unpartition sequence (MultiScaleBlock.forward + MultiScaleAttention.forward),
    assembled here from the official helpers."""
    from sam2.modeling.backbones.hieradet import do_pool
    from sam2.modeling.backbones.utils import window_partition, window_unpartition

    torch.set_default_dtype(torch.float64)
    try:
        for B, H, W, dim, nh, ws, s in [(2, 9, 11, 16, 2, 4, 1), (1, 16, 16, 24, 2, 14, 2),
                                        (1, 8, 12, 16, 1, 4, 2), (1, 9, 9, 16, 2, 0, 2)]:
            x = torch.randn(B, H, W, dim)
            lin = torch.nn.Linear(dim, 3 * dim)
            pool = torch.nn.MaxPool2d(kernel_size=s, stride=s, ceil_mode=False) if s > 1 else None
            # official
            shortcut_hw = do_pool(x, pool).shape[1:3] if pool is not None else (H, W)
            xw, pad_hw = window_partition(x, ws) if ws > 0 else (x, None)
            Bw, h, w, _ = xw.shape
            q, k, v = torch.unbind(lin(xw).reshape(Bw, h * w, 3, nh, -1), 2)
            if pool is not None:
                q = do_pool(q.reshape(Bw, h, w, -1), pool)
                h, w = q.shape[1:3]
                q = q.reshape(Bw, h * w, nh, -1)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                               v.transpose(1, 2))
            o = o.transpose(1, 2).reshape(Bw, h, w, -1)
            if ws > 0:
                wq = ws // s
                Hs, Ws = shortcut_hw
                pad_hw = (Hs + (wq - Hs % wq) % wq, Ws + (wq - Ws % wq) % wq)
                o = window_unpartition(o, wq, pad_hw, (Hs, Ws))
            ours = windowed_attention_reference(lin(x), lin.bias, nh, ws, s)
            assert ours.shape == o.shape
            assert rel_l2(ours, o) < 1e-12, f"case {(B, H, W, dim, nh, ws, s)} seed={seed}"
    finally:
        torch.set_default_dtype(torch.float32)


def test_windowed_attention_errors():
    qkv = torch.randn(1, 8, 8, 48, device=DEVICE)
    with pytest.raises(ValueError, match="qkv"):
        windowed_attention(qkv[0], None, 2, 4, backend="triton")
    with pytest.raises(ValueError, match="qkv"):
        windowed_attention(qkv.to(torch.int32), None, 2, 4, backend="triton")
    with pytest.raises(ValueError, match="qkv"):
        windowed_attention(qkv.double(), None, 2, 4, backend="triton")  # fp64: reference only
    with pytest.raises(ValueError, match="qkv"):
        windowed_attention(qkv, None, 5, 4, backend="triton")  # 48 not 3 * 5 * d
    with pytest.raises(ValueError, match="qkv_bias"):
        windowed_attention(qkv, torch.randn(47, device=DEVICE), 2, 4, backend="triton")
    with pytest.raises(ValueError, match="qkv_bias"):
        windowed_attention(qkv, torch.randn(48, device="meta"), 2, 4, backend="triton")
    with pytest.raises(ValueError, match="num_heads"):
        windowed_attention(qkv, None, 0, 4, backend="triton")
    with pytest.raises(ValueError, match="window_size"):
        windowed_attention(qkv, None, 2, -1, backend="triton")
    with pytest.raises(ValueError, match="q_stride"):
        windowed_attention(qkv, None, 2, 4, 0, backend="triton")
    with pytest.raises(ValueError, match="window_size"):
        windowed_attention(qkv, None, 2, 1, 2, backend="triton")
    with pytest.raises(ValueError, match="unpartitions"):  # 14x14, ws 7 -> 3: 6 < 7
        windowed_attention(torch.randn(1, 14, 14, 48, device=DEVICE), None, 2, 7, 2,
                           backend="torch")
    with pytest.raises(ValueError, match="backend"):
        windowed_attention(qkv, None, 2, 4, backend="cuda")


# =============================================================================================
# rope_attention
# =============================================================================================

# (B, heads, grid_x, grid_y, d, frames, pointers, num_splits, layout); frames 0 = self-attention
ROPE_CASES = [
    (1, 1, 4, 4, 32, 0, 0, 0, 0),  # self-attention
    (2, 2, 5, 4, 48, 2, 5, 3, 2),  # objects x heads, 2 frames + 5 pointers, 3 splits
    (1, 1, 6, 6, 64, 3, 8, 4, 1),  # 3 frames + 8 pointers, 4 splits
    (1, 1, 3, 5, 20, 1, 3, 0, 2),  # d 20 (half 10, padded to 32), rectangular grid
    (3, 1, 4, 4, 16, 2, 0, 2, 0),  # 3 objects, 2 frames, 2 splits
    (1, 1, 4, 4, 256, 2, 4, 2, 2),  # the published head dim
    (1, 2, 3, 3, 18, 2, 2, 1, 1),  # d 18 (not a multiple of 4): random tables
    (2, 1, 3, 3, 32, 4, 1, 0, 1),  # 4 frames + 1 pointer: 37 keys (partial key tiles)
    (4, 1, 2, 3, 24, 5, 6, 2, 2),  # 4 objects, 5 frames, 6 pointers, 2 splits
    (2, 1, 3, 2, 40, 6, 0, 0, 0),  # 6 frames, no pointers: 36 keys
    (5, 1, 3, 3, 32, 7, 16, 5, 1),  # 5 objects, a full bank (7 frames) + 16 pointers, 5 splits
    (1, 1, 5, 5, 8, 1, 0, 0, 0),  # d 8 (padded to 16), one frame, no pointers
]


def _rope_inputs(case, dtype):
    B, Hh, gx, gy, d, frames, ptrs, splits, layout = case
    Nq = gx * gy
    Nk = max(frames, 1) * Nq + ptrs
    # _separate_heads layout: (B, N, heads, d).transpose(1, 2)
    q = _noncontig((B, Hh, Nq, d), dtype, 2 if layout else 0)
    k = _noncontig((B, Hh, Nk, d), dtype, layout)
    v = _noncontig((B, Hh, Nk, d), dtype, 2)
    if d % 4 == 0:
        cos, sin = axial_rope_tables(d, gx, gy, device=DEVICE)
    else:
        ang = torch.rand(Nq, d // 2, device=DEVICE) * 6.0
        cos, sin = ang.cos(), ang.sin()
    return q, k, v, cos, sin, ptrs, splits


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", ROPE_CASES, ids=lambda c: "x".join(map(str, c)))
def test_rope_attention_matches_reference(case, dtype, seed):
    q, k, v, cos, sin, ptrs, splits = _rope_inputs(case, dtype)
    out = rope_attention(q, k, v, cos, sin, ptrs, num_splits=splits, backend="triton")
    ref = rope_attention_reference(q, k, v, cos, sin, ptrs)
    oracle = rope_attention_reference(q.double(), k.double(), v.double(), cos.double(),
                                      sin.double(), ptrs)
    assert out.shape == q.shape and out.dtype == dtype
    # storage (B, Nq, heads, d): recombining heads is a view
    assert out.transpose(1, 2).is_contiguous()
    _check_rule(out, ref, oracle, dtype, f"rope {case} {dtype} seed={seed}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", [ROPE_CASES[1], ROPE_CASES[4], ROPE_CASES[10], ROPE_CASES[6]],
                         ids=lambda c: "x".join(map(str, c)))
def test_rope_attention_precomputed_keys(case, dtype, seed):
    """The cached-keys entry point: keys rotated once with rope_rotate (per memory frame, as a
    bank would, or all at once) and passed with k_rotated=True give the fused result, on the
    Triton and the torch paths; the per-frame and whole-bank rotations are bit-identical."""
    q, k, v, cos, sin, ptrs, splits = _rope_inputs(case, dtype)
    Nq = q.shape[2]
    n_rope = k.shape[2] - ptrs
    for backend in ("triton", "torch"):
        whole = K.rope_rotate(k, cos, sin, ptrs, backend=backend)
        frames = [K.rope_rotate(k[:, :, f:f + Nq], cos, sin, backend=backend)
                  for f in range(0, n_rope, Nq)]
        per_frame = torch.cat(frames + [k[:, :, n_rope:]], dim=2)
        assert torch.equal(per_frame, whole), f"{backend} seed={seed}"
        assert whole.is_contiguous() and whole.dtype == dtype
    ref = rope_attention_reference(q, k, v, cos, sin, ptrs)
    oracle = rope_attention_reference(q.double(), k.double(), v.double(), cos.double(),
                                      sin.double(), ptrs)
    cached = K.rope_rotate(k, cos, sin, ptrs, backend="triton")
    out = rope_attention(q, cached, v, cos, sin, ptrs, k_rotated=True, num_splits=splits,
                         backend="triton")
    _check_rule(out, ref, oracle, dtype, f"rope cached {case} {dtype} seed={seed}")
    # the torch path with keys rotated by the reference is the reference, bit for bit
    cached_ref = K.rope_rotate(k, cos, sin, ptrs, backend="torch")
    out_t = rope_attention(q, cached_ref, v, cos, sin, ptrs, k_rotated=True, backend="torch")
    assert torch.equal(out_t, ref), f"seed={seed}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rope_rotate_matches_reference(dtype, seed):
    """The fused rotation pass against the reference rotation: exact in fp32 / fp16 (same fp32
    products and sum, one rounding); bf16 within one unit in the last place (the interpreter
    rounds fp32 -> bf16 toward zero; on CUDA it is exact too)."""
    for B, Hh, N, T, d, excl, layout in [(2, 1, 3 * 12 + 5, 12, 32, 5, 1), (1, 2, 9, 9, 18, 0, 2),
                                         (3, 1, 2 * 6 + 64, 6, 256, 64, 0)]:
        x = _noncontig((B, Hh, N, d), dtype, layout)
        ang = torch.rand(T, d // 2, device=DEVICE) * 6.0
        cos, sin = ang.cos(), ang.sin()
        out = K.rope_rotate(x, cos, sin, excl, backend="triton")
        ref = K.rope_rotate_reference(x, cos, sin, excl)
        assert out.shape == x.shape and out.dtype == dtype and out.is_contiguous()
        assert torch.equal(out[:, :, N - excl:], x[:, :, N - excl:])  # pointers: copied
        if dtype == torch.bfloat16 and DEVICE.type == "cpu":
            ulp = 2.0 ** (torch.floor(torch.log2(ref.float().abs().clamp_min(1e-30))) - 7)
            assert ((out.float() - ref.float()).abs() <= ulp).all(), f"seed={seed}"
        else:
            assert torch.equal(out, ref), f"{(B, Hh, N, T, d, excl)} {dtype} seed={seed}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rope_attention_rotate_sdpa_impl(dtype, seed):
    """impl "rotate_sdpa" (Triton rotation pass + torch SDPA), which a tuned profile may pick."""
    from sam2_fast.kernels.rope_attention import _rope_attention_rotate_sdpa

    for case in (ROPE_CASES[2], ROPE_CASES[8]):
        q, k, v, cos, sin, ptrs, _ = _rope_inputs(case, dtype)
        ref = rope_attention_reference(q, k, v, cos, sin, ptrs)
        oracle = rope_attention_reference(q.double(), k.double(), v.double(), cos.double(),
                                          sin.double(), ptrs)
        out = _rope_attention_rotate_sdpa(q, k, v, cos, sin, ptrs, False)
        _check_rule(out, ref, oracle, dtype, f"rotate_sdpa {case} {dtype} seed={seed}")
        cached = K.rope_rotate(k, cos, sin, ptrs, backend="triton")
        out_c = _rope_attention_rotate_sdpa(q, cached, v, cos, sin, ptrs, True)
        assert torch.equal(out_c, out), f"seed={seed}"


def test_rope_attention_explicit_tiles(seed):
    """Other tile shapes run the same code: explicit configs (any under the interpreter)
    agree with the default; outside the interpreter only shipped configs are accepted."""
    from sam2_fast.kernels import _flash

    q, k, v, cos, sin, ptrs, _ = _rope_inputs((2, 1, 5, 5, 64, 3, 7, 0, 1), torch.float32)
    base = rope_attention(q, k, v, cos, sin, ptrs, backend="triton")
    cfgs = [K.FlashConfig(16, 16, 4, 1), K.FlashConfig(64, 32, 4, 1)]
    if DEVICE.type == "cuda":
        q, k, v = q.half(), k.half(), v.half()
        base = rope_attention(q, k, v, cos, sin, ptrs, backend="triton")
        cfgs = list(_flash.shipped_configs(torch.float16, 64))
    for cfg in cfgs:
        out = rope_attention(q, k, v, cos, sin, ptrs, config=cfg, backend="triton")
        assert rel_l2(out, base) < (1e-5 if DEVICE.type == "cpu" else 1e-3), f"{cfg} seed={seed}"
    shipped = _flash.shipped_configs(torch.bfloat16, 256)
    assert _flash.default_config(torch.bfloat16, 256) in shipped or _flash.interpreter_enabled()
    orig = _flash.interpreter_enabled
    _flash.interpreter_enabled = lambda: False
    try:
        assert _flash.check_config(shipped[0], torch.bfloat16, 256) == shipped[0]
        with pytest.raises(ValueError, match="not shipped"):
            _flash.check_config(K.FlashConfig(256, 16, 4, 1), torch.bfloat16, 256)
        with pytest.raises(ValueError, match="float32"):
            _flash.check_config(K.FlashConfig(64, 32, 4, 2), torch.float32, 256)
    finally:
        _flash.interpreter_enabled = orig


def _tma_operand(shape, dtype, layout):
    """A (B, heads, N, d) operand in a layout a tensor descriptor can read: "bhnd" contiguous,
    "bnhd" the transposed view of (B, N, heads, d) storage (``_separate_heads``), "padded" an
    aligned column slice of a bigger buffer whose spare rows after each object and spare
    columns hold NaN (a bank's unused slots)."""
    B, Hh, N, d = shape
    if layout == "bhnd":
        return torch.randn(shape, dtype=dtype, device=DEVICE)
    if layout == "bnhd":
        return torch.randn(B, N, Hh, d, dtype=dtype, device=DEVICE).transpose(1, 2)
    big = torch.full((B, N + 5, Hh, d + 16), float("nan"), dtype=dtype, device=DEVICE)
    big[:, :N, :, 8:8 + d] = torch.randn(B, N, Hh, d, dtype=dtype, device=DEVICE)
    return big[:, :N, :, 8:8 + d].transpose(1, 2)


# ROPE_CASES whose head dim is a power of two >= 16 (what the descriptor configs read), and
# two heads (a head's columns start mid-row in the (B, N, heads, d) layouts)
TMA_CASES = [c for c in ROPE_CASES if c[4] >= 16 and c[4] & (c[4] - 1) == 0] + [
    (2, 2, 4, 3, 32, 2, 5, 3, 0)]


@pytest.mark.parametrize("layout", ["bnhd", "bhnd", "padded"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rope_attention_tma_configs(dtype, layout, seed):
    """The ``tma`` tile configs (q, k, v read through 2-D tensor descriptors) against the
    reference, with the keys rotated here and cached (passed in ``layout``, as is v): the
    2x-torch-error rule, self-attention and 1-7 memory frames, 1-5 objects, 1-2 heads, partial
    key and query tiles, splits. Under the interpreter they equal their pointer twins bit for
    bit (same tiles, same arithmetic); on CUDA the shipped descriptor configs run."""
    from sam2_fast.kernels import _flash

    for case in TMA_CASES:
        B, Hh, gx, gy, d, frames, ptrs, splits, _ = case
        Nq, Nk = gx * gy, max(frames, 1) * gx * gy + ptrs
        if DEVICE.type == "cuda":
            if d != 256:
                continue
            dtype_run = torch.bfloat16 if dtype == torch.float32 else dtype
            cfgs = [c for c in _flash.shipped_configs(dtype_run, d) if c.tma]
        else:
            if d == 256 and layout != "bnhd":  # the interpreter's slowest case, once
                continue
            dtype_run = dtype
            cfgs = [K.FlashConfig(16, 16, 4, 1, True)]
        q = _tma_operand((B, Hh, Nq, d), dtype_run, layout)
        k = _tma_operand((B, Hh, Nk, d), dtype_run, layout)
        v = _tma_operand((B, Hh, Nk, d), dtype_run, layout)
        cos, sin = axial_rope_tables(d, gx, gy, device=DEVICE)
        ref = rope_attention_reference(q, k, v, cos, sin, ptrs)
        oracle = rope_attention_reference(q.double(), k.double(), v.double(), cos.double(),
                                          sin.double(), ptrs)
        cached = _tma_operand((B, Hh, Nk, d), dtype_run, layout)
        cached.copy_(K.rope_rotate(k, cos, sin, ptrs, backend="triton"))
        for cfg in cfgs:
            twin = K.FlashConfig(cfg.block_m, cfg.block_n, cfg.num_warps, cfg.num_stages)
            for keys, rotated in ((k, False), (cached, True)):
                what = f"tma {case} {dtype_run} {layout} {cfg.name} rotated={rotated} seed={seed}"
                out = rope_attention(q, keys, v, cos, sin, ptrs, k_rotated=rotated,
                                     num_splits=splits, config=cfg, backend="triton")
                _check_rule(out, ref, oracle, dtype_run, what)
                if DEVICE.type == "cpu":
                    ptr = rope_attention(q, keys, v, cos, sin, ptrs, k_rotated=rotated,
                                         num_splits=splits, config=twin, backend="triton")
                    assert torch.equal(out, ptr), what


def test_rope_attention_tma_layout_rules(seed, monkeypatch):
    """Operands no descriptor can read: an explicit ``tma`` config raises and names them; a
    profile's ``tma`` config falls back to its pointer twin (same result)."""
    from sam2_fast.kernels import _flash
    from sam2_fast.kernels import profile as P

    q, k, v, cos, sin, ptrs, _ = _rope_inputs((2, 1, 4, 4, 32, 2, 3, 0, 2), torch.float16)
    assert _flash.tma_problem(v, "v") and "16-byte" in _flash.tma_problem(v, "v")
    cfg = K.FlashConfig(16, 16, 4, 1, True)
    with pytest.raises(ValueError, match="tensor descriptors: v: the token stride"):
        rope_attention(q, k, v, cos, sin, ptrs, config=cfg, backend="triton")
    cached = K.rope_rotate(k, cos, sin, ptrs, backend="triton")
    with pytest.raises(ValueError, match="tensor descriptors: k: .*; v: "):
        rope_attention(q, _noncontig(cached.shape, cached.dtype, 1), v, cos, sin, ptrs,
                       k_rotated=True, config=cfg, backend="triton")
    v_ok = v.contiguous()
    # (b=1, h=1) ends the storage at column 31 of its last row, while (b=0, h=1) and (b=1, h=0)
    # sit at column 32: a tile overhanging their rows would read past the allocation
    crossed = torch.randn(480, device=DEVICE).as_strided((2, 2, 4, 32), (224, 32, 64, 1))
    for bad, match in [(v_ok[..., :1, :].expand(v.shape), "stride"),
                       (v_ok.transpose(2, 3).contiguous().transpose(2, 3), "contiguous"),
                       (crossed, "past the last element's column")]:
        assert _flash.tma_problem(bad) and match in _flash.tma_problem(bad)
    q48, k48, v48, cos48, sin48, p48, _ = _rope_inputs((1, 1, 4, 4, 48, 1, 0, 0, 0),
                                                       torch.float16)
    with pytest.raises(ValueError, match="power of two"):
        rope_attention(q48, k48, v48.contiguous(), cos48, sin48, p48, config=cfg,
                       backend="triton")
    # a profile's descriptor config (what choose() returns for this GPU's profile) on the
    # misaligned v: the pointer twin runs
    RA = sys.modules["sam2_fast.kernels.rope_attention"]  # the module (the package's name
    # rope_attention is the function)
    monkeypatch.setattr(RA, "choose", lambda *a, **kw: P.Choice("triton", config=cfg))
    out = rope_attention(q, k, v, cos, sin, ptrs, backend="triton")
    twin = rope_attention(q, k, v, cos, sin, ptrs, config=K.FlashConfig(16, 16, 4, 1),
                          backend="triton")
    assert torch.equal(out, twin), f"seed={seed}"
    with pytest.raises(ValueError, match="tensor descriptors"):  # the same, chosen explicitly
        rope_attention(q, k, v, cos, sin, ptrs, config=cfg, backend="triton")


def test_flash_split_policy():
    """Split-K only where the query tiles leave SMs idle and every split keeps enough key
    tiles (the H200 numbers of the docstring)."""
    from sam2_fast.kernels import _flash

    cuda = torch.device("cuda", 0)
    orig = _flash.sm_count
    _flash.sm_count = lambda device: 132
    try:
        assert _flash.auto_splits(32, 449, cuda) == 4  # 1 object, full bank, 128-query tiles
        assert _flash.auto_splits(32, 64, cuda) == 4  # 1 object, self-attention
        assert _flash.auto_splits(64, 449, cuda) == 2  # 2 objects
        assert _flash.auto_splits(128, 449, cuda) == 1  # 4 objects fill the GPU
        assert _flash.auto_splits(512, 449, cuda) == 1
        assert _flash.auto_splits(32, 12, cuda) == 1  # too few key tiles to split
        assert _flash.auto_splits(1, 10_000, cuda) == _flash.MAX_SPLITS
    finally:
        _flash.sm_count = orig
    assert _flash.auto_splits(1, 10_000, torch.device("cpu")) == 1


def test_rope_attention_auto_splits_agree(seed):
    """Heuristic split count (1 off-GPU) and forced splits give the same result."""
    q, k, v, cos, sin, ptrs, _ = _rope_inputs((1, 1, 4, 4, 32, 4, 6, 0, 0), torch.float32)
    outs = [rope_attention(q, k, v, cos, sin, ptrs, num_splits=n, backend="triton")
            for n in (0, 1, 2, 5, 100)]
    for o in outs[1:]:
        assert rel_l2(o, outs[0]) < 1e-5, f"seed={seed}"


@pytest.mark.parametrize("d,ex,ey", [(32, 4, 4), (256, 8, 6), (64, 5, 3)])
def test_axial_rope_tables_match_official(d, ex, ey):
    from sam2.modeling.position_encoding import compute_axial_cis

    cis = compute_axial_cis(dim=d, end_x=ex, end_y=ey)
    cos, sin = axial_rope_tables(d, ex, ey)
    assert cos.dtype == torch.float32 and cos.shape == (ex * ey, d // 2)
    assert torch.equal(cos, cis.real) and torch.equal(sin, cis.imag)


@pytest.mark.parametrize("frames,ptrs", [(1, 0), (3, 4)])
def test_rope_reference_matches_official(frames, ptrs, seed):
    """Reference vs the official apply_rotary_enc (rope_k_repeat) + SDPA, as in
    RoPEAttention.forward."""
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    B, Hh, d, g = 2, 2, 32, 4
    Nq = g * g
    Nk = frames * Nq + ptrs
    q = torch.randn(B, Hh, Nq, d)
    k = torch.randn(B, Hh, Nk, d)
    v = torch.randn(B, Hh, Nk, d)
    freqs = compute_axial_cis(dim=d, end_x=g, end_y=g)
    qo, ko = q.clone(), k.clone()
    n_rope = Nk - ptrs
    qo, ko[:, :, :n_rope] = apply_rotary_enc(qo, ko[:, :, :n_rope], freqs_cis=freqs,
                                             repeat_freqs_k=frames > 1)
    official = F.scaled_dot_product_attention(qo, ko, v)
    ours = rope_attention_reference(q, k, v, freqs.real, freqs.imag, ptrs)
    assert rel_l2(ours, official) < 1e-6, f"seed={seed}"


def test_rope_attention_errors():
    q = torch.randn(1, 1, 16, 32, device=DEVICE)
    k = torch.randn(1, 1, 36, 32, device=DEVICE)
    cos, sin = axial_rope_tables(32, 4, 4, device=DEVICE)
    with pytest.raises(ValueError, match="q"):
        rope_attention(q[0], k, k, cos, sin, 4, backend="triton")
    with pytest.raises(ValueError, match="k dtype"):
        rope_attention(q, k.half(), k, cos, sin, 4, backend="triton")
    with pytest.raises(ValueError, match="v"):
        rope_attention(q, k, k[:, :, :20], cos, sin, 4, backend="triton")
    with pytest.raises(ValueError, match="k must have shape"):
        rope_attention(q, k[..., :16], k[..., :16], cos, sin, 4, backend="triton")
    with pytest.raises(ValueError, match="cos"):
        rope_attention(q, k, k, cos[:8], sin, 4, backend="triton")
    with pytest.raises(ValueError, match="sin"):
        rope_attention(q, k, k, cos, sin.to("meta"), 4, backend="triton")
    with pytest.raises(ValueError, match="multiple of Nq"):
        rope_attention(q, k, k, cos, sin, 0, backend="triton")  # 36 keys, 16 queries
    with pytest.raises(ValueError, match="num_k_exclude_rope"):
        rope_attention(q, k, k, cos, sin, 37, backend="triton")
    with pytest.raises(ValueError, match="even"):
        ang = torch.rand(16, 7, device=DEVICE)
        rope_attention(q[..., :15], k[..., :15], k[..., :15], ang, ang, 4, backend="torch")
    with pytest.raises(ValueError, match="q dtype"):
        rope_attention(q.double(), k.double(), k.double(), cos, sin, 4, backend="triton")
    with pytest.raises(ValueError, match="head_dim"):
        axial_rope_tables(30, 4, 4)
    with pytest.raises(ValueError, match="not shipped|tile config"):
        rope_attention(q, k, k, cos, sin, 4, config=K.FlashConfig(0, 16, 4, 1),
                       backend="triton") if DEVICE.type == "cpu" else rope_attention(
            q, k, k, cos, sin, 4, config=K.FlashConfig(256, 16, 4, 1), backend="triton")
    # rope_rotate
    with pytest.raises(ValueError, match="x must have shape"):
        K.rope_rotate(k[0], cos, sin, 4, backend="triton")
    with pytest.raises(ValueError, match="multiple of"):
        K.rope_rotate(k, cos, sin, 0, backend="triton")  # 36 rows, 16-row table
    with pytest.raises(ValueError, match="num_exclude"):
        K.rope_rotate(k, cos, sin, 40, backend="triton")
    with pytest.raises(ValueError, match="cos"):
        K.rope_rotate(k, cos[:, :8], sin, 4, backend="triton")
    with pytest.raises(ValueError, match="sin shape"):
        K.rope_rotate(k, cos, sin[:8], 4, backend="torch")
    with pytest.raises(ValueError, match="x dtype"):
        K.rope_rotate(k.double(), cos, sin, 4, backend="triton")
    with pytest.raises(ValueError, match="backend"):
        K.rope_rotate(k, cos, sin, 4, backend="cuda")


# =============================================================================================
# fpn_upsample_add (+ fused lateral 1x1 conv)
# =============================================================================================


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,coarse_dtype,layout", [
    ((2, 5, 6, 10), torch.float32, 0),
    ((1, 7, 14, 4), None, 1),
    ((1, 3, 2, 2), None, 2),
])
def test_fpn_upsample_add_matches_reference(shape, coarse_dtype, layout, dtype, seed):
    B, C, H, W = shape
    lateral = _noncontig(shape, dtype, layout)
    coarse = _noncontig((B, C, H // 2, W // 2), coarse_dtype or dtype, 2 - layout)
    out = fpn_upsample_add(lateral, coarse, backend="triton")
    ref = fpn_upsample_add_reference(lateral, coarse)
    assert out.dtype == dtype and out.shape == shape
    # one rounding of an exact fp32 sum: identical up to the interpreter's bf16 truncation
    tol = 0 if dtype != torch.bfloat16 or DEVICE.type == "cuda" else 2 ** -7
    torch.testing.assert_close(out.float(), ref.float(), rtol=tol, atol=tol,
                               msg=lambda m: f"seed={seed}: {m}")
    out32 = fpn_upsample_add(lateral, coarse, out_dtype=torch.float32, backend="triton")
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, lateral.float() + F.interpolate(
        coarse.float(), scale_factor=2.0, mode="nearest"), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("B,Cin,C,H,W,has_bias,layout", [
    (2, 40, 37, 6, 10, True, 0),
    (1, 16, 32, 8, 8, False, 2),
    (1, 70, 20, 4, 6, True, 1),
])
def test_fpn_lateral_upsample_add_matches_reference(B, Cin, C, H, W, has_bias, layout, dtype,
                                                    seed):
    x = _noncontig((B, Cin, H, W), dtype, layout)
    weight = (torch.randn(C, Cin, 1, 1, device=DEVICE) / Cin**0.5).to(dtype)
    bias = torch.randn(C, device=DEVICE) if has_bias else None
    coarse = torch.randn(B, C, H // 2, W // 2, device=DEVICE)
    out = fpn_lateral_upsample_add(x, weight, bias, coarse, backend="triton")
    ref = fpn_lateral_upsample_add_reference(x, weight, bias, coarse)
    oracle = fpn_lateral_upsample_add_reference(
        x.double(), weight.double(), None if bias is None else bias.to(dtype).double(),
        coarse.double())
    assert out.dtype == dtype and out.shape == (B, C, H, W)
    _check_rule(out, ref, oracle, dtype, f"fpn lateral {dtype} seed={seed}")


def test_fpn_errors():
    lat = torch.randn(1, 4, 6, 8, device=DEVICE)
    co = torch.randn(1, 4, 3, 4, device=DEVICE)
    with pytest.raises(ValueError, match="lateral"):
        fpn_upsample_add(lat[0], co, backend="triton")
    with pytest.raises(ValueError, match="coarse"):
        fpn_upsample_add(lat, co[..., :3], backend="triton")
    with pytest.raises(ValueError, match="coarse"):
        fpn_upsample_add(lat[..., :7], co, backend="triton")  # odd W
    with pytest.raises(ValueError, match="coarse"):
        fpn_upsample_add(lat, co.to("meta"), backend="triton")
    with pytest.raises(ValueError, match="lateral dtype"):
        fpn_upsample_add(lat.int(), co, backend="triton")
    with pytest.raises(ValueError, match="out_dtype"):
        fpn_upsample_add(lat, co, out_dtype=torch.int32, backend="triton")
    x = torch.randn(1, 10, 6, 8, device=DEVICE)
    w = torch.randn(4, 10, 1, 1, device=DEVICE)
    with pytest.raises(ValueError, match="weight"):
        fpn_lateral_upsample_add(x, w[:, :9], None, co, backend="triton")
    with pytest.raises(ValueError, match="weight dtype"):
        fpn_lateral_upsample_add(x, w.half(), None, co, backend="triton")
    with pytest.raises(ValueError, match="bias"):
        fpn_lateral_upsample_add(x, w, torch.randn(5, device=DEVICE), co, backend="triton")
    with pytest.raises(ValueError, match="x"):
        fpn_lateral_upsample_add(x[0], w, None, co, backend="triton")


# =============================================================================================
# backends, registration, tracing
# =============================================================================================


def test_auto_backend_on_cpu_is_the_reference():
    qkv = torch.randn(1, 6, 6, 24)
    assert torch.equal(windowed_attention(qkv, None, 2, 4, backend="auto"),
                       windowed_attention_reference(qkv, None, 2, 4))
    lat, co = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 2, 2)
    assert torch.equal(fpn_upsample_add(lat, co), fpn_upsample_add_reference(lat, co))


@pytest.mark.skipif(DEVICE.type != "cpu", reason="the interpreter's problem, on the CPU")
@pytest.mark.parametrize("triton_v, numpy_v, bad", [("3.6.0", "2.4.6", True), ("3.6.1", "2.3.5", False),
                                                    ("3.7.0", "2.4.0", False), ("3.10.0", "2.5.1", False)])
def test_interpreter_problem_names_the_fix(monkeypatch, triton_v, numpy_v, bad):
    """Triton 3.6's interpreter with NumPy >= 2.4 fails inside every kernel with a loop bound;
    launching says so in one line instead (and the suite stops at once, see conftest)."""
    import numpy
    import triton

    from sam2_fast.kernels import _backend

    monkeypatch.setattr(triton, "__version__", triton_v)
    monkeypatch.setattr(numpy, "__version__", numpy_v)
    _backend.interpreter_problem.cache_clear()
    try:
        problem = _backend.interpreter_problem()
        assert (problem is not None) == bad
        qkv = torch.randn(1, 6, 6, 24)
        if bad:
            assert "numpy<2.4" in problem and triton_v in problem and numpy_v in problem
            with pytest.raises(RuntimeError, match="numpy<2.4"):
                windowed_attention(qkv, None, 2, 4, backend="triton")
        else:
            windowed_attention(qkv, None, 2, 4, backend="triton")
    finally:
        monkeypatch.undo()
        _backend.interpreter_problem.cache_clear()


def _tiles(d):
    """An explicit tile config as the ops' four ints for the fp32 samples: a small one under
    the interpreter; on CUDA zeros (the default: no fp32 flash config is shipped)."""
    return (32, 16, 4, 1) if DEVICE.type == "cpu" else (0, 0, 0, 0)


def _op_samples():
    """(op, args) samples for the registered ops, small."""
    qkv = torch.randn(1, 7, 6, 3 * 32, device=DEVICE)[..., :72]
    bias = torch.randn(72, device=DEVICE)
    q = torch.randn(1, 16, 1, 32, device=DEVICE).transpose(1, 2)
    k = torch.randn(1, 36, 1, 32, device=DEVICE).transpose(1, 2)
    v = torch.randn(1, 1, 36, 32, device=DEVICE)
    cos, sin = axial_rope_tables(32, 4, 4, device=DEVICE)
    lat = torch.randn(1, 4, 6, 8, device=DEVICE)
    co = torch.randn(1, 4, 3, 4, device=DEVICE)
    x = torch.randn(1, 10, 6, 8, device=DEVICE)
    w = torch.randn(4, 10, 1, 1, device=DEVICE)
    ops = torch.ops.sam2_fast
    return [
        (ops.windowed_attention.default, (qkv, bias, 2, 4, 2)),
        (ops.windowed_attention.default, (qkv, None, 1, 0, 1)),
        (ops.rope_attention.default, (q, k, v, cos, sin, 4, 2, False, 0, 0, 0, 0, False)),
        (ops.rope_attention.default, (q, k, v, cos, sin, 4, 0, True, *_tiles(32), False)),
        (ops.rope_attention.default, (q, k, v, cos, sin, 4, 2, False, *_tiles(32),
                                      DEVICE.type == "cpu")),  # descriptor tiles (interpreter)
        (ops.rope_rotate.default, (k, cos, sin, 4)),
        (ops.windowed_attention.default, (qkv, bias, 1, 0, 1, *_tiles(24))),
        (ops.fpn_upsample_add.default, (lat, co, None)),
        (ops.fpn_lateral_upsample_add.default, (x, w, torch.randn(4, device=DEVICE), co,
                                                torch.float32)),
    ]


def test_registered_ops_fake_tensor_shapes():
    """The fake (meta) implementations give the real outputs' shape, dtype and strides."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    for op, args in _op_samples():
        real = op(*args)
        with FakeTensorMode(allow_non_fake_inputs=False) as mode:
            fargs = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
            fake = op(*fargs)
        assert fake.shape == real.shape and fake.dtype == real.dtype, op
        assert fake.stride() == real.stride(), op


def test_registered_ops_opcheck():
    """torch.library.opcheck: schema, autograd registration and fake impl of every op (opcheck
    raises on a failure; its report must say SUCCESS for each check)."""
    for op, args in _op_samples():
        report = torch.library.opcheck(op, args, test_utils=(
            "test_schema", "test_autograd_registration", "test_faketensor"))
        assert report and all(v == "SUCCESS" for v in report.values()), (op, report)


def test_torch_compile_fullgraph_traces_ops(seed):
    """torch.compile(fullgraph=True) traces every public op (triton backend) without a
    graph break; aot_eager on the CPU (runs the interpreted kernels), inductor on CUDA."""
    torch._dynamo.reset()
    qkv = torch.randn(1, 9, 7, 48, device=DEVICE)
    bias = torch.randn(48, device=DEVICE)
    q = torch.randn(1, 1, 16, 32, device=DEVICE)
    k = torch.randn(1, 1, 36, 32, device=DEVICE)
    cos, sin = axial_rope_tables(32, 4, 4, device=DEVICE)
    lat, co = torch.randn(1, 16, 6, 4, device=DEVICE), torch.randn(1, 16, 3, 2, device=DEVICE)

    def f(qkv, bias, q, k, cos, sin, lat, co):
        a = windowed_attention(qkv, bias, 2, 4, 2, backend="triton")
        r = rope_attention(q, k, k, cos, sin, 4, backend="triton")
        x = a.permute(0, 3, 1, 2)  # (1, 16, 4, 3)
        f1 = fpn_upsample_add(lat, co, backend="triton")
        return a.sum() + r.sum() + x.sum() + f1.sum()

    backend = "inductor" if DEVICE.type == "cuda" else "aot_eager"
    compiled = torch.compile(f, fullgraph=True, backend=backend)
    args = (qkv, bias, q, k, cos, sin, lat, co)
    torch.testing.assert_close(compiled(*args), f(*args), rtol=1e-5, atol=1e-4,
                               msg=lambda m: f"seed={seed}: {m}")


def test_import_without_triton():
    """``import sam2_fast.kernels`` and the torch backend work when triton is absent."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "triton" or name.startswith("triton."):
                    raise ImportError("blocked")
        sys.meta_path.insert(0, Block())
        import torch
        from sam2_fast import kernels as K
        assert not K.triton_available()
        o = K.windowed_attention(torch.randn(1, 5, 5, 24), None, 2, 4)
        assert o.shape == (1, 5, 5, 8)
        cos, sin = K.axial_rope_tables(16, 2, 2)
        q = torch.randn(1, 1, 4, 16)
        assert K.rope_attention(q, q, q, cos, sin).shape == q.shape
        assert K.fpn_upsample_add(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 2, 2)).shape[-1] == 4
        try:
            K.windowed_attention(torch.randn(1, 5, 5, 24), None, 2, 4, backend="triton")
        except RuntimeError:
            pass
        else:
            raise AssertionError("backend='triton' without triton must raise")
        print("ok")
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=root, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


# =============================================================================================
# GPU only: published shapes
# =============================================================================================


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("H,nh,D,ws,s", [
    (256, 1, 96, 8, 1),  # tiny stage 1
    (256, 2, 96, 8, 2),  # stage-2 entry: window 8 pooled to 4, 256 -> 128
    (64, 4, 96, 14, 1),  # stage 3, padded windows
    (64, 4, 96, 0, 1),  # stage-3 global (4096 tokens)
    (64, 8, 96, 14, 2),  # stage-4 entry: 14 -> 7 on 32, padded
    (32, 2, 72, 8, 1),  # large: head_dim 72, stage-4 window 8
])
def test_windowed_attention_published_shapes_gpu(H, nh, D, ws, s, dtype, seed):
    qkv = torch.randn(1, H, H, 3 * nh * D, device="cuda", dtype=dtype)
    bias = torch.randn(3 * nh * D, device="cuda")
    out = windowed_attention(qkv, bias, nh, ws, s, backend="triton")
    ref = windowed_attention_reference(qkv, bias, nh, ws, s)
    oracle = windowed_attention_reference(qkv.double(), bias.to(dtype).double(), nh, ws, s)
    _check_rule(out, ref, oracle, dtype, f"windowed gpu {(H, nh, D, ws, s)} seed={seed}")


@pytest.mark.gpu
@pytest.mark.parametrize("cached", [False, True], ids=["rotated_here", "cached_keys"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("B,frames,ptrs", [(1, 1, 0), (1, 7, 64), (4, 2, 16)])
def test_rope_attention_published_shapes_gpu(B, frames, ptrs, dtype, cached, seed):
    d, g = 256, 64
    Nq = g * g
    Nk = frames * Nq + ptrs
    q = torch.randn(B, Nq, 1, d, device="cuda", dtype=dtype).transpose(1, 2)
    k = torch.randn(B, Nk, 1, d, device="cuda", dtype=dtype).transpose(1, 2)
    v = torch.randn(B, Nk, 1, d, device="cuda", dtype=dtype).transpose(1, 2)
    cos, sin = axial_rope_tables(d, g, g, device="cuda")
    if cached:
        k_rot = K.rope_rotate(k, cos, sin, ptrs, backend="triton")
        out = rope_attention(q, k_rot, v, cos, sin, ptrs, k_rotated=True, backend="triton")
    else:
        out = rope_attention(q, k, v, cos, sin, ptrs, backend="triton")
    ref = rope_attention_reference(q, k, v, cos, sin, ptrs)
    oracle = rope_attention_reference(q.double(), k.double(), v.double(), cos.double(),
                                      sin.double(), ptrs)
    _check_rule(out, ref, oracle, dtype, f"rope gpu {(B, frames, ptrs)} seed={seed}")
    if dtype != torch.float32 and not cached:  # every shipped config, descriptor twins too
        from sam2_fast.kernels import _flash

        for cfg in _flash.shipped_configs(dtype, d):
            out = rope_attention(q, k, v, cos, sin, ptrs, config=cfg, backend="triton")
            _check_rule(out, ref, oracle, dtype, f"rope gpu {(B, frames, ptrs)} {cfg.name} "
                        f"seed={seed}")


def test_public_namespace():
    for name in K.__all__:
        assert hasattr(K, name), name
