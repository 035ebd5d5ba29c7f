"""Probing and reading a video for the command line: a folder of JPEG/PNG frames or a file
PyAV decodes (.mp4 ...). :func:`open_video` reads the frame count, size and frame rate without
decoding everything; :func:`read_frames` decodes a range of frames as RGB uint8 arrays.

Errors are ValueErrors with a one-line message naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from . import av_errors
from .frames import list_frame_files


class _NoVideo(Exception):
    """Raised inside the PyAV block for a file without usable frames (kept apart from the
    ValueErrors PyAV itself raises)."""


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
    Raises ValueError for a missing/empty folder or an unreadable file."""
    from PIL import Image

    path = Path(path_str)
    if path.is_dir():
        files = list_frame_files(path)
        try:
            with Image.open(files[0]) as im:
                w, h = im.size
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read video frame {files[0]}: {e}") from None
        return VideoSource(path, "folder", len(files), w, h, None, files)
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
            if n <= 0:  # container without a frame count: count the packets (no decoding)
                n = sum(1 for pkt in c.demux(st) if pkt.size)
            if n <= 0:
                raise _NoVideo(f"cannot read video {path}: no frames")
            rate = st.average_rate or st.guessed_rate
            w, h = st.codec_context.width, st.codec_context.height
            if not w or not h:
                raise _NoVideo(f"cannot read video {path}: no frame size")
    except _NoVideo as e:
        raise ValueError(str(e)) from None
    except av_errors() as e:
        raise ValueError(f"cannot read video {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return VideoSource(path, "file", n, int(w), int(h), float(rate) if rate else None)


def read_frames(src: VideoSource, lo: int, hi: Optional[int]) -> List[np.ndarray]:
    """RGB uint8 frames lo..hi (inclusive; None = to the end) of a video. Raises ValueError for
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
                raise ValueError(f"cannot read video frame {f}: {e}") from None
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
            raise ValueError(f"cannot decode video {src.path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    for i, f in enumerate(frames):
        if f.shape[:2] != (src.height, src.width):
            raise ValueError(f"video frame {lo + i} is {f.shape[1]}x{f.shape[0]}, frame 0 is "
                           f"{src.width}x{src.height}")
    return frames


