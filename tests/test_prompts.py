"""One set of prompt rules (sam2_fast.prompts), checked against every entry point: the image
predictor (predict, predict_batch), the video predictor (add_new_points_or_box, add_new_mask),
the stream (Sam2.predict_video_frame) and the command line.

Rules: coordinates outside the image are accepted in the Python APIs (the official image and
video predictors are the oracle for what the model then does), NaN/inf are errors everywhere,
labels outside (-1, 0, 1, 2, 3) and inverted boxes are errors everywhere, an empty (0, 4) box
array gives an empty image result and a ValueError naming ``box`` in the video APIs, masks are
(H, W) at the video size or the model size; the CLI refuses clicks outside the frame and clips
boxes, recording it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sam2_fast
from sam2_fast import prompts
from sam2_fast.checkpoint import randomize_
from sam2_fast.model.sam2_model import Sam2Model
from official import DATA_DIR, build_official, install_torchvision_shim
from tolerances import assert_close_rel

S = 64  # model input side: 16x16 features, 16x16 low-res masks
H, W = 48, 80  # image / frame size
rng = np.random.default_rng()


@pytest.fixture(scope="module")
def pair():
    """(official SAM2Base, our Sam2Model) with the same random weights at S px."""
    seed = int(rng.integers(0, 2**31 - 1))
    official = build_official("sam2.1_hiera_tiny", S, seed=seed)
    ours = Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", S), backend="torch")
    ours.load_state_dict(official.state_dict(), strict=True)
    return official, ours.eval()


@pytest.fixture(scope="module")
def image():
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def frames():
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(3)]


def _official_image_predictor(official):
    install_torchvision_shim()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(official)
    fs = S // 16
    pred._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]  # upstream #138
    return pred


# ============================================================================ the module itself
def test_rules_unit():
    pts, lbs = prompts.check_points([[1, 2], [3, 4]], [1, 0])
    assert pts.shape == (1, 2, 2) and pts.dtype == np.float32 and lbs.dtype == np.int32
    pts, _ = prompts.check_points(np.zeros((3, 2, 2)), np.ones((3, 2)), batched=True)
    assert pts.shape == (3, 2, 2)
    assert prompts.check_points(None, None) is None
    # outside the frame: fine unless strict (the one strictness flag)
    prompts.check_points([[-5, 2]], [1], frame_size=(10, 10))
    with pytest.raises(ValueError, match=r"points \(-5, 2\) is outside the 10x10 frame"):
        prompts.check_points([[-5, 2]], [1], frame_size=(10, 10), strict=True)
    prompts.check_points([[-5, 2]], [-1], frame_size=(10, 10), strict=True)  # padding is not a click
    with pytest.raises(ValueError, match="box .* is outside"):
        prompts.check_boxes([0, 0, 11, 5], frame_size=(10, 10), strict=True)
    for bad, match in [([[np.inf, 1]], "NaN or infinite"), ([[1, 2, 3]], r"\(N, 2\)"), ("ab", "numeric"),
                       ([["1", "2"]], "numeric .*str")]:  # numpy would parse the text
        with pytest.raises(ValueError, match=match):
            prompts.check_points(bad, [1])
    for bad, match in [([1.5], "integers"), ([4], r"must be in \(-1, 0, 1, 2, 3\)"), ([True], "integers"),
                       (["1"], "integers .*str")]:
        with pytest.raises(ValueError, match=match):
            prompts.check_points([[1, 2]], bad)
    assert prompts.check_boxes(np.zeros((0, 4)), many=True).shape == (0, 4)
    with pytest.raises(ValueError, match="box is empty"):
        prompts.check_boxes(np.zeros((0, 4)))
    # the CLI's clipping
    c, changed = prompts.clip_boxes(np.array([[-2.5, 3, 83, 40], [1, 1, 5, 5]]), (H, W))
    assert c.tolist() == [[0, 3, W, 40], [1, 1, 5, 5]] and changed.tolist() == [True, False]
    for gone in ([100, 1, 120, 5], [-9, -9, -1, 5], [90, 1, 90, 5]):
        with pytest.raises(ValueError, match="lies outside"):
            prompts.clip_boxes(np.array([gone], float), (H, W))
    c, changed = prompts.clip_boxes(np.array([[W, 1, W, 5]], float), (H, W))  # on the border: kept
    assert not changed.any()
    # the command line's policy in one call (also for other file-driven jobs)
    used, given = prompts.command_line_rules([(3, 4)], [1], [(-2.5, 3, 83, 40), (1, 1, 5, 5)], (H, W), " here")
    assert used == [(0.0, 3.0, 80.0, 40.0), (1, 1, 5, 5)] and given == [(-2.5, 3, 83, 40), None]
    with pytest.raises(ValueError, match=r"--point here \(81, 4\) is outside the 80x48 frame"):
        prompts.command_line_rules([(81, 4)], [1], [], (H, W), " here")


# ============================================================================ image predictor
def test_image_outside_coordinates_match_official(pair, image):
    """A detector box poking out of the image (x0 = -2.5, x1 = W + 3), clicks outside it, and
    normalized coordinates beyond [0, 1] are accepted, with the official's numbers."""
    official, ours_model = pair
    ref = _official_image_predictor(official)
    ours = sam2_fast.Sam2ImagePredictor(ours_model)
    ref.set_image(image)
    ours.set_image(image)
    cases = {
        "box": dict(box=np.array([-2.5, 4.0, W + 3.0, H - 6.0])),
        "points": dict(point_coords=np.array([[-10.0, 5.0], [W + 20.0, H + 1.0]]), point_labels=np.array([1, 0])),
        "normalized": dict(point_coords=np.array([[1.2, -0.1]]), point_labels=np.array([1]), normalize_coords=False),
        "boxes": dict(box=np.array([[-2.5, 4.0, W + 3.0, H - 6.0], [5.0, -1.0, 30.0, H + 2.0]])),
    }
    for label, kw in cases.items():
        r = ref.predict(**kw, multimask_output=True, return_logits=True)
        o = ours.predict(**kw, multimask_output=True, return_logits=True)
        for oo, rr, what in zip(o, r, ("masks", "iou", "low_res")):
            assert oo.shape == rr.shape, (label, what)
            assert_close_rel(oo, rr, "image_predictor", what=f"outside.{label}.{what}")


