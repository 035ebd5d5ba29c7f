#!/usr/bin/env python3
"""Automatic mask generator ("segment everything") speed: sam2_fast against the official
``SAM2AutomaticMaskGenerator`` (sam2==1.1.0), in the same process, on the same weights.

Two settings (the issue's targets):

* CPU (``--device cpu``, default without CUDA): tiny at 512 px, ``points_per_side=16``, fp32;
  target: sam2_fast >= 1.5x faster per image.
* CUDA (default with CUDA): large at 1024 px, the official defaults (``points_per_side=32``),
  bf16 (the official under ``torch.autocast(bfloat16)`` as its notebooks run it, sam2_fast as a
  bf16 model); target >= 4x.

Method: one random official-format state dict (``tests/official.py``: every tensor random) is
loaded into both models. Random weights give masks that hardly depend on the point, so both
models carry the tests' rig ``localize_masks`` (blobs around each point, as a trained model
gives): the generators then keep, filter, suppress and encode a realistic number of masks
(reported). Per image: one warm-up call each, then ``--runs`` rounds that alternate
(ours, official, ours, official, ...; the machine may be shared, so both see the same load),
wall time of ``generate`` (CUDA synchronized), median per provider, the ratio of medians (and
each round's ratio), and the load average (``os.getloadavg``) before and after each call. torchvision is not installed
beside the pinned torch: the official's box NMS runs ``sam2_fast.predictors.amg.batched_nms``
(torchvision's semantics, tested against a reference), the rest is the official code.

``--dry``: CPU, tiny at 128 px, ``points_per_side=4``, one small image, one round (seconds; for
``bench/gpu_check.sh --dry``). Results go to ``--json`` after every call.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/official.py: official builder, shim, rig

import numpy as np  # noqa: E402
import torch  # noqa: E402

import common  # noqa: E402

IMAGES = ("truck.jpg", "groceries.jpg", "cars.jpg")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--size", choices=("tiny", "small", "base_plus", "large"),
                   help="default: tiny on CPU, large on CUDA")
    p.add_argument("--version", choices=("2", "2.1"), default="2.1")
    p.add_argument("--image-size", type=int, help="default: 512 on CPU, 1024 on CUDA")
    p.add_argument("--points-per-side", type=int, help="default: 16 on CPU, 32 on CUDA")
    p.add_argument("--images", default=",".join(IMAGES),
                   help="comma-separated names under --data-dir/images (or paths)")
    p.add_argument("--max-side", type=int, default=0, help="shrink images to this longest side (0: as is)")
    p.add_argument("--data-dir", help="folder holding images/ (default: .device, else ../shared/data)")
    p.add_argument("--runs", type=int, default=3, help="timed rounds per image (alternating)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rig", action="store_true", help="plain random weights (few masks survive)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--dry", action="store_true", help="CPU, tiny, 128 px, 4x4 points, one image, one round")
    return p.parse_args(argv)


def load_images(args) -> Dict[str, np.ndarray]:
    from PIL import Image

    out = {}
    data = Path(args.data_dir) if args.data_dir else next(
        (d for d in (HERE.parent / ".device", HERE.parent.parent / "shared" / "data") if (d / "images").is_dir()),
        HERE.parent / ".device")
    for name in [n for n in args.images.split(",") if n]:
        path = Path(name) if Path(name).is_file() else data / "images" / name
        if not path.is_file():  # no data on this machine: a synthetic image (never zeros), dry runs only
            if not args.dry:
                raise SystemExit(f"image {name} not found (looked in {data / 'images'}; --data-dir "
                                 "names the folder holding images/); synthetic images are for --dry only")
            rng = np.random.default_rng(len(out))
            out[name + " (synthetic)"] = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
            continue
        img = Image.open(path).convert("RGB")
        if args.max_side:
            img.thumbnail((args.max_side, args.max_side))
        out[path.name] = np.array(img)
    return out


def build_models(args, device, fast_dtype):
    """(official SAM2Base, sam2_fast Sam2Model) with the same random weights."""
    from official import build_official

    import sam2_fast

    name = f"sam2{'.1' if args.version == '2.1' else ''}_hiera_{args.size}"
    official = build_official(name, image_size=args.image_size, seed=args.seed)
    ours = sam2_fast.build_sam2(name, device="cpu", image_size=args.image_size,
                                backend="torch" if device.type == "cpu" else "auto")
    ours.load_state_dict(official.state_dict(), strict=True)
    return official.to(device).eval(), ours.to(device=device, dtype=fast_dtype).eval()


def official_generator(model, args):
    from official import install_torchvision_shim

    install_torchvision_shim()
    from sam2_fast.predictors import amg

    sys.modules["torchvision.ops.boxes"].batched_nms = amg.batched_nms  # fast stand-in, same maths
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(model, points_per_side=args.points_per_side)
    fs = args.image_size // 16
    gen.predictor._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]  # upstream #138
    return gen


def timed(fn, device):
    load0 = os.getloadavg()[0]
    common.sync(device)
    t0 = time.perf_counter()
    out = fn()
    common.sync(device)
    return out, time.perf_counter() - t0, (load0, os.getloadavg()[0])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.dry:
        args.device, args.size, args.image_size, args.points_per_side = "cpu", "tiny", 128, 4
        args.runs, args.max_side = 1, 256
        args.images = args.images.split(",")[0]
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here (--device cpu or auto runs the CPU variant)")
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    cuda = dev.type == "cuda"
    args.size = args.size or ("large" if cuda else "tiny")
    args.image_size = args.image_size or (1024 if cuda else 512)
    args.points_per_side = args.points_per_side or (32 if cuda else 16)
    fast_dtype = torch.bfloat16 if cuda else torch.float32
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    import sam2_fast

    payload: Dict[str, object] = {
        "env": common.env_info(dev), "loadavg_start": os.getloadavg(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "settings": {"size": args.size, "version": args.version, "image_size": args.image_size,
                     "points_per_side": args.points_per_side, "dtype_official": "autocast bf16" if cuda else "float32",
                     "dtype_fast": str(fast_dtype).replace("torch.", ""), "runs": args.runs,
                     "rig": not args.no_rig, "max_side": args.max_side, "dry": args.dry},
        "runs": [], "images": {},
    }
    images = load_images(args)
    official, ours = build_models(args, dev, fast_dtype)
    if not args.no_rig:
        from official import localize_masks

        localize_masks(official)
        localize_masks(ours)
    gens = {"sam2_fast": sam2_fast.Sam2AutomaticMaskGenerator(ours, points_per_side=args.points_per_side),
            "official": official_generator(official, args)}

    def call(provider, image):
        with (autocast if provider == "official" else contextlib.nullcontext()):
            return gens[provider].generate(image)

    for name, image in images.items():
        rec: Dict[str, object] = {"hw": list(image.shape[:2])}
        times: Dict[str, List[float]] = {"sam2_fast": [], "official": []}
        for provider in ("sam2_fast", "official"):  # warm-up (not timed)
            out, s, _ = timed(lambda p=provider, im=image: call(p, im), dev)
            rec[f"masks_{provider}"] = len(out)
            rec[f"warmup_s_{provider}"] = round(s, 3)
        for r in range(args.runs):
            for provider in ("sam2_fast", "official"):
                out, s, load = timed(lambda p=provider, im=image: call(p, im), dev)
                times[provider].append(s)
                payload["runs"].append({"image": name, "round": r, "provider": provider, "s": round(s, 4),
                                        "masks": len(out), "loadavg": [round(x, 2) for x in load]})
                common.write_json(args.json, payload)
                gc.collect()
        med = {p: statistics.median(v) for p, v in times.items()}
        rec.update({f"median_s_{p}": round(v, 4) for p, v in med.items()})
        rec["x_official"] = round(med["official"] / med["sam2_fast"], 3)
        # each round's official / sam2_fast (the two calls of a round saw about the same load)
        rec["x_official_paired"] = [round(o / f, 3) for f, o in zip(times["sam2_fast"], times["official"])]
        payload["images"][name] = rec
        common.write_json(args.json, payload)
        print(f"{name} {image.shape[1]}x{image.shape[0]}: sam2_fast {med['sam2_fast']:.3f} s, official "
              f"{med['official']:.3f} s (median of {args.runs}), x{rec['x_official']:.2f}; masks "
              f"{rec['masks_sam2_fast']} / {rec['masks_official']}", flush=True)
    ratios = [r["x_official"] for r in payload["images"].values()]
    per_image = {p: statistics.median([r[f"median_s_{p}"] for r in payload["images"].values()])
                 for p in ("sam2_fast", "official")}
    payload["summary"] = {"x_official_median": round(statistics.median(ratios), 3),
                          "x_official_min": round(min(ratios), 3), "median_s_per_image": per_image,
                          "loadavg_end": os.getloadavg()}
    common.write_json(args.json, payload)
    print(f"amg {args.size} {args.image_size}px pps={args.points_per_side} {dev.type}: x_official median "
          f"{payload['summary']['x_official_median']:.2f} (min {payload['summary']['x_official_min']:.2f}); "
          f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
