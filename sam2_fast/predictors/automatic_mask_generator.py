"""``Sam2AutomaticMaskGenerator``: "segment everything", a drop-in for the official
``sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator``.

A grid of single-point prompts covers the image (and, with ``crop_n_layers > 0``, overlapping
crops of it); every point gives 3 candidate masks (1 without multimask output); candidates
are filtered by predicted IoU and stability score, candidates touching a crop's inner edge
are dropped, and duplicates are removed by box non-maximum suppression, within each crop and
then across crops. Same arguments, defaults, maths and output records as the official
(``sam2==1.1.0``); what differs is how the work is batched:

* each crop is encoded once (crops of a layer go through the image encoder together);
* the prompt encoder runs once for all points of a crop, the mask decoder on
  ``points_per_batch`` points at a time, with no host round trip per mask;
* masks stay low-resolution logits: predicted-IoU filtering happens before any upsampling,
  stability scores and boxes are reductions over upsampled chunks that are never stored, NMS
  runs on the boxes, and only the surviving masks are upsampled again at the end, counted and
  encoded (uncompressed RLE in one pass over a chunk of masks);
* ``min_mask_region_area`` removes small holes and sprinkles from the low-resolution logits as
  the official does on a GPU with its CUDA extension (the official silently skips the step
  without the extension, upstream #243), with OpenCV's connected components.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..model.sam2_model import Sam2Model
from . import amg
from .image import Sam2ImagePredictor
from .transforms import as_rgb_uint8

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
EDGE_TOLERANCE_PX = 20.0  # official is_box_near_crop_edge atol
ENCODER_BATCH = 4  # crops encoded together
# elements of one upsampled chunk (float32): bounds the memory of the stability / box pass
_UPSAMPLE_ELEMS = {"cuda": 1 << 26, "cpu": 1 << 24}


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _finite(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def check_generator_args(points_per_side: Optional[int] = 32, points_per_batch: int = 64,
                         pred_iou_thresh: float = 0.8, stability_score_thresh: float = 0.95,
                         stability_score_offset: float = 1.0, mask_threshold: float = 0.0,
                         box_nms_thresh: float = 0.7, crop_n_layers: int = 0,
                         crop_nms_thresh: float = 0.7, crop_overlap_ratio: float = 512 / 1500,
                         crop_n_points_downscale_factor: int = 1,
                         point_grids: Optional[List[np.ndarray]] = None,
                         min_mask_region_area: float = 0, output_mode: str = "binary_mask",
                         use_m2m: bool = False, multimask_output: bool = True,
                         **unknown) -> Dict[str, Any]:
    """Validate the generator's arguments (all of :class:`Sam2AutomaticMaskGenerator`'s but the
    model) without a model, e.g. before a CLI loads one. Returns them normalized, with
    ``point_grids`` built from ``points_per_side`` when that is given.

    Raises:
        ValueError: naming the argument: ``points_per_side`` not a positive integer (or giving
            no point in some crop layer), ``point_grids`` together with ``points_per_side`` or
            malformed, an unknown ``output_mode``, ``coco_rle`` without pycocotools,
            ``min_mask_region_area > 0`` without OpenCV, any other value out of range, an
            unknown argument.
    """
    if unknown:
        raise ValueError(f"unknown mask generator argument(s) {sorted(unknown)}")
    if points_per_side is not None and point_grids is not None:
        raise ValueError("give points_per_side or point_grids, not both (pass points_per_side=None "
                         "with point_grids)")
    if points_per_side is None and point_grids is None:
        raise ValueError("give points_per_side (an int) or point_grids (one (N, 2) array per crop layer)")
    if not _is_int(crop_n_layers) or crop_n_layers < 0:
        raise ValueError(f"crop_n_layers must be an integer >= 0, got {crop_n_layers!r}")
    if not _is_int(crop_n_points_downscale_factor) or crop_n_points_downscale_factor < 1:
        raise ValueError(f"crop_n_points_downscale_factor must be an integer >= 1, got "
                         f"{crop_n_points_downscale_factor!r}")
    if points_per_side is not None:
        if not _is_int(points_per_side) or points_per_side < 1:
            raise ValueError(f"points_per_side must be a positive integer, got {points_per_side!r}")
        per_layer = amg.layer_points_per_side(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        if min(per_layer) < 1:
            raise ValueError(f"points_per_side={points_per_side} with crop_n_points_downscale_factor="
                             f"{crop_n_points_downscale_factor} leaves no point in crop layer "
                             f"{per_layer.index(min(per_layer))} (points per side by layer: {per_layer})")
        grids = [amg.point_grid(n) for n in per_layer]
    else:
        if not isinstance(point_grids, (list, tuple)):
            raise ValueError(f"point_grids must be a list of (N, 2) arrays, got {type(point_grids).__name__}")
        if len(point_grids) < crop_n_layers + 1:
            raise ValueError(f"point_grids has {len(point_grids)} grid(s) but crop_n_layers={crop_n_layers} "
                             f"needs {crop_n_layers + 1} (one per crop layer)")
        grids = []
        for i, g in enumerate(point_grids):
            try:
                arr = np.array(g, dtype=np.float64, copy=True)
            except (TypeError, ValueError) as e:
                raise ValueError(f"point_grids[{i}] must be numeric: {e}") from None
            if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
                raise ValueError(f"point_grids[{i}] must be a non-empty (N, 2) array of x, y in [0, 1], "
                                 f"got shape {arr.shape}")
            if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
                raise ValueError(f"point_grids[{i}] must hold normalized x, y in [0, 1]")
            grids.append(arr)
    if not _is_int(points_per_batch) or points_per_batch < 1:
        raise ValueError(f"points_per_batch must be a positive integer, got {points_per_batch!r}")
    out = dict(points_per_side=points_per_side, points_per_batch=int(points_per_batch), point_grids=grids,
               crop_n_layers=int(crop_n_layers),
               crop_n_points_downscale_factor=int(crop_n_points_downscale_factor))
    for name, v in (("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh),
                    ("stability_score_offset", stability_score_offset), ("mask_threshold", mask_threshold),
                    ("box_nms_thresh", box_nms_thresh), ("crop_nms_thresh", crop_nms_thresh)):
        out[name] = _finite(name, v)
    for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
        if not 0 <= out[name] <= 1:  # scores and IoUs lie in [0, 1]: outside, nothing or everything passes
            raise ValueError(f"{name} must be in [0, 1], got {out[name]!r}")
    if out["stability_score_offset"] < 0:  # the score is IoU(logits > t + o, logits > t - o)
        raise ValueError(f"stability_score_offset must be >= 0, got {stability_score_offset!r} "
                         "(a negative offset makes the stability score exceed 1 or divide by 0)")
    out["crop_overlap_ratio"] = _finite("crop_overlap_ratio", crop_overlap_ratio)
    if not 0 <= out["crop_overlap_ratio"] < 1:
        raise ValueError(f"crop_overlap_ratio must be in [0, 1), got {crop_overlap_ratio!r}")
    area = _finite("min_mask_region_area", min_mask_region_area)
    if area < 0:
        raise ValueError(f"min_mask_region_area must be >= 0, got {min_mask_region_area!r}")
    if area > 0:
        try:
            import cv2  # noqa: F401
        except ImportError:
            raise ValueError("min_mask_region_area > 0 needs OpenCV: pip install opencv-python-headless "
                             "(or sam2_fast[amg])") from None
    out["min_mask_region_area"] = min_mask_region_area
    if output_mode not in OUTPUT_MODES:
        raise ValueError(f"output_mode must be one of {', '.join(OUTPUT_MODES)}; got {output_mode!r}")
    if output_mode == "coco_rle":
        try:
            from pycocotools import mask as _  # noqa: F401
        except ImportError:
            raise ValueError("output_mode='coco_rle' needs pycocotools: pip install pycocotools") from None
    out["output_mode"] = output_mode
    for name, v in (("use_m2m", use_m2m), ("multimask_output", multimask_output)):
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {v!r}")
        out[name] = bool(v)
    return out


class Sam2AutomaticMaskGenerator:
    """Segment everything in an image with a :class:`~sam2_fast.model.sam2_model.Sam2Model`.

    Arguments, defaults and meaning as the official ``SAM2AutomaticMaskGenerator``:

    Args:
        model: the SAM 2 model (any device / dtype).
        points_per_side: points along each side of the grid (points_per_side**2 per crop of
            layer 0); None when ``point_grids`` is given.
        points_per_batch: points through the mask decoder at once (memory vs speed).
        pred_iou_thresh: keep masks whose predicted IoU is > this (0 disables).
        stability_score_thresh: keep masks whose stability score is >= this (0 disables).
        stability_score_offset: logit shift defining the stability score (IoU of the masks
            thresholded at ``mask_threshold`` +- offset, at the crop's resolution).
        mask_threshold: logit threshold of the binary masks.
        box_nms_thresh: box IoU above which a lower-scored mask of the same crop is dropped.
        crop_n_layers: extra layers of crops (layer i: 2^i x 2^i crops).
        crop_nms_thresh: box IoU above which duplicates across crops are dropped (masks of
            smaller crops preferred).
        crop_overlap_ratio: overlap of neighbouring crops in layer 1, as a fraction of the
            image's short side (later layers scale it down).
        crop_n_points_downscale_factor: layer i uses points_per_side / factor**i points per side.
        point_grids: explicit grids, one (N, 2) array of normalized x, y per crop layer.
        min_mask_region_area: > 0 removes holes and islands of at most this many pixels of the
            low-resolution mask (256 x 256 at 1024 px) before thresholding, as the official
            does on a GPU (needs OpenCV).
        output_mode: ``"binary_mask"`` ((H, W) bool ndarray), ``"uncompressed_rle"`` or
            ``"coco_rle"`` (pycocotools).
        use_m2m: refine every candidate once with its own low-res logits as mask prompt.
        multimask_output: 3 candidates per point (else 1, with dynamic multimask selection).

    Raises:
        ValueError: a bad argument, naming it (see :func:`check_generator_args`), a model that
            is not a ``Sam2Model``, or an unknown keyword argument.
    """

    def __init__(self, model: Sam2Model, points_per_side: Optional[int] = 32, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.8, stability_score_thresh: float = 0.95,
                 stability_score_offset: float = 1.0, mask_threshold: float = 0.0,
                 box_nms_thresh: float = 0.7, crop_n_layers: int = 0, crop_nms_thresh: float = 0.7,
                 crop_overlap_ratio: float = 512 / 1500, crop_n_points_downscale_factor: int = 1,
                 point_grids: Optional[List[np.ndarray]] = None, min_mask_region_area: float = 0,
                 output_mode: str = "binary_mask", use_m2m: bool = False, multimask_output: bool = True,
                 **kwargs) -> None:
        if kwargs:
            raise ValueError(f"unknown argument(s) of Sam2AutomaticMaskGenerator: {', '.join(sorted(kwargs))}")
        if not isinstance(model, Sam2Model):
            raise ValueError(f"model must be a sam2_fast Sam2Model, got {type(model).__name__}")
        args = check_generator_args(
            points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh,
            stability_score_offset, mask_threshold, box_nms_thresh, crop_n_layers, crop_nms_thresh,
            crop_overlap_ratio, crop_n_points_downscale_factor, point_grids, min_mask_region_area,
            output_mode, use_m2m, multimask_output)
        self.predictor = Sam2ImagePredictor(model)
        self.points_per_side = args["points_per_side"]
        self.point_grids: List[np.ndarray] = args["point_grids"]
        self.points_per_batch = args["points_per_batch"]
        self.pred_iou_thresh = args["pred_iou_thresh"]
        self.stability_score_thresh = args["stability_score_thresh"]
        self.stability_score_offset = args["stability_score_offset"]
        self.mask_threshold = args["mask_threshold"]
        self.box_nms_thresh = args["box_nms_thresh"]
        self.crop_n_layers = args["crop_n_layers"]
        self.crop_nms_thresh = args["crop_nms_thresh"]
        self.crop_overlap_ratio = args["crop_overlap_ratio"]
        self.crop_n_points_downscale_factor = args["crop_n_points_downscale_factor"]
        self.min_mask_region_area = args["min_mask_region_area"]
        self.output_mode = args["output_mode"]
        self.use_m2m = args["use_m2m"]
        self.multimask_output = args["multimask_output"]

    @classmethod
    def from_pretrained(cls, model_id: str, *, device: Union[None, str, torch.device] = None,
                        dtype: Union[None, str, torch.dtype] = None, image_size: Optional[int] = None,
                        backend: str = "auto", **kwargs) -> "Sam2AutomaticMaskGenerator":
        """A generator on a published checkpoint (official ``from_pretrained``).

        Args:
            model_id: ``facebook/sam2.1-hiera-large`` (the official Hugging Face ids) or a
                registry name (``sam2.1_hiera_large``, see :mod:`sam2_fast.hub`); the official
                file is downloaded once into the cache (``$SAM2_FAST_CACHE``).
            device, dtype, image_size, backend: as :func:`sam2_fast.build_sam2`.
            **kwargs: the generator's arguments, and the other builder arguments the official
                ``from_pretrained`` passes on (``mode``, ``apply_postprocessing``, ...).

        Raises:
            HubError (a ValueError): unknown model id; offline with the file not cached (the
                message says where to put it).
            ValueError: a bad or unknown generator argument (checked before any download).
        """
        from ..build import build_sam2_hf, split_build_kwargs

        build_kw, own_kw = split_build_kwargs(kwargs)
        check_generator_args(**own_kw)
        model = build_sam2_hf(model_id, device=device, dtype=dtype, image_size=image_size,
                              backend=backend, **build_kw)
        return cls(model, **own_kw)

    @property
    def model(self) -> Sam2Model:
        return self.predictor.model

    # ------------------------------------------------------------------ generate
    @torch.no_grad()
    def generate(self, image) -> List[Dict[str, Any]]:
        """Masks for everything in ``image``.

        Args:
            image: (H, W, 3) uint8 RGB ndarray or PIL RGB image (pixels).

        Returns:
            One dict per mask, in the official order (by crop-NMS score, then by predicted
            IoU within a crop): ``segmentation`` ((H, W) bool ndarray, or an RLE dict
            ``{"size": [H, W], "counts": ...}``: a list of run lengths for
            ``uncompressed_rle``, a str for ``coco_rle``), ``area`` (int, pixels), ``bbox``
            ([x, y, w, h] floats, pixels, w/h = last - first covered pixel), ``predicted_iou``
            (float), ``point_coords`` ([[x, y]], pixels), ``stability_score`` (float),
            ``crop_box`` ([x, y, w, h] of the crop that produced it).

        Raises:
            ValueError: not an (H, W, 3) uint8 RGB image, an empty image, or an image too small
                for ``crop_n_layers`` (a crop of zero size).
        """
        arr = as_rgb_uint8(image, "image")
        h, w = arr.shape[:2]
        boxes, layers = amg.crop_boxes((h, w), self.crop_n_layers, self.crop_overlap_ratio)
        for b in boxes:
            if b[2] <= b[0] or b[3] <= b[1]:
                raise ValueError(f"image of {w}x{h} pixels is too small for crop_n_layers="
                                 f"{self.crop_n_layers}: crop {b} is empty")
        try:
            data = self._generate(arr, boxes, layers)
        finally:
            self.predictor.reset_predictor()
        return self._records(data, boxes, (h, w))

    def _generate(self, image: np.ndarray, boxes: List[List[int]], layers: List[int]) -> Dict[str, torch.Tensor]:
        """All crops -> the kept candidates: ``logits`` (K, 4h, 4w) float32 low-res logits,
        ``iou``, ``stability``, ``boxes`` (K, 4) int64 image frame, ``points`` (K, 2)
        float32 image frame, ``crop`` (K,) int64 crop index; in output order."""
        parts = []
        for s in range(0, len(boxes), ENCODER_BATCH):
            group = list(range(s, min(len(boxes), s + ENCODER_BATCH)))
            self.predictor._embed([image[boxes[i][1]:boxes[i][3], boxes[i][0]:boxes[i][2]] for i in group])
            feats = self.predictor._features
            for j, ci in enumerate(group):
                embed = feats["image_embed"][j:j + 1]
                high_res = [f[j:j + 1] for f in feats["high_res_feats"]]
                parts.append(self._process_crop(embed, high_res, ci, boxes[ci], layers[ci], image.shape[:2]))
            self.predictor.reset_predictor()
        data = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        if len(boxes) > 1 and data["iou"].numel() > 0:
            crop_t = torch.tensor(boxes, dtype=torch.int64, device=data["crop"].device)[data["crop"]]
            scores = 1 / ((crop_t[:, 2] - crop_t[:, 0]) * (crop_t[:, 3] - crop_t[:, 1]))  # prefer small crops
            keep = amg.batched_nms(data["boxes"].float(), scores, torch.zeros_like(scores, dtype=torch.int64),
                                   self.crop_nms_thresh)
            data = {k: v[keep] for k, v in data.items()}
        return data

    def _decode(self, embed, high_res, sparse, dense, multimask: bool):
        """Mask decoder on a chunk of prompts -> (logits (B*M, 4h, 4w) float32, iou (B*M,))."""
        m = self.model
        if dense.shape[0] > 1 and dense.stride(0) == 0:  # keep the no-mask embedding shared (one row)
            dense = dense[:1].to(m.dtype).expand(sparse.shape[0], -1, -1, -1)
        low, iou, _, _ = m.sam_mask_decoder(
            image_embeddings=embed, image_pe=m.sam_prompt_encoder.get_dense_pe().to(m.dtype),
            sparse_prompt_embeddings=sparse.to(m.dtype), dense_prompt_embeddings=dense.to(m.dtype),
            multimask_output=multimask, repeat_image=sparse.shape[0] > 1, high_res_features=high_res)
        return low.float().flatten(0, 1), iou.float().flatten(0, 1)

    def _process_crop(self, embed, high_res, ci: int, crop_box: List[int], layer: int,
                      image_hw: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        m = self.model
        dev, S = m.device, m.image_size
        x0, y0, x1, y1 = crop_box
        cw, ch = x1 - x0, y1 - y0
        # points in the crop frame (float32 as the official), and in the model input frame
        pts = torch.as_tensor(self.point_grids[layer] * np.array([[cw, ch]]), dtype=torch.float32, device=dev)
        in_pts = torch.stack([pts[:, 0] / cw, pts[:, 1] / ch], dim=1) * S
        ones = torch.ones(pts.shape[0], 1, dtype=torch.int32, device=dev)
        sparse, dense = m.sam_prompt_encoder((in_pts[:, None].to(m.dtype), ones), None, None)
        kept: Dict[str, List[torch.Tensor]] = {k: [] for k in ("logits", "iou", "stability", "boxes", "points")}
        B = self.points_per_batch
        for s in range(0, pts.shape[0], B):
            e = min(pts.shape[0], s + B)
            logits, iou = self._decode(embed, high_res, sparse[s:e], dense[: e - s], self.multimask_output)
            c = logits.shape[0] // (e - s)
            p_in = in_pts[s:e].repeat_interleave(c, dim=0)
            if self.use_m2m:
                logits, iou = self._refine(embed, high_res, p_in, logits.clamp(-32.0, 32.0))
            cand = {"logits": logits, "iou": iou, "points": pts[s:e].repeat_interleave(c, dim=0)}
            if self.pred_iou_thresh > 0.0:
                cand = _select(cand, iou > self.pred_iou_thresh)
            if self.min_mask_region_area > 0:
                amg.fill_small_regions_(cand["logits"], self.min_mask_region_area)
            cand.update(self._full_res_stats(cand["logits"], (ch, cw)))
            if self.stability_score_thresh > 0.0:
                cand = _select(cand, cand["stability"] >= self.stability_score_thresh)
            for k in kept:
                kept[k].append(cand[k])
        data = {k: torch.cat(v) for k, v in kept.items()}
        # drop masks touching the crop's inner edges (not the image's)
        full = data["boxes"] + torch.tensor([x0, y0, x0, y0], device=dev)
        near_crop = torch.isclose(full.float(), torch.tensor(crop_box, dtype=torch.float32, device=dev)[None],
                                  atol=EDGE_TOLERANCE_PX, rtol=0)
        img = torch.tensor([0, 0, image_hw[1], image_hw[0]], dtype=torch.float32, device=dev)
        near_image = torch.isclose(full.float(), img[None], atol=EDGE_TOLERANCE_PX, rtol=0)
        data = _select(data, ~(near_crop & ~near_image).any(dim=1))
        keep = amg.batched_nms(data["boxes"].float(), data["iou"],
                               torch.zeros(data["iou"].shape[0], dtype=torch.int64, device=dev), self.box_nms_thresh)
        data = {k: v[keep] for k, v in data.items()}
        data["boxes"] = data["boxes"] + torch.tensor([x0, y0, x0, y0], device=dev)
        data["points"] = data["points"] + torch.tensor([x0, y0], device=dev)
        data["crop"] = torch.full((data["iou"].shape[0],), ci, dtype=torch.int64, device=dev)
        return data

    def _refine(self, embed, high_res, points_in, low_res):
        """One m2m step: each candidate again, its clamped low-res logits as mask prompt,
        single-mask output (official ``refine_with_m2m``)."""
        m = self.model
        out_l, out_i = [], []
        for s in range(0, points_in.shape[0], self.points_per_batch):
            e = min(points_in.shape[0], s + self.points_per_batch)
            ones = torch.ones(e - s, 1, dtype=torch.int32, device=points_in.device)
            sparse, dense = m.sam_prompt_encoder((points_in[s:e, None].to(m.dtype), ones), None,
                                                 low_res[s:e, None].to(m.dtype))
            lg, io = self._decode(embed, high_res, sparse, dense, False)
            out_l.append(lg)
            out_i.append(io)
        return torch.cat(out_l), torch.cat(out_i)

    def _chunk(self, hw: Tuple[int, int]) -> int:
        budget = _UPSAMPLE_ELEMS["cuda" if self.model.device.type == "cuda" else "cpu"]
        return max(1, budget // (hw[0] * hw[1]))

    def _upsample(self, logits: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """(N, 4h, 4w) low-res logits -> (N, H, W) at the crop's size (bilinear,
        align_corners=False, as the official predictor's ``postprocess_masks``)."""
        return F.interpolate(logits[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]

    def _full_res_stats(self, logits: torch.Tensor, hw: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        """Stability score and box (crop frame) of each mask at the crop's resolution,
        upsampling a chunk at a time and keeping only the reductions."""
        n = logits.shape[0]
        dev = logits.device
        stab = torch.empty(n, dtype=torch.float32, device=dev)
        boxes = torch.empty(n, 4, dtype=torch.int64, device=dev)
        hi = self.mask_threshold + self.stability_score_offset
        lo = self.mask_threshold - self.stability_score_offset
        step = self._chunk(hw)
        for s in range(0, n, step):
            up = self._upsample(logits[s:s + step], hw)
            stab[s:s + step] = amg.count_true(up > hi) / amg.count_true(up > lo)
            boxes[s:s + step] = amg.masks_to_boxes(up > self.mask_threshold)
        return {"stability": stab, "boxes": boxes}

    # ------------------------------------------------------------------ outputs
    def _binary_masks(self, data: Dict[str, torch.Tensor], boxes: List[List[int]], hw: Tuple[int, int]):
        """Yield (indices, (n, H, W) bool masks in the image frame) for the kept candidates,
        a chunk at a time."""
        h, w = hw
        crop = data["crop"].cpu().tolist()
        order = sorted(range(len(crop)), key=lambda i: crop[i])
        step = self._chunk(hw)
        i = 0
        while i < len(order):
            ci = crop[order[i]]
            j = i
            while j < len(order) and j - i < step and crop[order[j]] == ci:
                j += 1
            idx = order[i:j]
            x0, y0, x1, y1 = boxes[ci]
            sel = torch.tensor(idx, device=data["logits"].device)
            part = self._upsample(data["logits"][sel], (y1 - y0, x1 - x0)) > self.mask_threshold
            if (x0, y0, x1, y1) != (0, 0, w, h):
                full = torch.zeros(len(idx), h, w, dtype=torch.bool, device=part.device)
                full[:, y0:y1, x0:x1] = part
                part = full
            yield idx, part
            i = j

    def _records(self, data: Dict[str, torch.Tensor], boxes: List[List[int]], hw: Tuple[int, int]) -> List[dict]:
        n = data["iou"].shape[0]
        segs: List[Any] = [None] * n
        areas = [0] * n
        for idx, masks in self._binary_masks(data, boxes, hw):
            for i, a in zip(idx, amg.count_true(masks).tolist()):
                areas[i] = a
            if self.output_mode == "binary_mask":
                arr = masks.cpu().numpy()
                for k, i in enumerate(idx):
                    segs[i] = arr[k]
            else:
                rles = amg.uncompressed_rle(masks)
                if self.output_mode == "coco_rle":
                    rles = amg.coco_rle(rles)
                for k, i in enumerate(idx):
                    segs[i] = rles[k]
        host = {k: v.cpu() for k, v in data.items() if k != "logits"}
        out = []
        for i in range(n):
            cb = boxes[int(host["crop"][i])]
            out.append({
                "segmentation": segs[i],
                "area": areas[i],
                "bbox": amg.xyxy_to_xywh(host["boxes"][i].tolist()),
                "predicted_iou": float(host["iou"][i]),
                "point_coords": [host["points"][i].tolist()],
                "stability_score": float(host["stability"][i]),
                "crop_box": amg.xyxy_to_xywh(cb),
            })
        return out


def _select(d: Dict[str, torch.Tensor], keep: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Rows of every tensor in ``d`` where the bool ``keep`` is set (one index computation)."""
    idx = keep.nonzero().squeeze(1)
    return {k: v[idx] for k, v in d.items()}


#: The official class name.
SAM2AutomaticMaskGenerator = Sam2AutomaticMaskGenerator

__all__ = ["OUTPUT_MODES", "SAM2AutomaticMaskGenerator", "Sam2AutomaticMaskGenerator", "check_generator_args"]
