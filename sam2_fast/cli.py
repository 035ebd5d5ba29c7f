"""``sam2-fast``: the command line (console script; also ``python -m sam2_fast``).

Subcommands::

    sam2-fast video (VIDEO | --sample) (--checkpoint CKPT | --model NAME)
                    (--point OBJ:FRAME:X,Y[:LABEL] | --box OBJ:FRAME:X0,Y0,X1,Y1) ... --out DIR
                    [--format png|rle|both] [--overlay OUT.mp4] [--fps F] [--reverse]
                    [--start-frame N] [--max-frames N] [--overwrite] [--raw-orientation]
    sam2-fast image IMAGE (--checkpoint CKPT | --model NAME) (--point X,Y[:LABEL] | --box X0,Y0,X1,Y1)
                    ... [--multimask] --out DIR [--overwrite] [--raw-orientation]
    sam2-fast everything IMAGE (--checkpoint CKPT | --model NAME) --out DIR [--points-per-side N]
                    [--pred-iou-thresh T] [--stability-score-thresh T] [--crop-n-layers N] ...
    sam2-fast info CKPT|NAME [--json]
    sam2-fast convert IN OUT                 # .pt <-> .safetensors, keys unchanged
    sam2-fast checkpoint --random CONFIG OUT [--seed N]

Common flags of ``video``/``image``: ``--device cpu|cuda``, ``--dtype float32|bfloat16|float16``,
``--backend auto|triton|torch``, ``--image-size N``, ``--config NAME``, ``--weights`` (alias of
``--checkpoint``), ``--dry`` (print the resolved config, shapes and device plan; run nothing),
``--quiet``.

Bad input (unknown flags, malformed prompts, clicks outside the frame, a frame past the end, a
missing/corrupt checkpoint or a file that is not one, an unreadable video/image, an existing
``--out`` without ``--overwrite``, an unwritable output, ``--backend triton`` without CUDA) exits
with code 2 and one line on stderr, before any output is written. Prompts follow
:mod:`sam2_fast.prompts` in strict mode: a click outside the frame is an error (likelier a typo
than intent), a box crossing the border is clipped to the frame and run.json/result.json say so.
Images and frame folders are turned upright by their EXIF orientation (video files by their
rotation metadata) unless ``--raw-orientation``; the masks are written in that orientation and
the JSON records it.

Outputs are staged in a hidden folder next to ``--out`` and become ``--out`` only when the whole
run succeeded (:mod:`sam2_fast.io.staging`); Ctrl-C (exit 130) and SIGTERM (exit 143, what
``timeout``, ``kill`` and ``docker stop`` send) remove it and print one line; a folder left by a
killed run is removed by the next run into the same ``--out``.

``video --auto`` tracks everything: the automatic mask generator segments the start frame and
every mask it keeps becomes an object (largest first, ``--max-objects``; generator arguments with
``--amg KEY=VALUE``). ``everything`` writes the generator's masks as COCO-RLE JSON
(``masks.json``), an overlay PNG and ``result.json``.

The video job mirrors the official ``tools/vos_inference.py`` (palette PNG per frame, object
id = palette index) driven by prompts like the official video notebook.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .checkpoint import CHECKPOINT_SUFFIXES, CheckpointInfo, inspect_checkpoint
from .checkpoint import save_state_dict as save_checkpoint
from .io.sources import VideoSource, open_video, read_frames  # noqa: F401 - public via the CLI module
from .io.staging import Staging
from .io.staging import check_output_file as _check_output_file
from .prompts import check_boxes, check_points, command_line_rules

PROG = "sam2-fast"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


class CliError(Exception):
    """Bad input to the CLI: reported as one line on stderr with exit code 2."""


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives, so that cleanup (``finally`` blocks)
    runs as for Ctrl-C; :func:`main` turns it into one line and exit code 143."""


# ============================================================================ argument parsing
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2; values that start with a
    negative number (``--box -2.5,4,83,40``) are values, not options (argparse < 3.13 only
    recognises plain numbers such as ``-2.5``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

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
    return vals


def _int_field(text: str, what: str, spec: str, name: str, lo: int, hi: Optional[int] = None) -> int:
    """``text`` as an int in lo..hi; ``name`` says which field of ``what`` it is."""
    try:
        v = int(text)
    except ValueError:
        raise CliError(f"malformed {what} {spec!r}: the {name} {text!r} is not an integer") from None
    if v < lo or (hi is not None and v > hi):
        rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise CliError(f"malformed {what} {spec!r}: the {name} {v} must be {rng}")
    return v


@dataclass
class VideoPrompt:
    """Prompts of one object on one frame (pixel coordinates of the video). ``box_given`` is
    the box as typed when :func:`sam2_fast.prompts.command_line_rules` clipped it."""

    obj_id: int
    frame: int
    points: List[Tuple[float, float]] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    box: Optional[Tuple[float, float, float, float]] = None
    box_given: Optional[Tuple[float, float, float, float]] = None  # as typed, when clipped


def parse_point(spec: str, with_obj_frame: bool) -> Tuple[Optional[int], Optional[int], Tuple[float, float], int]:
    """``OBJ:FRAME:X,Y[:LABEL]`` (video) or ``X,Y[:LABEL]`` (image) -> (obj, frame, (x, y), label).
    LABEL is 1 (foreground, default) or 0 (background). Raises CliError when malformed."""
    fmt = "OBJ:FRAME:X,Y[:LABEL]" if with_obj_frame else "X,Y[:LABEL]"
    parts = spec.split(":")
    n_head = 2 if with_obj_frame else 0
    if len(parts) not in (n_head + 1, n_head + 2):
        raise CliError(f"malformed --point {spec!r}: expected {fmt}")
    obj = _int_field(parts[0], "--point", spec, "object id", 1, 255) if with_obj_frame else None
    frame = _int_field(parts[1], "--point", spec, "frame", 0) if with_obj_frame else None
    x, y = _numbers(parts[n_head], 2, "--point", spec)
    label = 1
    if len(parts) == n_head + 2:
        if parts[-1] not in ("0", "1"):
            raise CliError(f"malformed --point {spec!r}: LABEL must be 1 (foreground) or 0 (background)")
        label = int(parts[-1])
    check_points([[x, y]], [label], points_name=f"--point {spec!r}")  # NaN/inf (sam2_fast.prompts)
    return obj, frame, (x, y), label


def parse_box(spec: str, with_obj_frame: bool) -> Tuple[Optional[int], Optional[int], Tuple[float, ...]]:
    """``OBJ:FRAME:X0,Y0,X1,Y1`` (video) or ``X0,Y0,X1,Y1`` (image) -> (obj, frame, box).
    Raises CliError when malformed, ValueError (the rules of :mod:`sam2_fast.prompts`) for
    NaN/inf or x1 < x0 or y1 < y0."""
    fmt = "OBJ:FRAME:X0,Y0,X1,Y1" if with_obj_frame else "X0,Y0,X1,Y1"
    parts = spec.split(":")
    if len(parts) != (3 if with_obj_frame else 1):
        raise CliError(f"malformed --box {spec!r}: expected {fmt}")
    obj = _int_field(parts[0], "--box", spec, "object id", 1, 255) if with_obj_frame else None
    frame = _int_field(parts[1], "--box", spec, "frame", 0) if with_obj_frame else None
    box = tuple(_numbers(parts[-1], 4, "--box", spec))
    check_boxes(box, name=f"--box {spec!r}")  # NaN/inf, X1 >= X0, Y1 >= Y0 (sam2_fast.prompts)
    return obj, frame, box


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
                   help="kernel backend (auto: on CUDA, Triton per op where this GPU's kernel "
                        "profile or the built-in table measured it faster than torch, else torch; "
                        "torch off CUDA; triton: every kernel, needs CUDA; $SAM2_FAST_BACKEND "
                        "overrides auto)")
    g.add_argument("--image-size", type=_image_size_arg, metavar="N",
                   help="model input side in pixels, a multiple of 32 (default 1024; 512 is about "
                        "4-7x faster on a CPU, with coarser masks)")
    g.add_argument("--dry", action="store_true",
                   help="print the resolved config, shapes and device plan, then exit")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar / summary")


