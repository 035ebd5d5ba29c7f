"""One video's tracking outputs, written while the next frames are tracked: the palette PNG
and/or COCO-RLE JSON of every frame and the overlay video, the layout of ``sam2-fast video``
(also used by ``sam2-fast batch``).

:class:`FrameOutputWriter` takes each frame's prediction from the tracking thread, starts the
copy of its masks to the host without waiting (pinned memory and a CUDA event on the GPU), and
hands the encoding and the file writes to one background thread
(:class:`~sam2_fast.io.pipeline.OrderedWriter`): frames are written in order; when the writer
falls behind, tracking waits (nothing dropped, memory bounded); the first write error is raised
on the tracking thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch

from .pipeline import OrderedWriter


@dataclass(frozen=True)
class OutputOptions:
    """What to write per frame.

    Attributes:
        format: ``"png"`` (DAVIS palette PNG, object id = palette index), ``"rle"`` (COCO-RLE
            JSON per frame) or ``"both"``.
        overlay: path of an overlay video (masks coloured over the frames), or None.
        fps: overlay frame rate (None: 24).
    """

    format: str = "png"
    overlay: Optional[Path] = None
    fps: Optional[float] = None


class _HostMasks:
    """A prediction's masks and scores on their way to the host: an asynchronous copy into
    pinned memory on CUDA (the writer thread waits for its event), a plain view on the CPU."""

    def __init__(self, pred) -> None:
        masks = pred.masks[:, 0]
        scores = pred.object_score_logits
        scores = None if scores is None else scores.float().reshape(-1)
        self.event = None
        if masks.is_cuda:
            self.masks = torch.empty(masks.shape, dtype=masks.dtype, pin_memory=True)
            self.masks.copy_(masks, non_blocking=True)
            if scores is not None:
                pinned = torch.empty(scores.shape, dtype=scores.dtype, pin_memory=True)
                scores = pinned.copy_(scores, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.masks = masks
        self.scores = scores

    def numpy(self):
        """(masks (N, H, W) bool, scores (N,) float32 or None)."""
        if self.event is not None:
            self.event.synchronize()
        return self.masks.numpy(), None if self.scores is None else self.scores.numpy()


class FrameOutputWriter:
    """Per-frame outputs of one video into ``folder``.

    Args:
        folder: where the frame files go (a staging folder; created by the caller).
        width, height: the frames' size in pixels.
        frame_name: index -> file stem (the frame file's stem for folders, ``%05d`` for files).
        opts: :class:`OutputOptions`.
        note: the random-weights note, written into every file and burnt into the overlay.
        max_pending: frames queued for writing before tracking waits.
    """

    def __init__(self, folder: Path, width: int, height: int, frame_name: Callable[[int], str],
                 opts: OutputOptions, note: Optional[str] = None, max_pending: int = 8) -> None:
        if opts.format not in ("png", "rle", "both"):
            raise ValueError(f"format must be png, rle or both, got {opts.format!r}")
        self.folder = Path(folder)
        self.width, self.height = int(width), int(height)
        self.frame_name = frame_name
        self.opts = opts
        self.note = note
        self.video = None
        self.frames = 0
        self.written = 0
        self.first: Optional[int] = None
        self.last: Optional[int] = None
        self._failed = False
        self._writer = OrderedWriter(max_pending, name="sam2-fast-write")

    def write(self, idx: int, frame: Optional[np.ndarray], pred) -> None:
        """Queue frame ``idx``: ``pred`` a :class:`~sam2_fast.Sam2VideoFramePrediction` (or any
        object with ``masks`` (N, 1, H, W) bool, ``object_score_logits`` (N, 1) or None (no
        ``object_score`` in the RLE records), ``obj_ids``);
        ``frame`` (H, W, 3) uint8, needed for the overlay only.

        Raises:
            the error of an earlier frame's write (e.g. a full disk).
        """
        host = _HostMasks(pred)
        obj_ids = [int(o) for o in pred.obj_ids]
        self._writer.submit(self._job, idx, self.frame_name(idx), frame, host, obj_ids)
        self.frames += 1
        self.first = idx if self.first is None else self.first
        self.last = idx

    def _job(self, *args) -> None:
        """One frame's files; after a failure the later frames are skipped, so the frames on
        disk are always the first ``written`` ones, without gaps."""
        if self._failed:
            return
        try:
            self._files(*args)
        except BaseException:
            self._failed = True
            raise
        self.written += 1

    def _files(self, idx: int, name: str, frame: Optional[np.ndarray], host: _HostMasks,
               obj_ids: List[int]) -> None:
        from .masks import (VideoWriter, combine_object_masks, overlay_masks, rle_frame_record,
                            save_json, save_palette_png)

        masks, scores = host.numpy()
        h, w = self.height, self.width
        index = combine_object_masks(masks, obj_ids) if obj_ids else np.zeros((h, w), np.uint8)
        if self.opts.format in ("png", "both"):
            save_palette_png(self.folder / f"{name}.png", index, note=self.note)
        if self.opts.format in ("rle", "both"):
            if obj_ids:
                rec = rle_frame_record(idx, obj_ids, masks, name, object_scores=scores, note=self.note)
            else:
                rec = {"frame_index": idx, "frame_name": name, "height": h, "width": w, "objects": []}
                if self.note:
                    rec["note"] = self.note
            save_json(self.folder / f"{name}.json", rec)
        if self.opts.overlay is not None and frame is not None:
            if self.video is None:
                self.video = VideoWriter(self.opts.overlay, w, h, fps=self.opts.fps or 24.0,
                                         metadata={"comment": self.note} if self.note else None)
            self.video.write(overlay_masks(frame, index, banner="RANDOM WEIGHTS" if self.note else None))

    def close(self) -> None:
        """Wait for every queued frame and finish the overlay (with the frames written so far,
        also after a failure); raises the first error."""
        try:
            self._writer.close()
        finally:
            if self.video is not None and not self._failed:
                self.video.close()
                self.video = None

    def abort(self) -> None:
        """Drop what is queued and the unfinished overlay; never raises."""
        self._writer.abort()
        if self.video is not None:
            self.video.abort()
            self.video = None


__all__ = ["OutputOptions", "FrameOutputWriter"]
