"""Checkpoint I/O for the official SAM 2 files: ``.pt`` (``{"model": state_dict}`` or a bare
state dict, loaded with ``weights_only=True``) and ``.safetensors`` with the same keys;
variant/version detection from keys and shapes; strict key checks with readable errors; and
random official-format checkpoints for machines without the real files.

Mirrors the loading in the official ``sam2.build_sam._load_checkpoint``.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .config import CONFIGS, Sam2Config

StateDict = Dict[str, torch.Tensor]
PathLike = Union[str, Path]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not match the model."""


def _list(items, limit: int = 12) -> str:
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def load_state_dict(path: PathLike) -> StateDict:
    """Read a SAM 2 checkpoint into a CPU state dict.

    Args:
        path: ``.pt``/``.pth`` (official ``{"model": sd}`` or a bare state dict) or
            ``.safetensors``. Other suffixes are sniffed (zip -> torch, else safetensors).

    Returns:
        ``{official key: tensor}`` on the CPU, dtypes as stored.

    Raises:
        CheckpointError: the file does not exist, is truncated/corrupt, is not a state dict,
            or holds non-tensor values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".pth", ".safetensors"):
        with open(path, "rb") as f:
            suffix = ".pt" if f.read(2) == b"PK" else ".safetensors"
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {e}") from e
    else:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError,
                ValueError, AttributeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"cannot read torch checkpoint {path} (truncated, corrupt or "
                                  f"not a weights-only file): {msg}") from e
        if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
            sd = dict(obj["model"])
        elif isinstance(obj, Mapping):
            sd = dict(obj)
        else:
            raise CheckpointError(f"{path}: expected a state dict or {{'model': state_dict}}, got {type(obj).__name__}")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: non-tensor entries (not a state dict?): {_list(bad)}")
    if not sd:
        raise CheckpointError(f"{path}: empty state dict")
    return sd


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")
META_KEY = "sam2_fast"  # extra top-level key of our .pt files / prefix of our safetensors metadata


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: PathLike,
                    meta: Optional[Mapping[str, object]] = None) -> Path:
    """Write a state dict in the official layout: ``.pt`` as ``{"model": sd}`` (plus
    ``{"sam2_fast": meta}`` when ``meta`` is given; the official loader reads only ``"model"``),
    or ``.safetensors`` with the same keys and ``sam2_fast.<key>`` header metadata. Written to
    a temporary file and renamed, so a failure never leaves a half-written checkpoint.

    Raises:
        CheckpointError: a suffix other than .pt/.pth/.safetensors.
        OSError: the file cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"unknown checkpoint format {path.name!r}: use .pt or .safetensors")
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    tmp = path.with_name(f".{path.name}.partial")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            md = {f"{META_KEY}.{k}": ("true" if v is True else str(v)) for k, v in (meta or {}).items()}
            save_file(sd, str(tmp), metadata=md or None)
        else:
            obj = {"model": sd}
            if meta:
                obj[META_KEY] = dict(meta)
            torch.save(obj, str(tmp))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@dataclass
class CheckpointInfo:
    """What :func:`inspect_checkpoint` finds without loading tensor data.

    Attributes:
        path: the file; format: ``"pt"`` or ``"safetensors"``; num_bytes: its size;
        shapes: ``{key: (shape, dtype name)}``; meta: sam2_fast metadata (``random_weights``,
        ``seed``, ``config``) or ``{}``.
    """

    path: Path
    format: str
    num_bytes: int
    shapes: Dict[str, Tuple[Tuple[int, ...], str]]
    meta: Dict[str, object]

    @property
    def random_weights(self) -> bool:
        return bool(self.meta.get("random_weights"))

    def detect_config(self) -> Sam2Config:
        """:func:`detect_config` from the shapes alone. Raises CheckpointError like it."""
        fake = {k: torch.empty(s, device="meta") for k, (s, _) in self.shapes.items()}
        return detect_config(fake)


def _dtype_name(d) -> str:
    s = str(d).replace("torch.", "")
    return {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
            "I64": "int64", "I32": "int32"}.get(s, s)


