"""Probing and reading a video for the command line: a folder of JPEG/PNG frames or a file
PyAV decodes (.mp4 ...). :func:`open_video` reads the frame count, size, frame rate and
orientation without decoding everything; :func:`read_frames` decodes a range of frames as RGB
uint8 arrays, and :class:`RandomAccessFrames` reads them by index, decoding on demand. Frames
are turned upright (EXIF orientation of JPEG frames, the display-matrix rotation of phone
videos) unless told to keep the stored pixels.

Errors are ValueErrors with a one-line message naming the file.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from . import av_errors
from .frames import FrameSizeError, list_frame_files, size_error
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


def _check_size(src: "VideoSource", name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` if it has the video's size, else FrameSizeError (a ValueError) naming the frame."""
    if arr.shape[:2] != (src.height, src.width):
        raise size_error(name, arr.shape[:2], (src.height, src.width))
    return arr


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
        ValueError: an unreadable frame, or a frame of another size than frame 0
            (:class:`~sam2_fast.io.frames.FrameSizeError`, naming it).
    """

    if src.kind == "folder":
        last = src.num_frames - 1 if hi is None else hi
        for f in src.frame_files[lo:last + 1]:
            try:
                arr, _ = load_image(f, src.apply_orientation)
            except ValueError as e:
                raise ValueError(str(e).replace("cannot read image", "cannot read video frame", 1)) from None
            yield _check_size(src, f, arr)
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
                yield _check_size(src, str(i), arr)
                if hi is not None and i >= hi:
                    break
    except FrameSizeError:
        raise
    except av_errors() as e:
        raise ValueError(f"cannot decode video {src.path}: {_first_line(e)}") from None


def read_frames(src: VideoSource, lo: int, hi: Optional[int]) -> List[np.ndarray]:
    """:func:`iter_source_frames` lo..hi as a list.

    Raises:
        ValueError: unreadable frames, or frames of differing sizes (naming the frame).
    """
    return list(iter_source_frames(src, lo, hi))


class RandomAccessFrames:
    """Frames ``lo..hi`` of a :class:`VideoSource` by index, each decoded when it is asked for:
    ``frames[i]`` is frame ``lo + i`` as an (H, W, 3) uint8 RGB array, upright when
    ``src.apply_orientation`` (the same pixels as :func:`iter_source_frames`). For the offline
    video predictor (``init_state(..., lazy_frames=True)``), which reads the prompted frame,
    then walks forward or backward: the whole video is never held.

    A folder's frames are read from their files. A video file is indexed once by demuxing its
    packets (no decoding): frame k is the packet with the k-th smallest presentation time.
    Reading forward continues the open decoder; any other access seeks to the keyframe at or
    before the frame and decodes from there (from the start of the file when the packets carry
    no timestamps). Decoded frames are kept in a least-recently-used cache of at most
    ``cache_bytes``, so walking backward decodes each group of pictures once, or a few times
    when a group holds more frames than the cache.

    Args:
        src: from :func:`open_video`.
        lo, hi: the first and last frame index of the source (inclusive; ``hi`` None = to
            the end). ``len(frames)`` can be smaller than ``hi - lo + 1`` when the file holds
            fewer frames than its header says.
        cache_bytes: memory for decoded frames, in bytes (at least one frame is always kept;
            None: 512 MiB for a video file, 64 MiB for a folder).

    Raises:
        ValueError: (constructor) ``lo`` out of range, an unreadable file; (``frames[i]``) an
            unreadable frame, or a frame of another size than frame 0
            (:class:`~sam2_fast.io.frames.FrameSizeError`, naming it), as
            :func:`iter_source_frames`.
        IndexError, TypeError: (``frames[i]``) an index out of range, not an int.
    """

    def __init__(self, src: VideoSource, lo: int = 0, hi: Optional[int] = None,
                 cache_bytes: Optional[int] = None) -> None:
        if not 0 <= lo < src.num_frames:
            raise ValueError(f"first frame {lo} is out of range: the video has {src.num_frames} frames")
        self.src, self.lo = src, int(lo)
        if cache_bytes is None:  # a file's frames cost a decode from the keyframe; a folder's, one file
            cache_bytes = (64 << 20) if src.kind == "folder" else (512 << 20)
        self.cache_bytes = int(cache_bytes)
        self._cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._cached_bytes = 0
        self._container = None
        self._decoder: Optional[Iterator] = None
        self._next = None  # source index of the next frame the open decoder yields
        if src.kind == "folder":
            n = src.num_frames
            self._pts: Optional[List[int]] = None
        else:
            n, self._pts, self._keys = self._index()
        last = n - 1 if hi is None else min(int(hi), n - 1)
        self._len = max(0, last - self.lo + 1)
        if self._len == 0:
            raise ValueError(f"first frame {lo} is past the end: {src.path} holds {n} frames")

    # ------------------------------------------------------------------ indexing a file
    def _index(self):
        """(frames, presentation times in frame order or None, keyframe frame indices)."""
        import av

        try:
            with av.open(str(self.src.path)) as c:
                packets = [(p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
        except av_errors() as e:
            raise ValueError(f"cannot read video {self.src.path}: {_first_line(e)}") from None
        pts = [p for p, _ in packets]
        if not packets or any(p is None for p in pts) or len(set(pts)) != len(pts):
            return len(packets), None, [0]  # no usable timestamps: decode from the start
        order = sorted(pts)
        rank = {p: i for i, p in enumerate(order)}
        keys = sorted(rank[p] for p, key in packets if key) or [0]
        return len(packets), order, keys

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> np.ndarray:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(i).__name__}")
        if not 0 <= i < self._len:
            raise IndexError(f"frame {i} out of range (0..{self._len - 1})")
        k = self.lo + int(i)
        arr = self._cache.get(k)
        if arr is not None:
            self._cache.move_to_end(k)
            return arr
        if self.src.kind == "folder":
            arr = self._read_file(k)
            self._keep(k, arr)
            return arr
        return self._decode_to(k)

    def _keep(self, k: int, arr: np.ndarray) -> None:
        arr.flags.writeable = False  # shared by every caller: a frame is never edited in place
        self._cache[k] = arr
        self._cached_bytes += arr.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes

    def _read_file(self, k: int) -> np.ndarray:
        f = self.src.frame_files[k]
        try:
            arr, _ = load_image(f, self.src.apply_orientation)
        except ValueError as e:
            raise ValueError(str(e).replace("cannot read image", "cannot read video frame", 1)) from None
        return _check_size(self.src, f, arr)

    def _decode_to(self, k: int) -> np.ndarray:
        """Decode up to source frame k, caching every frame of the range on the way."""
        key = self._keys[bisect.bisect_right(self._keys, k) - 1]
        if self._decoder is None or self._next is None or not key <= self._next <= k:
            self._seek(key)
        first = True
        while True:
            try:
                fr = next(self._decoder, None)
                arr = None if fr is None else fr.to_ndarray(format="rgb24")
            except av_errors() as e:
                self.close()
                raise ValueError(f"cannot decode video {self.src.path}: {_first_line(e)}") from None
            if fr is None:
                break
            if self._pts is None:
                idx = self._next
            else:
                idx = bisect.bisect_left(self._pts, fr.pts) if fr.pts is not None else len(self._pts)
                if idx >= len(self._pts) or self._pts[idx] != fr.pts:
                    self.close()
                    raise ValueError(f"cannot decode video {self.src.path}: a frame's presentation "
                                     f"time ({fr.pts}) is not one of its packets'")
                if idx < self._next:  # a leading frame of an open group of pictures
                    continue
                if first and idx > k:  # the seek went past the frame: decode from the start
                    self._seek(0)
                    first = False
                    continue
            first = False
            self._next = idx + 1
            if self.src.apply_orientation:
                arr = _upright(arr, int(round(fr.rotation or 0)))
            arr = _check_size(self.src, str(idx), arr)
            if idx >= self.lo:
                self._keep(idx, arr)
            if idx == k:
                return arr
            if idx > k:
                break
        self.close()
        raise ValueError(f"cannot decode frame {k} of {self.src.path}: the decoder did not produce it")

    def _seek(self, key: int) -> None:
        import av

        self.close()
        try:
            self._container = av.open(str(self.src.path))
            stream = self._container.streams.video[0]
            if self._pts is not None and key > 0:
                self._container.seek(self._pts[key], backward=True, any_frame=False, stream=stream)
            else:
                key = 0
            self._decoder = iter(self._container.decode(stream))
        except av_errors() as e:
            self.close()
            raise ValueError(f"cannot decode video {self.src.path}: {_first_line(e)}") from None
        self._next = key

    def close(self) -> None:
        """Close the open decoder (the cache stays; a later access reopens the file)."""
        if self._container is not None:
            self._container.close()
        self._container = self._decoder = self._next = None
