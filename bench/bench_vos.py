#!/usr/bin/env python3
"""End-to-end video object segmentation speed: sam2_fast against the official SAM 2, same run.

The official protocol (``sam2/benchmark.py`` of ``sam2==1.1.0``): the bedroom JPEG frames
(``--frames-dir``), one object, one positive click at (210, 350) on frame 0, frames preloaded
by ``init_state`` (not timed), warm-up runs then timed runs of the whole
``propagate_in_video``, FPS = frames / wall time (the official averages: frames x runs / total
time; the median-run FPS is reported too). bf16: the official runs under
``torch.autocast(bfloat16)`` with TF32 on, as its benchmark does; sam2_fast runs a bf16 model.

Providers, in one process and on one randomized official-format checkpoint per size (written
once with :func:`sam2_fast.checkpoint.randomize_`, loaded by each provider's own loader):

* ``official``           -- ``sam2.build_sam.build_sam2_video_predictor`` (eager)
* ``official_compiled``  -- the same with ``vos_optimized=True`` (``torch.compile`` of the image
  encoder, memory encoder/attention, prompt encoder and mask decoder, ``max-autotune``); run in
  a child process under ``--compile-timeout`` seconds; its first-call overhead (compile) is
  reported apart. ``--compile-cap aten-gemm`` restricts max-autotune's GEMM search to cuBLAS
  (``TORCHINDUCTOR_MAX_AUTOTUNE_GEMM_BACKENDS=ATEN``) to fit a short device lease.
  ``--skip-compile`` leaves it out.
* ``sam2_fast``          -- :func:`sam2_fast.predictors.video.build_sam2_video_predictor`, bf16,
  ``backend="auto"`` with the built-in kernel table (``SAM2_FAST_PROFILE=none``).
* ``sam2_fast_tuned``    -- the same with the runtime profile written by ``sam2-fast tune``
  (``--profile PATH``; skipped without one).
* ``sam2_fast_eager``    -- ``sam2_fast`` with ``cuda_graphs=False`` (not in the default list):
  what the CUDA-graph replay of the image encoder and the steady-state step is worth. The
  other sam2_fast rows report the graph counts and the capture time (``graphs``; capture is
  part of ``first_call_overhead_s``, not of the FPS).

Also the ``cli`` task (``--cli-sizes``, default base_plus): ``sam2-fast video`` end to end on
``--video-file`` (bedroom.mp4; the JPEG folder without PyAV): decode + track + PNG masks +
overlay video, FPS of the frame loop and wall time including the model build.

Also ``--profile-run SIZE``: one propagation of sam2_fast (tuned when a profile is given) over
``--profile-frames`` frames under ``torch.profiler``; the top 10 CUDA kernels by self time (and
the top CPU ops) go to the JSON and the summary, so every GPU run brings back a profile.

Also: 4 and 16 objects (``--objects``; one click each, on a fixed spread of points), peak GPU
memory per provider (``torch.cuda.max_memory_allocated`` over build + init + runs), image
predictor latency (``set_image`` + one ``predict``) of both, and the fraction of the per-frame
compute floor: floor FPS = measured bf16 matmul ceiling / GFLOP per frame (tiny 913, small
981, b+ 1268, large 2444 GFLOP at a full memory bank, one object, 1024 px).

Results go to ``--json`` after every task, so a run cut short keeps what it measured.
``--dry``: CPU, tiny, image_size 128, 3 frames, 1 run, seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

os.environ.setdefault("TQDM_DISABLE", "1")  # the official's progress bars would flood the log

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/official.py: config files, shim

import numpy as np  # noqa: E402
import torch  # noqa: E402

import common  # noqa: E402

SIZES = ("tiny", "small", "base_plus", "large")
PROVIDERS = ("official", "official_compiled", "sam2_fast", "sam2_fast_tuned", "sam2_fast_eager")
DEFAULT_PROVIDERS = ("official", "official_compiled", "sam2_fast", "sam2_fast_tuned")
FAST = ("sam2_fast", "sam2_fast_tuned", "sam2_fast_eager")
GFLOP_PER_FRAME = {"tiny": 913.0, "small": 981.0, "base_plus": 1268.0, "large": 2444.0}
CLICK = (210.0, 350.0)
_CHILDREN: List[subprocess.Popen] = []  # live child process groups, ended on SIGTERM


def _on_term(signum, frame):
    """An outer ``timeout`` ends this process: end the child groups this script started."""
    for proc in list(_CHILDREN):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    sys.exit(128 + signum)


# ----------------------------------------------------------------------------- inputs
def frames_subset(frames_dir: Path, n: Optional[int], work: Path) -> Path:
    """The folder itself, or a folder of links to its first ``n`` frames."""
    names = sorted((p for p in frames_dir.iterdir()
                    if p.suffix.lower() in (".jpg", ".jpeg")), key=lambda p: int(p.stem))
    if not names:
        raise SystemExit(f"no JPEG frames in {frames_dir}")
    if n is None or n >= len(names):
        return frames_dir
    out = work / f"frames_{n}"
    if not out.exists():
        out.mkdir(parents=True)
        for p in names[:n]:
            (out / p.name).symlink_to(p.resolve())
    return out


def count_frames(d: Path) -> int:
    return sum(1 for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def first_frame(d: Path) -> np.ndarray:
    from PIL import Image

    names = sorted((p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")),
                   key=lambda p: int(p.stem))
    return np.asarray(Image.open(names[0]).convert("RGB"))


def click_points(n_obj: int, width: int, height: int) -> List[tuple]:
    """The official click for object 1, then a fixed low-discrepancy spread for the others."""
    pts = [CLICK]
    for k in range(1, n_obj):
        fx, fy = (0.5 + k * 0.6180339887) % 1.0, (0.5 + k * 0.7548776662) % 1.0
        pts.append((round(width * (0.1 + 0.8 * fx)), round(height * (0.1 + 0.8 * fy))))
    return pts


def config_name(size: str, version: str) -> str:
    return f"sam2{'.1' if version == '2.1' else ''}_hiera_{size}"


def make_checkpoint(size: str, args, work: Path) -> Path:
    """A random official-format checkpoint (``{"model": sd}`` .pt) for ``size``, cached in
    ``work``. Built with the official builder when importable (its state dict is the
    authority), else with sam2_fast's (same keys)."""
    name = config_name(size, args.version)
    path = work / f"{name}_{args.image_size}_seed{args.seed}.pt"
    if path.exists():
        return path
    from sam2_fast.checkpoint import randomize_, save_state_dict

    try:
        from official import build_official  # tests/official.py

        model = build_official(name, image_size=args.image_size, video=True, seed=args.seed)
    except ImportError:
        from sam2_fast.build import build_sam2

        model = randomize_(build_sam2(name, device="cpu", image_size=args.image_size),
                           args.seed)
    save_state_dict(model.state_dict(), path)
    del model
    gc.collect()
    return path


