"""Reading image files (sam2_fast.io.images): every PIL mode converted correctly or refused, the
EXIF orientation applied on request; and video frame folders whose frames differ in size are
refused, naming the frame (sam2_fast.io.frames), however they are loaded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from sam2_fast.io.frames import AsyncFrameLoader, FrameSizeError, LazyFrameLoader, load_video_frames
from sam2_fast.io.images import exif_orientation, image_size, load_image, to_rgb

rng = np.random.default_rng()


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    """A 16-bit PNG became all white through convert('RGB'); now 65535 -> 255, 257 -> 1."""
    a = rng.integers(0, 65536, (30, 40), dtype=np.uint16)
    a[0, :3] = [0, 257, 65535]
    Image.fromarray(a).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")  # Pillow opens it as I;16 (older ones as I)
        assert (np.asarray(im.convert("RGB")) == 255).mean() > 0.9  # what the naive path gives
    rgb, orientation = load_image(tmp_path / "g16.png")
    want = np.round(a.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8 and orientation == 1
    assert np.array_equal(rgb[..., 0], want) and np.array_equal(rgb[..., 2], want)
    assert rgb[0, :3, 0].tolist() == [0, 1, 255]
    # mode I (32-bit integers) in the 16-bit range is scaled the same way; beyond it is refused
    i32 = Image.fromarray(a.astype(np.int32))
    assert i32.mode == "I" and np.array_equal(np.asarray(to_rgb(i32))[..., 1], want)
    with pytest.raises(ValueError, match="values in"):
        to_rgb(Image.fromarray(np.full((4, 4), 70000, np.int32)), "big.tif")


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGBA", "LA", "CMYK", "YCbCr", "RGBX", "HSV"])
def test_modes_pil_converts_itself(mode):
    """For the everyday modes the result is PIL's convert('RGB'): what the official loaders give."""
    base = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    img = base.convert(mode)
    out = to_rgb(img)
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), np.asarray(img.convert("RGB")))


def test_alpha_palette_and_refused_modes():
    pa = Image.new("PA", (4, 4))
    assert to_rgb(pa).mode == "RGB"
    rgba_pre = Image.new("RGBa", (4, 4), (10, 20, 30, 255))
    assert np.asarray(to_rgb(rgba_pre))[0, 0].tolist() == [10, 20, 30]
    with pytest.raises(ValueError, match="'F'.*cannot be shown as 8-bit RGB"):
        to_rgb(Image.fromarray(rng.random((4, 4)).astype(np.float32)), "depth.tif")
    rgb = Image.new("RGB", (3, 3))
    assert to_rgb(rgb) is rgb


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path, orientation):
    stored = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    img.save(path, exif=exif)
    with Image.open(path) as im:
        assert exif_orientation(im) == orientation
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    shown, got = load_image(path)
    assert got == orientation and np.array_equal(shown, want)
    raw, _ = load_image(path, apply_exif=False)
    assert np.array_equal(raw, stored)
    w, h, _ = image_size(path)
    assert (h, w) == shown.shape[:2] and image_size(path, apply_exif=False)[:2] == (10, 6)
    if orientation == 6:  # the portrait phone photo: turned 90 degrees clockwise to display
        assert np.array_equal(shown, np.rot90(stored, k=-1))


def test_unreadable_image(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(tmp_path / "x.jpg")


def _folder_with_odd_frame(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i, size in enumerate([(40, 30), (40, 30), (44, 30)]):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(d / f"{i:05d}.png")
    return d


def test_frame_of_another_size_is_refused(tmp_path):
    """The official loader stretches frame 2 to the model size without a word; every loader here
    refuses it and names it."""
    d = _folder_with_odd_frame(tmp_path)
    with pytest.raises(FrameSizeError, match=r"00002.png' is 44x30 but frame 0 \(00000.png\) is 40x30"):
        load_video_frames(d, 32)
    lazy = LazyFrameLoader(d, 32)
    lazy[1]
    with pytest.raises(ValueError, match="00002.png' is 44x30"):
        lazy[2]
    loader = AsyncFrameLoader(d, 32)
    loader.join(10)
    with pytest.raises(ValueError, match="00002.png' is 44x30"):
        loader[2]


def test_predictor_init_state_refuses_other_size(tmp_path):
    import sam2_fast
    from sam2_fast.model.sam2_model import Sam2Model

    pred = sam2_fast.Sam2VideoPredictor(Sam2Model(sam2_fast.get_config("sam2_hiera_tiny", 32)))
    with pytest.raises(ValueError, match="00002.png' is 44x30"):
        pred.init_state(str(_folder_with_odd_frame(tmp_path)))


def test_16_bit_frames_are_not_white(tmp_path):
    """A folder of 16-bit PNG frames preprocesses like its 8-bit rendering."""
    d, d8 = tmp_path / "f16", tmp_path / "f8"
    d.mkdir()
    d8.mkdir()
    for i in range(2):
        a = rng.integers(0, 65536, (30, 40), dtype=np.uint16)
        Image.fromarray(a).save(d / f"{i:05d}.png")
        g = np.round(a.astype(np.float64) * 255 / 65535).astype(np.uint8)
        Image.fromarray(g).save(d8 / f"{i:05d}.png")
    x16, h, w = load_video_frames(d, 32)
    x8, _, _ = load_video_frames(d8, 32)
    assert (h, w) == (30, 40) and np.array_equal(x16.numpy(), x8.numpy())
