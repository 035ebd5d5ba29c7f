"""Building blocks of the automatic mask generator ("segment everything"), batched on the
model's device.

The maths of the official ``sam2.utils.amg`` (point grids, crop boxes, boxes around masks,
stability score, uncompressed RLE) and of the two library ops it uses (torchvision's
``batched_nms``, and the hole / sprinkle removal of ``SAM2Transforms.postprocess_masks``),
written for whole batches of masks: no per-mask host round trip except where a host library
does the work (OpenCV connected components, pycocotools).
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import torch

# Hole / sprinkle removal writes these logits (official: mask_threshold (0.0) +- 10.0).
FILL_LOGIT = 10.0


def point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) float64 x, y in (0, 1): cell centres of an n x n grid, x varying fastest
    (official ``build_point_grid``). Raises ValueError for n < 1."""
    if n_per_side < 1:
        raise ValueError(f"a point grid needs at least 1 point per side, got {n_per_side}")
    half = 1.0 / (2 * n_per_side)
    axis = np.linspace(half, 1.0 - half, n_per_side)
    xs, ys = np.meshgrid(axis, axis, indexing="xy")
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def layer_points_per_side(points_per_side: int, crop_n_layers: int, downscale: int) -> List[int]:
    """Points per side for crop layers 0..crop_n_layers: ``int(n / downscale**i)`` (official
    ``build_all_layer_point_grids``)."""
    return [int(points_per_side / (downscale ** i)) for i in range(crop_n_layers + 1)]


