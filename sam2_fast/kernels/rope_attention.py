"""Axial-RoPE attention (SAM 2 memory attention): rotation outside the hot loop, a plain flash loop.

Replaces, in the official ``sam2.modeling.sam.transformer.RoPEAttention.forward``, all that
happens between ``_separate_heads`` and ``_recombine_heads``: ``apply_rotary_enc`` (axial
rotary encoding of q and of the first ``Nk - num_k_exclude_rope`` keys, the table repeated
over memory frames) and ``F.scaled_dot_product_attention``. The rotary tables come from
:func:`axial_rope_tables` (mirrors ``sam2.modeling.position_encoding.compute_axial_cis``).

GPU design (Triton, sm_90):

* rotation: once per call, one fused pass for q and k together (:func:`_rope_rotate_kernel`:
  read a row tile, rotate the pairs in fp32 -- column j pairs with column j ^ 1, so neither a
  permutation of the projection weights nor a de-interleaving is needed --, round to the input
  dtype as the official ``type_as`` does, write; key m uses table row ``m % Nq``, pointer rows
  are copied). About 2 x 15 MB of traffic at the full bank, a few microseconds. Keys the caller
  rotated and cached skip it (``k_rotated=True``; see :func:`rope_attention` for the contract);
* the hot loop is the plain flash loop of :mod:`._flash`: key tile load, one full-width
  ``q k^T`` dot, online softmax, value tile load, one ``p v`` dot. (Rotating q in the flash
  kernel's prologue instead made every d = 256 tile spill registers on sm_90, see
  :mod:`._flash`.)
* split-K (flash-decoding) where the query tiles alone cannot fill the GPU
  (:func:`~._flash.auto_splits`); objects stay batched (one grid over objects x heads);
* ``impl="rotate_sdpa"`` (selected by a runtime profile only): the same rotation kernel for q
  and k, then torch's SDPA on the rotated operands.

Design card order: reference -> Triton kernels -> launchers -> torch.library ops -> public ops.
"""

import dataclasses
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ._backend import import_triton, interpreter_enabled, launch, next_pow2
from ._flash import (FlashConfig, check_config, flash_attention_triton, gpu_supported,
                     tma_problem)
from .profile import choose, choose_unmeasured, rope_bucket

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


