"""Axial-RoPE attention (SAM 2 memory attention), rotation fused into a flash kernel.

Replaces, in the official ``sam2.modeling.sam.transformer.RoPEAttention.forward``, all that
happens between ``_separate_heads`` and ``_recombine_heads``: ``apply_rotary_enc`` (axial
rotary encoding of q and of the first ``Nk - num_k_exclude_rope`` keys, the table repeated
over memory frames) and ``F.scaled_dot_product_attention``. The rotary tables come from
:func:`axial_rope_tables` (mirrors ``sam2.modeling.position_encoding.compute_axial_cis``).

GPU design: the rotation is applied in registers (fp32) to the q tile once and to each k tile
as it is loaded; q.k is computed as ``q_even.k_even + q_odd.k_odd`` (two dots over head_dim/2,
no interleaving); flash attention with online softmax and fp32 accumulation. The keys are
split over ``num_splits`` programs (flash-decoding) whose partial (acc, log-sum-exp) are merged
by a second small kernel, so a single object at 64x64 queries still fills the GPU.

Design card order: reference -> Triton kernels -> launcher -> torch.library op -> public op.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ._backend import (
    dot_input_precision,
    dot_upcast_needed,
    import_triton,
    interpreter_enabled,
    launch,
    next_pow2,
    resolve_backend,
    sm_count,
)

triton, tl = import_triton()

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_REF_DTYPES = _TRITON_DTYPES + (torch.float64,)


# ---------------------------------------------------------------------------------------------
# rotary tables
# ---------------------------------------------------------------------------------------------


def axial_rope_tables(
    head_dim: int,
    end_x: int,
    end_y: int,
    theta: float = 10000.0,
    device: Optional[torch.device] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos / sin tables of the official 2-D axial rotary encoding.

    Same numbers as ``compute_axial_cis(dim=head_dim, end_x, end_y, theta)`` of
    ``sam2/modeling/position_encoding.py`` (``.real`` and ``.imag``), computed in fp32 on the
    CPU with the same torch ops, then moved to ``device``.

    Maths: token t of the end_x * end_y grid (row-major, x fastest) has x = t % end_x,
    y = t // end_x; with f_i = theta^(-4i/head_dim), i < head_dim/4, the angles are
    ``[x f_0 .. x f_{d/4-1}, y f_0 .. y f_{d/4-1}]`` (head_dim/2 of them).

    Returns: (cos, sin), each (end_x * end_y, head_dim // 2) float32.

    Raises: ValueError if head_dim is not a positive multiple of 4 or the grid is empty.
    """
    if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 4 != 0:
        raise ValueError(f"head_dim must be a positive multiple of 4, got {head_dim!r}")
    if float(end_x) != int(end_x) or float(end_y) != int(end_y) or end_x < 1 or end_y < 1:
        raise ValueError(f"end_x, end_y must be positive integers, got {end_x!r}, {end_y!r}")
    end_x, end_y = int(end_x), int(end_y)
    exps = torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim
    freqs = 1.0 / (theta**exps)
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = (t % end_x).float()
    t_y = torch.div(t, end_x, rounding_mode="floor").float()
    ang_x = torch.outer(t_x, freqs)
    ang_y = torch.outer(t_y, freqs)
    cis = torch.cat(
        [torch.polar(torch.ones_like(ang_x), ang_x), torch.polar(torch.ones_like(ang_y), ang_y)],
        dim=-1,
    )
    cos = cis.real.contiguous()
    sin = cis.imag.contiguous()
    if device is not None:
        cos, sin = cos.to(device), sin.to(device)
    return cos, sin


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, dtypes):
    for name, t in (("q", q), ("k", k), ("v", v), ("cos", cos), ("sin", sin)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, heads, N, d), got {tuple(t.shape)}")
    if q.dtype not in dtypes:
        raise ValueError(f"q dtype must be one of {dtypes}, got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise ValueError(f"{name} dtype {t.dtype} must equal q dtype {q.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
    B, Hh, Nq, d = q.shape
    if k.shape[:2] != (B, Hh) or k.shape[3] != d:
        raise ValueError(f"k must have shape ({B}, {Hh}, Nk, {d}), got {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    if d % 2 != 0 or d == 0:
        raise ValueError(f"q head dim must be even and positive, got {d}")
    if Nq < 1 or k.shape[2] < 1:
        raise ValueError(f"q and k need at least one token, got Nq={Nq}, Nk={k.shape[2]}")
    for name, t in (("cos", cos), ("sin", sin)):
        if t.shape != (Nq, d // 2):
            raise ValueError(f"{name} must have shape ({Nq}, {d // 2}), got {tuple(t.shape)}")
        if not t.dtype.is_floating_point:
            raise ValueError(f"{name} must be floating point, got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
    if (
        not isinstance(num_k_exclude_rope, int)
        or isinstance(num_k_exclude_rope, bool)
        or not 0 <= num_k_exclude_rope <= k.shape[2]
    ):
        raise ValueError(
            f"num_k_exclude_rope must be an int in [0, Nk={k.shape[2]}], got {num_k_exclude_rope!r}"
        )
    n_rope = k.shape[2] - num_k_exclude_rope
    if n_rope % Nq != 0:
        raise ValueError(
            f"k: the rotated keys (Nk - num_k_exclude_rope = {n_rope}) must be a multiple of "
            f"Nq = {Nq} (the query grid repeated over memory frames)"
        )


# ---------------------------------------------------------------------------------------------
# 1) reference
# ---------------------------------------------------------------------------------------------


def _rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (2i, 2i+1) of x's last dim by the angle of (cos, sin)[..., i]."""
    rot = torch.float64 if x.dtype == torch.float64 else torch.float32
    xr = x.to(rot).reshape(*x.shape[:-1], -1, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    c, s = cos.to(rot), sin.to(rot)
    out = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)
    return out.to(x.dtype)


def rope_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_k_exclude_rope: int = 0,
) -> torch.Tensor:
    """Plain-torch RoPE attention, the official order of operations.

    Args:
        q: (B, heads, Nq, d); k, v: (B, heads, Nk, d); same float dtype (fp64 allowed here).
        cos, sin: (Nq, d//2) (from :func:`axial_rope_tables`).
        num_k_exclude_rope: the last keys (object pointers) that are not rotated.

    Maths: rotate adjacent pairs in fp32 (fp64 for fp64 inputs),
    ``x'[2i] = x[2i] cos - x[2i+1] sin``, ``x'[2i+1] = x[2i] sin + x[2i+1] cos``, q row n with
    table row n, key m < Nk - num_k_exclude_rope with table row m % Nq; cast back to the input
    dtype (``type_as``); then ``softmax(q' k'^T / sqrt(d)) v`` by
    ``F.scaled_dot_product_attention`` in the input dtype.

    Returns: (B, heads, Nq, d) in q's dtype.

    Raises: ValueError on bad shapes/dtypes/devices (message names the argument).
    """
    _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _REF_DTYPES)
    Nq = q.shape[2]
    n_rope = k.shape[2] - num_k_exclude_rope
    q = _rotate_pairs(q, cos, sin)
    if n_rope > 0:
        r = n_rope // Nq
        k_rot = _rotate_pairs(k[:, :, :n_rope], cos.repeat(r, 1), sin.repeat(r, 1))
        k = torch.cat([k_rot, k[:, :, n_rope:]], dim=2)
    return F.scaled_dot_product_attention(q, k, v)


# ---------------------------------------------------------------------------------------------
# 2) Triton kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _rope_attn_fwd(
    q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, o_ptr, lse_ptr,
    sq_b, sq_h, sq_n, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    so_s, so_b, so_h, so_n, so_d,  # output (or partial-output) strides; so_s = split stride
    sl_s, sl_bh,  # lse strides (split, batch*head); token stride 1
    NUM_HEADS, NQ, NK, NK_ROPE, HALF_D,
    KB_PER_SPLIT,
    qk_scale,  # log2(e) / sqrt(d)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_DH: tl.constexpr,  # power of two >= d/2
    WRITE_LSE: tl.constexpr,  # split mode: write normalised fp32 partials + log2-sum-exp
    UPCAST: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    b = pid_bh // NUM_HEADS
    h = pid_bh % NUM_HEADS
    dtype = q_ptr.dtype.element_ty

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < NQ
    offs_i = tl.arange(0, BLOCK_DH)
    i_ok = offs_i < HALF_D
    offs_e = 2 * offs_i
    offs_o = 2 * offs_i + 1

    # ---- q tile, rotated in fp32 then rounded to the input dtype (as type_as) ---------------
    q_base = q_ptr + b.to(tl.int64) * sq_b + h.to(tl.int64) * sq_h
    qmask = m_ok[:, None] & i_ok[None, :]
    q_row = (offs_m * sq_n)[:, None]
    qe = tl.load(q_base + q_row + (offs_e * sq_d)[None, :], mask=qmask, other=0.0).to(tl.float32)
    qo = tl.load(q_base + q_row + (offs_o * sq_d)[None, :], mask=qmask, other=0.0).to(tl.float32)
    t_off = (offs_m * HALF_D)[:, None] + offs_i[None, :]
    c = tl.load(cos_ptr + t_off, mask=qmask, other=1.0)
    s = tl.load(sin_ptr + t_off, mask=qmask, other=0.0)
    qe2 = (qe * c - qo * s).to(dtype)
    qo2 = (qe * s + qo * c).to(dtype)
    if UPCAST:
        qe2 = qe2.to(tl.float32)
        qo2 = qo2.to(tl.float32)

    k_base = k_ptr + b.to(tl.int64) * sk_b + h.to(tl.int64) * sk_h
    v_base = v_ptr + b.to(tl.int64) * sv_b + h.to(tl.int64) * sv_h

    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc_e = tl.zeros((BLOCK_M, BLOCK_DH), tl.float32)
    acc_o = tl.zeros((BLOCK_M, BLOCK_DH), tl.float32)

    kb_start = pid_s * KB_PER_SPLIT
    kb_end = tl.minimum(kb_start + KB_PER_SPLIT, tl.cdiv(NK, BLOCK_N))
    for kb in range(kb_start, kb_end):
        offs_n = kb * BLOCK_N + tl.arange(0, BLOCK_N)
        n_ok = offs_n < NK
        kmask = n_ok[:, None] & i_ok[None, :]
        k_row = (offs_n.to(tl.int64) * sk_n)[:, None]
        ke = tl.load(k_base + k_row + (offs_e * sk_d)[None, :], mask=kmask, other=0.0)
        ko = tl.load(k_base + k_row + (offs_o * sk_d)[None, :], mask=kmask, other=0.0)
        ke = ke.to(tl.float32)
        ko = ko.to(tl.float32)
        rot = offs_n < NK_ROPE
        trow = offs_n % NQ
        tmask = (rot & n_ok)[:, None] & i_ok[None, :]
        # (kt_off, not t_off: a loop must not re-type an outer variable)
        kt_off = (trow * HALF_D)[:, None] + offs_i[None, :]
        kc = tl.load(cos_ptr + kt_off, mask=tmask, other=1.0)
        ks = tl.load(sin_ptr + kt_off, mask=tmask, other=0.0)
        ke2 = (ke * kc - ko * ks).to(dtype)
        ko2 = (ke * ks + ko * kc).to(dtype)
        # unrotated keys (object pointers) are the loaded values, bit for bit
        ke2 = tl.where(rot[:, None], ke2, ke.to(dtype))
        ko2 = tl.where(rot[:, None], ko2, ko.to(dtype))
        v_row = (offs_n.to(tl.int64) * sv_n)[:, None]
        ve = tl.load(v_base + v_row + (offs_e * sv_d)[None, :], mask=kmask, other=0.0)
        vo = tl.load(v_base + v_row + (offs_o * sv_d)[None, :], mask=kmask, other=0.0)
        if UPCAST:
            ke2 = ke2.to(tl.float32)
            ko2 = ko2.to(tl.float32)
            ve = ve.to(tl.float32)
            vo = vo.to(tl.float32)
        sc = tl.dot(qe2, tl.trans(ke2), input_precision=DOT_PREC)
        sc = tl.dot(qo2, tl.trans(ko2), sc, input_precision=DOT_PREC)
        sc = sc * qk_scale
        sc = tl.where(n_ok[None, :], sc, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(sc - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        pv = p.to(ve.dtype)
        acc_e = tl.dot(pv, ve, acc_e * alpha[:, None], input_precision=DOT_PREC)
        acc_o = tl.dot(pv, vo, acc_o * alpha[:, None], input_precision=DOT_PREC)
        m_i = m_new

    acc_e = acc_e / l_i[:, None]
    acc_o = acc_o / l_i[:, None]
    o_base = o_ptr + pid_s.to(tl.int64) * so_s + b.to(tl.int64) * so_b + h.to(tl.int64) * so_h
    o_row = (offs_m.to(tl.int64) * so_n)[:, None]
    omask = m_ok[:, None] & i_ok[None, :]
    tl.store(o_base + o_row + (offs_e * so_d)[None, :], acc_e.to(o_ptr.dtype.element_ty), mask=omask)
    tl.store(o_base + o_row + (offs_o * so_d)[None, :], acc_o.to(o_ptr.dtype.element_ty), mask=omask)
    if WRITE_LSE:
        lse = m_i + tl.log2(l_i)
        tl.store(lse_ptr + pid_s * sl_s + pid_bh * sl_bh + offs_m, lse, mask=m_ok)


@triton.jit
def _rope_attn_combine(
    part_ptr, lse_ptr, o_ptr,
    sp_s, sp_b, sp_h, sp_n,  # partial strides (d stride 1)
    sl_s, sl_bh,
    so_b, so_h, so_n, so_d,
    NUM_HEADS, NQ, D, NUM_SPLITS,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // NUM_HEADS
    h = pid_bh % NUM_HEADS
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < NQ
    mask = m_ok[:, None] & (offs_d < D)[None, :]
    p_base = part_ptr + b.to(tl.int64) * sp_b + h.to(tl.int64) * sp_h
    p_off = (offs_m.to(tl.int64) * sp_n)[:, None] + offs_d[None, :]
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for sp in range(0, NUM_SPLITS):
        lse = tl.load(lse_ptr + sp * sl_s + pid_bh * sl_bh + offs_m, mask=m_ok, other=0.0)
        part = tl.load(p_base + sp * sp_s + p_off, mask=mask, other=0.0)
        m_new = tl.maximum(m_i, lse)
        alpha = tl.exp2(m_i - m_new)
        beta = tl.exp2(lse - m_new)
        acc = acc * alpha[:, None] + part * beta[:, None]
        l_i = l_i * alpha + beta
        m_i = m_new
    acc = acc / l_i[:, None]
    o_base = o_ptr + b.to(tl.int64) * so_b + h.to(tl.int64) * so_h
    o_off = (offs_m.to(tl.int64) * so_n)[:, None] + (offs_d * so_d)[None, :]
    tl.store(o_base + o_off, acc.to(o_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------
# 3) launcher
# ---------------------------------------------------------------------------------------------


def _pick_config(d: int, dtype: torch.dtype):
    """Pinned tiles per (head-dim class, dtype), sized for Hopper (228 KB shared memory).

    16-bit: d <= 64: 128 x 64 tiles, 4 warps, 3 stages; d <= 128: 128 x 64, 8 warps,
    2 stages; d = 256 (SAM 2 memory attention): 64 x 64, 8 warps, 2 stages (the fp32
    accumulator is 64 x 256; q resident as two 64 x 128 halves; ~160 KB shared memory).
    fp32 (tf32x3 dots): d <= 128: 64 x 32, 4 warps, 2 stages; d = 256: 32 x 32, 8 warps,
    1 stage (96 KB; 64-row tiles spill or overflow shared memory).
    Checked by compiling for sm_90 with triton 3.9's ptxas (no GPU): d = 256 bf16 uses
    254 registers, no spills, 160 KB shared memory.
    Under the Triton interpreter: 32 x 16 tiles, so that small test shapes exercise several
    query blocks, key blocks and splits (same code, other constants).
    """
    block_dh = max(16, next_pow2(d // 2))
    if interpreter_enabled():
        return dict(BLOCK_M=32, BLOCK_N=16, BLOCK_DH=block_dh, num_warps=4, num_stages=1)
    if dtype == torch.float32:
        if block_dh <= 64:
            return dict(BLOCK_M=64, BLOCK_N=32, BLOCK_DH=block_dh, num_warps=4, num_stages=2)
        return dict(BLOCK_M=32, BLOCK_N=32, BLOCK_DH=block_dh, num_warps=8, num_stages=1)
    if block_dh <= 32:
        return dict(BLOCK_M=128, BLOCK_N=64, BLOCK_DH=block_dh, num_warps=4, num_stages=3)
    if block_dh <= 64:
        return dict(BLOCK_M=128, BLOCK_N=64, BLOCK_DH=block_dh, num_warps=8, num_stages=2)
    return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_DH=block_dh, num_warps=8, num_stages=2)


_MIN_KB_PER_SPLIT = 8  # at least 8 key blocks per split: the merge must pay off
_MAX_SPLITS = 16


def _num_splits(nq_blocks: int, bh: int, nk_blocks: int, device: torch.device) -> int:
    """Pinned flash-decoding heuristic: aim at >= 2 programs per SM, never split below
    ``_MIN_KB_PER_SPLIT`` key blocks per split, at most ``_MAX_SPLITS``; 1 off-GPU."""
    if device.type != "cuda":
        return 1
    programs = nq_blocks * bh
    want = -(-2 * sm_count(device) // programs)
    cap = max(1, nk_blocks // _MIN_KB_PER_SPLIT)
    return max(1, min(want, cap, _MAX_SPLITS))


def _rope_attention_triton(q, k, v, cos, sin, num_k_exclude_rope, num_splits):
    """Validate, allocate the output ((B, Nq, heads, d) storage seen as (B, heads, Nq, d)),
    pick tiles and the key split, launch the flash kernel (and the merge when split)."""
    _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _TRITON_DTYPES)
    if q.device.type not in ("cuda", "cpu"):
        raise ValueError(f"q must be on CUDA (or CPU under the interpreter), got {q.device}")
    if not isinstance(num_splits, int) or num_splits < 0:
        raise ValueError(f"num_splits must be an int >= 0 (0 = auto), got {num_splits!r}")
    B, Hh, Nq, d = q.shape
    Nk = k.shape[2]
    # storage (B, Nq, heads, d): _recombine_heads (transpose(1, 2).reshape) is then free
    out = torch.empty((B, Nq, Hh, d), dtype=q.dtype, device=q.device).transpose(1, 2)
    cos = cos.to(torch.float32).contiguous()
    sin = sin.to(torch.float32).contiguous()
    cfg = _pick_config(d, q.dtype)
    bm, bn = cfg["BLOCK_M"], cfg["BLOCK_N"]
    nqb = triton.cdiv(Nq, bm)
    nkb = triton.cdiv(Nk, bn)
    splits = num_splits if num_splits > 0 else _num_splits(nqb, B * Hh, nkb, q.device)
    splits = max(1, min(splits, nkb))
    kb_per_split = triton.cdiv(nkb, splits)
    splits = triton.cdiv(nkb, kb_per_split)  # every split gets >= 1 key block
    common = dict(
        NUM_HEADS=Hh, NQ=Nq, NK=Nk, NK_ROPE=Nk - num_k_exclude_rope, HALF_D=d // 2,
        KB_PER_SPLIT=kb_per_split, qk_scale=math.log2(math.e) / math.sqrt(d),
        UPCAST=dot_upcast_needed(q.dtype), DOT_PREC=dot_input_precision(q.dtype), **cfg,
    )
    qkv_strides = (*q.stride(), *k.stride(), *v.stride())
    if splits == 1:
        launch(
            _rope_attn_fwd, (nqb, B * Hh, 1),
            q, k, v, cos, sin, out, out,  # lse pointer unused
            *qkv_strides, 0, *out.stride(), 0, 0,
            WRITE_LSE=False, **common,
        )
        return out
    part = torch.empty((splits, B, Hh, Nq, d), dtype=torch.float32, device=q.device)
    lse = torch.empty((splits, B * Hh, Nq), dtype=torch.float32, device=q.device)
    launch(
        _rope_attn_fwd, (nqb, B * Hh, splits),
        q, k, v, cos, sin, part, lse,
        *qkv_strides, *part.stride(), *lse.stride()[:2],
        WRITE_LSE=True, **common,
    )
    cm = 32
    launch(
        _rope_attn_combine, (triton.cdiv(Nq, cm), B * Hh),
        part, lse, out,
        *part.stride()[:4], *lse.stride()[:2], *out.stride(),
        Hh, Nq, d, splits,
        BLOCK_M=cm, BLOCK_D=max(16, next_pow2(d)), num_warps=4,
    )
    return out


# ---------------------------------------------------------------------------------------------
# 4) torch.library registration: sam2_fast::rope_attention
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("sam2_fast::rope_attention", mutates_args=())
def _rope_attention_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_k_exclude_rope: int,
    num_splits: int,
) -> torch.Tensor:
    return _rope_attention_triton(q, k, v, cos, sin, num_k_exclude_rope, num_splits)


@_rope_attention_op.register_fake
def _(q, k, v, cos, sin, num_k_exclude_rope, num_splits):
    _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _TRITON_DTYPES)
    B, Hh, Nq, d = q.shape
    return q.new_empty((B, Nq, Hh, d)).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# 5) public op
# ---------------------------------------------------------------------------------------------


def rope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_k_exclude_rope: int = 0,
    *,
    num_splits: int = 0,
    backend: str = "auto",
) -> torch.Tensor:
    """Attention with the SAM 2 axial rotary encoding fused in (flash attention).

    Replaces the core of the official ``RoPEAttention.forward``
    (``sam2/modeling/sam/transformer.py``: ``apply_rotary_enc`` of
    ``sam2/modeling/position_encoding.py`` + ``F.scaled_dot_product_attention``), between
    ``_separate_heads`` and ``_recombine_heads``.

    Args:
        q: (B, heads, Nq, d); k, v: (B, heads, Nk, d); one dtype (fp16 / bf16 / fp32; fp64 on
            the torch backend), one device, any strides. B = objects. d even (any even d;
            tiles are masked to a power of two).
        cos, sin: (Nq, d//2) float (fp32 from :func:`axial_rope_tables`).
        num_k_exclude_rope: the last keys that are not rotated (object pointers); the other
            ``Nk - num_k_exclude_rope`` keys must be a multiple of Nq (key m uses table row
            m % Nq: the official ``rope_k_repeat``).
        num_splits: keys split over this many programs, merged after (0 = pinned heuristic
            from the shape and the GPU's SM count; 1 off-GPU). Triton backend only.
        backend: "auto" | "triton" | "torch".

    Maths: pairs (2i, 2i+1) of q and of the rotated keys are rotated in fp32 by (cos, sin)
    and rounded to the input dtype; ``out = softmax(q' k'^T / sqrt(d)) v``; v never rotated.

    Returns: (B, heads, Nq, d) in q's dtype. On the triton backend its storage is
    (B, Nq, heads, d) (a transposed view), so ``out.transpose(1, 2).reshape(B, Nq, -1)`` is
    free; the torch backend returns SDPA's contiguous layout.

    Raises:
        ValueError: wrong shapes / dtypes / devices (message names the argument), odd d,
            bad num_k_exclude_rope, rotated keys not a multiple of Nq.
        RuntimeError: ``backend="triton"`` where Triton cannot run.
    """
    if not isinstance(q, torch.Tensor):
        raise ValueError(f"q must be a torch.Tensor, got {type(q).__name__}")
    if resolve_backend(backend, q.device) == "torch":
        return rope_attention_reference(q, k, v, cos, sin, num_k_exclude_rope)
    _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _TRITON_DTYPES)
    return torch.ops.sam2_fast.rope_attention(q, k, v, cos, sin, num_k_exclude_rope, num_splits)
