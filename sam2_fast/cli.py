"""``sam2-fast``: the command line (console script; also ``python -m sam2_fast``).

Subcommands::

    sam2-fast video VIDEO (--checkpoint CKPT | --model NAME) --point OBJ:FRAME:X,Y[:LABEL] ...
                    [--box OBJ:FRAME:X0,Y0,X1,Y1 ...] --out DIR [--format png|rle|both]
                    [--overlay OUT.mp4] [--fps F] [--reverse] [--start-frame N] [--max-frames N]
    sam2-fast image IMAGE (--checkpoint CKPT | --model NAME) [--point X,Y[:LABEL] ...]
                    [--box X0,Y0,X1,Y1 ...] [--multimask] --out DIR
    sam2-fast everything IMAGE (--checkpoint CKPT | --model NAME) --out DIR [--points-per-side N]
                    [--pred-iou-thresh T] [--stability-score-thresh T] [--crop-n-layers N] ...
    sam2-fast info CKPT|NAME [--json]
    sam2-fast convert IN OUT                 # .pt <-> .safetensors, keys unchanged
    sam2-fast checkpoint --random CONFIG OUT [--seed N]

Common flags of ``video``/``image``: ``--device cpu|cuda``, ``--dtype float32|bfloat16|float16``,
``--backend auto|triton|torch``, ``--image-size N``, ``--config NAME``, ``--weights`` (alias of
``--checkpoint``), ``--dry`` (print the resolved config, shapes and device plan; run nothing),
``--quiet``.

Bad input (unknown flags, malformed prompts, coordinates outside the frame, a frame past the
end, a missing/corrupt checkpoint, an unreadable video/image, an unwritable output) exits with
code 2 and one line on stderr, before any output is written. Outputs are staged in a hidden
folder next to ``--out`` and moved into place only when the whole run succeeded.

``video --auto`` tracks everything: the automatic mask generator segments the start frame and
every mask it keeps becomes an object (largest first, ``--max-objects``; generator arguments with
``--amg KEY=VALUE``). ``everything`` writes the generator's masks as COCO-RLE JSON
(``masks.json``), an overlay PNG and ``result.json``.

The video job mirrors the official ``tools/vos_inference.py`` (palette PNG per frame, object
id = palette index) driven by prompts like the official video notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .io import av_errors

PROG = "sam2-fast"
EXIT_BAD_INPUT = 2
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")
_META_KEY = "sam2_fast"  # extra top-level key of our .pt files / safetensors metadata prefix


class CliError(Exception):
    """Bad input to the CLI: reported as one line on stderr with exit code 2."""


# ============================================================================ argument parsing
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sub = self.prog[len(PROG):].strip()
        hint = f"{PROG} {sub} --help" if sub else f"{PROG} --help"
        self.exit(EXIT_BAD_INPUT, f"{PROG}: error: {message} (see {hint})\n")


def _image_size_arg(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v <= 0 or v % 32:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of 32, got {v}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _pos_int(s: str) -> int:
    v = _nonneg_int(s)
    if v == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def _pos_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not v > 0 or not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return v


def _numbers(text: str, n: int, what: str, spec: str) -> List[float]:
    parts = text.split(",")
    if len(parts) != n:
        raise CliError(f"malformed {what} {spec!r}: expected {n} comma-separated numbers")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise CliError(f"malformed {what} {spec!r}: {text!r} is not numbers") from None
    if not all(np.isfinite(vals)):
        raise CliError(f"malformed {what} {spec!r}: coordinates must be finite")
    return vals


def _int_field(text: str, what: str, spec: str, lo: int, hi: Optional[int] = None) -> int:
    try:
        v = int(text)
    except ValueError:
        raise CliError(f"malformed {what} {spec!r}: {text!r} is not an integer") from None
    if v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise CliError(f"malformed {what} {spec!r}: {v} must be in {rng}")
    return v


@dataclass
class VideoPrompt:
    """Prompts of one object on one frame (pixel coordinates of the video)."""

    obj_id: int
    frame: int
    points: List[Tuple[float, float]] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    box: Optional[Tuple[float, float, float, float]] = None


def parse_point(spec: str, with_obj_frame: bool) -> Tuple[Optional[int], Optional[int], Tuple[float, float], int]:
    """``OBJ:FRAME:X,Y[:LABEL]`` (video) or ``X,Y[:LABEL]`` (image) -> (obj, frame, (x, y), label).
    LABEL is 1 (foreground, default) or 0 (background). Raises CliError when malformed."""
    fmt = "OBJ:FRAME:X,Y[:LABEL]" if with_obj_frame else "X,Y[:LABEL]"
    parts = spec.split(":")
    n_head = 2 if with_obj_frame else 0
    if len(parts) not in (n_head + 1, n_head + 2):
        raise CliError(f"malformed --point {spec!r}: expected {fmt}")
    obj = _int_field(parts[0], "--point", spec, 1, 255) if with_obj_frame else None
    frame = _int_field(parts[1], "--point", spec, 0) if with_obj_frame else None
    x, y = _numbers(parts[n_head], 2, "--point", spec)
    label = 1
    if len(parts) == n_head + 2:
        if parts[-1] not in ("0", "1"):
            raise CliError(f"malformed --point {spec!r}: LABEL must be 1 (foreground) or 0 (background)")
        label = int(parts[-1])
    return obj, frame, (x, y), label


def parse_box(spec: str, with_obj_frame: bool) -> Tuple[Optional[int], Optional[int], Tuple[float, ...]]:
    """``OBJ:FRAME:X0,Y0,X1,Y1`` (video) or ``X0,Y0,X1,Y1`` (image) -> (obj, frame, box).
    Raises CliError when malformed or when x1 < x0 or y1 < y0."""
    fmt = "OBJ:FRAME:X0,Y0,X1,Y1" if with_obj_frame else "X0,Y0,X1,Y1"
    parts = spec.split(":")
    if len(parts) != (3 if with_obj_frame else 1):
        raise CliError(f"malformed --box {spec!r}: expected {fmt}")
    obj = _int_field(parts[0], "--box", spec, 1, 255) if with_obj_frame else None
    frame = _int_field(parts[1], "--box", spec, 0) if with_obj_frame else None
    box = tuple(_numbers(parts[-1], 4, "--box", spec))
    if box[2] < box[0] or box[3] < box[1]:
        raise CliError(f"malformed --box {spec!r}: need X1 >= X0 and Y1 >= Y0")
    return obj, frame, box


def _check_inside(xy: Sequence[float], width: int, height: int, what: str) -> None:
    for i in range(0, len(xy), 2):
        x, y = xy[i], xy[i + 1]
        if not (0 <= x <= width and 0 <= y <= height):
            raise CliError(f"{what} ({x:g}, {y:g}) is outside the {width}x{height} frame "
                           f"(x in [0, {width}], y in [0, {height}])")


def group_video_prompts(points: Sequence[str], boxes: Sequence[str]) -> List[VideoPrompt]:
    """Parse ``--point``/``--box`` specs and group them per (frame, object), sorted by frame
    then object id. Raises CliError (malformed spec, two boxes for one object on one frame,
    no prompt at all)."""
    groups: Dict[Tuple[int, int], VideoPrompt] = {}
    for spec in points:
        obj, frame, xy, label = parse_point(spec, True)
        g = groups.setdefault((frame, obj), VideoPrompt(obj, frame))
        g.points.append(xy)
        g.labels.append(label)
    for spec in boxes:
        obj, frame, box = parse_box(spec, True)
        g = groups.setdefault((frame, obj), VideoPrompt(obj, frame))
        if g.box is not None:
            raise CliError(f"two --box prompts for object {obj} on frame {frame}")
        g.box = box
    if not groups:
        raise CliError("give at least one --point OBJ:FRAME:X,Y or --box OBJ:FRAME:X0,Y0,X1,Y1")
    return [groups[k] for k in sorted(groups)]


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", "--weights", dest="checkpoint", metavar="CKPT",
                     help="official .pt or .safetensors checkpoint (variant detected)")
    src.add_argument("--model", metavar="NAME",
                     help="published model name (sam2_hiera_tiny ... sam2.1_hiera_large): the "
                          "official file, downloaded once into $SAM2_FAST_CACHE "
                          "(default ~/.cache/sam2_fast)")
    g.add_argument("--config", metavar="NAME", help="force a config (default: detect from the checkpoint)")
    g.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available, else cpu")
    g.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    g.add_argument("--backend", choices=("auto", "triton", "torch"), default="auto",
                   help="kernel backend (auto: Triton on CUDA, torch elsewhere)")
    g.add_argument("--image-size", type=_image_size_arg, metavar="N",
                   help="model input side in pixels, a multiple of 32 (default 1024)")
    g.add_argument("--dry", action="store_true",
                   help="print the resolved config, shapes and device plan, then exit")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar / summary")


def build_parser() -> argparse.ArgumentParser:
    """The ``sam2-fast`` argument parser (argparse; errors exit 2 with one line)."""
    from . import __version__

    parser = _Parser(prog=PROG, description="SAM 2 / SAM 2.1 segmentation and video tracking "
                                            "(sam2_fast runtime).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    v = sub.add_parser("video", help="track objects through a video; write masks and an overlay",
                       description="Track objects through a video (.mp4 or a folder of JPEG/PNG "
                                   "frames) from point/box prompts; write one DAVIS palette PNG "
                                   "per frame (object id = palette index).")
    v.add_argument("video", metavar="VIDEO", help=".mp4 (any PyAV-decodable file) or a folder of frames")
    v.add_argument("--point", action="append", default=[], metavar="OBJ:FRAME:X,Y[:LABEL]",
                   help="click on object OBJ (1..255) at pixel X,Y of frame FRAME; LABEL 1 "
                        "foreground (default) or 0 background; repeatable")
    v.add_argument("--box", action="append", default=[], metavar="OBJ:FRAME:X0,Y0,X1,Y1",
                   help="box around object OBJ on frame FRAME (pixels); repeatable")
    v.add_argument("--out", required=True, metavar="DIR", help="output folder for the masks")
    v.add_argument("--format", choices=("png", "rle", "both"), default="png",
                   help="png: palette PNG per frame (default); rle: COCO-RLE JSON per frame; both")
    v.add_argument("--overlay", metavar="OUT.mp4", help="also write the video with coloured masks")
    v.add_argument("--fps", type=_pos_float, help="overlay frame rate (default: the input's, or 24)")
    v.add_argument("--reverse", action="store_true", help="track towards frame 0")
    v.add_argument("--start-frame", type=_nonneg_int, metavar="N",
                   help="first frame to track from (default: the first prompted frame)")
    v.add_argument("--max-frames", type=_pos_int, metavar="N",
                   help="track at most N frames (including the start frame)")
    v.add_argument("--offload-video", action="store_true",
                   help="keep the preprocessed frames in CPU memory (saves GPU memory)")
    v.add_argument("--auto", action="store_true",
                   help="track everything: the automatic mask generator segments the start frame "
                        "and each mask it keeps becomes an object (no --point/--box)")
    v.add_argument("--max-objects", type=_pos_int, metavar="N",
                   help="with --auto: the N largest masks (default and limit 255, the palette size)")
    v.add_argument("--amg", action="append", default=[], metavar="KEY=VALUE",
                   help="with --auto: a mask generator argument, e.g. points_per_side=16; repeatable")
    _add_model_args(v)

    im = sub.add_parser("image", help="segment one image from points/boxes",
                        description="Segment one image: mask PNGs, an overlay PNG and a JSON with "
                                    "the IoU predictions and object score.")
    im.add_argument("image", metavar="IMAGE")
    im.add_argument("--point", action="append", default=[], metavar="X,Y[:LABEL]",
                    help="click at pixel X,Y; LABEL 1 foreground (default) or 0 background")
    im.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1",
                    help="box in pixels; several boxes (without points) segment several objects")
    im.add_argument("--multimask", action="store_true", help="3 candidate masks per object")
    im.add_argument("--out", required=True, metavar="DIR")
    _add_model_args(im)

    i = sub.add_parser("info", help="describe a checkpoint (variant, version, parameters, dtype)")
    i.add_argument("checkpoint", metavar="CKPT|NAME",
                   help="a checkpoint file, or a published model name (shows URL and cache state)")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    c = sub.add_parser("convert", help="convert a checkpoint .pt <-> .safetensors (keys unchanged)")
    c.add_argument("src", metavar="IN")
    c.add_argument("dst", metavar="OUT")

    k = sub.add_parser("checkpoint", help="write an official-format checkpoint with random weights",
                       description="Write an official-format checkpoint with random (seeded) "
                                   "weights, for benchmarks and tests without the real files. "
                                   "Everything made from it is marked as such.")
    k.add_argument("--random", action="store_true", required=True,
                   help="random weights (the only mode)")
    k.add_argument("config", metavar="CONFIG", help="sam2_hiera_tiny ... sam2.1_hiera_large")
    k.add_argument("out", metavar="OUT", help=".pt (official {'model': sd}) or .safetensors")
    k.add_argument("--seed", type=_nonneg_int, default=0)
    _add_everything_parser(sub)
    return parser


# ============================================================================ checkpoints
@dataclass
class CheckpointInfo:
    """What :func:`inspect_checkpoint` finds without loading tensor data."""

    path: Path
    format: str
    num_bytes: int
    shapes: Dict[str, Tuple[Tuple[int, ...], str]]
    meta: Dict[str, object]

    @property
    def random_weights(self) -> bool:
        return bool(self.meta.get("random_weights"))


def _dtype_name(d) -> str:
    s = str(d).replace("torch.", "")
    return {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
            "I64": "int64", "I32": "int32"}.get(s, s)


def inspect_checkpoint(path: os.PathLike) -> CheckpointInfo:
    """Keys, shapes, dtypes and sam2_fast metadata of a checkpoint, reading only headers
    (``torch.load(mmap=True)`` / ``safetensors.safe_open``).

    Raises:
        CheckpointError: missing, truncated, corrupt or not a state dict (the message of
            :func:`sam2_fast.checkpoint.load_state_dict`).
    """
    import torch

    from safetensors import SafetensorError

    from .checkpoint import CheckpointError, load_state_dict

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}" + (" (a folder)" if path.is_dir() else ""))
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"
    shapes: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    meta: Dict[str, object] = {}
    try:
        if is_zip or path.suffix.lower() in (".pt", ".pth"):
            fmt = "pt"
            obj = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
            sd = obj.get("model", obj) if isinstance(obj, dict) else None
            if isinstance(obj, dict) and isinstance(obj.get(_META_KEY), dict):
                meta = dict(obj[_META_KEY])
            if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise ValueError("not a state dict")
            shapes = {k: (tuple(v.shape), _dtype_name(v.dtype)) for k, v in sd.items()}
        else:
            fmt = "safetensors"
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                for k in f.keys():
                    sl = f.get_slice(k)
                    shapes[k] = (tuple(sl.get_shape()), _dtype_name(sl.get_dtype()))
                md = f.metadata() or {}
            if md.get(f"{_META_KEY}.random_weights") == "true":
                meta = {"random_weights": True, "seed": int(md.get(f"{_META_KEY}.seed", 0)),
                        "config": md.get(f"{_META_KEY}.config")}
            if not shapes:
                raise ValueError("empty")
    except CheckpointError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError):
        load_state_dict(path)  # raises the readable CheckpointError
        raise CheckpointError(f"cannot read checkpoint {path}")
    return CheckpointInfo(path, fmt, path.stat().st_size, shapes, meta)


def _detect(info: CheckpointInfo):
    import torch

    from .checkpoint import detect_config

    fake = {k: torch.empty(s, device="meta") for k, (s, _) in info.shapes.items()}
    return detect_config(fake)


def save_checkpoint(state_dict, path: os.PathLike, meta: Optional[Dict[str, object]] = None) -> Path:
    """Write a state dict in the official layout with optional sam2_fast metadata: ``.pt`` as
    ``{"model": sd, "sam2_fast": meta}`` (the official loader reads only ``"model"``), or
    ``.safetensors`` with the same keys and ``sam2_fast.*`` header metadata. Written to a temp
    file and renamed. Raises CliError for other suffixes, OSError when it cannot be written."""
    import torch

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CliError(f"unknown checkpoint format {path.name!r}: use .pt or .safetensors")
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    tmp = path.with_name(f".{path.name}.partial")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            md = {f"{_META_KEY}.{k}": ("true" if v is True else str(v)) for k, v in (meta or {}).items()}
            save_file(sd, str(tmp), metadata=md or None)
        else:
            obj = {"model": sd}
            if meta:
                obj[_META_KEY] = dict(meta)
            torch.save(obj, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _resolve_checkpoint(args) -> Path:
    from . import hub

    if args.model:
        name = hub.canonical_name(args.model)
        if args.dry and not hub.cached_path(name).is_file():
            return hub.cached_path(name)
        return hub.fetch_checkpoint(name, progress=not args.quiet)
    if not args.checkpoint:
        raise CliError("give --checkpoint CKPT (alias --weights) or --model NAME")
    p = Path(args.checkpoint)
    if not p.is_file():
        raise CliError(f"checkpoint not found: {p}")
    return p


def _device(args) -> str:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: CUDA is not available on this machine")
    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _model_plan(args, ckpt: Path) -> Tuple[object, Optional[CheckpointInfo]]:
    """(config at the requested image size, checkpoint info or None when not yet downloaded)."""
    from .config import get_config

    info = inspect_checkpoint(ckpt) if ckpt.is_file() else None
    if args.config:
        cfg = get_config(args.config)
    elif info is not None:
        cfg = _detect(info)
    else:
        from . import hub

        cfg = get_config(hub.canonical_name(args.model))
    if args.image_size:
        cfg = cfg.with_image_size(args.image_size)
    return cfg, info


def _warn(msg: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {msg}\n")


def _print_plan(lines: List[Tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")


def _device_plan(args, cfg) -> List[Tuple[str, object]]:
    import torch

    from .kernels._backend import resolve_backend

    dev = _device(args)
    backend = resolve_backend(args.backend, torch.device(dev))
    s = cfg.image_size
    return [
        ("config", f"{cfg.name} (SAM {cfg.version}, {cfg.variant})"),
        ("image_size", s),
        ("device", dev + ("" if args.device else " (auto)")),
        ("dtype", args.dtype),
        ("backend", f"{backend} (requested {args.backend})"),
        ("backbone features", f"(256, {s // 4}, {s // 4}) (256, {s // 8}, {s // 8}) "
                              f"(256, {s // 16}, {s // 16})"),
        ("low-res masks", f"({s // 4}, {s // 4}) logits per object"),
    ]


# ============================================================================ staging outputs
class Staging:
    """A hidden folder next to the output folder collecting all outputs of one run; on
    :meth:`commit` its files move into the output folder (and extra targets such as the
    overlay move to their own paths); on :meth:`discard` everything is deleted.

    Raises CliError when the output location cannot be created or written.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        if out_dir.exists() and not out_dir.is_dir():
            raise CliError(f"cannot write to output directory {out_dir}: it is a file")
        parent = out_dir.absolute().parent
        probe = parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise CliError(f"cannot write to output directory {out_dir}: {probe} is not a folder")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
        except OSError as e:
            raise CliError(f"cannot write to output directory {out_dir}: {e.strerror or e}") from None
        self.extra: Dict[str, Path] = {}

    def path(self, name: str) -> Path:
        return self.dir / name

    def add_extra(self, target: Path) -> Path:
        """Stage a file whose final place is ``target`` (outside the output folder perhaps)."""
        name = f"_extra{len(self.extra)}{target.suffix}"
        self.extra[name] = target
        return self.dir / name

    def commit(self) -> None:
        extras = {self.dir / n: t for n, t in self.extra.items()}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(self.dir.iterdir()):
            if f in extras:
                continue
            os.replace(f, self.out_dir / f.name)
        for f, target in extras.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(f), str(target))
        shutil.rmtree(self.dir, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _check_output_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise CliError(f"{what} {path} is a folder")
    parent = path.absolute().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise CliError(f"cannot write {what} {path}: {probe} is not a writable folder")


# ============================================================================ video input
@dataclass
class VideoSource:
    """A video: its frames can be read by index range."""

    path: Path
    kind: str  # "folder" | "file"
    num_frames: int
    width: int
    height: int
    fps: Optional[float]
    frame_files: Optional[List[str]] = None

    def frame_name(self, idx: int) -> str:
        if self.frame_files is not None:
            return os.path.splitext(os.path.basename(self.frame_files[idx]))[0]
        return f"{idx:05d}"


def open_video(path_str: str) -> VideoSource:
    """Probe a video folder or file (frame count, size, fps) without decoding it all.
    Raises CliError for a missing/empty folder or an unreadable file."""
    from PIL import Image

    from .io.frames import list_frame_files

    path = Path(path_str)
    if path.is_dir():
        try:
            files = list_frame_files(path)
        except ValueError as e:
            raise CliError(str(e)) from None
        try:
            with Image.open(files[0]) as im:
                w, h = im.size
        except (OSError, ValueError) as e:
            raise CliError(f"cannot read video frame {files[0]}: {e}") from None
        return VideoSource(path, "folder", len(files), w, h, None, files)
    if not path.exists():
        raise CliError(f"video not found: {path}")
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        raise CliError(f"{path} is a single image: pass the folder of frames (or use `{PROG} image`)")
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise CliError(f"cannot read video {path}: no video stream")
            st = c.streams.video[0]
            n = int(st.frames)
            if n <= 0:  # container without a frame count: count the packets (no decoding)
                n = sum(1 for pkt in c.demux(st) if pkt.size)
            if n <= 0:
                raise CliError(f"cannot read video {path}: no frames")
            rate = st.average_rate or st.guessed_rate
            w, h = st.codec_context.width, st.codec_context.height
            if not w or not h:
                raise CliError(f"cannot read video {path}: no frame size")
    except CliError:
        raise
    except av_errors() as e:
        raise CliError(f"cannot read video {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return VideoSource(path, "file", n, int(w), int(h), float(rate) if rate else None)


def read_frames(src: VideoSource, lo: int, hi: Optional[int]) -> List[np.ndarray]:
    """RGB uint8 frames lo..hi (inclusive; None = to the end) of a video. Raises CliError for
    unreadable frames, or frames of differing sizes."""
    from PIL import Image

    frames: List[np.ndarray] = []
    if src.kind == "folder":
        hi = src.num_frames - 1 if hi is None else hi
        for f in src.frame_files[lo:hi + 1]:
            try:
                with Image.open(f) as im:
                    frames.append(np.asarray(im.convert("RGB")))
            except (OSError, ValueError) as e:
                raise CliError(f"cannot read video frame {f}: {e}") from None
    else:
        import av

        try:
            with av.open(str(src.path)) as c:
                for i, fr in enumerate(c.decode(video=0)):
                    if i < lo:
                        continue
                    frames.append(fr.to_ndarray(format="rgb24"))
                    if hi is not None and i >= hi:
                        break
        except av_errors() as e:
            raise CliError(f"cannot decode video {src.path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    for i, f in enumerate(frames):
        if f.shape[:2] != (src.height, src.width):
            raise CliError(f"video frame {lo + i} is {f.shape[1]}x{f.shape[0]}, frame 0 is "
                           f"{src.width}x{src.height}")
    return frames


def _processing_range(n: int, start: int, max_frames: Optional[int], reverse: bool) -> Tuple[int, int]:
    """Inclusive (first, last) frame indices processed (first <= last)."""
    if reverse:
        lo = 0 if max_frames is None else max(start - max_frames + 1, 0)
        return lo, start
    hi = n - 1 if max_frames is None else min(start + max_frames - 1, n - 1)
    return start, hi


# ============================================================================ commands
def cmd_video(args) -> int:
    """``sam2-fast video``: prompts -> masks for every tracked frame (+ overlay)."""
    from .io.masks import (RANDOM_WEIGHTS_NOTE, VideoWriter, combine_object_masks, overlay_masks,
                           rle_frame_record, save_json, save_palette_png)

    auto = _auto_video_args(args)
    prompts = [] if auto else group_video_prompts(args.point, args.box)
    ckpt = _resolve_checkpoint(args)
    src = open_video(args.video)
    prompt_frames = [args.start_frame or 0] if auto else [p.frame for p in prompts]
    start = args.start_frame if args.start_frame is not None else min(prompt_frames)
    need_hi = max(prompt_frames + [start])
    if need_hi >= src.num_frames:
        bad = "--start-frame" if start == need_hi and args.start_frame is not None else "prompt frame"
        raise CliError(f"{bad} {need_hi} is past the end: the video has {src.num_frames} frames "
                       f"(0..{src.num_frames - 1})")
    for p in prompts:
        for xy in p.points:
            _check_inside(xy, src.width, src.height, f"--point of object {p.obj_id} on frame {p.frame}")
        if p.box is not None:
            _check_inside(p.box, src.width, src.height, f"--box of object {p.obj_id} on frame {p.frame}")
    overlay = Path(args.overlay) if args.overlay else None
    if overlay is not None:
        if overlay.suffix.lower() not in VIDEO_EXTENSIONS:
            raise CliError(f"--overlay {overlay}: use a video file name ({', '.join(VIDEO_EXTENSIONS)})")
        _check_output_file(overlay, "--overlay")
    out_dir = Path(args.out)
    cfg, info = _model_plan(args, ckpt)

    # frames to load: the processed range plus every prompted frame
    n_known = src.num_frames
    first, last = _processing_range(n_known, start, args.max_frames, args.reverse)
    lo = min([first] + prompt_frames)
    if args.reverse and lo > 0:
        lo -= 1  # the official skips reverse tracking that starts at (local) frame 0
    hi = max([last] + prompt_frames)

    if args.dry:
        n_proc = last - first + 1
        s = cfg.image_size
        plan = [("checkpoint", f"{ckpt}" + ("" if info else " (not downloaded yet)")
                 + (" [RANDOM WEIGHTS]" if info and info.random_weights else "")),
                *_device_plan(args, cfg),
                ("video", f"{src.path} ({src.kind}, {n_known} frames, "
                          f"{src.width}x{src.height})"),
                ("frames", f"{first}..{last} ({'reverse' if args.reverse else 'forward'}, "
                           f"{n_proc} frames; loads {lo}..{hi})"),
                ("model input", f"(N, 3, {s}, {s}) float32 frames"),
                ("objects", ", ".join(sorted({str(p.obj_id) for p in prompts}, key=int))),
                ("prompts", "; ".join(f"obj {p.obj_id} frame {p.frame}: {len(p.points)} point(s)"
                                      + (" + box" if p.box else "") for p in prompts)),
                ("masks per frame", f"({len({p.obj_id for p in prompts})}, 1, {src.height}, {src.width}) logits"),
                ("output", f"{out_dir} ({args.format})" + (f", overlay {overlay}" if overlay else ""))]
        if auto:  # objects found at run time
            plan[-4:-1] = [("objects", f"--auto: the automatic mask generator on frame {start}, the "
                                       f"{auto['max_objects']} largest masks at most ({auto['kwargs'] or 'defaults'})")]
        _print_plan(plan)
        return 0

    staging = Staging(out_dir)
    ok = False
    try:
        frames = read_frames(src, lo, hi)
        if lo + len(frames) <= need_hi:
            raise CliError(f"frame {need_hi} is past the end: {src.path} decoded to "
                           f"{lo + len(frames)} frames")
        last = min(last, lo + len(frames) - 1)
        random_note = None
        if info is not None and info.random_weights:
            random_note = RANDOM_WEIGHTS_NOTE
            _warn(f"{ckpt} holds random weights: the masks are meaningless")

        from .checkpoint import CheckpointError
        from .predictors.video import build_sam2_video_predictor

        try:
            predictor = build_sam2_video_predictor(args.config, str(ckpt), device=_device(args),
                                                   dtype=args.dtype, image_size=args.image_size,
                                                   backend=args.backend)
        except CheckpointError as e:
            raise CliError(str(e)) from None
        t0 = time.perf_counter()
        try:
            state = predictor.init_state(frames, offload_video_to_cpu=args.offload_video)
        except ValueError as e:
            raise CliError(str(e)) from None
        for p in prompts:
            pts = np.array(p.points, dtype=np.float32) if p.points else None
            lbs = np.array(p.labels, dtype=np.int32) if p.points else None
            predictor.add_new_points_or_box(state, p.frame - lo, p.obj_id, points=pts, labels=lbs,
                                            box=None if p.box is None else np.array(p.box, np.float32))
        if auto:
            prompts = _add_auto_objects(predictor, state, frames[start - lo], start, lo, auto)
        fps = args.fps or src.fps or 24.0
        writer = None
        if overlay is not None:
            writer = VideoWriter(staging.add_extra(overlay), src.width, src.height, fps=fps,
                                 metadata={"comment": random_note} if random_note else None)
        from tqdm.auto import tqdm

        n_proc = last - first + 1
        write_png = args.format in ("png", "both")
        write_rle = args.format in ("rle", "both")
        done = 0
        t_track = time.perf_counter()
        try:
            with tqdm(total=n_proc, unit="frame", desc="tracking", disable=args.quiet,
                      file=sys.stderr, dynamic_ncols=True) as bar:
                gen = predictor.propagate_in_video(state, start_frame_idx=start - lo,
                                                   max_frame_num_to_track=last - first,
                                                   reverse=args.reverse)
                for local_idx, obj_ids, logits in gen:
                    idx = local_idx + lo
                    masks = (logits > 0).cpu().numpy()[:, 0]
                    name = src.frame_name(idx)
                    index_mask = combine_object_masks(masks, [int(o) for o in obj_ids])
                    if write_png:
                        save_palette_png(staging.path(f"{name}.png"), index_mask, note=random_note)
                    if write_rle:
                        save_json(staging.path(f"{name}.json"),
                                  rle_frame_record(idx, [int(o) for o in obj_ids], masks, name,
                                                   note=random_note))
                    if writer is not None:
                        writer.write(overlay_masks(frames[idx - lo], index_mask,
                                                   banner="RANDOM WEIGHTS" if random_note else None))
                    done += 1
                    bar.update(1)
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        wall = time.perf_counter() - t0
        track_s = time.perf_counter() - t_track
        manifest = {
            "command": "video", "video": str(src.path), "checkpoint": str(ckpt),
            "config": cfg.name, "image_size": cfg.image_size, "device": str(predictor.device),
            "dtype": args.dtype, "backend": args.backend, "random_weights": bool(random_note),
            "frames": [first, last], "reverse": args.reverse, "num_frames_written": done,
            "format": args.format, "overlay": str(overlay) if overlay else None,
            "prompts": [{"obj_id": p.obj_id, "frame": p.frame, "points": p.points,
                         "labels": p.labels, "box": p.box} for p in prompts],
            "wall_s": round(wall, 3), "tracking_s": round(track_s, 3),
            "frames_per_s": round(done / track_s, 3) if track_s > 0 else None,
        }
        if auto:
            manifest["auto"] = {"generator": auto["kwargs"], "max_objects": auto["max_objects"],
                                "objects": len(prompts)}
        if random_note:
            manifest["note"] = random_note
        save_json(staging.path("run.json"), manifest)
        staging.commit()
        ok = True
    finally:
        if not ok:
            staging.discard()
    if not args.quiet:
        print(f"{done} frames in {wall:.1f} s ({done / track_s:.2f} frames/s tracking) -> {out_dir}"
              + (f", overlay {overlay}" if overlay else ""))
    return 0


def cmd_image(args) -> int:
    """``sam2-fast image``: points/boxes -> mask PNGs, overlay PNG, result JSON."""
    from PIL import Image

    from .io.masks import RANDOM_WEIGHTS_NOTE, combine_object_masks, overlay_masks, save_json, save_png

    pts, lbs = [], []
    for spec in args.point:
        _, _, xy, label = parse_point(spec, False)
        pts.append(xy)
        lbs.append(label)
    boxes = [parse_box(spec, False)[2] for spec in args.box]
    if not pts and not boxes:
        raise CliError("give at least one --point X,Y or --box X0,Y0,X1,Y1")
    if pts and len(boxes) > 1:
        raise CliError("points can be combined with one --box only (several boxes = several objects)")
    ckpt = _resolve_checkpoint(args)
    path = Path(args.image)
    if not path.is_file():
        raise CliError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            image = np.array(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read image {path}: {e}") from None
    h, w = image.shape[:2]
    for xy in pts:
        _check_inside(xy, w, h, "--point")
    for b in boxes:
        _check_inside(b, w, h, "--box")
    cfg, info = _model_plan(args, ckpt)
    out_dir = Path(args.out)
    n_obj = max(1, len(boxes))
    c = 3 if args.multimask else 1
    if args.dry:
        _print_plan([("checkpoint", f"{ckpt}" + ("" if info else " (not downloaded yet)")
                      + (" [RANDOM WEIGHTS]" if info and info.random_weights else "")),
                     *_device_plan(args, cfg),
                     ("image", f"{path} ({w}x{h})"),
                     ("model input", f"(1, 3, {cfg.image_size}, {cfg.image_size}) float32"),
                     ("prompts", f"{len(pts)} point(s), {len(boxes)} box(es)"),
                     ("masks", f"({n_obj}, {c}, {h}, {w}) bool" if n_obj > 1 else f"({c}, {h}, {w}) bool"),
                     ("output", str(out_dir))])
        return 0
    staging = Staging(out_dir)
    ok = False
    try:
        random_note = RANDOM_WEIGHTS_NOTE if info is not None and info.random_weights else None
        if random_note:
            _warn(f"{ckpt} holds random weights: the masks are meaningless")
        from .build import build_sam2
        from .checkpoint import CheckpointError
        from .predictors.image import Sam2ImagePredictor

        try:
            model = build_sam2(args.config, str(ckpt), device=_device(args), dtype=args.dtype,
                               image_size=args.image_size, backend=args.backend)
        except CheckpointError as e:
            raise CliError(str(e)) from None
        t0 = time.perf_counter()
        pred = Sam2ImagePredictor(model)
        pred.set_image(image)
        box_arg = None
        if boxes:
            box_arg = np.array(boxes[0] if len(boxes) == 1 else boxes, dtype=np.float32)
        masks, ious, _ = pred.predict(np.array(pts, np.float32) if pts else None,
                                      np.array(lbs, np.int32) if pts else None, box_arg,
                                      multimask_output=args.multimask)
        obj_scores = pred.last_object_score_logits.float().cpu().numpy().reshape(-1)
        wall = time.perf_counter() - t0
        if masks.ndim == 3:
            masks, ious = masks[None], ious[None]
        files, best = [], []
        for b in range(masks.shape[0]):
            for k in range(masks.shape[1]):
                name = f"mask_{k}.png" if masks.shape[0] == 1 else f"mask_{b}_{k}.png"
                save_png(staging.path(name), masks[b, k], note=random_note)
                files.append(name)
            best.append(int(np.argmax(ious[b])))
        index_mask = combine_object_masks(np.stack([masks[b, best[b]] for b in range(masks.shape[0])]),
                                          list(range(1, masks.shape[0] + 1)))
        save_png(staging.path("overlay.png"),
                 overlay_masks(image, index_mask, banner="RANDOM WEIGHTS" if random_note else None),
                 note=random_note)
        result = {
            "command": "image", "image": str(path), "checkpoint": str(ckpt), "config": cfg.name,
            "image_size": cfg.image_size, "device": str(model.device), "dtype": args.dtype,
            "random_weights": bool(random_note), "height": h, "width": w,
            "points": pts, "labels": lbs, "boxes": boxes, "multimask": args.multimask,
            "objects": [{"masks": files[b * masks.shape[1]:(b + 1) * masks.shape[1]],
                         "iou_predictions": [float(v) for v in ious[b]],
                         "best_mask": best[b], "object_score_logit": float(obj_scores[b]),
                         "area": [int(masks[b, k].sum()) for k in range(masks.shape[1])]}
                        for b in range(masks.shape[0])],
            "wall_s": round(wall, 3),
        }
        if random_note:
            result["note"] = random_note
        save_json(staging.path("result.json"), result)
        staging.commit()
        ok = True
    finally:
        if not ok:
            staging.discard()
    if not args.quiet:
        o = result["objects"][0]
        print(f"{len(files)} mask(s) -> {out_dir} (IoU {', '.join(f'{v:.3f}' for v in o['iou_predictions'])}; "
              f"object score {o['object_score_logit']:.3f})")
    return 0


def cmd_info(args) -> int:
    """``sam2-fast info``: variant, version, parameter count, dtype of a checkpoint, or the URL
    and cache state of a published model name."""
    from . import hub
    from .checkpoint import CheckpointError

    path = Path(args.checkpoint)
    if not path.exists():
        try:
            name = hub.canonical_name(args.checkpoint)
        except hub.HubError:
            raise CliError(f"checkpoint not found: {path} (and not a published model name: "
                           f"{', '.join(hub.MODEL_URLS)})") from None
        cached = hub.cached_path(name)
        if cached.is_file():
            path = cached
        else:
            lo, hi = hub.expected_size_range(name)
            rec = {"model": name, "url": hub.model_url(name), "cache_path": str(cached),
                   "cached": False, "parameters": hub.MODEL_NUMEL[name], "expected_bytes": [lo, hi]}
            if args.json:
                print(json.dumps(rec))
            else:
                _print_plan([(k, v) for k, v in rec.items()])
            return 0
    info = inspect_checkpoint(path)
    try:
        cfg = _detect(info)
        variant, version, name = cfg.variant, cfg.version, cfg.name
    except CheckpointError as e:
        variant = version = name = None
        _warn(str(e))
    numel = sum(int(np.prod(s)) for s, _ in info.shapes.values())
    dtypes = sorted({d for _, d in info.shapes.values()})
    rec = {"path": str(info.path), "format": info.format, "bytes": info.num_bytes,
           "config": name, "variant": variant, "version": version, "parameters": numel,
           "tensors": len(info.shapes), "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
           "random_weights": info.random_weights}
    if info.random_weights:
        rec["seed"] = info.meta.get("seed")
    if args.json:
        print(json.dumps(rec))
    else:
        _print_plan([(k, v) for k, v in rec.items()])
    return 0


def cmd_convert(args) -> int:
    """``sam2-fast convert IN OUT``: .pt <-> .safetensors with the same keys (and metadata)."""
    from .checkpoint import load_state_dict

    src, dst = Path(args.src), Path(args.dst)
    if dst.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise CliError(f"unknown checkpoint format {dst.name!r}: use .pt or .safetensors")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise CliError("IN and OUT are the same file")
    info = inspect_checkpoint(src)
    _check_output_file(dst, "OUT")
    sd = load_state_dict(src)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(sd, dst, info.meta or None)
    except OSError as e:
        raise CliError(f"cannot write {dst}: {e.strerror or e}") from None
    print(f"{src} -> {dst} ({len(sd)} tensors)")
    return 0


def cmd_checkpoint(args) -> int:
    """``sam2-fast checkpoint --random CONFIG OUT``: official-format random weights."""
    import torch

    from .checkpoint import randomize_
    from .config import get_config
    from .model.sam2_model import Sam2Model

    cfg = get_config(args.config)
    out = Path(args.out)
    if out.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise CliError(f"unknown checkpoint format {out.name!r}: use .pt or .safetensors")
    _check_output_file(out, "OUT")
    with torch.device("cpu"):
        model = Sam2Model(cfg, backend="torch")
    randomize_(model, seed=args.seed)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model.state_dict(), out,
                        {"random_weights": True, "seed": args.seed, "config": cfg.name})
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"wrote {out}: {cfg.name} with RANDOM weights (seed {args.seed}); for tests and "
          f"benchmarks only")
    return 0


# ============================================================================ segment everything
_AMG_FLAGS = (  # (flag, generator argument, type, default, help)
    ("--points-per-side", "points_per_side", int, 32, "points along each side of the grid"),
    ("--points-per-batch", "points_per_batch", int, 64, "points through the mask decoder at once"),
    ("--pred-iou-thresh", "pred_iou_thresh", float, 0.8, "keep masks with predicted IoU above this"),
    ("--stability-score-thresh", "stability_score_thresh", float, 0.95,
     "keep masks with stability score at least this"),
    ("--stability-score-offset", "stability_score_offset", float, 1.0, "logit offset of the stability score"),
    ("--mask-threshold", "mask_threshold", float, 0.0, "logit threshold of the binary masks"),
    ("--box-nms-thresh", "box_nms_thresh", float, 0.7, "box IoU for duplicates within a crop"),
    ("--crop-n-layers", "crop_n_layers", int, 0, "extra layers of crops (layer i: 2^i x 2^i crops)"),
    ("--crop-nms-thresh", "crop_nms_thresh", float, 0.7, "box IoU for duplicates across crops"),
    ("--crop-overlap-ratio", "crop_overlap_ratio", float, 512 / 1500, "overlap of the layer-1 crops"),
    ("--crop-n-points-downscale-factor", "crop_n_points_downscale_factor", int, 1,
     "layer i uses points-per-side / factor**i"),
    ("--min-mask-region-area", "min_mask_region_area", float, 0,
     "remove holes and islands up to this area (low-res mask pixels; needs OpenCV)"),
)


def _add_everything_parser(sub) -> None:
    e = sub.add_parser("everything", help="segment everything in an image (automatic mask generator)",
                       description="Segment everything in one image with the automatic mask generator "
                                   "(official SAM2AutomaticMaskGenerator arguments and defaults): "
                                   "masks.json (the generator's records, COCO RLE), overlay.png and "
                                   "result.json.")
    e.add_argument("image", metavar="IMAGE")
    e.add_argument("--out", required=True, metavar="DIR")
    g = e.add_argument_group("mask generator")
    for flag, _, typ, default, hlp in _AMG_FLAGS:
        g.add_argument(flag, type=typ, default=default, metavar="N" if typ is int else "X",
                       help=f"{hlp} (default {default:.4g})" if typ is float else f"{hlp} (default {default})")
    g.add_argument("--use-m2m", action="store_true", help="refine each mask once with itself as mask prompt")
    g.add_argument("--single-mask", action="store_true", help="one mask per point instead of 3")
    _add_model_args(e)


def _amg_kwargs(args) -> Dict[str, object]:
    kw = {name: getattr(args, flag[2:].replace("-", "_")) for flag, name, *_ in _AMG_FLAGS}
    kw.update(use_m2m=args.use_m2m, multimask_output=not args.single_mask, output_mode="coco_rle")
    return kw


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise CliError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read image {path}: {e}") from None


def _index_mask_of(anns: Sequence[dict], hw: Tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 palette indices of COCO-RLE masks: the largest painted first, so smaller
    masks stay visible; colours cycle through indices 1..255."""
    from .io.masks import decode_rle

    out = np.zeros(hw, dtype=np.uint8)
    order = sorted(range(len(anns)), key=lambda i: -anns[i]["area"])
    for rank, i in enumerate(order):
        out[decode_rle([anns[i]["segmentation"]])[0]] = rank % 255 + 1
    return out


def cmd_everything(args) -> int:
    """``sam2-fast everything``: automatic masks of one image -> masks.json, overlay.png, result.json."""
    from .io.masks import RANDOM_WEIGHTS_NOTE, overlay_masks, save_json, save_png
    from .predictors.automatic_mask_generator import check_generator_args

    kwargs = _amg_kwargs(args)
    check_generator_args(**kwargs)  # ValueError naming the argument, before anything is loaded
    ckpt = _resolve_checkpoint(args)
    path = Path(args.image)
    image = _read_rgb(path)
    h, w = image.shape[:2]
    cfg, info = _model_plan(args, ckpt)
    out_dir = Path(args.out)
    if args.dry:
        from .predictors.amg import crop_boxes

        boxes, layers = crop_boxes((h, w), kwargs["crop_n_layers"], kwargs["crop_overlap_ratio"])
        grids = check_generator_args(**kwargs)["point_grids"]
        n_pts = sum(len(grids[layer]) for layer in layers)
        _print_plan([("checkpoint", f"{ckpt}" + ("" if info else " (not downloaded yet)")
                      + (" [RANDOM WEIGHTS]" if info and info.random_weights else "")),
                     *_device_plan(args, cfg),
                     ("image", f"{path} ({w}x{h})"),
                     ("crops", f"{len(boxes)} (crop_n_layers {kwargs['crop_n_layers']})"),
                     ("point prompts", f"{n_pts} ({3 if kwargs['multimask_output'] else 1} masks each"
                                       + (", + m2m" if kwargs["use_m2m"] else "") + ")"),
                     ("output", f"{out_dir} (masks.json COCO RLE, overlay.png, result.json)")])
        return 0
    staging = Staging(out_dir)
    ok = False
    try:
        random_note = RANDOM_WEIGHTS_NOTE if info is not None and info.random_weights else None
        if random_note:
            _warn(f"{ckpt} holds random weights: the masks are meaningless")
        from .build import build_sam2
        from .checkpoint import CheckpointError
        from .predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator

        try:
            model = build_sam2(args.config, str(ckpt), device=_device(args), dtype=args.dtype,
                               image_size=args.image_size, backend=args.backend)
        except CheckpointError as e:
            raise CliError(str(e)) from None
        t0 = time.perf_counter()
        anns = Sam2AutomaticMaskGenerator(model, **kwargs).generate(image)
        wall = time.perf_counter() - t0
        save_json(staging.path("masks.json"), anns)
        save_png(staging.path("overlay.png"),
                 overlay_masks(image, _index_mask_of(anns, (h, w)),
                               banner="RANDOM WEIGHTS" if random_note else None), note=random_note)
        result = {
            "command": "everything", "image": str(path), "checkpoint": str(ckpt), "config": cfg.name,
            "image_size": cfg.image_size, "device": str(model.device), "dtype": args.dtype,
            "random_weights": bool(random_note), "height": h, "width": w,
            "generator": {k: v for k, v in kwargs.items() if k != "output_mode"},
            "num_masks": len(anns), "masks": "masks.json", "overlay": "overlay.png",
            "wall_s": round(wall, 3),
        }
        if random_note:
            result["note"] = random_note
        save_json(staging.path("result.json"), result)
        staging.commit()
        ok = True
    finally:
        if not ok:
            staging.discard()
    if not args.quiet:
        print(f"{len(anns)} masks in {wall:.1f} s -> {out_dir}")
    return 0


def _auto_video_args(args) -> Optional[Dict[str, object]]:
    """``video --auto``: check the flags; None without --auto. Raises CliError / ValueError."""
    if not args.auto:
        if args.max_objects is not None or args.amg:
            raise CliError("--max-objects and --amg go with --auto")
        return None
    if args.point or args.box:
        raise CliError("--auto finds the objects itself: drop --point / --box")
    if args.max_objects is not None and args.max_objects > 255:
        raise CliError(f"--max-objects {args.max_objects}: at most 255 objects (the palette size)")
    from .predictors.automatic_mask_generator import check_generator_args

    kwargs: Dict[str, object] = {}
    for spec in args.amg:
        key, sep, text = spec.partition("=")
        if not sep:
            raise CliError(f"malformed --amg {spec!r}: expected KEY=VALUE")
        if key not in {name for _, name, *_ in _AMG_FLAGS} | {"use_m2m", "multimask_output"}:
            raise CliError(f"--amg {spec!r}: unknown generator argument {key!r}")
        low = text.strip().lower()
        if low in ("true", "false"):
            kwargs[key] = low == "true"
        else:
            try:
                kwargs[key] = int(text) if low.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise CliError(f"malformed --amg {spec!r}: {text!r} is not a number or true/false") from None
    check_generator_args(**kwargs)
    return {"kwargs": kwargs, "max_objects": args.max_objects or 255}


def _add_auto_objects(predictor, state, frame: np.ndarray, frame_idx: int, lo: int,
                      auto: Dict[str, object]) -> List[VideoPrompt]:
    """Segment ``frame`` with the automatic mask generator and add its masks, largest first,
    as objects 1..N (mask prompts on that frame). Raises CliError when it keeps no mask."""
    from .predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator

    anns = Sam2AutomaticMaskGenerator(predictor.model, **auto["kwargs"]).generate(frame)
    anns = sorted(anns, key=lambda a: -a["area"])[: auto["max_objects"]]
    if not anns:
        raise CliError(f"--auto: the automatic mask generator kept no mask on frame {frame_idx} "
                       "(try --amg pred_iou_thresh=... / --amg stability_score_thresh=...)")
    for i, a in enumerate(anns):
        predictor.add_new_mask(state, frame_idx - lo, i + 1, a["segmentation"])
    return [VideoPrompt(i + 1, frame_idx) for i in range(len(anns))]


_COMMANDS = {"video": cmd_video, "image": cmd_image, "info": cmd_info, "convert": cmd_convert,
             "checkpoint": cmd_checkpoint, "everything": cmd_everything}


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return msg or type(e).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sam2-fast`` console script.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success, 2 for bad input or an output that cannot be written (one line
        ``sam2-fast: error: ...`` on stderr, no traceback, no output left behind), 130 when
        interrupted. Unexpected internal errors
        propagate with their traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help/--version (0) and argparse errors (2)
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_BAD_INPUT
    from . import hub
    from .checkpoint import CheckpointError

    try:
        return _COMMANDS[args.command](args)
    except (CliError, CheckpointError, hub.HubError) as e:
        sys.stderr.write(f"{PROG}: error: {_one_line(e)}\n")
        return EXIT_BAD_INPUT
    except ValueError as e:  # bad option values caught by the library (config names, prompts)
        sys.stderr.write(f"{PROG}: error: {_one_line(e)}\n")
        return EXIT_BAD_INPUT
    except OSError as e:  # an output that cannot be written (permissions, disk full, ...)
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"{PROG}: error: cannot write output{where}: {e.strerror or _one_line(e)}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
