"""Mask output: DAVIS palette PNGs, COCO-RLE JSON and coloured overlays (PNG / video).

* Palette PNGs follow the official ``tools/vos_inference.py`` (``put_per_obj_mask`` +
  ``save_ann_png``): one 8-bit palette PNG per frame, pixel value = object id (0 background),
  the DAVIS 2017 palette, lower object ids drawn over higher ones where masks overlap.
* RLE JSON: one file per frame, each object's mask as COCO RLE (``pycocotools.mask.encode``,
  column-major, ``counts`` as an ASCII string) with its area and bbox.
* Overlays: the frame blended with the palette colour of each object; written as a PNG (Pillow)
  or as a video (PyAV, H.264 ``yuv420p`` when available, else MPEG-4 Part 2).

Every writer writes to a temporary name next to the target and renames it when complete, so a
failure never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from . import av_errors

PathLike = Union[str, os.PathLike]


def _voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC / DAVIS colour map: (n, 3) uint8, colour i from the bits of i."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


#: The DAVIS 2017 palette (768 bytes, 256 RGB triplets), byte-identical to ``DAVIS_PALETTE`` in
#: the official ``tools/vos_inference.py``: index 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ...
DAVIS_PALETTE: bytes = _voc_colormap().tobytes()

#: PNG text key / JSON field marking outputs made with random (meaningless) weights.
RANDOM_WEIGHTS_NOTE = "made with RANDOM weights (sam2-fast checkpoint --random): masks are meaningless"


def _tmp_path(path: Path) -> Path:
    """``dir/name.ext`` -> ``dir/.name.partial.ext`` (keeps the extension for format sniffing)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def combine_object_masks(masks: Union[np.ndarray, Mapping[int, np.ndarray]],
                         obj_ids: Optional[Sequence[int]] = None) -> np.ndarray:
    """Pack per-object binary masks into one index mask (official ``put_per_obj_mask``).

    Args:
        masks: (N, H, W) or (N, 1, H, W) bool array with ``obj_ids`` (N ints), or a dict
            {obj_id: (H, W) bool}.
        obj_ids: object ids in 1..255 (the palette index written for each object).

    Returns:
        (H, W) uint8: 0 background, else the object id; where objects overlap, the lowest id wins
        (the official writes ids in descending order).

    Raises:
        ValueError: ids outside 1..255, a count mismatch, or masks of differing shapes.
    """
    if isinstance(masks, Mapping):
        obj_ids = list(masks.keys())
        arrs = [np.asarray(masks[k]) for k in obj_ids]
    else:
        m = np.asarray(masks)
        if m.ndim == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if m.ndim != 3:
            raise ValueError(f"masks must be (N, H, W) or (N, 1, H, W), got shape {m.shape}")
        if obj_ids is None or len(obj_ids) != m.shape[0]:
            raise ValueError(f"need one object id per mask: {m.shape[0]} masks, ids {obj_ids!r}")
        arrs = list(m)
    if not arrs:
        raise ValueError("no masks given")
    shape = arrs[0].shape[-2:]
    out = np.zeros(shape, dtype=np.uint8)
    for oid, mask in sorted(zip(obj_ids, arrs), key=lambda t: int(t[0]), reverse=True):
        oid = int(oid)
        if not 1 <= oid <= 255:
            raise ValueError(f"object id {oid} cannot be written to a palette PNG (use 1..255)")
        mask = np.asarray(mask)
        if mask.shape[-2:] != shape:
            raise ValueError(f"mask of object {oid} has shape {mask.shape}, expected {shape}")
        out[mask.reshape(shape).astype(bool)] = oid
    return out


def _save_png_atomic(img: Image.Image, path: Path, note: Optional[str]) -> Path:
    """Save ``img`` as PNG to a temporary name, then rename; ``note`` as text chunk ``sam2_fast``."""
    info = None
    if note:
        info = PngImagePlugin.PngInfo()
        info.add_text("sam2_fast", note)
    tmp = _tmp_path(path)
    try:
        img.save(tmp, format="PNG", pnginfo=info)
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_palette_png(path: PathLike, index_mask: np.ndarray, palette: bytes = DAVIS_PALETTE,
                     note: Optional[str] = None) -> Path:
    """Write an (H, W) uint8 index mask as an 8-bit palette PNG (official ``save_ann_png``),
    atomically. ``note`` is stored as a PNG text chunk ``sam2_fast``.

    Raises:
        ValueError: not a 2-D uint8 array. OSError: the file cannot be written.
    """
    index_mask = np.asarray(index_mask)
    if index_mask.ndim != 2 or index_mask.dtype != np.uint8:
        raise ValueError(f"index_mask must be (H, W) uint8, got {index_mask.shape} {index_mask.dtype}")
    img = Image.fromarray(index_mask)
    img.putpalette(palette)
    return _save_png_atomic(img, Path(path), note)


