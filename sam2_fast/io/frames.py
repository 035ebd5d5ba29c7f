"""Video frame loading for the video predictor: a folder of JPEG/PNG frames, an .mp4 (decoded
with PyAV), or a list of HWC uint8 arrays, preprocessed as the official video loader does.

Mirrors ``sam2.utils.misc.load_video_frames`` / ``_load_img_as_tensor`` of the official SAM 2:
each frame is converted to RGB and resized to ``image_size x image_size`` with PIL's
``Image.resize`` default filter (bicubic for RGB images in Pillow >= 7; not antialiased
bilinear like the image predictor's torchvision resize), divided by 255 (float64, then stored as
float32), then normalized with the ImageNet mean/std in float32.

The official decodes .mp4 with decord, resizing inside the decoder; here PyAV decodes each frame
to RGB at full resolution and the same PIL resize as for JPEG folders is applied, so an .mp4 and
the JPEG folder extracted from it preprocess identically (up to JPEG compression).

Deliberate differences: a frame whose size differs from frame 0 raises :class:`FrameSizeError`
naming it (the official stretches it to the model size silently), and 16-bit grayscale frames
are scaled to 8 bits (:func:`sam2_fast.io.images.to_rgb`; the official clips them to white).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sam2_fast.config import PIXEL_MEAN, PIXEL_STD
from sam2_fast.io import av_errors
from sam2_fast.io.images import to_rgb

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")

VideoSource = Union[str, os.PathLike, Sequence[np.ndarray]]


def _preprocess_pil(img: Image.Image, image_size: int, name: str = "frame") -> torch.Tensor:
    """PIL image -> (3, S, S) float32 in [0, 1] (official ``_load_img_as_tensor``; modes are
    converted by :func:`sam2_fast.io.images.to_rgb`, which is ``convert("RGB")`` for the usual
    ones and scales 16-bit grayscale instead of clipping it). Raises ValueError for a mode
    with no 8-bit RGB rendering."""
    arr = np.array(to_rgb(img, name).resize((image_size, image_size)))
    if arr.dtype != np.uint8:
        raise RuntimeError(f"unexpected image dtype {arr.dtype} (expected 8-bit RGB)")
    return torch.from_numpy(arr / 255.0).permute(2, 0, 1).float()


def resize_frame_tensor(frame: torch.Tensor, image_size: int) -> torch.Tensor:
    """An (H, W, 3) uint8 frame tensor (any device) -> (3, S, S) float32 in [0, 1], resized on
    its device with antialiased bicubic and rounded to uint8 levels (the filter family of PIL's
    resize that the official loader uses; within one uint8 level of it, not bit-identical)."""
    x = frame.permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False,
                      antialias=True)
    return (x.clamp(0, 255).round() / 255.0)[0]


class _Resizer:
    """Decoded PIL frame -> (3, S, S) float32 in [0, 1]: PIL's resize on the CPU (the official
    maths, bit for bit), or :func:`resize_frame_tensor` on ``device`` after an asynchronous copy
    from pinned memory (``on_device``: CUDA frames are decoded on the CPU, resized on the GPU)."""

    def __init__(self, image_size: int, device: Optional[torch.device] = None,
                 on_device: bool = False) -> None:
        self.image_size = image_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.on_device = bool(on_device)

    def empty(self, n: int) -> torch.Tensor:
        return torch.empty(n, 3, self.image_size, self.image_size, dtype=torch.float32,
                           device=self.device if self.on_device else "cpu")

    def __call__(self, img: Image.Image, name: str = "frame") -> torch.Tensor:
        if not self.on_device:
            return _preprocess_pil(img, self.image_size, name)
        t = torch.from_numpy(np.array(to_rgb(img, name)))  # a writable copy
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return resize_frame_tensor(t, self.image_size)


def _frame_sort_key(path: str):
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        return (0, int(stem), "")
    except ValueError:
        # not a pure number: sort by the last number in the name, then by name
        nums = re.findall(r"\d+", stem)
        return (1, int(nums[-1]) if nums else -1, stem)


def list_frame_files(folder: Union[str, os.PathLike]) -> List[str]:
    """Image files of a frame folder, sorted by the numeric stem (``00012.jpg`` -> 12) like the
    official (names that are not numbers sort after, by their last number then name).

    Raises:
        ValueError: ``folder`` is not a directory, or holds no .jpg/.jpeg/.png file.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"video frame folder {folder!r} does not exist or is not a directory")
    names = [n for n in os.listdir(folder) if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
    if not names:
        raise ValueError(f"no JPEG/PNG frames found in video folder {folder!r}")
    paths = [os.path.join(folder, n) for n in names]
    paths.sort(key=_frame_sort_key)
    return paths


def _normalize(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(PIXEL_MEAN, dtype=torch.float32)[:, None, None].to(images.device)
    std = torch.tensor(PIXEL_STD, dtype=torch.float32)[:, None, None].to(images.device)
    images -= mean
    images /= std
    return images


def load_image_frame(path: Union[str, os.PathLike], image_size: int,
                     expect_hw: Optional[Tuple[int, int]] = None) -> Tuple[torch.Tensor, int, int]:
    """One frame file -> ((3, S, S) float32 normalized, height, width) of the original.

    Args:
        expect_hw: the video's (height, width): a frame of another size is refused.

    Raises:
        RuntimeError: the file cannot be read or decoded as an image.
        ValueError: the frame's size differs from ``expect_hw`` (never stretched).
    """
    try:
        with Image.open(path) as img:
            img.load()
            w, h = img.size
            if expect_hw is None or (h, w) == tuple(expect_hw):
                x = _preprocess_pil(img, image_size, os.fspath(path))
    except (OSError, ValueError, SyntaxError) as e:
        raise RuntimeError(f"cannot read video frame {os.fspath(path)!r}: {e}") from e
    if expect_hw is not None and (h, w) != tuple(expect_hw):
        raise size_error(os.fspath(path), (h, w), expect_hw)
    return _normalize(x[None])[0], h, w


class FrameSizeError(ValueError):
    """A frame of a video has another size than its first frame (the official loader would
    stretch it to the model size without a word)."""


def size_error(name: str, hw: Tuple[int, int], first_hw: Tuple[int, int],
               first: str = "frame 0") -> ValueError:
    """The :class:`FrameSizeError` for frame ``name`` of (height, width) ``hw`` in a video whose
    first frame is ``first_hw`` (one wording for every reader of frames)."""
    return FrameSizeError(f"video frame {name!r} is {hw[1]}x{hw[0]} but {first} is {first_hw[1]}x{first_hw[0]}: "
                      f"all frames of a video must have one size (a frame is never stretched)")


def _load_folder(folder, image_size: int, resize: _Resizer) -> Tuple[torch.Tensor, int, int]:
    paths = list_frame_files(folder)
    images = resize.empty(len(paths))
    size = None
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as img:
                img.load()
                if size is None:
                    size = img.size
                if img.size == size:
                    images[i] = resize(img, p)
                other = img.size
        except (OSError, ValueError, SyntaxError) as e:
            raise RuntimeError(f"cannot read video frame {p!r}: {e}") from e
        if other != size:
            raise size_error(p, other[::-1], size[::-1], f"frame 0 ({os.path.basename(paths[0])})")
    w, h = size
    return _normalize(images), h, w


def _load_video_file(path, image_size: int, resize: _Resizer) -> Tuple[torch.Tensor, int, int]:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise RuntimeError("decoding video files needs PyAV (pip install av)") from e
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"video file {path!r} does not exist")
    frames: List[torch.Tensor] = []
    size = None
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise RuntimeError(f"{path!r} has no video stream")
            for frame in container.decode(video=0):
                img = frame.to_image()
                if size is None:
                    size = img.size
                if img.size != size:
                    raise size_error(f"{path}#{len(frames)}", img.size[::-1], size[::-1])
                frames.append(resize(img))
    except (RuntimeError, FrameSizeError):
        raise
    except av_errors() as e:
        raise RuntimeError(f"cannot decode video file {path!r}: {e}") from e
    if not frames:
        raise RuntimeError(f"video file {path!r} decoded to no frames")
    w, h = size
    return _normalize(torch.stack(frames)), h, w


def _load_array_list(frames: Sequence[np.ndarray], image_size: int,
                     resize: _Resizer) -> Tuple[torch.Tensor, int, int]:
    if len(frames) == 0:
        raise ValueError("the list of video frames is empty")
    images = resize.empty(len(frames))
    hw = None
    for i, f in enumerate(frames):
        a = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(
                f"video frame {i} must be an HxWx3 uint8 RGB array, got shape {a.shape} "
                f"dtype {a.dtype}"
            )
        if hw is None:
            hw = a.shape[:2]
        elif a.shape[:2] != hw:
            raise ValueError(f"video frame {i} has size {a.shape[:2]}, frame 0 has {hw}")
        images[i] = resize(Image.fromarray(a))
    return _normalize(images), int(hw[0]), int(hw[1])


def load_video_frames(video: VideoSource, image_size: int,
                      device: Optional[torch.device] = None) -> Tuple[torch.Tensor, int, int]:
    """Load and preprocess all frames of a video (official ``load_video_frames`` maths).

    Args:
        video: a folder of frames named by number (``00000.jpg`` ...; .jpg/.jpeg/.png), a
            video file (.mp4 and other containers PyAV/FFmpeg decode), or a sequence of
            (H, W, 3) uint8 RGB arrays (numpy or tensors; also one (T, H, W, 3) array or
            tensor), all the same size.
        image_size: the model's input side S (pixels).
        device: a CUDA device: frames are decoded on the CPU, copied asynchronously and resized
            and normalized on the GPU (:func:`resize_frame_tensor`: within one uint8 level of
            the official PIL resize), and returned there. None or the CPU: the official PIL
            resize on the CPU, bit for bit.

    Returns:
        (images (N, 3, S, S) float32 on the CPU (or ``device`` when it is CUDA),
        ImageNet-normalized; video height; video width), the height/width of the original
        frames in pixels.

    Raises:
        ValueError: missing path, folder without frames, empty list, frames of the wrong
            shape/dtype or of differing sizes (:class:`FrameSizeError`, naming the frame: a
            frame is never stretched, where the official loader would), unsupported path type.
        RuntimeError: a frame or video file that cannot be read/decoded.
    """
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    on_gpu = device is not None and torch.device(device).type == "cuda"
    resize = _Resizer(image_size, device, on_device=on_gpu)
    if isinstance(video, (str, os.PathLike)):
        p = Path(video)
        if p.is_dir():
            return _load_folder(p, image_size, resize)
        if p.suffix.lower() in VIDEO_EXTENSIONS or p.is_file():
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                raise ValueError(f"{str(p)!r} is a single image; pass the folder of frames")
            return _load_video_file(p, image_size, resize)
        raise ValueError(f"video path {str(p)!r} does not exist")
    if isinstance(video, (list, tuple)):
        return _load_array_list(video, image_size, resize)
    if isinstance(video, (np.ndarray, torch.Tensor)) and video.ndim == 4:
        return _load_array_list(list(video), image_size, resize)
    raise ValueError(
        "video must be a frame folder, a video file path, or a list of HxWx3 uint8 arrays; "
        f"got {type(video).__name__}"
    )


class AsyncFrameLoader:
    """Frames of a folder loaded in a background thread (official ``AsyncVideoFrameLoader``).

    Frame 0 is loaded at construction (it gives ``video_height``/``video_width``); the others
    are loaded by a daemon thread, and ``loader[i]`` loads frame i at once if the thread has not
    reached it yet. ``loader[i]`` is a (3, S, S) float32 CPU tensor, normalized as
    :func:`load_video_frames`; ``len(loader)`` is the number of frames.

    Raises (from the constructor):
        ValueError: missing folder or no frames in it.
        RuntimeError: frame 0 cannot be read.
    ``loader[i]`` raises FrameSizeError (a ValueError) for a frame of another size than frame 0,
    RuntimeError when a frame cannot be read (also for a failure seen
    earlier by the background thread).
    """

    def __init__(self, folder: Union[str, os.PathLike], image_size: int) -> None:
        self.paths = list_frame_files(folder)
        self.image_size = image_size
        self._frames: List[Optional[torch.Tensor]] = [None] * len(self.paths)
        self._error: Optional[BaseException] = None
        first, self.video_height, self.video_width = load_image_frame(self.paths[0], image_size)
        self._frames[0] = first
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for i in range(len(self.paths)):
                self[i]
        except BaseException as e:  # surfaced on the next __getitem__
            self._error = e

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._error is not None:
            if isinstance(self._error, FrameSizeError):
                raise FrameSizeError(str(self._error))
            raise RuntimeError(f"frame loading thread failed: {self._error}") from self._error
        img = self._frames[index]
        if img is None:
            img, _, _ = load_image_frame(self.paths[index], self.image_size,
                                         (self.video_height, self.video_width))
            self._frames[index] = img
        return img

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the background thread (tests / shutdown)."""
        self._thread.join(timeout)


class LazyFrameLoader:
    """Frames of a video read when asked for, with at most ``cache_size`` preprocessed frames
    kept (least recently used dropped): memory stays flat however long the video (not in the
    official, whose loaders hold every frame). ``loader[i]`` is a (3, S, S) float32 tensor,
    normalized as :func:`load_video_frames` (on ``device`` when it is CUDA: resized there as
    :func:`resize_frame_tensor`; else on the CPU with the official PIL resize, bit for bit);
    ``len(loader)`` is the number of frames.

    Args:
        video: a folder of frames (each file read when needed); a video file (decoded on
            demand by :class:`~sam2_fast.io.sources.RandomAccessFrames`: reading forward
            continues the decoder, other accesses seek to a keyframe; the stored pixels, no
            rotation, as :func:`load_video_frames`); or a sequence of (H, W, 3) uint8 RGB
            arrays, such as a :class:`~sam2_fast.io.sources.RandomAccessFrames`, indexed
            when a frame is needed.
        image_size: the model's input side S (pixels).
        cache_size: preprocessed frames kept (>= 1).
        device: where frames are resized and returned (None: the CPU).

    Raises (constructor): ValueError for a missing path, a folder without frames, an empty
    sequence or cache_size < 1; RuntimeError if frame 0 cannot be read. ``loader[i]``:
    IndexError out of range, RuntimeError for an unreadable frame, FrameSizeError (a
    ValueError) for a frame of another size than frame 0, ValueError for an array that is not
    (H, W, 3) uint8; a sequence's own errors pass through unchanged.
    """

    def __init__(self, video: VideoSource, image_size: int, cache_size: int = 16,
                 device: Optional[torch.device] = None) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self.image_size = image_size
        self.cache_size = cache_size
        on_gpu = device is not None and torch.device(device).type == "cuda"
        self._resize = _Resizer(image_size, device, on_device=on_gpu)
        self.paths: Optional[List[str]] = None
        self._frames: Optional[Sequence[np.ndarray]] = None
        self._from_file = False
        if isinstance(video, (str, os.PathLike)):
            p = Path(video)
            if p.is_dir():
                self.paths = list_frame_files(p)
            elif not p.is_file():
                raise ValueError(f"video path {str(p)!r} does not exist")
            elif p.suffix.lower() in IMAGE_EXTENSIONS:
                raise ValueError(f"{str(p)!r} is a single image; pass the folder of frames")
            else:
                from .sources import RandomAccessFrames, open_video

                try:
                    self._frames = RandomAccessFrames(open_video(os.fspath(p), apply_orientation=False))
                except ValueError as e:
                    raise RuntimeError(str(e)) from None
                self._from_file = True
        elif hasattr(video, "__getitem__") and hasattr(video, "__len__") and not isinstance(video, bytes):
            if len(video) == 0:
                raise ValueError("the sequence of video frames is empty")
            self._frames = video
        else:
            raise ValueError("video must be a frame folder, a video file path, or a sequence of HxWx3 "
                             f"uint8 arrays; got {type(video).__name__}")
        self.video_height = self.video_width = None
        first = self._load(0)
        self._cache: "OrderedDict[int, torch.Tensor]" = OrderedDict({0: first})

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self._frames)

    def _load(self, index: int) -> torch.Tensor:
        first_hw = None if self.video_height is None else (self.video_height, self.video_width)
        if self.paths is not None:
            path = self.paths[index]
            try:
                with Image.open(path) as img:
                    img.load()
                    w, h = img.size
                    if first_hw is None or (h, w) == first_hw:
                        x = self._resize(img, path)
            except (OSError, ValueError, SyntaxError) as e:
                raise RuntimeError(f"cannot read video frame {path!r}: {e}") from e
            name, first_name = path, f"frame 0 ({os.path.basename(self.paths[0])})"
        else:
            try:
                a = self._frames[index]
            except FrameSizeError:
                raise
            except ValueError as e:
                if not self._from_file:
                    raise
                raise RuntimeError(str(e)) from None
            a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise ValueError(f"video frame {index} must be an HxWx3 uint8 RGB array, got shape "
                                 f"{a.shape} dtype {a.dtype}")
            h, w = a.shape[:2]
            if first_hw is None or (h, w) == first_hw:
                x = self._resize(Image.fromarray(a))
            name, first_name = str(index), "frame 0"
        if first_hw is not None and (h, w) != first_hw:
            raise size_error(name, (h, w), first_hw, first_name)
        if first_hw is None:
            self.video_height, self.video_width = h, w
        return _normalize(x[None])[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range (0..{len(self) - 1})")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        img = self._load(index)
        self._cache[index] = img
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return img


__all__ = ["FrameSizeError", "load_video_frames", "load_image_frame", "list_frame_files", "AsyncFrameLoader",
           "LazyFrameLoader"]
