"""``Sam2``: the one-object front door for images (and, with the video work, streams).

``Sam2(model)`` or ``Sam2.from_checkpoint(path)``; :meth:`Sam2.predict_image` runs the same
steps as :class:`~sam2_fast.predictors.image.Sam2ImagePredictor` (which it uses) and returns
everything in one :class:`Sam2ImagePrediction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch

from .build import build_sam2
from .checkpoint import PathLike
from .model.sam2_model import Sam2Model
from .predictors.image import Sam2ImagePredictor


@dataclass
class Sam2ImagePrediction:
    """Result of :meth:`Sam2.predict_image` (C = 3 with multimask output, else 1; a leading B
    dim when several boxes/point sets were given).

    Attributes:
        masks: (C, H, W) bool at the original image size.
        iou_predictions: (C,) float32 predicted IoU of each mask.
        low_res_logits: (C, 4h, 4w) float32 logits (256 x 256 at 1024 px), clamped to [-32, 32].
        object_score_logits: (1,) float32; > 0 means the object is predicted present.
        orig_size: (H, W) of the input image in pixels.
        input_size: (S, S) of the model input in pixels.
    """

    masks: np.ndarray
    iou_predictions: np.ndarray
    low_res_logits: np.ndarray
    object_score_logits: np.ndarray
    orig_size: Tuple[int, int]
    input_size: Tuple[int, int]


class Sam2:
    """SAM 2 from one object: images now, video streams in the video work."""

    def __init__(self, model: Sam2Model) -> None:
        if not isinstance(model, Sam2Model):
            raise ValueError(f"model must be a Sam2Model, got {type(model).__name__}")
        self.model = model
        self._image_predictor = Sam2ImagePredictor(model)

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[None, str, torch.device] = None,
                        dtype: Union[None, str, torch.dtype] = None, image_size: Optional[int] = None,
                        backend: str = "auto") -> "Sam2":
        """Load an official checkpoint (``.pt`` / ``.safetensors``, variant detected) — see
        :func:`sam2_fast.build_sam2` for the arguments and errors."""
        return cls(build_sam2(None, path, device=device, dtype=dtype, image_size=image_size, backend=backend))

    def predict_image(self, image, points=None, labels=None, boxes=None, mask_input=None,
                      multimask_output: bool = True) -> Sam2ImagePrediction:
        """Segment one image from prompts (official ``SAM2ImagePredictor.set_image`` + ``predict``).

        Args:
            image: (H, W, 3) uint8 RGB ndarray or PIL RGB image.
            points: (N, 2) x, y in pixels; labels: (N,) 1 foreground / 0 background.
            boxes: (4,) or (B, 4) x0, y0, x1, y1 pixels.
            mask_input: (1, 4h, 4w) low-res logits from a previous prediction.
            multimask_output: 3 candidate masks instead of 1.

        Raises:
            ValueError: malformed image or prompts (the message names the argument).
        """
        p = self._image_predictor
        p.set_image(image)
        masks, ious, low = p.predict(points, labels, boxes, mask_input, multimask_output=multimask_output)
        obj = p.last_object_score_logits.cpu().numpy()
        obj = obj[0] if obj.shape[0] == 1 else obj
        return Sam2ImagePrediction(masks, ious, low, obj, tuple(p._orig_hw[0]),
                                   (self.model.image_size, self.model.image_size))
