"""The official SAM 2 (``sam2==1.1.0``) as a test oracle.

* ``install_torchvision_shim()`` supplies the three torchvision transforms that the official
  ``SAM2ImagePredictor`` imports (``ToTensor``, ``Resize``, ``Normalize``), with torchvision's
  maths (tensor ``Resize`` = bilinear with antialias, ``align_corners=False``), and the two box
  ops the official ``SAM2AutomaticMaskGenerator`` imports (``batched_nms``, ``box_area``, plain
  reference versions written for the tests), so the 5 GB torchvision is not needed.
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


def reference_box_area(boxes: torch.Tensor) -> torch.Tensor:
    """torchvision ``box_area``: (N, 4) x0, y0, x1, y1 -> (N,) (x1 - x0) * (y1 - y0)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def reference_batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                          iou_threshold: float) -> torch.Tensor:
    """torchvision ``batched_nms``, written plainly for the tests (the oracle of the
    automatic mask generator; deliberately not sam2_fast's implementation).

    Greedy: visit the boxes by decreasing score (ties: lower index first, a stable sort);
    keep a box unless a kept box of the same category overlaps it with IoU > threshold. IoU in
    the boxes' dtype as torchvision's CPU kernel: inter / (area_kept + area_other - inter).
    Returns the kept indices (int64) in visiting order.
    """
    n = boxes.shape[0]
    order = sorted(range(n), key=lambda i: -float(scores[i]))  # Python's sort is stable
    area = reference_box_area(boxes)
    kept = []
    for i in order:
        suppressed = False
        for k in kept:
            if int(idxs[k]) != int(idxs[i]):
                continue
            w = torch.clamp(torch.minimum(boxes[k, 2], boxes[i, 2]) - torch.maximum(boxes[k, 0], boxes[i, 0]), min=0)
            h = torch.clamp(torch.minimum(boxes[k, 3], boxes[i, 3]) - torch.maximum(boxes[k, 1], boxes[i, 1]), min=0)
            inter = w * h
            if float(inter / (area[k] + area[i] - inter)) > iou_threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(i)
    return torch.tensor(kept, dtype=torch.int64)


def install_torchvision_shim() -> None:
    """Make ``from torchvision.transforms import Normalize, Resize, ToTensor`` and
    ``from torchvision.ops.boxes import batched_nms, box_area`` work (the official image
    predictor and automatic mask generator import them)."""
    if "torchvision" in sys.modules and not hasattr(sys.modules["torchvision"], "_sam2_fast_shim"):
        return  # a real torchvision
    tv = sys.modules.get("torchvision") or types.ModuleType("torchvision")
    tv._sam2_fast_shim = True
    tr = types.ModuleType("torchvision.transforms")
    tr.ToTensor, tr.Resize, tr.Normalize = _ToTensor, _Resize, _Normalize
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms = ops.batched_nms = reference_batched_nms
    boxes.box_area = ops.box_area = reference_box_area
    ops.boxes = boxes
    tv.transforms, tv.ops = tr, ops
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tr, "torchvision.ops": ops,
                        "torchvision.ops.boxes": boxes})


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


# ----------------------------------------------------------------------------- "segment everything"
def reference_connected_components(mask: torch.Tensor):
    """The official CUDA extension's ``get_connected_components`` (8-connectivity), written
    plainly for the tests: (N, 1, H, W) bool/uint8 -> (labels (N, 1, H, W) int32, 0 on
    background; counts (N, 1, H, W) int32, the component's area at each foreground pixel).
    Labels spread by 3x3 max pooling until they stop changing."""
    fg = mask.bool()
    n, _, h, w = fg.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float64).view(1, 1, h, w).expand(n, 1, h, w)
    labels = torch.where(fg, ids, 0.0)
    while True:
        grown = torch.where(fg, F.max_pool2d(labels, 3, stride=1, padding=1), 0.0)
        if torch.equal(grown, labels):
            break
        labels = grown
    key = labels.long() + (torch.arange(n).view(n, 1, 1, 1) * (h * w + 1))
    _, inverse, counts = torch.unique(key.flatten(), return_inverse=True, return_counts=True)
    counts = torch.where(fg, counts[inverse].view(n, 1, h, w), 0)
    return labels.int(), counts.int()