def _add_output_args(p: argparse.ArgumentParser, out_help: str, overlay: bool = False) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help=out_help)
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out folder" + (" (and --overlay file)" if overlay else "")
                        + " in one step; without it an existing non-empty --out is refused")
    g.add_argument("--raw-orientation", action="store_true",
                   help="keep the stored pixel orientation: ignore the EXIF orientation of images "
                        "and frames (and the rotation of video files); by default they are turned "
                        "upright as a viewer shows them and masks are written that way")


_VIDEO_EXAMPLES = f"""examples:
  {PROG} checkpoint --random sam2.1_hiera_tiny random_tiny.pt
  {PROG} video --sample --checkpoint random_tiny.pt --point 1:0:105,175 --out out
  {PROG} video clip.mp4 --model sam2.1_hiera_tiny --point 1:0:210,350 --box 2:0:480,180,720,460 \\
      --out masks --overlay masks/overlay.mp4
  {PROG} video frames/ --model sam2.1_hiera_tiny --point 1:0:210,350 --point 1:0:300,200:0 \\
      --image-size 512 --max-frames 50 --out masks --overwrite

A CPU tracks about one frame every 6 s at 1024 px (tiny model, 2 cores); --image-size 512 and
--max-frames keep a first try short."""

_IMAGE_EXAMPLES = f"""examples:
  {PROG} image photo.jpg --model sam2.1_hiera_tiny --point 500,375 --out seg
  {PROG} image photo.jpg --model sam2.1_hiera_tiny --point 500,375 --point 100,100:0 --multimask --out seg
  {PROG} image street.jpg --model sam2.1_hiera_tiny --box 10,10,300,300 --box 400,200,700,500 --out seg"""


def _para(text: str) -> str:
    """A paragraph wrapped for the raw help formatter (which keeps the examples' line breaks)."""
    import textwrap

    return textwrap.fill(text, 79)


def build_parser() -> argparse.ArgumentParser:
    """The ``sam2-fast`` argument parser (argparse; errors exit 2 with one line)."""
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog=PROG, description="SAM 2 / SAM 2.1 segmentation and video tracking "
                                            "(sam2_fast runtime).", formatter_class=fmt,
                     epilog=f"examples:\n  {PROG} video --sample --model sam2.1_hiera_tiny --point 1:0:105,175 "
                            f"--out out\n  {PROG} image photo.jpg --model sam2.1_hiera_tiny --point 500,375 "
                            f"--out seg\n  {PROG} info sam2.1_hiera_tiny\n\n"
                            f"See '{PROG} COMMAND --help' for each command's options and examples.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    v = sub.add_parser("video", help="track objects through a video; write masks and an overlay",
                       formatter_class=fmt, epilog=_VIDEO_EXAMPLES,
                       description=_para("Track objects through a video (.mp4 or a folder of JPEG/PNG "
                                         "frames) from point/box prompts; write one DAVIS palette PNG "
                                         "per frame (object id = palette index) and run.json."))
    v.add_argument("video", metavar="VIDEO", nargs="?",
                   help=".mp4 (any PyAV-decodable file) or a folder of frames")
    v.add_argument("--sample", action="store_true",
                   help="use the sample clip shipped with sam2_fast instead of VIDEO (16 frames "
                        "of the official 'bedroom' video, 480x270; click the boy at 105,175)")
    pv = v.add_argument_group("prompts (one of them required)")
    pv.add_argument("--point", action="append", default=[], metavar="OBJ:FRAME:X,Y[:LABEL]",
                    help="click on object OBJ (1..255) at pixel X,Y of frame FRAME; LABEL 1 "
                         "foreground (default) or 0 background; repeatable; must lie in the frame")
    pv.add_argument("--box", action="append", default=[], metavar="OBJ:FRAME:X0,Y0,X1,Y1",
                    help="box around object OBJ on frame FRAME (pixels; clipped to the frame); "
                         "repeatable")
    _add_output_args(v, "output folder for the masks", overlay=True)
    v.add_argument("--format", choices=("png", "rle", "both"), default="png",
                   help="png: palette PNG per frame (default); rle: COCO-RLE JSON per frame; both")
    v.add_argument("--overlay", metavar="OUT.mp4",
                   help="also write the video with coloured masks (in tracking order: backward "
                        "with --reverse)")
    v.add_argument("--fps", type=_pos_float, help="overlay frame rate (default: the input's, or 24)")
    v.add_argument("--reverse", action="store_true", help="track towards frame 0")
    v.add_argument("--start-frame", type=_nonneg_int, metavar="N",
                   help="first frame to track from (default: the first prompted frame, also with "
                        "--reverse, as the official propagate_in_video)")
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

    im = sub.add_parser("image", help="segment one image from points/boxes", formatter_class=fmt,
                        epilog=_IMAGE_EXAMPLES,
                        description=_para("Segment one image: mask PNGs, an overlay PNG and result.json "
                                          "with the IoU predictions and object score."))
    im.add_argument("image", metavar="IMAGE", help="an image file (JPEG, PNG, ...)")
    pi = im.add_argument_group("prompts (one of them required)")
    pi.add_argument("--point", action="append", default=[], metavar="X,Y[:LABEL]",
                    help="click at pixel X,Y; LABEL 1 foreground (default) or 0 background; "
                         "must lie in the image")
    pi.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1",
                    help="box in pixels (clipped to the image); several boxes (without points) "
                         "segment several objects")
    im.add_argument("--multimask", action="store_true", help="3 candidate masks per object")
    _add_output_args(im, "output folder: mask PNGs, overlay.png, result.json")
    _add_model_args(im)

    i = sub.add_parser("info", help="describe a checkpoint (variant, version, parameters, dtype)",
                       formatter_class=fmt,
                       epilog=f"examples:\n  {PROG} info sam2.1_hiera_tiny.pt\n  {PROG} info "
                              f"sam2.1_hiera_tiny --json   # URL and cache state of a published model")
    i.add_argument("checkpoint", metavar="CKPT|NAME",
                   help="a checkpoint file, or a published model name (shows URL and cache state)")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    c = sub.add_parser("convert", help="convert a checkpoint .pt <-> .safetensors (keys unchanged)",
                       formatter_class=fmt,
                       epilog=f"example:\n  {PROG} convert sam2.1_hiera_tiny.pt sam2.1_hiera_tiny.safetensors")
    c.add_argument("src", metavar="IN", help="a .pt / .pth or .safetensors checkpoint")
    c.add_argument("dst", metavar="OUT", help="the file to write; its suffix picks the format")
    c.add_argument("--overwrite", action="store_true", help="replace an existing OUT")

    k = sub.add_parser("checkpoint", help="write an official-format checkpoint with random weights",
                       formatter_class=fmt,
                       epilog=f"example:\n  {PROG} checkpoint --random sam2.1_hiera_tiny random_tiny.pt",
                       description=_para("Write an official-format checkpoint with random (seeded) "
                                         "weights, for benchmarks and tests without the real files. "
                                         "Everything made from it is marked as such."))
    k.add_argument("--random", action="store_true", required=True,
                   help="random weights (the only mode)")
    k.add_argument("config", metavar="CONFIG", help="sam2_hiera_tiny ... sam2.1_hiera_large")
    k.add_argument("out", metavar="OUT", help=".pt (official {'model': sd}) or .safetensors")
    k.add_argument("--seed", type=_nonneg_int, default=0)
    k.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUT (refused without it: it could be a real checkpoint)")
    _add_batch_parser(sub)

    t = sub.add_parser("tune", help="measure the kernels on this GPU; write a runtime profile",
                       formatter_class=fmt,
                       epilog=f"examples:\n  {PROG} tune --checkpoint sam2.1_hiera_base_plus.pt   "
                              f"# writes sam2_fast_profile.toml next to it\n"
                              f"  {PROG} tune --variants tiny --objects 1 --time-budget 60 --out tiny.toml",
                       description=_para("Time every implementation of every kernel op (torch and "
                                         "Triton tile configs) at the model's shapes on this GPU and "
                                         "write the winners as a TOML runtime profile, which "
                                         "build_sam2 reads (backend auto). Needs CUDA (--dry: the "
                                         "CPU with TRITON_INTERPRET=1, tiny shapes)."))
    t.add_argument("--out", metavar="PROFILE.toml",
                   help="where to write (default: sam2_fast_profile.toml next to --checkpoint, "
                        "where build_sam2 finds it, else in the current folder)")
    t.add_argument("--checkpoint", metavar="CKPT",
                   help="tune for this checkpoint's Hiera variant and write next to it")
    t.add_argument("--variants", metavar="LIST",
                   help="comma list of tiny,small,base_plus,large (default: the checkpoint's, "
                        "else all four)")
    t.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16",
                   help="the model dtype the profile is for (default bfloat16)")
    t.add_argument("--image-size", type=_image_size_arg, default=1024, metavar="N")
    t.add_argument("--objects", default="1,4,16", metavar="LIST",
                   help="object counts for memory attention (default 1,4,16)")
    t.add_argument("--ops", default="rope_attention,windowed_attention,fpn_upsample_add",
                   metavar="LIST", help="ops to tune (default: rope_attention,windowed_attention,"
                                        "fpn_upsample_add)")
    t.add_argument("--time-budget", type=_pos_float, metavar="S",
                   help="seconds; shapes not started by then are skipped")
    t.add_argument("--json", metavar="ROWS.json", help="also write every measurement as JSON")
    t.add_argument("--dry", action="store_true",
                   help="CPU + the Triton interpreter, tiny shapes: checks the plumbing; the "
                        "profile names no GPU (set TRITON_INTERPRET=1 in the environment first)")
    t.add_argument("--quiet", "-q", action="store_true", help="no per-candidate lines")
    _add_everything_parser(sub)
    return parser