def load_palette_png(path: PathLike) -> Tuple[np.ndarray, Optional[List[int]]]:
    """Read a palette PNG (official ``load_ann_png``): ((H, W) uint8 index mask, palette list)."""
    with Image.open(path) as img:
        return np.array(img).astype(np.uint8), img.getpalette()


def encode_rle(masks: np.ndarray) -> List[dict]:
    """COCO RLE of binary masks (``pycocotools.mask.encode``).

    Args:
        masks: (N, H, W) or (N, 1, H, W) bool/0-1 array.

    Returns:
        N dicts ``{"size": [H, W], "counts": str}`` (JSON-serialisable; decode with
        :func:`decode_rle` or ``pycocotools.mask.decode`` after ``counts.encode()``).
    """
    from pycocotools import mask as mask_utils

    m = np.asarray(masks)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {m.shape}")
    rles = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def decode_rle(rles: Sequence[Mapping]) -> np.ndarray:
    """Inverse of :func:`encode_rle`: N RLE dicts -> (N, H, W) bool."""
    from pycocotools import mask as mask_utils

    objs = [{"size": list(r["size"]), "counts": r["counts"].encode("ascii")
             if isinstance(r["counts"], str) else r["counts"]} for r in rles]
    if not objs:
        raise ValueError("no RLE given")
    return mask_utils.decode(objs).transpose(2, 0, 1).astype(bool)


def rle_frame_record(frame_idx: int, obj_ids: Sequence[int], masks: np.ndarray,
                     frame_name: Optional[str] = None,
                     object_scores: Optional[Sequence[float]] = None,
                     note: Optional[str] = None) -> dict:
    """The JSON record of one frame: ``{"frame_index", "frame_name", "height", "width",
    "objects": [{"obj_id", "segmentation": COCO RLE, "area" (pixels), "bbox" [x, y, w, h]
    (pixels), "object_score" (optional logit)}], "note" (optional)}``.

    Args:
        masks: (N, H, W) bool, one per id in ``obj_ids``.
    """
    from pycocotools import mask as mask_utils

    m = np.asarray(masks)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.shape[0] != len(obj_ids):
        raise ValueError(f"{m.shape[0]} masks for {len(obj_ids)} object ids")
    rles = encode_rle(m)
    objects = []
    for i, (oid, rle) in enumerate(zip(obj_ids, rles)):
        coco = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        obj = {"obj_id": int(oid), "segmentation": rle, "area": int(mask_utils.area(coco)),
               "bbox": [float(v) for v in mask_utils.toBbox(coco)]}
        if object_scores is not None:
            obj["object_score"] = float(object_scores[i])
        objects.append(obj)
    rec = {"frame_index": int(frame_idx), "frame_name": frame_name or f"{int(frame_idx):05d}",
           "height": int(m.shape[1]), "width": int(m.shape[2]), "objects": objects}
    if note:
        rec["note"] = note
    return rec


