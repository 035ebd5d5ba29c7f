"""sam2_fast: a Triton-kernel runtime for Meta's Segment Anything Model 2 (SAM 2 / SAM 2.1).

Public API:
    build_sam2, Sam2Model           -- load the official checkpoints (.pt / .safetensors)
    Sam2ImagePredictor              -- drop-in for the official SAM2ImagePredictor
    Sam2AutomaticMaskGenerator      -- drop-in for the official SAM2AutomaticMaskGenerator
                                       ("segment everything"; alias SAM2AutomaticMaskGenerator)
    Sam2VideoPredictor, build_sam2_video_predictor -- drop-in for the official SAM2VideoPredictor
    Sam2, Sam2ImagePrediction       -- one front door: images, and video streams
    Sam2VideoState, Sam2VideoFramePrediction, iter_frames -- streaming
    CONFIGS, get_config, Sam2Config -- the 8 published configs
"""

from .api import Sam2, Sam2ImagePrediction
from .predictors.streaming import Sam2VideoFramePrediction, Sam2VideoState, iter_frames
from .build import build_sam2
from .checkpoint import CheckpointError, load_state_dict, save_state_dict
from .config import CONFIGS, Sam2Config, get_config
from .model.sam2_model import Sam2Model
from .predictors.image import PredictorStateError, Sam2ImagePredictor
from .predictors.automatic_mask_generator import SAM2AutomaticMaskGenerator, Sam2AutomaticMaskGenerator
from .predictors.video import Sam2VideoPredictor, build_sam2_video_predictor

__version__ = "0.1.0"

__all__ = [
    "CONFIGS", "CheckpointError", "PredictorStateError", "SAM2AutomaticMaskGenerator", "Sam2",
    "Sam2AutomaticMaskGenerator", "Sam2Config", "Sam2ImagePrediction",
    "Sam2ImagePredictor", "Sam2Model", "Sam2VideoPredictor", "build_sam2_video_predictor", "Sam2VideoFramePrediction", "Sam2VideoState", "iter_frames", "build_sam2", "get_config", "load_state_dict", "save_state_dict",
]