# ============================================================================ checkpoints
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
    if p.is_dir():
        raise CliError(f"checkpoint {p} is a folder: pass the .pt or .safetensors file")
    if not p.is_file():
        raise CliError(f"checkpoint not found: {p}")
    return p


def _device(args) -> str:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: CUDA is not available on this machine")
    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _backend(args) -> str:
    """The kernel backend that will actually run (``"triton"`` or ``"torch"``); CliError when
    ``--backend triton`` cannot run here."""
    import torch

    from .kernels._backend import resolve_backend

    dev = _device(args)
    try:
        resolved = resolve_backend(args.backend, torch.device(dev))
    except ValueError as e:  # SAM2_FAST_BACKEND set to something else
        raise CliError(str(e)) from None
    except RuntimeError as e:
        if "SAM2_FAST_BACKEND" in str(e):
            raise CliError(f"{e}; unset SAM2_FAST_BACKEND or set it to auto or torch") from None
        raise CliError(f"--backend {args.backend}: {e}; use --backend auto or torch") from None
    if resolved == "triton" and args.backend == "auto":
        # auto on CUDA picks per op and shape (sam2_fast.kernels.profile)
        return "auto: Triton where the kernel profile measured it faster than torch, else torch"
    return resolved


def _model_plan(args, ckpt: Path) -> Tuple[object, Optional[CheckpointInfo]]:
    """(config at the requested image size, checkpoint info or None when not yet downloaded)."""
    from .config import get_config

    info = inspect_checkpoint(ckpt) if ckpt.is_file() else None
    if args.config:
        cfg = get_config(args.config)
    elif info is not None:
        cfg = info.detect_config()
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
    dev = _device(args)
    backend = _backend(args)
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


def _video_run_record(args, src, prompts, ckpt: Path, cfg, device, backend: str, random_note: Optional[str],
                      overlay: Optional[Path], auto: Optional[Dict[str, object]], *, engine: str,
                      frames: Tuple[int, int], done: int, wall: float, track_s: float,
                      error: Optional[BaseException] = None) -> Dict[str, object]:
    """The ``run.json`` of ``sam2-fast video`` (offline and streaming engines write the same keys;
    the batch runner's per-video record follows them). ``frames``: first and last frame index
    written; ``complete`` is False when ``error`` stopped the run early."""
    record: Dict[str, object] = {
        "command": "video", "engine": engine, "complete": error is None,
        "video": str(src.path), "sample": bool(args.sample),
        "checkpoint": str(ckpt), "config": cfg.name, "image_size": cfg.image_size,
        "device": str(device), "dtype": args.dtype, "backend": backend,
        "backend_requested": args.backend, "random_weights": bool(random_note),
        "frames": list(frames), "reverse": bool(args.reverse), "num_frames_written": done,
        "width": src.width, "height": src.height, **src.orientation_record(),
        "format": args.format, "overlay": str(overlay) if overlay else None,
        "prompts": [{"obj_id": p.obj_id, "frame": p.frame, "points": p.points,
                     "labels": p.labels, "box": p.box} for p in prompts],
        "clipped_boxes": [{"obj_id": p.obj_id, "frame": p.frame, "given": list(p.box_given),
                           "used": list(p.box)} for p in prompts if p.box_given is not None],
        "wall_s": round(wall, 3), "tracking_s": round(track_s, 3),
        "frames_per_s": round(done / track_s, 3) if track_s > 0 else None,
    }
    if auto:
        record["auto"] = {"generator": auto["kwargs"], "max_objects": auto["max_objects"],
                          "objects": len(prompts)}
    if error is not None:
        record["error"] = _one_line(error)
    if random_note:
        record["note"] = random_note
    return record


