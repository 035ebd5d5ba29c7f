"""Runtime kernel profile: which implementation (and tile config) each op runs, per shape bucket,
on one GPU -- the file ``sam2-fast tune`` writes and ``build_sam2`` reads.

Dispatch (:func:`choose`), for every call of a public op in :mod:`sam2_fast.kernels`:

* ``backend="torch"``: the pure-torch reference. ``backend="triton"``: the Triton kernel
  (tile config from the profile's entry when it names a Triton one, else the default).
* ``backend="auto"`` (the default): on CUDA with triton importable, the entry for the op and
  shape bucket in the model's profile (when the profile was made on this GPU), else the entry
  of the built-in table for this GPU (:data:`BUILTIN_PROFILES`), else ``"torch"``. Off CUDA:
  ``"torch"``. ``SAM2_FAST_BACKEND=torch|triton|auto`` overrides ``"auto"`` globally.

The auto policy: **auto never picks a path measured slower than torch on that GPU.** The
built-in table holds only measured wins: for the NVIDIA H200 it follows the first H200 run
(``bench/results/2026-11-30_h200_kernels.json``, kernels of commit 0ef3556, bf16, 1024 px):
the Triton window kernel for the Hiera shapes where it beat our torch path by more than
:data:`WIN_MARGIN`, torch everywhere else (memory attention, the global-attention blocks, the
FPN add). A kernel that has never been measured on a GPU (the redesigned memory-attention
kernel, the Triton global-attention path, the fused FPN lateral) is not picked by auto until a
profile made by ``sam2-fast tune`` on that GPU says it wins. Other GPUs have no built-in
entries: auto runs torch there until tuned.

Profile file (TOML, one flat level of tables; :func:`dumps` writes it, :func:`loads` reads it
with :mod:`tomllib`)::

    format = 1
    gpu = "NVIDIA H200"
    capability = "9.0"
    precision = "bfloat16"
    image_size = 1024
    torch = "2.11.0+cu130"
    triton = "3.6.0"
    sam2_fast = "0.1.0"
    created = "2026-12-01T10:00:00+00:00"

    [rope_attention."bfloat16/nq4096/nk32768/b1"]
    impl = "triton"
    block_m = 128
    block_n = 64
    num_warps = 8
    num_stages = 2
    splits = 4
    ms = 0.31
    torch_ms = 0.89

``tma = true`` (optional, with a tile config) selects the tile config's tensor-descriptor twin
(:class:`~._flash.FlashConfig` ``tma``).

Bad files, decided as follows (:class:`ProfileError` is a ValueError):

* unreadable, not TOML, unknown keys, unknown ops or implementations, malformed buckets, tile
  configs that are not shipped (only configs compiled by the AOT test may run): **error**. A
  file the user points at, or keeps next to the checkpoint, that cannot be used as written
  must not be ignored silently.
* a valid profile made on another GPU: **warning** (:class:`ProfileWarning`) and the built-in
  table -- the same checkpoint folder may be shared by machines with different GPUs.
* other torch / triton / sam2_fast versions than the running ones: **warning**, the profile is
  used (its configs are all valid; its timings may have moved).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Union

import torch

from ._backend import check_backend_name, interpreter_enabled, next_pow2, triton_available
from ._flash import FlashConfig, check_config

FORMAT = 1
PROFILE_FILENAME = "sam2_fast_profile.toml"
"""Name of the profile file ``build_sam2`` looks for next to the checkpoint."""
PROFILE_ENV = "SAM2_FAST_PROFILE"
"""Environment variable: a profile path, or ``none`` to use no profile file."""

WIN_MARGIN = 0.95
"""A non-torch implementation is chosen only if it takes at most this fraction of torch's time
(a 5 % margin over measurement noise), both measured in the same run."""

OPS: Dict[str, tuple] = {
    # op -> implementations (the first is the torch reference)
    "rope_attention": ("torch", "triton", "rotate_sdpa"),
    "windowed_attention": ("torch", "triton"),
    "fpn_upsample_add": ("torch", "triton", "triton_lateral"),
}
CONFIG_KEYS = ("block_m", "block_n", "num_warps", "num_stages")
ENTRY_KEYS = ("impl",) + CONFIG_KEYS + ("tma", "splits", "ms", "torch_ms")
TOP_KEYS = ("format", "gpu", "capability", "precision", "image_size", "torch", "triton",
            "sam2_fast", "created")
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
_BUCKET_RE = {
    "rope_attention": re.compile(r"^(float32|bfloat16|float16)/nq(\d+)/nk(\d+)/b(\d+)$"),
    "windowed_attention": re.compile(
        r"^(float32|bfloat16|float16)/g(\d+)x(\d+)/c(\d+)/h(\d+)/w(\d+)/s(\d+)$"),
    "fpn_upsample_add": re.compile(r"^(float32|bfloat16|float16)/c(\d+)/(\d+)x(\d+)$"),
}


class ProfileError(ValueError):
    """A profile file that cannot be used as written (the message names the file and key)."""


class ProfileWarning(UserWarning):
    """A valid profile that does not fit this machine (another GPU, other versions)."""


# ---------------------------------------------------------------------------------------------
# shape buckets
# ---------------------------------------------------------------------------------------------


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` / ``"bfloat16"`` / ``"float16"`` (ValueError for others)."""
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"no kernel profile for dtype {dtype}")
    return DTYPE_NAMES[dtype]


