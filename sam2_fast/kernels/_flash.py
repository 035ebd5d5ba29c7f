"""The flash-attention forward shared by the attention ops of sam2_fast.

One Triton kernel, :func:`_flash_attn_fwd`, computes ``softmax(q k^T / sqrt(d)) v`` for
(B, heads, N, d) operands of any strides, with fp32 online softmax and fp32 accumulation. Its
hot loop is the plain flash loop: load a key tile, one full-width ``q k^T`` dot, the
online-softmax update (:func:`attend_block`, also used by the window kernel of
``windowed_attention``), load a value tile, one ``p v`` dot. Nothing else happens per key tile.

Users:

* :mod:`.rope_attention` (SAM 2 memory attention): q and k arrive rotated by the axial RoPE
  tables (one fused rotation pass before this kernel, or keys cached by the caller). Rotating q
  in this kernel's prologue instead was tried: the fp32 rotation's live registers on top of the
  resident q tile and the 64 x 256 accumulator made ptxas spill (255 registers and 80-700 bytes
  of spill stores for every d = 256 tile; 187-254 registers and no spill without it).
* :mod:`.windowed_attention`: the global-attention blocks of Hiera (no window, no q pooling)
  are plain attention over the (B, heads, H*W, head_dim) views of the fused qkv tensor.

Split-K (flash-decoding): when ``B * heads * ceil(Nq / BLOCK_M)`` programs cannot fill the GPU
(one object at 64 x 64 queries: 32 programs of 128 queries for 132 SMs), the keys are split
over ``splits`` programs per query tile; each writes its normalised fp32 partial output and its
log2-sum-exp, and :func:`_flash_attn_combine` merges them. See :func:`auto_splits` for where
that pays.

Operands are read with pointer loads (asynchronous copies issued by every thread), or, for the
``tma`` tile configs, through 2-D tensor descriptors: Hopper's tensor memory accelerator copies
each q / k / v tile in bulk, without per-thread address registers (the d = 256 default tile
needs 202 registers this way, 254 with pointers). Rows past a tensor's end read as zeros; rows
past an object's keys inside the tensor (the next object, padding) are masked like the pointer
path's. Which of the two is faster on a given GPU is for ``sam2-fast tune`` to measure.

Tile configs are explicit (:data:`SM90_CONFIGS`, no autotuner cache): every shipped config is
compiled for sm_90 in ``tests/test_kernels_aot.py`` (no register spills, shared memory within
the 227 KB of a Hopper block). A runtime profile (``sam2-fast tune``) may pick another config of
the shipped list per shape bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ._backend import (
    dot_input_precision,
    dot_upcast_needed,
    import_triton,
    interpreter_enabled,
    launch,
    next_pow2,
    sm_count,
)

triton, tl = import_triton()


# ---------------------------------------------------------------------------------------------
# tile configs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlashConfig:
    """Tiles of :func:`_flash_attn_fwd`: ``block_m`` queries x ``block_n`` keys per step,
    ``num_warps`` warps, ``num_stages`` software-pipeline stages (Hopper: async copies of the
    next key/value tiles while the current ones are in the tensor cores). ``tma``: q, k and v
    tiles are read through tensor descriptors (Hopper's tensor memory accelerator: one bulk
    copy per tile, no per-thread addresses) instead of pointer loads; see :func:`tma_problem`
    for the layouts it takes."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    tma: bool = False

    @property
    def name(self) -> str:
        tail = "_tma" if self.tma else ""
        return f"m{self.block_m}_n{self.block_n}_w{self.num_warps}_s{self.num_stages}{tail}"


def _cfgs(*tuples) -> Tuple[FlashConfig, ...]:
    return tuple(FlashConfig(*t) for t in tuples)


