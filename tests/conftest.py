"""Test configuration.

* Without CUDA, switch the Triton interpreter on *before anything imports triton*, so the
  kernel tests run on the CPU (``TRITON_INTERPRET=1``).
* ``gpu`` marker: tests that need CUDA; skipped cleanly without it.
* An interpreter that cannot run the kernels (triton 3.6 with numpy >= 2.4) stops the run at
  once with the fix, instead of failing every kernel test.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped without one")
    config.addinivalue_line("markers", "slow: long CPU tests (still part of the default run)")
    from sam2_fast.kernels._backend import interpreter_enabled, interpreter_problem, triton_available

    if interpreter_enabled() and triton_available() and interpreter_problem():
        raise pytest.UsageError(interpreter_problem())  # one clear line, not 200 kernel failures


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the largest measured parity error per (area, output) for NOTES.md."""
    try:
        from tolerances import MEASURED
    except ImportError:
        return
    if not MEASURED:
        return
    terminalreporter.section("parity: max relative L2 error per output")
    for (area, what), err in sorted(MEASURED.items()):
        terminalreporter.write_line(f"{area:20s} {what:60s} {err:.2e}")
