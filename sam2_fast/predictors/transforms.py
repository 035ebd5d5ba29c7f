"""Pre- and post-processing of the official image predictor (``sam2.utils.transforms.SAM2Transforms``):
antialiased bilinear resize to the model size, ImageNet normalization, prompt coordinate
scaling, and bilinear upsampling of mask logits to the original image size."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..config import PIXEL_MEAN, PIXEL_STD


def as_rgb_uint8(image, name: str = "image") -> np.ndarray:
    """Validate an image and return it as an (H, W, 3) uint8 RGB ndarray (no copy if possible).

    Accepts an (H, W, 3) uint8 ndarray or a PIL image in mode ``RGB``.

    Raises:
        ValueError: wrong type, rank, dtype, channel count or mode, or an empty image.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"{name}: PIL image must be mode 'RGB', got {image.mode!r} "
                             "(convert it with image.convert('RGB'))")
        arr = np.asarray(image)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 numpy array or a PIL RGB image, got "
                         f"{type(image).__name__}")
    if arr.ndim != 3:
        raise ValueError(f"{name} must have 3 dims (H, W, 3), got shape {arr.shape}")
    if arr.shape[2] != 3:
        raise ValueError(f"{name} must have 3 RGB channels in the last dim, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 with values in [0, 255], got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    return arr


def preprocess_image(image: np.ndarray, image_size: int, device: torch.device,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, S, S) normalized tensor: /255, bilinear resize with
    antialias (torchvision ``Resize`` on tensors), then ImageNet mean/std. Computed in fp32,
    returned in ``dtype``."""
    arr = np.ascontiguousarray(image)
    if not arr.flags.writeable:  # np.asarray(PIL image) is read-only; torch warns on those
        arr = arr.copy()
    x = torch.from_numpy(arr).to(device).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(PIXEL_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def postprocess_masks(masks: torch.Tensor, orig_hw: Tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) mask logits -> (B, C, H, W) float32 logits at the original image size
    (bilinear, align_corners=False)."""
    return F.interpolate(masks.float(), size=tuple(orig_hw), mode="bilinear", align_corners=False)
