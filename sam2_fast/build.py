"""``build_sam2``: config + checkpoint -> :class:`~sam2_fast.model.sam2_model.Sam2Model`
(official ``sam2.build_sam.build_sam2`` with ``apply_postprocessing=True``, minus Hydra)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from .checkpoint import CheckpointError, PathLike, check_state_dict, detect_config, load_state_dict
from .config import Sam2Config, get_config
from .kernels._backend import check_backend_name
from .kernels.profile import KernelProfile, resolve_profile
from .model.sam2_model import Sam2Model

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: Union[None, str, torch.dtype]) -> torch.dtype:
    """None -> float32; accepts torch dtypes and 'float32'/'bfloat16'/'float16' (and fp32/bf16/fp16).
    Raises ValueError for anything else."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
        return dtype
    if str(dtype) not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[str(dtype)]


def set_kernel_profile(model: torch.nn.Module, profile: Optional[KernelProfile]) -> torch.nn.Module:
    """Give every module of ``model`` that calls a kernel (those with a ``kernel_profile``
    attribute) the runtime profile ``profile`` (None: the built-in table); also sets
    ``model.kernel_profile``. Returns the model."""
    if profile is not None and not isinstance(profile, KernelProfile):
        raise ValueError(f"profile must be a KernelProfile or None, got {type(profile).__name__}")
    for mod in model.modules():
        if hasattr(mod, "kernel_profile"):
            mod.kernel_profile = profile
    model.kernel_profile = profile
    return model


def build_sam2(config: Union[None, str, Sam2Config] = None, checkpoint: Optional[PathLike] = None, *,
               device: Union[None, str, torch.device] = None,
               dtype: Union[None, str, torch.dtype] = None, image_size: Optional[int] = None,
               backend: str = "auto",
               profile: Union[None, bool, PathLike, KernelProfile] = None) -> Sam2Model:
    """Build a SAM 2 model and load an official checkpoint with no key remapping.

    Args:
        config: a :class:`Sam2Config`, a published name (``"sam2.1_hiera_tiny"``, official
            stems like ``"sam2.1_hiera_t.yaml"`` too), or None to detect it from the checkpoint.
        checkpoint: ``.pt`` (``{"model": sd}`` or bare) or ``.safetensors`` path; None leaves
            the weights at their (meaningless) initial values.
        device: where to put the model (default: CUDA if available, else CPU).
        dtype: float32 (default), bfloat16 or float16 for all weights and compute.
        image_size: input resolution override (multiple of 32); default the config's (1024).
        backend: kernel backend, ``"auto"`` / ``"triton"`` / ``"torch"``.
        profile: the runtime kernel profile that ``backend="auto"`` follows
            (:mod:`sam2_fast.kernels.profile`, written by ``sam2-fast tune``): a path or a
            ``KernelProfile``; ``False`` for none; ``None`` (default): the file named by
            ``$SAM2_FAST_PROFILE`` (``none`` = no file), else ``sam2_fast_profile.toml`` next
            to the checkpoint when there is one. Without a profile, auto uses the built-in
            table of measured wins (torch where nothing was measured). A profile made on
            another GPU is dropped with a ``ProfileWarning``.

    Returns:
        The model in eval mode (``model.kernel_profile`` = the profile in use, or None).

    Raises:
        ValueError: neither config nor checkpoint, bad dtype/backend/image_size, unknown config.
        CheckpointError (a ValueError): unreadable file, keys or shapes that do not match the
            config (the message lists them).
        ProfileError (a ValueError): a profile file that cannot be used (corrupt, unknown
            keys, tile configs that are not shipped).
    """
    check_backend_name(backend)
    torch_dtype = resolve_dtype(dtype)
    sd = load_state_dict(checkpoint) if checkpoint is not None else None
    if config is None:
        if sd is None:
            raise ValueError("build_sam2 needs a config, a checkpoint, or both")
        cfg = detect_config(sd)
    elif isinstance(config, Sam2Config):
        cfg = config
    else:
        cfg = get_config(config)
    if image_size is not None:
        cfg = cfg.with_image_size(image_size)
    model = Sam2Model(cfg, backend=backend)
    if sd is not None:
        try:
            check_state_dict(model, sd, name=cfg.name)
        except CheckpointError as e:
            if config is not None:
                try:
                    detected = detect_config(sd).name
                except CheckpointError:
                    detected = "not a published SAM 2 model"
                raise CheckpointError(f"{Path(str(checkpoint)).name}: config {cfg.name} does not match "
                                      f"the checkpoint (detected: {detected}). {e}") from None
            raise
        model.load_state_dict(sd, strict=True)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    set_kernel_profile(model, resolve_profile(profile, checkpoint, device))
    model = model.to(device=device, dtype=torch_dtype)
    return model.eval()
