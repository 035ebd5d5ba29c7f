"""The automatic mask generator ("segment everything") against the official
``SAM2AutomaticMaskGenerator`` (sam2==1.1.0), its building blocks against the official helpers
and independent references, bad input, and auto-prompted video tracking.

End-to-end parity runs both generators on real images (``../shared/data/images``) with the same
random official-format weights, tiny at 256 px, fp32, CPU. Random weights alone give masks that
hardly depend on the point (NMS would keep one), so both models carry the same test rig
(``official.localize_masks``): a decoder hook that turns each point's masks into blobs around
the point, leaving every step of the generators (filters, boxes, NMS, crops, hole filling, RLE)
to run as with a trained model. The official's hole filling needs its CUDA extension; the tests
give it an independent connected-components reference instead
(``official.install_connected_components_reference``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import sam2_fast
from official import (DATA_DIR, build_official, install_connected_components_reference, install_torchvision_shim,
                      localize_masks, reference_batched_nms, reference_connected_components, save_checkpoint)
from sam2_fast.predictors import amg
from tolerances import AMG_FIELD_RTOL, AMG_MASK_IOU_MIN, AMG_SCORE_ATOL

SIZE = 128  # model input (feature map 8 x 8, low-res masks 32 x 32)
SIDE = 320  # real images are shrunk to this longest side: cheap upsampling on the CPU


def _image(name: str, side: int = SIDE) -> np.ndarray:
    img = Image.open(DATA_DIR / "images" / name).convert("RGB")
    img.thumbnail((side, side))
    return np.array(img)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(official SAM2Base, ours), the same fresh random weights (tiny 2.1 at 256 px)."""
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    print(f"AMG parity models: seed {seed}")  # shown with a failure, to rerun it
    official = build_official("sam2.1_hiera_tiny", SIZE, seed=seed)
    pt, st = save_checkpoint(official, tmp_path_factory.mktemp("amg"))
    ours = sam2_fast.build_sam2(None, pt, device="cpu", image_size=SIZE, backend="torch")
    pt.unlink()
    st.unlink()
    return official, ours


def _official_generator(model, **kw):
    install_torchvision_shim()
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(model, **kw)
    fs = SIZE // 16
    gen.predictor._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]  # upstream #138
    return gen


def _binary(seg, mode: str) -> np.ndarray:
    """A record's segmentation -> (H, W) bool, decoded with the official / pycocotools helpers."""
    if mode == "binary_mask":
        return np.asarray(seg, dtype=bool)
    if mode == "uncompressed_rle":
        from sam2.utils.amg import rle_to_mask

        return rle_to_mask(seg)
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


def _check_format(rec: dict, ref: dict, mode: str) -> None:
    """Our record has the official's keys and value types."""
    assert set(rec) == set(ref)
    for k in ("area",):
        assert type(rec[k]) is int, k
    for k in ("predicted_iou", "stability_score"):
        assert type(rec[k]) is float, k
    for k in ("bbox", "crop_box"):
        assert isinstance(rec[k], list) and len(rec[k]) == 4 and all(type(v) is float for v in rec[k]), k
    assert len(rec["point_coords"]) == 1 and len(rec["point_coords"][0]) == 2
    seg, rseg = rec["segmentation"], ref["segmentation"]
    if mode == "binary_mask":
        assert isinstance(seg, np.ndarray) and seg.dtype == bool and seg.shape == rseg.shape
    else:
        assert set(seg) == set(rseg) == {"size", "counts"} and list(seg["size"]) == list(rseg["size"])
        assert type(seg["counts"]) is type(rseg["counts"])
        json.dumps(seg)


