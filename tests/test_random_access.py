"""Frames decoded on demand: :class:`sam2_fast.io.sources.RandomAccessFrames` (any access order
gives the pixels of a plain sequential decode) and :class:`sam2_fast.io.frames.LazyFrameLoader`
over video files and frame sequences (the preloaded loader's numbers, bit for bit on the CPU).
The offline ``sam2-fast video`` path built on them is tested in test_cli.py."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_fast.io.frames import FrameSizeError, LazyFrameLoader, load_video_frames
from sam2_fast.io.sources import RandomAccessFrames, open_video, read_frames

from official import DATA_DIR

BEDROOM = DATA_DIR / "bedroom"
BEDROOM_MP4 = DATA_DIR / "videos" / "bedroom.mp4"
needs_data = pytest.mark.skipif(not BEDROOM_MP4.is_file(), reason="../shared/data not available")


def _gop_video(path, n: int = 40, gop: int = 6, seed: int = 0):
    """An H.264 file with a keyframe every ``gop`` frames and B-frames (presentation order !=
    decode order), every frame different."""
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24, options={"g": str(gop), "keyint_min": str(gop), "bf": "2",
                                                      "sc_threshold": "0"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            img = np.roll(base, 3 * i, axis=1).copy()
            img[:8, :8] = 6 * i
            for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def _count_seeks(frames: RandomAccessFrames) -> list:
    seeks = []
    real = frames._seek

    def counted(key):
        seeks.append(key)
        real(key)

    frames._seek = counted
    return seeks


def test_random_access_equals_sequential_decode_with_keyframe_seeks(tmp_path):
    """Short groups of pictures with B-frames: reverse and shuffled reads, with a cache of one
    frame, a few frames and everything, equal a sequential decode; with room for a group,
    walking backward seeks once per group (never from the start each time)."""
    src = open_video(str(_gop_video(tmp_path / "gop.mp4")))
    ref = read_frames(src, 0, None)
    assert len(ref) == 40
    order_rng = random.Random(1)
    for cache in (1, 5 * 64 * 48 * 3, 1 << 30):
        frames = RandomAccessFrames(src, 3, None, cache_bytes=cache)
        assert len(frames) == 37 and frames._keys == [0, 6, 12, 18, 24, 30, 36]
        seeks = _count_seeks(frames)
        order = list(reversed(range(37)))
        for i in order:
            assert np.array_equal(frames[i], ref[3 + i]), (cache, i)
        if cache == 1 << 30:
            assert len(seeks) == 7  # one per group of pictures
        for i in order_rng.sample(range(37), 37):
            assert np.array_equal(frames[i], ref[3 + i]), (cache, i)
        frames.close()
    # reading forward continues the open decoder: one seek for the whole range
    frames = RandomAccessFrames(src, 10, 30, cache_bytes=1)
    seeks = _count_seeks(frames)
    assert len(frames) == 21
    assert all(np.array_equal(frames[i], ref[10 + i]) for i in range(21))
    assert seeks == [6]
    with pytest.raises(IndexError, match="out of range"):
        frames[21]
    with pytest.raises(TypeError, match="int"):
        frames[1.0]


def test_random_access_without_timestamps_decodes_from_the_start(tmp_path, monkeypatch):
    """Packets without presentation times (some AVI files): frames are counted from the start
    of the file, and a backward read restarts there."""
    src = open_video(str(_gop_video(tmp_path / "gop.mp4", n=12)))
    ref = read_frames(src, 0, None)
    monkeypatch.setattr(RandomAccessFrames, "_index", lambda self: (12, None, [0]))
    frames = RandomAccessFrames(src, 0, None, cache_bytes=1)
    seeks = _count_seeks(frames)
    for i in (11, 3, 4, 0, 7):
        assert np.array_equal(frames[i], ref[i])
    assert seeks == [0, 0, 0]  # 11; 3 (backward); 4 continues; 0 (backward); 7 continues


@needs_data
def test_random_access_bedroom_mp4_and_folder():
    """The benchmark video (one keyframe, B-frames): a backward walk with a small cache equals
    the sequential decode; a folder's frames are read from their files."""
    src = open_video(str(BEDROOM_MP4))
    ref = read_frames(src, 0, 59)
    frames = RandomAccessFrames(src, 0, 59, cache_bytes=12 * 960 * 540 * 3)
    assert len(frames) == 60
    for i in reversed(range(60)):
        assert np.array_equal(frames[i], ref[i]), i
    assert not frames[0].flags.writeable  # cached frames are shared: never edited in place
    folder = open_video(str(BEDROOM))
    fr = RandomAccessFrames(folder, 5, 9)
    assert len(fr) == 5 and np.array_equal(fr[4], read_frames(folder, 9, 9)[0])
    with pytest.raises(ValueError, match="out of range"):
        RandomAccessFrames(folder, 200)


