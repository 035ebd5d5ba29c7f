"""Streaming tracker (Sam2.predict_video_frame): parity with Sam2VideoPredictor (itself
proven against the official), objects batched, bounded memory, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import sam2_fast
from sam2_fast.checkpoint import randomize_
from sam2_fast.config import HieraConfig
from sam2_fast.model.sam2_model import Sam2Model
from sam2_fast.predictors.video import Sam2VideoPredictor
from official import DATA_DIR
from tolerances import assert_close_rel

S = 128
N_FRAMES = 8
PROMPTS = {
    1: {"points": [[210, 350]], "labels": [1]},
    2: {"box": [480, 180, 720, 460]},
    3: {"points": [[800, 100], [600, 300]], "labels": [1, 0]},
}


@pytest.fixture(scope="module")
def frames():
    return [np.asarray(Image.open(DATA_DIR / "bedroom" / f"{i:05d}.jpg").convert("RGB")) for i in range(N_FRAMES)]


@pytest.fixture(scope="module")
def model(frames):
    """Fresh random weights; the object-score head's bias is then calibrated so the tracked
    object is visible on most frames (random weights alone often make it absent everywhere,
    which would make the masks trivially equal)."""
    m = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", S)), seed=int(torch.randint(0, 2**31 - 1, ())))
    m.eval()
    for _ in range(3):
        sam = sam2_fast.Sam2(m)
        st = sam.new_video_state(num_frames=N_FRAMES)
        scores = [sam.predict_video_frame(st, f, {1: PROMPTS[1]} if i == 0 else None).object_score_logits.item()
                  for i, f in enumerate(frames[:4])]
        if sum(sc > 0 for sc in scores) >= 3:
            break
        with torch.no_grad():
            m.sam_mask_decoder.pred_obj_score_head.layers[2].bias += 0.5 - float(np.median(scores))
    return m


def _offline(model, frames, steps, **kw):
    """Run Sam2VideoPredictor through ``steps`` = [(frame, {obj: prompt}), ...] the way a user
    of the offline API reproduces a stream: prompt, then propagate up to the next prompt; a
    prompt for an object already tracked is a correction on its tracked frame, so the frame is
    tracked first, clicked, and propagation goes on from the next frame."""
    pred = Sam2VideoPredictor(model, **kw)
    st = pred.init_state(frames)
    seen, kinds = set(), []
    for _f, prompts in steps:
        kinds.append(all(o in seen for o in prompts))  # True: a correction
        seen.update(prompts)
    outs = {}
    for i, (f, prompts) in enumerate(steps):
        correction = kinds[i]
        for o, p in prompts.items():
            _, ids, m = pred.add_new_points_or_box(st, f, o, points=p.get("points"), labels=p.get("labels"),
                                                   box=p.get("box"))
        if correction:
            outs[f] = (list(ids), m.clone())
        start = f + 1 if correction else f
        if i + 1 < len(steps):
            nf = steps[i + 1][0]
            end = nf if kinds[i + 1] else nf - 1
        else:
            end = len(frames) - 1
        if start <= end:
            for fi, ids, m in pred.propagate_in_video(st, start_frame_idx=start, max_frame_num_to_track=end - start):
                outs[fi] = (list(ids), m.clone())
    return outs


def _stream(model, frames, steps, **kw):
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state(num_frames=len(frames), **kw)
    prompts = dict(steps)
    return [sam.predict_video_frame(state, fr, prompts.get(i)) for i, fr in enumerate(frames)], state


@pytest.mark.parametrize("objs", [[1], [1, 2, 3]], ids=["1obj", "3obj"])
def test_stream_equals_propagate_in_video(model, frames, objs):
    steps = [(0, {o: PROMPTS[o] for o in objs})]
    ref = _offline(model, frames, steps)
    outs, _ = _stream(model, frames, steps)
    present = 0
    for out in outs:
        ids, logits = ref[out.frame_idx]
        assert out.obj_ids == ids
        area = "video_first_frame" if out.frame_idx == 0 else "video_late_frame"
        assert_close_rel(out.mask_logits, logits, area, what=f"stream vs propagate ({len(objs)} obj)")
        assert torch.equal(out.masks, out.mask_logits > 0)
        present += int((out.object_score_logits > 0).sum())
    assert present >= 2, "the scenario must have frames where an object is visible"


def test_correction_and_late_object_equal_offline(model, frames):
    steps = [(0, {1: PROMPTS[1]}), (3, {2: PROMPTS[2]}), (5, {1: {"points": [[300, 300]], "labels": [0]}})]
    ref = _offline(model, frames, steps)
    outs, state = _stream(model, frames, steps)
    for out in outs:
        ids, logits = ref[out.frame_idx]
        assert out.obj_ids == ids, out.frame_idx
        assert_close_rel(out.mask_logits, logits, "video_late_frame", what="stream correction/late object")
    assert len(state.groups) == 2  # obj 2 joined on frame 3: its own batch


def test_partial_correction_as_conditioning_keeps_the_object_order(model, frames):
    """add_all_frames_to_correct_as_cond=True and a correction of one object of a batch: the
    corrected object gets a group of its own, but obj_ids keep the order the objects were
    added in (the masks follow them), as offline."""
    steps = [(0, {1: PROMPTS[1], 2: PROMPTS[2], 3: PROMPTS[3]}),
             (2, {1: {"points": [[300, 300]], "labels": [0]}})]
    ref = _offline(model, frames[:5], steps, add_all_frames_to_correct_as_cond=True)
    outs, state = _stream(model, frames[:5], steps, add_all_frames_to_correct_as_cond=True)
    assert len(state.groups) == 2  # the split happened
    for out in outs:
        ids, logits = ref[out.frame_idx]
        assert out.obj_ids == ids == [1, 2, 3], out.frame_idx
        area = "video_first_frame" if out.frame_idx == 0 else "video_late_frame"
        assert_close_rel(out.mask_logits, logits, area, what="stream partial correction as cond")
    assert state.obj_ids == [1, 2, 3]
    state.remove_object(2)
    assert state.obj_ids == [1, 3]


def test_batched_equals_one_at_a_time(model, frames):
    both, _ = _stream(model, frames[:5], [(0, {1: PROMPTS[1], 3: PROMPTS[3]})])
    one, _ = _stream(model, frames[:5], [(0, {1: PROMPTS[1]})])
    three, _ = _stream(model, frames[:5], [(0, {3: PROMPTS[3]})])
    for b, o, t in zip(both, one, three):
        assert_close_rel(b.mask_logits[0:1], o.mask_logits, "video_late_frame", what="batched vs single")
        assert_close_rel(b.mask_logits[1:2], t.mask_logits, "video_late_frame", what="batched vs single")
        assert_close_rel(b.object_score_logits, torch.cat([o.object_score_logits, t.object_score_logits]),
                         "video_late_frame", what="batched vs single scores")


def test_several_streams_in_one_call(model, frames, monkeypatch):
    """B streams x N objects: one image-encoder batch, and one tracking batch for streams whose
    memory layouts match; each stream's results equal running it alone."""
    sam = sam2_fast.Sam2(model)
    a, b = sam.new_video_state(num_frames=5), sam.new_video_state(num_frames=5)
    sa, sb = sam.new_video_state(num_frames=5), sam.new_video_state(num_frames=5)
    calls = []
    real = model.track_step
    monkeypatch.setattr(model, "track_step",
                        lambda *a_, **k: calls.append(k["current_vision_feats"][-1].shape[1]) or real(*a_, **k))
    for i in range(5):
        pa = {1: PROMPTS[1], 3: PROMPTS[3]} if i == 0 else None
        pb = {7: PROMPTS[2]} if i == 0 else None
        calls.clear()
        oa, ob = sam.predict_video_frames([a, b], [frames[i], frames[-1 - i]], [pa, pb])
        if i > 0:
            assert calls == [3], calls  # 2 + 1 objects of two streams in one tracking step
        ra = sam.predict_video_frame(sa, frames[i], pa)
        rb = sam.predict_video_frame(sb, frames[-1 - i], pb)
        assert ob.obj_ids == [7] and oa.obj_ids == [1, 3]
        assert_close_rel(oa.mask_logits, ra.mask_logits, "video_late_frame", what="multi-stream vs single")
        assert_close_rel(ob.mask_logits, rb.mask_logits, "video_late_frame", what="multi-stream vs single")
        assert_close_rel(ob.object_score_logits, rb.object_score_logits, "video_late_frame",
                         what="multi-stream vs single scores")