def _staging(args, out_dir: Path) -> Staging:
    staging = Staging(out_dir, overwrite=args.overwrite)
    for p in staging.removed_stale:
        _warn(f"removed {p}, left by an interrupted run")
    return staging


def _check_out_dir(args, out_dir: Path, inputs: Sequence[Optional[str]] = ()) -> None:
    """Refuse an existing non-empty --out without --overwrite before any work (also with --dry),
    and an --overwrite that would delete one of the command's ``inputs`` (a video, an image or
    the checkpoint inside --out: replacing --out removes everything in it)."""
    if out_dir.is_file():
        raise CliError(f"cannot write to output directory {out_dir}: it is a file")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not args.overwrite:
            raise CliError(f"output directory {out_dir} exists and is not empty: pass --overwrite "
                           f"to replace it, or choose another --out")
        root = out_dir.resolve()
        for p in inputs:
            if p is None or not Path(p).exists():
                continue
            rp = Path(p).resolve()
            if rp == root or root in rp.parents:
                raise CliError(f"--overwrite would delete {p}: it is inside the output directory "
                               f"{out_dir}, which is replaced; choose another --out")


def _processing_range(n: int, start: int, max_frames: Optional[int], reverse: bool) -> Tuple[int, int]:
    """Inclusive (first, last) frame indices processed (first <= last)."""
    if reverse:
        lo = 0 if max_frames is None else max(start - max_frames + 1, 0)
        return lo, start
    hi = n - 1 if max_frames is None else min(start + max_frames - 1, n - 1)
    return start, hi


def _random_note(info: Optional[CheckpointInfo], ckpt: Path) -> Optional[str]:
    from .io.masks import RANDOM_WEIGHTS_NOTE

    if info is not None and info.random_weights:
        _warn(f"{ckpt} holds random weights: the masks are meaningless")
        return RANDOM_WEIGHTS_NOTE
    return None


