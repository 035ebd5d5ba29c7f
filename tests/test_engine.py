"""The tracking engine: the one read rule and what is retained from it, hole filling without host
synchronisation (against a union-find reference on random and adversarial masks), the
fixed-capacity bank, a steady-state step free of synchronising ops, and parity with the official
at ``memory_temporal_stride_for_eval=2`` (offline and streaming)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

import sam2_fast
from sam2_fast.checkpoint import randomize_
from sam2_fast.engine.memory_bank import (MemoryEntry, MemoryStore, frames_read_around,
                                          plan_memory_read)
from sam2_fast.engine.postprocess import (connected_components, fill_holes_in_mask_scores,
                                          small_components)
from sam2_fast.model.sam2_model import Sam2Model
from official import DATA_DIR
from tolerances import assert_close_rel
from video_parity import VideoPair

# ----------------------------------------------------------------------------- the read rule


def _cfg(stride=1, **kw):
    return dataclasses.replace(sam2_fast.get_config("sam2.1_hiera_tiny"),
                               memory_temporal_stride_for_eval=stride, **kw)


def test_plan_matches_the_official_selection_stride_1_and_2():
    cfg = _cfg(1)
    held = set(range(1, 40))
    p = plan_memory_read(cfg, 20, [0], held, 100)
    assert p.cond_frames == (0,)
    assert [(t, f) for t, f, _ in p.spatial] == [(1, 14), (2, 15), (3, 16), (4, 17), (5, 18), (6, 19)]
    assert [f for f, _, _ in p.pointers] == [0] + list(range(19, 4, -1))
    assert [d for _, _, d in p.pointers] == [20] + list(range(1, 16))
    p2 = plan_memory_read(_cfg(2), 21, [0], held, 100)
    # previous frame, then multiples of the stride: ((21 - 2) // 2) * 2 = 18, 16, ... 10
    assert [(t, f) for t, f, _ in p2.spatial] == [(1, 10), (2, 12), (3, 14), (4, 16), (5, 18), (6, 20)]
    rev = plan_memory_read(_cfg(2), 5, [30], held, 100, track_in_reverse=True)
    assert [(t, f) for t, f, _ in rev.spatial] == [(1, 16), (2, 14), (3, 12), (4, 10), (5, 8), (6, 6)]
    # the pointer window is bounded by the video length and by the frames held
    short = plan_memory_read(cfg, 3, [0], {1, 2}, 4)
    assert [f for f, _, _ in short.pointers] == [0, 2, 1] and short.max_ptrs == 4
    with pytest.raises(RuntimeError, match="conditioning frame"):
        plan_memory_read(cfg, 3, [], {1, 2}, 4)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_retention_keeps_exactly_what_later_steps_read(stride):
    """A stream that keeps only what the next step reads loses nothing any later step reads:
    for every frame, the plan over the pruned store equals the plan over everything."""
    cfg = _cfg(stride)
    everything = MemoryStore()
    pruned = MemoryStore()
    e = MemoryEntry(obj_ptr=torch.randn(1, 4), object_score_logits=torch.randn(1, 1),
                    maskmem_features=torch.randn(1, 2, 1, 1))
    everything.cond[0] = pruned.cond[0] = e
    for t in range(1, 60):
        full = everything.plan(cfg, t, None)
        assert pruned.plan(cfg, t, None) == full, t
        everything.non_cond[t] = pruned.non_cond[t] = e
        pruned.retain(pruned.plan(cfg, t + 1, None))
        spatial = pruned.plan(cfg, t + 1, None).non_cond_spatial_frames()
        assert all(pruned.non_cond[f].maskmem_features is not None for f in spatial)
        assert len(pruned.non_cond) <= cfg.max_obj_ptrs_in_encoder - 1 + cfg.num_maskmem
    assert sum(v.maskmem_features is not None for v in pruned.non_cond.values()) == cfg.num_maskmem - 1


def test_frames_read_around_follow_the_rule():
    cfg = _cfg(2)
    held = set(range(1, 30)) - {15}
    around = frames_read_around(cfg, 15, [0], held, 30)
    fwd = plan_memory_read(cfg, 16, [0], held, 30).non_cond_spatial_frames()
    rev = plan_memory_read(cfg, 14, [0], held, 30, track_in_reverse=True).non_cond_spatial_frames()
    assert around == (fwd | rev) - {15}
    assert around == {6, 8, 10, 12, 14, 16, 18, 20, 22, 24}


def test_memory_entry_rows_rebatch_without_copies():
    e = MemoryEntry(obj_ptr=torch.randn(3, 8), object_score_logits=torch.randn(3, 1),
                    maskmem_features=torch.randn(3, 2, 4, 4), pred_masks=torch.randn(3, 1, 8, 8))
    rows = [e.row(i) for i in range(3)]
    assert MemoryEntry.cat(rows) is e
    back = MemoryEntry.cat([rows[2], rows[0]])
    assert torch.equal(back.obj_ptr, e.obj_ptr[[2, 0]])
    assert rows[1]["maskmem_features"].shape == (1, 2, 4, 4) and rows[1].get("maskmem_pos_enc") is None
    with pytest.raises(ValueError, match="missing"):
        MemoryEntry.cat([rows[0], rows[1].pointer_only()])


# ----------------------------------------------------------------------------- hole filling


def _union_find_components(fg: np.ndarray):
    """(labels, areas) of one (H, W) bool mask, 8-connectivity, by union-find on the CPU."""
    h, w = fg.shape
    parent = list(range(h * w))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for y in range(h):
        for x in range(w):
            if not fg[y, x]:
                continue
            for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and fg[yy, xx]:
                    ra, rb = find(y * w + x), find(yy * w + xx)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(h * w)]).reshape(h, w)
    labels = np.where(fg, roots + 1, 0)
    counts = np.bincount(labels.ravel(), minlength=h * w + 1)
    return labels, np.where(fg, counts[labels], 0)


def _spiral(n: int, gap: int = 1) -> np.ndarray:
    """A one-pixel-wide square spiral (the longest geodesic paths a mask can have)."""
    m = np.zeros((n, n), bool)
    y, x, dy, dx = 0, 0, 0, 1
    lo_y, hi_y, lo_x, hi_x = 0, n - 1, 0, n - 1
    while lo_y <= hi_y and lo_x <= hi_x:
        m[y, x] = True
        ny, nx = y + dy, x + dx
        if not (lo_y <= ny <= hi_y and lo_x <= nx <= hi_x):
            if (dy, dx) == (0, 1):
                lo_y += gap + 1
            elif (dy, dx) == (1, 0):
                hi_x -= gap + 1
            elif (dy, dx) == (0, -1):
                hi_y -= gap + 1
            else:
                lo_x += gap + 1
            dy, dx = dx, -dy
            ny, nx = y + dy, x + dx
            if not (lo_y - gap - 1 <= ny <= hi_y + gap + 1 and lo_x - gap - 1 <= nx <= hi_x + gap + 1):
                break
        y, x = ny, nx
    return m


def _snake(h: int, w: int) -> np.ndarray:
    """Rows joined alternately at the right and left ends: one long component."""
    m = np.zeros((h, w), bool)
    m[::2] = True
    for i, y in enumerate(range(1, h, 2)):
        m[y, w - 1 if i % 2 == 0 else 0] = True
    return m


def _masks():
    rng = np.random.default_rng()
    out = [rng.random((n, n)) < p for n, p in ((24, 0.3), (31, 0.5), (40, 0.6), (17, 0.7), (64, 0.45))]
    out += [_spiral(33), ~_spiral(33), _spiral(48, gap=2), _snake(33, 29), ~_snake(32, 40)]
    small_blobs = np.ones((30, 30), bool)
    for k in range(1, 10):  # holes of area 1..9 pixels, and diagonal (8-connected) ones
        y, x = (k - 1) // 3 * 7 + 1, (k - 1) % 3 * 7 + 1
        small_blobs.flat[np.ravel_multi_index((y + np.arange(k) // 3, x + np.arange(k) % 3), (30, 30))] = False
    small_blobs[25, 25] = small_blobs[26, 26] = small_blobs[27, 27] = False  # a diagonal 3-pixel hole
    out.append(small_blobs)
    return out


def test_connected_components_match_union_find():
    for m in _masks():
        labels, areas = connected_components(torch.from_numpy(m)[None, None])
        ref_l, ref_a = _union_find_components(m)
        assert np.array_equal(areas[0, 0].numpy(), ref_a)
        lab = labels[0, 0].numpy()
        # the same partition: a bijection between our labels and the reference's
        pairs = set(zip(lab[m].tolist(), ref_l[m].tolist()))
        assert len(pairs) == len(set(lab[m].tolist())) == len(set(ref_l[m].tolist()))


@pytest.mark.parametrize("max_area", [1, 2, 3, 5, 8, 9, 30])
def test_small_components_and_hole_filling_match_union_find(max_area):
    for m in _masks():
        fg = torch.from_numpy(m)[None, None]
        _, ref_a = _union_find_components(m)
        ref_small = m & (ref_a <= max_area)
        assert np.array_equal(small_components(fg, max_area)[0, 0].numpy(), ref_small)
        logits = torch.randn(1, 1, *m.shape).abs() * torch.where(fg, -1.0, 1.0)  # fg = holes
        filled = fill_holes_in_mask_scores(logits, max_area)
        want = torch.where(torch.from_numpy(ref_small)[None, None], torch.tensor(0.1), logits)
        assert torch.equal(filled, want)
    batch = torch.rand(4, 1, 37, 23) < 0.5  # masks of a batch do not connect to each other
    per = torch.cat([small_components(batch[i:i + 1], max_area) for i in range(4)])
    assert torch.equal(small_components(batch, max_area), per)
    with pytest.raises(ValueError, match="max_area"):
        small_components(batch, 0)


# ----------------------------------------------------------------------------- the step
S = 128


@pytest.fixture(scope="module")
def frames():
    return [np.asarray(Image.open(DATA_DIR / "bedroom" / f"{i:05d}.jpg").convert("RGB"))
            for i in range(23)]


@pytest.fixture(scope="module")
def model():
    return randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", S)),
                      seed=int(torch.randint(0, 2**31 - 1, ()))).eval()


SYNC_OPS = {"equal", "_local_scalar_dense", "nonzero", "is_nonzero", "masked_select", "unique",
            "_unique", "_unique2", "unique_dim", "unique_consecutive", "bincount", "histc", "item",
            "allclose", "nonzero_numpy", "argwhere"}


class FailOnSync(TorchDispatchMode):
    """Fails on any op that makes the host wait for the device (a data-dependent output size
    or a scalar read back), including boolean-mask indexing."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNC_OPS:
            raise AssertionError(f"host-synchronising op in a tracking step: aten.{name}")
        if name in ("index", "index_put", "index_put_") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool
                for i in (args[1] if len(args) > 1 else ()) if i is not None):
            raise AssertionError(f"boolean-mask indexing in a tracking step: aten.{name}")
        if name == "repeat_interleave" and isinstance(args[0], torch.Tensor) and \
                (kwargs or {}).get("output_size") is None and len(args) > 1 and \
                isinstance(args[1], torch.Tensor):
            raise AssertionError("repeat_interleave with tensor repeats and no output_size")
        return func(*args, **(kwargs or {}))


