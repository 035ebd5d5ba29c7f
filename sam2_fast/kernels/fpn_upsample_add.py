"""FPN top-down step: lateral (optionally its 1x1 conv fused in) + 2x nearest upsample.

Replaces, in the official ``sam2.modeling.backbones.image_encoder.FpnNeck.forward``, the
top-down step ``lateral_features + F.interpolate(prev_features.float(), scale_factor=2,
mode="nearest")`` (and, fused, the lateral ``self.convs[n - i]`` 1x1 conv before it).

Implementations (``backend="auto"`` picks one per shape from the runtime profile / built-in
table, :mod:`.profile`): ``torch`` (the reference: two kernels when the dtypes agree), ``triton``
(one elementwise kernel after torch's 1x1 conv), ``triton_lateral`` (the conv and the add in one
Triton GEMM whose epilogue adds the upsampled coarse map). The first H200 run measured the
elementwise kernel at 0.072 ms against 0.018 ms for eager torch (launch-bound), so without a
profile auto runs torch.

Design card order: reference -> Triton kernels -> launcher -> torch.library op -> public op.
"""

import os
from typing import Optional

import torch
import torch.nn.functional as F

from ._backend import (
    dot_input_precision,
    dot_upcast_needed,
    import_triton,
    interpreter_enabled,
    launch,
)
from .profile import choose, fpn_bucket

triton, tl = import_triton()

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_REF_DTYPES = _TRITON_DTYPES + (torch.float64,)


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def _check_out_dtype(out_dtype, dtypes):
    if out_dtype is not None and out_dtype not in dtypes:
        raise ValueError(f"out_dtype must be None or one of {dtypes}, got {out_dtype}")


