"""Backend selection for the sam2_fast kernels.

Every public op in :mod:`sam2_fast.kernels` takes ``backend="auto" | "triton" | "torch"``:

* ``"torch"``  -- the pure-torch reference (``<op>_reference``), on any device.
* ``"triton"`` -- the Triton kernel. Needs CUDA tensors, or CPU tensors with the Triton
  interpreter switched on (``TRITON_INTERPRET=1`` set before triton is imported).
* ``"auto"``   -- off CUDA (or without triton): the reference. On CUDA the model follows, per
  op and shape bucket, the runtime profile of this GPU (:mod:`sam2_fast.kernels.profile`,
  written by ``sam2-fast tune``), else the built-in table of measured wins, else torch: a
  kernel is never picked where it was not measured faster than torch on that GPU.
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


_TRITON_AVAILABLE: "bool | None" = None


def triton_available() -> bool:
    """True when ``import triton`` works (cached in a module global, which torch.compile can
    trace, unlike an lru_cache)."""
    global _TRITON_AVAILABLE
    if _TRITON_AVAILABLE is None:
        try:
            import triton  # noqa: F401
        except ImportError:
            _TRITON_AVAILABLE = False
        else:
            _TRITON_AVAILABLE = True
    return _TRITON_AVAILABLE


def requested_backend(backend: str) -> str:
    """``backend`` checked, with ``"auto"`` replaced by ``SAM2_FAST_BACKEND`` when that is set.

    Returns ``"auto"``, ``"triton"`` or ``"torch"``. Raises ValueError for an unknown name (in the
    argument or the environment variable)."""
    check_backend_name(backend)
    if backend == "auto":
        env = os.environ.get("SAM2_FAST_BACKEND", "auto")
        if env not in BACKENDS:
            raise ValueError(f"SAM2_FAST_BACKEND={env!r}: must be one of {BACKENDS} (or unset)")
        backend = env
    return backend


def resolve_backend(backend: str, device: torch.device) -> str:
    """Resolve ``backend`` for tensors on ``device`` to ``"triton"`` or ``"torch"``: whether
    Triton kernels may run at all. ``"auto"`` gives ``"triton"`` on CUDA with triton installed;
    which op then runs Triton is the model's kernel profile's choice (see the module docstring).

    Raises:
        ValueError: unknown backend name (argument or ``SAM2_FAST_BACKEND``).
        RuntimeError: ``"triton"`` requested where it cannot run (no triton, or CPU tensors
            without ``TRITON_INTERPRET=1``); the message names ``SAM2_FAST_BACKEND`` when the
            request came from it.
    """
    from_env = backend == "auto" and os.environ.get("SAM2_FAST_BACKEND", "auto") != "auto"
    backend = requested_backend(backend)
    who = "SAM2_FAST_BACKEND=triton" if from_env else "backend='triton'"
    if backend == "torch":
        return "torch"
    runnable = triton_available() and (device.type == "cuda" or interpreter_enabled())
    if backend == "triton":
        if not triton_available():
            raise RuntimeError(f"{who} requested but triton is not installed")
        if not runnable:
            raise RuntimeError(
                f"{who} needs CUDA tensors (got {device.type}) or the Triton "
                "interpreter (set TRITON_INTERPRET=1 before importing triton)"
            )
        return "triton"
    # auto: Triton may run only on CUDA (per op as the profile says); under the interpreter on
    # the CPU 'auto' stays on torch (the interpreter is for tests, which ask for 'triton').
    return "triton" if (triton_available() and device.type == "cuda") else "torch"


# ---------------------------------------------------------------------------------------------
# Helpers shared by the Triton kernel files (windowed_attention, rope_attention,
# fpn_upsample_add). None of them imports triton at module import time of _backend.
# ---------------------------------------------------------------------------------------------


class _StubJIT:
    """Stands in for a ``@triton.jit`` kernel when triton is not installed (never launched)."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __getitem__(self, grid):
        raise RuntimeError(f"triton is not installed: cannot launch {self.__name__}")


