"""Argument rules of the Python APIs that a new user meets: object ids, switches, the prompts of
``Sam2.track``, a stream's state and ``frame_idx``, ``propagate_in_video``'s arguments and the
build device. Each bad value gets a ValueError naming it; nothing is dropped or aliased
silently. Small: tiny model at 64 px on 48 x 64 frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sam2_fast
from sam2_fast.checkpoint import randomize_
from sam2_fast.model.sam2_model import Sam2Model
from sam2_fast.predictors.image import Sam2ImagePredictor
from sam2_fast.predictors.video import Sam2VideoPredictor
from sam2_fast.prompts import check_flag, check_obj_id

H, W = 48, 64
CLICK = {"points": [[20, 20]], "labels": [1]}


@pytest.fixture(scope="module")
def model():
    return randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", 64)), seed=5).eval()


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(11)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(3)]


def test_obj_id_and_flag_rules():
    for good, want in ((1, 1), (np.int64(7), 7), ("car", "car"), (2.5, 2.5)):
        got = check_obj_id(good)
        assert got == want and type(got) is type(want)
    for bad in (None, True, np.bool_(False), torch.tensor(1), np.array([1]), [1], {"a": 1}):
        with pytest.raises(ValueError, match="hashable scalar id"):
            check_obj_id(bad)
    assert check_flag(np.bool_(True), "x") is True
    for bad in ("no", 0, 1, None):
        with pytest.raises(ValueError, match="x must be True or False"):
            check_flag(bad, "x")


def test_video_predictor_rules(model, frames):
    """True would silently join object 1 (True == 1); np.int64(1) is object 1; non-int or
    negative max_frame_num_to_track and a non-bool reverse are refused."""
    pred = Sam2VideoPredictor(model)
    st = pred.init_state(frames)
    # one (T, H, W, 3) uint8 tensor is a video too, as a 4-D numpy array
    assert torch.equal(pred.init_state(torch.from_numpy(np.stack(frames)))["images"], st["images"])
    pred.add_new_points_or_box(st, 0, 1, points=[[20, 20]], labels=[1])
    with pytest.raises(ValueError, match="obj_id must be a hashable scalar id .* got True"):
        pred.add_new_points_or_box(st, 0, True, points=[[30, 30]], labels=[1])
    with pytest.raises(ValueError, match="got None"):
        pred.add_new_mask(st, 0, None, np.ones((H, W), bool))
    _, ids, _ = pred.add_new_points_or_box(st, 1, np.int64(1), points=[[22, 22]], labels=[1])
    assert ids == [1] and type(ids[0]) is int
    with pytest.raises(ValueError, match="got True"):
        pred.remove_object(st, True)
    assert st["obj_ids"] == [1]
    for kw, match in ((dict(max_frame_num_to_track=2.5), "max_frame_num_to_track must be an int"),
                      (dict(max_frame_num_to_track="3"), "max_frame_num_to_track must be an int"),
                      (dict(max_frame_num_to_track=-1), "max_frame_num_to_track must be an int >= 0"),
                      (dict(reverse="yes"), "reverse must be True or False")):
        with pytest.raises(ValueError, match=match):
            next(iter(pred.propagate_in_video(st, progress=False, **kw)))
    assert [i for i, _, _ in pred.propagate_in_video(st, max_frame_num_to_track=np.int64(1),
                                                     progress=False)] == [0, 1]


def test_stream_rules(model, frames):
    sam = sam2_fast.Sam2(model)
    with pytest.raises(ValueError, match="state must be a Sam2VideoState .* got dict"):
        sam.predict_video_frame({}, frames[0], {1: CLICK})
    st = sam.new_video_state()
    with pytest.raises(ValueError, match="a prompt's obj_id .* got True"):
        sam.predict_video_frame(st, frames[0], {True: CLICK})
    with pytest.raises(ValueError, match="frame_idx must be an int, got '0'"):
        sam.predict_video_frame(st, frames[0], {1: {**CLICK, "frame_idx": "0"}})
    assert st.frame_idx == 0 and not st.obj_ids  # the refused calls changed nothing
    out = sam.predict_video_frame(st, frames[0], {np.int64(1): CLICK})
    assert list(out.obj_ids) == [1]
    with pytest.raises(ValueError, match="got True"):
        sam.remove_object(st, True)
    sam.remove_object(st, np.int64(1))
    with pytest.raises(ValueError, match="no objects left at frame 1 .*removed"):
        sam.predict_video_frame(st, frames[1])


def test_track_prompts_are_never_dropped(model, frames):
    """Sam2.track refuses keys that are not frame indices or that the stream has passed, and
    after the last frame names prompts the source never reached."""
    sam = sam2_fast.Sam2(model)
    for prompts, match in (({"0": {1: CLICK}}, r"keys are frame indices \(ints\), got '0'"),
                           ({0: {1: CLICK}, -1: {2: CLICK}}, "stream is already at frame 0"),
                           ("Auto", "or 'auto', got 'Auto'"),
                           ([CLICK], "or 'auto', got list")):
        with pytest.raises(ValueError, match=match):
            next(sam.track(frames, prompts))
    gen = sam.track(frames, {0: {1: CLICK}, 10: {2: {"box": [1, 1, 30, 30]}}})
    assert len([next(gen) for _ in range(3)]) == 3  # every frame first
    with pytest.raises(ValueError, match=r"frame\(s\) \[10\] were never used: the source ended at frame 2"):
        next(gen)
    st = sam.new_video_state()
    list(sam.track(frames[:2], {0: {1: CLICK}}, state=st))
    with pytest.raises(ValueError, match="prompts for frame 0: the stream is already at frame 2"):
        next(sam.track(frames, {0: {2: CLICK}}, state=st))


def test_track_checks_later_prompts_on_the_first_frame(model, frames):
    """A bad prompt for a later frame is reported before the first result, not when the
    stream reaches its frame."""
    sam = sam2_fast.Sam2(model)
    for later, match in (({2: {"point": [[1, 1]]}}, r"prompts\[2\]: prompt for obj_id 2: unknown keys \['point'\]"),
                         ("oops", r"prompts\[2\] must be a dict \{obj_id: prompt\}, got str"),
                         ({True: CLICK}, r"prompts\[2\]: a prompt's obj_id .* got True"),
                         ({2: dict(CLICK, frame_idx=1)}, r"prompts\[2\]: .*frame_idx 1 but is listed under frame 2"),
                         ({2: {"box": [30, 30, 10, 10]}}, r"prompts\[2\]: .*box")):
        gen = sam.track(frames, {0: {1: CLICK}, 2: later})
        with pytest.raises(ValueError, match=match):
            next(gen)
    st = sam.new_video_state()  # a stream that already has its size: checked before any frame
    list(sam.track(frames[:1], {0: {1: CLICK}}, state=st))
    with pytest.raises(ValueError, match=r"prompts\[3\]: prompt for obj_id 2 has no points"):
        next(sam.track(frames, {3: {2: {}}}, state=st))
    assert st.frame_idx == 1


def test_stream_and_video_predictor_options(model, frames):
    """Counts are ints (numpy ints too; not bools, floats or strings), switches True/False;
    a stream that passes num_frames is warned about once."""
    sam = sam2_fast.Sam2(model)
    # (arguments, message, whether Sam2VideoPredictor takes the argument too)
    for kw, match, video_too in (
            (dict(non_overlap_masks="no"), "non_overlap_masks must be True or False", True),
            (dict(add_all_frames_to_correct_as_cond="no"), "add_all_frames_to_correct_as_cond", True),
            (dict(num_frames=True), r"num_frames \(or None\) must be an int >= 1, got True", False),
            (dict(max_cond_frames=True), "max_cond_frames must be an int", False),
            (dict(num_frames=0), r"num_frames \(or None\) must be an int >= 1, got 0", False),
            (dict(fill_hole_area="8"), "fill_hole_area must be an int >= 0, got '8'", True),
            (dict(fill_hole_area=2.5), "fill_hole_area must be an int >= 0, got 2.5", True)):
        with pytest.raises(ValueError, match=match):
            sam.new_video_state(**kw)
        if video_too:
            with pytest.raises(ValueError, match=match):
                Sam2VideoPredictor(model, **kw)
    for kw in (dict(batch_objects="no"), dict(clear_non_cond_mem_around_input=1)):
        with pytest.raises(ValueError, match="must be True or False"):
            Sam2VideoPredictor(model, **kw)
    st = sam.new_video_state(num_frames=np.int64(2), fill_hole_area=np.int32(4))
    assert st.num_frames == 2 and type(st.num_frames) is int and st.fill_hole_area == 4
    with pytest.warns(UserWarning, match="passed num_frames=2 \\(frame 2\\)") as rec:
        list(sam.track(frames + frames[:1], {0: {1: CLICK}}, state=st))
    assert len(rec) == 1


def test_image_predictor_switches(model, frames):
    with pytest.raises(ValueError, match="unknown argument.*max_hole_aera"):
        Sam2ImagePredictor(model, max_hole_aera=10)
    pred = Sam2ImagePredictor(model)
    pred.set_image(frames[0])
    with pytest.raises(ValueError, match="multimask_output must be True or False, got 'no'"):
        pred.predict(np.array([[20, 20]]), np.array([1]), multimask_output="no")
    with pytest.raises(ValueError, match="return_logits must be True or False"):
        pred.predict(np.array([[20, 20]]), np.array([1]), return_logits=1)
    masks, _, _ = pred.predict(np.array([[20, 20]]), np.array([1]), multimask_output=np.bool_(False))
    assert masks.shape == (1, H, W)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_build_device_is_checked_first():
    for device, match in (("cuda", "CUDA is not available on this machine"),
                          ("tpu", "'tpu' is not a torch device")):
        with pytest.raises(ValueError, match=match):
            sam2_fast.build_sam2("sam2.1_hiera_tiny", "missing.pt", device=device)
