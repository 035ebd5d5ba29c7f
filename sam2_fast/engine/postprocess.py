"""Post-processing of tracked masks: hole filling, connected components, video resolution,
non-overlap.

Hole filling (official ``sam2.utils.misc.fill_holes_in_mask_scores``, which needs the official
CUDA extension ``get_connected_components``) runs here on any device with a fixed number of
tensor operations and no host synchronisation (:func:`small_components`), so a tracking step
that fills holes can be compiled or captured as a CUDA graph.

Why a fixed number of steps is enough (:func:`small_components`): a pixel's 8-connected
component C has at most A pixels exactly when, after ``A - 1`` rounds of "take the largest
label among the 8 neighbours inside the component" started from unique labels, the pixels
carrying its label form a set S with ``|S| <= A`` that has no neighbour inside the component
carrying another label ("closed"):

* ``|C| <= A``: the geodesic diameter of C is at most ``|C| - 1 <= A - 1``, so after ``A - 1``
  rounds every pixel of C holds max(C): S = C, closed, ``|S| = |C| <= A``;
* ``|C| > A``: any label class S inside C is either C itself (then ``|S| > A``) or a proper
  subset, which, C being connected, has a neighbour in C outside S (then not closed).

Labels never cross components (bg pixels hold 0 after every round), so the test is exact, and
the filled mask equals the official one bit for bit.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F


def _check_masks(mask: torch.Tensor, name: str = "mask") -> None:
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name} must be (N, 1, H, W), got {tuple(mask.shape)}")


def small_components(fg: torch.Tensor, max_area: int) -> torch.Tensor:
    """Pixels of ``fg`` whose 8-connected component has at most ``max_area`` pixels.

    A fixed number of operations (``max_area - 1`` max-pool rounds, then two pools and two
    scatter-adds; see the module docstring for why that is exact); no host synchronisation.

    Args:
        fg: (N, 1, H, W) bool (or 0/1) masks, any device.
        max_area: positive int, in pixels.

    Returns:
        (N, 1, H, W) bool.

    Raises:
        ValueError: a malformed mask or ``max_area`` <= 0.
    """
    _check_masks(fg, "fg")
    if isinstance(max_area, bool) or int(max_area) != max_area or max_area <= 0:
        raise ValueError(f"max_area must be a positive int, got {max_area!r}")
    fg = fg.bool()
    n, _, h, w = fg.shape
    hw = h * w
    if hw == 0 or n == 0:
        return fg.clone()
    if max_area >= hw:
        return fg.clone()
    dtype = torch.float32 if hw < (1 << 24) else torch.float64  # exact integer labels
    idx = torch.arange(1, hw + 1, device=fg.device, dtype=dtype).view(1, 1, h, w)
    zero = torch.zeros((), device=fg.device, dtype=dtype)
    lab = torch.where(fg, idx, zero)
    for _ in range(int(max_area) - 1):
        lab = torch.where(fg, F.max_pool2d(lab, kernel_size=3, stride=1, padding=1), zero)
    nbr_max = F.max_pool2d(lab, kernel_size=3, stride=1, padding=1)
    outside = torch.full((), float(hw + 1), device=fg.device, dtype=dtype)
    nbr_min = -F.max_pool2d(-torch.where(fg, lab, outside), kernel_size=3, stride=1, padding=1)
    open_pix = fg & ((nbr_max > lab) | (nbr_min < lab))
    # one bucket per (mask, label); bucket 0 of each mask collects the background
    base = torch.arange(n, device=fg.device).view(n, 1, 1, 1) * (hw + 1)
    flat = (lab.long() + base).flatten()
    counts = torch.zeros(n * (hw + 1), device=fg.device, dtype=torch.int32)
    counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    opens = torch.zeros_like(counts).scatter_add_(0, flat, open_pix.flatten().to(torch.int32))
    small = (counts[flat] <= max_area) & (opens[flat] == 0)
    return fg & small.view(n, 1, h, w)


def fill_holes_in_mask_scores(mask: torch.Tensor, max_area: int) -> torch.Tensor:
    """Fill small holes of mask logits (official ``sam2.utils.misc.fill_holes_in_mask_scores``):
    background components (logit <= 0, 8-connected) of at most ``max_area`` pixels get logit
    0.1. Same result as the official with its CUDA extension; no host synchronisation.

    Args:
        mask: (N, 1, H, W) float mask logits.
        max_area: positive int, in pixels of ``mask``.

    Returns:
        a new (N, 1, H, W) tensor, same dtype/device.

    Raises:
        ValueError: ``max_area`` <= 0 or a malformed mask.
    """
    _check_masks(mask)
    holes = small_components(mask <= 0, max_area)
    return torch.where(holes, torch.full_like(mask, 0.1), mask)


def connected_components(mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """8-connected components of binary masks with their areas (the outputs of the official
    CUDA ``get_connected_components``).

    An iterative label propagation that stops when the labels stop changing, so it synchronises
    with the host once per round: use it for analysis, not in a tracking step (hole filling
    there uses :func:`small_components`).

    Args:
        mask: (N, 1, H, W) bool/0-1 tensor, any device.

    Returns:
        (labels, areas), both (N, 1, H, W) int64: labels > 0 identify the component of each
        foreground pixel (0 on background; values are not consecutive); areas is the pixel
        count of that pixel's component (0 on background).

    Raises:
        ValueError: mask is not 4-D with one channel.
    """
    _check_masks(mask)
    n, _, h, w = mask.shape
    fg = mask.bool()
    if fg.numel() == 0:
        z = torch.zeros(mask.shape, dtype=torch.int64, device=mask.device)
        return z, z.clone()
    # label = 1 + flat index (unique over the batch); propagate the max label over 8-neighbours
    # inside the foreground, with pointer jumping (label <- label of the pixel it names) so
    # long components converge in few rounds. float64 holds the integers exactly up to 2^53;
    # max_pool2d needs a float dtype.
    idx = torch.arange(1, n * h * w + 1, device=mask.device, dtype=torch.float64).view(n, 1, h, w)
    lab = torch.where(fg, idx, torch.zeros_like(idx))
    while True:
        pooled = F.max_pool2d(lab, kernel_size=3, stride=1, padding=1)
        new = torch.where(fg, pooled, torch.zeros_like(pooled))
        flat = new.flatten()
        for _ in range(2):  # pointer jumping
            ptr = (flat.long() - 1).clamp(min=0)
            jumped = torch.where(flat > 0, flat[ptr], flat)
            flat = torch.maximum(flat, jumped)
        new = flat.view(n, 1, h, w)
        if torch.equal(new, lab):
            break
        lab = new
    labels = lab.long()
    counts = torch.bincount(labels.flatten(), minlength=n * h * w + 1)
    areas = torch.where(fg, counts[labels], torch.zeros_like(labels))
    return labels, areas


def to_video_resolution(masks: torch.Tensor, video_hw: Tuple[int, int]) -> torch.Tensor:
    """Mask logits at any resolution -> the video's (official ``_get_orig_video_res_output``:
    bilinear, ``align_corners=False``).

    Args:
        masks: (N, 1, h, w) float logits.
        video_hw: (H, W) in pixels.

    Returns:
        (N, 1, H, W) float32 (the input itself when it already has that size).
    """
    if tuple(masks.shape[-2:]) == tuple(video_hw):
        return masks
    return F.interpolate(masks.float(), size=tuple(video_hw), mode="bilinear",
                         align_corners=False)


def apply_non_overlapping_constraints(masks: torch.Tensor) -> torch.Tensor:
    """Keep only the highest-scoring object per pixel; the others are clamped to <= -10
    (official ``SAM2Base._apply_non_overlapping_constraints``).

    Args:
        masks: (N, 1, H, W) logits of N objects of one frame.

    Returns:
        (N, 1, H, W) (the input itself for N = 1).
    """
    if masks.shape[0] == 1:
        return masks
    best = torch.argmax(masks, dim=0, keepdim=True)
    ids = torch.arange(masks.shape[0], device=masks.device)[:, None, None, None]
    return torch.where(best == ids, masks, torch.clamp(masks, max=-10.0))


__all__ = ["small_components", "fill_holes_in_mask_scores", "connected_components",
           "to_video_resolution", "apply_non_overlapping_constraints"]