# (operand class, head-dim class) -> configs, the default first. Operand class "16" = fp16/bf16
# operands (wgmma). Head-dim class = next power of two of d, at least 64. Registers / shared
# memory per config: the AOT test's report (NOTES.md).
#
# Why these (sm_90: 227 KB shared memory a block, 64 K registers an SM, at most 255 a thread):
# * d = 256 (memory attention): the fp32 accumulator of a 128 x 256 tile is 128 registers a
#   thread at 8 warps (two warpgroups of 64 query rows), q stays resident (64 KB), and each
#   pipeline stage holds a 64 x 256 key and value tile (2 x 32 KB): 128 x 64, 8 warps, 2 stages
#   (192 KB, 254 registers) is the largest tile without spills; 3 stages need 256 KB. 64 x 64 at
#   8 warps halves the accumulator per thread (about 190 registers) and doubles the programs;
#   128 x 32 with 3 stages trades key-tile width for deeper prefetch; 64 x 32 with 3 stages is
#   the smallest (128 KB). Four warps at d = 256 spill. The ``tma`` twins of the two 128-row
#   tiles read q / k / v through tensor descriptors: no address registers, one bulk copy per
#   tile (candidates for ``sam2-fast tune``; the pointer tiles stay the default).
# * d <= 128 (Hiera global attention, head_dim 96 / 72): 128 x 32 and 64 x 64 at 8 warps,
#   3 stages. With head_dim 72 the head columns of the qkv views are not 16-aligned, the loads
#   narrower, and 128 x 64 / 128 x 128 tiles and 4 warps spilled.
# * d <= 64 (head_dim 56): 128 x 128 at 8 warps, 3 stages; 64 x 64 at 4 warps, 3 stages.
# fp32 operands have no shipped config: tf32x3 dots (three products, for fp32 accuracy) spilled
# registers at every tile tried with d >= 72, down to 16 x 16 (the AOT test's method). On CUDA,
# fp32 attention therefore runs elsewhere: memory attention as the Triton rotation pass + SDPA,
# the Hiera global blocks on the window kernel. The interpreter runs fp32 through this kernel
# (any tiles), which keeps its maths tested on the CPU.
SM90_CONFIGS: Dict[Tuple[str, int], Tuple[FlashConfig, ...]] = {
    ("16", 64): _cfgs((128, 128, 8, 3), (64, 64, 4, 3)),
    ("16", 128): _cfgs((128, 32, 8, 3), (64, 64, 8, 3)),
    ("16", 256): _cfgs((128, 64, 8, 2), (64, 64, 8, 2), (128, 32, 8, 3), (64, 32, 8, 3),
                       (128, 64, 8, 2, True), (128, 32, 8, 3, True)),
}

# under the Triton interpreter: small tiles, so that small test shapes run several query tiles,
# several key tiles and the masked tail (same code, other constants)
INTERPRETER_CONFIG = FlashConfig(32, 16, 4, 1)

MAX_HEAD_DIM = 256


def operand_class(dtype: torch.dtype) -> str:
    """``"32"`` for fp32 operands, ``"16"`` for fp16 / bf16."""
    return "32" if dtype == torch.float32 else "16"


def head_dim_class(d: int) -> int:
    """Next power of two of ``d``, at least 64 (the config table's key)."""
    return max(64, next_pow2(d))


def gpu_supported(dtype: torch.dtype) -> bool:
    """True when the flash kernel has shipped GPU configs for operands of ``dtype`` (fp16 /
    bf16; not fp32, see :data:`SM90_CONFIGS`)."""
    return operand_class(dtype) == "16"


def shipped_configs(dtype: torch.dtype, d: int) -> Tuple[FlashConfig, ...]:
    """The shipped sm_90 configs for operands of ``dtype`` and head dim ``d`` (default first).

    Raises: ValueError for d > 256 or fp32 operands (no shipped config).
    """
    if d > MAX_HEAD_DIM:
        raise ValueError(f"head dim {d} > {MAX_HEAD_DIM} is not supported by the Triton kernel")
    if not gpu_supported(dtype):
        raise ValueError(f"no flash-attention config is shipped for {dtype} operands on the GPU "
                         "(tf32x3 dots spill registers on sm_90); d=" + str(d))
    return SM90_CONFIGS[(operand_class(dtype), head_dim_class(d))]


def default_config(dtype: torch.dtype, d: int) -> FlashConfig:
    """The config used when no profile names one (interpreter: :data:`INTERPRETER_CONFIG`)."""
    if interpreter_enabled():
        return INTERPRETER_CONFIG
    return shipped_configs(dtype, d)[0]


