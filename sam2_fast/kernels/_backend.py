"""Backend selection for the sam2_fast kernels.

Every public op in :mod:`sam2_fast.kernels` takes ``backend="auto" | "triton" | "torch"``:

* ``"torch"``  -- the pure-torch reference (``<op>_reference``), on any device.
* ``"triton"`` -- the Triton kernel. Needs CUDA tensors, or CPU tensors with the Triton
  interpreter switched on (``TRITON_INTERPRET=1`` set before triton is imported).
* ``"auto"``   -- Triton when the inputs are on CUDA and triton imports, else the reference.
  The environment variable ``SAM2_FAST_BACKEND`` (``torch`` / ``triton`` / ``auto``) overrides
  ``"auto"`` globally.

Nothing here imports triton at module import time, so ``sam2_fast.model`` stays importable on
machines without triton.
"""

from __future__ import annotations

import functools
import os

import torch

BACKENDS = ("auto", "triton", "torch")


def check_backend_name(backend: str) -> str:
    """Validate a backend name; raises ValueError naming the allowed values."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def interpreter_enabled() -> bool:
    """True when the Triton interpreter is requested (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0", "false", "False")


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when ``import triton`` works (cached)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """Resolve ``backend`` for tensors on ``device`` to ``"triton"`` or ``"torch"``.

    Raises:
        ValueError: unknown backend name.
        RuntimeError: ``"triton"`` requested where it cannot run (no triton, or CPU tensors
            without ``TRITON_INTERPRET=1``).
    """
    check_backend_name(backend)
    if backend == "auto":
        env = os.environ.get("SAM2_FAST_BACKEND", "auto")
        check_backend_name(env)
        backend = env
    if backend == "torch":
        return "torch"
    runnable = triton_available() and (device.type == "cuda" or interpreter_enabled())
    if backend == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton' requested but triton is not installed")
        if not runnable:
            raise RuntimeError(
                f"backend='triton' needs CUDA tensors (got {device.type}) or the Triton "
                "interpreter (set TRITON_INTERPRET=1 before importing triton)"
            )
        return "triton"
    # auto: Triton only on CUDA; under the interpreter on CPU 'auto' stays on torch
    # (the interpreter is for tests, which ask for backend='triton' explicitly).
    return "triton" if (triton_available() and device.type == "cuda") else "torch"