# ----------------------------------------------------------------------------- builders
def official_overrides(image_size: int) -> List[str]:
    from official import _overrides

    return _overrides(image_size)


def build_official_video(size, ckpt, device, args, vos_optimized=False):
    from official import OFFICIAL_CONFIG_FILES, install_torchvision_shim

    install_torchvision_shim()
    import sam2  # noqa: F401  (Hydra config module)
    from sam2.build_sam import build_sam2_video_predictor

    return build_sam2_video_predictor(
        OFFICIAL_CONFIG_FILES[config_name(size, args.version)], str(ckpt), device=str(device),
        mode="eval", hydra_overrides_extra=official_overrides(args.image_size),
        apply_postprocessing=True, vos_optimized=vos_optimized)


@contextlib.contextmanager
def kernel_profile_env(provider: str, args):
    """``SAM2_FAST_PROFILE`` while a sam2_fast provider builds its model: ``none`` (the
    built-in table) for ``sam2_fast``, the tuned file for ``sam2_fast_tuned``."""
    old = os.environ.get("SAM2_FAST_PROFILE")
    os.environ["SAM2_FAST_PROFILE"] = (str(args.profile) if provider == "sam2_fast_tuned"
                                       else "none")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SAM2_FAST_PROFILE", None)
        else:
            os.environ["SAM2_FAST_PROFILE"] = old


def build_fast_video(size, ckpt, device, args, provider="sam2_fast"):
    ckpt = None if ckpt is None else str(ckpt)
    try:
        from sam2_fast.predictors.video import build_sam2_video_predictor
    except ImportError:
        from sam2_fast import build_sam2_video_predictor  # type: ignore[attr-defined]
    with kernel_profile_env(provider, args):
        kw = {"cuda_graphs": False} if provider == "sam2_fast_eager" else {}
        return build_sam2_video_predictor(config_name(size, args.version), ckpt, device=device,
                                          dtype=args.fast_dtype, image_size=args.image_size,
                                          backend=args.backend, **kw)


def official_autocast(device):
    """The official benchmark's bf16 autocast on CUDA. On the CPU (``--dry`` only) the official
    runs in fp32: CPU bf16 autocast is slow, and the dry run only proves the plumbing."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_fp32_official(pred, device) -> None:
    """On the CPU, keep the official's memories in fp32 (it casts them to bf16 and then fails
    in fp32, upstream #308): the tests' :func:`neutralize_bf16_memory`."""
    if device.type != "cuda":
        from tests.video_parity import neutralize_bf16_memory

        neutralize_bf16_memory(pred)


