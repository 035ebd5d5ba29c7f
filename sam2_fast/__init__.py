"""sam2_fast: a Triton-kernel runtime for Meta's Segment Anything Model 2 (SAM 2 / SAM 2.1).

Public API:
    build_sam2, Sam2Model           -- load the official checkpoints (.pt / .safetensors)
    Sam2ImagePredictor              -- drop-in for the official SAM2ImagePredictor (also
                                       exported under that name)
    Sam2AutomaticMaskGenerator      -- drop-in for the official SAM2AutomaticMaskGenerator
                                       ("segment everything"; alias SAM2AutomaticMaskGenerator)
    Sam2VideoPredictor, build_sam2_video_predictor -- drop-in for the official
                                       SAM2VideoPredictor (also exported under that name)
    build_sam2_hf, build_sam2_video_predictor_hf -- published model ids, downloaded and cached
    Sam2, Sam2ImagePrediction       -- one front door: images, and video streams
    Sam2VideoState, Sam2VideoFramePrediction, iter_frames -- streaming
    CONFIGS, get_config, Sam2Config -- the 8 published configs
    sample_video                    -- the small sample clip shipped with the package
"""

from .api import Sam2, Sam2ImagePrediction
from .predictors.streaming import Sam2VideoFramePrediction, Sam2VideoState, iter_frames
from .build import build_sam2, build_sam2_hf, build_sam2_video_predictor, build_sam2_video_predictor_hf
from .checkpoint import CheckpointError, load_state_dict, save_state_dict
from .config import CONFIGS, Sam2Config, get_config
from .model.sam2_model import Sam2Model
from .predictors.image import PredictorStateError, Sam2ImagePredictor
from .predictors.automatic_mask_generator import SAM2AutomaticMaskGenerator, Sam2AutomaticMaskGenerator
from .predictors.video import Sam2VideoPredictor
from .samples import sample_video

#: the official class names (``from sam2.sam2_image_predictor import SAM2ImagePredictor``)
SAM2ImagePredictor = Sam2ImagePredictor
SAM2VideoPredictor = Sam2VideoPredictor

__version__ = "0.1.0"

__all__ = [
    "CONFIGS", "CheckpointError", "PredictorStateError", "SAM2AutomaticMaskGenerator",
    "SAM2ImagePredictor", "SAM2VideoPredictor", "Sam2", "Sam2AutomaticMaskGenerator", "Sam2Config",
    "Sam2ImagePrediction", "Sam2ImagePredictor", "Sam2Model", "Sam2VideoFramePrediction",
    "Sam2VideoPredictor", "Sam2VideoState", "build_sam2", "build_sam2_hf", "build_sam2_video_predictor",
    "build_sam2_video_predictor_hf", "get_config", "iter_frames", "load_state_dict", "sample_video",
    "save_state_dict",
]
