"""Reading image files as RGB: every PIL mode converted correctly (or refused), and the EXIF
orientation that phone cameras write.

* :func:`to_rgb` turns any PIL image into an 8-bit RGB one. For the everyday modes it is PIL's
  ``convert("RGB")`` (what the official SAM 2 loaders call), so results are unchanged there;
  16-bit grayscale (``I;16``, ``I``) is scaled to 8 bits instead of being clipped to white, the
  premultiplied/alpha palette modes go through RGBA, and 32-bit float (``F``) or unknown modes
  are refused rather than guessed.
* :func:`load_image` opens a file, optionally applies its EXIF orientation (so the pixels are
  what an image viewer shows) and reports the orientation it found.

The Python predictors take arrays and keep the official behaviour (no EXIF handling); the
command line applies the orientation and records it.
"""

from __future__ import annotations

import os
from typing import Tuple, Union

import numpy as np
from PIL import Image, ImageOps

#: modes PIL converts to RGB correctly by itself (alpha, if any, is dropped as by the official)
_DIRECT = ("RGB", "1", "L", "P", "RGBA", "RGBX", "LA", "CMYK", "YCbCr", "LAB", "HSV")
#: modes that go through RGBA first (premultiplied alpha, palette + alpha)
_VIA_RGBA = ("PA", "RGBa", "La")
#: 16-bit (or 32-bit integer) grayscale: scaled from [0, 65535] to [0, 255]
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")

EXIF_ORIENTATION_TAG = 0x0112


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """An 8-bit RGB copy of ``img`` (``img`` itself when already RGB).

    Args:
        img: a PIL image of any mode.
        name: what to call it in error messages (a file name).

    Returns:
        a PIL image of mode ``"RGB"``: ``convert("RGB")`` for the modes PIL handles (1, L, P,
        RGBA, LA, CMYK, YCbCr ...), 16-bit grayscale scaled by 255/65535 and rounded.

    Raises:
        ValueError: a mode with no defined 8-bit rendering (``F`` float images, 32-bit integer
            images with values outside [0, 65535], unknown modes); the message names ``name``
            and the mode.
    """
    mode = img.mode
    if mode in _DIRECT:
        return img if mode == "RGB" else img.convert("RGB")
    if mode in _VIA_RGBA:
        try:
            return img.convert("RGBA").convert("RGB")
        except ValueError as e:
            raise ValueError(f"{name}: cannot convert PIL mode {mode!r} to RGB ({e})") from None
    if mode in _SIXTEEN_BIT:
        a = np.asarray(img)
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name}: unexpected pixel type {a.dtype} for PIL mode {mode!r}")
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(f"{name}: PIL mode {mode!r} with values in [{a.min()}, {a.max()}]; only "
                             f"16-bit ranges [0, 65535] can be shown as 8-bit RGB")
        g = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(np.repeat(g[:, :, None], 3, axis=2), "RGB")
    raise ValueError(f"{name}: PIL mode {mode!r} cannot be shown as 8-bit RGB "
                     f"(supported: {', '.join(_DIRECT + _VIA_RGBA + _SIXTEEN_BIT)}); convert it first")


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag of ``img`` (1..8; 1 = as stored, 6 = a portrait phone photo
    stored rotated), 1 when absent or invalid."""
    try:
        value = int(img.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except (TypeError, ValueError, OSError, SyntaxError):
        return 1
    return value if 1 <= value <= 8 else 1


def load_image(path: Union[str, os.PathLike], apply_exif: bool = True) -> Tuple[np.ndarray, int]:
    """Read an image file as (H, W, 3) uint8 RGB.

    Args:
        path: any format Pillow reads.
        apply_exif: rotate/flip the pixels by the EXIF orientation, so they are what a viewer
            shows (width and height swap for orientations 5-8); False keeps the stored pixels.

    Returns:
        (the RGB array, the EXIF orientation found (1..8)).

    Raises:
        ValueError: the file cannot be read or decoded, or its mode cannot be converted
            (:func:`to_rgb`); the message names the file.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            im.load()
            orientation = exif_orientation(im)
            img = ImageOps.exif_transpose(im) if apply_exif and orientation != 1 else im.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    return np.array(to_rgb(img, path)), orientation  # a writable copy


def image_size(path: Union[str, os.PathLike], apply_exif: bool = True) -> Tuple[int, int, int]:
    """(width, height, EXIF orientation) of an image file as :func:`load_image` would return it,
    reading only the header. Raises ValueError like :func:`load_image`."""
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = exif_orientation(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    if apply_exif and orientation in (5, 6, 7, 8):
        w, h = h, w
    return w, h, orientation


__all__ = ["EXIF_ORIENTATION_TAG", "exif_orientation", "image_size", "load_image", "to_rgb"]
