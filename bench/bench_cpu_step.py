"""CPU time per tracked frame in steady state (memory bank full), offline and streaming.

A small benchmark for changes to the tracking engine: ``sam2.1_hiera_tiny`` with random
official-format weights at 512 px, fp32, the first 20 bedroom frames, one click on frame 0.
Frames 0..7 fill the bank (7 memories); the median wall time of frames 8..19 is the steady
state. Two front ends: ``Sam2VideoPredictor.propagate_in_video`` (frames preloaded, so decoding
is not timed) and ``Sam2.predict_video_frame`` (frames decoded beforehand, same reason).

    python bench/bench_cpu_step.py [--frames-dir DIR] [--frames 20] [--objects 1] [--threads 2]
                                   [--image-size 512] [--json out.json]

Numbers are only comparable on the same machine, quiet, with the same thread count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data" / "bedroom"  # the default --frames-dir


def _model(image_size: int):
    from sam2_fast.build import build_sam2
    from sam2_fast.checkpoint import randomize_

    model = build_sam2("sam2.1_hiera_tiny", None, device="cpu", image_size=image_size,
                       backend="torch")
    randomize_(model, seed=0)
    return model.eval()


def _clicks(n: int):
    pts = [(210, 350), (480, 300), (700, 250), (300, 150)]
    return [pts[i % len(pts)] for i in range(n)]


def bench_offline(model, frames, n_obj: int, warm: int) -> list:
    from sam2_fast.predictors.video import Sam2VideoPredictor

    pred = Sam2VideoPredictor(model)
    state = pred.init_state(frames)
    for i, (x, y) in enumerate(_clicks(n_obj)):
        pred.add_new_points_or_box(state, 0, i + 1, points=[[x, y]], labels=[1])
    times, t0 = [], time.perf_counter()
    for idx, _, _ in pred.propagate_in_video(state, progress=False):
        t1 = time.perf_counter()
        times.append((idx, t1 - t0))
        t0 = t1
    return [dt for idx, dt in times if idx >= warm]


def bench_stream(model, frames, n_obj: int, warm: int) -> list:
    from sam2_fast.api import Sam2

    sam = Sam2(model)
    state = sam.new_video_state()
    prompts = {i + 1: {"points": [xy], "labels": [1]} for i, xy in enumerate(_clicks(n_obj))}
    times = []
    for idx, frame in enumerate(frames):
        t0 = time.perf_counter()
        sam.predict_video_frame(state, frame, prompts if idx == 0 else None)
        times.append((idx, time.perf_counter() - t0))
    return [dt for idx, dt in times if idx >= warm]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames-dir", type=Path, default=DATA,
                    help=f"folder of JPEG frames (default: {DATA})")
    ap.add_argument("--frames", type=int, default=20,
                    help="frames tracked; the first 8 fill the memory bank and are not timed (default 20)")
    ap.add_argument("--objects", type=int, default=1, help="objects tracked, one click each (default 1)")
    ap.add_argument("--image-size", type=int, default=512, help="model input side in pixels (default 512)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--json", type=str, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths = sorted(Path(args.frames_dir).glob("*.jpg"))[: args.frames]
    if len(paths) < args.frames:
        print(f"need {args.frames} frames in {args.frames_dir} (--frames-dir)", file=sys.stderr)
        return 2
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    model = _model(args.image_size)
    warm = model.num_maskmem + 1
    if args.frames <= warm:
        print(f"--frames {args.frames}: the first {warm} frames fill the memory bank and are not "
              f"timed; give at least {warm + 1}", file=sys.stderr)
        return 2
    rows = {}
    with torch.inference_mode():
        for name, fn in (("offline", bench_offline), ("stream", bench_stream)):
            dts = fn(model, frames, args.objects, warm)
            rows[name] = {"median_s": statistics.median(dts), "min_s": min(dts), "n": len(dts)}
            print(f"{name:8s} objects={args.objects} steady frames={len(dts)} "
                  f"median {rows[name]['median_s'] * 1e3:.0f} ms/frame, "
                  f"min {rows[name]['min_s'] * 1e3:.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "torch": torch.__version__,
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
