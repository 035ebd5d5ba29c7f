"""The official SAM 2 (``sam2==1.1.0``) as a test oracle.

* ``install_torchvision_shim()`` supplies the three torchvision transforms that the official
  ``SAM2ImagePredictor`` imports (``ToTensor``, ``Resize``, ``Normalize``), with torchvision's
  maths (tensor ``Resize`` = bilinear with antialias, ``align_corners=False``), so the 5 GB
  torchvision is not needed.
* ``build_official(name, image_size, video=False)`` builds the official model through its own
  Hydra builder (``apply_postprocessing=True`` overrides) and randomizes every tensor.
* ``randomize_(model, seed)`` (from :mod:`sam2_fast.checkpoint`, documented there): every
  tensor of the state dict drawn random and non-zero, scaled so activations stay of order one.
* ``save_checkpoint(model, directory)`` writes the official ``{"model": state_dict}`` ``.pt``
  and a ``.safetensors`` with the same keys.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sam2_fast.checkpoint import randomize_  # noqa: F401  (the one randomization, documented there)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"

OFFICIAL_CONFIG_FILES = {
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
ALL_CONFIGS = tuple(OFFICIAL_CONFIG_FILES)


# ----------------------------------------------------------------------------- torchvision shim
class _ToTensor:
    """HWC uint8 ndarray / PIL image -> CHW float32 in [0, 1] (torchvision ToTensor)."""

    def __call__(self, pic):
        import numpy as np

        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
        return t.float().div(255) if t.dtype == torch.uint8 else t.float()


class _Resize(nn.Module):
    """Tensor Resize of torchvision >= 0.17: bilinear, antialias=True, align_corners=False."""

    def __init__(self, size):
        super().__init__()
        self.size = [int(size[0]), int(size[1])]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = img.unsqueeze(0) if img.dim() == 3 else img
        y = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return y.squeeze(0) if img.dim() == 3 else y


class _Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def install_torchvision_shim() -> None:
    """Make ``from torchvision.transforms import Normalize, Resize, ToTensor`` work."""
    if "torchvision" in sys.modules:
        return
    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    tr.ToTensor, tr.Resize, tr.Normalize = _ToTensor, _Resize, _Normalize
    tv.transforms = tr
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.transforms"] = tr


# ----------------------------------------------------------------------------- builders
def _overrides(image_size: int):
    fs = image_size // 16
    return [
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{fs},{fs}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{fs},{fs}]",
    ]


def build_official(name: str, image_size: int = 1024, video: bool = False, seed: int = 0,
                   extra_overrides=()):
    """The official model (``SAM2Base`` or ``SAM2VideoPredictor`` when ``video``) for one of
    the 8 configs on the CPU, fp32, eval mode, randomized with ``seed``."""
    import sam2  # noqa: F401  (initializes Hydra's config module)
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    builder = build_sam2_video_predictor if video else build_sam2
    model = builder(
        OFFICIAL_CONFIG_FILES[name],
        ckpt_path=None,
        device="cpu",
        mode="eval",
        hydra_overrides_extra=_overrides(image_size) + list(extra_overrides),
        apply_postprocessing=True,
    )
    return randomize_(model, seed)


def save_checkpoint(model: nn.Module, directory: Path, stem: str = "ckpt"):
    """Write ``{"model": state_dict}`` as ``stem.pt`` and the same keys as ``stem.safetensors``;
    returns (pt_path, safetensors_path)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    pt = directory / f"{stem}.pt"
    st = directory / f"{stem}.safetensors"
    torch.save({"model": sd}, pt)
    save_file(sd, str(st))
    return pt, st
