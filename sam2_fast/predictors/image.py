"""``Sam2ImagePredictor``: a drop-in for the official ``sam2.sam2_image_predictor.SAM2ImagePredictor``.

Compute an image embedding once with :meth:`set_image`, then predict masks for any number of
point / box / mask prompts with :meth:`predict`. Same preprocessing, coordinate handling,
outputs and defaults as the official predictor built with ``apply_postprocessing=True``;
feature sizes follow the model's ``image_size`` (the official hard-codes 1024 px, upstream #138),
and bad input raises a ValueError naming the argument. Masks come back as float32 0/1 like the
official's (OpenCV calls that follow need a numeric dtype). Prompts follow the rules of
:mod:`sam2_fast.prompts` (coordinates outside the image accepted as by the official; an empty
(0, 4) box array gives an empty result).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..model.sam2_model import Sam2Model
from ..prompts import VALID_LABELS, check_flag, image_prompts  # noqa: F401 - VALID_LABELS re-exported
from .transforms import as_rgb_uint8, postprocess_masks, preprocess_image


def _check_flags(multimask_output, return_logits, normalize_coords) -> None:
    """ValueError unless the three switches of ``predict`` are True/False (a string such as
    ``"no"`` would otherwise read as True)."""
    for name, v in (("multimask_output", multimask_output), ("return_logits", return_logits),
                    ("normalize_coords", normalize_coords)):
        check_flag(v, name)


class PredictorStateError(RuntimeError, ValueError):
    """The predictor is not in a state that allows the call (e.g. predict before set_image).
    A RuntimeError like the official's, and a ValueError."""