# ----------------------------------------------------------------------------- measurements
def mem_reset(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return 0


def mem_peak_gib(device, base):
    if device.type != "cuda":
        return None
    return (torch.cuda.max_memory_allocated(device) - base) / 2**30


def run_video(provider: str, size: str, n_obj: int, frames_dir: Path, ckpt: Path, device,
              args, ceilings) -> Dict:
    """Build, init_state (frames preloaded), one click per object on frame 0, warm-up runs,
    timed runs of the whole propagation."""
    n_frames = count_frames(frames_dir)
    row = dict(task="vos", provider=provider, size=size, objects=n_obj, frames=n_frames,
               image_size=args.image_size,
               dtype=("autocast-bf16" if device.type == "cuda" else "float32")
               if provider.startswith("official") else str(args.fast_dtype).replace("torch.", ""))
    base = mem_reset(device)
    ctx = official_autocast(device) if provider.startswith("official") else contextlib.nullcontext()
    t0 = time.perf_counter()
    with ctx:  # built outside inference mode, as the official benchmark does
        if provider in FAST:
            pred = build_fast_video(size, ckpt, device, args, provider)
        else:
            pred = build_official_video(size, ckpt, device, args,
                                        vos_optimized=provider == "official_compiled")
            cpu_fp32_official(pred, device)
        common.sync(device)
    t1 = time.perf_counter()
    with ctx, torch.inference_mode():
        state = pred.init_state(video_path=str(frames_dir))
        h, w = state["video_height"], state["video_width"]
        for k, (x, y) in enumerate(click_points(n_obj, w, h)):
            pred.add_new_points_or_box(inference_state=state, frame_idx=0, obj_id=k + 1,
                                       points=np.array([[x, y]], dtype=np.float32),
                                       labels=np.array([1], dtype=np.int32))
        common.sync(device)
        t2 = time.perf_counter()
        times = []
        last = None
        for _ in range(args.warmup + args.runs):
            ts = time.perf_counter()
            for _fi, _ids, masks in pred.propagate_in_video(state):
                last = masks
            common.sync(device)
            times.append(time.perf_counter() - ts)
        last_mask = (last > 0).cpu() if last is not None else None
    timed = times[args.warmup:] or times
    mean_s, med_s = statistics.fmean(timed), statistics.median(timed)
    row.update(build_s=t1 - t0, setup_s=t2 - t1, first_run_s=times[0], run_s=timed,
               fps=n_frames / mean_s, fps_median=n_frames / med_s,
               first_call_overhead_s=(t2 - t1) + times[0] - med_s,
               peak_mem_gib=mem_peak_gib(device, base))
    graphs = getattr(getattr(pred, "core", None), "graphs", None)
    if graphs is not None:
        row["graphs"] = {k: (round(v, 3) if isinstance(v, float) else v)
                         for k, v in graphs.stats.items()}
    if size in GFLOP_PER_FRAME and args.image_size == 1024 and ceilings:
        floor_fps = ceilings["matmul_tflops"] * 1e3 / GFLOP_PER_FRAME[size]
        row.update(floor_fps=floor_fps, floor_fraction=row["fps"] / floor_fps)
    del pred, state
    mem_reset(device)
    row["_last_mask"] = last_mask
    return row


def run_cli(size: str, frames_dir: Path, ckpt: Path, device, args) -> Dict:
    """The command line end to end: ``sam2-fast video`` on ``--video-file`` (bedroom.mp4,
    decoded by PyAV; the JPEG folder when PyAV or the file is missing) with one click, PNG
    masks and the overlay video written, bf16. ``fps`` = frames / the frame loop's seconds
    (decode + track + write, from run.json); ``wall_s`` also counts building the model and the
    first-call work (Triton compiles, CUDA-graph capture)."""
    from sam2_fast.cli import main as cli_main

    src = Path(args.video_file) if args.video_file else None
    try:
        import av  # noqa: F401
        have_av = True
    except ImportError:
        have_av = False
    if src is None or not src.is_file() or not have_av:
        src = frames_dir
    out = Path(tempfile.mkdtemp(prefix="cli_", dir=args.work))
    dtype = str(args.fast_dtype).replace("torch.", "")
    argv = ["video", str(src), "--checkpoint", str(ckpt), "--point", "1:0:%g,%g" % CLICK,
            "--out", str(out / "masks"), "--overlay", str(out / "masks" / "overlay.mp4"),
            "--dtype", dtype, "--image-size", str(args.image_size), "--backend", args.backend,
            "--quiet"]
    if args.max_frames:
        argv += ["--max-frames", str(args.max_frames)]
    if device.type == "cpu":
        argv += ["--device", "cpu"]
    base = mem_reset(device)
    t0 = time.perf_counter()
    with kernel_profile_env("sam2_fast", args):
        rc = cli_main(argv)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"sam2-fast video exited {rc}")
    run = json.loads((out / "masks" / "run.json").read_text())
    n = run["num_frames_written"]
    row = dict(task="cli", provider="sam2_fast_cli", size=size, objects=1, frames=n,
               source=str(src), dtype=dtype, wall_s=wall, tracking_s=run["tracking_s"],
               fps=n / run["tracking_s"], fps_wall=n / wall, engine=run.get("engine"),
               pngs=len(list((out / "masks").glob("*.png"))),
               overlay_mb=(out / "masks" / "overlay.mp4").stat().st_size / 2**20,
               cuda_graphs=run.get("cuda_graphs"), peak_mem_gib=mem_peak_gib(device, base))
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    return row