def rope_bucket(dtype: torch.dtype, nq: int, nk: int, batch: int) -> str:
    """Bucket of a memory-attention call: dtype, queries and keys rounded up to powers of two,
    batch (objects x heads) rounded up to a power of two (at most 64).

    At 1024 px: self-attention ``nk4096``; cross-attention with 1 memory frame + pointers
    ``nk8192``, 2-3 frames ``nk16384``, 4-7 frames ``nk32768``.
    """
    return (f"{dtype_name(dtype)}/nq{next_pow2(nq)}/nk{next_pow2(nk)}"
            f"/b{min(next_pow2(batch), 64)}")


def windowed_bucket(dtype: torch.dtype, H: int, W: int, C: int, heads: int, window: int,
                    q_stride: int) -> str:
    """Bucket of a Hiera attention call: the exact block geometry (the input grid, channels,
    heads, window (0 = global), q stride); any batch."""
    return f"{dtype_name(dtype)}/g{H}x{W}/c{C}/h{heads}/w{window}/s{q_stride}"


def fpn_bucket(dtype: torch.dtype, C: int, H: int, W: int) -> str:
    """Bucket of an FPN top-down step: channels and the fine level's grid; any batch."""
    return f"{dtype_name(dtype)}/c{C}/{H}x{W}"