def crop_boxes(image_hw: Tuple[int, int], crop_n_layers: int, overlap_ratio: float
               ) -> Tuple[List[List[int]], List[int]]:
    """Crop boxes (x0, y0, x1, y1 pixels, x1/y1 exclusive) and their layer index: the whole
    image (layer 0), then for layer i >= 1 a 2^i x 2^i grid of overlapping crops, columns outer,
    rows inner (official ``generate_crop_boxes``)."""
    h, w = image_hw
    boxes, layers = [[0, 0, w, h]], [0]
    for layer in range(1, crop_n_layers + 1):
        n = 2 ** layer
        overlap = int(overlap_ratio * min(h, w) * (2 / n))
        cw = int(math.ceil((overlap * (n - 1) + w) / n))
        ch = int(math.ceil((overlap * (n - 1) + h) / n))
        for i in range(n):
            x0 = int((cw - overlap) * i)
            for j in range(n):
                y0 = int((ch - overlap) * j)
                boxes.append([x0, y0, min(x0 + cw, w), min(y0 + ch, h)])
                layers.append(layer)
    return boxes, layers


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) int64 x0, y0, x1, y1 with x1/y1 the last covered column/row
    (inclusive); [0, 0, 0, 0] for an empty mask (official ``batched_mask_to_box``)."""
    n, h, w = masks.shape
    u8 = masks.view(torch.uint8)
    rows, cols = u8.amax(dim=2) > 0, u8.amax(dim=1) > 0
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    y1 = torch.where(rows, ys, -1).amax(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1)
    y0 = torch.where(rows, ys, h).amin(dim=1)
    x0 = torch.where(cols, xs, w).amin(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    return torch.where(rows.any(dim=1, keepdim=True), boxes, 0)


def count_true(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N,) int32 number of set pixels (row sums in int16 first, which is
    much faster than a bool sum on the CPU; exact for W < 32768)."""
    return masks.view(torch.uint8).sum(dim=-1, dtype=torch.int16).sum(dim=-1, dtype=torch.int32)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression per category, with the semantics of
    ``torchvision.ops.batched_nms``.

    Boxes are visited by decreasing score (ties: lower index first); a box is kept unless a
    kept box of the same category overlaps it with IoU > ``iou_threshold``. IoU is computed
    in the boxes' dtype as torchvision's kernel does (``inter / (area_a + area_b - inter)``,
    areas ``(x1 - x0) * (y1 - y0)``) and compared in float64.

    The pairwise overlap matrix is built on the boxes' device; the greedy pass over it runs on
    the host after one transfer (as torchvision's CUDA kernel does), so the result never
    depends on a data-dependent device loop.

    Args:
        boxes: (N, 4) float x0, y0, x1, y1.
        scores: (N,) float.
        idxs: (N,) int category of each box.
        iou_threshold: suppress above this IoU.

    Returns:
        (K,) int64 indices of the kept boxes, by decreasing score.

    Raises:
        ValueError: shapes that do not match, non-float boxes.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4), got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    if scores.shape != (n,) or idxs.shape != (n,):
        raise ValueError(f"scores and idxs must be ({n},), got {tuple(scores.shape)} and {tuple(idxs.shape)}")
    if not boxes.is_floating_point():
        raise ValueError(f"boxes must be floating point, got {boxes.dtype}")
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b, cat = boxes[order], idxs[order]
    x0, y0, x1, y1 = b.unbind(1)
    area = (x1 - x0) * (y1 - y0)
    over = torch.empty(n, n, dtype=torch.bool, device=boxes.device)
    block = max(1, (1 << 24) // n)  # rows per block: about 16 M pairs of float temporaries
    for s in range(0, n, block):
        e = min(n, s + block)
        w = (torch.minimum(x1[s:e, None], x1[None]) - torch.maximum(x0[s:e, None], x0[None])).clamp(min=0)
        h = (torch.minimum(y1[s:e, None], y1[None]) - torch.maximum(y0[s:e, None], y0[None])).clamp(min=0)
        inter = w * h
        iou = inter / (area[s:e, None] + area[None] - inter)
        over[s:e] = (iou.double() > iou_threshold) & (cat[s:e, None] == cat[None])
    rank = torch.arange(n, device=boxes.device)
    over = (over & (rank[:, None] < rank[None])).cpu().numpy()  # only later boxes are suppressed
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if keep[i]:
            keep[i + 1:] &= ~over[i, i + 1:]
    return order[torch.from_numpy(np.flatnonzero(keep)).to(boxes.device)]


def fill_small_regions_(logits: torch.Tensor, max_area: float) -> torch.Tensor:
    """Remove small holes and sprinkles from low-resolution mask logits, in place.

    The step of the official ``SAM2Transforms.postprocess_masks`` that the official
    ``SAM2AutomaticMaskGenerator`` switches on with ``min_mask_region_area``
    (``max_hole_area = max_sprinkle_area = min_mask_region_area``): on the mask ``logits > 0``,
    background components (8-connectivity) of at most ``max_area`` pixels become foreground
    (logit +10) and foreground components of at most ``max_area`` pixels become background
    (logit -10); both found on the input mask. Areas are pixels of the low-resolution mask
    (4h x 4w, 256 x 256 at 1024 px). Connected components: OpenCV
    (``cv2.connectedComponentsWithStats``), one call per mask and region type. (The official
    uses its CUDA extension and skips the step with a warning without it, upstream #243.)

    Args:
        logits: (N, h, w) float32 mask logits (any device).
        max_area: area bound in low-resolution pixels (> 0).

    Returns:
        ``logits``, modified.

    Raises:
        ImportError: OpenCV is not installed (``pip install opencv-python-headless``).
    """
    import cv2

    if logits.shape[0] == 0:
        return logits
    fg = (logits > 0).to(torch.uint8).cpu().numpy()
    hole = np.zeros(fg.shape, dtype=bool)
    sprinkle = np.zeros(fg.shape, dtype=bool)
    for i in range(fg.shape[0]):
        for img, out in ((1 - fg[i], hole), (fg[i], sprinkle)):
            _, labels, stats, _ = cv2.connectedComponentsWithStats(img, connectivity=8)
            small = stats[:, cv2.CC_STAT_AREA] <= max_area
            small[0] = False  # label 0: the other region type
            out[i] = small[labels]
    dev = logits.device
    logits[torch.from_numpy(hole).to(dev)] = FILL_LOGIT
    logits[torch.from_numpy(sprinkle).to(dev)] = -FILL_LOGIT
    return logits


def uncompressed_rle(masks: torch.Tensor) -> List[dict]:
    """Column-major run lengths of binary masks, as pycocotools' uncompressed RLE
    (official ``mask_to_rle_pytorch``): ``{"size": [H, W], "counts": [n0, n1, ...]}`` with
    ``n0`` the leading background run (0 when the first pixel is set). All masks in one pass
    on their device, one transfer of the change positions.

    Args:
        masks: (N, H, W) bool.
    """
    n, h, w = masks.shape
    if n == 0:
        return []
    flat = masks.transpose(1, 2).reshape(n, h * w)
    change = (flat[:, 1:] != flat[:, :-1]).nonzero().cpu().numpy()
    first = flat[:, 0].cpu().numpy()
    splits = np.searchsorted(change[:, 0], np.arange(1, n))
    out = []
    for i, pos in enumerate(np.split(change[:, 1], splits)):
        bounds = np.concatenate([[0], pos + 1, [h * w]])
        runs = np.diff(bounds).tolist()
        out.append({"size": [h, w], "counts": ([0] + runs) if first[i] else runs})
    return out


def coco_rle(rles: Sequence[dict]) -> List[dict]:
    """Uncompressed RLE -> compressed COCO RLE with a str ``counts`` (pycocotools
    ``frPyObjects``; official ``coco_encode_rle``)."""
    from pycocotools import mask as mask_utils

    out = []
    for r in rles:
        h, w = r["size"]
        c = mask_utils.frPyObjects(r, h, w)
        out.append({"size": [int(s) for s in c["size"]], "counts": c["counts"].decode("utf-8")})
    return out


def xyxy_to_xywh(box: Sequence[float]) -> List[float]:
    """[x0, y0, x1, y1] -> [x0, y0, x1 - x0, y1 - y0] (floats)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]