def run_profile(provider: str, size: str, frames_dir: Path, ckpt: Path, device, args) -> Dict:
    """One warm-up propagation, then one under ``torch.profiler``: the top 10 kernels by self
    device (CUDA) time and the top CPU ops by self CPU time, with their call counts."""
    from torch.profiler import ProfilerActivity, profile

    n_frames = count_frames(frames_dir)
    row = dict(task="profile", provider=provider, size=size, objects=1, frames=n_frames)
    base = mem_reset(device)
    pred = build_fast_video(size, ckpt, device, args, provider)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode():
        state = pred.init_state(video_path=str(frames_dir))
        pred.add_new_points_or_box(inference_state=state, frame_idx=0, obj_id=1,
                                   points=np.array([CLICK], dtype=np.float32),
                                   labels=np.array([1], dtype=np.int32))
        for _ in pred.propagate_in_video(state):
            pass
        common.sync(device)
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            for _ in pred.propagate_in_video(state):
                pass
            common.sync(device)
        wall = time.perf_counter() - t0
    events = prof.key_averages()

    def dev_us(e):
        return float(getattr(e, "self_device_time_total", 0.0)
                     or getattr(e, "self_cuda_time_total", 0.0) or 0.0)

    total_dev = sum(dev_us(e) for e in events)
    total_cpu = sum(float(e.self_cpu_time_total) for e in events)
    top_dev = sorted(events, key=dev_us, reverse=True)[:10]
    top_cpu = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    row.update(
        wall_s=wall, fps=n_frames / wall, peak_mem_gib=mem_peak_gib(device, base),
        self_device_ms=total_dev / 1e3, self_cpu_ms=total_cpu / 1e3,
        top_cuda=[dict(name=e.key, self_ms=dev_us(e) / 1e3, calls=e.count,
                       pct=dev_us(e) / total_dev if total_dev else None)
                  for e in top_dev if dev_us(e) > 0],
        top_cpu=[dict(name=e.key, self_ms=e.self_cpu_time_total / 1e3, calls=e.count,
                      pct=e.self_cpu_time_total / total_cpu if total_cpu else None)
                 for e in top_cpu])
    del pred, state, prof
    mem_reset(device)
    return row


def run_image(provider: str, size: str, ckpt: Path, device, args, image: np.ndarray) -> Dict:
    """Image predictor latency: set_image + one predict (one click), median of timed reps."""
    row = dict(task="image", provider=provider, size=size, image_size=args.image_size)
    base = mem_reset(device)
    ctx = official_autocast(device) if provider == "official" else contextlib.nullcontext()
    with ctx:
        if provider == "official":
            from official import OFFICIAL_CONFIG_FILES, install_torchvision_shim

            install_torchvision_shim()
            from sam2.build_sam import build_sam2
            from sam2.sam2_image_predictor import SAM2ImagePredictor

            model = build_sam2(OFFICIAL_CONFIG_FILES[config_name(size, args.version)], str(ckpt),
                               device=str(device), mode="eval",
                               hydra_overrides_extra=official_overrides(args.image_size),
                               apply_postprocessing=True)
            pred = SAM2ImagePredictor(model)
            fs = args.image_size // 16  # hard-coded for 1024 px upstream (#138)
            pred._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]
        else:
            from sam2_fast import Sam2ImagePredictor, build_sam2

            with kernel_profile_env(provider, args):
                model = build_sam2(config_name(size, args.version), str(ckpt), device=device,
                                   dtype=args.fast_dtype, image_size=args.image_size,
                                   backend=args.backend)
            pred = Sam2ImagePredictor(model)
    with ctx, torch.inference_mode():
        pts, lab = np.array([CLICK], dtype=np.float32), np.array([1], dtype=np.int32)

        def once():
            pred.set_image(image)
            pred.predict(point_coords=pts, point_labels=lab, multimask_output=True)
            common.sync(device)

        for _ in range(args.image_warmup):
            once()
        times = []
        for _ in range(args.image_reps):
            t0 = time.perf_counter()
            once()
            times.append((time.perf_counter() - t0) * 1e3)
    row.update(ms=statistics.median(times), ms_all=times, peak_mem_gib=mem_peak_gib(device, base))
    pred = model = None  # free before the next provider is built
    mem_reset(device)
    return row