# ---------------------------------------------------------------------------------------------
# data model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """What runs for one (op, bucket): ``impl`` (one of :data:`OPS` [op]); for Triton
    attention a tile ``config`` (None = the default) and ``splits`` (0 = the split-K
    heuristic); the measured ``ms`` and ``torch_ms`` (informational)."""

    impl: str
    config: Optional[FlashConfig] = None
    splits: int = 0
    ms: Optional[float] = None
    torch_ms: Optional[float] = None


TORCH = Choice("torch")


@dataclass(frozen=True, eq=False)
class KernelProfile:
    """A runtime profile: ``entries[op][bucket] -> Choice`` for the GPU named ``gpu``.

    Build one with :func:`load_profile` / :func:`loads`, or in code (``sam2-fast tune``).
    """

    gpu: str
    entries: Mapping[str, Mapping[str, Choice]] = field(default_factory=dict)
    capability: str = ""
    precision: str = ""
    image_size: int = 0
    torch: str = ""
    triton: str = ""
    sam2_fast: str = ""
    created: str = ""
    source: Optional[str] = None  # the file it was read from

    def lookup(self, op: str, bucket: str) -> Optional[Choice]:
        """The entry for (op, bucket), or None."""
        return self.entries.get(op, {}).get(bucket)


# ---------------------------------------------------------------------------------------------
# TOML: a tiny writer for this flat format, tomllib for reading
# ---------------------------------------------------------------------------------------------


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a valid TOML basic string
    raise TypeError(f"cannot write {type(v).__name__} to a profile")


def dumps(profile: KernelProfile) -> str:
    """The TOML text of ``profile`` (format :data:`FORMAT`), entries sorted by op and bucket."""
    top = dict(format=FORMAT, gpu=profile.gpu, capability=profile.capability,
               precision=profile.precision, image_size=int(profile.image_size),
               torch=profile.torch, triton=profile.triton, sam2_fast=profile.sam2_fast,
               created=profile.created)
    lines = ["# sam2_fast kernel profile (written by `sam2-fast tune`; see "
             "sam2_fast/kernels/profile.py)"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for op in sorted(profile.entries):
        for bucket in sorted(profile.entries[op]):
            c = profile.entries[op][bucket]
            lines += ["", f"[{op}.{json.dumps(bucket)}]", f"impl = {_toml_value(c.impl)}"]
            if c.config is not None:
                lines += [f"{k} = {getattr(c.config, k)}" for k in CONFIG_KEYS]
                if c.config.tma:
                    lines.append("tma = true")
            if c.splits:
                lines.append(f"splits = {int(c.splits)}")
            for k in ("ms", "torch_ms"):
                if getattr(c, k) is not None:
                    lines.append(f"{k} = {_toml_value(float(getattr(c, k)))}")
    return "\n".join(lines) + "\n"


def save_profile(profile: KernelProfile, path: Union[str, os.PathLike]) -> Path:
    """Write ``profile`` to ``path`` atomically (a partial file renamed into place).

    Raises: OSError when the file cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(dumps(profile), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _bad(src: str, msg: str) -> ProfileError:
    return ProfileError(f"kernel profile {src}: {msg}")


def _entry(src: str, op: str, bucket: str, raw) -> Choice:
    where = f"[{op}.{json.dumps(bucket)}]"
    if not isinstance(raw, dict):
        raise _bad(src, f"{where} must be a table")
    unknown = sorted(set(raw) - set(ENTRY_KEYS))
    if unknown:
        raise _bad(src, f"{where}: unknown keys {unknown} (known: {list(ENTRY_KEYS)})")
    impl = raw.get("impl")
    if impl not in OPS[op]:
        raise _bad(src, f"{where}: impl must be one of {OPS[op]}, got {impl!r}")
    m = _BUCKET_RE[op].match(bucket)
    if not m:
        raise _bad(src, f"{where}: malformed bucket for {op}")
    for k in CONFIG_KEYS + ("splits",):
        if k in raw and (not isinstance(raw[k], int) or isinstance(raw[k], bool) or raw[k] < 0):
            raise _bad(src, f"{where}: {k} must be a non-negative integer, got {raw[k]!r}")
    for k in ("ms", "torch_ms"):
        if k in raw and (not isinstance(raw[k], (int, float)) or isinstance(raw[k], bool)):
            raise _bad(src, f"{where}: {k} must be a number, got {raw[k]!r}")
    if "tma" in raw and not isinstance(raw["tma"], bool):
        raise _bad(src, f"{where}: tma must be true or false, got {raw['tma']!r}")
    present = [k for k in CONFIG_KEYS if k in raw]
    if "tma" in raw and not present:
        raise _bad(src, f"{where}: tma belongs to a tile config (block_m, ...)")
    config = None
    if present:
        if len(present) != len(CONFIG_KEYS):
            raise _bad(src, f"{where}: a tile config needs all of {list(CONFIG_KEYS)}")
        if op == "fpn_upsample_add" or impl != "triton":
            raise _bad(src, f"{where}: a tile config belongs to a Triton attention entry")
        config = FlashConfig(*(int(raw[k]) for k in CONFIG_KEYS), tma=raw.get("tma", False))
        dtype = {v: k for k, v in DTYPE_NAMES.items()}[m.group(1)]
        # memory attention: d = 256 (every published config); Hiera: channels / heads
        d = 256 if op == "rope_attention" else int(m.group(4)) // max(int(m.group(5)), 1)
        try:
            check_config(config, dtype, d)
        except (ValueError, KeyError) as e:
            raise _bad(src, f"{where}: {e}") from None
    return Choice(impl=impl, config=config, splits=int(raw.get("splits", 0)),
                  ms=None if "ms" not in raw else float(raw["ms"]),
                  torch_ms=None if "torch_ms" not in raw else float(raw["torch_ms"]))


def loads(text: str, source: str = "<string>") -> KernelProfile:
    """Parse and validate profile TOML. Raises :class:`ProfileError` (see the module doc)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise _bad(source, "reading a profile needs Python >= 3.11 (tomllib) or the "
                               "tomli package") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _bad(source, f"not valid TOML ({e})") from None
    if data.get("format") != FORMAT:
        raise _bad(source, f"format must be {FORMAT}, got {data.get('format')!r}")
    unknown = sorted(k for k in data if k not in TOP_KEYS and k not in OPS)
    if unknown:
        raise _bad(source, f"unknown keys {unknown} (known: {list(TOP_KEYS)} and the ops "
                           f"{list(OPS)})")
    if not isinstance(data.get("gpu"), str) or not data["gpu"]:
        raise _bad(source, "gpu must be the GPU's name (torch.cuda.get_device_name)")
    for k in TOP_KEYS[2:]:
        if k in data and k != "image_size" and not isinstance(data[k], str):
            raise _bad(source, f"{k} must be a string, got {data[k]!r}")
    if "image_size" in data and (not isinstance(data["image_size"], int)
                                 or isinstance(data["image_size"], bool)):
        raise _bad(source, f"image_size must be an integer, got {data['image_size']!r}")
    entries: Dict[str, Dict[str, Choice]] = {}
    for op in OPS:
        if op not in data:
            continue
        if not isinstance(data[op], dict):
            raise _bad(source, f"{op} must be a table of shape buckets")
        entries[op] = {b: _entry(source, op, b, raw) for b, raw in data[op].items()}
    return KernelProfile(gpu=data["gpu"], entries=entries,
                         capability=data.get("capability", ""),
                         precision=data.get("precision", ""),
                         image_size=int(data.get("image_size", 0)), torch=data.get("torch", ""),
                         triton=data.get("triton", ""), sam2_fast=data.get("sam2_fast", ""),
                         created=data.get("created", ""), source=source)


def load_profile(path: Union[str, os.PathLike]) -> KernelProfile:
    """Read and validate the profile file at ``path``.

    Raises: :class:`ProfileError` for a missing, unreadable or invalid file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(str(path), f"cannot read it ({e})") from None
    return loads(text, source=str(path))


# ---------------------------------------------------------------------------------------------
# the built-in table
# ---------------------------------------------------------------------------------------------

# Measured on an NVIDIA H200 (bench/results/2026-11-30_h200_kernels.json, commit 0ef3556,
# bf16, 1024 px, batch 1; ms = Triton window kernel, torch_ms = our torch path). Triton where it
# took at most WIN_MARGIN of torch's time; every other Hiera shape (window 8 on the 256 grid,
# window 4 on the 128 grid, large's windows 16 and 8, the global blocks), memory attention
# (Triton 0.09-0.21x) and the FPN add (0.25x) stay on torch.
_H200_WINDOWED_TRITON = {
    # bucket: (triton ms, torch ms)
    "bfloat16/g256x256/c192/h2/w8/s2": (0.1311, 0.2363),  # tiny/small stage-2 entry
    "bfloat16/g128x128/c384/h4/w4/s2": (0.1107, 0.1950),  # tiny/small stage-3 entry
    "bfloat16/g64x64/c384/h4/w14/s1": (0.1167, 0.1683),  # tiny/small stage 3
    "bfloat16/g64x64/c768/h8/w14/s2": (0.1121, 0.2539),  # tiny/small stage-4 entry
    "bfloat16/g32x32/c768/h8/w7/s1": (0.1067, 0.1648),  # tiny/small stage 4
    "bfloat16/g256x256/c224/h4/w8/s2": (0.1518, 0.2895),  # base_plus
    "bfloat16/g128x128/c448/h8/w4/s2": (0.1412, 0.2500),
    "bfloat16/g64x64/c448/h8/w14/s1": (0.0729, 0.0944),
    "bfloat16/g64x64/c896/h16/w14/s2": (0.2049, 0.3903),
    "bfloat16/g32x32/c896/h16/w7/s1": (0.1076, 0.1775),
    "bfloat16/g256x256/c288/h4/w8/s2": (0.1710, 0.3745),  # large
    "bfloat16/g128x128/c288/h4/w4/s1": (0.1192, 0.1522),
    "bfloat16/g128x128/c576/h8/w4/s2": (0.1597, 0.3220),
    "bfloat16/g64x64/c1152/h16/w16/s2": (0.1685, 0.2174),
}

BUILTIN_PROFILES: Dict[str, KernelProfile] = {
    "NVIDIA H200": KernelProfile(
        gpu="NVIDIA H200", capability="9.0", precision="bfloat16", image_size=1024,
        torch="2.11.0+cu130", triton="3.6.0", sam2_fast="0.1.0 (0ef3556)",
        created="2026-11-30T17:14:46+00:00", source="built-in",
        entries={"windowed_attention": {
            b: Choice("triton", ms=t, torch_ms=r) for b, (t, r) in _H200_WINDOWED_TRITON.items()
        }},
    ),
}
"""Built-in tables by GPU name: only measured wins over torch (see the module doc)."""


# ---------------------------------------------------------------------------------------------
# finding, checking and using a profile
# ---------------------------------------------------------------------------------------------

_DEVICE_NAMES: Dict[int, str] = {}


def device_name(device: torch.device) -> str:
    """``torch.cuda.get_device_name`` of a CUDA device (cached in a module global, which
    torch.compile can trace); ``""`` off CUDA."""
    if device.type != "cuda":
        return ""
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = _DEVICE_NAMES.get(index)
    if name is None:
        name = _DEVICE_NAMES[index] = torch.cuda.get_device_name(index)
    return name


def find_profile(checkpoint: Union[str, os.PathLike]) -> Optional[Path]:
    """The profile file next to ``checkpoint`` (:data:`PROFILE_FILENAME` in its folder), or
    None."""
    p = Path(checkpoint).parent / PROFILE_FILENAME
    return p if p.is_file() else None


def _versions() -> Dict[str, str]:
    from .. import __version__

    try:
        import triton

        tv = triton.__version__
    except ImportError:
        tv = ""
    return {"torch": torch.__version__, "triton": tv, "sam2_fast": __version__}


def resolve_profile(profile=None, checkpoint=None, device=None) -> Optional[KernelProfile]:
    """The profile a model built by ``build_sam2`` uses.

    Args:
        profile: a :class:`KernelProfile`; a path (read with :func:`load_profile`); ``False``
            for none; ``None`` (default): the file named by ``$SAM2_FAST_PROFILE`` (``none``
            = no file), else :data:`PROFILE_FILENAME` next to ``checkpoint`` when present.
        checkpoint: the checkpoint path (or None).
        device: the model's device. On CUDA a profile made on another GPU is dropped with a
            :class:`ProfileWarning` (the built-in table applies); other versions warn.

    Returns: the profile, or None (the built-in table applies).

    Raises: :class:`ProfileError` for a file that cannot be used (see the module doc);
        ValueError for a ``profile`` argument of another type.
    """
    if profile is False:
        return None
    if isinstance(profile, KernelProfile):
        prof = profile
    elif profile is not None and profile is not True:
        if not isinstance(profile, (str, os.PathLike)):
            raise ValueError(f"profile must be a path, a KernelProfile, False or None, got "
                             f"{type(profile).__name__}")
        prof = load_profile(profile)
    else:
        env = os.environ.get(PROFILE_ENV, "")
        if env.lower() in ("none", "0", "false", "off"):
            return None
        if env:
            prof = load_profile(env)
        elif checkpoint is not None and find_profile(checkpoint) is not None:
            prof = load_profile(find_profile(checkpoint))
        else:
            return None
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        here = device_name(dev)
        if prof.gpu != here:
            warnings.warn(f"kernel profile {prof.source or '(in memory)'} was made on "
                          f"{prof.gpu!r}, this is {here!r}: using the built-in table instead "
                          "(run `sam2-fast tune` on this GPU)", ProfileWarning, stacklevel=3)
            return None
        ver = _versions()
        moved = [f"{k} {getattr(prof, k)} -> {ver[k]}" for k in ("torch", "triton", "sam2_fast")
                 if getattr(prof, k) and getattr(prof, k) != ver[k]]
        if moved:
            warnings.warn(f"kernel profile {prof.source or '(in memory)'} was made with other "
                          f"versions ({', '.join(moved)}); it is used, but its timings may have "
                          "moved (rerun `sam2-fast tune`)", ProfileWarning, stacklevel=3)
    return prof


def choose(op: str, backend: str, device: torch.device, profile: Optional[KernelProfile],
           bucket: Callable[[], str]) -> Choice:
    """What runs for one call of ``op`` (see the module doc for the policy).

    Args:
        op: a key of :data:`OPS`. backend: "auto" | "triton" | "torch".
        device: the inputs' device. profile: the model's profile or None.
        bucket: returns the call's shape bucket (called only when a table is consulted).

    Raises:
        ValueError: unknown backend.
        RuntimeError: ``backend="triton"`` where Triton cannot run (from
            :func:`~sam2_fast.kernels._backend.resolve_backend`).
    """
    from ._backend import requested_backend, resolve_backend

    backend = requested_backend(backend)
    if backend == "torch":
        return TORCH
    if backend == "triton":
        resolve_backend("triton", device)  # raises where Triton cannot run
        if profile is not None and device.type == "cuda" and profile.gpu == device_name(device):
            c = profile.lookup(op, bucket())
            if c is not None and c.impl == "triton":
                return c
        return Choice("triton")
    # auto: Triton only on CUDA (under the interpreter on the CPU, auto stays on torch: the
    # interpreter is for tests, which ask for backend="triton" explicitly)
    if device.type != "cuda" or not triton_available() or interpreter_enabled():
        return TORCH
    gpu = device_name(device)
    b = bucket()
    if profile is not None and profile.gpu == gpu:
        c = profile.lookup(op, b)
        if c is not None:
            return c
    builtin = BUILTIN_PROFILES.get(gpu)
    if builtin is not None:
        c = builtin.lookup(op, b)
        if c is not None:
            return c
    return TORCH


def choose_unmeasured(backend: str, device: torch.device) -> str:
    """``"triton"`` or ``"torch"`` for an op that no profile covers: ``"auto"`` (after the
    ``SAM2_FAST_BACKEND`` override) is ``"torch"`` -- a kernel never measured is not picked by
    auto -- and ``"triton"`` is checked to be runnable.

    Raises: ValueError (unknown backend), RuntimeError (``"triton"`` where it cannot run).
    """
    from ._backend import resolve_backend

    check_backend_name(backend)
    if backend == "auto":
        backend = os.environ.get("SAM2_FAST_BACKEND", "auto")
        check_backend_name(backend)
    if backend == "triton":
        return resolve_backend("triton", device)
    return "torch"


def new_profile(entries: Mapping[str, Mapping[str, Choice]], *, gpu: str, capability: str,
                precision: str, image_size: int) -> KernelProfile:
    """A profile stamped with this process's versions and the current time (``tune``)."""
    return KernelProfile(gpu=gpu, entries={op: dict(v) for op, v in entries.items()},
                         capability=capability, precision=precision, image_size=image_size,
                         created=datetime.datetime.now(datetime.timezone.utc)
                         .isoformat(timespec="seconds"), **_versions())