def test_image_empty_box_gives_empty_result(pair, image):
    _, model = pair
    p = sam2_fast.Sam2ImagePredictor(model)
    p.set_image(image)
    for multimask, c in ((True, 3), (False, 1)):
        for return_logits in (False, True):
            m, i, lo = p.predict(box=np.zeros((0, 4)), multimask_output=multimask, return_logits=return_logits)
            assert m.shape == (0, c, H, W) and m.dtype == np.float32
            assert i.shape == (0, c) and lo.shape == (0, c, S // 4, S // 4)
    assert p.last_object_score_logits.shape == (0, 1)
    # the same prompt with a box still works afterwards, and an empty box cannot carry points
    m, _, _ = p.predict(box=np.array([1.0, 2.0, 30.0, 40.0]))
    assert m.shape == (3, H, W)
    with pytest.raises(ValueError, match="box is empty"):
        p.predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]), box=np.zeros((0, 4)))
    # predict_batch: the image with no boxes gets an empty entry, the other a normal one
    p.set_image_batch([image, image[:40]])
    ms, ious, lows = p.predict_batch(box_batch=[np.zeros((0, 4)), np.array([[1.0, 2.0, 30.0, 30.0]])],
                                     multimask_output=False)
    assert ms[0].shape == (0, 1, H, W) and ious[0].shape == (0, 1) and lows[0].shape == (0, 1, 16, 16)
    assert ms[1].shape == (1, 40, W) and ms[1].dtype == np.float32


