"""Hiera windowed multi-head attention with optional max-pooled queries, one fused kernel.

Replaces, in the official ``sam2.modeling.backbones.hieradet.MultiScaleBlock.forward``, all
that happens between the block's ``attn.qkv`` Linear and its ``attn.proj`` Linear:
``window_partition`` (zero padding, then splitting into windows), the qkv reshape/unbind,
``do_pool`` of q (``nn.MaxPool2d(q_stride)``), ``F.scaled_dot_product_attention`` per head,
and ``window_unpartition`` (with the pooled window, cropped to the pooled shortcut shape).

GPU design: one program per (image, window, head, query tile) reads its q/k/v rows straight
from the qkv tensor by index arithmetic (the padded tokens are the qkv bias), pools q in
registers and runs the shared online-softmax step of :mod:`._flash`. The global-attention
blocks (window 0, no q pooling) are plain attention over strided (B, heads, H*W, head_dim)
views of qkv and run the shared flash kernel (:func:`~._flash.flash_attention_triton`).

Which implementation ``backend="auto"`` runs per block shape is decided by the runtime profile /
built-in table (:mod:`.profile`): on an H200 without a profile the Triton window kernel runs
the shapes where it was measured faster than torch, torch all others (the global blocks
included).

Design card order: reference -> Triton kernel -> launcher -> torch.library op -> public op.
"""

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ._backend import (
    dot_input_precision,
    dot_upcast_needed,
    import_triton,
    interpreter_enabled,
    launch,
    next_pow2,
)
from ._flash import (FlashConfig, attend_block, check_config, flash_attention_triton,
                     gpu_supported)
from .profile import choose, windowed_bucket

triton, tl = import_triton()

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_REF_DTYPES = _TRITON_DTYPES + (torch.float64,)


# ---------------------------------------------------------------------------------------------
# argument checks (shared by the reference, the launcher and the public op)
# ---------------------------------------------------------------------------------------------