def test_memory_is_bounded_over_1000_frames():
    # the bank's bookkeeping does not depend on the trunk: a one-block-per-stage Hiera keeps
    # 1,000 CPU frames cheap; everything after the image encoder is the published 2.1 model
    cfg = dataclasses.replace(sam2_fast.get_config("sam2.1_hiera_tiny", 32),
                              hiera=HieraConfig(16, 1, (1, 1, 1, 1), (), (8, 4, 2, 1), (2, 2)))
    m = randomize_(Sam2Model(cfg), seed=int(torch.randint(0, 2**31 - 1, ()))).eval()
    sam = sam2_fast.Sam2(m)
    state = sam.new_video_state()  # unbounded stream
    rng = np.random.default_rng()
    sizes = {}
    for i in range(1000):
        frame = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
        prompts = {1: {"points": [[10, 12]], "labels": [1]}} if i == 0 else None
        if i == 20:
            prompts = {2: {"box": [5, 5, 30, 20]}}  # a second object joins later
        out = sam.predict_video_frame(state, frame, prompts)
        if i + 1 in (50, 500, 1000):
            sizes[i + 1] = state.nbytes()
    assert out.frame_idx == 999 and out.obj_ids == [1, 2]
    assert sizes[50] == sizes[500] == sizes[1000] > 0
    assert all(len(g.non_cond) <= m.config.max_obj_ptrs_in_encoder - 1 for g in state.groups)