@pytest.mark.parametrize("kw, match", [
    (dict(point_coords=np.array([[np.nan, 1.0]]), point_labels=np.array([1])), "point_coords contains NaN"),
    (dict(point_coords=np.array([[1.0, np.inf]]), point_labels=np.array([1])), "point_coords contains NaN"),
    (dict(box=np.array([0.0, 0.0, np.inf, 5.0])), "box contains NaN"),
    (dict(mask_input=np.full((1, 16, 16), np.nan)), "mask_input contains NaN"),
    (dict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([9])), "point_labels must be in"),
    (dict(box=np.array([9.0, 0.0, 5.0, 5.0])), "x1 >= x0"),
])
def test_image_errors(pair, image, kw, match):
    p = sam2_fast.Sam2ImagePredictor(pair[1])
    p.set_image(image)
    with pytest.raises(ValueError, match=match):
        p.predict(**kw)
    p.set_image_batch([image])
    with pytest.raises(ValueError, match=match):
        p.predict_batch(**{f"{k}_batch": [v] for k, v in kw.items()})


# ============================================================================ video predictor
def _video_predictor(model):
    return sam2_fast.Sam2VideoPredictor(model)


def test_video_prompt_rules(pair, frames):
    pred = _video_predictor(pair[1])
    st = pred.init_state(frames)
    # accepted: outside coordinates (official), an int-valued float label
    _, ids, m = pred.add_new_points_or_box(st, 0, 1, box=[-2.5, 4.0, W + 3.0, H - 6.0])
    assert ids == [1] and m.shape == (1, 1, H, W)
    pred.add_new_points_or_box(st, 0, 2, points=[[-10.0, 5.0]], labels=[1.0])
    for kw, match in [
        (dict(box=np.zeros((0, 4))), "box is empty"),
        (dict(box=[]), "box is empty"),
        (dict(box=[1.0, 2.0, np.nan, 4.0]), "box contains NaN"),
        (dict(box=[9.0, 0.0, 5.0, 5.0]), "x1 >= x0"),
        (dict(points=[[np.inf, 1.0]], labels=[1]), "points contains NaN"),
        (dict(points=[[1.0, 1.0]], labels=[7]), r"labels must be in \(-1, 0, 1, 2, 3\)"),
        (dict(points=np.zeros((0, 2)), labels=np.zeros(0)), "points is empty"),
    ]:
        with pytest.raises(ValueError, match=match):
            pred.add_new_points_or_box(st, 1, 3, **kw)
    for mask, match in [(np.full((H, W), np.nan), "mask contains NaN"), (np.ones((H + 1, W)), "mask has size"),
                        (np.ones((2, H, W)), "2-D"),
                        # probabilities / logits: the official would read a float tensor and an
                        # array differently, so neither is guessed
                        (torch.full((H, W), 0.3), r"values in \[0.3, 0.3\], not 0/1"),
                        (np.where(np.eye(H, W) > 0, 5.0, -5.0), r"threshold it first .*logits")]:
        with pytest.raises(ValueError, match=match):
            pred.add_new_mask(st, 1, 3, mask)
    assert st["obj_ids"] == [1, 2]  # the failed calls registered nothing
    # masks at the video size and at the model size are both prompts
    mask = np.zeros((H, W), bool)
    mask[10:30, 20:50] = True
    _, ids, _ = pred.add_new_mask(st, 1, 3, mask)
    _, ids, _ = pred.add_new_mask(st, 2, 4, torch.ones(S, S))
    assert ids == [1, 2, 3, 4]


@pytest.mark.skipif(not (DATA_DIR / "bedroom").is_dir(), reason="../shared/data not available")
def test_video_outside_box_matches_official(tmp_path):
    """The official video predictor is the oracle for a box crossing the border."""
    from tests.video_parity import VideoPair

    # one object per decoder call, as the official, so the decoder calls can be compared
    pair = VideoPair(tmp_path, "sam2.1_hiera_tiny", S, 3, seed=2, score_shift=0.5, batch_objects=False)
    pair.add_points(0, 1, box=[-2.5, 60.0, 963.0, 300.0])
    pair.add_points(0, 2, points=[[-20.0, 600.0]], labels=[1])
    assert pair.propagate() == [0, 1, 2]