def check_config(config: FlashConfig, dtype: torch.dtype, d: int) -> FlashConfig:
    """``config`` if it is a shipped config for (dtype, d) (or the interpreter config under the
    interpreter: any tiles of powers of two >= 16). Raises ValueError otherwise: only configs
    the AOT test compiled run on a GPU."""
    if not isinstance(config, FlashConfig):
        raise ValueError(f"config must be a FlashConfig, got {type(config).__name__}")
    pow2 = all(isinstance(v, int) and v > 0 and v & (v - 1) == 0
               for v in (config.block_m, config.block_n, config.num_warps))
    if (not pow2 or min(config.block_m, config.block_n) < 16 or config.num_stages < 1
            or not isinstance(config.tma, bool)):
        raise ValueError(f"tile config {config} is malformed: block_m, block_n powers of two "
                         ">= 16, num_warps a power of two, num_stages >= 1, tma a bool")
    if interpreter_enabled() or config in shipped_configs(dtype, d):
        return config
    names = [c.name for c in shipped_configs(dtype, d)]
    raise ValueError(f"tile config {config.name} is not shipped for {dtype} d={d}; one of {names}")


# ---------------------------------------------------------------------------------------------
# split-K policy
# ---------------------------------------------------------------------------------------------

MIN_KEY_BLOCKS_PER_SPLIT = 8
MAX_SPLITS = 16


def auto_splits(programs: int, key_blocks: int, device: torch.device) -> int:
    """How many programs share one query tile's keys (1 = no split).

    Split-K pays only when the query tiles alone leave SMs idle and each split still has many
    key tiles to amortise writing its fp32 partial (a 128 x 256 partial costs about as much
    memory time as two key tiles of compute): splits = floor(SMs / programs) -- one wave,
    never a second, mostly idle one -- capped so that every split gets at least
    :data:`MIN_KEY_BLOCKS_PER_SPLIT` key tiles, and at :data:`MAX_SPLITS`. For SAM 2 at
    1024 px on an H200 (132 SMs, 128-query tiles): one object -> 4 splits for self (64 key
    tiles) and cross attention (up to 449 key tiles); 2 objects -> 2; 4 or more -> none.
    Off-GPU: 1.
    """
    if device.type != "cuda":
        return 1
    fill = sm_count(device) // max(programs, 1)
    cap = key_blocks // MIN_KEY_BLOCKS_PER_SPLIT
    return max(1, min(fill, cap, MAX_SPLITS))


# ---------------------------------------------------------------------------------------------
# Triton: the shared online-softmax step and the flash kernel
# ---------------------------------------------------------------------------------------------