# ============================================================================ commands
def cmd_video(args) -> int:
    """``sam2-fast video``: prompts -> masks for every tracked frame (+ overlay)."""
    if args.sample == (args.video is not None):
        raise CliError("give VIDEO (a file or a folder of frames) or --sample, not both"
                       if args.sample else "give VIDEO (a file or a folder of frames), or --sample "
                       "for the clip shipped with sam2_fast")
    auto = _auto_video_args(args)
    prompts = [] if auto else group_video_prompts(args.point, args.box)
    backend = _backend(args)
    out_dir = Path(args.out)
    _check_out_dir(args, out_dir, [args.video, args.checkpoint])
    if args.sample:
        from .samples import sample_video

        video = sample_video()
    else:
        video = args.video
    src = open_video(video, apply_orientation=not args.raw_orientation)
    prompt_frames = [args.start_frame or 0] if auto else [p.frame for p in prompts]
    start = args.start_frame if args.start_frame is not None else min(prompt_frames)
    need_hi = max(prompt_frames + [start])
    if need_hi >= src.num_frames:
        bad = "--start-frame" if start == need_hi and args.start_frame is not None else "prompt frame"
        raise CliError(f"{bad} {need_hi} is past the end: the video has {src.num_frames} frames "
                       f"(0..{src.num_frames - 1})")
    for p in prompts:
        used, given = command_line_rules(p.points, p.labels, [p.box] if p.box else [], (src.height, src.width),
                                         f" of object {p.obj_id} on frame {p.frame}")
        if used and given[0] is not None:
            p.box, p.box_given = used[0], given[0]
            _warn(f"--box of object {p.obj_id} on frame {p.frame} {list(given[0])} crosses the border "
                  f"of the {src.width}x{src.height} frame: clipped to {list(used[0])}")
    overlay = Path(args.overlay) if args.overlay else None
    if overlay is not None:
        if overlay.suffix.lower() not in VIDEO_EXTENSIONS:
            raise CliError(f"--overlay {overlay}: use a video file name ({', '.join(VIDEO_EXTENSIONS)})")
        inside = overlay.absolute().parent == out_dir.absolute() or out_dir.absolute() in overlay.absolute().parents
        _check_output_file(overlay, "--overlay", None if inside else args.overwrite)
    ckpt = _resolve_checkpoint(args)  # after the input checks: --model may download
    cfg, info = _model_plan(args, ckpt)

    n_known = src.num_frames
    first, last = _processing_range(n_known, start, args.max_frames, args.reverse)
    for f in sorted({f for f in prompt_frames if not first <= f <= last}):
        _warn(f"the prompt on frame {f} lies outside the tracked frames {first}..{last}: it "
              f"conditions the tracking as a memory, and frame {f} itself is not written")

    if args.dry:
        n_proc = last - first + 1
        s = cfg.image_size
        plan = [("checkpoint", f"{ckpt}" + ("" if info else " (not downloaded yet)")
                 + (" [RANDOM WEIGHTS]" if info and info.random_weights else "")),
                *_device_plan(args, cfg),
                ("video", f"{src.path} ({src.kind}, {n_known} frames, "
                          f"{src.width}x{src.height})"),
                ("frames", f"{first}..{last} ({'reverse' if args.reverse else 'forward'}, "
                           f"{n_proc} frames, each decoded when tracked)"),
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

    if not args.reverse and all(p.frame == start for p in prompts):
        # forward tracking from the prompted frame: frame by frame through the streaming engine,
        # never holding the video (same results as the offline predictor: prompts on one frame)
        return _video_streaming(args, src, prompts, ckpt, cfg, info, backend, out_dir, overlay,
                                first, last, auto)
    return _video_offline(args, src, prompts, ckpt, cfg, info, backend, out_dir, overlay,
                          (first, last, start, need_hi), auto)


class _OfflinePrediction:
    """One frame of ``propagate_in_video`` in the shape :class:`FrameOutputWriter` takes:
    ``masks`` (N, 1, H, W) bool, ``object_score_logits`` (N, 1) read from the objects' stored
    outputs of that frame (None if one is not stored), ``obj_ids``."""

    def __init__(self, state, frame_idx: int, obj_ids, logits) -> None:
        import torch

        self.obj_ids = obj_ids
        self.masks = logits > 0
        scores = []
        for i in range(len(obj_ids)):
            store = state["output_dict_per_obj"][i]
            entry = store.cond.get(frame_idx) or store.non_cond.get(frame_idx)
            if entry is None:
                scores = None
                break
            scores.append(entry.object_score_logits.reshape(-1)[:1].float().to(logits.device))
        self.object_score_logits = torch.cat(scores).reshape(-1, 1) if scores else None


def _video_offline(args, src, prompts, ckpt: Path, cfg, info, backend: str, out_dir: Path,
                   overlay: Optional[Path], span: Tuple[int, int, int, int, int, int],
                   auto: Optional[Dict[str, object]] = None) -> int:
    """``sam2-fast video`` through the offline predictor (``--reverse``, prompts on several
    frames): the state covers the whole video, as the official ``init_state`` (its length
    bounds the object-pointer window, so the masks of a frame do not depend on
    ``--max-frames``), but each frame is decoded when it is needed
    (:class:`RandomAccessFrames`: the video is never held) and preprocessed lazily
    (``init_state(..., lazy_frames=True)``); the masks go through the same bounded writer thread
    as the streaming path. Reverse tracking from frame 0 writes frame 0 (the official
    ``propagate_in_video`` yields nothing there).

    Same failure policy as the streaming path: an unreadable frame, a frame of another size or
    a write error keeps the frames already written (the first k frames tracked), marks run.json
    ``"complete": false`` and exits 2; Ctrl-C/SIGTERM leave nothing."""
    from .build import build_sam2_video_predictor
    from .io.masks import save_json
    from .io.sources import RandomAccessFrames
    from .io.video_output import FrameOutputWriter, OutputOptions

    first, last, start, need_hi = span
    done, error = 0, None
    with _staging(args, out_dir) as staging:
        frames = RandomAccessFrames(src)
        if len(frames) <= need_hi:
            raise CliError(f"frame {need_hi} is past the end: {src.path} holds {len(frames)} "
                           f"frames (its header says {src.num_frames})")
        last = min(last, len(frames) - 1)
        random_note = _random_note(info, ckpt)
        predictor = build_sam2_video_predictor(args.config, str(ckpt), device=_device(args),
                                               dtype=args.dtype, image_size=args.image_size,
                                               backend=args.backend)
        t0 = time.perf_counter()
        state = predictor.init_state(frames, offload_video_to_cpu=args.offload_video, lazy_frames=True)
        for p in prompts:
            pts = np.array(p.points, dtype=np.float32) if p.points else None
            lbs = np.array(p.labels, dtype=np.int32) if p.points else None
            predictor.add_new_points_or_box(state, p.frame, p.obj_id, points=pts, labels=lbs,
                                            box=None if p.box is None else np.array(p.box, np.float32))
        if auto:
            prompts = _add_auto_objects(predictor, state, frames[start], start, auto)
        opts = OutputOptions(args.format, staging.add_extra(overlay) if overlay else None,
                             args.fps or src.fps or 24.0)
        writer = FrameOutputWriter(staging.path("."), src.width, src.height, src.frame_name,
                                   opts, random_note)
        from tqdm.auto import tqdm

        n_proc = last - first + 1
        t_track = time.perf_counter()
        try:
            with tqdm(total=n_proc, unit="frame", desc="tracking", disable=args.quiet,
                      file=sys.stderr, dynamic_ncols=True) as bar:
                try:
                    reverse = args.reverse and start > 0  # from frame 0: frame 0 alone
                    gen = predictor.propagate_in_video(state, start_frame_idx=start,
                                                       max_frame_num_to_track=last - first,
                                                       reverse=reverse, progress=False)
                    for idx, obj_ids, logits in gen:
                        writer.write(idx, frames[idx] if overlay else None,
                                     _OfflinePrediction(state, idx, obj_ids, logits))
                        bar.update(1)
                except (ValueError, RuntimeError, OSError) as e:  # keep what was tracked
                    error = e
            try:
                writer.close()
            except (ValueError, RuntimeError, OSError) as e:
                error = error or e
                writer.abort()
            done = writer.written
        except BaseException:
            writer.abort()
            raise
        finally:
            frames.close()
        if done == 0 and error is not None:
            raise error
        wall = time.perf_counter() - t0
        track_s = time.perf_counter() - t_track
        span_written = (last - done + 1, last) if args.reverse else (first, first + done - 1)
        manifest = _video_run_record(args, src, prompts, ckpt, cfg, predictor.device, backend, random_note,
                                     overlay, auto, engine="offline", frames=span_written, done=done,
                                     wall=wall, track_s=track_s, error=error)
        manifest["cuda_graphs"] = (dict(predictor.core.graphs.stats)
                                   if predictor.device.type == "cuda" else None)
        save_json(staging.path("run.json"), manifest)
        staging.commit()
    if error is not None:
        raise CliError(f"{_one_line(error)} (stopped after {done} frames; they were written to "
                       f"{out_dir}, run.json says complete: false)")
    if not args.quiet:
        print(f"{done} frames in {wall:.1f} s ({done / track_s:.2f} frames/s tracking) -> {out_dir}"
              + (f", overlay {overlay}" if overlay else ""))
    return 0


def _video_streaming(args, src, prompts, ckpt: Path, cfg, info, backend: str, out_dir: Path,
                     overlay: Optional[Path], first: int, last: int,
                     auto: Optional[Dict[str, object]] = None) -> int:
    """``sam2-fast video`` forward from the prompted frame through the streaming engine:
    frames decoded ahead on a thread (pinned and copied asynchronously on CUDA), one
    ``predict_video_frame`` per frame, masks written by a bounded writer thread. Memory stays
    flat whatever the video's length.

    A failure in the middle (an unreadable frame, a frame of another size, a write error such as
    a full disk) keeps the frames already written, marks run.json ``"complete": false`` with the
    error, and exits 2; Ctrl-C/SIGTERM leave nothing (the staging folder is removed)."""
    import torch

    from .api import Sam2
    from .build import build_sam2
    from .io.masks import save_json
    from .io.pipeline import device_frames
    from .io.sources import iter_source_frames
    from .io.video_output import FrameOutputWriter, OutputOptions

    done, error = 0, None
    with _staging(args, out_dir) as staging:
        random_note = _random_note(info, ckpt)
        model = build_sam2(args.config, str(ckpt), device=_device(args), dtype=args.dtype,
                           image_size=args.image_size, backend=args.backend)
        sam = Sam2(model)
        n_proc = last - first + 1
        state = sam.new_video_state(num_frames=src.num_frames)  # the video's length, as offline
        stream_prompts: Dict[int, dict] = {}
        for p in prompts:
            q: dict = {}
            if p.points:
                q["points"], q["labels"] = p.points, p.labels
            if p.box is not None:
                q["box"] = list(p.box)
            stream_prompts[p.obj_id] = q
        opts = OutputOptions(args.format, staging.add_extra(overlay) if overlay else None,
                             args.fps or src.fps or 24.0)
        writer = FrameOutputWriter(staging.path("."), src.width, src.height, src.frame_name,
                                   opts, random_note)
        from tqdm.auto import tqdm

        t0 = t_track = time.perf_counter()
        frames = device_frames(iter_source_frames(src, first, last), model.device, depth=8,
                               keep_host=True)
        try:
            head = next(frames, None)  # the prompted frame (an error reading it is the run's)
            if head is None:
                raise CliError(f"{src.path} decoded to no frame {first}")
            if auto:  # --auto: the generator's masks on the start frame are the prompts
                stream_prompts, prompts = _auto_prompts(model, head[0], first, auto)
            with tqdm(total=n_proc, unit="frame", desc="tracking", disable=args.quiet,
                      file=sys.stderr, dynamic_ncols=True) as bar:
                try:
                    for i, (host, frame) in enumerate(itertools.chain([head], frames)):
                        pred = sam.predict_video_frame(state, frame,
                                                       stream_prompts if i == 0 else None)
                        writer.write(first + i, host, pred)
                        bar.update(1)
                except (ValueError, RuntimeError, OSError) as e:  # keep what was tracked
                    error = e
            try:
                writer.close()
            except (ValueError, RuntimeError, OSError) as e:
                error = error or e
                writer.abort()
            done = writer.written
        except BaseException:
            writer.abort()
            raise
        finally:
            frames.close()
        if done == 0 and error is not None:
            raise error
        wall = time.perf_counter() - t0
        track_s = time.perf_counter() - t_track
        manifest = _video_run_record(args, src, prompts, ckpt, cfg, model.device, backend, random_note,
                                     overlay, auto, engine="streaming", frames=(first, first + done - 1),
                                     done=done, wall=wall, track_s=track_s, error=error)
        manifest["cuda_graphs"] = sam.graph_stats if torch.device(model.device).type == "cuda" else None
        save_json(staging.path("run.json"), manifest)
        staging.commit()
    if error is not None:
        raise CliError(f"{_one_line(error)} (stopped after {done} frames; they were written to "
                       f"{out_dir}, run.json says complete: false)")
    if not args.quiet:
        print(f"{done} frames in {wall:.1f} s ({done / track_s:.2f} frames/s tracking) -> {out_dir}"
              + (f", overlay {overlay}" if overlay else ""))
    return 0


def cmd_image(args) -> int:
    """``sam2-fast image``: points/boxes -> mask PNGs, overlay PNG, result.json."""
    from .io.images import image_size, load_image
    from .io.masks import combine_object_masks, overlay_masks, save_json, save_png

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
    backend = _backend(args)
    out_dir = Path(args.out)
    _check_out_dir(args, out_dir, [args.image, args.checkpoint])
    path = Path(args.image)
    if path.is_dir():
        raise CliError(f"IMAGE {path} is a folder: `{PROG} image` takes one image file (for a folder "
                       f"of video frames use `{PROG} video`)")
    if not path.is_file():
        raise CliError(f"image not found: {path}")
    w, h, orientation = image_size(path, apply_exif=not args.raw_orientation)
    boxes, given = command_line_rules(pts, lbs, boxes, (h, w))
    for b, g in zip(boxes, given):
        if g is not None:
            _warn(f"--box {list(g)} crosses the border of the {w}x{h} image: clipped to {list(b)}")
    ckpt = _resolve_checkpoint(args)
    cfg, info = _model_plan(args, ckpt)
    n_obj = max(1, len(boxes))
    c = 3 if args.multimask else 1
    if args.dry:
        _print_plan([("checkpoint", f"{ckpt}" + ("" if info else " (not downloaded yet)")
                      + (" [RANDOM WEIGHTS]" if info and info.random_weights else "")),
                     *_device_plan(args, cfg),
                     ("image", f"{path} ({w}x{h}" + (f", EXIF orientation {orientation}"
                                                      f" {'applied' if not args.raw_orientation else 'ignored'}"
                                                      if orientation != 1 else "") + ")"),
                     ("model input", f"(1, 3, {cfg.image_size}, {cfg.image_size}) float32"),
                     ("prompts", f"{len(pts)} point(s), {len(boxes)} box(es)"),
                     ("masks", f"({n_obj}, {c}, {h}, {w}) bool" if n_obj > 1 else f"({c}, {h}, {w}) bool"),
                     ("output", str(out_dir))])
        return 0
    image, orientation = load_image(path, apply_exif=not args.raw_orientation)
    with _staging(args, out_dir) as staging:
        random_note = _random_note(info, ckpt)
        from .build import build_sam2
        from .predictors.image import Sam2ImagePredictor

        model = build_sam2(args.config, str(ckpt), device=_device(args), dtype=args.dtype,
                           image_size=args.image_size, backend=args.backend)
        t0 = time.perf_counter()
        pred = Sam2ImagePredictor(model)
        pred.set_image(image)
        box_arg = None
        if boxes:
            box_arg = np.array(boxes[0] if len(boxes) == 1 else boxes, dtype=np.float32)
        masks, ious, _ = pred.predict(np.array(pts, np.float32) if pts else None,
                                      np.array(lbs, np.int32) if pts else None, box_arg,
                                      multimask_output=args.multimask)
        masks = masks > 0.5  # float32 0/1 from the official-compatible predictor
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
            "backend": backend, "backend_requested": args.backend,
            "random_weights": bool(random_note), "height": h, "width": w,
            "orientation": "raw" if args.raw_orientation else "applied", "exif_orientation": orientation,
            "points": pts, "labels": lbs, "boxes": [list(b) for b in boxes], "multimask": args.multimask,
            "clipped_boxes": [{"index": i, "given": list(g), "used": list(b)}
                              for i, (b, g) in enumerate(zip(boxes, given)) if g is not None],
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
    if not args.quiet:
        objs = result["objects"]
        each = "; ".join((f"object {i}: " if len(objs) > 1 else "")
                         + f"IoU {', '.join(f'{v:.3f}' for v in o['iou_predictions'])}, "
                         f"object score {o['object_score_logit']:.3f}" for i, o in enumerate(objs))
        print(f"{len(files)} mask(s) -> {out_dir} ({each})")
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
    problem = variant = version = name = None
    try:
        cfg = info.detect_config()
        variant, version, name = cfg.variant, cfg.version, cfg.name
        info.check(cfg)  # would it load? (shapes only)
    except CheckpointError as e:
        problem = str(e)
        _warn(problem)
    numel = sum(int(np.prod(s)) for s, _ in info.shapes.values())
    dtypes = sorted({d for _, d in info.shapes.values()})
    rec = {"path": str(info.path), "format": info.format, "bytes": info.num_bytes,
           "config": name, "variant": variant, "version": version, "parameters": numel,
           "tensors": len(info.shapes), "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
           "random_weights": info.random_weights, "loadable": problem is None}
    if problem is not None:
        rec["problem"] = problem
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
    _check_output_file(dst, "OUT", args.overwrite)
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
    _check_output_file(out, "OUT", args.overwrite)
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


def cmd_tune(args) -> int:
    """``sam2-fast tune``: :func:`sam2_fast.kernels.tuning.tune`, then the profile (TOML) and
    optionally every measurement (JSON), each written atomically."""
    import torch

    from .kernels import interpreter_enabled
    from .kernels import profile as kprofile
    from .kernels import tuning

    if args.dry:
        if not interpreter_enabled():
            raise CliError("--dry runs the Triton interpreter: set TRITON_INTERPRET=1 in the "
                           "environment (before anything imports triton)")
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            raise CliError("tune measures a GPU and CUDA is not available here (--dry checks "
                           "the plumbing on the CPU)")
        device = torch.device("cuda")
    variants = [v for v in (args.variants or "").split(",") if v.strip()]
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
        if not variants:
            variants = [inspect_checkpoint(ckpt).detect_config().variant]
        elif not ckpt.is_file():
            raise CliError(f"checkpoint not found: {ckpt}")
    variants = variants or list(tuning.VARIANTS)
    out = Path(args.out) if args.out else (
        Path(args.checkpoint).parent / kprofile.PROFILE_FILENAME if args.checkpoint
        else Path(kprofile.PROFILE_FILENAME))
    for p in [out] + ([Path(args.json)] if args.json else []):
        if p.is_dir() or not p.parent.is_dir():
            raise CliError(f"cannot write {p}: " + ("a folder" if p.is_dir()
                                                    else "its folder does not exist"))
    try:
        objects = [int(x) for x in args.objects.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--objects must be a comma list of integers, got {args.objects!r}") from None
    if not objects or min(objects) < 1:
        raise CliError(f"--objects must be positive integers, got {args.objects!r}")
    ops = [o for o in args.ops.split(",") if o.strip()]
    dtype = getattr(torch, args.dtype)
    say = (lambda s: None) if args.quiet else print
    t0 = time.perf_counter()
    prof, rows = tuning.tune(device, dtype=dtype, image_size=args.image_size,
                             variants=variants, objects=objects, ops=ops,
                             time_budget=args.time_budget, dry=args.dry, log=say)
    kprofile.save_profile(prof, out)
    if args.json:
        tmp = Path(args.json).with_name(Path(args.json).name + ".partial")
        tmp.write_text(json.dumps(dict(gpu=prof.gpu, precision=prof.precision,
                                       image_size=prof.image_size, variants=variants,
                                       rows=rows), indent=1, default=str))
        os.replace(tmp, args.json)
    if not args.quiet:
        for op in sorted(prof.entries):
            for bucket, c in sorted(prof.entries[op].items()):
                cfg = f" {c.config.name}" if c.config else ""
                sp = f" splits={c.splits}" if c.splits else ""
                tm = (f"  {c.ms:.4f} ms (torch {c.torch_ms:.4f})"
                      if c.ms is not None and c.torch_ms is not None else "")
                print(f"{op:20s} {bucket:40s} {c.impl}{cfg}{sp}{tm}")
        skipped = sum(1 for r in rows if "skipped" in r)
        print(f"profile for {prof.gpu} ({prof.precision}, {prof.image_size} px) written to "
              f"{out} in {time.perf_counter() - t0:.0f} s"
              + (f"; {skipped} candidates or shapes skipped (see --json)" if skipped else ""))
    return 0


_COMMANDS = {"video": cmd_video, "image": cmd_image, "info": cmd_info, "convert": cmd_convert,
             "checkpoint": cmd_checkpoint, "tune": cmd_tune}


# ============================================================================ batch
def _add_batch_parser(sub) -> None:
    import textwrap

    def paragraphs(*ps: str) -> str:
        return "\n\n".join(textwrap.fill(p, 79) for p in ps)

    b = sub.add_parser(
        "batch", help="track many videos listed in a JSON-lines manifest (local, or Ray)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=paragraphs(
            "Track every video of MANIFEST (one JSON object per line: id, video, prompts, "
            "optional model / image_size / max_frames; schema: sam2_fast/schemas/"
            "batch_manifest.schema.json). Every line is checked first; if any is bad, each bad "
            "line is reported with its number and nothing runs (unless --skip-invalid)."),
        epilog=paragraphs(
            "Output: DIR/<id>/ per video, as `sam2-fast video` writes it (palette PNG per frame, "
            "--format rle JSON, run.json, --overlay overlay.mp4) plus a DONE marker written "
            "last; the folder is staged as DIR/.<id>.partial-* and renamed when complete. A "
            "re-run skips videos with DONE and redoes the others from scratch. DIR/status.jsonl "
            "gets one line per finished/failed video (the latest line of an id wins); "
            "DIR/summary.json the counts of the run.",
            "Exit status: the number of videos that failed or were skipped as invalid, capped "
            "at 100 (0 = all done). 2 also means a usage error (bad flags, bad manifest without "
            "--skip-invalid, --ray without Ray): then nothing ran and no status was written.",
            "Model: a line's \"model\" / \"image_size\" win over --checkpoint/--model and "
            "--image-size, which are the defaults for lines without them; videos are grouped by "
            "(model, image_size) so each model loads once per worker. --config applies to the "
            "--checkpoint/--model model only.",
            "Ray: workers read the videos and write their results directly under DIR, so DIR "
            "(and the videos) must be on a filesystem mounted at the same path on every node "
            "(NFS, Lustre, GPFS, CephFS; it needs atomic rename, which s3fs-like mounts lack); "
            "the driver checks that each worker sees DIR, and writes status.jsonl alone. Write "
            "MANIFEST before --ray, or use --ray=ADDRESS."))
    b.add_argument("manifest", metavar="MANIFEST", help="JSON-lines manifest (relative paths in it "
                                                        "are relative to its folder)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder")
    b.add_argument("--format", choices=("png", "rle", "both"), default="png",
                   help="png: palette PNG per frame (default); rle: COCO-RLE JSON per frame; both")
    b.add_argument("--overlay", action="store_true", help="also write DIR/<id>/overlay.mp4")
    b.add_argument("--fps", type=_pos_float, help="overlay frame rate (default: the video's, or 24)")
    b.add_argument("--skip-invalid", action="store_true",
                   help="run the valid lines even if some are bad (bad ones are recorded as "
                        "invalid in the status and counted in the exit status)")
    b.add_argument("--shard", metavar="I/N",
                   help="run only the ids with crc32(id) %% N == I (status.shard-I-of-N.jsonl): "
                        "independent drivers can share one DIR")
    b.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install 'sam2_fast[ray]'): one actor per GPU; ADDRESS of a "
                        "cluster (auto, ray://host:10001); without it a local Ray instance")
    b.add_argument("--num-workers", type=_pos_int, metavar="N",
                   help="Ray: at most N GPU actors; without GPUs (or --device cpu) N one-CPU "
                        "actors (default 1)")
    b.add_argument("--workers-per-gpu", type=_pos_int, default=1, metavar="K",
                   help="Ray: K actors share each GPU (num_gpus=1/K) so that one's CPU work "
                        "(decode, resize) overlaps another's GPU work (default 1)")
    b.add_argument("--max-retries", type=_nonneg_int, default=2, metavar="N",
                   help="Ray: re-run a video whose worker process died up to N times (default 2)")
    _add_model_args(b)