def inspect_checkpoint(path: PathLike) -> CheckpointInfo:
    """Keys, shapes, dtypes and sam2_fast metadata of a checkpoint, reading only headers
    (``torch.load(mmap=True)`` / ``safetensors.safe_open``).

    Raises:
        CheckpointError: missing, truncated, corrupt or not a state dict (the message of
            :func:`load_state_dict`).
    """
    from safetensors import SafetensorError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}" + (" (a folder)" if path.is_dir() else ""))
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"
    shapes: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    meta: Dict[str, object] = {}
    try:
        if is_zip or path.suffix.lower() in (".pt", ".pth"):
            fmt = "pt"
            obj = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
            sd = obj.get("model", obj) if isinstance(obj, dict) else None
            if isinstance(obj, dict) and isinstance(obj.get(META_KEY), dict):
                meta = dict(obj[META_KEY])
            if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise ValueError("not a state dict")
            shapes = {k: (tuple(v.shape), _dtype_name(v.dtype)) for k, v in sd.items()}
        else:
            fmt = "safetensors"
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                for k in f.keys():
                    sl = f.get_slice(k)
                    shapes[k] = (tuple(sl.get_shape()), _dtype_name(sl.get_dtype()))
                md = f.metadata() or {}
            if md.get(f"{META_KEY}.random_weights") == "true":
                meta = {"random_weights": True, "seed": int(md.get(f"{META_KEY}.seed", 0)),
                        "config": md.get(f"{META_KEY}.config")}
            if not shapes:
                raise ValueError("empty")
    except CheckpointError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError):
        load_state_dict(path)  # raises the readable CheckpointError
        raise CheckpointError(f"cannot read checkpoint {path}")
    return CheckpointInfo(path, fmt, path.stat().st_size, shapes, meta)


_BLOCK_RE = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")
_DEPTH_EMBED_TO_VARIANT = {(12, 96): "tiny", (16, 96): "small", (24, 112): "base_plus", (48, 144): "large"}


def detect_config(state_dict: Mapping[str, torch.Tensor]) -> Sam2Config:
    """Detect the published config from a state dict: the variant from the Hiera depth and
    embed dim, the version from the 2.1-only keys (``no_obj_embed_spatial``,
    ``obj_ptr_tpos_proj.weight``).

    Raises:
        CheckpointError: the keys do not look like any of the 8 published SAM 2 models.
    """
    key = "image_encoder.trunk.patch_embed.proj.weight"
    if key not in state_dict:
        raise CheckpointError(f"not a SAM 2 checkpoint: missing {key!r}")
    embed = int(state_dict[key].shape[0])
    depth = 1 + max((int(m.group(1)) for k in state_dict if (m := _BLOCK_RE.match(k))), default=-1)
    variant = _DEPTH_EMBED_TO_VARIANT.get((depth, embed))
    if variant is None:
        raise CheckpointError(f"unknown Hiera trunk: {depth} blocks of width {embed}; published "
                              f"variants are {sorted(_DEPTH_EMBED_TO_VARIANT.items())}")
    v21 = "no_obj_embed_spatial" in state_dict or "obj_ptr_tpos_proj.weight" in state_dict
    return CONFIGS[f"sam2.1_hiera_{variant}" if v21 else f"sam2_hiera_{variant}"]


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], name: str = "") -> None:
    """Strict comparison of a state dict against ``model``'s.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = sorted(f"{k}: checkpoint {got[k]} vs model {expected[k]}"
                    for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_list(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_list(shapes)}")
        raise CheckpointError(f"checkpoint does not match {name or 'the model'}: " + "; ".join(parts))


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every floating tensor of ``model``'s state dict with random non-zero values that
    keep activations of order one (in place; returns the model):

    - Linear / Conv / ConvTranspose weights: N(0, 1/fan_in), fan_in = in_ch x kernel area
      (ConvTranspose with kernel == stride: in_ch);
    - other tensors with >= 2 dims (embeddings, tokens, position embeddings, temporal
      encodings, the Fourier matrix): N(0, 1);
    - 1-D ``*.weight`` and ``gamma`` (norm gains, layer scale): U(0.5, 1.5);
    - other 1-D tensors (biases, ``no_obj_ptr``...): N(0, 0.2^2).

    Used for benchmarks and tests on machines without the official files; a model with
    these weights produces meaningless masks.
    """
    gen = torch.Generator().manual_seed(seed)
    fan_in = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w = mod.weight
            fan_in[f"{mod_name}.weight" if mod_name else "weight"] = (
                w.shape[0] if isinstance(mod, nn.ConvTranspose2d) else w[0].numel())
    for name, t in model.state_dict(keep_vars=True).items():
        if not t.is_floating_point():
            continue
        if name in fan_in:
            new = torch.randn(t.shape, generator=gen) / fan_in[name] ** 0.5
        elif t.dim() >= 2:
            new = torch.randn(t.shape, generator=gen)
        elif name.endswith(".weight") or name.endswith("gamma"):
            new = 0.5 + torch.rand(t.shape, generator=gen)
        else:
            new = 0.2 * torch.randn(t.shape, generator=gen)
        t.data.copy_(new.to(t.dtype))
    return model
