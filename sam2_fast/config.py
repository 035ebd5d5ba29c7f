"""Model configurations as code: the 8 published SAM 2 / SAM 2.1 checkpoints.

Values mirror the official Hydra configs of ``sam2==1.1.0`` (``sam2/configs/sam2/*.yaml``,
``sam2/configs/sam2.1/*.yaml``) plus the defaults of the official classes they instantiate
(``Hiera``, ``FpnNeck``, ``SAM2Base``). ``image_size`` can be changed with
:meth:`Sam2Config.with_image_size` to any multiple of 32 (the official model accepts it too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

# ---- module-level constants (official values) ----
IMAGE_SIZE = 1024  # default input resolution (pixels, square)
PATCH_KERNEL_SIZE = 7  # Hiera PatchEmbed conv kernel
PATCH_STRIDE = 4  # Hiera PatchEmbed conv stride
PATCH_PADDING = 3  # Hiera PatchEmbed conv padding
BACKBONE_STRIDE = 16  # stride of the feature map fed to the SAM heads / memory
PIXEL_MEAN = (0.485, 0.456, 0.406)  # ImageNet mean, on [0, 1] RGB
PIXEL_STD = (0.229, 0.224, 0.225)  # ImageNet std, on [0, 1] RGB
PROMPT_EMBED_DIM = 256  # d_model of the neck, prompt encoder and mask decoder
MEM_DIM = 64  # memory encoder output channels
Q_POOL = 3  # number of Hiera stages whose first block pools q
Q_STRIDE = (2, 2)  # q-pooling stride at stage changes
NUM_MASKMEM = 7  # memory frames attended: 1 conditioning + 6 previous
MAX_OBJ_PTRS_IN_ENCODER = 16
NO_OBJ_SCORE = -1024.0  # mask logit written where the object is predicted absent
MASK_INPUT_SIZE_FACTOR = 4  # mask prompts are 4x the embedding size (256 at 1024)


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk hyper-parameters (official ``sam2.modeling.backbones.hieradet.Hiera``)."""

    embed_dim: int
    num_heads: int
    stages: Tuple[int, ...]
    global_att_blocks: Tuple[int, ...]
    window_spec: Tuple[int, ...]
    window_pos_embed_bkg_spatial_size: Tuple[int, int]
    q_pool: int = Q_POOL
    q_stride: Tuple[int, int] = Q_STRIDE
    dim_mul: float = 2.0
    head_mul: float = 2.0

    @property
    def depth(self) -> int:
        return sum(self.stages)

    @property
    def channel_list(self) -> Tuple[int, ...]:
        """Output channels per stage, coarsest first (the neck's backbone_channel_list)."""
        dims = [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]
        return tuple(reversed(dims))


@dataclass(frozen=True)
class Sam2Config:
    """A full SAM 2 model configuration (official ``SAM2Base`` arguments).

    ``version`` is ``"2"`` or ``"2.1"``; 2.1 adds ``no_obj_embed_spatial`` and the signed,
    projected temporal encoding of object pointers.
    """

    name: str
    version: str
    hiera: HieraConfig
    image_size: int = IMAGE_SIZE
    d_model: int = PROMPT_EMBED_DIM
    mem_dim: int = MEM_DIM
    num_maskmem: int = NUM_MASKMEM
    backbone_stride: int = BACKBONE_STRIDE
    fpn_top_down_levels: Tuple[int, ...] = (2, 3)
    scalp: int = 1
    # memory attention
    memory_attention_layers: int = 4
    memory_attention_ffn_dim: int = 2048
    rope_theta: float = 10000.0
    # SAM2Base flags (identical for all published configs except the 2.1 ones)
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    iou_prediction_use_sigmoid: bool = True
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = MAX_OBJ_PTRS_IN_ENCODER
    add_tpos_enc_to_obj_ptrs: bool = False
    proj_tpos_enc_in_obj_ptrs: bool = False
    use_signed_tpos_enc_to_obj_ptrs: bool = False
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_mlp_for_obj_ptr_proj: bool = True
    no_obj_embed_spatial: bool = False
    # build_sam2(..., apply_postprocessing=True) defaults
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    binarize_mask_from_pts_for_mem_enc: bool = True
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride_for_eval: int = 1
    non_overlap_masks_for_mem_enc: bool = False

    @property
    def variant(self) -> str:
        """'tiny', 'small', 'base_plus' or 'large'."""
        return self.name.split("_hiera_")[1]

    @property
    def feat_size(self) -> int:
        """Side of the stride-16 feature map (64 at 1024 px)."""
        return self.image_size // self.backbone_stride

    @property
    def backbone_channel_list(self) -> Tuple[int, ...]:
        return self.hiera.channel_list

    def with_image_size(self, image_size: int) -> "Sam2Config":
        """A copy at another input resolution.

        Raises:
            ValueError: ``image_size`` is not a positive multiple of 32 (the Hiera windowed
                position embedding tiles windows of 8 tokens at stride 4).
        """
        if not isinstance(image_size, int) or image_size <= 0 or image_size % 32 != 0:
            raise ValueError(f"image_size must be a positive multiple of 32, got {image_size!r}")
        return dataclasses.replace(self, image_size=image_size)