def cmd_batch(args) -> int:
    """``sam2-fast batch MANIFEST --out DIR``: many videos, locally or on Ray (sam2_fast.batch)."""
    import importlib.util

    from . import batch, hub

    if args.ray is not None and importlib.util.find_spec("ray") is None:
        raise CliError("--ray needs Ray, which is not installed: pip install 'sam2_fast[ray]'")
    shard = None
    if args.shard is not None:
        try:
            shard = batch.parse_shard(args.shard)
        except ValueError as e:
            raise CliError(f"--shard: {e}") from None
    model = args.checkpoint or args.model
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise CliError(f"checkpoint not found: {args.checkpoint}")
    if args.model:
        model = hub.canonical_name(args.model)
    if args.ray is None:  # local: the device and backend are this machine's (Ray: the workers')
        _backend(args)  # CliError for --device cuda without CUDA, --backend triton that cannot run
    manifest = Path(args.manifest)
    if not manifest.is_file():
        raise CliError(f"manifest not found: {manifest}")
    try:
        with open(manifest, encoding="utf-8", errors="replace") as f:
            empty = not any(line.strip() for line in f)
    except OSError as e:
        raise CliError(f"cannot read manifest {manifest}: {e.strerror or e}") from None
    if empty:
        _warn(f"{manifest} has no lines: there is no video to run")
    if args.dry:
        default = batch.resolve_model(model, Path.cwd()) if model else None
        try:
            jobs, errors = batch.load_manifest(manifest, default_model=default)
        except OSError as e:
            raise CliError(f"cannot read manifest {manifest}: {e.strerror or e}") from None
        for e in errors:
            sys.stderr.write(f"{PROG}: error: {manifest}:{e}\n")
        done = sum(batch.is_done(args.out, j.id) for j in jobs)
        groups: Dict[Tuple[str, Optional[int]], int] = {}
        for j in jobs:
            key = (j.model or default, j.image_size or args.image_size)
            groups[key] = groups.get(key, 0) + 1
        plan = [("manifest", f"{manifest} ({len(jobs)} valid, {len(errors)} invalid line(s))"),
                ("output", f"{args.out} ({done} already done, {len(jobs) - done} to run)"),
                ("executor", "ray " + (args.ray or "(local instance)") if args.ray is not None else "local")]
        plan += [(f"model group {i + 1}", f"{m} @ {s or 'default'} px: {n} video(s)")
                 for i, ((m, s), n) in enumerate(groups.items())]
        _print_plan(plan)
        return EXIT_BAD_INPUT if errors and not args.skip_invalid else 0
    try:
        summary = batch.run_batch(
            manifest, args.out, "ray" if args.ray is not None else "local", model=model,
            config=args.config, image_size=args.image_size, device=args.device, dtype=args.dtype,
            backend=args.backend, format=args.format, overlay=args.overlay, fps=args.fps,
            skip_invalid=args.skip_invalid, shard=shard, progress=not args.quiet,
            ray_address=args.ray or None, num_workers=args.num_workers,
            workers_per_gpu=args.workers_per_gpu, max_retries=args.max_retries)
    except batch.ManifestInvalid as e:
        for err in e.errors:
            sys.stderr.write(f"{PROG}: error: {manifest}:{err}\n")
        sys.stderr.write(f"{PROG}: error: {len(e.errors)} invalid line(s) in {manifest}; nothing "
                         f"was run (fix them, or --skip-invalid to run the valid lines)\n")
        return EXIT_BAD_INPUT
    except ImportError as e:
        raise CliError(str(e)) from None
    except batch.BatchError as e:  # e.g. Ray workers that cannot see DIR
        raise CliError(str(e)) from None
    except ConnectionError as e:
        raise CliError(f"cannot connect to Ray at {args.ray or 'a local instance'}: {_one_line(e)}") from None
    if not args.quiet:
        print(summary.table())
    return summary.exit_code


