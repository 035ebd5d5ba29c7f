"""Parity of the image path with the official SAM 2 (sam2==1.1.0), module by module and end
to end, for all 8 published configs (small image_size) and tiny/small at 1024 px.

Each config: the official model is built by its own Hydra builder with every tensor random
(tests/official.py), saved as .pt ({"model": sd}) and .safetensors, and both files are loaded
through sam2_fast.build_sam2 with the variant detected from the keys.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import sam2_fast
from official import ALL_CONFIGS, DATA_DIR, build_official, install_torchvision_shim, save_checkpoint
from tolerances import MASK_FLIP_FRACTION, assert_close_rel, rel_l2, tol

SMALL = 128  # image_size for the all-configs sweep (feature map 8x8, masks 32x32)
CASES = [(name, SMALL) for name in ALL_CONFIGS] + [
    ("sam2.1_hiera_tiny", 1024), ("sam2_hiera_small", 1024)]


def _load_image(name: str, max_side: int = 640) -> np.ndarray:
    img = Image.open(DATA_DIR / "images" / name).convert("RGB")
    img.thumbnail((max_side, max_side))  # keep the CPU resize cheap; any size is valid input
    return np.asarray(img)


@pytest.fixture(scope="module", params=CASES, ids=[f"{n}-{s}px" for n, s in CASES])
def pair(request, tmp_path_factory):
    """(official SAM2Base, ours from .pt, ours from .safetensors, image_size), same weights."""
    name, size = request.param
    seed = int(torch.randint(0, 2**31 - 1, ()).item())  # fresh weights each run
    official = build_official(name, size, seed=seed)
    d = tmp_path_factory.mktemp(name.replace(".", "_"))
    pt, st = save_checkpoint(official, d)
    ours_pt = sam2_fast.build_sam2(None, pt, device="cpu", image_size=size, backend="torch")
    ours_st = sam2_fast.build_sam2(None, st, device="cpu", image_size=size, backend="torch")
    pt.unlink()
    st.unlink()
    assert ours_pt.config.name == name and ours_st.config.name == name
    # both formats carry exactly the official tensors, so one model is enough below
    ref_sd, sd_st = official.state_dict(), ours_st.state_dict()
    for k, v in ours_pt.state_dict().items():
        assert torch.equal(v, ref_sd[k]) and torch.equal(sd_st[k], ref_sd[k]), k
    return official, ours_pt, size


@torch.no_grad()
def test_image_encoder(pair):
    official, ours, size = pair
    x = torch.randn(2 if size < 1024 else 1, 3, size, size)
    ref = official.forward_image(x)
    out = ours.forward_image(x)
    for i in range(3):
        assert_close_rel(out["backbone_fpn"][i], ref["backbone_fpn"][i], "module", what=f"backbone_fpn[{i}]")
        assert_close_rel(out["vision_pos_enc"][i], ref["vision_pos_enc"][i], "module", what=f"vision_pos_enc[{i}]")
    assert_close_rel(out["vision_features"], ref["vision_features"], "module", what="vision_features")


def _random_prompts(size: int, b: int = 2, n: int = 3):
    coords = torch.rand(b, n, 2) * size
    labels = torch.randint(0, 4, (b, n), dtype=torch.int32)
    labels[:, -1] = -1  # a padding point
    boxes = torch.sort(torch.rand(b, 2, 2) * size, dim=1).values.reshape(b, 4)
    masks = torch.randn(b, 1, size // 4, size // 4) * 4
    return coords, labels, boxes, masks


@torch.no_grad()
def test_prompt_encoder(pair):
    official, ours, size = pair
    coords, labels, boxes, masks = _random_prompts(size)
    for pts, bxs, msk in (((coords, labels), None, None), ((coords, labels), boxes, masks), (None, boxes, None),
                          (None, None, masks)):
        s_ref, d_ref = official.sam_prompt_encoder(points=pts, boxes=bxs, masks=msk)
        s_out, d_out = ours.sam_prompt_encoder(pts, bxs, msk)
        assert_close_rel(s_out, s_ref, "module", what="prompt_encoder.sparse")
        assert_close_rel(d_out, d_ref, "module", what="prompt_encoder.dense")
    assert_close_rel(ours.sam_prompt_encoder.get_dense_pe(), official.sam_prompt_encoder.get_dense_pe(), "module",
                     what="prompt_encoder.dense_pe")


@torch.no_grad()
def test_mask_decoder_and_sam_heads(pair):
    official, ours, size = pair
    fs = size // 16
    b = 2
    feats = torch.randn(b, 256, fs, fs)
    high_res = [torch.randn(b, 32, 4 * fs, 4 * fs), torch.randn(b, 64, 2 * fs, 2 * fs)]
    coords, labels, _, masks = _random_prompts(size, b)
    sparse, dense = official.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=masks)
    pe = official.sam_prompt_encoder.get_dense_pe()
    for multimask in (True, False):
        ref = official.sam_mask_decoder(feats, pe, sparse, dense, multimask, False, high_res)
        out = ours.sam_mask_decoder(feats, pe, sparse, dense, multimask, False, high_res)
        for o, r, what in zip(out, ref, ("masks", "iou", "sam_tokens", "object_score_logits")):
            assert_close_rel(o, r, "module", what=f"mask_decoder.{what}")
        # the heads around the decoder: gating by object score, upsampling, obj_ptr
        pin = {"point_coords": coords, "point_labels": labels}
        ref = official._forward_sam_heads(feats, pin, masks * 4, high_res, multimask)
        out = ours._forward_sam_heads(feats, pin, masks * 4, high_res, multimask)
        for i, (o, r) in enumerate(zip(out, ref)):
            assert_close_rel(o, r, "module", what=f"_forward_sam_heads[{i}]")
    mask_in = (torch.rand(b, 1, size, size) > 0.5).float()
    mask_in[0] = 0  # one object absent: exercises the no_obj_ptr branch
    for o, r in zip(ours._use_mask_as_output(feats, high_res, mask_in),
                    official._use_mask_as_output(feats, high_res, mask_in)):
        assert_close_rel(o, r, "module", what="_use_mask_as_output")


def _official_predictor(official, size):
    install_torchvision_shim()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(official)
    fs = size // 16
    pred._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]  # upstream #138
    return pred


@torch.no_grad()
def test_image_predictor_end_to_end(pair):
    official, ours_model, size = pair
    ref = _official_predictor(official, size)
    ours = sam2_fast.Sam2ImagePredictor(ours_model)
    image = _load_image("cars.jpg" if size == 1024 else "groceries.jpg")
    h, w = image.shape[:2]
    ref.set_image(image)
    ours.set_image(image)
    assert_close_rel(ours.get_image_embedding(), ref.get_image_embedding(), "image_predictor", what="image_embed")
    rng = np.random.default_rng()
    pt = np.array([[rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h]])
    pts2 = np.concatenate([pt, [[0.3 * w, 0.4 * h]]])
    box = np.array([0.2 * w, 0.25 * h, 0.75 * w, 0.8 * h])
    cases = {
        "point": dict(point_coords=pt, point_labels=np.array([1])),
        "points+neg": dict(point_coords=pts2, point_labels=np.array([1, 0])),
        "box": dict(box=box),
        "point+box": dict(point_coords=pt, point_labels=np.array([1]), box=box),
        "two boxes": dict(box=np.stack([box, box * 0.9])),
    }
    for label, kw in cases.items():
        for multimask in (True, False):
            r = ref.predict(**kw, multimask_output=multimask, return_logits=True)
            o = ours.predict(**kw, multimask_output=multimask, return_logits=True)
            for oo, rr, what in zip(o, r, ("masks", "iou", "low_res")):
                assert oo.shape == rr.shape, (label, what, oo.shape, rr.shape)
                assert_close_rel(oo, rr, "image_predictor", what=f"predict.{what}")
            binary = ours.predict(**kw, multimask_output=multimask)[0]
            ref_binary = ref.predict(**kw, multimask_output=multimask)[0]
            # the exact drop-in: float32 0/1 masks as the official (OpenCV needs a numeric dtype)
            assert binary.dtype == ref_binary.dtype == np.float32 and binary.shape == ref_binary.shape
            assert np.mean(binary != ref_binary) < MASK_FLIP_FRACTION, label
    # iterate with the previous low-res logits as mask_input
    _, _, low = ref.predict(point_coords=pt, point_labels=np.array([1]), multimask_output=False)
    kw = dict(point_coords=pts2, point_labels=np.array([1, 0]), mask_input=low, multimask_output=False,
              return_logits=True)
    for oo, rr, what in zip(ours.predict(**kw), ref.predict(**kw), ("masks", "iou", "low_res")):
        assert_close_rel(oo, rr, "image_predictor", what=f"predict+mask_input.{what}")


@torch.no_grad()
def test_image_predictor_hole_and_sprinkle_removal(pair):
    """max_hole_area / max_sprinkle_area as the official SAM2ImagePredictor runs them with its
    CUDA extension (given the reference connected components here): the same binary masks,
    the decoder's low-res logits untouched; and exactly the reference maths on our own logits."""
    from official import install_connected_components_reference, reference_connected_components

    official, ours_model, size = pair
    if size != SMALL or "tiny" not in ours_model.config.name:
        pytest.skip("checked on the tiny configs at the small size")
    install_torchvision_shim()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    image = _load_image("groceries.jpg")
    h, w = image.shape[:2]
    kw = dict(point_coords=np.array([[0.4 * w, 0.5 * h], [0.7 * w, 0.3 * h]]), point_labels=np.array([1, 0]))
    plain = sam2_fast.Sam2ImagePredictor(ours_model)
    plain.set_image(image)
    raw, _, low_raw = plain.predict(**kw, return_logits=True)
    restore = install_connected_components_reference()
    try:
        for hole, sprinkle, thr in ((4, 0, 0.0), (0, 6, 0.0), (8, 8, 0.5)):
            ref = SAM2ImagePredictor(official, mask_threshold=thr, max_hole_area=hole, max_sprinkle_area=sprinkle)
            fs = size // 16
            ref._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]
            ours = sam2_fast.Sam2ImagePredictor(ours_model, mask_threshold=thr, max_hole_area=hole,
                                                max_sprinkle_area=sprinkle)
            ref.set_image(image)
            ours.set_image(image)
            m, _, low = ours.predict(**kw)
            rm, _, rlow = ref.predict(**kw)
            assert np.mean(m != rm) < MASK_FLIP_FRACTION, (hole, sprinkle)
            assert np.array_equal(low, low_raw)  # the returned low-res logits are the decoder's
            # exact: the reference components on our own low-res logits, then the upsampling
            x = torch.from_numpy(low_raw)[:, None]
            want = x.clone()
            if hole:
                labels, areas = reference_connected_components(x <= thr)
                want = torch.where((labels > 0) & (areas <= hole), thr + 10.0, want)
            if sprinkle:
                labels, areas = reference_connected_components(x > thr)
                want = torch.where((labels > 0) & (areas <= sprinkle), thr - 10.0, want)
            want = torch.nn.functional.interpolate(want, (h, w), mode="bilinear", align_corners=False)[:, 0]
            got = ours.predict(**kw, return_logits=True)[0]
            assert np.array_equal(got, want.numpy()), (hole, sprinkle)
            assert not np.array_equal(got, raw), "the test image should have small regions to change"
    finally:
        restore()
    with pytest.raises(ValueError, match="max_hole_area must be a finite number >= 0"):
        sam2_fast.Sam2ImagePredictor(ours_model, max_hole_area=-1)