@triton.jit
def attend_block(q, k, v, m_i, l_i, acc, qk_scale, n_ok,
                 MASK_N: tl.constexpr, DOT_PREC: tl.constexpr):
    """One key tile of flash attention (online softmax in the log2 domain, fp32).

    q (M, D), k (N, D), v (N, D) tiles (same dtype); m_i, l_i (M,) running max and sum of
    ``exp2``; acc (M, D) fp32 unnormalised output; ``qk_scale`` = log2(e) / sqrt(d); n_ok (N,)
    valid keys (used when MASK_N). Returns the updated (m_i, l_i, acc).
    """
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PREC) * qk_scale
    if MASK_N:
        s = tl.where(n_ok[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PREC)
    return m_new, l_i, acc


@triton.jit
def _load_rows(ptrs, row_ok, d_ok, MASK_ROWS: tl.constexpr, EVEN_D: tl.constexpr):
    """Load a (rows, BLOCK_D) tile; masks only where rows or columns can be out of range."""
    if MASK_ROWS:
        if EVEN_D:
            x = tl.load(ptrs, mask=row_ok[:, None], other=0.0)
        else:
            x = tl.load(ptrs, mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    else:
        if EVEN_D:
            x = tl.load(ptrs)
        else:
            x = tl.load(ptrs, mask=d_ok[None, :], other=0.0)
    return x


@triton.jit
def _flash_attn_fwd(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr,
    sq_b, sq_h, sq_n, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    so_s, so_b, so_h, so_n, so_d,  # output (or partial-output) strides; so_s = split stride
    sl_s, sl_bh,  # lse strides (split, batch*head); token stride 1
    NUM_HEADS, NQ, NK, D,
    KB_PER_SPLIT,
    qk_scale,  # log2(e) / sqrt(d)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,  # power of two >= d
    EVEN_D: tl.constexpr,  # BLOCK_D == d: no column masks
    WRITE_LSE: tl.constexpr,  # split mode: normalised fp32 partials + log2-sum-exp
    UPCAST: tl.constexpr,
    DOT_PREC: tl.constexpr,
    TMA: tl.constexpr,  # q_ptr / k_ptr / v_ptr are 2-D tensor descriptors (tma_descriptor)
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    b = pid_bh // NUM_HEADS
    h = pid_bh % NUM_HEADS

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < NQ
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D

    # ---- prologue: the q tile, resident for the whole loop -----------------------------------
    if TMA:
        # element (b, h, n, 0) sits at row (b sb + h sh) // sn + n, column (b sb + h sh) % sn
        # of the (rows, sn) descriptor; rows past the tensor read as zeros
        q_off = b * sq_b + h * sq_h
        q = q_ptr.load([q_off // sq_n + pid_m * BLOCK_M, q_off % sq_n])
        k_off = b * sk_b + h * sk_h
        k_row0 = k_off // sk_n
        k_col0 = k_off % sk_n
        v_off = b * sv_b + h * sv_h
        v_row0 = v_off // sv_n
        v_col0 = v_off % sv_n
    else:
        q_base = q_ptr + b.to(tl.int64) * sq_b + h.to(tl.int64) * sq_h
        q_rows = (offs_m.to(tl.int64) * sq_n)[:, None]
        q = _load_rows(q_base + q_rows + (offs_d * sq_d)[None, :], m_ok, d_ok, True, EVEN_D)
        k_base = k_ptr + b.to(tl.int64) * sk_b + h.to(tl.int64) * sk_h
        v_base = v_ptr + b.to(tl.int64) * sv_b + h.to(tl.int64) * sv_h
        k_cols = (offs_d * sk_d)[None, :]
        v_cols = (offs_d * sv_d)[None, :]
    if UPCAST:
        q = q.to(tl.float32)

    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)

    kb_start = pid_s * KB_PER_SPLIT
    kb_stop = tl.minimum(kb_start + KB_PER_SPLIT, tl.cdiv(NK, BLOCK_N))
    kb_full = tl.minimum(kb_stop, NK // BLOCK_N)
    # ---- hot loop: full key tiles, no masks but the columns' (d < BLOCK_D) -------------------
    for kb in range(kb_start, kb_full):
        offs_n = kb * BLOCK_N + tl.arange(0, BLOCK_N)
        if TMA:
            k = k_ptr.load([k_row0 + kb * BLOCK_N, k_col0])
            v = v_ptr.load([v_row0 + kb * BLOCK_N, v_col0])
        else:
            rows_n = offs_n.to(tl.int64)
            k = _load_rows(k_base + (rows_n * sk_n)[:, None] + k_cols, offs_n < NK, d_ok, False,
                           EVEN_D)
            v = _load_rows(v_base + (rows_n * sv_n)[:, None] + v_cols, offs_n < NK, d_ok, False,
                           EVEN_D)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        m_i, l_i, acc = attend_block(q, k, v, m_i, l_i, acc, qk_scale, offs_n < NK,
                                     False, DOT_PREC)
    # ---- the last, partial key tile (at most one per split) ---------------------------------
    if kb_full < kb_stop:
        offs_t = kb_full * BLOCK_N + tl.arange(0, BLOCK_N)
        t_ok = offs_t < NK
        if TMA:
            # rows past NK belong to the next object, to padding or to nothing (zeros): their
            # scores are masked below, and their values zeroed so that 0 * (NaN padding) = 0
            kt = k_ptr.load([k_row0 + kb_full * BLOCK_N, k_col0])
            vt = v_ptr.load([v_row0 + kb_full * BLOCK_N, v_col0])
            vt = tl.where(t_ok[:, None], vt, 0.0)
        else:
            rows_t = offs_t.to(tl.int64)
            kt = _load_rows(k_base + (rows_t * sk_n)[:, None] + k_cols, t_ok, d_ok, True, EVEN_D)
            vt = _load_rows(v_base + (rows_t * sv_n)[:, None] + v_cols, t_ok, d_ok, True, EVEN_D)
        if UPCAST:
            kt = kt.to(tl.float32)
            vt = vt.to(tl.float32)
        m_i, l_i, acc = attend_block(q, kt, vt, m_i, l_i, acc, qk_scale, t_ok, True, DOT_PREC)

    # ---- epilogue ----------------------------------------------------------------------------
    acc = acc / l_i[:, None]
    o_base = o_ptr + pid_s.to(tl.int64) * so_s + b.to(tl.int64) * so_b + h.to(tl.int64) * so_h
    o_ptrs = o_base + (offs_m.to(tl.int64) * so_n)[:, None] + (offs_d * so_d)[None, :]
    tl.store(o_ptrs, acc.to(o_ptr.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])
    if WRITE_LSE:
        lse = m_i + tl.log2(l_i)
        tl.store(lse_ptr + pid_s * sl_s + pid_bh * sl_bh + offs_m, lse, mask=m_ok)


@triton.jit
def _flash_attn_combine(
    part_ptr, lse_ptr, o_ptr,
    sp_s, sp_b, sp_h, sp_n,  # partial strides (d stride 1)
    sl_s, sl_bh,
    so_b, so_h, so_n, so_d,
    NUM_HEADS, NQ, D, NUM_SPLITS,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Merge the split-K partials: out = sum_s 2^(lse_s - lse) part_s (fp32)."""
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
# launcher
# ---------------------------------------------------------------------------------------------

_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _last_offset(x: torch.Tensor) -> int:
    return sum((n - 1) * st for n, st in zip(x.shape, x.stride()))


def tma_problem(x: torch.Tensor, name: str = "x") -> Optional[str]:
    """Why the (B, heads, N, d) operand ``x`` cannot be read through a tensor descriptor, or
    None when it can.

    The kernel sees ``x`` as a 2-D (rows, pitch) descriptor, pitch = the token stride: element
    (b, h, n, j) is at row (b sb + h sh) // pitch + n, column (b sb + h sh) % pitch + j. That
    holds for the layouts attention produces -- (B, heads, N, d) contiguous, and the transposed
    view of (B, N, heads, d) storage (``_separate_heads``) -- and for views with padding between
    objects. Conditions: d contiguous (stride 1), every head's d columns inside one row
    (column + d <= pitch) and not to the right of the last element (whose row is the
    descriptor's last: reads past it would leave the allocation; rows past it read as zeros),
    the pitch and the base address 16-byte aligned (the tensor memory accelerator's rule),
    offsets below 2**31.
    """
    B, Hh, N, d = x.shape
    sb, sh, sn, sd = x.stride()
    if sd != 1 and d > 1:
        return f"{name}: the head dim must be contiguous (stride 1), got stride {sd}"
    if (sn * x.element_size()) % 16 or x.data_ptr() % 16:
        return f"{name}: the token stride and the base address must be 16-byte aligned"
    if sn < d:
        return f"{name}: the token stride {sn} is smaller than the head dim {d}"
    cols = {(b * sb + h * sh) % sn for b in range(B) for h in range(Hh)}
    if max(cols) + d > sn:
        return f"{name}: a head's {d} columns cross a row of the (tokens, {sn}) layout"
    if max(cols) + d - 1 > _last_offset(x) % sn:
        # a tile overhanging the last row would read past the tensor's last element
        return f"{name}: a head's columns lie past the last element's column"
    if _last_offset(x) + sn >= 2**31:
        return f"{name}: too large for 32-bit descriptor offsets"
    return None


def tma_descriptor(x: torch.Tensor, block_rows: int, block_d: int):
    """The 2-D (rows, pitch) tensor descriptor of a (B, heads, N, d) operand (see
    :func:`tma_problem`, which must return None), with (block_rows, block_d) tiles."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    sn = x.stride(2)
    rows = _last_offset(x) // sn + 1
    return TensorDescriptor(x, [rows, sn], [sn, 1], [block_rows, block_d])


def flash_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    config: Optional[FlashConfig] = None,
    num_splits: int = 0,
    out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Launch the flash kernel (and the split-K merge) on (B, heads, N, d) operands.

    Args:
        q: (B, heads, Nq, d); k, v: (B, heads, Nk, d); one dtype (fp16 / bf16 / fp32), one
            device (CUDA, or CPU under the interpreter), any strides; d even, <= 256.
        config: tiles (default :func:`default_config`); must be a shipped config.
        num_splits: key splits (0 = :func:`auto_splits`; clamped so that each split has at
            least one key tile).
        out: optional output (B, heads, Nq, d) of q's dtype (written in place); default a
            fresh tensor with storage (B, Nq, heads, d).

    Returns: ``out``. The caller checks argument semantics; this checks what the kernel needs.

    Raises: ValueError on dtype / device / shape / config problems.
    """
    if q.dtype not in _DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one dtype of {_DTYPES}; got {q.dtype}, {k.dtype}, "
                         f"{v.dtype}")
    if q.device.type not in ("cuda", "cpu"):
        raise ValueError(f"q must be on CUDA (or CPU under the interpreter), got {q.device}")
    if not isinstance(num_splits, int) or isinstance(num_splits, bool) or num_splits < 0:
        raise ValueError(f"num_splits must be an int >= 0 (0 = auto), got {num_splits!r}")
    B, Hh, Nq, d = q.shape
    Nk = k.shape[2]
    if d % 2 or d > MAX_HEAD_DIM:
        raise ValueError(f"head dim must be even and <= {MAX_HEAD_DIM}, got {d}")
    if not interpreter_enabled() and not gpu_supported(q.dtype):
        raise ValueError(f"the flash kernel ships no GPU config for {q.dtype} operands (callers "
                         "route fp32 elsewhere on CUDA)")
    cfg = check_config(config, q.dtype, d) if config is not None else default_config(q.dtype, d)
    if cfg.tma:
        problems = [tma_problem(t, n) for t, n in ((q, "q"), (k, "k"), (v, "v"))]
        if next_pow2(d) != d or d < 16:
            problems.insert(0, f"head dim {d} is not a power of two >= 16")
        if q.device.type == "cuda" and torch.cuda.get_device_capability(q.device)[0] < 9:
            problems.insert(0, "tensor descriptors need sm_90 or newer")
        problems = [p for p in problems if p]
        if problems:
            raise ValueError(f"tile config {cfg.name} reads through tensor descriptors: "
                             + "; ".join(problems))
    if out is None:
        # storage (B, Nq, heads, d): recombining the heads afterwards is a free view
        out = torch.empty((B, Nq, Hh, d), dtype=q.dtype, device=q.device).transpose(1, 2)
    if out.numel() == 0:
        return out
    block_d = max(16, next_pow2(d))
    nqb = triton.cdiv(Nq, cfg.block_m)
    nkb = triton.cdiv(Nk, cfg.block_n)
    splits = num_splits if num_splits > 0 else auto_splits(nqb * B * Hh, nkb, q.device)
    splits = max(1, min(splits, nkb))
    kb_per_split = triton.cdiv(nkb, splits)
    splits = triton.cdiv(nkb, kb_per_split)  # every split gets >= 1 key tile
    common = dict(
        NUM_HEADS=Hh, NQ=Nq, NK=Nk, D=d, KB_PER_SPLIT=kb_per_split,
        qk_scale=math.log2(math.e) / math.sqrt(d),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=block_d, EVEN_D=block_d == d,
        UPCAST=dot_upcast_needed(q.dtype),
        DOT_PREC=dot_input_precision(q.dtype), num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    qkv_strides = (*q.stride(), *k.stride(), *v.stride())
    qa, ka, va = q, k, v
    if cfg.tma:
        qa = tma_descriptor(q, cfg.block_m, block_d)
        ka = tma_descriptor(k, cfg.block_n, block_d)
        va = tma_descriptor(v, cfg.block_n, block_d)
    common["TMA"] = cfg.tma
    if splits == 1:
        launch(_flash_attn_fwd, (nqb, B * Hh, 1),
               qa, ka, va, out, out,  # lse pointer unused
               *qkv_strides, 0, *out.stride(), 0, 0,
               WRITE_LSE=False, **common)
        return out
    part = torch.empty((splits, B, Hh, Nq, d), dtype=torch.float32, device=q.device)
    lse = torch.empty((splits, B * Hh, Nq), dtype=torch.float32, device=q.device)
    launch(_flash_attn_fwd, (nqb, B * Hh, splits),
           qa, ka, va, part, lse,
           *qkv_strides, *part.stride(), *lse.stride()[:2],
           WRITE_LSE=True, **common)
    cm = 32
    launch(_flash_attn_combine, (triton.cdiv(Nq, cm), B * Hh),
           part, lse, out,
           *part.stride()[:4], *lse.stride()[:2], *out.stride(),
           Hh, Nq, d, splits,
           BLOCK_M=cm, BLOCK_D=block_d, num_warps=4)
    return out