def _check_rotate_args(x, cos, sin, num_exclude, dtypes):
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, heads, N, d), got {tuple(x.shape)}")
    if x.dtype not in dtypes:
        raise ValueError(f"x dtype must be one of {dtypes}, got {x.dtype}")
    N, d = x.shape[2], x.shape[3]
    if d % 2 != 0 or d == 0:
        raise ValueError(f"x head dim must be even and positive, got {d}")
    for name, t in (("cos", cos), ("sin", sin)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2 or t.shape[1] != d // 2 or t.shape[0] < 1:
            raise ValueError(f"{name} must have shape (T, {d // 2}), got {tuple(t.shape)}")
        if not t.dtype.is_floating_point:
            raise ValueError(f"{name} must be floating point, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    if sin.shape != cos.shape:
        raise ValueError(f"sin shape {tuple(sin.shape)} must equal cos shape {tuple(cos.shape)}")
    if (not isinstance(num_exclude, int) or isinstance(num_exclude, bool)
            or not 0 <= num_exclude <= N):
        raise ValueError(f"num_exclude must be an int in [0, N={N}], got {num_exclude!r}")
    if (N - num_exclude) % cos.shape[0] != 0:
        raise ValueError(
            f"x: the rotated rows (N - num_exclude = {N - num_exclude}) must be a multiple of "
            f"the table's {cos.shape[0]} rows (the grid repeated over memory frames)"
        )


def rope_rotate_reference(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_exclude: int = 0
) -> torch.Tensor:
    """Plain-torch axial rotation of rows, exactly as :func:`rope_attention_reference` rotates.

    Args:
        x: (B, heads, N, d), fp16 / bf16 / fp32 / fp64, d even.
        cos, sin: (T, d // 2) tables (:func:`axial_rope_tables`).
        num_exclude: the last rows that are not rotated (object pointers).

    Maths: row m < N - num_exclude is rotated with table row m % T (pairs (2i, 2i+1), fp32 --
    fp64 for fp64 --, rounded to x's dtype); the other rows are copied.

    Returns: (B, heads, N, d) in x's dtype.

    Raises: ValueError on bad shapes / dtypes / devices, or N - num_exclude not a multiple of T.
    """
    _check_rotate_args(x, cos, sin, num_exclude, _REF_DTYPES)
    n_rope = x.shape[2] - num_exclude
    if n_rope == 0:
        return x.clone()
    r = n_rope // cos.shape[0]
    rot = _rotate_pairs(x[:, :, :n_rope], cos.repeat(r, 1), sin.repeat(r, 1))
    return torch.cat([rot, x[:, :, n_rope:]], dim=2)


# ---------------------------------------------------------------------------------------------
# 2) Triton kernel: the rotation pass (the attention itself is _flash._flash_attn_fwd)
# ---------------------------------------------------------------------------------------------


@triton.jit
def _rotate_rows(
    x_ptr, y_ptr, cos_ptr, sin_ptr,
    sx_b, sx_h, sx_n, sx_d,
    sy_b, sy_h, sy_n,  # y: d stride 1
    b, h, pid_n, N, N_ROPE, NT, D, HALF_D,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Rows [pid_n * BLOCK_N, ...) of one (b, h): y[row] = x[row] rotated by table row
    (row % NT) for row < N_ROPE (fp32, rounded to y's dtype), else y[row] = x[row]."""
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    n_ok = offs_n < N
    d_ok = offs_d < D
    mask = n_ok[:, None] & d_ok[None, :]
    x_base = x_ptr + b.to(tl.int64) * sx_b + h.to(tl.int64) * sx_h
    rows = (offs_n.to(tl.int64) * sx_n)[:, None]
    x = tl.load(x_base + rows + (offs_d * sx_d)[None, :], mask=mask, other=0.0)
    # column j pairs with j ^ 1: x'[2i] = x[2i] c - x[2i+1] s, x'[2i+1] = x[2i+1] c + x[2i] s
    xp = tl.load(x_base + rows + ((offs_d ^ 1) * sx_d)[None, :], mask=mask, other=0.0)
    rot = offs_n < N_ROPE
    t_mask = (rot & n_ok)[:, None] & d_ok[None, :]
    t_off = ((offs_n % NT) * HALF_D)[:, None] + (offs_d // 2)[None, :]
    c = tl.load(cos_ptr + t_off, mask=t_mask, other=1.0)
    s = tl.load(sin_ptr + t_off, mask=t_mask, other=0.0)
    sign = tl.where((offs_d % 2) == 0, -1.0, 1.0)
    xf = x.to(tl.float32)
    y = xf * c + (sign[None, :] * xp.to(tl.float32)) * s
    y = tl.where(rot[:, None], y, xf)  # pointer rows: the loaded values, bit for bit
    y_base = y_ptr + b.to(tl.int64) * sy_b + h.to(tl.int64) * sy_h
    tl.store(y_base + (offs_n.to(tl.int64) * sy_n)[:, None] + offs_d[None, :],
             y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rope_rotate_kernel(
    k_ptr, kr_ptr, q_ptr, qr_ptr, cos_ptr, sin_ptr,
    sk_b, sk_h, sk_n, sk_d,
    skr_b, skr_h, skr_n,
    sq_b, sq_h, sq_n, sq_d,
    sqr_b, sqr_h, sqr_n,
    NUM_HEADS, NK, NK_ROPE, NQ, D, HALF_D,
    NKB,  # row blocks of k; program ids >= NKB rotate q (when HAS_Q)
    HAS_Q: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One launch rotates the keys (row m by table row m % NQ, the last NK - NK_ROPE rows
    copied) and, with HAS_Q, the queries (row n by table row n)."""
    pid = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // NUM_HEADS
    h = pid_bh % NUM_HEADS
    is_q = pid >= NKB
    if HAS_Q:
        if is_q:
            _rotate_rows(q_ptr, qr_ptr, cos_ptr, sin_ptr, sq_b, sq_h, sq_n, sq_d,
                         sqr_b, sqr_h, sqr_n, b, h, pid - NKB, NQ, NQ, NQ, D, HALF_D,
                         BLOCK_N, BLOCK_D)
    if not is_q:
        _rotate_rows(k_ptr, kr_ptr, cos_ptr, sin_ptr, sk_b, sk_h, sk_n, sk_d,
                     skr_b, skr_h, skr_n, b, h, pid, NK, NK_ROPE, NQ, D, HALF_D,
                     BLOCK_N, BLOCK_D)


# ---------------------------------------------------------------------------------------------
# 3) launchers
# ---------------------------------------------------------------------------------------------


def _rotate_block_n(d: int) -> int:
    """Rows per program of the rotation pass: 8192 elements (interpreter: 16 rows)."""
    if interpreter_enabled():
        return 16
    return max(16, 8192 // max(16, next_pow2(d)))


def _rope_rotate_launch(k, cos32, sin32, num_exclude, q=None):
    """Launch the rotation pass (arguments already checked; tables fp32 contiguous, T rows).
    Rotates ``k`` (row m by table row m % T, the last ``num_exclude`` rows copied) and, when
    given, ``q`` (row n by table row n; q has T rows). Returns contiguous (B, heads, N, d)
    tensors of the input dtype: ``k_rot`` or ``(q_rot, k_rot)``."""
    B, Hh, N, d = k.shape
    T = cos32.shape[0]
    kr = torch.empty((B, Hh, N, d), dtype=k.dtype, device=k.device)
    qr = None if q is None else torch.empty((B, Hh, T, d), dtype=q.dtype, device=q.device)
    if kr.numel() == 0 and (qr is None or qr.numel() == 0):
        return kr if q is None else (qr, kr)
    bn = _rotate_block_n(d)
    nkb = triton.cdiv(N, bn)
    nqb = 0 if q is None else triton.cdiv(T, bn)
    qq, qqr = (k, kr) if q is None else (q, qr)  # unused pointers without q
    launch(
        _rope_rotate_kernel, (nkb + nqb, B * Hh),
        k, kr, qq, qqr, cos32, sin32,
        *k.stride(), *kr.stride()[:3], *qq.stride(), *qqr.stride()[:3],
        Hh, N, N - num_exclude, T, d, d // 2, nkb,
        HAS_Q=q is not None, BLOCK_N=bn, BLOCK_D=max(16, next_pow2(d)), num_warps=4,
    )
    return kr if q is None else (qr, kr)


def _tables32(cos, sin):
    return cos.to(torch.float32).contiguous(), sin.to(torch.float32).contiguous()


def _rope_rotate_triton(x, cos, sin, num_exclude):
    """Validate and run the rotation pass on one tensor."""
    _check_rotate_args(x, cos, sin, num_exclude, _TRITON_DTYPES)
    if x.device.type not in ("cuda", "cpu"):
        raise ValueError(f"x must be on CUDA (or CPU under the interpreter), got {x.device}")
    cos32, sin32 = _tables32(cos, sin)
    return _rope_rotate_launch(x, cos32, sin32, num_exclude)


def _config_from_ints(block_m, block_n, num_warps, num_stages, tma) -> Optional[FlashConfig]:
    vals = (block_m, block_n, num_warps, num_stages)
    if all(v == 0 for v in vals):
        return None
    if any(v <= 0 for v in vals):
        raise ValueError(f"tile config needs four positive ints or all zeros, got {vals}")
    return FlashConfig(*vals, tma=bool(tma))


def _rotate_qk(q, k, cos, sin, num_k_exclude_rope, k_rotated):
    """Rotated (q, k): one launch for both, or for q alone when the keys are already rotated
    (or all excluded)."""
    cos32, sin32 = _tables32(cos, sin)
    if k_rotated or k.shape[2] == num_k_exclude_rope:
        return _rope_rotate_launch(q, cos32, sin32, 0), k
    return _rope_rotate_launch(k, cos32, sin32, num_k_exclude_rope, q=q)


def _rope_attention_launch(q, k, v, cos, sin, num_k_exclude_rope, num_splits, k_rotated,
                           config):
    """Rotate q and the keys (unless ``k_rotated``) in one pass, then run the plain flash
    kernel (arguments already checked). fp32 on CUDA: SDPA instead of the flash kernel."""
    qr, kr = _rotate_qk(q, k, cos, sin, num_k_exclude_rope, k_rotated)
    if not interpreter_enabled() and not gpu_supported(q.dtype):
        return F.scaled_dot_product_attention(qr, kr, v)
    return flash_attention_triton(qr, kr, v, config=config, num_splits=num_splits)


def _rope_attention_triton(q, k, v, cos, sin, num_k_exclude_rope, num_splits, k_rotated,
                           config=None):
    """Validate, then rotate the keys and launch the flash kernel (+ the split-K merge)."""
    _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _TRITON_DTYPES)
    if q.device.type not in ("cuda", "cpu"):
        raise ValueError(f"q must be on CUDA (or CPU under the interpreter), got {q.device}")
    if config is not None:
        check_config(config, q.dtype, q.shape[3])
    return _rope_attention_launch(q, k, v, cos, sin, num_k_exclude_rope, num_splits, k_rotated,
                                  config)


def _rope_attention_rotate_sdpa(q, k, v, cos, sin, num_k_exclude_rope, k_rotated):
    """impl "rotate_sdpa": the Triton rotation pass for q (and k unless ``k_rotated``), then
    torch's SDPA on the rotated operands (arguments already checked)."""
    if torch.compiler.is_compiling():
        qr = torch.ops.sam2_fast.rope_rotate(q, cos, sin, 0)
        kr = k if k_rotated else torch.ops.sam2_fast.rope_rotate(k, cos, sin, num_k_exclude_rope)
    else:
        qr, kr = _rotate_qk(q, k, cos, sin, num_k_exclude_rope, k_rotated)
    return F.scaled_dot_product_attention(qr, kr, v)


# ---------------------------------------------------------------------------------------------
# 4) torch.library registration: sam2_fast::rope_rotate, sam2_fast::rope_attention
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("sam2_fast::rope_rotate", mutates_args=())
def _rope_rotate_op(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                    num_exclude: int) -> torch.Tensor:
    return _rope_rotate_triton(x, cos, sin, num_exclude)


@_rope_rotate_op.register_fake
def _(x, cos, sin, num_exclude):
    _check_rotate_args(x, cos, sin, num_exclude, _TRITON_DTYPES)
    return x.new_empty(x.shape)


@torch.library.custom_op("sam2_fast::rope_attention", mutates_args=())
def _rope_attention_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_k_exclude_rope: int,
    num_splits: int,
    k_rotated: bool,
    block_m: int,
    block_n: int,
    num_warps: int,
    num_stages: int,
    tma: bool,
) -> torch.Tensor:
    config = _config_from_ints(block_m, block_n, num_warps, num_stages, tma)
    return _rope_attention_triton(q, k, v, cos, sin, num_k_exclude_rope, num_splits, k_rotated,
                                  config)


@_rope_attention_op.register_fake
def _(q, k, v, cos, sin, num_k_exclude_rope, num_splits, k_rotated, block_m, block_n,
      num_warps, num_stages, tma):
    _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _TRITON_DTYPES)
    B, Hh, Nq, d = q.shape
    return q.new_empty((B, Nq, Hh, d)).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# 5) public ops
# ---------------------------------------------------------------------------------------------


def rope_rotate(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_exclude: int = 0,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Rotate rows by the axial RoPE tables, as the memory attention rotates its keys.

    The rotation half of the official ``apply_rotary_enc`` (``sam2/modeling/position_encoding.py``,
    ``repeat_freqs_k=True``), for keys that a caller wants to rotate once and cache (see
    :func:`rope_attention` with ``k_rotated=True``).

    Args:
        x: (B, heads, N, d), fp16 / bf16 / fp32 (fp64 on the torch backend), any strides.
        cos, sin: (T, d // 2) float tables (:func:`axial_rope_tables`), T = the query grid.
        num_exclude: the last rows that stay unrotated (object pointers).
        backend: "auto" | "triton" | "torch". "auto" runs the reference: this pass has no
            measurement of its own yet (:func:`~.profile.choose_unmeasured`); a caller that runs
            the Triton attention passes ``backend="triton"``.

    Maths: row m < N - num_exclude is rotated with table row m % T (pairs (2i, 2i+1) in fp32,
    rounded to x's dtype); the last num_exclude rows are copied. Because every memory frame
    has exactly T rows, rotating each frame on its own gives the same rows as rotating the
    concatenated bank.

    Returns: (B, heads, N, d) contiguous, x's dtype (a new tensor).

    Raises:
        ValueError: bad shapes / dtypes / devices, N - num_exclude not a multiple of T.
        RuntimeError: ``backend="triton"`` where Triton cannot run.
    """
    _check_rotate_args(x, cos, sin, num_exclude, _REF_DTYPES)
    if backend == "triton":
        _check_rotate_args(x, cos, sin, num_exclude, _TRITON_DTYPES)  # fp64: reference only
    if choose_unmeasured(backend, x.device) == "torch" or x.dtype == torch.float64:
        return rope_rotate_reference(x, cos, sin, num_exclude).contiguous()
    if torch.compiler.is_compiling():
        return torch.ops.sam2_fast.rope_rotate(x, cos, sin, num_exclude)
    return _rope_rotate_triton(x, cos, sin, num_exclude)


def rope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_k_exclude_rope: int = 0,
    *,
    k_rotated: bool = False,
    num_splits: int = 0,
    config: Optional[FlashConfig] = None,
    backend: str = "auto",
    profile=None,
) -> torch.Tensor:
    """Attention with the SAM 2 axial rotary encoding (flash attention on the GPU).

    Replaces the core of the official ``RoPEAttention.forward``
    (``sam2/modeling/sam/transformer.py``: ``apply_rotary_enc`` of
    ``sam2/modeling/position_encoding.py`` + ``F.scaled_dot_product_attention``), between
    ``_separate_heads`` and ``_recombine_heads``.

    Args:
        q: (B, heads, Nq, d); k, v: (B, heads, Nk, d); one dtype (fp16 / bf16 / fp32; fp64 on
            the torch backend), one device, any strides. B = objects. d even, <= 256 on Triton.
        cos, sin: (Nq, d//2) float (fp32 from :func:`axial_rope_tables`).
        num_k_exclude_rope: the last keys that are not rotated (object pointers); the other
            ``Nk - num_k_exclude_rope`` keys must be a multiple of Nq (key m uses table row
            m % Nq: the official ``rope_k_repeat``).
        k_rotated: the keys are **already rotated** -- the entry point for keys cached across
            frames. Contract: row m < Nk - num_k_exclude_rope of ``k`` equals
            :func:`rope_rotate` ``(k_raw, cos, sin, num_k_exclude_rope)`` [m] (rotating each
            memory frame's Nq rows on its own with ``rope_rotate(k_frame, cos, sin)`` gives the
            same rows, so a memory bank may rotate a frame's keys once when the frame enters
            and concatenate them, pointers last and unrotated, on every call); the projection
            and rotation of k are then skipped. Since ``k_proj`` is linear, a bank can also
            split ``k_proj(mem + pos + tpos[t]) = k_proj(mem + pos) + W tpos[t]`` and add the
            rotated per-frame temporal term ``rope_rotate(W tpos[t] broadcast over the grid)``,
            a weight-only table (equal up to the rounding of that sum). q is always rotated
            here.
        num_splits: Triton only: keys split over this many programs and merged after (0 = the
            profile's choice, else :func:`~._flash.auto_splits`).
        config: Triton only: explicit tiles (a shipped :class:`~._flash.FlashConfig`);
            default: the profile's, else the default for (dtype, d). A ``tma`` config reads
            the operands through tensor descriptors (sm_90+; layouts: :func:`~._flash.
            tma_problem`); a profile's ``tma`` config falls back to its pointer twin where
            v (or cached keys) cannot be read that way, an explicit one raises.
        backend: "auto" | "triton" | "torch". "auto" follows ``profile`` / the built-in table
            (:mod:`.profile`; on an H200 without a profile: torch).
        profile: a :class:`~.profile.KernelProfile` or None.

    Maths: pairs (2i, 2i+1) of q and of the rotated keys are rotated in fp32 by (cos, sin)
    and rounded to the input dtype; ``out = softmax(q' k'^T / sqrt(d)) v``; v never rotated.

    Triton on CUDA with fp32 inputs runs the rotation pass + SDPA (the flash kernel's fp32 tiles
    spill registers on sm_90, see :mod:`._flash`); under the interpreter fp32 runs the kernel.

    Returns: (B, heads, Nq, d) in q's dtype. On the triton implementation its storage is
    (B, Nq, heads, d) (a transposed view), so ``out.transpose(1, 2).reshape(B, Nq, -1)`` is
    free; torch / SDPA return SDPA's layout.

    Raises:
        ValueError: wrong shapes / dtypes / devices (message names the argument), odd d,
            bad num_k_exclude_rope, rotated keys not a multiple of Nq, a config that is not
            shipped, an explicit ``tma`` config on operands no descriptor can read.
        RuntimeError: ``backend="triton"`` where Triton cannot run.
    """
    _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _REF_DTYPES)
    B, Hh, Nq, d = q.shape
    Nk = k.shape[2]
    if q.dtype == torch.float64:  # the reference only
        if backend == "triton":
            _check_rope_args(q, k, v, cos, sin, num_k_exclude_rope, _TRITON_DTYPES)  # raises
        choice_impl = "torch"
        choice = None
    else:
        choice = choose("rope_attention", backend, q.device, profile,
                        lambda: rope_bucket(q.dtype, Nq, Nk, B * Hh))
        choice_impl = choice.impl
    if choice_impl == "torch":
        excl = Nk if k_rotated else num_k_exclude_rope
        return rope_attention_reference(q, k, v, cos, sin, excl)
    if choice_impl == "triton" and not interpreter_enabled() and not gpu_supported(q.dtype):
        choice_impl = "rotate_sdpa"  # fp32 on the GPU: no spill-free flash config (_flash)
    if choice_impl == "rotate_sdpa":
        return _rope_attention_rotate_sdpa(q, k, v, cos, sin, num_k_exclude_rope, k_rotated)
    cfg = config if config is not None else choice.config
    splits = num_splits if num_splits > 0 else choice.splits
    if config is not None:
        check_config(config, q.dtype, d)
    if d > 256:
        raise ValueError(f"q head dim {d} > 256: the Triton kernel supports d <= 256")
    if torch.compiler.is_compiling():
        c = ((cfg.block_m, cfg.block_n, cfg.num_warps, cfg.num_stages, cfg.tma) if cfg
             else (0, 0, 0, 0, False))
        return torch.ops.sam2_fast.rope_attention(q, k, v, cos, sin, num_k_exclude_rope, splits,
                                                  k_rotated, *c)
    if q.device.type not in ("cuda", "cpu"):
        raise ValueError(f"q must be on CUDA (or CPU under the interpreter), got {q.device}")
    if (config is None and cfg is not None and cfg.tma
            and (tma_problem(v) or (k_rotated and tma_problem(k)))):
        # a profile's descriptor config on operands it cannot read (q and uncached keys come
        # out of the rotation pass, contiguous): the same tiles through pointer loads
        cfg = dataclasses.replace(cfg, tma=False)
    return _rope_attention_launch(q, k, v, cos, sin, num_k_exclude_rope, splits, k_rotated, cfg)