def install_connected_components_reference():
    """Give the official package the connected components its CUDA extension would provide
    (``sam2.utils.misc.get_connected_components``), so its hole / sprinkle removal runs on the
    CPU as on a GPU; returns the function that restores the original."""
    import sam2.utils.misc as misc

    original = misc.get_connected_components
    misc.get_connected_components = reference_connected_components

    def restore():
        misc.get_connected_components = original

    return restore


def localize_masks(model, thresholds=(0.55, 0.45, 0.25), gain=(400.0, 40.0, 400.0), texture=1.0,
                   iou_base=(0.85, 0.75, 0.85), iou_spread=0.1, iou_model=0.1, speckle=False,
                   quantum=1 / 16):
    """Test rig for the automatic mask generator on random weights: a forward hook on
    ``model.sam_mask_decoder`` (official or ours: the same hook on both) that makes each
    point's masks a blob around the point, as a trained model's are.

    Random weights give masks that hardly depend on the point (every box covers the image,
    NMS keeps one mask), which would test nothing. The hook reads the point's Fourier features
    from the first sparse token (minus the positive-label embedding) and the dense grid
    encoding ``image_pe``; their dot product, scaled to peak at 1, is a kernel centred on the
    point that decays over about a tenth of the image. Mask channel ``c`` becomes
    ``texture * z + gain[c] * (kernel - thresholds[c])``, with ``z`` the model's own logits
    scaled to unit standard deviation per mask: blobs of three sizes with rough edges (holes,
    islands) whatever the random weights or a mask prompt do to the logits' scale, steep enough
    that most pass the
    stability filter and some do not. Predicted IoUs become ``iou_base[c]`` plus
    ``iou_spread`` times one of the point's Fourier features (so that scores rarely tie) plus
    ``iou_model`` times the model's own prediction: channel 1 straddles the default 0.8 filter,
    the others mostly pass, whatever the random weights. Single-mask calls use channel 0.
    ``speckle``: flip the sign of the logits on a lattice of single pixels (every 8th row and
    column) and of 2 x 2 blocks (every 16th): holes inside the blobs and islands outside, of
    area 1 and 4 low-res pixels, for ``min_mask_region_area``. The logits are rounded to
    multiples of ``quantum``, so that the official's and our logits (equal to ~1e-6) become
    bitwise equal and no upsampled pixel sits within rounding of a threshold on one side only.
    Everything the generators do with these outputs (filters, boxes, NMS, crops, hole
    filling, RLE) is the same code path as with a trained model.

    Returns the hook handle (``.remove()`` undoes it).
    """
    pe = model.sam_prompt_encoder
    thr = torch.tensor(thresholds)
    g = torch.tensor(gain)
    base = torch.tensor(iou_base)

    def hook(module, args, kwargs, output):
        names = ("image_embeddings", "image_pe", "sparse_prompt_embeddings")
        got = dict(zip(names, args))
        got.update({k: v for k, v in kwargs.items() if k in names})
        image_pe, sparse = got["image_pe"].float(), got["sparse_prompt_embeddings"].float()
        masks, iou, tokens, obj = output
        point_pe = sparse[:, 0] - pe.point_embeddings[1].weight.float()
        kernel = torch.einsum("bc,chw->bhw", point_pe, image_pe[0]) / (image_pe.shape[1] / 2)
        kernel = F.interpolate(kernel[:, None], size=masks.shape[-2:], mode="bilinear", align_corners=False)
        kernel = kernel / kernel.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-3)  # peak 1 on the grid
        m, dev = masks.shape[1], masks.device
        gm, tm = g[:m].to(dev).view(1, m, 1, 1), thr[:m].to(dev).view(1, m, 1, 1)
        z = masks.float()
        z = z / z.flatten(-2).std(dim=-1).clamp_min(1e-6)[..., None, None]
        masks = (texture * z + gm * (kernel - tm)).to(masks.dtype)
        iou = (base[:m].to(dev) + iou_spread * point_pe[:, :1] + iou_model * iou.float()).to(iou.dtype)
        if speckle:
            i = torch.arange(masks.shape[-2], device=masks.device)[:, None]
            j = torch.arange(masks.shape[-1], device=masks.device)[None]
            dots = (i % 8 == 3) & (j % 8 == 3)
            blocks = (i % 16 >= 6) & (i % 16 <= 7) & (j % 16 >= 6) & (j % 16 <= 7)
            masks = torch.where(dots | blocks, -masks, masks)
        if quantum:
            masks = torch.round(masks / quantum) * quantum
        return masks, iou, tokens, obj

    return model.sam_mask_decoder.register_forward_hook(hook, with_kwargs=True)
