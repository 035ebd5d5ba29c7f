"""How a prompt is checked: the one set of rules for points, labels, boxes and masks used by every
entry point (``Sam2ImagePredictor``, ``Sam2VideoPredictor``, the stream behind ``Sam2`` and the
``sam2-fast`` command line).

The rules (each entry point calls the function named in brackets):

* **Numbers.** Coordinates are numeric array-likes (lists, numpy arrays, torch tensors on any
  device). NaN and infinity are a ValueError everywhere, naming the argument.
* **Points and labels** go together; ``points`` is (N, 2) x, y (or (B, N, 2) where the entry
  point batches prompts: the image predictor), ``labels`` has the matching leading shape and
  holds integers in :data:`VALID_LABELS` (1 positive click, 0 negative click, 2/3 box
  corners, -1 padding), as the official prompt encoder reads them.
* **Boxes** are (4,) or (B, 4) x0, y0, x1, y1 with x1 >= x0 and y1 >= y0.
* **Coordinates outside the image** are accepted in the Python APIs, as the official does: the
  prompt encoder's positional encoding is defined beyond the border and a detector box that
  pokes a few pixels out (x0 = -2.5, x1 = W + 3) is common. ``strict=True`` (the one strictness
  flag) refuses them; the command line is strict for clicks (a click outside the frame is more
  likely a typo than intent) and clips boxes to the frame with :func:`clip_boxes`, recording
  that it did so (:func:`command_line_rules`).
* **No boxes.** An empty (0, 4) box array (a detector that found nothing) gives an empty result
  in the image predictor (:func:`image_prompts` marks it); the video and stream APIs take one
  box per object and raise a ValueError naming ``box``.
* **Masks.** A video or stream mask prompt is one (H, W) bool/0-1 array at the video size or at
  the model input size (S, S), finite (:func:`check_mask`); the official accepts any size and
  stretches it. The image predictor's ``mask_input`` is (1, S/4, S/4) or (B, 1, S/4, S/4)
  low-resolution logits (:func:`image_prompts`).

The official checks almost nothing (``SAM2ImagePredictor._prep_prompts`` converts whatever it is
given); inverted boxes and labels outside :data:`VALID_LABELS` silently give meaningless masks
there and are errors here, in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

#: point labels the prompt encoder gives a meaning: -1 padding, 0 negative, 1 positive,
#: 2 top-left box corner, 3 bottom-right box corner
VALID_LABELS = (-1, 0, 1, 2, 3)


def _numeric(x, name: str) -> np.ndarray:
    """``x`` as a float64 numpy copy (never aliasing the caller's data). Raises ValueError
    naming ``name`` for non-numeric input or NaN/inf."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        if np.asarray(x).dtype.kind in "USO":  # numpy would parse "1" as 1.0: text is not a number
            raise TypeError(f"{np.asarray(x).dtype.name} values")
        arr = np.array(x, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array-like, got {type(x).__name__}: {e}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _labels(x, name: str) -> np.ndarray:
    """Labels as an int32 numpy copy. Raises ValueError naming ``name`` for non-integers or
    values outside VALID_LABELS."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.array(x, copy=True)
        if arr.dtype.kind in "USO":  # numpy would parse "1" as 1: text is not a label
            raise TypeError(f"{arr.dtype.name} values")
        as_float = arr.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be integers in {VALID_LABELS}, got {type(x).__name__}: {e}") from None
    if arr.dtype == bool or not np.all(np.isfinite(as_float)) or not np.all(np.mod(as_float, 1) == 0):
        raise ValueError(f"{name} must be integers in {VALID_LABELS} (1 positive, 0 negative, "
                         f"2/3 box corners, -1 padding), got {arr.tolist()}")
    bad = ~np.isin(as_float, VALID_LABELS)
    if bad.any():
        raise ValueError(f"{name} must be in {VALID_LABELS} (1 positive, 0 negative, 2/3 box "
                         f"corners, -1 padding); got {np.unique(as_float[bad]).astype(int).tolist()}")
    return as_float.astype(np.int32)


def check_inside(coords: np.ndarray, frame_size: Tuple[float, float], name: str,
                 labels: Optional[np.ndarray] = None) -> None:
    """The strict rule: every (x, y) of ``coords`` (..., 2) lies in [0, W] x [0, H], with
    ``frame_size`` = (H, W) in the coordinates' units (pixels, or (1, 1) for normalized
    coordinates). Points whose label is -1 (padding) are not checked.

    Raises:
        ValueError: naming ``name``, the frame and the offending coordinates.
    """
    h, w = frame_size
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if labels is not None:
        xy = xy[np.asarray(labels).reshape(-1) != -1]
    out = (xy[:, 0] < 0) | (xy[:, 0] > w) | (xy[:, 1] < 0) | (xy[:, 1] > h)
    if out.any():
        x, y = xy[out][0]
        raise ValueError(f"{name} ({x:g}, {y:g}) is outside the {w:g}x{h:g} frame "
                         f"(x in [0, {w:g}], y in [0, {h:g}])")


def check_points(points, labels, *, batched: bool = False, points_name: str = "points",
                 labels_name: str = "labels", frame_size: Optional[Tuple[float, float]] = None,
                 strict: bool = False) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Check clicks.

    Args:
        points: (N, 2) x, y, or (B, N, 2) when ``batched`` (else (1, N, 2) at most).
        labels: (N,) or (B, N) / (1, N) integers in :data:`VALID_LABELS`.
        batched: the entry point takes B prompt sets at once (the image predictor).
        points_name, labels_name: the caller's argument names, used in messages.
        frame_size: (H, W) in the units of ``points``; needed with ``strict``.
        strict: refuse points outside the frame (see :func:`check_inside`).

    Returns:
        None when both are None, else (coords (B, N, 2) float32, labels (B, N) int32) with
        B = 1 unless batched; N may be 0 (the caller decides what no points mean).

    Raises:
        ValueError: one given without the other, a malformed shape, a bad label, NaN/inf,
            or (strict) a point outside the frame. The message names the argument.
    """
    if points is None and labels is None:
        return None
    if (points is None) != (labels is None):
        raise ValueError(f"{points_name} and {labels_name} must be given together")
    pc = _numeric(points, points_name)
    pl = _labels(labels, labels_name)
    if pc.ndim == 2 and pc.shape[-1] == 2:
        pc = pc[None]
    if pl.ndim == 1:
        pl = pl[None]
    if pc.ndim != 3 or pc.shape[-1] != 2 or (not batched and pc.shape[0] != 1):
        want = "(N, 2) or (B, N, 2)" if batched else "(N, 2) or (1, N, 2)"
        raise ValueError(f"{points_name} must be {want} x, y; got shape {np.shape(points)}")
    if pl.shape != pc.shape[:2]:
        raise ValueError(f"{labels_name} must be of shape {pc.shape[1:2] if pc.shape[0] == 1 else pc.shape[:2]} "
                         f"to match {points_name} {np.shape(points)}; got {np.shape(labels)}")
    if strict:
        if frame_size is None:
            raise ValueError("strict point checks need the frame size")
        check_inside(pc, frame_size, points_name, pl)
    return pc.astype(np.float32), pl


def check_boxes(box, *, many: bool = False, name: str = "box",
                frame_size: Optional[Tuple[float, float]] = None, strict: bool = False) -> np.ndarray:
    """Check boxes.

    Args:
        box: (4,) x0, y0, x1, y1, or (B, 4) when ``many`` (B may be 0); with ``many=False``
            any array of 4 numbers ((4,), (1, 4), (2, 2), (1, 2, 2)) as the official video
            predictor reshapes it.
        many: the entry point takes several boxes (the image predictor).
        name: the caller's argument name, used in messages.
        frame_size, strict: as :func:`check_points`.

    Returns:
        (B, 4) float32 (B = 1 unless ``many``).

    Raises:
        ValueError: a malformed shape, an empty box where one box is needed, x1 < x0 or
            y1 < y0, NaN/inf, or (strict) a corner outside the frame. Names ``name``.
    """
    bx = _numeric(box, name)
    if many:
        if bx.shape == (4,):
            bx = bx[None]
        if bx.ndim != 2 or bx.shape[1] != 4:
            raise ValueError(f"{name} must be (4,) or (B, 4) as x0, y0, x1, y1; got shape {bx.shape}")
    else:
        if bx.size == 0:
            raise ValueError(f"{name} is empty (shape {bx.shape}): a video prompt takes one box "
                             f"x0, y0, x1, y1 per object; pass box=None when there is none")
        if bx.size != 4:
            raise ValueError(f"{name} must hold 4 numbers x0, y0, x1, y1; got shape {bx.shape}")
        bx = bx.reshape(1, 4)
    inverted = (bx[:, 2] < bx[:, 0]) | (bx[:, 3] < bx[:, 1])
    if inverted.any():
        raise ValueError(f"{name} must have x1 >= x0 and y1 >= y0 (x0, y0, x1, y1); got "
                         f"{bx[inverted][0].tolist()}")
    if strict:
        if frame_size is None:
            raise ValueError("strict box checks need the frame size")
        check_inside(bx.reshape(-1, 2), frame_size, name)
    return bx.astype(np.float32)


def clip_boxes(boxes: np.ndarray, frame_size: Tuple[float, float], name: str = "--box"
               ) -> Tuple[np.ndarray, np.ndarray]:
    """The command line's rule for boxes crossing the border: clip them to the frame.

    Args:
        boxes: (B, 4) x0, y0, x1, y1 pixels (checked by :func:`check_boxes`).
        frame_size: (H, W) pixels.

    Returns:
        (clipped (B, 4) float32, changed (B,) bool: which boxes were clipped).

    Raises:
        ValueError: a box that does not overlap the frame at all (nothing would be left).
    """
    h, w = frame_size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    c = b.copy()
    c[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    c[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    # no overlap: clipping collapses an axis that had an extent, or moves a degenerate one
    gone = np.zeros(len(b), dtype=bool)
    for lo, hi in ((0, 2), (1, 3)):
        had = b[:, hi] > b[:, lo]
        gone |= (had & (c[:, hi] <= c[:, lo])) | (~had & (c[:, lo] != b[:, lo]))
    if gone.any():
        x0, y0, x1, y1 = b[gone][0]
        raise ValueError(f"{name} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the {w:g}x{h:g} "
                         f"frame")
    return c.astype(np.float32), (c != b).any(axis=1)


def command_line_rules(points: Sequence[Sequence[float]], labels: Sequence[int],
                       boxes: Sequence[Sequence[float]], frame_size: Tuple[int, int], where: str = "",
                       names: Tuple[str, str] = ("--point", "--box")) -> Tuple[list, list]:
    """The command line's policy once the frame size is known (``sam2-fast image``/``video``;
    also right for other file-driven jobs): strict for clicks (:func:`check_points` with
    ``strict=True``), boxes crossing the border clipped (:func:`clip_boxes`).

    Args:
        points: [(x, y), ...] pixels; labels: their labels; boxes: [(x0, y0, x1, y1), ...].
        frame_size: (H, W) pixels; where: appended to the names in messages.
        names: what the points and the boxes are called in messages (the options by default;
            a manifest's ``points`` / ``box``).

    Returns:
        (boxes as used, the boxes as given where they were clipped, else None), as tuples.

    Raises:
        ValueError: a click outside the frame, a box entirely outside it, NaN/inf, bad labels.
    """
    if len(points):
        check_points(np.asarray(points, dtype=np.float64), np.asarray(labels), frame_size=frame_size,
                     strict=True, points_name=f"{names[0]}{where}")
    used, given = [], []
    if len(boxes):
        b = check_boxes(np.asarray(boxes, dtype=np.float64), many=True, name=f"{names[1]}{where}")
        clipped, changed = clip_boxes(b.astype(np.float64), frame_size, f"{names[1]}{where}")
        for orig, c, ch in zip(boxes, clipped, changed):
            used.append(tuple(float(v) for v in c) if ch else tuple(orig))
            given.append(tuple(orig) if ch else None)
    return used, given


@dataclass
class ImagePrompts:
    """Checked prompts of the image predictor, still in the caller's units.

    Attributes:
        coords: (B, N, 2) float32 or None; labels: (B, N) int32 or None.
        boxes: (B, 4) float32 or None.
        mask_input: (B, 1, h, w) float32 low-res logits or None.
        empty: an empty (0, 4) box array was given: the result has no masks.
    """

    coords: Optional[np.ndarray]
    labels: Optional[np.ndarray]
    boxes: Optional[np.ndarray]
    mask_input: Optional[np.ndarray]
    empty: bool = False


def image_prompts(point_coords, point_labels, box, mask_input, *,
                  mask_input_size: Tuple[int, int],
                  frame_size: Optional[Tuple[float, float]] = None,
                  strict: bool = False) -> ImagePrompts:
    """The rules for ``Sam2ImagePredictor.predict`` (and each image of ``predict_batch``).

    Args:
        point_coords: (N, 2) or (B, N, 2); point_labels: (N,) or (B, N).
        box: (4,) or (B, 4); (0, 4) means no object (an empty result).
        mask_input: (1, h, w) or (B, 1, h, w) low-res logits, (h, w) = ``mask_input_size``.
        frame_size, strict: as :func:`check_points` (the predictor is not strict).

    Raises:
        ValueError: as :func:`check_points` / :func:`check_boxes`; points given as an empty
            array without a box; batch sizes of points, boxes and masks that differ; an empty
            box array together with points or a mask.
    """
    pts = check_points(point_coords, point_labels, batched=True, points_name="point_coords",
                       labels_name="point_labels", frame_size=frame_size, strict=strict)
    boxes = None
    if box is not None:
        boxes = check_boxes(box, many=True, name="box", frame_size=frame_size, strict=strict)
    coords = labels = None
    if pts is not None:
        coords, labels = pts
        if coords.shape[1] == 0:
            if boxes is None:
                raise ValueError("point_coords is empty; pass None for no points")
            coords = labels = None  # no clicks besides the box(es)
    mi = None
    if mask_input is not None:
        mi = _numeric(mask_input, "mask_input")
        if mi.ndim == 3:
            mi = mi[None]
        if mi.ndim != 4 or mi.shape[1] != 1 or tuple(mi.shape[-2:]) != tuple(mask_input_size):
            h, w = mask_input_size
            raise ValueError(f"mask_input must be (1, {h}, {w}) or (B, 1, {h}, {w}) low-res logits; "
                             f"got shape {np.shape(mask_input)}")
        mi = mi.astype(np.float32)
    if boxes is not None and boxes.shape[0] == 0:
        if coords is not None or mi is not None:
            raise ValueError("box is empty (0 boxes) but point_coords or mask_input were given: "
                             "pass box=None to use them, or drop them for an empty result")
        return ImagePrompts(None, None, None, None, empty=True)
    if coords is not None and boxes is not None and coords.shape[0] != boxes.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes but {coords.shape[0]} point batches; they must match")
    n_prompts = coords.shape[0] if coords is not None else (boxes.shape[0] if boxes is not None else None)
    if mi is not None and n_prompts is not None and mi.shape[0] != n_prompts:
        what = "point batches" if coords is not None else "boxes"
        raise ValueError(f"mask_input holds {mi.shape[0]} masks but there are {n_prompts} {what}; "
                         "give one mask per prompt (B, 1, h, w)")
    return ImagePrompts(coords, labels, boxes, mi)


def video_points_and_box(points, labels, box, *, clear_old_points: bool = True
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The rules for ``Sam2VideoPredictor.add_new_points_or_box``: clicks and/or one box of one
    object on one frame, as the official stores them.

    Args:
        points: (N, 2) or (1, N, 2) x, y; labels: (N,) or (1, N); box: 4 numbers or None.
        clear_old_points: False appends to the frame's clicks, which a box cannot follow.

    Returns:
        (coords (1, M, 2) float32, labels (1, M) int32) CPU tensors, the box first as two
        points with labels 2 and 3 (the official order), in the caller's units.

    Raises:
        ValueError: no prompt at all, a box with ``clear_old_points=False``, an empty box, and
            everything :func:`check_points` / :func:`check_boxes` raise.
    """
    if points is None and labels is None and box is None:
        raise ValueError("at least one of points or box must be provided as input")
    pts = check_points(points, labels)
    if box is not None and not clear_old_points:
        raise ValueError("cannot add a box with clear_old_points=False: a box must come before any "
                         "click on the frame (use clear_old_points=True)")
    coords = np.zeros((1, 0, 2), np.float32)
    lbs = np.zeros((1, 0), np.int32)
    if pts is not None:
        coords, lbs = pts
    if box is not None:
        b = check_boxes(box)
        coords = np.concatenate([b.reshape(1, 2, 2), coords], axis=1)
        lbs = np.concatenate([np.array([[2, 3]], np.int32), lbs], axis=1)
    if coords.shape[1] == 0:
        raise ValueError("points is empty and there is no box: give at least one point or a box")
    return torch.from_numpy(coords), torch.from_numpy(lbs)


def check_mask(mask, sizes: Sequence[Tuple[int, int]], name: str = "mask") -> torch.Tensor:
    """The rule for a mask prompt (video ``add_new_mask``, a stream's ``"mask"``).

    Args:
        mask: (H, W) bool or integer (nonzero = object) or float 0/1 array-like or tensor (any
            device). Float masks with other values are refused: the official casts arrays to
            bool (nonzero = object) but passes float tensors on as they are (thresholded at 0.5
            only when resized), so probabilities or logits would mean different things.
        sizes: the accepted (H, W): the video size and the model input size (S, S).

    Returns:
        (H, W) bool tensor on the mask's device (CPU for arrays).

    Raises:
        ValueError: not 2-D, another size, NaN/inf, float values other than 0/1, non-numeric.
            Names ``name``.
    """
    if isinstance(mask, torch.Tensor):
        m = mask.detach()
    else:
        try:
            m = torch.as_tensor(np.asarray(mask))
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{name} must be an (H, W) bool array, got {type(mask).__name__}: {e}") from None
    if m.dim() != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {tuple(m.shape)}")
    if tuple(m.shape) not in [tuple(s) for s in sizes]:
        want = " or ".join(str(tuple(s)) for s in sizes)
        raise ValueError(f"{name} has size {tuple(m.shape)}; expected {want} (the video size or "
                         f"the model input size)")
    if m.dtype != torch.bool:
        if not (m.dtype.is_floating_point or m.dtype in (torch.uint8, torch.int8, torch.int16,
                                                         torch.int32, torch.int64)):
            raise ValueError(f"{name} must be bool or numeric, got {m.dtype}")
        if m.dtype.is_floating_point:
            if not torch.isfinite(m).all():
                raise ValueError(f"{name} contains NaN or infinite values")
            if not ((m == 0) | (m == 1)).all():
                lo, hi = m.min().item(), m.max().item()
                raise ValueError(f"{name} is a float mask with values in [{lo:g}, {hi:g}], not 0/1: "
                                 f"threshold it first (probabilities: {name} > 0.5, logits: "
                                 f"{name} > 0)")
    return m.bool()


_STREAM_KEYS = ("points", "labels", "box", "mask", "frame_idx")


def check_obj_id(obj_id, name: str = "obj_id"):
    """The rule for a Python API object id (video predictor, stream): any hashable scalar, as
    the official, except None and booleans (``True == 1`` would silently join object 1);
    numpy integers become ints, so ``np.int64(1)`` and ``1`` are one object. (The command
    line and batch manifests take 1..255, the palette indices.) Returns the id.

    Raises:
        ValueError: None, a bool, a tensor/array, an unhashable value. Names ``name``.
    """
    if obj_id is None or isinstance(obj_id, (bool, np.bool_, torch.Tensor, np.ndarray)):
        raise ValueError(f"{name} must be a hashable scalar id such as an int or a str, got {obj_id!r}")
    try:
        hash(obj_id)
    except TypeError:
        raise ValueError(f"{name} must be a hashable scalar id such as an int or a str, got "
                         f"{type(obj_id).__name__} {obj_id!r}") from None
    return int(obj_id) if isinstance(obj_id, np.integer) else obj_id


def check_flag(value, name: str) -> bool:
    """A True/False argument (numpy bools too). Raises ValueError naming ``name`` for anything
    else: a truthy string such as ``"no"`` is not read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_count(value, name: str, minimum: int = 0) -> int:
    """A whole-number argument >= ``minimum`` (numpy ints too) as an int. Raises ValueError
    naming ``name`` for anything else: bools (True is not 1), floats (2.5 is not cut to 2),
    strings."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def stream_prompt(obj_id, prompt, frame_size: Tuple[int, int], model_size: int):
    """The rules for one object's prompt in a stream (``Sam2.predict_video_frame``).

    Args:
        obj_id: the object id (named in messages).
        prompt: ``{"points", "labels", "box", "mask", "frame_idx"}`` (all optional; frame_idx is
            the stream's business and is not checked here).
        frame_size: (H, W) of the frame in pixels; model_size: S.

    Returns:
        ``("mask", (H, W) bool tensor)`` or ``("points", coords (1, M, 2) float32, labels (1, M)
        int32)`` CPU tensors in frame pixels, the box first as labels 2/3.

    Raises:
        ValueError: not a dict, unknown keys, a mask combined with points/box, and everything
            :func:`video_points_and_box` / :func:`check_mask` raise; messages name ``obj_id``.
    """
    if not isinstance(prompt, dict):
        raise ValueError(f"prompt for obj_id {obj_id!r} must be a dict with points/labels/box/mask")
    unknown = set(prompt) - set(_STREAM_KEYS)
    if unknown:
        raise ValueError(f"prompt for obj_id {obj_id!r}: unknown keys {sorted(unknown)}")
    if all(prompt.get(k) is None for k in ("points", "labels", "box", "mask")):
        raise ValueError(f"prompt for obj_id {obj_id!r} has no points, box or mask")
    try:
        if prompt.get("mask") is not None:
            if any(prompt.get(k) is not None for k in ("points", "labels", "box")):
                raise ValueError("a mask cannot be combined with points or a box")
            return "mask", check_mask(prompt["mask"], [frame_size, (model_size, model_size)])
        coords, labels = video_points_and_box(prompt.get("points"), prompt.get("labels"), prompt.get("box"))
    except ValueError as e:
        raise ValueError(f"prompt for obj_id {obj_id!r}: {e}") from None
    return "points", coords, labels


__all__ = ["VALID_LABELS", "ImagePrompts", "check_boxes", "check_flag", "check_obj_id", "check_inside",
           "check_mask", "check_points", "clip_boxes", "command_line_rules", "image_prompts", "stream_prompt",
           "video_points_and_box"]