def test_random_access_bad_frames(tmp_path):
    """A frame of another size names itself (FrameSizeError); an unreadable one is a ValueError;
    the frames before them read fine. A truncated file holds fewer frames than its header."""
    d = tmp_path / "frames"
    d.mkdir()
    rng = np.random.default_rng(3)
    for i, (w, h) in enumerate([(40, 30), (40, 30), (44, 30), (40, 30)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i:05d}.png")
    (d / "00003.png").write_bytes(b"not a png")
    frames = RandomAccessFrames(open_video(str(d)))
    assert frames[1].shape == (30, 40, 3)
    with pytest.raises(FrameSizeError, match="00002.png' is 44x30 but frame 0 is 40x30: all "
                                             "frames of a video must have one size"):
        frames[2]
    with pytest.raises(ValueError, match="cannot read video frame .*00003.png"):
        frames[3]
    path = _gop_video(tmp_path / "gop.mp4")
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    try:
        src = open_video(str(cut))
    except ValueError as e:  # the index (moov) is at the end: nothing readable is fine too
        assert "cannot read video" in str(e)
    else:
        frames = RandomAccessFrames(src)
        assert len(frames) < 40
        frames[len(frames) - 1]


@needs_data
def test_lazy_loader_over_file_and_sequence_equals_preloaded(tmp_path):
    """LazyFrameLoader over a video file or a list of arrays gives load_video_frames' tensors
    bit for bit on the CPU, in any order; a bad element of a sequence is named."""
    src = open_video(str(BEDROOM_MP4))
    arrays = read_frames(src, 0, 7)
    eager, h, w = load_video_frames(arrays, 64)
    for video in (arrays, RandomAccessFrames(src, 0, 7)):
        lazy = LazyFrameLoader(video, 64, cache_size=3)
        assert (lazy.video_height, lazy.video_width, len(lazy)) == (h, w, 8)
        for i in (7, 2, 0, 5, 6, 1, 3, 4):
            assert torch.equal(lazy[i], eager[i]), i
        assert len(lazy._cache) == 3
    shutil.copy(BEDROOM_MP4, tmp_path / "v.mp4")
    file_eager, _, _ = load_video_frames(tmp_path / "v.mp4", 64)
    lazy = LazyFrameLoader(tmp_path / "v.mp4", 64)
    assert len(lazy) == len(file_eager) == 200
    for i in (199, 3, 120):
        assert torch.equal(lazy[i], file_eager[i]), i
    bad = arrays[:2] + [arrays[2][:, :, :2]] + [arrays[3][:100]]
    lazy = LazyFrameLoader(bad, 64)
    with pytest.raises(ValueError, match="video frame 2 must be an HxWx3 uint8"):
        lazy[2]
    with pytest.raises(FrameSizeError, match="video frame '3' is 960x100 but frame 0 is 960x540"):
        lazy[3]
    with pytest.raises(ValueError, match="empty"):
        LazyFrameLoader([], 64)
    with pytest.raises(ValueError, match="does not exist"):
        LazyFrameLoader(tmp_path / "missing.mp4", 64)
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 20)
    with pytest.raises(RuntimeError, match="cannot read video"):
        LazyFrameLoader(tmp_path / "junk.mp4", 64)
    with pytest.raises(ValueError, match="frame folder, a video file path, or a sequence"):
        LazyFrameLoader(3, 64)