@torch.no_grad()
def test_image_predictor_batch(pair):
    official, ours_model, size = pair
    if size != SMALL or "tiny" not in ours_model.config.name:
        pytest.skip("batch API checked on the tiny configs at the small size")
    ref = _official_predictor(official, size)
    ours = sam2_fast.Sam2ImagePredictor(ours_model)
    images = [_load_image("groceries.jpg", 320), _load_image("truck.jpg", 300)]
    ref.set_image_batch(images)
    ours.set_image_batch(images)
    pts = [np.array([[50.0, 60.0]]), np.array([[100.0, 80.0]])]
    labels = [np.array([1]), np.array([1])]
    r = ref.predict_batch(pts, labels, multimask_output=True, return_logits=True)
    o = ours.predict_batch(pts, labels, multimask_output=True, return_logits=True)
    for lo, lr in zip(o, r):
        for a, b in zip(lo, lr):
            assert_close_rel(a, b, "image_predictor", what="predict_batch")
    ob = ours.predict_batch(pts, labels, multimask_output=True)[0]
    rb = ref.predict_batch(pts, labels, multimask_output=True)[0]
    assert [m.dtype for m in ob] == [m.dtype for m in rb] == [np.float32, np.float32]


def test_parity_check_can_fail(pair):
    """A perturbed weight must be caught by the same metric and bound."""
    official, ours, size = pair
    if size == 1024:
        pytest.skip("shown at the small size for every config; saves two 1024-px encoder passes")
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ref = official.forward_image(x)["backbone_fpn"][2]
        w = ours.image_encoder.trunk.blocks[0].attn.qkv.bias
        old = w.clone()
        w.add_(0.05)
        try:
            out = ours.forward_image(x)["backbone_fpn"][2]
        finally:
            w.copy_(old)
    assert rel_l2(out, ref) > 10 * tol("module")  # a real error is far above the bound