def _close(a, b, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(1.0, abs(b))


def compare_to_official(ours: list, ref: list, mode: str) -> dict:
    """The issue's parity check: same number of masks; each official mask matched one-to-one to
    one of ours with mask IoU >= AMG_MASK_IOU_MIN (greedy by IoU); matched boxes, areas,
    predicted IoU and stability score equal within the tolerance rows. Returns stats."""
    assert len(ours) == len(ref), f"{len(ours)} masks, official {len(ref)}"
    if not ref:
        return {"n": 0, "identical": 0}
    a = np.stack([_binary(r["segmentation"], mode) for r in ref]).reshape(len(ref), -1).astype(np.float32)
    b = np.stack([_binary(r["segmentation"], mode) for r in ours]).reshape(len(ours), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    pairs = sorted(((iou[i, j], i, j) for i in range(len(ref)) for j in range(len(ours))), reverse=True)
    match, used = {}, set()
    for _v, i, j in pairs:
        if i not in match and j not in used:
            match[i] = j
            used.add(j)
    identical = 0
    for i, j in match.items():
        r, o = ref[i], ours[j]
        assert iou[i, j] >= AMG_MASK_IOU_MIN, (i, j, iou[i, j])
        _check_format(o, r, mode)
        for k in ("predicted_iou", "stability_score"):
            assert abs(o[k] - r[k]) <= AMG_SCORE_ATOL, (k, o[k], r[k])
        assert _close(o["area"], r["area"], AMG_FIELD_RTOL), ("area", o["area"], r["area"])
        for k in ("bbox", "crop_box"):
            assert all(_close(x, y, AMG_FIELD_RTOL) for x, y in zip(o[k], r[k])), (k, o[k], r[k])
        assert all(_close(x, y, AMG_FIELD_RTOL) for x, y in zip(o["point_coords"][0], r["point_coords"][0]))
        identical += int(iou[i, j] == 1.0)
    return {"n": len(ref), "identical": identical, "same_order": all(i == j for i, j in match.items())}


# every output mode; crop_n_layers 0 and 1 each with use_m2m off and on; min_mask_region_area > 0
# with and without crops; one run with single-mask output
CASES = {
    "binary-crop0": dict(image="groceries.jpg", output_mode="binary_mask", crop_n_layers=0, use_m2m=False,
                         min_mask_region_area=0, points_per_side=8),
    "rle-crop0-m2m": dict(image="truck.jpg", output_mode="uncompressed_rle", crop_n_layers=0, use_m2m=True,
                          min_mask_region_area=0, points_per_side=6),
    "coco-crop1": dict(image="cars.jpg", output_mode="coco_rle", crop_n_layers=1, use_m2m=False,
                       min_mask_region_area=0, points_per_side=6, crop_n_points_downscale_factor=2),
    "binary-crop1-m2m-area": dict(image="groceries.jpg", output_mode="binary_mask", crop_n_layers=1,
                                  use_m2m=True, min_mask_region_area=4, points_per_side=4,
                                  stability_score_thresh=0.7),
    "coco-crop0-area-single": dict(image="truck.jpg", output_mode="coco_rle", crop_n_layers=0, use_m2m=False,
                                   min_mask_region_area=4, points_per_side=6, multimask_output=False,
                                   pred_iou_thresh=0.5),
}


@pytest.mark.parametrize("case", list(CASES))
@torch.no_grad()
def test_generate_matches_official(models, case):
    official, ours = models
    kw = dict(CASES[case])
    image = _image(kw.pop("image"))
    speckle = kw["min_mask_region_area"] > 0  # holes and islands for the area filter to remove
    hooks = [localize_masks(m, speckle=speckle) for m in (official, ours)]
    restore = install_connected_components_reference()
    # Single-mask calls: the decoder's dynamic multimask picks token 0 or the best multimask
    # token by a stability score that counts low-res logits above +-0.05 (a ratio of pixel
    # counts, 0.98 threshold). The random-weight logits of the two models agree to ~1e-5 (about
    # 20 of 36,864 low-res pixels lie within 1e-3 of +-0.05, scores come within 1e-4 of 0.98),
    # so now and then one pixel straddles 0.05 where a score sits within a pixel of 0.98 and
    # the two models return different tokens (seen once in CI: a predicted-IoU gap of 0.011). That
    # choice is the decoder's (its parity: test_image_parity); here both decoders return token
    # 0, so that the comparison tests the generator.
    dynamic = [m.sam_mask_decoder.dynamic_multimask_via_stability for m in (official, ours)]
    if not kw.get("multimask_output", True):
        for m in (official, ours):
            m.sam_mask_decoder.dynamic_multimask_via_stability = False
    try:
        ref = _official_generator(official, **kw).generate(image)
        out = sam2_fast.Sam2AutomaticMaskGenerator(ours, **kw).generate(image)
    finally:
        restore()
        for h in hooks:
            h.remove()
        for m, d in zip((official, ours), dynamic):
            m.sam_mask_decoder.dynamic_multimask_via_stability = d
    stats = compare_to_official(out, ref, kw["output_mode"])
    assert stats["n"] >= 5, f"only {stats['n']} masks: the case tests little"
    if kw["crop_n_layers"]:
        crops = {tuple(r["crop_box"]) for r in ref}
        assert len(crops) > 1, "no mask from a layer-1 crop survived: the crop path is untested"


def test_parity_check_can_fail(models):
    """The comparison catches a generator that differs: here our predicted-IoU threshold sits at
    the median of the official's kept masks, so about half of them are dropped on our side (a
    fixed looser threshold was not enough: some random weights keep the same masks anyway)."""
    official, ours = models
    image = _image("groceries.jpg", 200)
    kw = dict(points_per_side=6, output_mode="uncompressed_rle")
    hooks = [localize_masks(m) for m in (official, ours)]
    try:
        ref = _official_generator(official, **kw).generate(image)
        assert len(ref) >= 2, "the test rig should give the official several masks"
        ious = sorted(r["predicted_iou"] for r in ref)
        thresh = ious[len(ious) // 2] + 1e-4  # kept: predicted IoU > thresh
        out = sam2_fast.Sam2AutomaticMaskGenerator(ours, **kw, pred_iou_thresh=thresh).generate(image)
    finally:
        for h in hooks:
            h.remove()
    with pytest.raises(AssertionError):
        compare_to_official(out, ref, "uncompressed_rle")


def test_output_modes_agree(models):
    """The three output modes encode the same masks (ours decoded with the official helpers)."""
    _, ours = models
    image = _image("cars.jpg", 240)
    hook = localize_masks(ours)
    try:
        outs = {mode: sam2_fast.Sam2AutomaticMaskGenerator(ours, points_per_side=5, output_mode=mode).generate(image)
                for mode in sam2_fast.predictors.automatic_mask_generator.OUTPUT_MODES}
    finally:
        hook.remove()
    n = len(outs["binary_mask"])
    assert n > 0 and all(len(v) == n for v in outs.values())
    for i in range(n):
        masks = {mode: _binary(v[i]["segmentation"], mode) for mode, v in outs.items()}
        assert all(np.array_equal(masks["binary_mask"], m) for m in masks.values())
        assert masks["binary_mask"].sum() == outs["binary_mask"][i]["area"]


# ----------------------------------------------------------------------------- building blocks
def test_grids_and_crops_match_official():
    from sam2.utils.amg import build_all_layer_point_grids, generate_crop_boxes

    for n, layers, scale in ((32, 0, 1), (16, 2, 2), (7, 1, 1), (6, 2, 2)):
        ref = build_all_layer_point_grids(n, layers, scale)
        got = [amg.point_grid(k) for k in amg.layer_points_per_side(n, layers, scale)]
        assert len(got) == len(ref) and all(np.array_equal(a, b) for a, b in zip(got, ref))
    for hw, layers, ratio in (((534, 800), 1, 512 / 1500), ((1500, 2250), 2, 0.3), ((99, 37), 1, 0.5)):
        assert amg.crop_boxes(hw, layers, ratio) == generate_crop_boxes(hw, layers, ratio)


def test_masks_to_boxes_and_rle_match_official():
    from sam2.utils.amg import batched_mask_to_box, coco_encode_rle, mask_to_rle_pytorch

    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    masks = torch.rand(9, 37, 53, generator=g) > 0.7
    masks[0] = False
    masks[1] = True
    masks[2] = False
    masks[2, 5:9, 40] = True
    assert torch.equal(amg.masks_to_boxes(masks), batched_mask_to_box(masks))
    ours, ref = amg.uncompressed_rle(masks), mask_to_rle_pytorch(masks)
    assert ours == ref
    assert amg.coco_rle(ours) == [coco_encode_rle(r) for r in ref]
    assert torch.equal(amg.count_true(masks), masks.sum(dim=(1, 2)).int())


@pytest.mark.parametrize("integer", [True, False])
def test_batched_nms_matches_reference(integer):
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    for n in (0, 1, 2, 30, 120):
        xy = torch.rand(n, 2, generator=g) * 100
        wh = torch.rand(n, 2, generator=g) * 40 + 1
        boxes = torch.cat([xy, xy + wh], dim=1)
        if integer:
            boxes = boxes.round()
        scores = torch.rand(n, generator=g)
        scores[: n // 3] = 0.5  # ties: visited in index order
        cats = torch.randint(0, 3, (n,), generator=g)
        for thr, c in ((0.0, cats), (0.3, torch.zeros_like(cats)), (0.7, cats), (0.7, torch.zeros_like(cats)),
                       (1.0, cats)):
            got = amg.batched_nms(boxes, scores, c, thr)
            ref = reference_batched_nms(boxes, scores, c, thr)
            assert torch.equal(got, ref), (n, thr)
    with pytest.raises(ValueError, match="boxes"):
        amg.batched_nms(torch.zeros(3, 5), torch.zeros(3), torch.zeros(3, dtype=torch.int64), 0.5)


def test_fill_small_regions_matches_official_postprocess():
    """Our OpenCV hole / sprinkle removal equals the official SAM2Transforms.postprocess_masks
    with the reference connected components (8-connectivity, areas <= the bound)."""
    install_torchvision_shim()
    from sam2.utils.transforms import SAM2Transforms

    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    logits = torch.nn.functional.interpolate(torch.randn(6, 1, 12, 12, generator=g), size=(48, 48),
                                             mode="nearest")[:, 0] * 5
    logits += torch.randn(6, 48, 48, generator=g) * 0.5
    logits[0] = 3.0
    logits[0, 10, 10] = -3.0  # a one-pixel hole
    logits[0, 20:22, 30:32] = -3.0  # a 4-pixel hole, exactly at the bound below
    restore = install_connected_components_reference()
    try:
        for area in (1, 4, 30):
            ref = SAM2Transforms(SIZE, 0.0, max_hole_area=area, max_sprinkle_area=area).postprocess_masks(
                logits[:, None].clone(), (48, 48))[:, 0]
            got = amg.fill_small_regions_(logits.clone(), area)
            assert torch.equal(got, ref), area
            if area >= 4:
                assert (got[0] > 0).all()
    finally:
        restore()


def test_reference_connected_components():
    """The test's own reference, on a hand-made case (8-connectivity, areas)."""
    m = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    m[0, 0, 0, 0] = m[0, 0, 1, 1] = True  # diagonal neighbours: one component of 2
    m[0, 0, 4, 2:5] = True  # a component of 3
    labels, counts = reference_connected_components(m)
    assert counts[0, 0, 0, 0] == 2 and counts[0, 0, 1, 1] == 2 and counts[0, 0, 4, 3] == 3
    assert labels[0, 0, 0, 0] == labels[0, 0, 1, 1] != labels[0, 0, 4, 2]
    assert (labels[~m] == 0).all() and (counts[~m] == 0).all()


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def tiny_model():
    from sam2_fast.checkpoint import randomize_

    model = sam2_fast.build_sam2("sam2.1_hiera_tiny", device="cpu", image_size=128, backend="torch")
    return randomize_(model, int(torch.randint(0, 2**31 - 1, ()).item()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(points_per_side=0), "points_per_side"),
    (dict(points_per_side=-3), "points_per_side"),
    (dict(points_per_side=2.5), "points_per_side"),
    (dict(points_per_side=None), "points_per_side"),
    (dict(point_grids=[np.array([[0.5, 0.5]])]), "point_grids"),
    (dict(points_per_side=None, point_grids=[np.array([[0.5, 1.5]])]), "point_grids"),
    (dict(points_per_side=None, point_grids=[np.array([[0.5, 0.5]])], crop_n_layers=1), "point_grids"),
    (dict(output_mode="png"), "output_mode"),
    (dict(points_per_side=4, crop_n_layers=2, crop_n_points_downscale_factor=4), "points_per_side"),
    (dict(points_per_batch=0), "points_per_batch"),
    (dict(pred_iou_thresh=float("nan")), "pred_iou_thresh"),
    (dict(pred_iou_thresh=1.5), r"pred_iou_thresh must be in \[0, 1\]"),
    (dict(box_nms_thresh=-0.1), r"box_nms_thresh must be in \[0, 1\]"),
    (dict(crop_overlap_ratio=1.5), "crop_overlap_ratio"),
    (dict(min_mask_region_area=-1), "min_mask_region_area"),
    (dict(use_m2m="yes"), "use_m2m"),
    (dict(crop_n_layers=-1), "crop_n_layers"),
    (dict(points_per_sid=8), "points_per_sid"),
])
def test_bad_arguments(tiny_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sam2_fast.Sam2AutomaticMaskGenerator(tiny_model, **kwargs)


def test_missing_optional_libraries(tiny_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(ValueError, match="output_mode.*pycocotools"):
        sam2_fast.Sam2AutomaticMaskGenerator(tiny_model, output_mode="coco_rle")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ValueError, match="min_mask_region_area.*OpenCV"):
        sam2_fast.Sam2AutomaticMaskGenerator(tiny_model, min_mask_region_area=10)


def test_bad_images(tiny_model):
    gen = sam2_fast.Sam2AutomaticMaskGenerator(tiny_model, points_per_side=2)
    rgb = np.random.default_rng().integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for bad, match in ((rgb[:0], "empty"), (rgb[:, :0], "empty"), (rgb[..., 0], "3 dims"),
                       (np.concatenate([rgb, rgb[..., :1]], axis=2), "RGB"), (rgb.astype(np.float32), "uint8"),
                       (Image.fromarray(rgb).convert("L"), "mode 'RGB'"), ([[1, 2, 3]], "numpy")):
        with pytest.raises(ValueError, match=match):
            gen.generate(bad)
    tiny = rgb[:1, :1]
    with pytest.raises(ValueError, match="too small for crop_n_layers"):
        sam2_fast.Sam2AutomaticMaskGenerator(tiny_model, points_per_side=2, crop_n_layers=1).generate(tiny)
    assert isinstance(gen.generate(rgb), list)  # usable after the errors
    with pytest.raises(ValueError, match="Sam2Model"):
        sam2_fast.Sam2AutomaticMaskGenerator(object())


def test_from_pretrained_offline_and_cached(tiny_model, tmp_path, monkeypatch):
    from sam2_fast import hub

    monkeypatch.setenv("SAM2_FAST_CACHE", str(tmp_path))
    monkeypatch.setenv("SAM2_FAST_OFFLINE", "1")
    with pytest.raises(hub.HubError, match="sam2.1_hiera_tiny.pt"):
        sam2_fast.SAM2AutomaticMaskGenerator.from_pretrained("facebook/sam2.1-hiera-tiny")
    with pytest.raises(ValueError, match="points_per_side"):  # checked before any download
        sam2_fast.SAM2AutomaticMaskGenerator.from_pretrained("facebook/sam2.1-hiera-tiny", points_per_side=0)
    with pytest.raises(ValueError, match=r"unknown mask generator argument\(s\) \['points_per_sid'\]"):
        sam2_fast.SAM2AutomaticMaskGenerator.from_pretrained("facebook/sam2.1-hiera-tiny", points_per_sid=8)
    with pytest.raises(hub.HubError, match="unknown model"):
        sam2_fast.SAM2AutomaticMaskGenerator.from_pretrained("facebook/sam3-hiera-huge")
    # a file already in the cache (random weights, official layout) is used as is
    torch.save({"model": tiny_model.state_dict()}, tmp_path / "sam2.1_hiera_tiny.pt")
    gen = sam2_fast.SAM2AutomaticMaskGenerator.from_pretrained(
        "facebook/sam2.1-hiera-tiny", device="cpu", image_size=128, backend="torch", points_per_side=3,
        pred_iou_thresh=0.0, stability_score_thresh=0.0, mode="eval", apply_postprocessing=False)
    assert gen.model.config.name == "sam2.1_hiera_tiny" and gen.points_per_side == 3
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(gen.model.state_dict()[k], v), k
    out = gen.generate(np.random.default_rng().integers(0, 256, (64, 96, 3), dtype=np.uint8))
    assert out and out[0]["segmentation"].shape == (64, 96)


def test_official_defaults():
    """Every official argument, with the official default."""
    import inspect

    install_torchvision_shim()
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator as Official

    ref = {k: p.default for k, p in inspect.signature(Official).parameters.items() if k not in ("model", "kwargs")}
    got = {k: p.default for k, p in inspect.signature(sam2_fast.Sam2AutomaticMaskGenerator).parameters.items()
           if k not in ("model", "kwargs")}
    assert got == ref
    assert sam2_fast.SAM2AutomaticMaskGenerator is sam2_fast.Sam2AutomaticMaskGenerator


# ----------------------------------------------------------------------------- auto-prompted video
def _small_frames(n: int = 3, side: int = 160):
    files = sorted((DATA_DIR / "bedroom").glob("*.jpg"))[:n]
    out = []
    for f in files:
        img = Image.open(f).convert("RGB")
        img.thumbnail((side, side))
        out.append(np.array(img))
    return out


def test_track_auto(tiny_model):
    frames = _small_frames()
    sam = sam2_fast.Sam2(tiny_model)
    gen = sam2_fast.Sam2AutomaticMaskGenerator(tiny_model, points_per_side=4, pred_iou_thresh=0.0,
                                               stability_score_thresh=0.0, box_nms_thresh=1.0)
    anns = sorted(gen.generate(frames[0]), key=lambda a: -a["area"])
    assert len(anns) >= 2, "the generator should keep a few masks here"
    state = sam.new_video_state()
    outs = list(sam.track(frames, prompts="auto", state=state, max_objects=2, mask_generator=gen))
    assert len(outs) == len(frames)
    assert outs[0].obj_ids == [1, 2] and all(o.obj_ids == [1, 2] for o in outs)
    assert outs[0].masks.shape == (2, 1, *frames[0].shape[:2])
    if hasattr(state, "groups"):  # the streaming engine's batches (one group = one batch)
        assert len(state.groups) == 1
    # the objects are the two largest masks, as mask prompts: the same as giving them by hand
    ref_state = sam.new_video_state()
    ref = sam.predict_video_frame(ref_state, frames[0], {1: {"mask": anns[0]["segmentation"]},
                                                         2: {"mask": anns[1]["segmentation"]}})
    assert torch.equal(ref.mask_logits, outs[0].mask_logits)
    with pytest.raises(ValueError, match="max_objects"):
        next(sam.track(frames, prompts="auto", max_objects=0))
    with pytest.raises(ValueError, match="prompts"):
        next(sam.track(frames, prompts="everything"))
    with pytest.raises(ValueError, match="output_mode"):
        next(sam.track(frames, prompts="auto", mask_generator=sam2_fast.Sam2AutomaticMaskGenerator(
            tiny_model, output_mode="uncompressed_rle")))
    with pytest.raises(ValueError, match="kept no mask"):
        next(sam.track(frames, prompts="auto", mask_generator=sam2_fast.Sam2AutomaticMaskGenerator(
            tiny_model, points_per_side=2, pred_iou_thresh=1.0)))