def preflight_fast(device, args, frames_dir: Path) -> Optional[str]:
    """A few seconds: sam2_fast (tiny, 128 px, the benchmark's dtype and backend, random
    weights) runs the image predictor once and tracks two frames. Returns the error text, or
    None. A library bug then costs seconds, not a whole lease of failing sam2_fast tasks."""
    import traceback

    try:
        from sam2_fast import Sam2ImagePredictor, build_sam2

        model = build_sam2(config_name("tiny", args.version), None, device=device,
                           dtype=args.fast_dtype, image_size=128, backend=args.backend)
        pred = Sam2ImagePredictor(model)
        pred.set_image(first_frame(frames_dir))
        pred.predict(point_coords=np.array([CLICK], dtype=np.float32),
                     point_labels=np.array([1], dtype=np.int32))
        vid = build_fast_video("tiny", None, device,
                               argparse.Namespace(**{**vars(args), "image_size": 128}))
        two = frames_subset(frames_dir, 2, Path(args.work))
        state = vid.init_state(video_path=str(two))
        vid.add_new_points_or_box(inference_state=state, frame_idx=0, obj_id=1,
                                  points=np.array([CLICK], dtype=np.float32),
                                  labels=np.array([1], dtype=np.int32))
        for _ in vid.propagate_in_video(state):
            pass
        common.sync(device)
    except Exception as e:  # noqa: BLE001 - reported, sam2_fast tasks then skipped
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return f"{type(e).__name__}: {str(e)[:200]} (at {Path(tb.filename).name}:{tb.lineno})"
    finally:
        mem_reset(device)
    return None


def run_child(provider, size, n_obj, frames_dir, ckpt, args, timeout) -> Dict:
    """``provider`` for one size in a child process (own compile caches and memory), killed
    with its whole process group after ``timeout`` seconds."""
    out = Path(args.work) / f"child_{provider}_{size}_{n_obj}.json"
    row = dict(task="vos", provider=provider, size=size, objects=n_obj,
               compile_cap=args.compile_cap, timeout_s=timeout)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", provider,
           "--sizes", size, "--objects", str(n_obj), "--frames-dir", str(frames_dir),
           "--checkpoint", str(ckpt), "--json", str(out), "--work", str(args.work),
           "--image-size", str(args.image_size), "--version", args.version,
           "--fast-dtype", str(args.fast_dtype).replace("torch.", ""),
           "--warmup", str(args.warmup), "--runs", str(args.runs), "--seed", str(args.seed),
           "--matmul-tflops", str(args.ceilings["matmul_tflops"] if args.ceilings else 0)]
    if args.dry:
        cmd.append("--dry")
    if args.stub_compile:
        cmd.append("--stub-compile")
        row["note"] = "torch.compile stubbed to identity (dry plumbing run)"
    env = dict(os.environ)
    if args.compile_cap == "aten-gemm":
        env["TORCHINDUCTOR_MAX_AUTOTUNE_GEMM_BACKENDS"] = "ATEN"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _CHILDREN.append(proc)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        row["skipped"] = f"timed out after {timeout:.0f} s (compile cap {args.compile_cap})"
    finally:
        _CHILDREN.remove(proc)
    row["wall_s"] = time.perf_counter() - t0
    if log:
        print(log[-3000:], flush=True)
    if "skipped" not in row:
        if proc.returncode == 0 and out.exists():
            row.update(json.loads(out.read_text())["results"][0])
        else:
            row["skipped"] = f"child exited {proc.returncode}: {(log or '')[-300:]}"
    return row