def test_steady_state_steps_do_not_sync(model, frames):
    """6 steady-state frames (bank full: 6 tracked memories and 15 pointers; 2 objects, hole
    filling on) of a stream and of the offline predictor run under a dispatch mode that fails
    on every synchronising op."""
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state(fill_hole_area=8)
    prompts = {1: {"points": [[210, 350]], "labels": [1]}, 2: {"box": [480, 180, 720, 460]}}
    for i in range(17):
        sam.predict_video_frame(state, frames[i], prompts if i == 0 else None)
    bank = sam._tracker.core.bank(2, (S // 16, S // 16))
    assert bank.full
    with torch.inference_mode(), FailOnSync():
        outs = [sam.predict_video_frame(state, frames[i]) for i in range(17, 23)]
    assert [o.frame_idx for o in outs] == list(range(17, 23))

    from sam2_fast.predictors.video import Sam2VideoPredictor

    pred = Sam2VideoPredictor(model, fill_hole_area=8)
    st = pred.init_state(frames)
    for o, p in prompts.items():
        pred.add_new_points_or_box(st, 0, o, points=p.get("points"), labels=p.get("labels"),
                                   box=p.get("box"))
    it = pred.propagate_in_video(st)
    for _ in range(17):
        next(it)
    assert pred.core.bank(2, (S // 16, S // 16)).full
    with torch.inference_mode(), FailOnSync():
        got = [next(it)[0] for _ in range(6)]
    assert got == list(range(17, 23))


@pytest.mark.gpu
def test_steady_state_steps_do_not_sync_on_cuda(frames):
    """The same 6 steady-state steps on CUDA under ``torch.cuda.set_sync_debug_mode("error")``
    (frames already on the device as uint8 tensors: the upload is the input pipeline's)."""
    model = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", 256)), seed=0)
    model = model.to("cuda").eval()
    dev_frames = [torch.from_numpy(f.copy()).cuda() for f in frames]
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state(fill_hole_area=8)
    prompts = {1: {"points": [[210, 350]], "labels": [1]}, 2: {"box": [480, 180, 720, 460]}}
    for i in range(17):
        sam.predict_video_frame(state, dev_frames[i], prompts if i == 0 else None)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        outs = [sam.predict_video_frame(state, dev_frames[i]) for i in range(17, 23)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert [o.frame_idx for o in outs] == list(range(17, 23))
    assert outs[-1].mask_logits.is_cuda


def test_sync_detector_fails_on_the_old_hole_filling():
    """The dispatch mode catches what the old iterative connected-components pass did."""
    with pytest.raises(AssertionError, match="equal"), FailOnSync():
        connected_components(torch.rand(1, 1, 16, 16) < 0.5)


def test_bank_is_full_and_static_in_steady_state(model, frames):
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state()
    seen = []
    for i in range(20):
        sam.predict_video_frame(state, frames[i], {1: {"points": [[210, 350]], "labels": [1]}} if i == 0 else None)
        bank = sam._tracker.core.bank(1, (S // 16, S // 16))
        seen.append((bank.memory.data_ptr(), bank.num_tokens, bank.num_obj_ptr_tokens, bank.full))
    steady = seen[model.config.max_obj_ptrs_in_encoder:]  # 15 tracked pointers from frame 16 on
    assert not seen[15][3]
    assert len(set(steady)) == 1 and steady[0][3]
    hw = (S // 16) ** 2
    # the conditioning frame + 6 tracked frames, 1 + 15 pointers of 4 tokens each
    assert seen[-1][1] == 7 * hw + 16 * 4 and seen[-1][2] == 16 * 4
    assert not seen[10][3]


# ----------------------------------------------------------------------------- stride 2


def test_parity_stride_2_offline_and_streaming(tmp_path, frames):
    """memory_temporal_stride_for_eval = 2: our offline predictor vs the official frame by frame
    (forwards, then in reverse from the middle), then the stream vs our offline predictor."""
    n = 16
    pair = VideoPair(tmp_path, "sam2.1_hiera_tiny", S, n, seed=5, score_shift=1.2,
                     config_overrides={"memory_temporal_stride_for_eval": 2})
    pair.add_points(0, 1, points=[[600, 300]], labels=[1])
    assert pair.propagate() == list(range(n))
    pair.add_points(12, 2, box=[80, 60, 330, 300])
    assert pair.propagate(start_frame_idx=12, reverse=True) == list(range(12, -1, -1))
    print("\n" + pair.report())
    assert pair.positive_score_frames() >= 6

    from sam2_fast.predictors.video import Sam2VideoPredictor

    model = pair.ours.model
    assert model.config.memory_temporal_stride_for_eval == 2
    all_frames = [np.asarray(Image.open(DATA_DIR / "bedroom" / f"{i:05d}.jpg").convert("RGB"))
                  for i in range(n)]
    pred = Sam2VideoPredictor(model)
    st = pred.init_state(all_frames)
    pred.add_new_points_or_box(st, 0, 1, points=[[600, 300]], labels=[1])
    ref = {f: m.clone() for f, _, m in pred.propagate_in_video(st)}
    sam = sam2_fast.Sam2(model)
    state = sam.new_video_state(num_frames=n)
    for i, fr in enumerate(all_frames):
        out = sam.predict_video_frame(state, fr, {1: {"points": [[600, 300]], "labels": [1]}} if i == 0 else None)
        assert_close_rel(out.mask_logits, ref[i], "video_late_frame", what="stream vs offline, stride 2")
    # the stream keeps the strided frames the next steps read, not just the last six
    kept = sorted(f for f, e in state.groups[0].non_cond.items() if e.maskmem_features is not None)
    assert kept == [6, 8, 10, 12, 14, 15]


def test_first_layer_self_attention_once_for_all_objects(model):
    """Objects of one frame share the first layer's self-attention (their queries are the same
    frame broadcast): computed for one row, equal to computing it for every row."""
    ma = model.memory_attention
    hw, B = (S // 16) ** 2, 3
    curr = torch.randn(hw, 1, 256).expand(hw, B, 256)
    pos = torch.randn(hw, 1, 256).expand(hw, B, 256)
    mem = torch.randn(2 * hw + 8, B, 64)
    mpos = torch.randn(2 * hw + 8, B, 64)
    seen = []
    hook = ma.layers[0].self_attn.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    with torch.inference_mode():
        shared = ma(curr, mem, pos, mpos, num_obj_ptr_tokens=8, feat_hw=(S // 16, S // 16))
        full = ma(curr.contiguous(), mem, pos.contiguous(), mpos, num_obj_ptr_tokens=8,
                  feat_hw=(S // 16, S // 16))
    hook.remove()
    assert seen == [1, B]
    assert_close_rel(shared, full, "module", what="shared first-layer self-attention")
