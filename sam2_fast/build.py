"""``build_sam2`` / ``build_sam2_video_predictor``: config + checkpoint -> model or video
predictor, with the official ``sam2.build_sam`` signatures (minus Hydra), plus ``*_hf`` and
``from_pretrained`` support through the download cache of :mod:`sam2_fast.hub`.

The official positional and keyword arguments ``config_file, ckpt_path, device, mode,
hydra_overrides_extra, apply_postprocessing`` (and ``vos_optimized`` for the video predictor)
are accepted; what has a meaning here is mapped (see :func:`build_sam2`), the rest is accepted
and documented. The sam2_fast keyword names ``config=``, ``checkpoint=``, ``dtype=``,
``image_size=``, ``backend=`` work as well.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .checkpoint import CheckpointError, PathLike, check_state_dict, detect_config, load_state_dict
from .config import Sam2Config, get_config
from .kernels._backend import check_backend_name
from .kernels.profile import KernelProfile, resolve_profile
from .model.sam2_model import Sam2Model

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}

#: official ``apply_postprocessing=True`` settings (``sam2.build_sam``): dynamic multimask
#: fallback for the model; the video predictor also binarizes click masks for the memory
#: encoder and fills holes of up to 8 pixels
_POSTPROCESSING_OFF = dict(dynamic_multimask_via_stability=False, binarize_mask_from_pts_for_mem_enc=False)

#: ``hydra_overrides_extra`` keys that set video predictor options, not model config fields
_VIDEO_PREDICTOR_OVERRIDES = ("fill_hole_area", "non_overlap_masks", "clear_non_cond_mem_around_input",
                              "add_all_frames_to_correct_as_cond")


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
    ``model.kernel_profile``. Returns the model.

    Raises:
        ValueError: ``profile`` is neither a KernelProfile nor None.
    """
    if profile is not None and not isinstance(profile, KernelProfile):
        raise ValueError(f"profile must be a KernelProfile or None, got {type(profile).__name__}")
    for mod in model.modules():
        if hasattr(mod, "kernel_profile"):
            mod.kernel_profile = profile
    model.kernel_profile = profile
    return model


def _parse_value(text: str):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_overrides(overrides: Optional[Sequence[str]]) -> Tuple[Dict[str, object], Dict[str, object]]:
    """Official ``hydra_overrides_extra`` strings -> (config fields, video predictor options).

    Accepted: ``[+|++]model.<field>=<value>`` where ``<field>`` is a scalar field of
    :class:`~sam2_fast.config.Sam2Config` (the official ``SAM2Base`` argument of the same name,
    e.g. ``model.image_size=512``, ``model.binarize_mask_from_pts_for_mem_enc=false``),
    ``model.sam_mask_decoder_extra_args.<dynamic_multimask_*>=<value>``, or a video predictor
    option (``model.fill_hole_area``, ``model.non_overlap_masks``,
    ``model.clear_non_cond_mem_around_input``, ``model.add_all_frames_to_correct_as_cond``).
    Values ``true``/``false``, ints and floats.

    Raises:
        ValueError: a malformed string or a key with no meaning here (named in the message),
            never silently ignored.
    """
    fields = {f.name: f for f in dataclasses.fields(Sam2Config)}
    cfg_kw: Dict[str, object] = {}
    pred_kw: Dict[str, object] = {}
    if isinstance(overrides, str):
        raise ValueError("hydra_overrides_extra must be a list of strings, got one string")
    for item in overrides or ():
        text = str(item).lstrip("+")
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key.startswith("model."):
            raise ValueError(f"hydra_overrides_extra: cannot use {item!r}; expected '++model.<name>=<value>'")
        name = key[len("model."):]
        if name.startswith("sam_mask_decoder_extra_args."):
            name = name[len("sam_mask_decoder_extra_args."):]
            if not name.startswith("dynamic_multimask"):
                raise ValueError(f"hydra_overrides_extra: {item!r} has no meaning in sam2_fast")
        val = _parse_value(value)
        if name in _VIDEO_PREDICTOR_OVERRIDES:
            pred_kw[name] = val
        elif name in fields and name not in ("name", "version", "hiera") and isinstance(val, (bool, int, float)):
            cfg_kw[name] = val
        else:
            raise ValueError(f"hydra_overrides_extra: {item!r} has no meaning in sam2_fast (supported: "
                             f"model.<Sam2Config field>, model.sam_mask_decoder_extra_args."
                             f"dynamic_multimask_*, model.{{{','.join(_VIDEO_PREDICTOR_OVERRIDES)}}})")
    return cfg_kw, pred_kw


def _pick(official, official_name: str, ours, our_name: str):
    if official is not None and ours is not None:
        raise ValueError(f"give {official_name} or {our_name}, not both")
    return ours if official is None else official


