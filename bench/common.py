"""Shared helpers of the benchmark scripts (timing, ceilings, environment, tables).

Timing follows the device method: warm up, median of many repeats, CUDA events, the L2
flushed before every repeat (cold-cache numbers), never zeros as inputs. Kernel timings are
the GPU time of CUDA-graph replays (``timed``), as the runtime replays its captured steps;
``triton.testing.do_bench`` where a call cannot be captured. On the CPU (``--dry``) a host clock
and a handful of repeats stand in; those numbers only prove that the scripts run.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, warmup_ms: float = 25.0,
          rep_ms: float = 100.0, cpu_reps: int = 3):
    """Median time of ``fn()``: a ``Timing(ms, method, note)``.

    CUDA: ``sam2_fast.kernels.tuning.timed`` -- the GPU time of CUDA-graph replays with the L2
    flushed before each (what a captured step costs; no host launch cost), or
    ``triton.testing.do_bench`` where ``fn`` cannot be captured (``method`` says which). The same
    timer as ``sam2-fast tune``, so the benchmark and the profile compare like with like.
    CPU: ``cpu_reps`` calls after one warm-up, host clock.
    """
    from sam2_fast.kernels.tuning import Timing
    from sam2_fast.kernels.tuning import timed as _timed

    if device.type == "cuda":
        return _timed(fn, device, warmup_ms, rep_ms)
    fn()
    times = []
    for _ in range(max(1, cpu_reps)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(float(statistics.median(times)), "host")


def time_ms(fn: Callable[[], object], device: torch.device, warmup_ms: float = 25.0,
            rep_ms: float = 100.0, cpu_reps: int = 3) -> float:
    """``timed(...).ms`` in milliseconds."""
    return timed(fn, device, warmup_ms, rep_ms, cpu_reps).ms


def measure_ceilings(device: torch.device, dry: bool = False) -> Dict[str, float]:
    """The two ceilings, measured now on random data:

    * ``matmul_tflops``: a large bf16 matmul (8192^3 on CUDA; 256^3 fp32 on the CPU),
      2 n^3 FLOP over the median time;
    * ``copy_gbs``: a device-to-device copy of a 1 GiB bf16 buffer (4 MiB on the CPU),
      bytes read + bytes written over the median time.
    """
    gen = torch.Generator(device=device).manual_seed(1234)
    if device.type == "cuda" and not dry:
        n, dt, nbytes = 8192, torch.bfloat16, 1 << 30
    else:
        n, dt, nbytes = 256, torch.float32, 4 << 20
    a = torch.randn(n, n, device=device, dtype=dt, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dt, generator=gen)
    t_mm = time_ms(lambda: a @ b, device, warmup_ms=100, rep_ms=300)
    elt = torch.empty((), dtype=dt).element_size()
    src = torch.randn(nbytes // elt, device=device, dtype=dt, generator=gen)
    dst = torch.empty_like(src)
    t_cp = time_ms(lambda: dst.copy_(src), device, warmup_ms=100, rep_ms=300)
    out = {
        "matmul_tflops": 2.0 * n**3 / (t_mm * 1e-3) / 1e12,
        "matmul_n": n,
        "matmul_dtype": str(dt).replace("torch.", ""),
        "matmul_ms": t_mm,
        "copy_gbs": 2.0 * nbytes / (t_cp * 1e-3) / 1e9,
        "copy_bytes": nbytes,
        "copy_ms": t_cp,
    }
    a = b = src = dst = None  # free the buffers now
    return out


def _nvidia_smi(query: str) -> Optional[str]:
    try:
        res = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else None


def env_info(device: torch.device) -> Dict[str, object]:
    """Date, host, Python / torch / triton versions, GPU name, driver, CUDA."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    info: Dict[str, object] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version,
        "device": str(device),
        "cuda": torch.version.cuda,
        "triton_interpret": os.environ.get("TRITON_INTERPRET", "0"),
        "argv": sys.argv,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, sm_count=props.multi_processor_count,
                    gpu_mem_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}",
                    driver=_nvidia_smi("driver_version"),
                    clocks=_nvidia_smi("clocks.sm,clocks.max.sm,clocks.mem"))
    else:
        info.update(gpu=None, cpu=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads())
    return info


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64 (NaN/inf -> inf)."""
    o = out.detach().double()
    r = ref.detach().double()
    if o.shape != r.shape:
        return float("inf")
    if not torch.isfinite(o).all():
        return float("inf")
    den = r.norm().item()
    return float((o - r).norm().item() / (den if den > 0 else 1.0))


def fmt(x, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return format(x, spec)
    return str(x)


def format_table(rows: Sequence[Dict[str, object]], columns: Sequence[str],
                 specs: Optional[Dict[str, str]] = None) -> str:
    """A fixed-width text table of ``rows`` (dicts) over ``columns``."""
    specs = specs or {}
    cells = [[fmt(r.get(c), specs.get(c, ".3g")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def format_markdown(rows: Sequence[Dict[str, object]], columns: Sequence[str],
                    specs: Optional[Dict[str, str]] = None) -> str:
    """The same table as GitHub markdown."""
    specs = specs or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c), specs.get(c, ".3g")) for c in columns) + " |")
    return "\n".join(lines)


def write_json(path: Optional[str], payload: Dict[str, object]) -> None:
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".partial")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(p)


class Budget:
    """A wall-clock budget in seconds (``None`` = unlimited)."""

    def __init__(self, seconds: Optional[float]):
        self.seconds = seconds
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - self.elapsed()

    def spent(self) -> bool:
        return self.left() <= 0


def pick_device(name: Optional[str], dry: bool) -> torch.device:
    """The benchmark's device: ``name`` when given, the CPU for a dry run, else CUDA.

    Raises:
        SystemExit: CUDA asked for (or implied by a full run) on a machine without it: a full
            run times the 1024 px shapes, which on a CPU takes hours and measures nothing the
            benchmark is for; ``--dry`` (tiny shapes) or an explicit ``--device cpu`` run there.
    """
    if name:
        dev = torch.device(name)
    elif dry:
        return torch.device("cpu")
    else:
        dev = torch.device("cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: --dry runs tiny shapes on the CPU; --device cpu times the "
                         "full shapes on the CPU (slow)")
    return dev


def parse_list(text: str, cast=str) -> List:
    return [cast(t) for t in str(text).split(",") if t.strip()]
