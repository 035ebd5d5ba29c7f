"""Mask writers of sam2_fast.io.masks: DAVIS palette PNGs (official tools/vos_inference.py
layout), COCO RLE JSON (pycocotools), overlays (Pillow PNG, PyAV video)."""

import json

import numpy as np
import pytest
from PIL import Image

from sam2_fast.io.masks import (DAVIS_PALETTE, VideoWriter, combine_object_masks, decode_rle,
                                encode_rle, load_palette_png, overlay_masks, read_video_frames,
                                rle_frame_record, save_json, save_palette_png, save_png)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _mask_utils():
    """pycocotools' mask module, or a skip where it is not installed (the file must collect
    without it: some GPU images lack it)."""
    return pytest.importorskip("pycocotools.mask")

# first 16 and last 2 entries of DAVIS_PALETTE in the official tools/vos_inference.py
OFFICIAL_HEAD = (b"\x00\x00\x00\x80\x00\x00\x00\x80\x00\x80\x80\x00\x00\x00\x80\x80\x00\x80\x00\x80"
                 b"\x80\x80\x80\x80@\x00\x00\xc0\x00\x00@\x80\x00\xc0\x80\x00@\x00\x80\xc0\x00\x80"
                 b"@\x80\x80\xc0\x80\x80")
OFFICIAL_TAIL = b"`\xe0\xc0\xe0\xe0\xc0"


def _masks():
    m = np.zeros((2, 30, 41), bool)
    m[0, 5:10, 5:20] = True
    m[1, 8:20, 10:30] = True
    return m


def test_palette_is_davis():
    assert len(DAVIS_PALETTE) == 768
    assert DAVIS_PALETTE.startswith(OFFICIAL_HEAD)
    assert DAVIS_PALETTE.endswith(OFFICIAL_TAIL)


def test_combine_lower_id_wins_and_errors():
    m = _masks()
    idx = combine_object_masks(m, [1, 2])
    assert idx.dtype == np.uint8 and idx.shape == (30, 41)
    assert idx[8, 10] == 1  # overlap: lowest id on top (official put_per_obj_mask)
    assert idx[15, 25] == 2 and idx[0, 0] == 0
    assert (combine_object_masks({2: m[1], 1: m[0]}) == idx).all()
    assert (combine_object_masks(m[:, None], [1, 2]) == idx).all()
    with pytest.raises(ValueError, match="1..255"):
        combine_object_masks(m, [0, 1])
    with pytest.raises(ValueError, match="one object id per mask"):
        combine_object_masks(m, [1])


def test_palette_png_roundtrip(tmp_path):
    idx = combine_object_masks(_masks(), [3, 7])
    p = save_palette_png(tmp_path / "00000.png", idx, note="hello")
    with Image.open(p) as im:
        assert im.mode == "P" and im.info["sam2_fast"] == "hello"
    mask, pal = load_palette_png(p)
    assert (mask == idx).all() and bytes(pal[:768]) == DAVIS_PALETTE
    assert sorted(x.name for x in tmp_path.iterdir()) == ["00000.png"]  # no temp file left
    with pytest.raises(ValueError):
        save_palette_png(tmp_path / "x.png", idx.astype(np.int32))


def test_rle_roundtrip_and_record(tmp_path):
    mask_utils = _mask_utils()
    m = _masks()
    rles = encode_rle(m)
    assert isinstance(rles[0]["counts"], str) and rles[0]["size"] == [30, 41]
    assert (decode_rle(rles) == m).all()
    rec = rle_frame_record(4, [1, 2], m, "00004", object_scores=[1.5, -2.0], note="n")
    o = rec["objects"][0]
    assert o["area"] == int(m[0].sum()) and o["bbox"] == [5.0, 5.0, 15.0, 5.0]
    assert rec["frame_index"] == 4 and rec["height"] == 30 and rec["width"] == 41
    save_json(tmp_path / "f.json", rec)
    back = json.loads((tmp_path / "f.json").read_text())
    seg = back["objects"][1]["segmentation"]
    dec = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
    assert (dec.astype(bool) == m[1]).all()
    # strict JSON: non-finite floats (an empty mask's 0 / 0 stability score) are written as null
    save_json(tmp_path / "g.json", [{"stability_score": float("nan"), "s": [np.float64("inf"), 1.5]}])
    text = (tmp_path / "g.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == [{"stability_score": None, "s": [None, 1.5]}]


def test_overlay_colours_and_banner():
    img = np.full((30, 41, 3), 100, np.uint8)
    idx = combine_object_masks(_masks(), [1, 2])
    out = overlay_masks(img, idx, alpha=0.5)
    assert (out[0, 0] == 100).all()  # background untouched
    assert tuple(out[8, 10]) == (114, 50, 50)  # (100 + 128) / 2, 100 / 2, 100 / 2 (object 1)
    with_banner = overlay_masks(np.zeros((60, 200, 3), np.uint8), np.zeros((60, 200), np.uint8),
                                banner="RANDOM WEIGHTS")
    assert with_banner.any()
    with pytest.raises(ValueError):
        overlay_masks(img, idx[:10])


def test_video_writer_roundtrip_odd_size(tmp_path):
    frames = [np.full((31, 41, 3), 40 * i, np.uint8) for i in range(4)]
    with VideoWriter(tmp_path / "v.mp4", 41, 31, fps=10) as w:
        for f in frames:
            w.write(f)
    dec = list(read_video_frames(tmp_path / "v.mp4"))
    assert len(dec) == 4 and dec[0].shape[:2] == (32, 42)  # padded to even for yuv420p
    assert abs(int(dec[2][:31, :41].mean()) - 80) <= 3
    assert sorted(x.name for x in tmp_path.iterdir()) == ["v.mp4"]


def test_video_writer_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "v.mp4", 40, 30) as w:
            w.write(np.zeros((30, 40, 3), np.uint8))
            w.write(np.zeros((31, 40, 3), np.uint8))  # wrong size
    assert list(tmp_path.iterdir()) == []


def test_save_png_bool(tmp_path):
    p = save_png(tmp_path / "m.png", _masks()[0])
    a = np.asarray(Image.open(p))
    assert a.dtype == np.uint8 and set(np.unique(a)) == {0, 255}