def resolve_device(device: Union[None, str, torch.device]) -> torch.device:
    """The device a model is built on: None = CUDA if available, else the CPU.

    Raises:
        ValueError: not a torch device name, or a CUDA device this machine does not have
            (checked before any checkpoint is read).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r} is not a torch device ('cpu', 'cuda', 'cuda:1'): "
                         f"{str(e).splitlines()[0]}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine (torch "
                             f"{torch.__version__}); use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s)")
    return dev


def build_sam2(config_file: Union[None, str, Sam2Config] = None, ckpt_path: Optional[PathLike] = None,
               device: Union[None, str, torch.device] = None, mode: str = "eval",
               hydra_overrides_extra: Optional[Sequence[str]] = None, apply_postprocessing: bool = True,
               *, config: Union[None, str, Sam2Config] = None, checkpoint: Optional[PathLike] = None,
               dtype: Union[None, str, torch.dtype] = None, image_size: Optional[int] = None,
               backend: str = "auto",
               profile: Union[None, bool, PathLike, KernelProfile] = None) -> Sam2Model:
    """Build a SAM 2 model and load an official checkpoint with no key remapping (official
    ``sam2.build_sam.build_sam2``, same positional order).

    Args:
        config_file (alias ``config``): a :class:`Sam2Config`, a published name
            (``"sam2.1_hiera_tiny"``), an official config path (``"configs/sam2.1/sam2.1_hiera_t.yaml"``),
            or None to detect it from the checkpoint.
        ckpt_path (alias ``checkpoint``): ``.pt`` (``{"model": sd}`` or bare) or ``.safetensors``;
            None leaves the weights at their (meaningless) initial values.
        device: where to put the model (default: CUDA if available, else CPU; the official
            defaults to ``"cuda"``).
        mode: ``"eval"`` (default) or ``"train"`` (modules left in training mode, as the official).
        hydra_overrides_extra: official Hydra override strings; those with a meaning here are
            applied (see :func:`parse_overrides`), after ``apply_postprocessing`` (the official
            applies its post-processing overrides last, so they would win; here the caller's win).
        apply_postprocessing: True (default) as the official: dynamic multimask fallback when a
            single mask is unstable (and, for the video predictor, binarized click masks in the
            memory encoder and hole filling of 8 pixels); False turns them off.
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
        The model (eval mode unless ``mode="train"``; ``model.kernel_profile`` = the profile
        in use, or None).

    Raises:
        ValueError: neither config nor checkpoint, an argument given under both its official and
            its sam2_fast name, bad dtype/backend/image_size/mode, unknown config, an override
            with no meaning here, a device that is not one or that this machine lacks.
        CheckpointError (a ValueError): unreadable file, keys or shapes that do not match the
            config (the message summarises them).
        ProfileError (a ValueError): a profile file that cannot be used (corrupt, unknown
            keys, tile configs that are not shipped).
    """
    config = _pick(config_file, "config_file", config, "config")
    checkpoint = _pick(ckpt_path, "ckpt_path", checkpoint, "checkpoint")
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    check_backend_name(backend)
    torch_dtype = resolve_dtype(dtype)
    device = resolve_device(device)
    cfg_over, video_over = parse_overrides(hydra_overrides_extra)
    if video_over:
        raise ValueError(f"hydra_overrides_extra: {sorted(video_over)} are video predictor options; "
                         f"use build_sam2_video_predictor")
    sd = load_state_dict(checkpoint) if checkpoint is not None else None
    if config is None:
        if sd is None:
            raise ValueError("build_sam2 needs a config, a checkpoint, or both")
        cfg = detect_config(sd)
    elif isinstance(config, Sam2Config):
        cfg = config
    else:
        cfg = get_config(config)
    if not apply_postprocessing:
        cfg = dataclasses.replace(cfg, **_POSTPROCESSING_OFF)
    if cfg_over:
        size = cfg_over.pop("image_size", None)
        cfg = dataclasses.replace(cfg, **cfg_over)
        if size is not None:
            cfg = cfg.with_image_size(size)
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
                hint = "; omit the config to detect it" if detected != "not a published SAM 2 model" else ""
                raise CheckpointError(f"{Path(str(checkpoint)).name}: config {cfg.name} does not match "
                                      f"the checkpoint (detected: {detected}{hint}). {e}") from None
            raise CheckpointError(f"{Path(str(checkpoint)).name}: {e}") from None
        model.load_state_dict(sd, strict=True)
    set_kernel_profile(model, resolve_profile(profile, checkpoint, device))
    model = model.to(device=device, dtype=torch_dtype)
    return model.eval() if mode == "eval" else model.train()


def build_sam2_video_predictor(config_file: Union[None, str, Sam2Config] = None,
                               ckpt_path: Optional[PathLike] = None,
                               device: Union[None, str, torch.device] = None, mode: str = "eval",
                               hydra_overrides_extra: Optional[Sequence[str]] = None,
                               apply_postprocessing: bool = True, vos_optimized: bool = False, *,
                               config: Union[None, str, Sam2Config] = None,
                               checkpoint: Optional[PathLike] = None,
                               dtype: Union[None, str, torch.dtype] = None,
                               image_size: Optional[int] = None, backend: str = "auto",
                               profile: Union[None, bool, PathLike, KernelProfile] = None,
                               **predictor_kwargs):
    """Build a model with :func:`build_sam2` and wrap it in a
    :class:`~sam2_fast.predictors.video.Sam2VideoPredictor` (official
    ``sam2.build_sam.build_sam2_video_predictor``, same positional order).

    Args:
        config_file/config, ckpt_path/checkpoint, device, mode, hydra_overrides_extra, dtype,
            image_size, backend, profile: as :func:`build_sam2` (overrides may also set the predictor
            options ``fill_hole_area``, ``non_overlap_masks``, ...).
        apply_postprocessing: True (default): ``fill_hole_area=8`` and binarized click masks in
            the memory encoder, as the official; False: neither.
        vos_optimized: accepted for compatibility and ignored: the official compiles its model
            with ``torch.compile(mode="max-autotune")``; here the GPU path (Triton kernels) is
            chosen by ``backend`` and nothing is compiled.
        **predictor_kwargs: ``Sam2VideoPredictor`` options (``fill_hole_area``,
            ``non_overlap_masks``, ``clear_non_cond_mem_around_input``,
            ``add_all_frames_to_correct_as_cond``, ``memory_dtype``, ``batch_objects``,
            ``cuda_graphs``).

    Returns:
        a :class:`~sam2_fast.predictors.video.Sam2VideoPredictor` around the built model.

    Raises:
        whatever :func:`build_sam2` raises; ValueError/TypeError for bad predictor options.
    """
    from .predictors.video import Sam2VideoPredictor

    if isinstance(hydra_overrides_extra, str):
        raise ValueError("hydra_overrides_extra must be a list of strings, got one string")
    model_overrides, options = [], {}
    for item in hydra_overrides_extra or ():
        _, video_over = parse_overrides([item])
        if video_over:
            options.update(video_over)
        else:
            model_overrides.append(item)
    model = build_sam2(config_file, ckpt_path, device, mode, model_overrides, apply_postprocessing,
                       config=config, checkpoint=checkpoint, dtype=dtype, image_size=image_size,
                       backend=backend, profile=profile)
    if not apply_postprocessing:
        options.setdefault("fill_hole_area", 0)
    options.update(predictor_kwargs)
    return Sam2VideoPredictor(model, **options)


_BUILD_KWARGS = ("device", "mode", "hydra_overrides_extra", "apply_postprocessing", "dtype", "image_size",
                 "backend", "profile", "vos_optimized")


def split_build_kwargs(kwargs: dict) -> Tuple[dict, dict]:
    """Split ``from_pretrained(**kwargs)`` into (builder arguments, predictor arguments); the
    official passes all of them to both and each ignores what it does not know."""
    build = {k: v for k, v in kwargs.items() if k in _BUILD_KWARGS}
    return build, {k: v for k, v in kwargs.items() if k not in _BUILD_KWARGS}


def _fetch(model_id: str, progress: bool = True) -> Tuple[str, Path]:
    from . import hub

    name = hub.canonical_name(model_id)
    return name, hub.fetch_checkpoint(name, progress=progress)


def build_sam2_hf(model_id: str, **kwargs) -> Sam2Model:
    """:func:`build_sam2` for a published model id (official ``build_sam2_hf``): a Hugging Face
    id (``"facebook/sam2.1-hiera-tiny"``) or a sam2_fast name, downloaded once into the cache
    of :mod:`sam2_fast.hub` from the official URLs.

    Raises:
        HubError (a ValueError): unknown id; offline without a cached file (the message says
            where to put it); a damaged download. Then whatever :func:`build_sam2` raises.
    """
    kwargs.pop("vos_optimized", None)
    name, path = _fetch(model_id)
    return build_sam2(name, path, **kwargs)


def build_sam2_video_predictor_hf(model_id: str, **kwargs):
    """:func:`build_sam2_video_predictor` for a published model id (official
    ``build_sam2_video_predictor_hf``); ids and errors as :func:`build_sam2_hf`."""
    name, path = _fetch(model_id)
    return build_sam2_video_predictor(name, path, **kwargs)


__all__ = ["build_sam2", "build_sam2_hf", "set_kernel_profile", "build_sam2_video_predictor",
           "build_sam2_video_predictor_hf", "parse_overrides", "resolve_dtype", "split_build_kwargs"]