_TINY = HieraConfig(96, 1, (1, 2, 7, 2), (5, 7, 9), (8, 4, 14, 7), (7, 7))
_SMALL = HieraConfig(96, 1, (1, 2, 11, 2), (7, 10, 13), (8, 4, 14, 7), (7, 7))
_BASE_PLUS = HieraConfig(112, 2, (2, 3, 16, 3), (12, 16, 20), (8, 4, 14, 7), (14, 14))
_LARGE = HieraConfig(144, 2, (2, 6, 36, 4), (23, 33, 43), (8, 4, 16, 8), (7, 7))

_V21 = dict(
    no_obj_embed_spatial=True,
    add_tpos_enc_to_obj_ptrs=True,
    proj_tpos_enc_in_obj_ptrs=True,
    use_signed_tpos_enc_to_obj_ptrs=True,
)

CONFIGS: Dict[str, Sam2Config] = {}
for _variant, _hiera in (
    ("tiny", _TINY),
    ("small", _SMALL),
    ("base_plus", _BASE_PLUS),
    ("large", _LARGE),
):
    CONFIGS[f"sam2_hiera_{_variant}"] = Sam2Config(f"sam2_hiera_{_variant}", "2", _hiera)
    CONFIGS[f"sam2.1_hiera_{_variant}"] = Sam2Config(
        f"sam2.1_hiera_{_variant}", "2.1", _hiera, **_V21
    )

# official short names (config file stems) -> registry names
_ALIASES = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}


def get_config(name: str, image_size: int | None = None) -> Sam2Config:
    """Look up a published config by name.

    Args:
        name: ``sam2_hiera_tiny`` ... ``sam2.1_hiera_large``; the official config stems
            (``sam2.1_hiera_t``, ``sam2_hiera_b+``), with or without ``.yaml``, work too.
        image_size: optional input resolution (multiple of 32).

    Raises:
        ValueError: unknown name (the message lists the known ones) or bad image_size.
    """
    key = str(name).split("/")[-1]
    if key.endswith(".yaml"):
        key = key[: -len(".yaml")]
    if "_hiera_" in key:
        prefix, short = key.split("_hiera_", 1)
        key = f"{prefix}_hiera_{_ALIASES.get(short, short)}"
    if key not in CONFIGS:
        hint = ""
        if str(name).endswith((".pt", ".pth", ".safetensors")):
            hint = (" (this looks like a checkpoint file: pass it as the checkpoint, e.g. "
                    "build_sam2(checkpoint=...); the config is then read from it)")
        raise ValueError(f"unknown SAM 2 config {name!r}; known: {', '.join(CONFIGS)}{hint}")
    cfg = CONFIGS[key]
    return cfg.with_image_size(image_size) if image_size is not None else cfg