# ============================================================================ stream
def test_stream_prompt_rules(pair, frames):
    _, model = pair
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state()
    box = [-2.5, 4.0, W + 3.0, H - 6.0]
    out = sam.predict_video_frame(state, frames[0], {1: {"box": box}, 2: {"points": [[-10.0, 5.0]], "labels": [1]}})
    assert out.obj_ids == [1, 2]
    # the stream and the video predictor agree on the outside box (same rules, same maths)
    pred = _video_predictor(model)
    st = pred.init_state(frames[:1])
    _, _, m = pred.add_new_points_or_box(st, 0, 1, box=box)
    assert torch.equal(out.mask_logits[:1], m)
    for p, match in [
        ({"box": np.zeros((0, 4))}, "box is empty"),
        ({"box": [0.0, np.nan, 5.0, 5.0]}, "box contains NaN"),
        ({"box": [9.0, 0.0, 5.0, 5.0]}, "x1 >= x0"),
        ({"points": [[np.inf, 1.0]], "labels": [1]}, "points contains NaN"),
        ({"points": [[1.0, 1.0]], "labels": [5]}, "labels must be in"),
        ({"mask": np.full((H, W), np.inf)}, "mask contains NaN"),
        ({"mask": np.ones((H, W)), "box": [0, 0, 5, 5]}, "cannot be combined"),
        ({}, "has no points, box or mask"),
    ]:
        with pytest.raises(ValueError, match=f"obj_id 3.*{match}"):
            sam.predict_video_frame(state, frames[1], {3: p})
    assert state.frame_idx == 1 and state.obj_ids == [1, 2]
    out = sam.predict_video_frame(state, frames[1], {3: {"mask": torch.ones(S, S)}})  # model-size mask
    assert out.obj_ids == [1, 2, 3]


# ============================================================================ command line
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, pair):
    from PIL import Image

    d = tmp_path_factory.mktemp("cli_prompts")
    ckpt = d / "tiny.safetensors"
    sam2_fast.save_state_dict(randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", S)), 5).state_dict(), ckpt)
    frames = d / "frames"
    frames.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(frames / f"{i:05d}.png")
    return ckpt, frames


def test_cli_prompt_rules(cli_files, tmp_path, capsys):
    from sam2_fast.cli import main

    ckpt, frames = cli_files
    base = ["--checkpoint", str(ckpt), "--image-size", str(S), "--quiet"]
    img = frames / "00000.png"
    # a box crossing the border is clipped and recorded (image and video), with a warning
    out = tmp_path / "img"
    assert main(["image", str(img), *base, "--box", f"-2.5,4,{W + 3},40", "--out", str(out)]) == 0
    assert "clipped to [0.0, 4.0, 80.0, 40.0]" in capsys.readouterr().err
    res = json.loads((out / "result.json").read_text())
    assert res["boxes"] == [[0.0, 4.0, 80.0, 40.0]]
    assert res["clipped_boxes"] == [{"index": 0, "given": [-2.5, 4.0, 83.0, 40.0], "used": [0.0, 4.0, 80.0, 40.0]}]
    out = tmp_path / "vid"
    assert main(["video", str(frames), *base, "--box", f"1:0:-2.5,4,{W + 3},40", "--point", "2:0:5,5",
                 "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["clipped_boxes"] == [{"obj_id": 1, "frame": 0, "given": [-2.5, 4.0, 83.0, 40.0],
                                     "used": [0.0, 4.0, 80.0, 40.0]}]
    assert [p["box"] for p in run["prompts"]] == [[0.0, 4.0, 80.0, 40.0], None]
    # a click outside the frame, a box entirely outside it, NaN: exit 2, one line, nothing written
    for argv, match in [
        (["image", str(img), *base, "--point", f"{W + 1},3"], f"outside the {W}x{H} frame"),
        (["image", str(img), *base, "--box", f"{W + 1},3,{W + 9},9"], "lies outside"),
        (["image", str(img), *base, "--point", "inf,3"], "NaN or infinite"),
        (["video", str(frames), *base, "--point", f"1:0:3,{H + 0.5}"], f"outside the {W}x{H} frame"),
        (["video", str(frames), *base, "--box", "1:1:-9,-9,-1,5"], "lies outside"),
    ]:
        capsys.readouterr()
        assert main([*argv, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err
        assert not (tmp_path / "bad").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "vid"]