class Sam2ImagePredictor:
    """Image segmentation from prompts with a :class:`Sam2Model`.

    Args:
        model: the SAM 2 model (any dtype/device; inputs follow it).
        mask_threshold: logit threshold for binary masks (0.0).
        max_hole_area, max_sprinkle_area: the official post-processing of the low-resolution
            masks (``SAM2Transforms.postprocess_masks``) before they are upsampled: background
            components (score <= ``mask_threshold``, 8-connected) of at most ``max_hole_area``
            low-resolution pixels become foreground (threshold + 10), foreground components of
            at most ``max_sprinkle_area`` become background (threshold - 10), both found on
            the decoder's masks; 0 (default) = off. Exact on any device, without host
            synchronisation (:func:`sam2_fast.engine.postprocess.small_components`); the
            official needs its CUDA extension and skips the step with a warning without it.
            The returned low-resolution logits are the decoder's, as the official.

    Raises:
        ValueError: a negative or non-finite area or threshold, an unknown keyword argument.
    """

    def __init__(self, model: Sam2Model, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
                 max_sprinkle_area: float = 0.0, **kwargs) -> None:
        if kwargs:  # the official swallows them; a misspelt argument would then do nothing
            raise ValueError(f"unknown argument(s) of Sam2ImagePredictor: {', '.join(sorted(kwargs))}")
        for name, v in (("mask_threshold", mask_threshold), ("max_hole_area", max_hole_area),
                        ("max_sprinkle_area", max_sprinkle_area)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(v) or (name != "mask_threshold" and v < 0):
                raise ValueError(f"{name} must be a finite number{' >= 0' if name != 'mask_threshold' else ''}, "
                                 f"got {v!r}")
        self.model = model
        self.mask_threshold = float(mask_threshold)
        self.max_hole_area = float(max_hole_area)
        self.max_sprinkle_area = float(max_sprinkle_area)
        fs = model.config.feat_size
        self._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]
        self.reset_predictor()

    def _fill_small_regions(self, low_res: torch.Tensor) -> torch.Tensor:
        """``max_hole_area`` / ``max_sprinkle_area`` on (B, C, h, w) low-res logits (official
        ``SAM2Transforms.postprocess_masks``); float32 out."""
        masks = low_res.float()
        hole, sprinkle = int(self.max_hole_area), int(self.max_sprinkle_area)  # areas are whole pixels
        if hole < 1 and sprinkle < 1:
            return masks
        from sam2_fast.engine.postprocess import small_components

        t = self.mask_threshold
        flat = masks.flatten(0, 1).unsqueeze(1)
        out = masks
        if hole >= 1:
            out = torch.where(small_components(flat <= t, hole).reshape_as(masks), t + 10.0, out)
        if sprinkle >= 1:
            out = torch.where(small_components(flat > t, sprinkle).reshape_as(masks), t - 10.0, out)
        return out

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> "Sam2ImagePredictor":
        """A predictor for a published model (official ``SAM2ImagePredictor.from_pretrained``).

        Args:
            model_id: a Hugging Face id as the official takes (``"facebook/sam2.1-hiera-tiny"``)
                or a sam2_fast name (``"sam2.1_hiera_tiny"``). The official file is downloaded
                once into the cache of :mod:`sam2_fast.hub` (``$SAM2_FAST_CACHE``).
            **kwargs: :func:`sam2_fast.build.build_sam2` arguments (``device``, ``dtype``,
                ``image_size``, ``backend``, the official ``mode`` ...) and predictor arguments
                (``mask_threshold`` ...).

        Raises:
            HubError (a ValueError): unknown id, or no network and no cached file (the message
                says where to put the file).
        """
        from ..build import build_sam2_hf, split_build_kwargs

        build_kw, own_kw = split_build_kwargs(kwargs)
        return cls(build_sam2_hf(model_id, **build_kw), **own_kw)

    # ------------------------------------------------------------------ state
    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_predictor(self) -> None:
        """Forget the current image(s) and embeddings."""
        self._is_image_set = False
        self._features = None
        self._orig_hw: Optional[List[Tuple[int, int]]] = None
        self._is_batch = False
        self.last_object_score_logits: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ embeddings
    @torch.no_grad()
    def _embed(self, images: Sequence[np.ndarray]) -> None:
        m = self.model
        batch = torch.cat([preprocess_image(im, m.image_size, m.device, m.dtype) for im in images], dim=0)
        backbone_out = m.forward_image(batch)
        _, vision_feats, _, _ = m._prepare_backbone_features(backbone_out)
        if m.config.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + m.no_mem_embed
        b = batch.shape[0]
        feats = [f.permute(1, 2, 0).reshape(b, -1, *hw) for f, hw in zip(vision_feats, self._bb_feat_sizes)]
        self._features = {"image_embed": feats[-1], "high_res_feats": feats[:-1]}
        self._orig_hw = [tuple(im.shape[:2]) for im in images]
        self._is_image_set = True

    def set_image(self, image) -> None:
        """Compute the embedding of one image.

        Args:
            image: (H, W, 3) uint8 RGB ndarray or a PIL RGB image, any size (pixels).

        Raises:
            ValueError: wrong type, rank, dtype or channel count (the previous image is
                forgotten first, as in the official: ``predict`` then raises until an image is
                set).
        """
        self.reset_predictor()
        arr = as_rgb_uint8(image, "image")
        self._embed([arr])

    def set_image_batch(self, image_list: List[np.ndarray]) -> None:
        """Compute the embeddings of several images (each (H_i, W_i, 3) uint8 RGB) for
        :meth:`predict_batch`. Raises ValueError for a non-list, an empty list or a bad image."""
        self.reset_predictor()
        if not isinstance(image_list, (list, tuple)) or len(image_list) == 0:
            raise ValueError("image_list must be a non-empty list of (H, W, 3) uint8 arrays")
        arrs = [as_rgb_uint8(im, f"image_list[{i}]") for i, im in enumerate(image_list)]
        self._embed(arrs)
        self._is_batch = True

    def get_image_embedding(self) -> torch.Tensor:
        """The (B, 256, S/16, S/16) embedding of the current image(s) (no_mem_embed added).
        Raises PredictorStateError before set_image."""
        if not self._is_image_set:
            raise PredictorStateError("An image must be set with .set_image(...) to generate an embedding.")
        return self._features["image_embed"]

    # ------------------------------------------------------------------ prompts
    def _prep_prompts(self, point_coords, point_labels, box, mask_input, normalize_coords, img_idx):
        """Check prompts (:func:`sam2_fast.prompts.image_prompts`) and move them to the model
        input frame (pixels of the S x S input).

        Returns (mask_input (B, 1, 4h, 4w) | None, coords (B, N, 2) | None, labels (B, N) | None,
        box (B, 2, 2) | None, empty: an empty (0, 4) box array was given)."""
        h, w = self._orig_hw[img_idx]
        limit = (w, h) if normalize_coords else (1.0, 1.0)
        dev = self.device
        checked = image_prompts(point_coords, point_labels, box, mask_input,
                                mask_input_size=tuple(self.model.sam_prompt_encoder.mask_input_size))
        coords_t = labels_t = box_t = mask_t = None
        if checked.coords is not None:
            coords_t = self._to_input_frame(torch.tensor(checked.coords, device=dev), limit)
            labels_t = torch.tensor(checked.labels, device=dev)
        if checked.boxes is not None:
            box_t = self._to_input_frame(torch.tensor(checked.boxes, device=dev).reshape(-1, 2, 2), limit)
        if checked.mask_input is not None:
            mask_t = torch.tensor(checked.mask_input, device=dev)
        return mask_t, coords_t, labels_t, box_t, checked.empty

    def _empty_result(self, multimask_output: bool, return_logits: bool, img_idx: int):
        """What an empty (0, 4) box array gives: (masks (0, C, H, W) float32, iou (0, C),
        low-res logits (0, C, 4h, 4w)), C = 3 with multimask output else 1."""
        h, w = self._orig_hw[img_idx]
        c = 3 if multimask_output else 1
        lo = self.model.sam_prompt_encoder.mask_input_size
        self.last_object_score_logits = torch.zeros(0, 1, device=self.device)
        return (np.zeros((0, c, h, w), np.float32), np.zeros((0, c), np.float32),
                np.zeros((0, c, lo[0], lo[1]), np.float32))

    def _to_input_frame(self, coords: torch.Tensor, limit: Tuple[float, float]) -> torch.Tensor:
        """(..., 2) x, y in [0, W] x [0, H] (or [0, 1]) -> pixels of the S x S model input,
        in the official order of operations (divide, then multiply; fp32)."""
        coords = coords.clone()
        coords[..., 0] = coords[..., 0] / limit[0]
        coords[..., 1] = coords[..., 1] / limit[1]
        return coords * self.model.image_size

    @torch.no_grad()
    def _predict(self, point_coords, point_labels, boxes=None, mask_input=None,
                 multimask_output=True, return_logits=False, img_idx=-1):
        """Prompts already in the model input frame (see :meth:`_prep_prompts`) -> (masks
        (B, C, H, W) bool or logits, iou (B, C), low-res logits (B, C, 4h, 4w) clamped to
        [-32, 32]); also stores the object-score logits in ``last_object_score_logits``."""
        m = self.model
        points = None if point_coords is None else (point_coords, point_labels)
        if boxes is not None:
            box_labels = torch.tensor([[2, 3]], dtype=torch.int32, device=boxes.device).repeat(boxes.shape[0], 1)
            if points is not None:
                points = (torch.cat([boxes, points[0]], dim=1), torch.cat([box_labels, points[1]], dim=1))
            else:
                points = (boxes, box_labels)
        if mask_input is not None:
            mask_input = mask_input.to(m.dtype)
        if points is not None:
            points = (points[0].to(m.dtype), points[1])
        sparse, dense = m.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        sparse, dense = sparse.to(m.dtype), dense.to(m.dtype)
        batched = points is not None and points[0].shape[0] > 1
        if mask_input is not None and mask_input.shape[0] > 1:
            batched = True
        high_res = [f[img_idx].unsqueeze(0) for f in self._features["high_res_feats"]]
        low_res, iou, _, obj_scores = m.sam_mask_decoder(
            image_embeddings=self._features["image_embed"][img_idx].unsqueeze(0),
            image_pe=m.sam_prompt_encoder.get_dense_pe().to(m.dtype),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=multimask_output, repeat_image=batched, high_res_features=high_res)
        masks = postprocess_masks(self._fill_small_regions(low_res), self._orig_hw[img_idx])
        low_res = torch.clamp(low_res.float(), -32.0, 32.0)
        if not return_logits:
            masks = masks > self.mask_threshold
        self.last_object_score_logits = obj_scores.float()
        return masks, iou.float(), low_res

    def predict(self, point_coords: Optional[np.ndarray] = None, point_labels: Optional[np.ndarray] = None,
                box: Optional[np.ndarray] = None, mask_input: Optional[np.ndarray] = None,
                multimask_output: bool = True, return_logits: bool = False,
                normalize_coords: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for prompts on the current image.

        Args:
            point_coords: (N, 2) or (B, N, 2) x, y in pixels of the original image
                (``normalize_coords=True``) or in [0, 1] (``normalize_coords=False``).
            point_labels: (N,) or (B, N) ints: 1 foreground, 0 background, -1 padding,
                2/3 box corners.
            box: (4,) or (B, 4) x0, y0, x1, y1 (same units as the points); (0, 4) (a detector
                that found nothing) gives an empty result.
            mask_input: (1, 4h, 4w) or (B, 1, 4h, 4w) low-res logits from a previous call
                (256 x 256 at 1024 px).
            multimask_output: 3 masks instead of 1 (single output uses dynamic multimask via
                stability).
            return_logits: float logits instead of 0/1 masks.

            Coordinates outside the image are accepted (as the official); NaN/inf are not
            (rules: :mod:`sam2_fast.prompts`).

        Returns:
            masks (C, H, W) float32 0/1 (or float32 logits), iou_predictions (C,) float32,
            low_res_masks (C, 4h, 4w) float32 logits; with B > 1 prompts a leading B dim; with an
            empty box array (0, C, H, W), (0, C) and (0, C, 4h, 4w).

        Raises:
            PredictorStateError: no image set (also a RuntimeError like the official's).
            ValueError: a malformed prompt (the message names the argument).
        """
        if not self._is_image_set:
            raise PredictorStateError("An image must be set with .set_image(...) before mask prediction.")
        if self._is_batch:
            raise PredictorStateError("a batch of images is set; use predict_batch(...)")
        _check_flags(multimask_output, return_logits, normalize_coords)
        mask_t, coords, labels, box_t, empty = self._prep_prompts(point_coords, point_labels, box, mask_input,
                                                                  normalize_coords, 0)
        if empty:
            return self._empty_result(multimask_output, return_logits, 0)
        masks, iou, low = self._predict(coords, labels, box_t, mask_t, multimask_output, return_logits, img_idx=0)
        return (masks.squeeze(0).float().cpu().numpy(), iou.squeeze(0).cpu().numpy(),
                low.squeeze(0).cpu().numpy())

    def predict_batch(self, point_coords_batch=None, point_labels_batch=None, box_batch=None,
                      mask_input_batch=None, multimask_output: bool = True, return_logits: bool = False,
                      normalize_coords: bool = True):
        """:meth:`predict` for each image of :meth:`set_image_batch`; each ``*_batch`` is a list
        with one entry per image (or None). Returns three lists (masks float32 0/1 or logits,
        ious, low-res logits), shaped per image as :meth:`predict` (an empty (0, 4) box array
        gives that image an empty result). Raises PredictorStateError without a batch set,
        ValueError for lists of the wrong length or a malformed prompt."""
        if not self._is_image_set or not self._is_batch:
            raise PredictorStateError("a batch of images must be set with .set_image_batch(...) first")
        _check_flags(multimask_output, return_logits, normalize_coords)
        n = len(self._orig_hw)
        for name, lst in (("point_coords_batch", point_coords_batch), ("point_labels_batch", point_labels_batch),
                          ("box_batch", box_batch), ("mask_input_batch", mask_input_batch)):
            if lst is not None and len(lst) != n:
                raise ValueError(f"{name} has {len(lst)} entries for {n} images")
        out_m, out_i, out_l = [], [], []
        for i in range(n):
            pick = lambda lst, i=i: None if lst is None else lst[i]  # noqa: E731
            mask_t, coords, labels, box_t, empty = self._prep_prompts(
                pick(point_coords_batch), pick(point_labels_batch), pick(box_batch), pick(mask_input_batch),
                normalize_coords, i)
            if empty:
                for lst, arr in zip((out_m, out_i, out_l), self._empty_result(multimask_output, return_logits, i)):
                    lst.append(arr)
                continue
            masks, iou, low = self._predict(coords, labels, box_t, mask_t, multimask_output, return_logits, img_idx=i)
            out_m.append(masks.squeeze(0).float().cpu().numpy())
            out_i.append(iou.squeeze(0).cpu().numpy())
            out_l.append(low.squeeze(0).cpu().numpy())
        return out_m, out_i, out_l
