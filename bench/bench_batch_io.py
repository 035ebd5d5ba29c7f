"""The CPU side of one tracked frame in ``sam2-fast batch``: decode, preprocess, mask writes.

What a batch worker does per frame besides the GPU step, one thread, on the 200 bedroom frames
(960x540): decode (PyAV for ``videos/bedroom.mp4``, Pillow for the JPEG folder, as
``sam2_fast.iter_frames``), preprocess to the model input (PIL bicubic resize + normalize,
``predictors.streaming.preprocess_frame``, 1024 px by default), and write the outputs
(palette PNG and COCO-RLE JSON with the atomic writers of ``sam2_fast.io.masks``) for masks of
1, 4 and 16 elliptical objects (a mask of random pixels would compress unlike real masks).

    python bench/bench_batch_io.py [--frames 200] [--image-size 1024] [--json out.json]

Numbers are per frame, medians over the frames; only comparable on the same machine, quiet.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data"


def _ellipses(h: int, w: int, n: int, rng) -> tuple:
    yy, xx = np.mgrid[0:h, 0:w]
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks, list(range(1, n + 1))


def _timed(fn, n: int) -> list:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from sam2_fast.io.masks import combine_object_masks, rle_frame_record, save_json, save_palette_png
    from sam2_fast.predictors.streaming import iter_frames, preprocess_frame

    rows = {}
    for name, src in (("decode mp4 (PyAV)", DATA / "videos" / "bedroom.mp4"),
                      ("decode JPEG folder (Pillow)", DATA / "bedroom")):
        if not src.exists():
            print(f"missing {src}", file=sys.stderr)
            return 2
        it = iter_frames(str(src))
        frames = []
        dts = _timed(lambda i, frames=frames, it=it: frames.append(next(it)), args.frames)
        rows[name] = {"median_ms": 1e3 * statistics.median(dts), "n": len(dts)}
    h, w = frames[0].shape[:2]
    dts = _timed(lambda i: preprocess_frame(frames[i], args.image_size, torch.device("cpu")), args.frames)
    rows[f"preprocess to {args.image_size} px"] = {"median_ms": 1e3 * statistics.median(dts), "n": len(dts)}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for n_obj in (1, 4, 16):
            masks, ids = _ellipses(h, w, n_obj, rng)
            index = combine_object_masks(masks, ids)
            k = min(args.frames, 50)
            d = Path(tmp)
            dts = _timed(lambda i, d=d, masks=masks, ids=ids:
                         save_palette_png(d / f"{i:05d}.png", combine_object_masks(masks, ids)), k)
            size = (d / "00000.png").stat().st_size
            rows[f"palette PNG, {n_obj} object(s)"] = {"median_ms": 1e3 * statistics.median(dts),
                                                      "bytes": size, "n": k}
            dts = _timed(lambda i, d=d, masks=masks, ids=ids:
                         save_json(d / f"{i:05d}.json", rle_frame_record(i, ids, masks)), k)
            size = (d / "00000.json").stat().st_size
            rows[f"RLE JSON, {n_obj} object(s)"] = {"median_ms": 1e3 * statistics.median(dts),
                                                   "bytes": size, "n": k}
            del index
    for k, v in rows.items():
        extra = f", {v['bytes'] / 1024:.1f} KiB" if "bytes" in v else ""
        print(f"{k:32s} {v['median_ms']:7.2f} ms/frame{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "frame_size": [h, w],
                                               "torch": torch.__version__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
