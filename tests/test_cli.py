"""The ``sam2-fast`` command line (sam2_fast.cli) and the checkpoint hub (sam2_fast.hub).

Runs ``main([...])`` in-process (fast) on a random tiny SAM 2.1 checkpoint at 64 px, the real
``../shared/data`` frames/video/images, and once through the installed console script.
Bad input must exit 2 with one ``sam2-fast: error:`` line and leave no output behind.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_fast import hub
from sam2_fast.checkpoint import load_state_dict
from sam2_fast.cli import main
from sam2_fast.io.masks import DAVIS_PALETTE, decode_rle, load_palette_png, read_video_frames

from cli_helpers import assert_bad as _assert_bad
from official import DATA_DIR
from cli_helpers import entries as _entries

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

DATA = DATA_DIR
BEDROOM = DATA / "bedroom"
BEDROOM_MP4 = DATA / "videos" / "bedroom.mp4"
IMAGE = DATA / "images" / "truck.jpg"
needs_data = pytest.mark.skipif(not BEDROOM.is_dir(), reason="../shared/data not available")

SMALL = ["--image-size", "64", "--quiet"]


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    """A random-weight sam2.1_hiera_tiny checkpoint written by the CLI itself."""
    p = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    assert main(["checkpoint", "--random", "sam2.1_hiera_tiny", str(p), "--seed", "1"]) == 0
    return p


# ============================================================================ checkpoints
def test_checkpoint_info_convert(ckpt, tmp_path, capsys):
    capsys.readouterr()
    assert main(["info", str(ckpt), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["config"] == "sam2.1_hiera_tiny" and rec["version"] == "2.1"
    assert rec["variant"] == "tiny" and rec["dtype"] == "float32"
    assert rec["parameters"] == hub.MODEL_NUMEL["sam2.1_hiera_tiny"] and rec["random_weights"]
    lo, hi = hub.expected_size_range("sam2.1_hiera_tiny")
    assert lo <= ckpt.stat().st_size <= hi  # the official layout ({"model": sd}, float32)
    # official loader layout: obj["model"] holds the state dict
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert set(obj) == {"model", "sam2_fast"}

    st = tmp_path / "tiny.safetensors"
    back = tmp_path / "back.pt"
    assert main(["convert", str(ckpt), str(st)]) == 0
    assert main(["convert", str(st), str(back)]) == 0
    a, b, c = load_state_dict(ckpt), load_state_dict(st), load_state_dict(back)
    assert set(a) == set(b) == set(c)  # same keys (safetensors stores them sorted)
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    capsys.readouterr()
    assert main(["info", str(st), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["format"] == "safetensors" and rec["random_weights"] and rec["config"] == "sam2.1_hiera_tiny"
    assert main(["info", str(back)]) == 0
    assert "random_weights  True" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.pt", "tiny.safetensors"]


@needs_data
def test_info_says_whether_a_checkpoint_would_load(ckpt, tmp_path, capsys):
    """A published model with a key missing and one extra: info still describes it but says it
    would not load and why; a command that loads it names the file in its one-line error."""
    sd = load_state_dict(ckpt)
    del sd["no_mem_embed"]
    sd["bogus.weight"] = torch.ones(2)
    bad = tmp_path / "damaged.pt"
    torch.save({"model": sd}, bad)
    capsys.readouterr()
    assert main(["info", str(bad), "--json"]) == 0
    cap = capsys.readouterr()
    rec = json.loads(cap.out)
    assert rec["config"] == "sam2.1_hiera_tiny" and rec["loadable"] is False
    assert rec["problem"] == ("damaged.pt: checkpoint does not match sam2.1_hiera_tiny: missing keys (1): "
                              "no_mem_embed; unexpected keys (1): bogus.weight")
    assert rec["problem"] in cap.err
    assert main(["info", str(ckpt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loadable"] is True
    _assert_bad(capsys, ["image", str(IMAGE), "--checkpoint", str(bad), "--point", "10,10", "--out",
                         str(tmp_path / "o"), *SMALL], "damaged.pt: checkpoint does not match", tmp_path)


def test_info_model_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAM2_FAST_CACHE", str(tmp_path))
    assert main(["info", "sam2_hiera_b+", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["model"] == "sam2_hiera_base_plus" and not rec["cached"]
    assert rec["url"] == "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_base_plus.pt"
    assert rec["cache_path"] == str(tmp_path / "sam2_hiera_base_plus.pt")


# ============================================================================ video
@needs_data
def test_video_main_job_on_bedroom(ckpt, tmp_path, capsys):
    """The README's main job on 3 frames: palette PNGs + RLE JSON + a playable overlay mp4."""
    out = tmp_path / "out"
    rc = main(["video", str(BEDROOM), "--checkpoint", str(ckpt), "--point", "1:0:210,350",
               "--box", "2:0:500,200,700,400", "--out", str(out), "--overlay",
               str(out / "overlay.mp4"), "--format", "both", "--max-frames", "3", "--image-size", "64"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "random weights" in cap.err  # warned
    assert "3 frames" in cap.out
    names = _entries(out)
    assert names == ["00000.json", "00000.png", "00001.json", "00001.png", "00002.json",
                     "00002.png", "overlay.mp4", "run.json"]
    for i in range(3):
        mask, pal = load_palette_png(out / f"{i:05d}.png")
        assert mask.shape == (540, 960) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1, 2} and bytes(pal[:768]) == DAVIS_PALETTE
        with Image.open(out / f"{i:05d}.png") as im:
            assert "RANDOM" in im.info["sam2_fast"]
        rec = json.loads((out / f"{i:05d}.json").read_text())
        assert rec["frame_index"] == i and [o["obj_id"] for o in rec["objects"]] == [1, 2]
        dec = decode_rle([o["segmentation"] for o in rec["objects"]])
        assert dec.shape == (2, 540, 960)
        # the PNG is the RLE masks packed with the lower id on top
        packed = np.where(dec[0], 1, np.where(dec[1], 2, 0))
        assert (packed == mask).all()
    frames = list(read_video_frames(out / "overlay.mp4"))
    assert len(frames) == 3 and frames[0].shape == (540, 960, 3)
    run = json.loads((out / "run.json").read_text())
    assert run["random_weights"] and run["num_frames_written"] == 3 and run["frames"] == [0, 2]
    assert _entries(tmp_path) == ["out"]  # no staging folder left


@needs_data
def test_video_mp4_reverse_overlay_outside(ckpt, tmp_path):
    out, ov = tmp_path / "masks", tmp_path / "vis" / "ov.mp4"
    rc = main(["video", str(BEDROOM_MP4), "--weights", str(ckpt), "--point", "3:4:300,200",
               "--point", "3:4:320,220:0", "--out", str(out), "--overlay", str(ov), "--reverse",
               "--max-frames", "2", "--fps", "12", *SMALL])
    assert rc == 0
    assert _entries(out) == ["00003.png", "00004.png", "run.json"]
    assert set(np.unique(load_palette_png(out / "00004.png")[0])) <= {0, 3}
    assert len(list(read_video_frames(ov))) == 2
    assert _entries(tmp_path) == ["masks", "vis"]


@needs_data
def test_video_dry(ckpt, tmp_path, capsys):
    rc = main(["video", str(BEDROOM), "--checkpoint", str(ckpt), "--point", "1:0:210,350",
               "--out", str(tmp_path / "o"), "--dry", "--image-size", "128", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "sam2.1_hiera_tiny" in out and "RANDOM WEIGHTS" in out and "(N, 3, 128, 128)" in out
    assert "200 frames" in out and "backend" in out and "(1, 1, 540, 960)" in out
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_video_prompt_outside_the_tracked_frames_is_named(ckpt, tmp_path, capsys):
    """--reverse starts at the first prompted frame (the official default): a prompt on a later
    frame conditions the tracking as a memory, but its frame is not tracked, and the user is
    told so."""
    rc = main(["video", str(BEDROOM), "--checkpoint", str(ckpt), "--point", "1:2:210,350",
               "--point", "2:6:600,300", "--reverse", "--out", str(tmp_path / "o"), "--dry"])
    cap = capsys.readouterr()
    assert rc == 0
    assert "prompt on frame 6 lies outside the tracked frames 0..2" in cap.err
    assert "0..2 (reverse, 3 frames" in cap.out and "frame 2" not in cap.err


@needs_data
def test_video_write_failure_keeps_written_frames(ckpt, tmp_path, monkeypatch, capsys):
    """A write failure in the middle (disk full on frame 1): one clear line, exit 2, the frames
    written before it kept, run.json marks the run incomplete with the error; no overlay."""
    import sam2_fast.io.masks as masks_mod

    real = masks_mod.save_palette_png
    calls = []

    def flaky(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(masks_mod, "save_palette_png", flaky)
    out = tmp_path / "out"
    assert main(["video", str(BEDROOM), "--checkpoint", str(ckpt), "--point", "1:0:210,350",
                 "--out", str(out), "--overlay", str(tmp_path / "ov.mp4"), "--max-frames", "3",
                 *SMALL]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if "error" in ln]
    assert len(err) == 1 and "No space left" in err[0] and "complete: false" in err[0], err
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] is False and "No space left" in run["error"]
    assert run["num_frames_written"] == 1 and run["frames"] == [0, 0]
    assert sorted(p.name for p in out.glob("*.png")) == ["00000.png"]
    assert len(calls) == 2 and not (tmp_path / "ov.mp4").exists()
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("bad", ["unreadable", "other_size"])
def test_video_bad_frame_mid_video_keeps_written_frames(ckpt, tmp_path, capsys, monkeypatch, bad):
    """A frame that cannot be read, or has another size, in the middle of a folder: the frames
    before it are kept and run.json says the run is incomplete. Forward tracking streams: the
    whole video is never loaded (read_frames is not called)."""
    import sam2_fast.cli as cli_mod

    monkeypatch.setattr(cli_mod, "read_frames", lambda *a, **k: pytest.fail("loaded the video"))
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        shutil.copy(BEDROOM / f"{i:05d}.jpg", d / f"{i:05d}.jpg")
    if bad == "unreadable":
        (d / "00002.jpg").write_bytes(b"not a jpeg")
    else:
        Image.open(BEDROOM / "00002.jpg").resize((100, 60)).save(d / "00002.jpg")
    out = tmp_path / "out"
    assert main(["video", str(d), "--checkpoint", str(ckpt), "--point", "1:0:210,350",
                 "--out", str(out), *SMALL]) == 2
    assert "00002" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] is False and run["num_frames_written"] == 2
    assert sorted(p.name for p in out.glob("*.png")) == ["00000.png", "00001.png"]


@needs_data
def test_video_offline_reads_frames_on_demand_and_matches_the_predictor(ckpt, tmp_path, monkeypatch):
    """Prompts on two frames take the offline predictor: the frames are decoded when needed
    (read_frames is never called), the masks equal the video predictor's on preloaded frames,
    and the RLE records carry each object's score, as on the streaming path."""
    import sam2_fast.cli as cli_mod
    from sam2_fast.build import build_sam2_video_predictor
    from sam2_fast.io.masks import combine_object_masks

    monkeypatch.setattr(cli_mod, "read_frames", lambda *a, **k: pytest.fail("loaded the video"))
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(5):
        shutil.copy(BEDROOM / f"{i:05d}.jpg", d / f"{i:05d}.jpg")
    out = tmp_path / "out"
    assert main(["video", str(d), "--checkpoint", str(ckpt), "--point", "1:0:210,350",
                 "--point", "2:2:600,300", "--out", str(out), "--format", "both", *SMALL]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == "offline" and run["complete"] and run["frames"] == [0, 4]
    pred = build_sam2_video_predictor(None, str(ckpt), image_size=64)
    frames = [np.array(Image.open(d / f"{i:05d}.jpg").convert("RGB")) for i in range(5)]
    state = pred.init_state(frames)
    pred.add_new_points_or_box(state, 0, 1, points=np.array([[210, 350]], np.float32),
                               labels=np.array([1], np.int32))
    pred.add_new_points_or_box(state, 2, 2, points=np.array([[600, 300]], np.float32),
                               labels=np.array([1], np.int32))
    n = 0
    for idx, obj_ids, logits in pred.propagate_in_video(state):
        want = combine_object_masks((logits > 0).numpy()[:, 0], [int(o) for o in obj_ids])
        assert np.array_equal(load_palette_png(out / f"{idx:05d}.png")[0], want), idx
        rec = json.loads((out / f"{idx:05d}.json").read_text())
        assert [o["obj_id"] for o in rec["objects"]] == [1, 2]
        assert all(np.isfinite(o["object_score"]) for o in rec["objects"])
        n += 1
    assert n == 5


def _frame_records(out, frames):
    """{frame: (palette PNG, [object scores])} of a --format both run."""
    recs = {}
    for f in frames:
        rec = json.loads((out / f"{f:05d}.json").read_text())
        recs[f] = (load_palette_png(out / f"{f:05d}.png")[0], [o["object_score"] for o in rec["objects"]])
    return recs


@needs_data
def test_video_max_frames_does_not_change_the_masks(ckpt, tmp_path, capsys):
    """The video's whole length bounds the object-pointer window (its positional encoding is
    scaled by it), as the official inference state: tracking fewer frames, forward (stream) or
    backward (offline), gives the same masks and scores on the frames tracked, equal to the video
    predictor over the whole video. Reverse tracking from frame 0 writes frame 0."""
    from sam2_fast.build import build_sam2_video_predictor
    from sam2_fast.io.masks import combine_object_masks

    d = tmp_path / "frames"
    d.mkdir()
    for i in range(20):
        shutil.copy(BEDROOM / f"{i:05d}.jpg", d / f"{i:05d}.jpg")

    def run(name, *extra):
        out = tmp_path / name
        assert main(["video", str(d), "--checkpoint", str(ckpt), "--out", str(out), "--format", "both",
                     *extra, *SMALL]) == 0, capsys.readouterr().err
        return out, json.loads((out / "run.json").read_text())

    short, rs = run("fwd6", "--point", "1:0:210,350", "--max-frames", "6")
    full, rf = run("fwd20", "--point", "1:0:210,350")
    assert rs["engine"] == rf["engine"] == "streaming" and rs["frames"] == [0, 5]
    a, b = _frame_records(short, range(6)), _frame_records(full, range(6))
    for f in range(6):
        assert np.array_equal(a[f][0], b[f][0]) and a[f][1] == b[f][1], f
    short, rs = run("rev4", "--point", "1:12:210,350", "--reverse", "--max-frames", "4")
    full, rf = run("rev", "--point", "1:12:210,350", "--reverse")
    assert rs["engine"] == rf["engine"] == "offline"
    assert rs["frames"] == [9, 12] and rf["frames"] == [0, 12] and rf["num_frames_written"] == 13
    a, b = _frame_records(short, range(9, 13)), _frame_records(full, range(9, 13))
    pred = build_sam2_video_predictor(None, str(ckpt), image_size=64)
    state = pred.init_state(str(d))
    pred.add_new_points_or_box(state, 12, 1, points=np.array([[210, 350]], np.float32),
                               labels=np.array([1], np.int32))
    api = {idx: combine_object_masks((logits > 0).numpy()[:, 0], [1])
           for idx, _, logits in pred.propagate_in_video(state, max_frame_num_to_track=3, reverse=True)}
    assert sorted(api) == [9, 10, 11, 12]
    for f in range(9, 13):
        assert np.array_equal(a[f][0], b[f][0]) and a[f][1] == b[f][1], f
        assert np.array_equal(a[f][0], api[f]), f
    zero, rz = run("rev0", "--point", "1:0:210,350", "--reverse")
    assert rz["frames"] == [0, 0] and rz["num_frames_written"] == 1 and rz["complete"]
    assert sorted(p.name for p in zero.glob("*.png")) == ["00000.png"]


@needs_data
def test_video_offline_bad_frame_keeps_written_frames(ckpt, tmp_path, capsys):
    """Tracking backward over an unreadable frame: the frames tracked before it are kept,
    run.json says which and that the run is incomplete, exit 2 with one line."""
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        shutil.copy(BEDROOM / f"{i:05d}.jpg", d / f"{i:05d}.jpg")
    (d / "00001.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main(["video", str(d), "--checkpoint", str(ckpt), "--point", "1:3:210,350",
                 "--reverse", "--out", str(out), "--overlay", str(out / "ov.mp4"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "00001.jpg" in err and "complete: false" in err
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == "offline" and run["complete"] is False and "00001.jpg" in run["error"]
    assert run["num_frames_written"] == 2 and run["frames"] == [2, 3]
    assert sorted(p.name for p in out.glob("*.png")) == ["00002.png", "00003.png"]
    assert len(list(read_video_frames(out / "ov.mp4"))) == 2


@needs_data
@pytest.mark.parametrize("extra,match", [
    (["--bogus"], "unrecognized arguments"),
    (["--point", "1:0:210"], "malformed --point"),
    (["--point", "x:0:1,2"], "malformed --point"),
    (["--point", "1:0:1,2:7"], "LABEL"),
    (["--point", "0:0:1,2"], "the object id 0 must be in 1..255"),
    (["--box", "1:-1:1,2,3,4"], "the frame -1 must be >= 0"),
    (["--box", "1:0:5,5,1"], "malformed --box"),
    (["--box", "1:0:50,50,10,10"], "X1 >= X0"),
    (["--point", "1:0:2000,10"], "outside the 960x540 frame"),
    (["--box", "1:0:1000,10,1100,100"], "lies outside the 960x540 frame"),
    (["--point", "1:0:nan,10"], "NaN"),
    (["--point", "1:200:10,10"], "past the end"),
    (["--point", "1:0:10,10", "--start-frame", "250"], "past the end"),
    (["--point", "1:0:10,10", "--max-frames", "0"], "--max-frames"),
    (["--point", "1:0:10,10", "--image-size", "100"], "multiple of 32"),
    (["--point", "1:0:10,10", "--dtype", "int8"], "--dtype"),
    (["--point", "1:0:10,10", "--overlay", "x.gif"], "--overlay"),
    ([], "at least one --point"),
    pytest.param(["--point", "1:0:10,10", "--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
])
def test_video_bad_prompts(ckpt, tmp_path, capsys, extra, match, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # small defaults first (a case that wrongly passed would otherwise track 200 frames at 1024 px)
    _assert_bad(capsys, ["video", str(BEDROOM), "--checkpoint", str(ckpt), "--out", "out",
                         "--max-frames", "2", "--image-size", "64", "--quiet", *extra], match, tmp_path)


@needs_data
def test_video_bad_files(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trunc.pt").write_bytes(ckpt.read_bytes()[:4096])
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 10)
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("x")
    p = ["--point", "1:0:10,10"]
    cases = [
        (["video", str(BEDROOM), "--checkpoint", "missing.pt", *p, "--out", "o"], "not found"),
        (["video", str(BEDROOM), "--checkpoint", "trunc.pt", *p, "--out", "o"], "truncated"),
        (["video", str(BEDROOM), "--checkpoint", str(tmp_path / "afile"), *p, "--out", "o"], "checkpoint"),
        (["video", "junk.mp4", "--checkpoint", str(ckpt), *p, "--out", "o"], "cannot read video"),
        (["video", "nope.mp4", "--checkpoint", str(ckpt), *p, "--out", "o"], "not found"),
        (["video", "empty", "--checkpoint", str(ckpt), *p, "--out", "o"], "no JPEG/PNG frames"),
        (["video", str(BEDROOM), "--checkpoint", str(ckpt), *p, "--out", "afile/sub"], "output directory"),
        (["video", str(BEDROOM), "--checkpoint", str(ckpt), *p, "--out", "afile"], "output directory"),
        (["video", str(BEDROOM), "--checkpoint", str(ckpt), *p, "--out", "o", "--overlay", "afile/x.mp4"],
         "--overlay"),
        (["video", str(BEDROOM), "--checkpoint", str(ckpt), *p, "--out", "o", "--config",
          "sam2_hiera_large", *SMALL], "does not match"),
        (["video", str(BEDROOM), "--checkpoint", str(ckpt), "--model", "sam2.1_hiera_tiny", *p,
          "--out", "o"], "not allowed with"),
    ]
    for argv, match in cases:
        _assert_bad(capsys, argv, match, tmp_path)


# ============================================================================ image
@needs_data
def test_image_multimask(ckpt, tmp_path, capsys):
    out = tmp_path / "img"
    rc = main(["image", str(IMAGE), "--checkpoint", str(ckpt), "--point", "500,375",
               "--point", "100,100:0", "--multimask", "--out", str(out), "--image-size", "64"])
    assert rc == 0, capsys.readouterr().err
    assert _entries(out) == ["mask_0.png", "mask_1.png", "mask_2.png", "overlay.png", "result.json"]
    res = json.loads((out / "result.json").read_text())
    o = res["objects"][0]
    assert len(o["iou_predictions"]) == 3 and isinstance(o["object_score_logit"], float)
    assert res["random_weights"] and res["config"] == "sam2.1_hiera_tiny"
    with Image.open(IMAGE) as im:
        w, h = im.size
    m = np.asarray(Image.open(out / "mask_1.png"))
    assert m.shape == (h, w) and set(np.unique(m)) <= {0, 255}
    assert np.asarray(Image.open(out / "overlay.png")).shape == (h, w, 3)


@needs_data
def test_image_two_boxes(ckpt, tmp_path, capsys):
    out = tmp_path / "img"
    assert main(["image", str(IMAGE), "--checkpoint", str(ckpt), "--box", "10,10,300,300",
                 "--box", "400,200,700,500", "--out", str(out), "--image-size", "64"]) == 0
    assert _entries(out) == ["mask_0_0.png", "mask_1_0.png", "overlay.png", "result.json"]
    res = json.loads((out / "result.json").read_text())
    assert len(res["objects"]) == 2
    said = capsys.readouterr().out  # each object's numbers, not only the first one's
    for i, o in enumerate(res["objects"]):
        assert f"object {i}: IoU {o['iou_predictions'][0]:.3f}, object score {o['object_score_logit']:.3f}" in said


@needs_data
def test_image_bad_input(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    base = ["--checkpoint", str(ckpt), "--out", "o"]
    cases = [
        (["image", str(IMAGE), *base], "at least one --point"),
        (["image", str(IMAGE), *base, "--point", "1,2,3"], "malformed --point"),
        (["image", str(IMAGE), *base, "--point", "99999,1"], "outside"),
        (["image", str(IMAGE), *base, "--box", "1,2,3,4", "--box", "5,6,7,8", "--point", "3,3"], "one --box"),
        (["image", "bad.jpg", *base, "--point", "1,1"], "cannot read image"),
        (["image", "missing.jpg", *base, "--point", "1,1"], "not found"),
    ]
    for argv, match in cases:
        _assert_bad(capsys, argv, match, tmp_path)


@needs_data
def test_backend_from_the_environment_is_named(ckpt, tmp_path, capsys, monkeypatch):
    """SAM2_FAST_BACKEND overrides --backend auto; when it cannot run, or is not a backend, the
    message names the variable (not the --backend auto the user gave)."""
    argv = ["image", str(IMAGE), "--checkpoint", str(ckpt), "--point", "10,10", "--out", str(tmp_path / "o"),
            "--device", "cpu", *SMALL]
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("SAM2_FAST_BACKEND", "triton")
    _assert_bad(capsys, argv, "SAM2_FAST_BACKEND=triton needs CUDA tensors", tmp_path)
    monkeypatch.setenv("SAM2_FAST_BACKEND", "bogus")
    _assert_bad(capsys, argv, "SAM2_FAST_BACKEND='bogus': must be one of", tmp_path)


# ============================================================================ other commands
def test_checkpoint_and_convert_bad_input(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["checkpoint", "sam2.1_hiera_tiny", "x.pt"], "--random"),
        (["checkpoint", "--random", "sam2.1_hiera_huge", "x.pt"], "unknown SAM 2 config"),
        (["checkpoint", "--random", "sam2.1_hiera_tiny", "x.bin"], "unknown checkpoint format"),
        (["convert", str(ckpt), "x.onnx"], "unknown checkpoint format"),
        (["convert", "missing.pt", "x.safetensors"], "not found"),
        (["info", "missing.pt"], "not found"),
        ([], "required"),
        # an existing OUT (it could be a real checkpoint) is replaced only with --overwrite
        (["checkpoint", "--random", "sam2.1_hiera_tiny", "real.pt"], "exists: pass --overwrite"),
        (["convert", str(ckpt), "real.pt"], "exists: pass --overwrite"),
    ]
    (tmp_path / "real.pt").write_bytes(b"precious")
    for argv, match in cases:
        _assert_bad(capsys, argv, match, tmp_path)
    assert (tmp_path / "real.pt").read_bytes() == b"precious"
    assert main(["convert", str(ckpt), "real.pt", "--overwrite"]) == 0
    assert main(["convert", "real.pt", "copy.safetensors"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("real.pt", "copy.safetensors"):  # plain files, as the umask says
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# ============================================================================ hub
def test_hub_urls_and_sizes():
    assert len(hub.MODEL_URLS) == 8
    for name, url in hub.MODEL_URLS.items():
        date = "092824" if name.startswith("sam2.1") else "072824"
        assert url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{date}/{name}.pt"
    assert hub.canonical_name("sam2.1_hiera_t.yaml") == "sam2.1_hiera_tiny"
    with pytest.raises(hub.HubError, match="sam2.1_hiera_large"):
        hub.canonical_name("sam3")
    from sam2_fast.config import CONFIGS
    from sam2_fast.model.sam2_model import Sam2Model

    for name, cfg in CONFIGS.items():
        with torch.device("meta"):
            model = Sam2Model(cfg.with_image_size(64))
        assert sum(v.numel() for v in model.state_dict().values()) == hub.MODEL_NUMEL[name], name


def test_hub_offline_fails_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAM2_FAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAM2_FAST_OFFLINE", "1")
    with pytest.raises(hub.HubError) as e:
        hub.fetch_checkpoint("sam2.1_hiera_small")
    msg = str(e.value)
    assert str(tmp_path / "cache" / "sam2.1_hiera_small.pt") in msg
    assert hub.MODEL_URLS["sam2.1_hiera_small"] in msg
    _assert_bad(capsys, ["image", str(IMAGE), "--model", "sam2.1_hiera_small", "--point", "1,1",
                         "--out", str(tmp_path / "o")], "put it at", tmp_path)


def test_hub_cache_hit_download_and_size_check(ckpt, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SAM2_FAST_CACHE", str(cache))
    monkeypatch.setenv("SAM2_FAST_OFFLINE", "1")  # a cache hit must not touch the network
    # a download (file:// stands in for https://) lands atomically in the cache, size-checked
    monkeypatch.delenv("SAM2_FAST_OFFLINE")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(ckpt.read_bytes()[: 1 << 20])
    with pytest.raises(hub.HubError, match="should have"):
        hub.fetch_checkpoint("sam2.1_hiera_tiny", url=truncated.as_uri(), progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []
    p = hub.fetch_checkpoint("sam2.1_hiera_tiny", url=ckpt.as_uri(), progress=False)
    assert p == cache / "sam2.1_hiera_tiny.pt" and p.stat().st_size == ckpt.stat().st_size
    assert _entries(cache) == ["sam2.1_hiera_tiny.pt"]
    monkeypatch.setenv("SAM2_FAST_OFFLINE", "1")
    assert hub.fetch_checkpoint("sam2.1_hiera_tiny") == p
    capsys.readouterr()
    assert main(["video", str(BEDROOM), "--model", "sam2.1_hiera_tiny", "--point", "1:0:5,5",
                 "--out", str(tmp_path / "o"), "--dry"]) == 0
    assert str(p) in capsys.readouterr().out
    # a damaged cached file is reported, not used
    shutil.copyfile(truncated, cache / "sam2_hiera_tiny.pt")
    with pytest.raises(hub.HubError, match="truncated or wrong file"):
        hub.fetch_checkpoint("sam2_hiera_tiny")


# ============================================================================ console script
def _console():
    exe = shutil.which("sam2-fast", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "sam2_fast"]


def test_console_script(ckpt, tmp_path):
    env = {**os.environ, "SAM2_FAST_CACHE": str(tmp_path)}
    r = subprocess.run(_console() + ["info", str(ckpt), "--json"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"] == "sam2.1_hiera_tiny"
    r = subprocess.run(_console() + ["video", str(tmp_path / "nope"), "--checkpoint", str(ckpt),
                                     "--point", "1:0:1", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("sam2-fast: error: malformed --point")
    r = subprocess.run([sys.executable, "-m", "sam2_fast", "--version"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("sam2-fast ")