def _json_safe(obj):
    """``obj`` with every non-finite float (NaN, +-inf) replaced by None: strict JSON has no
    such numbers (an empty mask's stability score is 0 / 0, as in the official generator)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def save_json(path: PathLike, obj) -> Path:
    """Write ``obj`` as indented, strict JSON (NaN / infinite floats become ``null``),
    atomically (temp file + rename). Raises OSError."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_json_safe(obj), f, indent=1, allow_nan=False)
            f.write("\n")
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def overlay_masks(image: np.ndarray, index_mask: np.ndarray, palette: bytes = DAVIS_PALETTE,
                  alpha: float = 0.5, banner: Optional[str] = None) -> np.ndarray:
    """Blend each object's palette colour over an RGB image.

    Args:
        image: (H, W, 3) uint8 RGB.
        index_mask: (H, W) uint8 object ids (0 = background, left untouched).
        alpha: colour weight in [0, 1] on object pixels.
        banner: optional text drawn in the top-left corner (e.g. the random-weights warning).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if index_mask.shape != img.shape[:2]:
        raise ValueError(f"index_mask {index_mask.shape} does not match the image {img.shape[:2]}")
    colours = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)
    out = img.astype(np.float32)
    fg = index_mask > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[index_mask[fg]].astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if banner:
        pil = Image.fromarray(out)
        draw = ImageDraw.Draw(pil)
        size = max(10, img.shape[0] // 30)
        try:
            font = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1
            font = ImageFont.load_default()
        x0, y0, x1, y1 = draw.textbbox((4, 4), banner, font=font)
        draw.rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), fill=(0, 0, 0))
        draw.text((4, 4), banner, fill=(255, 64, 64), font=font)
        out = np.asarray(pil)
    return out


def save_png(path: PathLike, image: np.ndarray, note: Optional[str] = None) -> Path:
    """Write an (H, W, 3) uint8 RGB or (H, W) bool/uint8 image as PNG, atomically (``note`` as
    a text chunk ``sam2_fast``). Raises OSError when the file cannot be written."""
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return _save_png_atomic(Image.fromarray(arr), Path(path), note)


class VideoWriter:
    """Write RGB frames to a video file with PyAV; the file appears under its name only after
    :meth:`close` succeeded (a context manager; an exception inside discards the file).

    Args:
        path: output path; the container is chosen from the extension (.mp4, .mkv, .mov ...).
        width, height: frame size in pixels (odd sizes are padded by one black row/column,
            as ``yuv420p`` needs even sizes).
        fps: frames per second (float or Fraction).
        codec: ``"libx264"`` (default when PyAV has it), else ``"mpeg4"``.
        metadata: container metadata (e.g. ``{"comment": ...}``).

    Raises:
        ValueError: bad size/fps; RuntimeError: the encoder cannot be opened or a frame of the
        wrong size is written; OSError: the file cannot be written.
    """

    def __init__(self, path: PathLike, width: int, height: int, fps: float = 24.0,
                 codec: Optional[str] = None, metadata: Optional[Dict[str, str]] = None) -> None:
        import av

        if width <= 0 or height <= 0:
            raise ValueError(f"bad video size {width}x{height}")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self._tmp = _tmp_path(self.path)
        if codec is None:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except av_errors() as e:
            raise OSError(f"cannot write video {self.path}: {e}") from e
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self._stream = self._container.add_stream(codec, rate=rate)
            self._stream.width = self.width + (self.width % 2)
            self._stream.height = self.height + (self.height % 2)
            self._stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self._stream.options = {"crf": "20", "preset": "veryfast"}
            for k, v in (metadata or {}).items():
                self._container.metadata[k] = v
        except (*av_errors(), TypeError, KeyError) as e:
            self._abort()
            raise RuntimeError(f"cannot open the {codec} encoder for {self.path}: {e}") from e
        self._closed = False
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one (height, width, 3) uint8 RGB frame."""
        import av

        f = np.asarray(frame)
        if f.shape != (self.height, self.width, 3) or f.dtype != np.uint8:
            raise RuntimeError(f"video frame must be ({self.height}, {self.width}, 3) uint8, got "
                               f"{f.shape} {f.dtype}")
        if self._stream.width != self.width or self._stream.height != self.height:
            f = np.pad(f, ((0, self._stream.height - self.height),
                           (0, self._stream.width - self.width), (0, 0)))
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def _abort(self) -> None:
        try:
            self._container.close()
        except av_errors():
            pass  # already failing: the partial file is removed below
        self._tmp.unlink(missing_ok=True)
        self._closed = True

    def close(self) -> Path:
        """Flush the encoder, close the file and move it to its final name."""
        if self._closed:
            return self.path
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._closed = True
            _commit(self._tmp, self.path)
        except BaseException:
            self._abort()
            raise
        return self.path

    def abort(self) -> None:
        """Discard the partial file."""
        if not self._closed:
            self._abort()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_video_frames(path: PathLike) -> Iterable[np.ndarray]:
    """Decode a video file with PyAV: yields (H, W, 3) uint8 RGB frames (used by the tests and
    to check overlays). Raises RuntimeError for an undecodable file."""
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, OSError) as e:
        raise RuntimeError(f"cannot decode video {path}: {e}") from e


__all__ = ["DAVIS_PALETTE", "RANDOM_WEIGHTS_NOTE", "combine_object_masks", "save_palette_png",
           "load_palette_png", "encode_rle", "decode_rle", "rle_frame_record", "save_json",
           "overlay_masks", "save_png", "VideoWriter", "read_video_frames"]