_COMMANDS["batch"] = cmd_batch
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
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=f"examples:\n  {PROG} everything photo.jpg --model sam2.1_hiera_large --out masks/\n"
                              f"  {PROG} everything photo.jpg --checkpoint tiny.pt --points-per-side 16 "
                              f"--pred-iou-thresh 0.7 --out masks/",
                       description=_para("Segment everything in one image with the automatic mask "
                                         "generator (official SAM2AutomaticMaskGenerator arguments and "
                                         "defaults): masks.json (the generator's records, COCO RLE), "
                                         "overlay.png and result.json."))
    e.add_argument("image", metavar="IMAGE", help="an image file (any format Pillow reads)")
    _add_output_args(e, "output folder: masks.json (COCO RLE records), overlay.png, result.json")
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


def _read_rgb(path: Path, apply_exif: bool = True) -> Tuple[np.ndarray, int]:
    """(RGB uint8 image turned upright by its EXIF orientation unless told not to, the EXIF
    orientation found), as ``sam2-fast image`` reads it. CliError for a folder, a missing or
    unreadable file."""
    from .io.images import load_image

    if path.is_dir():
        raise CliError(f"IMAGE {path} is a folder: `{PROG} everything` takes one image file")
    if not path.is_file():
        raise CliError(f"image not found: {path}")
    try:
        return load_image(path, apply_exif=apply_exif)
    except ValueError as e:
        raise CliError(str(e)) from None


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
    backend = _backend(args)
    out_dir = Path(args.out)
    _check_out_dir(args, out_dir, [args.image, args.checkpoint])
    path = Path(args.image)
    image, orientation = _read_rgb(path, apply_exif=not args.raw_orientation)
    h, w = image.shape[:2]
    ckpt = _resolve_checkpoint(args)  # after the input checks: --model may download
    cfg, info = _model_plan(args, ckpt)
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
    with _staging(args, out_dir) as staging:
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
            "backend": backend, "backend_requested": args.backend,
            "random_weights": bool(random_note), "height": h, "width": w,
            "orientation": "raw" if args.raw_orientation else "applied", "exif_orientation": orientation,
            "generator": {k: v for k, v in kwargs.items() if k != "output_mode"},
            "num_masks": len(anns), "masks": "masks.json", "overlay": "overlay.png",
            "wall_s": round(wall, 3),
        }
        if random_note:
            result["note"] = random_note
        save_json(staging.path("result.json"), result)
        staging.commit()
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
        elif key in ("use_m2m", "multimask_output"):
            raise CliError(f"--amg {spec!r}: {key} takes true or false")
        else:
            try:
                kwargs[key] = int(text) if low.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise CliError(f"malformed --amg {spec!r}: {text!r} is not a number or true/false") from None
    check_generator_args(**kwargs)
    return {"kwargs": kwargs, "max_objects": args.max_objects or 255}


