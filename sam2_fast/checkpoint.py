"""Checkpoint I/O for the official SAM 2 files: ``.pt`` (``{"model": state_dict}`` or a bare
state dict, loaded with ``weights_only=True``) and ``.safetensors`` with the same keys;
variant/version detection from keys and shapes; strict key checks with readable errors; and
random official-format checkpoints for machines without the real files.

Mirrors the loading in the official ``sam2.build_sam._load_checkpoint``.
"""

from __future__ import annotations

import os
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


def _list(items, limit: int = 3) -> str:
    """The first ``limit`` items and how many more: messages stay one readable line."""
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


_SNIFF_BYTES = 512


def sniff_checkpoint(path: PathLike) -> str:
    """What a checkpoint file really is, from its first bytes (whatever its suffix says).

    Returns:
        ``"zip"`` (``torch.save``'s format), ``"pickle"`` (torch's legacy format) or
        ``"safetensors"``.

    Raises:
        CheckpointError: the file is empty, a Git LFS pointer, an HTML page, a text file or
            something else; the one-line message says which (and never suggests unsafe loading).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    where = f"cannot read checkpoint {path}"
    if not head:
        raise CheckpointError(f"{where}: the file is empty (0 bytes); download it again")
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"version https://git-lfs.github.com/spec/"):
        raise CheckpointError(f"{where}: it is a Git LFS pointer ({size} bytes), not the checkpoint "
                              f"itself; fetch the real file (git lfs pull) or download it")
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:200]:
        raise CheckpointError(f"{where}: it is an HTML page ({size} bytes), not a checkpoint (a "
                              f"download link that returned a web page?); download the file itself")
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and all(c.isprintable() or c in "\n\r\t" for c in decoded):
        first = decoded.strip().splitlines()[0][:40] if decoded.strip() else ""
        raise CheckpointError(f"{where}: it is a text file ({size} bytes, starts with {first!r}), "
                              f"not a checkpoint")
    kinds = {b"\x1f\x8b": "a gzip archive", b"7z": "a 7-zip archive", b"\x89HDF": "an HDF5 file",
             b"\x08": "possibly a protobuf/ONNX file"}
    what = next((v for k, v in kinds.items() if head.startswith(k)), "an unknown format")
    raise CheckpointError(f"{where}: it is {what}, not a torch.save (zip or pickle) or safetensors "
                          f"file (first bytes {head[:8].hex(' ')})")


def _torch_load(path: Path, kind: str, mmap: bool = False):
    """``torch.load(weights_only=True)`` with one-line CheckpointErrors that never suggest
    ``weights_only=False`` (the torch message does)."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap and kind == "zip")
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise CheckpointError(
                f"cannot read checkpoint {path}: it holds Python objects besides tensors (an "
                f"optimizer state, a whole pickled model?); sam2_fast loads weights only: re-save "
                f"{{'model': model.state_dict()}} (or a .safetensors file) where it was made") from None
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"cannot read torch checkpoint {path} (truncated or corrupt): {msg}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError,
            KeyError, IndexError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in msg:
            msg = type(e).__name__
        raise CheckpointError(f"cannot read torch checkpoint {path} (truncated or corrupt): {msg}") from None


def load_state_dict(path: PathLike) -> StateDict:
    """Read a SAM 2 checkpoint into a CPU state dict.

    Args:
        path: a ``torch.save`` file (official ``{"model": sd}`` or a bare state dict, loaded
            with ``weights_only=True``) or ``.safetensors``; the format is sniffed from the
            first bytes (:func:`sniff_checkpoint`), whatever the suffix.

    Returns:
        ``{official key: tensor}`` on the CPU, dtypes as stored.

    Raises:
        CheckpointError: the file does not exist, is not a checkpoint (text, HTML, a Git LFS
            pointer ...: the message says what it is), is truncated/corrupt, holds Python
            objects besides tensors, is not a state dict, or holds non-tensor values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}" + (" (a folder)" if path.is_dir() else ""))
    kind = sniff_checkpoint(path)
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {e}") from None
    else:
        obj = _torch_load(path, kind)
        if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
            sd = dict(obj["model"])
        elif isinstance(obj, Mapping):
            sd = dict(obj)
        else:
            raise CheckpointError(f"{path}: expected a state dict or {{'model': state_dict}}, got {type(obj).__name__}")
    bad = [str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor)]
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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the writer may create it 0600: a checkpoint is a plain file
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
        return detect_config(self._fake())

    def check(self, config: Sam2Config) -> None:
        """:func:`check_state_dict` against ``config``'s model from the shapes alone (built on
        the meta device: no memory, no weights read): whether the file would load.

        Raises:
            CheckpointError: missing/unexpected keys or shape mismatches, naming the file.
        """
        from .model.sam2_model import Sam2Model

        with torch.device("meta"):
            model = Sam2Model(config, backend="torch")
        try:
            check_state_dict(model, self._fake(), name=config.name)
        except CheckpointError as e:
            raise CheckpointError(f"{self.path.name}: {e}") from None

    def _fake(self) -> Dict[str, torch.Tensor]:
        return {k: torch.empty(s, device="meta") for k, (s, _) in self.shapes.items()}


def _dtype_name(d) -> str:
    s = str(d).replace("torch.", "")
    return {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
            "I64": "int64", "I32": "int32"}.get(s, s)


def inspect_checkpoint(path: PathLike) -> CheckpointInfo:
    """Keys, shapes, dtypes and sam2_fast metadata of a checkpoint, reading only headers
    (``torch.load(mmap=True)`` / ``safetensors.safe_open``).

    Raises:
        CheckpointError: missing, not a checkpoint, truncated, corrupt or not a state dict
            (the messages of :func:`load_state_dict`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}" + (" (a folder)" if path.is_dir() else ""))
    kind = sniff_checkpoint(path)
    shapes: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    meta: Dict[str, object] = {}
    if kind != "safetensors":
        fmt = "pt"
        obj = _torch_load(path, kind, mmap=True)
        sd = obj.get("model", obj) if isinstance(obj, dict) else None
        if isinstance(obj, dict) and isinstance(obj.get(META_KEY), dict):
            meta = dict(obj[META_KEY])
        if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            load_state_dict(path)  # raises the readable CheckpointError
            raise CheckpointError(f"{path}: not a state dict")
        shapes = {str(k): (tuple(v.shape), _dtype_name(v.dtype)) for k, v in sd.items()}
    else:
        fmt = "safetensors"
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                for k in f.keys():
                    sl = f.get_slice(k)
                    shapes[k] = (tuple(sl.get_shape()), _dtype_name(sl.get_dtype()))
                md = f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {e}") from None
        if md.get(f"{META_KEY}.random_weights") == "true":
            meta = {"random_weights": True, "seed": int(md.get(f"{META_KEY}.seed", 0)),
                    "config": md.get(f"{META_KEY}.config")}
        if not shapes:
            raise CheckpointError(f"{path}: empty state dict")
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
        CheckpointError: one line with the counts of missing keys, unexpected keys and shape
            mismatches and the first few of each.
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
            parts.append(f"missing keys ({len(missing)}): {_list(missing, 2)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_list(unexpected, 2)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_list(shapes, 1)}")
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