def _out_grid(H: int, W: int, window_size: int, q_stride: int):
    """Geometry: (Hp, Wp, nWh, nWw, qws) -- padded grid, windows, pooled window size."""
    ws, s = window_size, q_stride
    if ws == 0:
        return H, W, 1, 1, 0
    nwh, nww = -(-H // ws), -(-W // ws)
    return nwh * ws, nww * ws, nwh, nww, ws // s


def _check_windowed_args(qkv, qkv_bias, num_heads, window_size, q_stride, dtypes):
    if not isinstance(qkv, torch.Tensor):
        raise ValueError(f"qkv must be a torch.Tensor, got {type(qkv).__name__}")
    if qkv.dim() != 4:
        raise ValueError(f"qkv must have shape (B, H, W, 3*C), got {tuple(qkv.shape)}")
    if qkv.dtype not in dtypes:
        raise ValueError(f"qkv dtype must be one of {dtypes}, got {qkv.dtype}")
    if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    if not isinstance(window_size, int) or isinstance(window_size, bool) or window_size < 0:
        raise ValueError(f"window_size must be an int >= 0, got {window_size!r}")
    if not isinstance(q_stride, int) or isinstance(q_stride, bool) or q_stride < 1:
        raise ValueError(f"q_stride must be an int >= 1, got {q_stride!r}")
    B, H, W, C3 = qkv.shape
    if C3 % (3 * num_heads) != 0 or C3 == 0:
        raise ValueError(
            f"qkv last dim ({C3}) must be 3 * num_heads ({num_heads}) * head_dim"
        )
    if qkv_bias is not None:
        if not isinstance(qkv_bias, torch.Tensor):
            raise ValueError(f"qkv_bias must be a tensor or None, got {type(qkv_bias).__name__}")
        if qkv_bias.shape != (C3,):
            raise ValueError(f"qkv_bias must have shape ({C3},), got {tuple(qkv_bias.shape)}")
        if not qkv_bias.dtype.is_floating_point:
            raise ValueError(f"qkv_bias must be floating point, got {qkv_bias.dtype}")
        if qkv_bias.device != qkv.device:
            raise ValueError(
                f"qkv_bias is on {qkv_bias.device} but qkv is on {qkv.device}"
            )
    s, ws = q_stride, window_size
    if H // s < 1 or W // s < 1:
        raise ValueError(f"qkv grid ({H}, {W}) is smaller than q_stride {s}")
    if ws > 0:
        if ws // s < 1:
            raise ValueError(f"window_size {ws} is smaller than q_stride {s}")
        _, _, nwh, nww, qws = _out_grid(H, W, ws, s)
        if nwh * qws < H // s or nww * qws < W // s:
            raise ValueError(
                f"window_size {ws} with q_stride {s} on a ({H}, {W}) grid unpartitions to "
                f"({nwh * qws}, {nww * qws}), smaller than the pooled grid ({H // s}, {W // s})"
            )


# ---------------------------------------------------------------------------------------------
# 1) reference
# ---------------------------------------------------------------------------------------------


def windowed_attention_reference(
    qkv: torch.Tensor,
    qkv_bias: Optional[torch.Tensor],
    num_heads: int,
    window_size: int,
    q_stride: int = 1,
) -> torch.Tensor:
    """Plain-torch Hiera window attention (mirrors the official ops one by one).

    Args:
        qkv: (B, H, W, 3*C), fp16/bf16/fp32/fp64 -- the block's ``qkv`` Linear applied to the
            unpadded normed tokens; channel ``which*C + head*head_dim + j`` (official layout).
        qkv_bias: (3*C,) or None -- the qkv Linear bias. The official zero-pads the tokens
            *before* the Linear, so padded tokens carry q/k/v == bias (0 when None).
        num_heads: heads; head_dim = C // num_heads.
        window_size: ws; 0 = global attention over all H*W tokens.
        q_stride: s; q is max-pooled s x s (floor) inside each padded window (or over the
            whole grid when ws == 0) before attention.

    Maths: pad (H, W) bottom/right to multiples of ws with the bias row; split into ws x ws
    windows; per window and head
    ``O = softmax(maxpool_s(Q) K^T / sqrt(head_dim)) V`` (keys/values: the ws*ws tokens of
    the window, padded ones included); un-partition with window ws//s and crop to
    (H//s, W//s).

    Returns: (B, H//s, W//s, C), qkv's dtype, contiguous; heads concatenated (proj-ready).

    Raises: ValueError on bad shapes/dtypes/devices (message names the argument).
    """
    _check_windowed_args(qkv, qkv_bias, num_heads, window_size, q_stride, _REF_DTYPES)
    B, H, W, C3 = qkv.shape
    C = C3 // 3
    D = C // num_heads
    ws, s = window_size, q_stride
    x = qkv
    if ws > 0:
        Hp, Wp, nwh, nww, qws = _out_grid(H, W, ws, s)
        if (Hp, Wp) != (H, W):
            if qkv_bias is None:
                fill = x.new_zeros(C3)
            else:
                fill = qkv_bias.to(x.dtype)
            xp = fill.expand(B, Hp, Wp, C3).clone()
            xp[:, :H, :W] = x
            x = xp
        # window_partition
        x = x.reshape(B, nwh, ws, nww, ws, C3).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(B * nwh * nww, ws, ws, C3)
    Bw, h, w, _ = x.shape
    q, k, v = torch.unbind(x.reshape(Bw, h * w, 3, num_heads, D), 2)
    if s > 1:
        q = F.max_pool2d(
            q.reshape(Bw, h, w, C).permute(0, 3, 1, 2), kernel_size=s, stride=s, ceil_mode=False
        ).permute(0, 2, 3, 1)
        h, w = q.shape[1:3]
        q = q.reshape(Bw, h * w, num_heads, D)
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    o = o.transpose(1, 2).reshape(Bw, h, w, C)
    if ws > 0:
        # window_unpartition with the pooled window, cropped to the pooled grid
        o = o.reshape(B, nwh, nww, qws, qws, C).permute(0, 1, 3, 2, 4, 5)
        o = o.reshape(B, nwh * qws, nww * qws, C)[:, : H // s, : W // s]
    return o.contiguous()


# ---------------------------------------------------------------------------------------------
# 2) Triton kernel
# ---------------------------------------------------------------------------------------------


@triton.jit
def _windowed_attn_fwd(
    qkv_ptr, bias_ptr, out_ptr,
    s_b, s_h, s_w, s_c,  # qkv strides (elements)
    H, W,  # unpadded input grid
    HO, WO,  # output grid (H // S, W // S)
    WH, WW,  # key window (ws, ws), or (H, W) for global attention
    QWH, QWW,  # query window (ws // S, ws // S), or (H // S, W // S) for global
    NWW, NW,  # windows along W, windows per image
    NUM_HEADS, HEAD_DIM, C,
    NUM_Q_BLOCKS,
    qk_scale,  # log2(e) / sqrt(head_dim)
    S: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    pid = tl.program_id(0)
    qb = pid % NUM_Q_BLOCKS
    rest = pid // NUM_Q_BLOCKS
    head = rest % NUM_HEADS
    rest = rest // NUM_HEADS
    win = rest % NW
    b = rest // NW
    wh = win // NWW
    ww = win % NWW

    base = qkv_ptr + b.to(tl.int64) * s_b
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    col_q = (head * HEAD_DIM + offs_d) * s_c
    col_k = (C + head * HEAD_DIM + offs_d) * s_c
    col_v = (2 * C + head * HEAD_DIM + offs_d) * s_c

    # ---- queries: max over the S x S source tokens, padded tokens read as the bias ----------
    offs_m = qb * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < QWH * QWW
    qr = offs_m // QWW
    qc = offs_m % QWW
    if HAS_BIAS:
        bq = tl.load(bias_ptr + head * HEAD_DIM + offs_d, mask=d_ok, other=0.0)
        bk = tl.load(bias_ptr + C + head * HEAD_DIM + offs_d, mask=d_ok, other=0.0)
        bv = tl.load(bias_ptr + 2 * C + head * HEAD_DIM + offs_d, mask=d_ok, other=0.0)
    # max in fp32 (exact: every 16-bit value is an fp32 value), rounded back below (exact)
    q = tl.full((BLOCK_M, BLOCK_D), float("-inf"), tl.float32)
    for a in tl.static_range(S):
        for c in tl.static_range(S):
            r = wh * WH + qr * S + a
            cc = ww * WW + qc * S + c
            inr = (r < H) & (cc < W)
            ptrs = base + (r * s_h + cc * s_w)[:, None] + col_q[None, :]
            val = tl.load(ptrs, mask=(m_ok & inr)[:, None] & d_ok[None, :], other=0.0)
            if HAS_BIAS:
                val = tl.where(inr[:, None], val, bq[None, :].to(val.dtype))
            q = tl.maximum(q, val.to(tl.float32))
    if not UPCAST:
        q = q.to(qkv_ptr.dtype.element_ty)

    # ---- flash loop over the keys of the window --------------------------------------------
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    NK = WH * WW
    for start in range(0, NK, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < NK
        # (names distinct from the q part: a loop must not re-type an outer variable)
        k_r = wh * WH + offs_n // WW
        k_c = ww * WW + offs_n % WW
        k_in = (k_r < H) & (k_c < W) & n_ok
        k_row = (k_r * s_h + k_c * s_w)[:, None]
        kv_mask = k_in[:, None] & d_ok[None, :]
        k = tl.load(base + k_row + col_k[None, :], mask=kv_mask, other=0.0)
        v = tl.load(base + k_row + col_v[None, :], mask=kv_mask, other=0.0)
        if HAS_BIAS:
            k = tl.where(k_in[:, None], k, bk[None, :].to(k.dtype))
            v = tl.where(k_in[:, None], v, bv[None, :].to(v.dtype))
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        m_i, l_i, acc = attend_block(q, k, v, m_i, l_i, acc, qk_scale, n_ok, True, DOT_PREC)

    acc = acc / l_i[:, None]
    orow = wh * QWH + qr
    ocol = ww * QWW + qc
    o_ok = m_ok & (orow < HO) & (ocol < WO)
    optrs = (
        out_ptr
        + b.to(tl.int64) * HO * WO * C
        + ((orow * WO + ocol) * C)[:, None]
        + (head * HEAD_DIM + offs_d)[None, :]
    )
    tl.store(optrs, acc.to(out_ptr.dtype.element_ty), mask=o_ok[:, None] & d_ok[None, :])


# ---------------------------------------------------------------------------------------------
# 3) launcher
# ---------------------------------------------------------------------------------------------


def _pick_config(num_q: int, num_k: int, head_dim: int, global_attn: bool, dtype: torch.dtype,
                 q_stride: int = 1):
    """Pinned tile table per shape class (no autotuning), sized for Hopper shared memory.

    16-bit inputs:
    * global attention (thousands of tokens): BLOCK_M 128 (64 if head_dim > 128), BLOCK_N 64,
      8 warps, 2 stages.
    * windows (<= 256 tokens): BLOCK_M / BLOCK_N = next power of two of the window's query /
      key counts, capped at 64, at least 16 (tl.dot minimum; BLOCK_M <= 32 for pooled q with a
      head_dim not a multiple of 16); 2 stages; 8 warps for 64 x 128 (q x head) tiles and for
      64 x 64 tiles over more than 128 keys, else 4 (the AOT test: no register spills).
    fp32 inputs (tf32x3 dots, see ``dot_input_precision``; three products per tile, the
    register hog): 16 x 16 tiles (32 x 16 for head_dim <= 64), 8 warps, 2 stages -- the largest
    without register spills on sm_90 (AOT test; 64 x 32 at 4 warps spilled); 4 warps for the
    16 x 64 (q x head) tiles of 16-query windows with head_dim <= 64 (8 warps spilled there with
    triton 3.6's ptxas).
    BLOCK_D is head_dim rounded up to a power of two (masked).
    Under the Triton interpreter: BLOCK_M <= 32, BLOCK_N = 16, so that small test shapes
    exercise several query and key blocks (same code, other constants).
    """
    block_d = max(16, next_pow2(head_dim))
    if interpreter_enabled():
        bm = min(32, max(16, next_pow2(num_q)))
        return dict(BLOCK_M=bm, BLOCK_N=16, BLOCK_D=block_d, num_warps=4, num_stages=1)
    if dtype == torch.float32:
        bm = min(16 if head_dim > 64 else 32, max(16, next_pow2(num_q)))
        warps = 4 if bm * block_d <= 16 * 64 else 8
        return dict(BLOCK_M=bm, BLOCK_N=16, BLOCK_D=block_d, num_warps=warps, num_stages=2)
    if global_attn:
        bm = 128 if block_d <= 128 else 64
        return dict(BLOCK_M=bm, BLOCK_N=64, BLOCK_D=block_d, num_warps=8, num_stages=2)
    bm = min(64, max(16, next_pow2(num_q)))
    bn = min(64, max(16, next_pow2(num_k)))
    if q_stride > 1 and head_dim % 16:
        bm = min(bm, 32)  # pooled q with unaligned head columns (large, d 72): 64 rows spilled
    # 64 x 128 (q x head): 190 registers at 8 warps, 250 at 4; 64 x 64 with 14 x 14 windows
    # (base_plus stage 3/4) spilled at 4 warps
    big = bm * block_d >= 64 * 128 or (bm * block_d >= 64 * 64 and num_k > 128)
    return dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=block_d, num_warps=8 if big else 4,
                num_stages=2)


def _global_views(qkv: torch.Tensor, num_heads: int):
    """(q, k, v) as strided (B, heads, H*W, head_dim) views of qkv, or None when the token grid
    cannot be flattened by strides (rows not evenly spaced)."""
    B, H, W, C3 = qkv.shape
    s_b, s_h, s_w, s_c = qkv.stride()
    if H > 1 and s_h != W * s_w:
        return None
    C = C3 // 3
    D = C // num_heads
    size = (B, num_heads, H * W, D)
    stride = (s_b, D * s_c, s_w, s_c)
    off = qkv.storage_offset()
    return tuple(qkv.as_strided(size, stride, off + i * C * s_c) for i in range(3))


def _windowed_attention_launch(qkv, qkv_bias, num_heads, window_size, q_stride, config=None):
    """Allocate the (B, H//s, W//s, C) output and launch (arguments already checked): global
    blocks without pooling on the shared flash kernel, all others on the window kernel."""
    B, H, W, C3 = qkv.shape
    flash_ok = interpreter_enabled() or gpu_supported(qkv.dtype)  # fp32 on a GPU: window kernel
    if window_size == 0 and q_stride == 1 and qkv.numel() > 0 and flash_ok:
        views = _global_views(qkv, num_heads)
        if views is not None:
            q, k, v = views
            C = C3 // 3
            out = torch.empty((B, H, W, C), dtype=qkv.dtype, device=qkv.device)
            o = out.view(B, H * W, num_heads, C // num_heads).transpose(1, 2)
            flash_attention_triton(q, k, v, config=config, out=o)
            return out
    C = C3 // 3
    D = C // num_heads
    ws, s = window_size, q_stride
    HO, WO = H // s, W // s
    out = torch.empty((B, HO, WO, C), dtype=qkv.dtype, device=qkv.device)
    if out.numel() == 0:
        return out
    if ws == 0:
        WH, WW, QWH, QWW, NWW, NW = H, W, HO, WO, 1, 1
    else:
        _, _, nwh, nww, qws = _out_grid(H, W, ws, s)
        WH, WW, QWH, QWW, NWW, NW = ws, ws, qws, qws, nww, nwh * nww
    cfg = _pick_config(QWH * QWW, WH * WW, D, ws == 0, qkv.dtype, s)
    nqb = triton.cdiv(QWH * QWW, cfg["BLOCK_M"])
    bias = qkv_bias.contiguous() if qkv_bias is not None else qkv  # dummy pointer if None
    grid = (B * NW * num_heads * nqb,)
    launch(
        _windowed_attn_fwd, grid,
        qkv, bias, out,
        qkv.stride(0), qkv.stride(1), qkv.stride(2), qkv.stride(3),
        H, W, HO, WO, WH, WW, QWH, QWW, NWW, NW,
        num_heads, D, C, nqb,
        math.log2(math.e) / math.sqrt(D),
        S=s,
        HAS_BIAS=qkv_bias is not None,
        UPCAST=dot_upcast_needed(qkv.dtype),
        DOT_PREC=dot_input_precision(qkv.dtype),
        **cfg,
    )
    return out


def _windowed_attention_triton(qkv, qkv_bias, num_heads, window_size, q_stride, config=None):
    """Validate, allocate the (B, H//s, W//s, C) output and launch."""
    _check_windowed_args(qkv, qkv_bias, num_heads, window_size, q_stride, _TRITON_DTYPES)
    if qkv.device.type != "cuda" and qkv.device.type != "cpu":
        raise ValueError(f"qkv must be on CUDA (or CPU under the interpreter), got {qkv.device}")
    if config is not None:
        check_config(config, qkv.dtype, qkv.shape[-1] // 3 // num_heads)
    return _windowed_attention_launch(qkv, qkv_bias, num_heads, window_size, q_stride, config)


# ---------------------------------------------------------------------------------------------
# 4) torch.library registration: sam2_fast::windowed_attention
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("sam2_fast::windowed_attention", mutates_args=())
def _windowed_attention_op(
    qkv: torch.Tensor,
    qkv_bias: Optional[torch.Tensor],
    num_heads: int,
    window_size: int,
    q_stride: int,
    block_m: int = 0,
    block_n: int = 0,
    num_warps: int = 0,
    num_stages: int = 0,
) -> torch.Tensor:
    cfg = (block_m, block_n, num_warps, num_stages)
    config = FlashConfig(*cfg) if all(c > 0 for c in cfg) else None
    return _windowed_attention_triton(qkv, qkv_bias, num_heads, window_size, q_stride, config)


@_windowed_attention_op.register_fake
def _(qkv, qkv_bias, num_heads, window_size, q_stride, block_m=0, block_n=0, num_warps=0,
      num_stages=0):
    _check_windowed_args(qkv, qkv_bias, num_heads, window_size, q_stride, _TRITON_DTYPES)
    B, H, W, C3 = qkv.shape
    return qkv.new_empty((B, H // q_stride, W // q_stride, C3 // 3))


# ---------------------------------------------------------------------------------------------
# 5) public op
# ---------------------------------------------------------------------------------------------


def windowed_attention(
    qkv: torch.Tensor,
    qkv_bias: Optional[torch.Tensor],
    num_heads: int,
    window_size: int,
    q_stride: int = 1,
    *,
    backend: str = "auto",
    profile=None,
) -> torch.Tensor:
    """Hiera window attention with optional q max-pooling, fused (no pad/partition copies).

    Replaces the official ``MultiScaleBlock`` windowing + ``MultiScaleAttention`` core
    (``sam2/modeling/backbones/hieradet.py``; ``window_partition`` / ``window_unpartition``
    of ``sam2/modeling/backbones/utils.py``) between ``attn.qkv`` and ``attn.proj``.

    Args:
        qkv: (B, H, W, 3*C), fp16 / bf16 / fp32 (fp64 on the torch backend): the qkv Linear
            applied to the *unpadded* normed tokens; channel = which*C + head*head_dim + j.
            Any strides (e.g. a slice of a bigger tensor).
        qkv_bias: (3*C,) or None, any float dtype, same device: the qkv Linear bias (padded
            tokens, which the official zero-pads before the Linear, carry q/k/v = bias).
        num_heads: heads (head_dim = C // num_heads; any head_dim, masked to a power of two;
            <= 256 for the global blocks on Triton).
        window_size: ws > 0 windows (H, W padded up to multiples of ws), 0 = global.
        q_stride: s >= 1; q is max-pooled s x s (floor, per channel) inside each padded
            window (whole grid when ws == 0); queries per window (ws//s)^2, keys ws^2.
        backend: "auto" | "triton" | "torch". "auto" follows ``profile`` / the built-in table
            per block shape (:mod:`.profile`); torch off CUDA.
        profile: a :class:`~.profile.KernelProfile` or None.

    Maths: per window and head ``softmax(pool_s(Q) K^T / sqrt(head_dim)) V``; the output is
    un-partitioned with window ws//s and cropped to (H//s, W//s).

    Returns: (B, H//s, W//s, C) contiguous, qkv's dtype, ready for the proj Linear.

    Raises:
        ValueError: wrong shape / dtype / device of ``qkv`` or ``qkv_bias``, bad
            ``num_heads`` / ``window_size`` / ``q_stride``, or a window/stride combination
            whose un-partitioned grid is smaller than (H//s, W//s).
        RuntimeError: ``backend="triton"`` where Triton cannot run.
    """
    _check_windowed_args(qkv, qkv_bias, num_heads, window_size, q_stride, _REF_DTYPES)
    if qkv.dtype == torch.float64:
        if backend == "triton":  # the reference only: the message names the dtype
            _check_windowed_args(qkv, qkv_bias, num_heads, window_size, q_stride, _TRITON_DTYPES)
        return windowed_attention_reference(qkv, qkv_bias, num_heads, window_size, q_stride)
    B, H, W, C3 = qkv.shape
    choice = choose("windowed_attention", backend, qkv.device, profile,
                    lambda: windowed_bucket(qkv.dtype, H, W, C3 // 3, num_heads, window_size,
                                            q_stride))
    if choice.impl == "torch":
        return windowed_attention_reference(qkv, qkv_bias, num_heads, window_size, q_stride)
    cfg = choice.config
    if torch.compiler.is_compiling():
        c = (cfg.block_m, cfg.block_n, cfg.num_warps, cfg.num_stages) if cfg else (0, 0, 0, 0)
        return torch.ops.sam2_fast.windowed_attention(
            qkv, qkv_bias, num_heads, window_size, q_stride, *c)
    if qkv.device.type != "cuda" and qkv.device.type != "cpu":
        raise ValueError(f"qkv must be on CUDA (or CPU under the interpreter), got {qkv.device}")
    return _windowed_attention_launch(qkv, qkv_bias, num_heads, window_size, q_stride, cfg)
