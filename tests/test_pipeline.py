"""The input/output pipeline (sam2_fast/io/pipeline.py): decode-ahead order and bound, errors at
their position, early close; the bounded ordered writer (waits instead of dropping, errors
surface)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from sam2_fast.io.pipeline import OrderedWriter, device_frames, prefetch


def test_prefetch_keeps_order_and_bound():
    produced = []

    def gen():
        for i in range(50):
            produced.append(i)
            yield i

    it = prefetch(gen(), depth=3)
    assert next(it) == 0
    time.sleep(0.2)  # the producer runs ahead, but no further than the bound
    assert len(produced) <= 1 + 3 + 1
    assert list(it) == list(range(1, 50))


def test_prefetch_raises_at_the_failing_position_and_closes_the_source():
    closed = threading.Event()

    def gen():
        try:
            yield from range(3)
            raise RuntimeError("cannot decode frame 3")
        finally:
            closed.set()

    got = []
    with pytest.raises(RuntimeError, match="frame 3"):
        for x in prefetch(gen(), depth=2):
            got.append(x)
    assert got == [0, 1, 2] and closed.wait(2)


def test_prefetch_stops_when_abandoned():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetch(endless(), depth=2, transform=lambda x: x * 10)
    assert [next(it) for _ in range(3)] == [0, 10, 20]
    it.close()
    assert closed.wait(2)
    with pytest.raises(ValueError, match="depth"):
        next(prefetch([], depth=0))


def test_device_frames_on_cpu_pass_arrays_through():
    frames = [np.random.randint(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(5)]
    out = list(device_frames(iter(frames), "cpu", depth=2))
    assert all(a is b for a, b in zip(out, frames))


@pytest.mark.gpu
def test_device_frames_on_cuda_upload_pinned():
    frames = [np.random.randint(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(5)]
    out = list(device_frames(iter(frames), "cuda", depth=2))
    assert all(o.is_cuda and o.dtype == torch.uint8 for o in out)
    assert all(np.array_equal(o.cpu().numpy(), f) for o, f in zip(out, frames))


def test_writer_waits_instead_of_dropping_and_keeps_order():
    done, gate = [], threading.Event()

    def job(i):
        gate.wait(5)
        done.append(i)

    w = OrderedWriter(max_pending=2)
    w.submit(job, 0)
    w.submit(job, 1)
    t = threading.Thread(target=w.submit, args=(job, 2))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()  # the third submit waits while the writer is behind
    gate.set()
    t.join(5)
    for i in range(3, 10):
        w.submit(job, i)
    w.close()
    assert done == list(range(10)) and w.done == w.submitted == 10


def test_writer_errors_surface():
    def bad(i):
        if i == 2:
            raise OSError(28, "No space left on device")

    w = OrderedWriter(max_pending=1)
    with pytest.raises(OSError, match="No space"):
        for i in range(6):
            w.submit(bad, i)
    w.abort()
    w2 = OrderedWriter(max_pending=4)
    w2.submit(bad, 2)
    with pytest.raises(OSError):
        w2.close()
    with pytest.raises(ValueError, match="max_pending"):
        OrderedWriter(max_pending=0)


def _levels(a, b):
    from sam2_fast.config import PIXEL_STD

    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return ((a.cpu() - b.cpu()).abs() * std * 255).max().item()


def test_init_state_gpu_preprocessing_matches_pil_within_one_level():
    """The preloaded frames of init_state on CUDA are resized on the device; the same maths,
    run on the CPU here, is within one uint8 level of the official PIL resize."""
    from official import DATA_DIR
    from sam2_fast.io.frames import _load_folder, _Resizer, load_video_frames
    from tolerances import FRAME_RESIZE_MAX_LEVELS

    folder = DATA_DIR / "bedroom"
    files = sorted(folder.glob("*.jpg"))[:3]
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for f in files:
            shutil.copy(f, d)
        pil, h, w = load_video_frames(d, 128)
        dev, h2, w2 = _load_folder(d, 128, _Resizer(128, torch.device("cpu"), on_device=True))
    assert (h, w) == (h2, w2) and pil.shape == dev.shape == (3, 3, 128, 128)
    assert 0 < _levels(pil, dev) <= FRAME_RESIZE_MAX_LEVELS + 1e-3


@pytest.mark.gpu
def test_init_state_preprocesses_on_cuda():
    from official import DATA_DIR
    from sam2_fast.io.frames import load_video_frames
    from tolerances import FRAME_RESIZE_MAX_LEVELS

    frames = [np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(p).convert("RGB"))
              for p in sorted((DATA_DIR / "bedroom").glob("*.jpg"))[:3]]
    cpu, _, _ = load_video_frames(frames, 256)
    gpu, _, _ = load_video_frames(frames, 256, device=torch.device("cuda"))
    assert gpu.is_cuda and _levels(cpu, gpu) <= FRAME_RESIZE_MAX_LEVELS + 1e-3
    # lazy_frames on CUDA: the same device preprocessing, frame by frame
    from sam2_fast.io.frames import LazyFrameLoader

    lazy = LazyFrameLoader(frames, 256, device=torch.device("cuda"))
    for i in (2, 0, 1):
        assert lazy[i].is_cuda and torch.equal(lazy[i], gpu[i]), i


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
def test_frame_output_writer_records_and_missing_scores(tmp_path):
    """The per-frame files of one prediction: palette PNG (object id = palette index) and RLE
    with each object's score; a prediction without scores writes RLE records without them
    (never a made-up number)."""
    import json
    from types import SimpleNamespace

    pytest.importorskip("pycocotools")
    from sam2_fast.io.masks import decode_rle, load_palette_png
    from sam2_fast.io.video_output import FrameOutputWriter, OutputOptions

    rng = np.random.default_rng(7)
    masks = torch.from_numpy(rng.random((2, 1, 12, 20)) > 0.5)
    writer = FrameOutputWriter(tmp_path, 20, 12, lambda i: f"f{i:03d}", OutputOptions("both"))
    writer.write(4, None, SimpleNamespace(masks=masks, obj_ids=[3, 9],
                                          object_score_logits=torch.tensor([[1.5], [-2.0]])))
    writer.write(5, None, SimpleNamespace(masks=masks, obj_ids=[3, 9], object_score_logits=None))
    writer.close()
    assert writer.written == 2
    index, _ = load_palette_png(tmp_path / "f004.png")
    want = np.where(masks[0, 0].numpy(), 3, np.where(masks[1, 0].numpy(), 9, 0))
    assert np.array_equal(index, want)
    rec4 = json.loads((tmp_path / "f004.json").read_text())
    rec5 = json.loads((tmp_path / "f005.json").read_text())
    assert [o["object_score"] for o in rec4["objects"]] == [1.5, -2.0]
    assert all("object_score" not in o for o in rec5["objects"])
    dec = decode_rle([o["segmentation"] for o in rec5["objects"]])
    assert np.array_equal(dec, masks[:, 0].numpy())