# ----------------------------------------------------------------------------- report
def headline(results: List[Dict]) -> List[Dict]:
    """Per (size, objects): FPS of each provider, sam2_fast's ratios to the official ones,
    memory, fraction of the compute floor; per size: image latency ratio."""
    vos = {(r["size"], r["objects"], r["provider"]): r for r in results
           if r.get("task") == "vos" and "fps" in r}
    img = {(r["size"], r["provider"]): r for r in results if r.get("task") == "image" and "ms" in r}
    rows = []
    for size, n_obj in sorted({(s, o) for s, o, _ in vos}, key=lambda t: (SIZES.index(t[0])
                                                                          if t[0] in SIZES else 9, t[1])):
        fast = vos.get((size, n_obj, "sam2_fast"))
        tuned = vos.get((size, n_obj, "sam2_fast_tuned"))
        off = vos.get((size, n_obj, "official"))
        comp = vos.get((size, n_obj, "official_compiled"))
        row = dict(size=size, objects=n_obj)
        for key, r in (("official", off), ("compiled", comp), ("fast", fast), ("tuned", tuned)):
            if r:
                row[f"fps_{key}"] = r["fps"]
                row[f"mem_{key}"] = r.get("peak_mem_gib")
        if fast and off:
            row["x_official"] = fast["fps"] / off["fps"]
        if tuned and off:
            row["x_official_tuned"] = tuned["fps"] / off["fps"]
        if fast and comp:
            row["x_compiled"] = fast["fps"] / comp["fps"]
            row["compile_s"] = comp.get("first_call_overhead_s")
        if fast:
            row["floor_fraction"] = fast.get("floor_fraction")
        if n_obj == 1 and (size, "sam2_fast") in img:
            row["img_ms_fast"] = img[(size, "sam2_fast")]["ms"]
            if (size, "official") in img:
                row["img_ms_official"] = img[(size, "official")]["ms"]
                row["img_x"] = row["img_ms_official"] / row["img_ms_fast"]
        rows.append(row)
    return rows


def mask_agreement(results: List[Dict]) -> None:
    """IoU of the last frame's binary masks of each provider against the official eager
    (informational: random weights, bf16 on both sides)."""
    ref = {(r["size"], r["objects"]): r.get("_last_mask") for r in results
           if r.get("provider") == "official" and r.get("task") == "vos"}
    for r in results:
        m = r.pop("_last_mask", None)
        o = ref.get((r.get("size"), r.get("objects")))
        if m is not None and o is not None and m.shape == o.shape and r["provider"] != "official":
            inter = (m & o).sum().item()
            union = (m | o).sum().item()
            r["last_mask_iou_vs_official"] = inter / union if union else 1.0


