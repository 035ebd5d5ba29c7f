"""Frame loading, bad input to the video predictor, hole filling, clear_non_cond_mem_around_input,
dtypes (no upstream #308), offloading. Small and fast: tiny model at image_size 128."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.official import build_official, save_checkpoint
from tests.video_parity import BEDROOM, frames_dir

from sam2_fast.io.frames import list_frame_files, load_video_frames
from sam2_fast.predictors.video import (
    Sam2VideoPredictor,
    build_sam2_video_predictor,
    connected_components,
    fill_holes_in_mask_scores,
)

S = 128
VIDEO_MP4 = BEDROOM.parent / "videos" / "bedroom.mp4"


# ----------------------------------------------------------------------------- frames
def test_frames_folder_matches_official_loader(tmp_path):
    from sam2.utils.misc import load_video_frames as official_load

    d = frames_dir(tmp_path, 5)
    ours, h, w = load_video_frames(d, S)
    ref, rh, rw = official_load(d, S, False, compute_device=torch.device("cpu"))
    assert (h, w) == (rh, rw) == (540, 960)
    assert ours.dtype == torch.float32 and ours.shape == (5, 3, S, S)
    assert torch.equal(ours, ref)


def test_frames_list_and_mp4(tmp_path):
    d = frames_dir(tmp_path, 3)
    ref, _, _ = load_video_frames(d, S)
    arrays = [np.array(Image.open(p).convert("RGB")) for p in list_frame_files(d)]
    from_list, h, w = load_video_frames(arrays, S)
    assert (h, w) == (540, 960) and torch.equal(from_list, ref)
    vid, h, w = load_video_frames(str(VIDEO_MP4), S)
    assert (h, w) == (540, 960) and vid.shape[1:] == (3, S, S) and vid.shape[0] >= 3
    # the mp4 and the JPEG frames are the same video up to compression
    assert (vid[:3] - ref).abs().mean() < 0.1


def test_frames_numeric_sort(tmp_path):
    for i in (10, 2, 1):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"{i}.jpg")
    assert [Path(p).name for p in list_frame_files(tmp_path)] == ["1.jpg", "2.jpg", "10.jpg"]


def test_frames_bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no JPEG/PNG frames"):
        load_video_frames(empty, S)
    with pytest.raises(ValueError, match="does not exist"):
        load_video_frames(tmp_path / "missing", S)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "00000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(RuntimeError, match="cannot read video frame"):
        load_video_frames(bad, S)
    mp4 = tmp_path / "broken.mp4"
    mp4.write_bytes(b"\x00" * 64 + b"garbage" * 100)
    with pytest.raises(RuntimeError, match="cannot decode video file"):
        load_video_frames(mp4, S)
    with pytest.raises(ValueError, match="empty"):
        load_video_frames([], S)
    with pytest.raises(ValueError, match="uint8"):
        load_video_frames([np.zeros((8, 8, 3), np.float32)], S)


# ----------------------------------------------------------------------------- hole filling
def _bfs_components(m: torch.Tensor):
    h, w = m.shape
    area = torch.zeros(h, w, dtype=torch.long)
    seen = torch.zeros(h, w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            if m[i, j] and not seen[i, j]:
                q, pix = deque([(i, j)]), [(i, j)]
                seen[i, j] = True
                while q:
                    a, b = q.popleft()
                    for da in (-1, 0, 1):
                        for db in (-1, 0, 1):
                            x, y = a + da, b + db
                            if 0 <= x < h and 0 <= y < w and m[x, y] and not seen[x, y]:
                                seen[x, y] = True
                                q.append((x, y))
                                pix.append((x, y))
                for p in pix:
                    area[p] = len(pix)
    return area


def test_connected_components_match_bfs():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(2, 1, 24, 31, generator=g) < 0.45
    labels, areas = connected_components(m)
    for n in range(2):
        assert torch.equal(areas[n, 0], _bfs_components(m[n, 0]))
        # one label per component
        pairs = set(zip(labels[n, 0][m[n, 0]].tolist(), areas[n, 0][m[n, 0]].tolist()))
        assert len({lab for lab, _ in pairs}) == len(pairs)
    assert (labels[~m] == 0).all() and (areas[~m] == 0).all()


def test_fill_holes_in_mask_scores():
    m = torch.full((1, 1, 20, 20), 5.0)
    m[0, 0, 3:5, 3:5] = -2.0  # hole of 4 pixels -> filled
    m[0, 0, 10:13, 10:13] = -3.0  # hole of 9 pixels -> kept with max_area 8
    out = fill_holes_in_mask_scores(m, 8)
    assert (out[0, 0, 3:5, 3:5] == 0.1).all()
    assert (out[0, 0, 10:13, 10:13] == -3.0).all()
    assert torch.equal(out[m > 0], m[m > 0])
    with pytest.raises(ValueError):
        fill_holes_in_mask_scores(m, 0)


# ----------------------------------------------------------------------------- predictor
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    off = build_official("sam2.1_hiera_tiny", image_size=S, video=True, seed=4)
    with torch.no_grad():
        off.sam_mask_decoder.pred_obj_score_head.layers[2].bias += 0.5
    return save_checkpoint(off, d)[1]


@pytest.fixture(scope="module")
def video6(tmp_path_factory):
    return frames_dir(tmp_path_factory.mktemp("v"), 6)


def _predictor(ckpt, **kw):
    return build_sam2_video_predictor("sam2.1_hiera_tiny", ckpt, device="cpu", image_size=S,
                                      backend="torch", **kw)


def test_bad_inputs_leave_state_usable(tiny_ckpt, video6):
    pred = _predictor(tiny_ckpt)
    st = pred.init_state(video6)
    with pytest.raises(RuntimeError, match="No input points or masks"):
        next(pred.propagate_in_video(st))
    with pytest.raises(ValueError, match="frame_idx=6 is out of range"):
        pred.add_new_points_or_box(st, 6, 1, points=[[10, 10]], labels=[1])
    with pytest.raises(ValueError, match="out of range"):
        pred.add_new_points_or_box(st, -1, 1, points=[[10, 10]], labels=[1])
    with pytest.raises(ValueError, match="clear_old_points"):
        pred.add_new_points_or_box(st, 0, 1, box=[0, 0, 50, 50], clear_old_points=False)
    with pytest.raises(ValueError, match="together"):
        pred.add_new_points_or_box(st, 0, 1, points=[[10, 10]])
    with pytest.raises(ValueError, match="at least one"):
        pred.add_new_points_or_box(st, 0, 1)
    with pytest.raises(ValueError, match="labels must be"):
        pred.add_new_points_or_box(st, 0, 1, points=[[10, 10], [20, 20]], labels=[1])
    with pytest.raises(ValueError, match="box must hold 4"):
        pred.add_new_points_or_box(st, 0, 1, box=[0, 0, 50])
    with pytest.raises(ValueError, match="mask has size"):
        pred.add_new_mask(st, 0, 1, np.ones((100, 100), bool))
    with pytest.raises(ValueError, match="2-D"):
        pred.add_new_mask(st, 0, 1, np.ones((1, 540, 960), bool))
    with pytest.raises(ValueError, match="out of range"):
        pred.add_new_mask(st, 99, 1, np.ones((540, 960), bool))
    with pytest.raises(RuntimeError, match="doesn't exist"):
        pred.remove_object(st, 42, strict=True)
    assert pred.remove_object(st, 42) == ([], [])
    # nothing was registered by the failed calls
    assert st["obj_ids"] == [] and st["point_inputs_per_obj"] == {}
    with pytest.raises(RuntimeError, match="No input points or masks"):
        next(pred.propagate_in_video(st))
    # the state still works
    f, ids, masks = pred.add_new_points_or_box(st, 0, 1, points=[[600, 300]], labels=[1])
    assert f == 0 and ids == [1] and masks.shape == (1, 1, 540, 960)
    with pytest.raises(ValueError, match="start_frame_idx=10 is out of range"):
        next(pred.propagate_in_video(st, start_frame_idx=10))
    out = list(pred.propagate_in_video(st, max_frame_num_to_track=2))
    assert [o[0] for o in out] == [0, 1, 2]
    with pytest.raises(RuntimeError, match="doesn't exist"):
        pred.remove_object(st, 7, strict=True)
    with pytest.raises(ValueError, match="frame_idx=100 is out of range"):
        pred.clear_all_prompts_in_frame(st, 100, 1)
    with pytest.raises(ValueError, match=r"obj_id 77 is not tracked \(objects: \[1\]\)"):
        pred.clear_all_prompts_in_frame(st, 0, 77)  # the official would add a phantom object
    assert st["obj_ids"] == [1]
    assert [o[0] for o in pred.propagate_in_video(st, start_frame_idx=2)] == [2, 3, 4, 5]


def test_prompt_after_clearing_only_prompt(tiny_ckpt, video6):
    """The official fails an assertion when an object whose only prompt was cleared gets a click
    on a frame it was tracked on; ours treats the click as a new initial prompt."""
    pred = _predictor(tiny_ckpt)
    st = pred.init_state(video6)
    pred.add_new_points_or_box(st, 0, 1, points=[[600, 300]], labels=[1])
    list(pred.propagate_in_video(st, max_frame_num_to_track=2))
    pred.clear_all_prompts_in_frame(st, 0, 1)
    with pytest.raises(RuntimeError, match="object id 1"):
        next(pred.propagate_in_video(st))
    _, ids, m = pred.add_new_points_or_box(st, 1, 1, points=[[600, 300]], labels=[1])
    assert ids == [1] and 1 in st["temp_output_dict_per_obj"][0]["cond_frame_outputs"]
    assert [f for f, _, _ in pred.propagate_in_video(st, max_frame_num_to_track=1)] == [1, 2]


def test_init_state_bad_video(tiny_ckpt, tmp_path):
    pred = _predictor(tiny_ckpt)
    (tmp_path / "e").mkdir()
    with pytest.raises(ValueError, match="no JPEG/PNG frames"):
        pred.init_state(str(tmp_path / "e"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x01\x02" * 500)
    with pytest.raises(RuntimeError, match="cannot decode"):
        pred.init_state(str(bad))


def test_clear_non_cond_mem_around_input(tiny_ckpt, tmp_path):
    """The official calls a missing method here (#571); ours drops the object's tracked memories
    that the steps next to a prompted frame would read (frames t-5..t-1 forwards and t+1..t+5
    in reverse with num_maskmem 7 and stride 1), keeps the prompted frame, and keeps tracking."""
    video = frames_dir(tmp_path, 12)
    pred = _predictor(tiny_ckpt, clear_non_cond_mem_around_input=True)
    st = pred.init_state(video)
    pred.add_new_points_or_box(st, 0, 1, points=[[600, 300]], labels=[1])
    pred.add_new_points_or_box(st, 0, 2, box=[80, 60, 330, 300])
    assert len(list(pred.propagate_in_video(st))) == 12
    non_cond_1 = st["output_dict_per_obj"][0]["non_cond_frame_outputs"]
    non_cond_2 = st["output_dict_per_obj"][1]["non_cond_frame_outputs"]
    assert sorted(non_cond_1) == list(range(1, 12))
    # a correction on frame 9 for object 1
    pred.add_new_points_or_box(st, 9, 1, points=[[300, 200]], labels=[0])
    pred.propagate_in_video_preflight(st)
    assert pred.model.num_maskmem == 7 and pred.model.config.memory_temporal_stride_for_eval == 1
    assert 9 in non_cond_1  # the correction itself is kept
    assert sorted(non_cond_1) == [1, 2, 3, 9]  # 4..8 and 10..11 were read next to frame 9
    assert sorted(non_cond_2) == list(range(1, 12))  # other objects untouched
    frames = [f for f, _, m in pred.propagate_in_video(st, start_frame_idx=9)]
    assert frames == [9, 10, 11]
    assert sorted(non_cond_1) == [1, 2, 3, 9, 10, 11]


def test_memory_stays_in_model_dtype_and_bf16_option(tiny_ckpt, video6):
    """No upstream #308: an fp32 model keeps fp32 memories; memory_dtype=bfloat16 stores bf16
    memories explicitly (the official's storage) and still computes in fp32."""
    pred = _predictor(tiny_ckpt)
    st = pred.init_state(video6)
    pred.add_new_points_or_box(st, 0, 1, points=[[600, 300]], labels=[1])
    ref = [m for _, _, m in pred.propagate_in_video(st)]
    mem = st["output_dict_per_obj"][0]["non_cond_frame_outputs"][3]["maskmem_features"]
    assert mem.dtype == torch.float32

    pred16 = _predictor(tiny_ckpt, memory_dtype=torch.bfloat16)
    st16 = pred16.init_state(video6)
    pred16.add_new_points_or_box(st16, 0, 1, points=[[600, 300]], labels=[1])
    out16 = [m for _, _, m in pred16.propagate_in_video(st16)]
    assert st16["output_dict_per_obj"][0]["non_cond_frame_outputs"][3][
        "maskmem_features"].dtype == torch.bfloat16
    assert all(m.dtype == torch.float32 for m in out16)
    agree = np.mean([((a > 0) == (b > 0)).float().mean().item() for a, b in zip(out16, ref)])
    assert agree > 0.9


def test_bf16_model_end_to_end(tiny_ckpt, video6):
    """A bf16 model tracks in bf16 end to end (memories in bf16 too), close to fp32."""
    pred = _predictor(tiny_ckpt)
    st = pred.init_state(video6)
    pred.add_new_points_or_box(st, 0, 1, points=[[600, 300]], labels=[1])
    ref = [m for _, _, m in pred.propagate_in_video(st, max_frame_num_to_track=3)]
    predbf = build_sam2_video_predictor("sam2.1_hiera_tiny", tiny_ckpt, device="cpu",
                                        image_size=S, dtype=torch.bfloat16, backend="torch")
    stbf = predbf.init_state(video6)
    predbf.add_new_points_or_box(stbf, 0, 1, points=[[600, 300]], labels=[1])
    outbf = [m for _, _, m in predbf.propagate_in_video(stbf, max_frame_num_to_track=3)]
    assert stbf["output_dict_per_obj"][0]["non_cond_frame_outputs"][3][
        "maskmem_features"].dtype == torch.bfloat16
    assert len(outbf) == 4 and all(torch.isfinite(m).all() for m in outbf)
    # bf16 agrees with fp32 on the sign of most pixels
    agree = np.mean([((a > 0) == (b > 0)).float().mean().item() for a, b in zip(outbf, ref)])
    assert agree > 0.9


def test_offload_and_frame_list_and_reset(tiny_ckpt, video6):
    pred = _predictor(tiny_ckpt, fill_hole_area=8)
    st = pred.init_state(video6, async_loading_frames=True)
    assert st["num_frames"] == 6 and (st["video_height"], st["video_width"]) == (540, 960)
    pred.add_new_points_or_box(st, 0, 1, points=[[600, 300]], labels=[1])
    ref = [m for _, _, m in pred.propagate_in_video(st, max_frame_num_to_track=3)]
    arrays = [np.array(Image.open(p).convert("RGB")) for p in list_frame_files(video6)]
    st2 = pred.init_state(arrays, offload_video_to_cpu=True, offload_state_to_cpu=True)
    assert st2["storage_device"] == torch.device("cpu")
    pred.add_new_points_or_box(st2, 0, 1, points=[[600, 300]], labels=[1])
    out = [m for _, _, m in pred.propagate_in_video(st2, max_frame_num_to_track=3)]
    assert len(out) == len(ref) == 4
    for a, b in zip(out, ref):
        assert torch.equal(a, b)
    # hole filling was applied to every stored low-res mask
    for o in st["output_dict_per_obj"][0]["non_cond_frame_outputs"].values():
        assert torch.equal(fill_holes_in_mask_scores(o["pred_masks"], 8), o["pred_masks"])
    pred.reset_state(st)
    assert st["obj_ids"] == [] and st["output_dict_per_obj"] == {}
    f, ids, m = pred.add_new_points_or_box(st, 2, 5, box=[80, 60, 330, 300])
    assert ids == [5] and [x[0] for x in pred.propagate_in_video(st)] == [2, 3, 4, 5]


def test_async_frame_loader(video6):
    from sam2_fast.io.frames import AsyncFrameLoader

    ref, h, w = load_video_frames(video6, S)
    lazy = AsyncFrameLoader(video6, S)
    assert len(lazy) == 6 and (lazy.video_height, lazy.video_width) == (h, w)
    assert torch.equal(lazy[5], ref[5])
    lazy.join(30)
    assert all(torch.equal(lazy[i], ref[i]) for i in range(6))


def test_constructor_options():
    with pytest.raises(ValueError, match="fill_hole_area"):
        Sam2VideoPredictor(torch.nn.Linear(1, 1), fill_hole_area=-1)


def test_lazy_frames_keep_memory_flat(tmp_path):
    """lazy_frames=True reads frames on demand and holds at most 16 (long videos): a folder, a
    video file or a list of frames."""
    import shutil

    import torch

    from sam2_fast.checkpoint import randomize_
    from sam2_fast.config import get_config
    from sam2_fast.io.frames import LazyFrameLoader, load_video_frames
    from sam2_fast.model.sam2_model import Sam2Model
    from sam2_fast.predictors.video import Sam2VideoPredictor

    src = Path(BEDROOM)
    for i in range(20):
        shutil.copy(src / f"{i:05d}.jpg", tmp_path / f"{i:05d}.jpg")
    eager, h, w = load_video_frames(tmp_path, 64)
    lazy = LazyFrameLoader(tmp_path, 64)
    assert (lazy.video_height, lazy.video_width) == (h, w) and len(lazy) == 20
    for i in (5, 19, 0, 7):
        assert torch.equal(lazy[i], eager[i])
    for i in range(20):
        lazy[i]
    assert len(lazy._cache) == 16
    model = randomize_(Sam2Model(get_config("sam2.1_hiera_tiny", 64)), seed=2).eval()
    pred = Sam2VideoPredictor(model)
    st = pred.init_state(str(tmp_path), lazy_frames=True)
    pred.add_new_points_or_box(st, 0, 1, points=[[210, 350]], labels=[1])
    n = sum(1 for _ in pred.propagate_in_video(st, max_frame_num_to_track=19))
    assert n == 20 and len(st["images"]._cache) <= 16
    # a video file and a list of frames are read lazily too (decoded on demand)
    st = pred.init_state(str(VIDEO_MP4), lazy_frames=True)
    assert st["num_frames"] == 200 and (st["video_height"], st["video_width"]) == (540, 960)
    assert len(st["images"]._cache) == 1
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pred.init_state([np.ones((8, 8), np.uint8)], lazy_frames=True)