class _StubTriton:
    """Minimal stand-in for the ``triton`` module so the kernel files import without it."""

    @staticmethod
    def jit(fn=None, **kwargs):
        if fn is None:
            return lambda f: _StubJIT(f)
        return _StubJIT(fn)

    @staticmethod
    def cdiv(a, b):
        return -(-a // b)


class _StubTL:
    """Minimal stand-in for ``triton.language`` (only what kernel signatures evaluate)."""

    class constexpr:  # noqa: N801 - mirrors tl.constexpr
        pass


def import_triton():
    """Return ``(triton, triton.language)``, or stand-ins when triton is not installed.

    The stand-ins let ``@triton.jit`` kernel definitions be evaluated at import time; launching
    one raises RuntimeError. Callers reach the kernels only when :func:`resolve_backend`
    answered ``"triton"``, which needs triton installed.
    """
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return _StubTriton(), _StubTL()
    return triton, tl


def next_pow2(n: int) -> int:
    """Smallest power of two >= max(n, 1)."""
    n = max(int(n), 1)
    return 1 << (n - 1).bit_length()


def dot_upcast_needed(dtype: torch.dtype) -> bool:
    """True when ``tl.dot`` operands of ``dtype`` must be upcast to fp32 before the dot.

    The Triton interpreter returns wrong results from ``tl.dot`` on bf16 operands, so under
    ``TRITON_INTERPRET=1`` bf16 tiles are upcast to fp32 (the compiled GPU path keeps bf16).
    """
    return dtype == torch.bfloat16 and interpreter_enabled()


def dot_input_precision(dtype: torch.dtype) -> str:
    """``input_precision`` for ``tl.dot`` on operands of ``dtype``.

    fp32 operands: ``"tf32x3"`` (three TF32 tensor-core products, about fp32 accuracy) when
    torch's fp32 matmul precision is ``"highest"`` (the default), ``"tf32"`` when torch itself
    allows TF32 (``torch.set_float32_matmul_precision("high"/"medium")``); ``"ieee"`` under the
    interpreter (exact). 16-bit operands ignore it (``"ieee"`` passed).
    """
    if dtype != torch.float32 or interpreter_enabled():
        return "ieee"
    if torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "tf32x3"


@functools.lru_cache(maxsize=16)
def _sm_count_cached(index: int) -> int:
    return int(torch.cuda.get_device_properties(index).multi_processor_count)


def sm_count(device: torch.device) -> int:
    """Number of streaming multiprocessors of a CUDA ``device`` (cached); 1 elsewhere."""
    if device.type != "cuda":
        return 1
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _sm_count_cached(index)


def _major_minor(version: str) -> "tuple[int, int]":
    parts = (version.split("+")[0].split(".") + ["0", "0"])[:2]
    return tuple(int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts)


@functools.lru_cache(maxsize=1)
def interpreter_problem() -> "str | None":
    """Why the Triton interpreter of the installed triton cannot run these kernels, or None.

    Triton 3.6's interpreter turns scalar kernel values into Python ints with ``int(array)`` on
    one-element arrays (loop bounds such as ``range(start, stop)``), which NumPy 2.4 made an
    error; triton 3.7 squeezes first. The compiled GPU path is unaffected.
    """
    import numpy
    import triton

    if _major_minor(triton.__version__) < (3, 7) and _major_minor(numpy.__version__) >= (2, 4):
        return (f"the Triton interpreter of triton {triton.__version__} fails with numpy "
                f"{numpy.__version__} (it calls int() on one-element arrays, an error since "
                "NumPy 2.4): install 'numpy<2.4' or triton>=3.7 to run kernels with "
                "TRITON_INTERPRET=1")
    return None


def launch(kernel, grid, *args, **kwargs) -> None:
    """Launch a ``@triton.jit`` kernel on ``grid`` (a tuple).

    Kernels are called from inside ``torch.library.custom_op`` implementations, which only
    ever see real tensors, so this is a plain launch; on CUDA it runs on the tensors'
    device (``torch.cuda.device`` guard for multi-GPU machines).

    Raises: RuntimeError under the interpreter when :func:`interpreter_problem` names one
    (instead of triton's InterpreterError deep inside the kernel).
    """
    dev = None
    for a in args:
        if isinstance(a, torch.Tensor):
            dev = a.device
            break
    if dev is not None and dev.type == "cuda":
        with torch.cuda.device(dev):
            kernel[grid](*args, **kwargs)
        return
    if interpreter_enabled():
        problem = interpreter_problem()
        if problem is not None:
            raise RuntimeError(problem)
    kernel[grid](*args, **kwargs)