def _auto_prompts(model, frame: np.ndarray, frame_idx: int, auto: Dict[str, object]):
    """``video --auto`` on the stream: the automatic mask generator's masks of ``frame``, largest
    first, as mask prompts of objects 1..N. Returns (stream prompts, their VideoPrompt records).
    Raises CliError when it keeps no mask."""
    from .predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator

    anns = Sam2AutomaticMaskGenerator(model, **auto["kwargs"]).generate(frame)
    anns = sorted(anns, key=lambda a: -a["area"])[: auto["max_objects"]]
    if not anns:
        raise CliError(f"--auto: the automatic mask generator kept no mask on frame {frame_idx} "
                       "(try --amg pred_iou_thresh=... / --amg stability_score_thresh=...)")
    return ({i + 1: {"mask": a["segmentation"]} for i, a in enumerate(anns)},
            [VideoPrompt(i + 1, frame_idx) for i in range(len(anns))])


def _add_auto_objects(predictor, state, frame: np.ndarray, frame_idx: int,
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
        predictor.add_new_mask(state, frame_idx, i + 1, a["segmentation"])
    return [VideoPrompt(i + 1, frame_idx) for i in range(len(anns))]


_COMMANDS["everything"] = cmd_everything


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return msg or type(e).__name__


def _raise_terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
    raise Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sam2-fast`` console script.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success; 2 for bad input or an output that cannot be written (one line
        ``sam2-fast: error: ...`` on stderr, no traceback, no output left behind); 130 on
        Ctrl-C and 143 on SIGTERM (one line, the partial output removed). Unexpected internal
        errors propagate with their traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help/--version (0) and argparse errors (2)
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_BAD_INPUT
    from . import hub
    from .checkpoint import CheckpointError

    previous = None
    try:  # SIGTERM (timeout, kill, docker stop) unwinds like Ctrl-C; only the main thread can
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        previous = None
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
        return EXIT_INTERRUPTED
    except Terminated:
        sys.stderr.write(f"{PROG}: terminated (SIGTERM); partial output removed\n")
        return EXIT_TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
