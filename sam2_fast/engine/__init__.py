"""The video tracking engine shared by the offline predictor and the streams: the typed memory
bank and its one read rule (:mod:`.memory_bank`), the tracking core (:mod:`.core`) and the
post-processing (:mod:`.postprocess`)."""

from .core import FrameFeatures, StepOutput, TrackingCore
from .memory_bank import (MemoryBank, MemoryEntry, MemoryReadPlan, MemoryStore,
                          frames_read_around, plan_memory_read)
from .postprocess import (apply_non_overlapping_constraints, connected_components,
                          fill_holes_in_mask_scores, small_components, to_video_resolution)

__all__ = ["TrackingCore", "FrameFeatures", "StepOutput", "MemoryBank", "MemoryEntry",
           "MemoryReadPlan", "MemoryStore", "plan_memory_read", "frames_read_around",
           "apply_non_overlapping_constraints", "connected_components", "fill_holes_in_mask_scores",
           "small_components", "to_video_resolution"]