def _check_coarse(coarse, B, C, H, W, device, dtypes, lateral_name):
    if not isinstance(coarse, torch.Tensor):
        raise ValueError(f"coarse must be a torch.Tensor, got {type(coarse).__name__}")
    if coarse.dim() != 4:
        raise ValueError(f"coarse must have shape (B, C, H/2, W/2), got {tuple(coarse.shape)}")
    if coarse.dtype not in dtypes:
        raise ValueError(f"coarse dtype must be one of {dtypes}, got {coarse.dtype}")
    if coarse.device != device:
        raise ValueError(f"coarse is on {coarse.device} but {lateral_name} is on {device}")
    if H % 2 or W % 2 or tuple(coarse.shape) != (B, C, H // 2, W // 2):
        raise ValueError(
            f"coarse must have shape (B, C, H/2, W/2) = ({B}, {C}, {H / 2:g}, {W / 2:g}) for "
            f"{lateral_name} of spatial size ({H}, {W}), got {tuple(coarse.shape)}"
        )


def _check_fpn_args(lateral, coarse, out_dtype, dtypes):
    if not isinstance(lateral, torch.Tensor):
        raise ValueError(f"lateral must be a torch.Tensor, got {type(lateral).__name__}")
    if lateral.dim() != 4:
        raise ValueError(f"lateral must have shape (B, C, H, W), got {tuple(lateral.shape)}")
    if lateral.dtype not in dtypes:
        raise ValueError(f"lateral dtype must be one of {dtypes}, got {lateral.dtype}")
    B, C, H, W = lateral.shape
    _check_coarse(coarse, B, C, H, W, lateral.device, dtypes, "lateral")
    _check_out_dtype(out_dtype, dtypes)


def _check_lateral_args(x, weight, bias, coarse, out_dtype, dtypes):
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, Cin, H, W), got {tuple(x.shape)}")
    if x.dtype not in dtypes:
        raise ValueError(f"x dtype must be one of {dtypes}, got {x.dtype}")
    B, Cin, H, W = x.shape
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.dim() != 4 or weight.shape[1:] != (Cin, 1, 1):
        raise ValueError(f"weight must have shape (C, {Cin}, 1, 1), got {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        raise ValueError(f"weight dtype {weight.dtype} must equal x dtype {x.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight is on {weight.device} but x is on {x.device}")
    C = weight.shape[0]
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise ValueError(f"bias must be a tensor or None, got {type(bias).__name__}")
        if bias.shape != (C,):
            raise ValueError(f"bias must have shape ({C},), got {tuple(bias.shape)}")
        if not bias.dtype.is_floating_point:
            raise ValueError(f"bias must be floating point, got {bias.dtype}")
        if bias.device != x.device:
            raise ValueError(f"bias is on {bias.device} but x is on {x.device}")
    _check_coarse(coarse, B, C, H, W, x.device, dtypes, "x")
    _check_out_dtype(out_dtype, dtypes)


# ---------------------------------------------------------------------------------------------
# 1) references
# ---------------------------------------------------------------------------------------------


def fpn_upsample_add_reference(
    lateral: torch.Tensor, coarse: torch.Tensor, out_dtype: Optional[torch.dtype] = None
) -> torch.Tensor:
    """Plain-torch FPN top-down add.

    Maths: ``out[b, c, h, w] = lateral[b, c, h, w] + coarse[b, c, h // 2, w // 2]`` computed
    in fp32 (fp64 if either input is fp64), i.e. ``lateral + F.interpolate(coarse.float(),
    scale_factor=2, mode="nearest")``, rounded to ``out_dtype`` (default: lateral's dtype).

    Shapes: lateral (B, C, H, W), coarse (B, C, H/2, W/2) -> (B, C, H, W).

    Raises: ValueError on bad shapes/dtypes/devices (message names the argument).
    """
    _check_fpn_args(lateral, coarse, out_dtype, _REF_DTYPES)
    out_dtype = out_dtype or lateral.dtype
    if lateral.dtype == coarse.dtype == out_dtype:
        # one dtype: torch adds 16-bit tensors in fp32 and rounds once, which is the same
        # number as the fp32 sum rounded (nearest upsampling copies exactly): two kernels
        return lateral + F.interpolate(coarse, scale_factor=2.0, mode="nearest")
    acc = torch.promote_types(torch.promote_types(lateral.dtype, coarse.dtype), torch.float32)
    up = F.interpolate(coarse.to(acc), scale_factor=2.0, mode="nearest")
    return (lateral + up).to(out_dtype)  # lateral promoted to acc exactly by the add


def fpn_lateral_upsample_add_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    coarse: torch.Tensor,
    out_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """Plain-torch lateral 1x1 conv + FPN top-down add.

    Maths: ``lateral = F.conv2d(x, weight, bias)`` (in x's dtype, as the official
    ``nn.Conv2d``), then :func:`fpn_upsample_add_reference` (``lateral + up2(coarse)`` in
    fp32, rounded to ``out_dtype``, default x's dtype).

    Shapes: x (B, Cin, H, W), weight (C, Cin, 1, 1), bias (C,) or None,
    coarse (B, C, H/2, W/2) -> (B, C, H, W).

    Raises: ValueError on bad shapes/dtypes/devices (message names the argument).
    """
    _check_lateral_args(x, weight, bias, coarse, out_dtype, _REF_DTYPES)
    lateral = F.conv2d(x, weight, None if bias is None else bias.to(x.dtype))
    return fpn_upsample_add_reference(lateral, coarse, out_dtype)


# ---------------------------------------------------------------------------------------------
# 2) Triton kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _fpn_upsample_add_kernel(
    lat_ptr, coarse_ptr, out_ptr,
    sl_b, sl_c, sl_h, sl_w,
    sc_b, sc_c, sc_h, sc_w,
    C, H, W, TOTAL,
    BLOCK: tl.constexpr,
):
    # flat index over the contiguous (B, C, H, W) output
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < TOTAL
    w = offs % W
    t = offs // W
    h = t % H
    t = t // H
    c = t % C
    b = t // C
    lat = tl.load(lat_ptr + b * sl_b + c * sl_c + h * sl_h + w * sl_w, mask=mask, other=0.0)
    up = tl.load(
        coarse_ptr + b * sc_b + c * sc_c + (h // 2) * sc_h + (w // 2) * sc_w, mask=mask, other=0.0
    )
    res = lat.to(tl.float32) + up.to(tl.float32)
    tl.store(out_ptr + offs, res.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fpn_lateral_upsample_add_kernel(
    x_ptr, w_ptr, bias_ptr, coarse_ptr, out_ptr,
    sx_b, sx_c, sx_h, sx_w,
    sw_o, sw_i,
    sc_b, sc_c, sc_h, sc_w,
    C, CIN, H, W,
    HAS_BIAS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_K: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c_ok = offs_c < C
    p_ok = offs_p < H * W
    h = offs_p // W
    w = offs_p % W
    x_pix = (h * sx_h + w * sx_w)[None, :]
    acc = tl.zeros((BLOCK_C, BLOCK_P), tl.float32)
    for k0 in range(0, CIN, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < CIN
        wt = tl.load(
            w_ptr + (offs_c * sw_o)[:, None] + (offs_k * sw_i)[None, :],
            mask=c_ok[:, None] & k_ok[None, :], other=0.0,
        )
        xt = tl.load(
            x_ptr + b * sx_b + (offs_k * sx_c)[:, None] + x_pix,
            mask=k_ok[:, None] & p_ok[None, :], other=0.0,
        )
        if UPCAST:
            wt = wt.to(tl.float32)
            xt = xt.to(tl.float32)
        acc = tl.dot(wt, xt, acc, input_precision=DOT_PREC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_c, mask=c_ok, other=0.0).to(x_ptr.dtype.element_ty)
        acc = acc + bias.to(tl.float32)[:, None]
    # the conv output is rounded to x's dtype (nn.Conv2d), then added in fp32
    lat = acc.to(x_ptr.dtype.element_ty).to(tl.float32)
    mask = c_ok[:, None] & p_ok[None, :]
    up = tl.load(
        coarse_ptr + b * sc_b + (offs_c * sc_c)[:, None] + ((h // 2) * sc_h + (w // 2) * sc_w)[None, :],
        mask=mask, other=0.0,
    )
    res = lat + up.to(tl.float32)
    o_off = b * C * H * W + (offs_c * (H * W))[:, None] + offs_p[None, :]
    tl.store(out_ptr + o_off, res.to(out_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------
# 3) launchers
# ---------------------------------------------------------------------------------------------


def _fpn_upsample_add_triton(lateral, coarse, out_dtype):
    _check_fpn_args(lateral, coarse, out_dtype, _TRITON_DTYPES)
    B, C, H, W = lateral.shape
    out = torch.empty((B, C, H, W), dtype=out_dtype or lateral.dtype, device=lateral.device)
    total = out.numel()
    if total == 0:
        return out
    block = 1024
    launch(
        _fpn_upsample_add_kernel, (triton.cdiv(total, block),),
        lateral, coarse, out,
        *lateral.stride(), *coarse.stride(),
        C, H, W, total,
        BLOCK=block, num_warps=4,
    )
    return out


def _lateral_config(C: int, Cin: int, HW: int):
    """Pinned tiles: 64 output channels x 128 pixels x 32 input channels, 4 warps, 3 stages
    (interpreter: 32 x 32 x 16 so that small tests run several tiles and K steps)."""
    if interpreter_enabled():
        return dict(BLOCK_C=32, BLOCK_P=32, BLOCK_K=16, num_warps=4, num_stages=1)
    return dict(BLOCK_C=64, BLOCK_P=128, BLOCK_K=32, num_warps=4, num_stages=3)


def _fpn_lateral_upsample_add_triton(x, weight, bias, coarse, out_dtype):
    _check_lateral_args(x, weight, bias, coarse, out_dtype, _TRITON_DTYPES)
    B, Cin, H, W = x.shape
    C = weight.shape[0]
    out = torch.empty((B, C, H, W), dtype=out_dtype or x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    cfg = _lateral_config(C, Cin, H * W)
    grid = (triton.cdiv(H * W, cfg["BLOCK_P"]), triton.cdiv(C, cfg["BLOCK_C"]), B)
    launch(
        _fpn_lateral_upsample_add_kernel, grid,
        x, weight, bias if bias is not None else weight, coarse, out,
        *x.stride(), weight.stride(0), weight.stride(1), *coarse.stride(),
        C, Cin, H, W,
        HAS_BIAS=bias is not None,
        UPCAST=dot_upcast_needed(x.dtype),
        DOT_PREC=dot_input_precision(x.dtype),
        **cfg,
    )
    return out


# ---------------------------------------------------------------------------------------------
# 4) torch.library registration: sam2_fast::fpn_upsample_add, sam2_fast::fpn_lateral_upsample_add
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("sam2_fast::fpn_upsample_add", mutates_args=())
def _fpn_upsample_add_op(
    lateral: torch.Tensor, coarse: torch.Tensor, out_dtype: Optional[torch.dtype]
) -> torch.Tensor:
    return _fpn_upsample_add_triton(lateral, coarse, out_dtype)


@_fpn_upsample_add_op.register_fake
def _(lateral, coarse, out_dtype):
    _check_fpn_args(lateral, coarse, out_dtype, _TRITON_DTYPES)
    return lateral.new_empty(lateral.shape, dtype=out_dtype or lateral.dtype)


@torch.library.custom_op("sam2_fast::fpn_lateral_upsample_add", mutates_args=())
def _fpn_lateral_upsample_add_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    coarse: torch.Tensor,
    out_dtype: Optional[torch.dtype],
) -> torch.Tensor:
    return _fpn_lateral_upsample_add_triton(x, weight, bias, coarse, out_dtype)


@_fpn_lateral_upsample_add_op.register_fake
def _(x, weight, bias, coarse, out_dtype):
    _check_lateral_args(x, weight, bias, coarse, out_dtype, _TRITON_DTYPES)
    B, _, H, W = x.shape
    return x.new_empty((B, weight.shape[0], H, W), dtype=out_dtype or x.dtype)


# ---------------------------------------------------------------------------------------------
# 5) public ops
# ---------------------------------------------------------------------------------------------


def fpn_upsample_add(
    lateral: torch.Tensor,
    coarse: torch.Tensor,
    *,
    out_dtype: Optional[torch.dtype] = None,
    backend: str = "auto",
    profile=None,
) -> torch.Tensor:
    """FPN top-down step ``lateral + nearest_up2(coarse)`` in one pass.

    Replaces the official ``FpnNeck.forward`` top-down add
    (``sam2/modeling/backbones/image_encoder.py``:
    ``lateral_features + F.interpolate(prev_features.float(), scale_factor=2.0,
    mode="nearest")``).

    Args:
        lateral: (B, C, H, W), fp16 / bf16 / fp32 (fp64 on the torch backend), any strides.
        coarse: (B, C, H/2, W/2) (H, W even), same device, any of those dtypes/strides.
        out_dtype: result dtype; default lateral's dtype. (The official's sum is promoted to
            fp32 because it upcasts ``prev_features``; pass ``torch.float32`` to mirror that.)
        backend: "auto" | "triton" | "torch". "auto" follows ``profile`` / the built-in table
            (:mod:`.profile`; without a profile: torch).
        profile: a :class:`~.profile.KernelProfile` or None.

    Maths: ``out[b, c, h, w] = lateral[b, c, h, w] + coarse[b, c, h // 2, w // 2]`` in fp32.

    Returns: (B, C, H, W) contiguous, ``out_dtype``.

    Raises:
        ValueError: wrong shapes / dtypes / devices (message names the argument).
        RuntimeError: ``backend="triton"`` where Triton cannot run.
    """
    _check_fpn_args(lateral, coarse, out_dtype, _REF_DTYPES)
    if _fpn_choice(lateral, coarse, out_dtype, backend, profile) == "torch":
        return fpn_upsample_add_reference(lateral, coarse, out_dtype)
    if torch.compiler.is_compiling():
        return torch.ops.sam2_fast.fpn_upsample_add(lateral, coarse, out_dtype)
    return _fpn_upsample_add_triton(lateral, coarse, out_dtype)


def _fpn_choice(lateral, coarse, out_dtype, backend, profile) -> str:
    """"torch" | "triton" | "triton_lateral" for this call (fp64: torch; a "triton" request
    with an fp64 tensor raises the dtype error)."""
    if torch.float64 in (lateral.dtype, coarse.dtype, out_dtype):
        if backend == "triton":
            _check_fpn_args(lateral, coarse, out_dtype, _TRITON_DTYPES)  # raises
        return "torch"
    B, C, H, W = lateral.shape
    return choose("fpn_upsample_add", backend, lateral.device, profile,
                  lambda: fpn_bucket(lateral.dtype, C, H, W)).impl


def fpn_lateral_upsample_add(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    coarse: torch.Tensor,
    *,
    out_dtype: Optional[torch.dtype] = None,
    backend: str = "auto",
    profile=None,
) -> torch.Tensor:
    """Lateral 1x1 conv + FPN top-down add (the neck's whole top-down step).

    Replaces the official ``FpnNeck.forward`` ``self.convs[n - i](x)`` (a 1x1 ``nn.Conv2d``)
    followed by the top-down add (``sam2/modeling/backbones/image_encoder.py``).

    Args:
        x: (B, Cin, H, W), fp16 / bf16 / fp32 (fp64 on the torch backend), any strides.
        weight: (C, Cin, 1, 1), x's dtype and device. bias: (C,) or None (rounded to x's
            dtype, as the conv does).
        coarse: (B, C, H/2, W/2), same device, any float dtype above.
        out_dtype: result dtype; default x's dtype (see :func:`fpn_upsample_add`).
        backend: "auto" | "triton" | "torch". The implementation comes from the
            ``fpn_upsample_add`` entry of ``profile`` / the built-in table: ``torch``
            (``F.conv2d`` + the reference add), ``triton`` (``F.conv2d`` + the Triton add) or
            ``triton_lateral`` (one fused Triton kernel; the lateral map is never written).
            ``backend="triton"`` runs the fused kernel unless the profile names ``triton``.
        profile: a :class:`~.profile.KernelProfile` or None.

    Maths: ``lat = W x + bias`` (fp32 accumulation, rounded to x's dtype like the conv's
    output), ``out = lat + coarse[..., h // 2, w // 2]`` in fp32, rounded to ``out_dtype``.

    Returns: (B, C, H, W) contiguous, ``out_dtype``.

    Raises:
        ValueError: wrong shapes / dtypes / devices (message names the argument).
        RuntimeError: ``backend="triton"`` where Triton cannot run.
    """
    _check_lateral_args(x, weight, bias, coarse, out_dtype, _REF_DTYPES)
    if torch.float64 in (x.dtype, coarse.dtype, out_dtype):
        if backend == "triton":
            _check_lateral_args(x, weight, bias, coarse, out_dtype, _TRITON_DTYPES)  # raises
        return fpn_lateral_upsample_add_reference(x, weight, bias, coarse, out_dtype)
    B, Cin, H, W = x.shape
    choice = choose("fpn_upsample_add", backend, x.device, profile,
                    lambda: fpn_bucket(x.dtype, weight.shape[0], H, W))
    if choice.impl == "torch":
        return fpn_lateral_upsample_add_reference(x, weight, bias, coarse, out_dtype)
    forced = (os.environ.get("SAM2_FAST_BACKEND", "auto") if backend == "auto" else backend)
    if choice.impl == "triton" and forced != "triton":  # a profile's unfused "triton" entry
        lateral = F.conv2d(x, weight, None if bias is None else bias.to(x.dtype))
        return fpn_upsample_add(lateral, coarse, out_dtype=out_dtype, backend="triton")
    if torch.compiler.is_compiling():
        return torch.ops.sam2_fast.fpn_lateral_upsample_add(x, weight, bias, coarse, out_dtype)
    return _fpn_lateral_upsample_add_triton(x, weight, bias, coarse, out_dtype)