def test_bad_input_leaves_state_usable(model, frames):
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state()
    with pytest.raises(ValueError, match="needs prompts"):
        sam.predict_video_frame(state, frames[0])
    sam.predict_video_frame(state, frames[0], {1: PROMPTS[1]})
    small = frames[1][:100, :100]
    with pytest.raises(ValueError, match="never resizes"):
        sam.predict_video_frame(state, small)
    with pytest.raises(ValueError, match="already passed"):
        sam.predict_video_frame(state, frames[1], {1: dict(PROMPTS[1], frame_idx=0)})
    with pytest.raises(ValueError, match="uint8"):
        sam.predict_video_frame(state, frames[1].astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        sam.predict_video_frame(state, Image.fromarray(frames[1]).convert("L"))
    with pytest.raises(ValueError, match="NaN"):
        sam.predict_video_frame(state, frames[1], {2: {"points": [[np.nan, 10]], "labels": [1]}})
    with pytest.raises(ValueError, match="labels must be in"):
        sam.predict_video_frame(state, frames[1], {2: {"points": [[50, 10]], "labels": [7]}})
    with pytest.raises(ValueError, match="obj_id 2: mask has size"):
        sam.predict_video_frame(state, frames[1], {2: {"mask": np.ones((10, 10), bool)}})
    assert state.frame_idx == 1 and state.obj_ids == [1]
    out = sam.predict_video_frame(state, frames[1])  # still usable
    assert out.frame_idx == 1
    sam.remove_object(state, 1)
    with pytest.raises(ValueError, match="cannot be reused"):
        sam.predict_video_frame(state, frames[2], {1: PROMPTS[1]})
    with pytest.raises(ValueError, match="unknown obj_id"):
        sam.remove_object(state, 1)
    mask = np.pad(np.ones((100, 100), bool), ((100, 340), (200, 660)))
    out = sam.predict_video_frame(state, frames[2], {5: {"mask": mask}})
    assert out.obj_ids == [5] and out.mask_logits.shape == (1, 1, 540, 960)


def test_iter_frames_sources(frames):
    from sam2_fast.predictors.streaming import iter_frames

    mp4 = DATA_DIR / "videos" / "bedroom.mp4"
    first = next(iter(iter_frames(mp4)))
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    folder = list(zip(range(2), iter_frames(DATA_DIR / "bedroom")))
    assert np.array_equal(folder[0][1], frames[0])
    assert list(iter_frames(iter(frames[:2])))[1] is frames[1]
    with pytest.raises(ValueError, match="does not exist"):
        next(iter(iter_frames("no/such/video.mp4")))


def test_offline_predictor_batches_objects(model, frames):
    """Sam2VideoPredictor tracks objects with one memory layout as one batch; the result equals
    tracking them one at a time."""
    outs = {}
    for batch in (True, False):
        pred = Sam2VideoPredictor(model, batch_objects=batch)
        st = pred.init_state(frames[:5])
        for o in (1, 2, 3):
            p = PROMPTS[o]
            pred.add_new_points_or_box(st, 0, o, points=p.get("points"), labels=p.get("labels"), box=p.get("box"))
        pred.propagate_in_video_preflight(st)
        assert pred._layout_groups(st, [0, 1, 2], 1) == ([[0, 1, 2]] if batch else [[0], [1], [2]])
        outs[batch] = [m.clone() for _, _, m in pred.propagate_in_video(st)]
    for a, b in zip(outs[True], outs[False]):
        assert_close_rel(a, b, "video_late_frame", what="offline batched vs one at a time")


def test_tensor_frames_match_the_pil_path(model, frames):
    """Frames already in a torch tensor (e.g. on the GPU) are resized on the device; they agree
    with the official PIL resize to one uint8 level, and stream like arrays."""
    from sam2_fast.config import PIXEL_STD
    from sam2_fast.predictors.streaming import preprocess_frame

    from tolerances import FRAME_RESIZE_MAX_LEVELS

    a, h, w = preprocess_frame(frames[0], S, torch.device("cpu"))
    b, h2, w2 = preprocess_frame(torch.from_numpy(frames[0].copy()), S, torch.device("cpu"))
    assert (h, w) == (h2, w2) == frames[0].shape[:2]
    levels = ((a - b).abs() * torch.tensor(PIXEL_STD).view(1, 3, 1, 1) * 255).max().item()
    assert levels <= FRAME_RESIZE_MAX_LEVELS + 1e-3, levels
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state()
    out = sam.predict_video_frame(state, torch.from_numpy(frames[0].copy()), {1: PROMPTS[1]})
    out = sam.predict_video_frame(state, torch.from_numpy(frames[1].copy()))
    assert out.mask_logits.shape == (1, 1, 540, 960)
    with pytest.raises(ValueError, match="uint8"):
        sam.predict_video_frame(state, torch.from_numpy(frames[2].copy()).float())
