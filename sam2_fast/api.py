"""``Sam2``: one front door for images and video streams.

``Sam2(model)`` or ``Sam2.from_checkpoint(path)``:

* :meth:`Sam2.predict_image` runs the same steps as
  :class:`~sam2_fast.predictors.image.Sam2ImagePredictor` (which it uses) and returns everything
  in one :class:`Sam2ImagePrediction`;
* :meth:`Sam2.new_video_state` + :meth:`Sam2.predict_video_frame` track objects through a
  stream of frames that arrive one at a time, all objects batched, with bounded memory
  (:mod:`sam2_fast.predictors.streaming`); :meth:`Sam2.track` drives it over any frame source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .build import build_sam2
from .checkpoint import PathLike
from .model.sam2_model import Sam2Model
from .predictors.image import Sam2ImagePredictor
from .predictors.streaming import (DEFAULT_MAX_COND_FRAMES, Sam2VideoFramePrediction, Sam2VideoState,
                                   StreamingTracker, iter_frames)


@dataclass
class Sam2ImagePrediction:
    """Result of :meth:`Sam2.predict_image` (C = 3 with multimask output, else 1; a leading B
    dim when several boxes/point sets were given).

    Attributes:
        masks: (C, H, W) bool at the original image size (the official-compatible
            ``Sam2ImagePredictor.predict`` returns float32 0/1).
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
    """SAM 2 from one object: images, and video streams.

    Args:
        model: a :class:`Sam2Model` (see :func:`sam2_fast.build_sam2`).
        cuda_graphs: replay the image encoder and the steady-state tracking step of streams as
            CUDA graphs (:mod:`sam2_fast.engine.graphs`): None = on when the model is on CUDA,
            False = off. The capture time is in ``sam.graph_stats["capture_s"]``.

    Raises:
        ValueError: not a Sam2Model, or ``cuda_graphs=True`` without CUDA.
    """

    def __init__(self, model: Sam2Model, cuda_graphs: Optional[bool] = None) -> None:
        if not isinstance(model, Sam2Model):
            raise ValueError(f"model must be a Sam2Model, got {type(model).__name__}")
        self.model = model
        self._image_predictor = Sam2ImagePredictor(model)
        self._tracker = StreamingTracker(model, cuda_graphs)

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[None, str, torch.device] = None,
                        dtype: Union[None, str, torch.dtype] = None, image_size: Optional[int] = None,
                        backend: str = "auto", cuda_graphs: Optional[bool] = None) -> "Sam2":
        """Load an official checkpoint (``.pt`` / ``.safetensors``, variant detected) — see
        :func:`sam2_fast.build_sam2` for the arguments and errors; ``cuda_graphs`` as
        :class:`Sam2`."""
        return cls(build_sam2(None, path, device=device, dtype=dtype, image_size=image_size,
                              backend=backend), cuda_graphs=cuda_graphs)

    @property
    def graph_stats(self) -> dict:
        """Eager, captured and replayed step counts and the capture seconds of the streams."""
        return dict(self._tracker.core.graphs.stats)

    def predict_image(self, image, points=None, labels=None, boxes=None, mask_input=None,
                      multimask_output: bool = True) -> Sam2ImagePrediction:
        """Segment one image from prompts (official ``SAM2ImagePredictor.set_image`` + ``predict``).

        Args:
            image: (H, W, 3) uint8 RGB ndarray or PIL RGB image.
            points: (N, 2) x, y in pixels; labels: (N,) 1 foreground / 0 background.
            boxes: (4,) or (B, 4) x0, y0, x1, y1 pixels.
            mask_input: (1, 4h, 4w) low-res logits from a previous prediction (its
                ``low_res_logits``; 4h = 4w = S / 4, 256 at 1024 px).
            multimask_output: 3 candidate masks instead of 1.

        Returns:
            :class:`Sam2ImagePrediction`: bool masks (C, H, W) at the image size, IoU
            predictions (C,), low-res logits (C, S/4, S/4), the object score; a leading B dim
            for B boxes.

        Raises:
            ValueError: malformed image or prompts (the message names the argument).
        """
        p = self._image_predictor
        p.set_image(image)
        masks, ious, low = p.predict(points, labels, boxes, mask_input, multimask_output=multimask_output)
        masks = masks > 0.5  # the predictor returns the official float32 0/1; bool here
        obj = p.last_object_score_logits.cpu().numpy()
        obj = obj[0] if obj.shape[0] == 1 else obj
        return Sam2ImagePrediction(masks, ious, low, obj, tuple(p._orig_hw[0]),
                                   (self.model.image_size, self.model.image_size))

    # ------------------------------------------------------------------ video streams
    def new_video_state(self, num_frames: Optional[int] = None, *,
                        max_cond_frames: int = DEFAULT_MAX_COND_FRAMES, fill_hole_area: int = 8,
                        non_overlap_masks: bool = False,
                        add_all_frames_to_correct_as_cond: bool = False) -> Sam2VideoState:
        """A new, empty stream.

        Args:
            num_frames: the video length when known. Only used like the official
                ``inference_state["num_frames"]``: it bounds the object-pointer window
                (min(num_frames, 16)); None = unbounded stream (equal to any video of >= 16
                frames offline). A stream that goes past it gets a warning (once).
            max_cond_frames: prompted (conditioning) frames kept per object; beyond it the
                oldest one after the first is dropped. With
                ``add_all_frames_to_correct_as_cond=True`` every corrected frame becomes a
                conditioning frame, so ``max_cond_frames=1`` keeps only the first prompt: each
                correction then changes that frame's masks but is forgotten by later frames.
            fill_hole_area: fill background holes up to this area (pixels of the 1/4-resolution
                mask) like the official video predictor (8); 0 disables.
            non_overlap_masks: keep only the best object per pixel in the returned masks.
            add_all_frames_to_correct_as_cond: correction prompts on tracked objects make the
                frame a conditioning frame (official option of the same name).

        Raises:
            ValueError: a bad argument (counts must be ints, switches True/False).
        """
        return self._tracker.new_state(num_frames, max_cond_frames, fill_hole_area, non_overlap_masks,
                                       add_all_frames_to_correct_as_cond)

    def predict_video_frame(self, state: Sam2VideoState, frame, prompts: Optional[dict] = None
                            ) -> Sam2VideoFramePrediction:
        """Track every object of ``state`` on the next frame of the stream.

        Args:
            state: from :meth:`new_video_state`; advanced by one frame.
            frame: (H, W, 3) uint8 RGB ndarray, PIL RGB image, or (H, W, 3) uint8 torch tensor
                (any device). Every frame of a stream must have the first frame's size.
            prompts: ``{obj_id: {"points": (N, 2) x, y pixels, "labels": (N,) 1/0,
                "box": (4,) x0, y0, x1, y1 pixels, "mask": (H, W) bool at the frame size (or
                (S, S))}}`` for new objects (their first prompt) or tracked ones (a correction),
                optionally with ``"frame_idx"`` (must equal ``state.frame_idx``). The first
                frame needs at least one. A stream cannot go back: a click made while looking
                at the masks of frame t is sent with frame t + 1 (a correction there), or the
                frame is fed again as a new frame. Rules of :mod:`sam2_fast.prompts`: coordinates
                outside the frame are accepted (as the official video predictor), NaN/inf, an
                empty box and labels outside (-1, 0, 1, 2, 3) are not.

        Returns:
            :class:`Sam2VideoFramePrediction` for every tracked object.

        Raises:
            ValueError: a frame of another size (never resized silently), non-RGB or non-uint8
                input, prompts for a frame already passed or not arrived, an obj_id reused after
                :meth:`remove_object`, malformed prompts, no prompt on the first frame. The state is
                unchanged after an error.
        """
        return self._tracker.step(state, frame, prompts)

    def predict_video_frames(self, states: Sequence[Sam2VideoState], frames: Sequence,
                             prompts: Optional[Sequence[Optional[dict]]] = None
                             ) -> List[Sam2VideoFramePrediction]:
        """:meth:`predict_video_frame` for several independent streams at once: the image
        encoder runs on all frames as one batch. Raises ValueError as that method, or for
        lists of different lengths / a stream given twice."""
        return self._tracker.step_many(states, frames, prompts)

    def remove_object(self, state: Sam2VideoState, obj_id) -> None:
        """Stop tracking ``obj_id`` in ``state``; its id cannot be reused there.
        Raises ValueError for an unknown id."""
        state.remove_object(obj_id)

    def track(self, source, prompts: Union[str, Dict[int, dict]], state: Optional[Sam2VideoState] = None,
              *, max_objects: Optional[int] = None, mask_generator=None
              ) -> Iterator[Sam2VideoFramePrediction]:
        """Track through any frame source (see :func:`sam2_fast.predictors.streaming.iter_frames`:
        a video path or URL via PyAV, an int camera index via OpenCV, a frame folder, or any
        iterable of frames), applying ``prompts[frame_idx]`` (the ``prompts`` dict of
        :meth:`predict_video_frame`) on those frames. Yields one prediction per frame.

        ``prompts="auto"`` tracks everything: the automatic mask generator segments the first
        frame and every mask it keeps becomes an object (ids 1..N by decreasing area, at most
        ``max_objects``), given as mask prompts on that frame, so all objects form one batch.
        ``mask_generator``: a :class:`~sam2_fast.predictors.automatic_mask_generator.
        Sam2AutomaticMaskGenerator` on this model with ``output_mode="binary_mask"`` (default:
        one with the official defaults).

        Raises (on the first frame unless said otherwise):
            ValueError: ``prompts`` neither a dict nor ``"auto"``, a key that is not a frame
                index or names a frame the stream has passed, a prompt for any later frame that
                breaks the rules of :meth:`predict_video_frame` (checked against the first
                frame's size before the first result is yielded); after the last frame, prompts on
                frames the source never reached (nothing is dropped silently); ``max_objects`` or
                ``mask_generator`` without ``"auto"``, ``max_objects`` not a positive integer,
                a generator that is not binary-mask output or not on this model, a ``state``
                that already tracks objects, an empty source, no mask kept on the first frame;
                and what :meth:`predict_video_frame` raises.
        """
        if isinstance(prompts, str) and prompts != "auto" or not isinstance(prompts, (str, Mapping)):
            got = repr(prompts) if isinstance(prompts, str) else type(prompts).__name__
            raise ValueError(f"prompts must be a dict {{frame_idx: {{obj_id: prompt}}}} or 'auto', got {got}")
        if isinstance(prompts, str) or max_objects is not None or mask_generator is not None:
            yield from self._track_auto(source, prompts, state, max_objects, mask_generator)
            return
        state = state or self.new_video_state()
        for key in prompts:
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
                raise ValueError(f"prompts keys are frame indices (ints), got {key!r}")
            if key < state.frame_idx:
                raise ValueError(f"prompts for frame {key}: the stream is already at frame "
                                 f"{state.frame_idx}")
        checked = state.video_size is not None
        if checked:
            self._check_prompts_ahead(prompts, state)
        for frame in iter_frames(source):
            out = self.predict_video_frame(state, frame, prompts.get(state.frame_idx))
            if not checked:  # the first frame fixed the size the prompts are checked against
                self._check_prompts_ahead(prompts, state)
                checked = True
            yield out
        missed = sorted(int(k) for k in prompts if k >= state.frame_idx)
        if missed:
            raise ValueError(f"prompts on frame(s) {missed} were never used: the source ended at "
                             f"frame {state.frame_idx - 1}")

    def _check_prompts_ahead(self, prompts: Mapping, state: Sam2VideoState) -> None:
        """Apply the prompt rules of :meth:`predict_video_frame` to the prompts of every frame
        the stream has not reached (the frame size is the stream's), so that a typo on frame
        100 is reported on the first frame, not after 100 frames. Raises ValueError naming the
        frame."""
        from .prompts import check_obj_id, stream_prompt

        for fi in sorted(int(k) for k in prompts if k >= state.frame_idx):
            per_frame = prompts[fi]
            if not isinstance(per_frame, Mapping):
                raise ValueError(f"prompts[{fi}] must be a dict {{obj_id: prompt}}, got "
                                 f"{type(per_frame).__name__}")
            for oid, p in per_frame.items():
                try:
                    oid = check_obj_id(oid, "a prompt's obj_id (its key)")
                    stream_prompt(oid, p, state.video_size, self.model.image_size)
                    if p.get("frame_idx") is not None and p["frame_idx"] != fi:
                        raise ValueError(f"prompt for obj_id {oid!r} has frame_idx "
                                         f"{p['frame_idx']!r} but is listed under frame {fi}")
                except ValueError as e:
                    raise ValueError(f"prompts[{fi}]: {e}") from None

    def _track_auto(self, source, prompts, state, max_objects, mask_generator):
        from .predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
        from .prompts import check_count

        if prompts != "auto":
            raise ValueError("max_objects / mask_generator go with prompts='auto', not with a dict of prompts")
        if max_objects is not None:
            max_objects = check_count(max_objects, "max_objects (or None)", 1)
        gen = mask_generator if mask_generator is not None else Sam2AutomaticMaskGenerator(self.model)
        if not isinstance(gen, Sam2AutomaticMaskGenerator) or gen.model is not self.model:
            raise ValueError("mask_generator must be a Sam2AutomaticMaskGenerator on this Sam2's model")
        if gen.output_mode != "binary_mask":
            raise ValueError(f"mask_generator must have output_mode='binary_mask', got {gen.output_mode!r}")
        state = state or self.new_video_state()
        if state.obj_ids:
            raise ValueError(f"prompts='auto' needs a state without objects; it tracks {state.obj_ids}")
        frames = iter_frames(source)
        first = next(frames, None)
        if first is None:
            raise ValueError("the frame source is empty")
        image = first.cpu().numpy() if isinstance(first, torch.Tensor) else first
        anns = sorted(gen.generate(image), key=lambda a: -a["area"])[:max_objects]
        if not anns:
            raise ValueError("the automatic mask generator kept no mask on the first frame (lower its "
                             "pred_iou_thresh / stability_score_thresh: mask_generator= here, --amg "
                             "on the command line, \"amg\" in a batch manifest line)")
        yield self.predict_video_frame(state, first, {i + 1: {"mask": a["segmentation"]} for i, a in enumerate(anns)})
        for frame in frames:
            yield self.predict_video_frame(state, frame)