def dump(args, info, results, not_run):
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    common.write_json(args.json, dict(kind="bench_vos", env=info, ceilings=args.ceilings,
                                      args={k: str(v) for k, v in vars(args).items()},
                                      results=rows, headline=headline(rows), not_run=not_run,
                                      gflop_per_frame=GFLOP_PER_FRAME))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="CPU, tiny, 128 px, 3 frames, 1 run")
    p.add_argument("--frames-dir", default=str(HERE.parent / ".device" / "bedroom"))
    p.add_argument("--max-frames", type=int, default=None, help="first N frames (default all)")
    p.add_argument("--video-file", default=str(HERE.parent / ".device" / "bedroom.mp4"),
                   help="the video file of the cli task (the JPEG folder when missing or "
                        "without PyAV)")
    p.add_argument("--cli-sizes", default="base_plus",
                   help="sizes of the cli task (sam2-fast video end to end); '' = none")
    p.add_argument("--multi-frames", type=int, default=60,
                   help="frames for the multi-object cases (memory bank full after 7)")
    p.add_argument("--sizes", default=None, help=f"comma list of {SIZES}; default all (dry: tiny)")
    p.add_argument("--objects", default="1,4,16")
    p.add_argument("--multi-sizes", default="base_plus",
                   help="sizes that also run the >1-object cases")
    p.add_argument("--compile-sizes", default="base_plus",
                   help="sizes that run official_compiled (each a child process)")
    p.add_argument("--image-sizes", default=None, help="sizes timed with the image predictor "
                   "(default: --sizes; '' for none)")
    p.add_argument("--providers", default=",".join(DEFAULT_PROVIDERS),
                   help=f"comma list of {PROVIDERS}")
    p.add_argument("--skip-compile", action="store_true", help="no official_compiled")
    p.add_argument("--compile-timeout", type=float, default=300.0)
    p.add_argument("--compile-cap", choices=("none", "aten-gemm"), default="none")
    p.add_argument("--version", choices=("2", "2.1"), default="2.1")
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--image-warmup", type=int, default=3)
    p.add_argument("--image-reps", type=int, default=10)
    p.add_argument("--backend", default="auto")
    p.add_argument("--profile", default=None,
                   help="runtime kernel profile (sam2-fast tune) for the sam2_fast_tuned provider")
    p.add_argument("--profile-run", default="base_plus",
                   help="size for the torch.profiler run of sam2_fast ('' for none)")
    p.add_argument("--profile-frames", type=int, default=40,
                   help="frames of the profiled propagation")
    p.add_argument("--fast-dtype", default=None,
                   help="sam2_fast model dtype (default bfloat16; dry: float32, as CPU bf16 is "
                   "slow and the dry run only proves the plumbing)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds; tasks not started by then are listed as not run")
    p.add_argument("--json", default=None)
    p.add_argument("--work", default=None, help="checkpoints and frame subsets (default: temp)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    # internal: one provider in a child process
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)
    p.add_argument("--matmul-tflops", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--stub-compile", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.dry:
        args.image_size = 128 if args.image_size == 1024 else args.image_size
        args.max_frames = 3 if args.max_frames is None else args.max_frames
        args.multi_frames = min(args.multi_frames, 3)
        args.runs, args.warmup, args.image_warmup, args.image_reps = 1, 0, 1, 1
        args.stub_compile = True  # the child runs the VOS class with torch.compile = identity
    device = common.pick_device(args.device, args.dry)
    if args.dry and device.type == "cpu":
        torch.set_num_threads(1)  # a shared, busy CPU: more threads spin and run 10-25x slower
    if args.sizes is None:
        args.sizes = "tiny" if args.dry else ",".join(SIZES)
    if args.fast_dtype is None:
        args.fast_dtype = "float32" if args.dry else "bfloat16"
    args.fast_dtype = getattr(torch, args.fast_dtype)
    if device.type == "cuda":
        # the official benchmark's setting (it matters for the official's fp32 ops only)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    sizes = common.parse_list(args.sizes)
    objects = common.parse_list(args.objects, int)
    providers = [x for x in common.parse_list(args.providers)
                 if not (args.skip_compile and x == "official_compiled")]
    bad = [s for s in sizes if s not in SIZES] + [x for x in providers if x not in PROVIDERS]
    if bad:
        p.error(f"unknown sizes/providers {bad}")
    work_ctx = tempfile.TemporaryDirectory(prefix="bench_vos_") if args.work is None else None
    args.work = args.work or work_ctx.name
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = Path(args.frames_dir)
    if not src.is_dir():
        p.error(f"--frames-dir {src} is not a folder of JPEG frames")

    if args.child:  # one provider, one size, one object count; parent passes the checkpoint
        if args.stub_compile:
            torch.compile = lambda fn=None, **kw: fn if fn is not None else (lambda f: f)
        args.ceilings = {"matmul_tflops": args.matmul_tflops} if args.matmul_tflops else None
        row = run_video(args.child, sizes[0], objects[0], src, Path(args.checkpoint), device,
                        args, args.ceilings)
        row.pop("_last_mask", None)
        common.write_json(args.json, dict(results=[row]))
        return 0

    signal.signal(signal.SIGTERM, _on_term)
    info = common.env_info(device)
    args.ceilings = common.measure_ceilings(device, dry=args.dry)
    print(f"# ceilings: bf16 matmul {args.ceilings['matmul_tflops']:.1f} TFLOP/s, "
          f"d2d copy {args.ceilings['copy_gbs']:.0f} GB/s", flush=True)
    frames_all = frames_subset(src, args.max_frames, work)
    frames_multi = frames_subset(src, min(args.multi_frames, args.max_frames or 10**9), work)
    image = first_frame(frames_all)
    image_sizes = sizes if args.image_sizes is None else common.parse_list(args.image_sizes)
    multi_sizes = common.parse_list(args.multi_sizes)
    compile_sizes = common.parse_list(args.compile_sizes)
    if args.dry:
        multi_sizes, compile_sizes = sizes[:1], sizes[:1]
        objects = sorted({1, 2})

    # tasks in priority order (a run cut short by --time-budget loses the tail): for each size
    # in --sizes order, the one-object eager official and sam2_fast, then (for --compile-sizes)
    # the official vos_optimized right after that size's eager pair; then image latency; then
    # the multi-object cases
    have_profile = bool(args.profile) and Path(args.profile).is_file()
    if args.profile and not have_profile:
        print(f"# --profile {args.profile}: no such file; sam2_fast_tuned is skipped", flush=True)
    if not have_profile:
        providers = [x for x in providers if x != "sam2_fast_tuned"]
    eager = [x for x in ("official", "sam2_fast", "sam2_fast_tuned") if x in providers]
    profile_run = args.profile_run.strip()
    if args.dry and profile_run:
        profile_run = sizes[0]  # the dry run exercises the profiler on its one size
    tasks = []
    for size in sizes:
        for prov in eager:
            if 1 in objects:
                tasks.append(("vos", prov, size, 1))
        if size == profile_run and any(x in providers for x in FAST):
            tasks.append(("profile", "sam2_fast_tuned" if have_profile else "sam2_fast", size, 1))
        if "official_compiled" in providers and size in compile_sizes and 1 in objects:
            tasks.append(("child", "official_compiled", size, 1))
    cli_sizes = sizes[:1] if args.dry else common.parse_list(args.cli_sizes)
    for size in sizes:
        if size in cli_sizes and "sam2_fast" in providers:
            tasks.append(("cli", "sam2_fast_cli", size, 1))
    for size in sizes:
        for prov in eager:
            if size in image_sizes:
                tasks.append(("image", prov, size, 1))
    for size in sizes:
        if size in multi_sizes:
            for n in objects:
                if n > 1:
                    for prov in eager:
                        tasks.append(("vos", prov, size, n))

    budget = common.Budget(args.time_budget)
    results: List[Dict] = []
    not_run: List[str] = []
    fast_error = (preflight_fast(device, args, frames_all)
                  if any(x in providers for x in FAST) else None)
    if fast_error:
        print(f"# sam2_fast preflight FAILED, its tasks are skipped: {fast_error}", flush=True)
    for kind, prov, size, n in tasks:
        label = f"{kind} {prov} {size} x{n}"
        if budget.spent():
            not_run.append(label)
            continue
        if (prov in FAST or kind == "cli") and fast_error:
            results.append(dict(task=kind, provider=prov, size=size, objects=n,
                                skipped=f"preflight: {fast_error}"))
            continue
        print(f"# {label} ...", flush=True)
        t0 = time.perf_counter()
        try:
            ckpt = make_checkpoint(size, args, work)
            fdir = frames_all if n == 1 else frames_multi
            if kind == "vos":
                row = run_video(prov, size, n, fdir, ckpt, device, args, args.ceilings)
            elif kind == "profile":
                fprof = frames_subset(src, min(args.profile_frames, args.max_frames or 10**9),
                                      work)
                row = run_profile(prov, size, fprof, ckpt, device, args)
            elif kind == "image":
                row = run_image(prov, size, ckpt, device, args, image)
            elif kind == "cli":
                row = run_cli(size, fdir, ckpt, device, args)
            else:
                timeout = min(args.compile_timeout, max(budget.left(), 30.0))
                row = run_child(prov, size, n, fdir, ckpt, args, timeout)
        except Exception as e:  # noqa: BLE001 - report and continue with the next task
            row = dict(task=kind, provider=prov, size=size, objects=n,
                       skipped=f"{type(e).__name__}: {str(e)[:300]}")
            mem_reset(device)
        row["task_wall_s"] = time.perf_counter() - t0
        results.append(row)
        print(f"#   done in {row['task_wall_s']:.1f} s: "
              + ", ".join(f"{k}={common.fmt(row.get(k))}" for k in
                          ("fps", "ms", "peak_mem_gib", "skipped") if k in row), flush=True)
        dump(args, info, results, not_run)  # after every task: a cut-short run keeps its rows
    mask_agreement(results)
    dump(args, info, results, not_run)

    cols = ["task", "provider", "size", "objects", "frames", "fps", "ms", "peak_mem_gib",
            "first_call_overhead_s", "floor_fraction", "last_mask_iou_vs_official"]
    print(common.format_table(
        [dict(r, provider=r["provider"] + (" (skip)" if "skipped" in r else "")) for r in results],
        cols, specs={"fps": ".4g", "ms": ".4g", "peak_mem_gib": ".3g",
                     "first_call_overhead_s": ".3g", "floor_fraction": ".1%",
                     "last_mask_iou_vs_official": ".3f"}))
    for r in results:
        if "skipped" in r:
            print(f"# skipped {r['provider']} {r.get('size')}: {r['skipped']}")
    if not_run:
        print(f"# time budget {args.time_budget} s spent; not run: {', '.join(not_run)}")
    hl = headline(results)
    print("# headline (x_official / x_compiled = sam2_fast FPS over the official's; "
          "floor_fraction = FPS over matmul-ceiling / GFLOP-per-frame)")
    print(common.format_table(hl, ["size", "objects", "fps_official", "fps_compiled", "fps_fast",
                                   "fps_tuned", "x_official", "x_official_tuned", "x_compiled",
                                   "floor_fraction", "mem_official", "mem_fast",
                                   "img_ms_official", "img_ms_fast", "img_x"],
                              specs={"floor_fraction": ".1%", "mem_official": ".3g",
                                     "mem_fast": ".3g"}))
    if work_ctx is not None:
        work_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
