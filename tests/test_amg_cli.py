"""``sam2-fast everything`` and ``sam2-fast video --auto`` (the automatic mask generator on the
command line), in-process on a random tiny SAM 2.1 checkpoint at 64 px and the real
``../shared/data`` images / frames. Bad input exits 2 with one line and leaves nothing behind.
"""

import json

import numpy as np
import pytest
from PIL import Image

from sam2_fast.cli import main
from sam2_fast.io.masks import decode_rle, load_palette_png

from cli_helpers import assert_bad as _assert_bad
from official import DATA_DIR
from cli_helpers import entries as _entries

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

DATA = DATA_DIR
IMAGE = DATA / "images" / "groceries.jpg"
BEDROOM = DATA / "bedroom"
needs_data = pytest.mark.skipif(not IMAGE.is_file(), reason="../shared/data not available")
# random weights: keep every candidate so that there is something to write
KEEP_ALL = ["--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--box-nms-thresh", "1"]
AMG_KEEP_ALL = ["--amg", "pred_iou_thresh=0", "--amg", "stability_score_thresh=0", "--amg", "box_nms_thresh=1.0"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    p = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    assert main(["checkpoint", "--random", "sam2.1_hiera_tiny", str(p), "--seed", "2"]) == 0
    return p


@needs_data
def test_everything(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["everything", str(IMAGE), "--checkpoint", str(ckpt), "--out", str(out), "--points-per-side", "3",
               *KEEP_ALL, "--image-size", "64"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "random weights" in cap.err and "27 masks" in cap.out
    assert _entries(out) == ["masks.json", "overlay.png", "result.json"]
    assert _entries(tmp_path) == ["out"]  # no staging folder left
    anns = json.loads((out / "masks.json").read_text())
    assert len(anns) == 27
    h, w = np.asarray(Image.open(IMAGE)).shape[:2]
    masks = decode_rle([a["segmentation"] for a in anns])
    assert masks.shape == (27, h, w)
    for a, m in zip(anns, masks):
        assert set(a) == {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score",
                          "crop_box"}
        assert a["area"] == int(m.sum()) and a["crop_box"] == [0.0, 0.0, float(w), float(h)]
    with Image.open(out / "overlay.png") as im:
        assert im.size == (w, h) and im.mode == "RGB" and "RANDOM" in im.info["sam2_fast"]
    res = json.loads((out / "result.json").read_text())
    assert res["command"] == "everything" and res["num_masks"] == 27 and res["random_weights"]
    assert res["generator"]["points_per_side"] == 3 and res["generator"]["box_nms_thresh"] == 1.0
    assert res["backend"] == "torch" and res["backend_requested"] == "auto"
    assert res["orientation"] == "applied" and res["exif_orientation"] == 1
    # an existing --out: refused, then replaced with --overwrite
    argv = ["everything", str(IMAGE), "--checkpoint", str(ckpt), "--out", str(out), "--points-per-side", "2",
            *KEEP_ALL, "--image-size", "64", "--quiet"]
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert json.loads((out / "result.json").read_text())["num_masks"] == 12


@needs_data
def test_everything_turns_images_upright_as_image_does(ckpt, tmp_path):
    """A photo whose EXIF orientation says "rotate 90": masks in the upright frame, as
    `sam2-fast image` (and a viewer) shows it; --raw-orientation keeps the stored pixels."""
    src = Image.open(IMAGE)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "rotated.jpg"
    src.save(photo, exif=exif)
    w, h = src.size
    for extra, shown, orient in (([], (h, w), "applied"), (["--raw-orientation"], (w, h), "raw")):
        out = tmp_path / f"out_{orient}"  # shown: (width, height) of the frame the masks are in
        assert main(["everything", str(photo), "--checkpoint", str(ckpt), "--out", str(out), "--points-per-side",
                     "2", *KEEP_ALL, "--image-size", "64", "--quiet", *extra]) == 0
        res = json.loads((out / "result.json").read_text())
        assert (res["width"], res["height"]) == shown
        assert res["orientation"] == orient and res["exif_orientation"] == 6
        with Image.open(out / "overlay.png") as im:
            assert im.size == shown


@needs_data
def test_everything_dry(ckpt, tmp_path, capsys):
    rc = main(["everything", str(IMAGE), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), "--dry",
               "--crop-n-layers", "1", "--points-per-side", "8", "--crop-n-points-downscale-factor", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "5 (crop_n_layers 1)" in out and "128 (3 masks each)" in out and "RANDOM WEIGHTS" in out
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_everything_bad_input(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile.jpg").write_text("not an image")
    base = ["everything", str(IMAGE), "--checkpoint", str(ckpt), "--out", "o"]
    for extra, match in ((["--points-per-side", "0"], "points_per_side"),
                         (["--points-per-side", "-2"], "points_per_side"),
                         (["--points-per-side", "x"], "--points-per-side"),
                         (["--crop-overlap-ratio", "2"], "crop_overlap_ratio"),
                         (["--min-mask-region-area", "-1"], "min_mask_region_area"),
                         (["--pred-iou-thresh", "nan"], "pred_iou_thresh"),
                         (["--pred-iou-thresh", "1.5"], "pred_iou_thresh must be in [0, 1]"),
                         (["--stability-score-offset", "-1"], "stability_score_offset must be >= 0"),
                         (["--bogus"], "unrecognized")):
        _assert_bad(capsys, base + extra, match, tmp_path)
    with monkeypatch.context() as m:  # the suite runs with the interpreter on, which would let it run
        m.delenv("TRITON_INTERPRET", raising=False)
        _assert_bad(capsys, base + ["--backend", "triton", "--device", "cpu"], "--backend triton: backend='triton' "
                    "needs CUDA tensors", tmp_path)
    _assert_bad(capsys, ["everything", "missing.jpg", "--checkpoint", str(ckpt), "--out", "o"], "not found",
                tmp_path)
    _assert_bad(capsys, ["everything", str(tmp_path), "--checkpoint", str(ckpt), "--out", "o"], "is a folder",
                tmp_path)
    _assert_bad(capsys, ["everything", "afile.jpg", "--checkpoint", str(ckpt), "--out", "o"], "cannot read image",
                tmp_path)
    _assert_bad(capsys, ["everything", str(IMAGE), "--checkpoint", str(ckpt), "--out", "afile.jpg"],
                "output directory", tmp_path)

    import sam2_fast.io.masks as masks_mod

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(masks_mod, "save_png", full)  # the overlay fails after masks.json was staged
    _assert_bad(capsys, base + ["--points-per-side", "2", *KEEP_ALL, "--image-size", "64"], "No space left",
                tmp_path)


@needs_data
def test_video_auto(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["video", str(BEDROOM), "--checkpoint", str(ckpt), "--auto", "--max-objects", "3",
               "--amg", "points_per_side=3", *AMG_KEEP_ALL, "--out", str(out), "--max-frames", "2",
               "--format", "both", "--image-size", "64", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert _entries(out) == ["00000.json", "00000.png", "00001.json", "00001.png", "run.json"]
    for i in range(2):
        rec = json.loads((out / f"{i:05d}.json").read_text())
        assert [o["obj_id"] for o in rec["objects"]] == [1, 2, 3]
        assert set(np.unique(load_palette_png(out / f"{i:05d}.png")[0])) <= {0, 1, 2, 3}
    run = json.loads((out / "run.json").read_text())
    assert run["auto"]["objects"] == 3 and run["auto"]["max_objects"] == 3
    assert run["auto"]["generator"]["points_per_side"] == 3
    # frame 0: the objects are the generator's 3 largest masks, largest first
    rec = json.loads((out / "00000.json").read_text())
    areas = [o["area"] for o in rec["objects"]]
    assert areas[0] > 0


@needs_data
def test_video_auto_bad_input(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["video", str(BEDROOM), "--checkpoint", str(ckpt), "--out", "o", "--image-size", "64"]
    for extra, match in ((["--auto", "--point", "1:0:10,10"], "drop --point"),
                         (["--point", "1:0:10,10", "--max-objects", "2"], "go with --auto"),
                         (["--auto", "--amg", "points_per_side"], "KEY=VALUE"),
                         (["--auto", "--amg", "bogus=1"], "unknown generator argument"),
                         (["--auto", "--amg", "use_m2m=1"], "use_m2m takes true or false"),
                         (["--auto", "--amg", "points_per_side=0"], "points_per_side"),
                         (["--auto", "--amg", "points_per_side=abc"], "not a number"),
                         (["--auto", "--max-objects", "300"], "at most 255"),
                         (["--auto", "--max-frames", "1", "--amg", "points_per_side=2", "--amg",
                           "pred_iou_thresh=1.0"], "kept no mask")):
        _assert_bad(capsys, base + extra, match, tmp_path)
    rc = main(base + ["--auto", "--dry", "--max-objects", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and "--auto" in out and "5 largest" in out
    assert _entries(tmp_path) == []
