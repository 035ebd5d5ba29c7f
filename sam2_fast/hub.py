"""The 8 official SAM 2 / SAM 2.1 checkpoints: download URLs, a local cache, size checks.

Mirrors the official ``checkpoints/download_ckpts.sh`` (same URLs, same file names). Files are
cached under ``$SAM2_FAST_CACHE`` (default ``~/.cache/sam2_fast``) as ``<name>.pt``. A download
shows a tqdm progress bar on stderr, is written to ``<name>.pt.partial`` and renamed only once
complete and size-checked, so an interrupted download never looks like a checkpoint.

Without network access :func:`fetch_checkpoint` fails at once (``SAM2_FAST_OFFLINE=1`` skips
the network entirely) with a :class:`HubError` that says where to put the file.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

from .config import get_config

BASE_URL_SAM2 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
BASE_URL_SAM21 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"

#: name -> official download URL (the 8 published checkpoints)
MODEL_URLS: Dict[str, str] = {
    **{f"sam2_hiera_{v}": f"{BASE_URL_SAM2}/sam2_hiera_{v}.pt"
       for v in ("tiny", "small", "base_plus", "large")},
    **{f"sam2.1_hiera_{v}": f"{BASE_URL_SAM21}/sam2.1_hiera_{v}.pt"
       for v in ("tiny", "small", "base_plus", "large")},
}

#: official Hugging Face model id (``sam2.build_sam.HF_MODEL_ID_TO_FILENAMES``) -> name; the
#: ``from_pretrained`` ids. The files come from the URLs above (same files).
HF_MODEL_IDS: Dict[str, str] = {
    f"facebook/{ver.replace('_', '')}-hiera-{v.replace('_', '-')}": f"{ver}_hiera_{v}"
    for ver in ("sam2", "sam2.1") for v in ("tiny", "small", "base_plus", "large")
}

#: name -> number of float32 values in the official state dict (all keys; checked by the tests
#: against the model built from the config). The file holds them as float32 plus a small pickle.
MODEL_NUMEL: Dict[str, int] = {
    "sam2_hiera_tiny": 38_946_242,
    "sam2.1_hiera_tiny": 38_962_754,
    "sam2_hiera_small": 46_044_098,
    "sam2.1_hiera_small": 46_060_610,
    "sam2_hiera_base_plus": 80_833_922,
    "sam2.1_hiera_base_plus": 80_850_434,
    "sam2_hiera_large": 224_430_386,
    "sam2.1_hiera_large": 224_446_898,
}

#: the official Hugging Face model ids (``sam2.build_sam.HF_MODEL_ID_TO_FILENAMES``) -> names
HF_MODEL_IDS: Dict[str, str] = {
    f"facebook/sam2{v}-hiera-{size.replace('_', '-')}": f"sam2{v}_hiera_{size}"
    for v in ("", ".1") for size in ("tiny", "small", "base_plus", "large")
}

_PICKLE_OVERHEAD = 8 * 1024 * 1024  # keys, storage records and zip headers: well under 8 MiB
CONNECT_TIMEOUT_S = 15.0


class HubError(ValueError):
    """A model name is unknown, a download failed (offline, HTTP error, wrong size), or a cached
    file is damaged. The message says what to do."""


def cache_dir() -> Path:
    """The checkpoint cache: ``$SAM2_FAST_CACHE`` or ``~/.cache/sam2_fast`` (not created)."""
    env = os.environ.get("SAM2_FAST_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sam2_fast"


def canonical_name(name: str) -> str:
    """``sam2.1_hiera_tiny`` (also the official stems ``sam2.1_hiera_t``, ``.pt``/``.yaml``
    suffixes, and the official Hugging Face ids ``facebook/sam2.1-hiera-tiny``) -> the registry
    name. Raises HubError for anything else (listing the 8 names)."""
    key = str(name).strip()
    if key in HF_MODEL_IDS:
        return HF_MODEL_IDS[key]
    for suffix in (".pt", ".yaml"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    try:
        key = get_config(key).name
    except ValueError:
        pass
    if key not in MODEL_URLS:
        raise HubError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_URLS)}")
    return key


def model_url(name: str) -> str:
    """Official download URL of a published checkpoint (raises HubError for unknown names)."""
    return MODEL_URLS[canonical_name(name)]


def cached_path(name: str) -> Path:
    """Where the checkpoint ``name`` lives in the cache (whether or not it is there)."""
    return cache_dir() / f"{canonical_name(name)}.pt"


def expected_size_range(name: str) -> Tuple[int, int]:
    """(min, max) plausible file size in bytes of the official ``.pt`` for ``name``: 4 bytes per
    float32 value, plus at most 8 MiB of pickle/zip overhead."""
    n = 4 * MODEL_NUMEL[canonical_name(name)]
    return n, n + _PICKLE_OVERHEAD


def check_size(name: str, path: Path) -> None:
    """Raise HubError when ``path``'s size is outside :func:`expected_size_range` (truncated or
    not the right model)."""
    lo, hi = expected_size_range(name)
    size = path.stat().st_size
    if not lo <= size <= hi:
        raise HubError(f"{path} has {size} bytes but {canonical_name(name)} should have "
                       f"{lo}..{hi} bytes (truncated or wrong file); delete it and download "
                       f"{model_url(name)} again")


def _offline_message(name: str, dest: Path, reason: str) -> str:
    return (f"cannot download {name} ({reason}). Download {model_url(name)} on a machine with "
            f"network access and put it at {dest} (or set SAM2_FAST_CACHE to the folder that "
            f"holds {dest.name}), or use a local file (sam2-fast --checkpoint PATH; "
            f"build_sam2(checkpoint=PATH) in Python)")


def fetch_checkpoint(name: str, *, url: Optional[str] = None, progress: bool = True,
                     check: bool = True) -> Path:
    """Path of the official checkpoint ``name`` in the cache, downloading it when missing.

    Args:
        name: one of the 8 published names (``sam2.1_hiera_tiny`` ...; official stems work).
        url: override the download URL (tests use ``file://``); default the official one.
        progress: show a tqdm bar (bytes, stderr) while downloading.
        check: check the file size against :func:`expected_size_range` (cache hits too).

    Returns:
        the cached ``.pt`` path (official ``{"model": state_dict}`` file).

    Raises:
        HubError: unknown name; offline (``SAM2_FAST_OFFLINE=1``, no DNS, connection refused
            or timed out after ``CONNECT_TIMEOUT_S`` seconds) -- the message says where to put
            the file; HTTP errors; a download or a cached file of the wrong size; a cache
            folder that cannot be written. A failed download leaves nothing in the cache.
    """
    name = canonical_name(name)
    dest = cached_path(name)
    if dest.is_file():
        if check:
            check_size(name, dest)
        return dest
    url = url or MODEL_URLS[name]
    if os.environ.get("SAM2_FAST_OFFLINE", "0") not in ("", "0", "false", "False"):
        raise HubError(_offline_message(name, dest, "SAM2_FAST_OFFLINE is set"))
    try:
        resp = urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise HubError(f"downloading {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        reason = getattr(e, "reason", e)
        raise HubError(_offline_message(name, dest, f"no network access: {reason}")) from None
    tmp = dest.with_name(dest.name + ".partial")
    try:
        with resp:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise HubError(f"cannot create the checkpoint cache {dest.parent}: "
                               f"{e.strerror or e}") from None
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            from tqdm.auto import tqdm

            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                             unit_divisor=1024, desc=name,
                                             disable=not progress) as bar:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
        got = tmp.stat().st_size
        if total is not None and got != total:
            raise HubError(f"download of {url} incomplete: {got} of {total} bytes")
        if check:
            check_size(name, tmp)
        tmp.replace(dest)
    except HubError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise HubError(f"downloading {url} to {dest} failed: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


__all__ = ["HF_MODEL_IDS", "MODEL_URLS", "MODEL_NUMEL", "HubError", "cache_dir", "cached_path", "canonical_name",
           "check_size", "expected_size_range", "fetch_checkpoint", "model_url"]
