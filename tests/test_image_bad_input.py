"""Bad input to the image predictor: a ValueError naming the argument; prompts never modified."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import sam2_fast
from sam2_fast.checkpoint import randomize_
from sam2_fast.model.sam2_model import Sam2Model


@pytest.fixture(scope="module")
def predictor():
    model = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", 64)), seed=3).eval()
    p = sam2_fast.Sam2ImagePredictor(model)
    return p


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)


def test_predict_before_set_image(predictor):
    predictor.reset_predictor()
    with pytest.raises(ValueError, match="set_image"):
        predictor.predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]))
    with pytest.raises(RuntimeError, match="set_image"):  # drop-in: the official raises RuntimeError
        predictor.get_image_embedding()


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((60, 80), np.uint8), "3 dims"),
    (np.zeros((60, 80, 4), np.uint8), "3 RGB channels"),
    (np.zeros((60, 80, 3), np.float32), "uint8"),
    (np.zeros((0, 80, 3), np.uint8), "empty"),
    ("image.jpg", "numpy array or a PIL"),
    (Image.new("L", (10, 10)), "mode 'RGB'"),
])
def test_bad_images(predictor, image, bad, msg):
    predictor.set_image(image)
    with pytest.raises(ValueError, match=msg):
        predictor.set_image(bad)
    with pytest.raises(ValueError, match="set_image"):  # the previous image is forgotten
        predictor.predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]))
    with pytest.raises(ValueError, match="non-empty list"):
        predictor.set_image_batch([])
    assert not predictor._is_image_set


@pytest.mark.parametrize("kw, msg", [
    (dict(point_coords=np.array([[10.0, 10.0]])), "together"),
    (dict(point_coords=np.array([[10.0, 10.0], [5.0, 5.0]]), point_labels=np.array([1])),
     "point_labels must be of shape"),
    (dict(point_coords=np.array([[10.0, 10.0]]), point_labels=np.array([5])), r"point_labels must be in"),
    (dict(point_coords=np.array([10.0, 10.0]), point_labels=np.array([1])), r"\(N, 2\)"),
    (dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)), "point_coords is empty"),
    (dict(point_coords=np.array([[np.nan, 10.0]]), point_labels=np.array([1])), "NaN"),
    (dict(box=np.array([30.0, 10.0, 20.0, 40.0])), "x1 >= x0"),
    (dict(box=np.array([10.0, 10.0, 20.0])), r"box must be \(4,\)"),
    (dict(mask_input=np.zeros((1, 32, 32))), r"mask_input must be \(1, 16, 16\)"),
    (dict(point_coords=np.array([[10.0, 10.0]]), point_labels=np.array([1]),
          mask_input=np.ones((2, 1, 16, 16), np.float32)),
     "mask_input holds 2 masks but there are 1 point batches"),
    (dict(box=np.array([[1.0, 1.0, 20.0, 20.0], [5.0, 5.0, 30.0, 30.0]]),
          mask_input=np.ones((3, 1, 16, 16), np.float32)), "3 masks but there are 2 boxes"),
])
def test_bad_prompts(predictor, image, kw, msg):
    predictor.set_image(image)
    with pytest.raises(ValueError, match=msg):
        predictor.predict(**kw)


def test_prompts_not_modified_and_outputs(predictor, image):
    predictor.set_image(image)
    pts = np.array([[10.0, 20.0], [30.0, 40.0]], dtype=np.float32)
    labels = np.array([1, 0], dtype=np.int32)
    box = np.array([5.0, 6.0, 50.0, 55.0], dtype=np.float32)
    keep = (pts.copy(), labels.copy(), box.copy())
    masks, iou, low = predictor.predict(pts, labels, box, multimask_output=True)
    assert np.array_equal(pts, keep[0]) and np.array_equal(labels, keep[1]) and np.array_equal(box, keep[2])
    assert masks.shape == (3, 60, 80) and masks.dtype == np.float32  # as the official
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert iou.shape == (3,) and low.shape == (3, 16, 16)
    masks, iou, low = predictor.predict(pts, labels, multimask_output=False)
    assert masks.shape == (1, 60, 80)
    # batched boxes give a leading batch dim
    masks, iou, low = predictor.predict(box=np.stack([box, box]), multimask_output=True)
    assert masks.shape == (2, 3, 60, 80) and iou.shape == (2, 3) and low.shape == (2, 3, 16, 16)


def test_sam2_front_door(tmp_path, image):
    model = randomize_(Sam2Model(sam2_fast.get_config("sam2_hiera_tiny", 64)), seed=4)
    sam2_fast.save_state_dict(model.state_dict(), tmp_path / "m.safetensors")
    sam = sam2_fast.Sam2.from_checkpoint(tmp_path / "m.safetensors", device="cpu", image_size=64)
    out = sam.predict_image(image, points=np.array([[10.0, 20.0]]), labels=np.array([1]))
    assert out.masks.shape == (3, 60, 80) and out.iou_predictions.shape == (3,)
    assert out.low_res_logits.shape == (3, 16, 16) and out.object_score_logits.shape == (1,)
    assert out.orig_size == (60, 80) and out.input_size == (64, 64)
    # the same numbers as the predictor it wraps
    p = sam2_fast.Sam2ImagePredictor(sam.model)
    p.set_image(image)
    m, i, lo = p.predict(np.array([[10.0, 20.0]]), np.array([1]), return_logits=True)
    assert out.masks.dtype == bool  # the front door keeps bool
    assert np.array_equal(out.masks, m > 0) and np.allclose(out.iou_predictions, i)
    with pytest.raises(ValueError, match="Sam2Model"):
        sam2_fast.Sam2(torch.nn.Linear(1, 1))
