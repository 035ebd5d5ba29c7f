"""Probing and reading a video for the command line: a folder of JPEG/PNG frames or a file
PyAV decodes (.mp4 ...). :func:`open_video` reads the frame count, size, frame rate and
orientation without decoding everything; :func:`read_frames` decodes a range of frames as RGB
uint8 arrays, turned upright (EXIF orientation of JPEG frames, the display-matrix rotation of
phone videos) unless told to keep the stored pixels.

Errors are ValueErrors with a one-line message naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from . import av_errors
from .frames import list_frame_files
from .images import image_size, load_image


class _NoVideo(Exception):
    """Raised inside the PyAV block for a file without usable frames (kept apart from the
    ValueErrors PyAV itself raises)."""


@dataclass
class VideoSource:
    """A video: its frames can be read by index range with :func:`read_frames`.

    Attributes:
        path, kind (``"folder"`` | ``"file"``), num_frames, fps (None for folders);
        width, height: the size of the frames :func:`read_frames` returns (after the
            orientation, when applied); frame_files: the files of a folder;
        apply_orientation: frames are turned upright (EXIF orientation of each frame of a
            folder; the display-matrix rotation of a video file);
        exif_orientation: the EXIF orientation tag of frame 0 of a folder (1..8), None for files;
        rotation: the display-matrix rotation of a video file (degrees counter-clockwise, as
            PyAV's ``VideoFrame.rotation``), 0 for folders.
    """

    path: Path
    kind: str  # "folder" | "file"
    num_frames: int
    width: int
    height: int
    fps: Optional[float]
    frame_files: Optional[List[str]] = None
    apply_orientation: bool = True
    exif_orientation: Optional[int] = None
    rotation: int = 0

    def frame_name(self, idx: int) -> str:
        if self.frame_files is not None:
            return os.path.splitext(os.path.basename(self.frame_files[idx]))[0]
        return f"{idx:05d}"

    def orientation_record(self) -> dict:
        """What run.json says about the orientation."""
        rec = {"orientation": "applied" if self.apply_orientation else "raw"}
        if self.kind == "folder":
            rec["exif_orientation"] = self.exif_orientation
        else:
            rec["rotation"] = self.rotation
        return rec


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _upright(arr: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded frame by its display-matrix rotation (degrees counter-clockwise; flips
    in the matrix are not applied)."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


def open_video(path_str: str, apply_orientation: bool = True) -> VideoSource:
    """Probe a video folder or file (frame count, size, fps, orientation) without decoding it
    all (a file's first frame is decoded for its rotation).

    Args:
        apply_orientation: report (and later read) frames turned upright: each JPEG's EXIF
            orientation, a video file's display-matrix rotation (phone videos).

    Raises:
        ValueError: a missing/empty folder, a single image, an unreadable file.
    """
    path = Path(path_str)
    if path.is_dir():
        files = list_frame_files(path)
        try:
            w, h, orientation = image_size(files[0], apply_orientation)
        except ValueError as e:
            raise ValueError(str(e).replace("cannot read image", "cannot read video frame", 1)) from None
        return VideoSource(path, "folder", len(files), w, h, None, files, apply_orientation, orientation)
    if not path.exists():
        raise ValueError(f"video not found: {path}")
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        raise ValueError(f"{path} is a single image: pass the folder of frames (or use `sam2-fast image`)")
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise _NoVideo(f"cannot read video {path}: no video stream")
            st = c.streams.video[0]
            n = int(st.frames)
            rate = st.average_rate or st.guessed_rate
            w, h = st.codec_context.width, st.codec_context.height
            if not w or not h:
                raise _NoVideo(f"cannot read video {path}: no frame size")
            first = next(iter(c.decode(st)), None)
            if first is None:
                raise _NoVideo(f"cannot read video {path}: no frames")
            rotation = int(round(first.rotation or 0))
        if n <= 0:  # container without a frame count: count the packets (no decoding)
            with av.open(str(path)) as c:
                n = sum(1 for pkt in c.demux(c.streams.video[0]) if pkt.size)
        if n <= 0:
            raise _NoVideo(f"cannot read video {path}: no frames")
    except _NoVideo as e:
        raise ValueError(str(e)) from None
    except av_errors() as e:
        raise ValueError(f"cannot read video {path}: {_first_line(e)}") from None
    if apply_orientation and int(round(rotation / 90.0)) % 2:
        w, h = h, w
    return VideoSource(path, "file", n, int(w), int(h), float(rate) if rate else None,
                       apply_orientation=apply_orientation, rotation=rotation)


def iter_source_frames(src: VideoSource, lo: int = 0, hi: Optional[int] = None) -> Iterator[np.ndarray]:
    """Decode RGB uint8 frames lo..hi (inclusive; None = to the end) one at a time, turned
    upright when ``src.apply_orientation``; PIL modes converted by
    :func:`sam2_fast.io.images.to_rgb`. Nothing beyond the current frame is held.

    Raises (while iterating):
        ValueError: an unreadable frame, or a frame of another size than frame 0 (naming it).
    """

    def checked(name: str, arr: np.ndarray) -> np.ndarray:
        if arr.shape[:2] != (src.height, src.width):
            raise ValueError(f"video frame {name} is {arr.shape[1]}x{arr.shape[0]} but frame 0 is "
                             f"{src.width}x{src.height}: all frames must have one size")
        return arr

    if src.kind == "folder":
        last = src.num_frames - 1 if hi is None else hi
        for f in src.frame_files[lo:last + 1]:
            try:
                arr, _ = load_image(f, src.apply_orientation)
            except ValueError as e:
                raise ValueError(str(e).replace("cannot read image", "cannot read video frame", 1)) from None
            yield checked(f, arr)
        return
    import av

    try:
        with av.open(str(src.path)) as c:
            for i, fr in enumerate(c.decode(video=0)):
                if i < lo:
                    continue
                arr = fr.to_ndarray(format="rgb24")
                if src.apply_orientation:
                    arr = _upright(arr, int(round(fr.rotation or 0)))
                yield checked(f"frame {i}", arr)
                if hi is not None and i >= hi:
                    break
    except av_errors() as e:
        raise ValueError(f"cannot decode video {src.path}: {_first_line(e)}") from None


def read_frames(src: VideoSource, lo: int, hi: Optional[int]) -> List[np.ndarray]:
    """:func:`iter_source_frames` lo..hi as a list.

    Raises:
        ValueError: unreadable frames, or frames of differing sizes (naming the frame).
    """
    return list(iter_source_frames(src, lo, hi))
