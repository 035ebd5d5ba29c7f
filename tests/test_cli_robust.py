"""What a new user hits with the ``sam2-fast`` command line: the packaged sample clip, re-runs
into an existing --out (refused, or replaced atomically with --overwrite), folders left by
killed runs, SIGTERM/Ctrl-C, files that are not checkpoints, --backend triton without CUDA,
image files in any PIL mode and with an EXIF orientation, phone videos with a rotation, and
--help. All on a random tiny checkpoint at 64 px (a few seconds each)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sam2_fast
from sam2_fast.cli import main
from sam2_fast.io import staging as staging_mod
from sam2_fast.io.masks import load_palette_png
from sam2_fast.samples import SAMPLE_VIDEO_DIR

from official import DATA_DIR

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SMALL = ["--image-size", "64", "--quiet"]
rng = np.random.default_rng()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    p = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    assert main(["checkpoint", "--random", "sam2.1_hiera_tiny", str(p), "--seed", "3"]) == 0
    return p


def _one_error_line(capsys, rc, want_rc=2):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("sam2-fast: warning:")]
    assert rc == want_rc, err
    assert len(lines) == 1 and lines[0].startswith("sam2-fast: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _console():
    exe = shutil.which("sam2-fast", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "sam2_fast"]


# ============================================================================ the sample clip
def test_sample_clip_is_packaged_with_its_license():
    files = sorted(p.name for p in SAMPLE_VIDEO_DIR.iterdir())
    assert files == [f"{i:05d}.jpg" for i in range(16)] + ["LICENSE", "NOTICE"]
    assert sum((SAMPLE_VIDEO_DIR / f).stat().st_size for f in files) < 600_000
    with Image.open(SAMPLE_VIDEO_DIR / "00000.jpg") as im:
        assert im.size == (480, 270)
    assert "Apache License" in (SAMPLE_VIDEO_DIR / "LICENSE").read_text()
    assert "facebookresearch/sam2" in (SAMPLE_VIDEO_DIR / "NOTICE").read_text()
    assert sam2_fast.sample_video() == str(SAMPLE_VIDEO_DIR)


def test_video_sample_records_what_ran(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["video", "--sample", "--checkpoint", str(ckpt), "--point", "1:0:105,175", "--out", str(out),
                 "--max-frames", "2", *SMALL]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["sample"] and run["video"] == str(SAMPLE_VIDEO_DIR)
    assert run["backend"] == "torch" and run["backend_requested"] == "auto"  # what ran, not "auto"
    assert (run["width"], run["height"]) == (480, 270) and run["orientation"] == "applied"
    assert run["exif_orientation"] == 1 and run["clipped_boxes"] == []
    assert load_palette_png(out / "00001.png")[0].shape == (270, 480)
    for argv, match in [(["video", "--sample", str(SAMPLE_VIDEO_DIR)], "not both"),
                        (["video"], "or --sample")]:
        rc = main([*argv, "--checkpoint", str(ckpt), "--point", "1:0:1,1", "--out", str(tmp_path / "x")])
        assert match in _one_error_line(capsys, rc)


# ============================================================================ re-runs
def _video(ckpt, out, *extra):
    return main(["video", "--sample", "--checkpoint", str(ckpt), "--point", "1:0:105,175", "--out", str(out),
                 *SMALL, *extra])


def test_existing_out_refused_then_replaced(ckpt, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert _video(ckpt, out, "--max-frames", "3", "--overlay", str(out / "overlay.mp4")) == 0
    before = sorted(p.name for p in out.iterdir())
    assert before == ["00000.png", "00001.png", "00002.png", "overlay.mp4", "run.json"]
    line = _one_error_line(capsys, _video(ckpt, out, "--max-frames", "1"))
    assert "exists and is not empty" in line and "--overwrite" in line
    line = _one_error_line(capsys, _video(ckpt, out, "--max-frames", "1", "--dry"))  # --dry checks it too
    assert "--overwrite" in line
    assert sorted(p.name for p in out.iterdir()) == before
    # --overwrite: the new run replaces the folder; nothing of the old one is mixed in
    assert _video(ckpt, out, "--max-frames", "1", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "run.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # the same without the Linux atomic exchange (the portable two-rename path)
    monkeypatch.setattr(staging_mod, "_exchange", lambda a, b: False)
    assert _video(ckpt, out, "--max-frames", "2", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "run.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # an overlay outside --out that exists is refused too, and replaced with --overwrite
    ov = tmp_path / "ov.mp4"
    ov.write_bytes(b"old")
    line = _one_error_line(capsys, _video(ckpt, tmp_path / "o2", "--max-frames", "1", "--overlay", str(ov)))
    assert "ov.mp4 exists" in line
    assert _video(ckpt, tmp_path / "o2", "--max-frames", "1", "--overlay", str(ov), "--overwrite") == 0
    assert ov.stat().st_size > 100
    # an empty folder made beforehand is fine without --overwrite
    (tmp_path / "empty").mkdir()
    assert _video(ckpt, tmp_path / "empty", "--max-frames", "1") == 0


def test_overwrite_never_deletes_the_inputs(ckpt, tmp_path, capsys):
    """--overwrite replaces --out as a whole: an input (image, video folder, checkpoint) inside
    it is refused before anything runs, and stays."""
    out = tmp_path / "w"
    out.mkdir()
    inner_ckpt = out / "tiny.pt"
    shutil.copy(ckpt, inner_ckpt)
    img = out / "img.png"
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(img)
    frames = out / "frames"
    frames.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(frames / "00000.jpg")
    runs = [
        (["everything", str(tmp_path / "w" / ".." / "w" / "img.png"), "--checkpoint", str(ckpt)], "img.png"),
        (["image", str(img), "--checkpoint", str(ckpt), "--point", "10,10"], "img.png"),
        (["image", str(tmp_path / "x.png"), "--checkpoint", str(inner_ckpt), "--point", "10,10"], "tiny.pt"),
        (["video", str(frames), "--checkpoint", str(ckpt), "--point", "1:0:10,10"], "frames"),
    ]
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    before = sorted(p.name for p in out.iterdir())
    for argv, name in runs:
        line = _one_error_line(capsys, main([*argv, "--out", str(out), "--overwrite", *SMALL]))
        assert "--overwrite would delete" in line and name in line and "choose another --out" in line
        assert sorted(p.name for p in out.iterdir()) == before
    # an input outside --out: replaced as usual
    assert main(["image", str(tmp_path / "x.png"), "--checkpoint", str(ckpt), "--point", "10,10",
                 "--out", str(out), "--overwrite", *SMALL]) == 0
    assert not inner_ckpt.exists() and (tmp_path / "x.png").exists()


def test_out_permissions_are_normal(ckpt, tmp_path):
    """The staging folder (mkdtemp, mode 0700) becomes --out: it gets the usual permissions."""
    out = tmp_path / "out"
    assert _video(ckpt, out, "--max-frames", "1") == 0
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (0o777 & ~umask)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_partial_folders(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    stale = [tmp_path / f".out.partial-{_dead_pid()}-abc", tmp_path / ".out.partial-k3j_x9"]  # killed runs
    for d in stale:
        d.mkdir()
        (d / "00000.png").write_bytes(b"half")
    assert _video(ckpt, out, "--max-frames", "1") == 0
    err = capsys.readouterr().err
    assert all(f"removed {d}, left by an interrupted run" in err for d in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a replacement killed half-way (old folder moved aside, new not yet in place) is undone
    shutil.move(str(out), str(tmp_path / f".out.old-{_dead_pid()}-q"))
    assert _video(ckpt, out, "--max-frames", "1", "--overwrite") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a partial folder of a run that is still alive: refused, nothing touched
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        d = tmp_path / f".out.partial-{live.pid}-zz"
        d.mkdir()
        line = _one_error_line(capsys, _video(ckpt, out, "--max-frames", "1", "--overwrite"))
        assert f"another run (process {live.pid})" in line and d.is_dir()
    finally:
        live.kill()
        live.wait()


def test_staging_block_commits_or_discards(tmp_path):
    """``with Staging(out) as s``: commit publishes; an error or leaving without commit leaves
    nothing behind (the folder of a half-written run never appears)."""
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with staging_mod.Staging(out) as s:
            s.path("a.txt").write_text("half")
            raise RuntimeError("boom")
    with staging_mod.Staging(out) as s:
        s.path("a.txt").write_text("forgotten")  # no commit
    assert list(tmp_path.iterdir()) == []
    with staging_mod.Staging(out) as s:
        s.path("a.txt").write_text("done")
        s.commit()
    assert s.committed and (out / "a.txt").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ============================================================================ interrupts
def _default_sigint():
    """In the child before exec: SIGINT back to its default. A test run started in the background
    by a non-interactive shell inherits SIGINT ignored, and a Python started that way (rightly)
    never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, rc, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signal_cleans_up(ckpt, tmp_path, sig, rc, word):
    """SIGTERM (timeout, kill, docker stop) and Ctrl-C in the middle of tracking: one line, the
    exit code of the signal, and no partial folder left behind. 120 frames: the frames written
    lag tracking by up to the writer's queue, so a short clip could finish before the signal."""
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    video = DATA_DIR / "bedroom"
    proc = subprocess.Popen(_console() + ["video", str(video), "--max-frames", "120", "--checkpoint", str(ckpt),
                                          "--point", "1:0:210,350", "--out", str(out), "--image-size", "256",
                                          "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_sigint)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(tmp_path.glob(".out.partial-*"))
        if partial and list(partial[0].glob("*.png")):
            break  # tracking has written a frame
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("sam2-fast: warning:")]
    assert proc.returncode == rc, err
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


# ============================================================================ bad files
def _bad_files(tmp_path: Path):
    files = {
        "text.pt": (b"hello, this is not a checkpoint\n", "a text file"),
        "page.pt": (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>\n", "an HTML page"),
        "lfs.pt": (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 155906050\n",
                   "a Git LFS pointer"),
        "empty.pt": (b"", "empty"),
        "archive.pt": (b"\x1f\x8b\x08\x00" + bytes(range(40)), "a gzip archive"),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")  # a whole pickled module
    return {**{n: w for n, (_, w) in files.items()}, "pickled.pt": "Python objects besides tensors"}


def test_bad_checkpoint_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = _bad_files(tmp_path)
    img = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(img)
    for name, what in cases.items():
        for argv in (["info", name], ["image", str(img), "--checkpoint", name, "--point", "3,3", "--out", "o"],
                     ["video", "--sample", "--checkpoint", name, "--point", "1:0:3,3", "--out", "o"]):
            capsys.readouterr()
            line = _one_error_line(capsys, main(argv))
            assert what in line and name in line, line
            assert "weights_only" not in line
        # the Python API: a CheckpointError (a ValueError) with the same words, no unsafe advice
        with pytest.raises(sam2_fast.CheckpointError) as e:
            sam2_fast.build_sam2(None, name)
        assert what in str(e.value) and e.value.__cause__ is None
        assert "weights_only=False" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*cases, "img.png"])


def test_config_mismatch_is_summarised(ckpt, tmp_path, capsys):
    rc = main(["image", str(SAMPLE_VIDEO_DIR / "00000.jpg"), "--checkpoint", str(ckpt), "--config",
               "sam2_hiera_large", "--point", "3,3", "--out", str(tmp_path / "o"), *SMALL])
    line = _one_error_line(capsys, rc)
    assert len(line) < 700, len(line)  # was about 2,500 characters
    assert "detected: sam2.1_hiera_tiny" in line and "missing keys (438)" in line and "more)" in line


# ============================================================================ other bad input
@pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")
def test_backend_triton_without_cuda(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the tests' interpreter would run it
    img = str(SAMPLE_VIDEO_DIR / "00000.jpg")
    for argv in (["image", img, "--point", "3,3"], ["image", img, "--point", "3,3", "--dry"],
                 ["video", "--sample", "--point", "1:0:3,3", "--dry"]):
        line = _one_error_line(capsys, main([*argv, "--checkpoint", str(ckpt), "--backend", "triton",
                                             "--out", str(tmp_path / "o")]))
        assert "--backend triton" in line and "CUDA" in line
    assert list(tmp_path.iterdir()) == []


def test_image_folder_and_modes(ckpt, tmp_path, capsys):
    line = _one_error_line(capsys, main(["image", str(SAMPLE_VIDEO_DIR), "--checkpoint", str(ckpt),
                                         "--point", "3,3", "--out", str(tmp_path / "o")]))
    assert "is a folder" in line and "sam2-fast video" in line
    # a 16-bit grayscale PNG is segmented from its 8-bit rendering (it used to be all white)
    a = rng.integers(0, 65536, (60, 80), dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    assert main(["image", str(tmp_path / "g16.png"), "--checkpoint", str(ckpt), "--point", "5,50",
                 "--out", str(tmp_path / "g"), *SMALL]) == 0
    overlay = np.asarray(Image.open(tmp_path / "g" / "overlay.png"))
    mask = np.asarray(Image.open(tmp_path / "g" / "mask_0.png")) > 0
    gray = np.round(a.astype(np.float64) * 255 / 65535).astype(np.uint8)
    keep = ~mask
    keep[:30] = False  # the RANDOM WEIGHTS banner
    assert keep.sum() > 100 and np.array_equal(overlay[keep][:, 0], gray[keep])
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert main(["image", str(tmp_path / "cmyk.jpg"), "--checkpoint", str(ckpt), "--point", "5,5",
                 "--out", str(tmp_path / "c"), *SMALL]) == 0
    Image.fromarray(rng.random((20, 30)).astype(np.float32)).save(tmp_path / "depth.tif")
    line = _one_error_line(capsys, main(["image", str(tmp_path / "depth.tif"), "--checkpoint", str(ckpt),
                                         "--point", "5,5", "--out", str(tmp_path / "d"), *SMALL]))
    assert "'F'" in line and "depth.tif" in line


# ============================================================================ orientation
def _portrait_jpeg(path: Path) -> np.ndarray:
    """A JPEG stored 80 wide x 48 high with EXIF orientation 6: a viewer shows it 48 x 80."""
    blocks = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    stored = np.kron(blocks, np.ones((8, 8, 1), np.uint8))  # smooth enough for JPEG to keep it
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(path, exif=exif, quality=95)
    return stored


def test_image_exif_orientation(ckpt, tmp_path, capsys):
    _portrait_jpeg(tmp_path / "phone.jpg")
    out = tmp_path / "shown"
    # (10, 70) lies in the displayed 48x80 image, not in the stored 80x48 one
    assert main(["image", str(tmp_path / "phone.jpg"), "--checkpoint", str(ckpt), "--point", "10,70",
                 "--out", str(out), *SMALL]) == 0
    res = json.loads((out / "result.json").read_text())
    assert res["exif_orientation"] == 6 and res["orientation"] == "applied"
    assert (res["width"], res["height"]) == (48, 80)
    assert np.asarray(Image.open(out / "mask_0.png")).shape == (80, 48)
    rc = main(["image", str(tmp_path / "phone.jpg"), "--checkpoint", str(ckpt), "--point", "10,70",
               "--raw-orientation", "--out", str(tmp_path / "raw"), *SMALL])
    assert "outside the 80x48 frame" in _one_error_line(capsys, rc)
    assert main(["image", str(tmp_path / "phone.jpg"), "--checkpoint", str(ckpt), "--point", "70,10",
                 "--raw-orientation", "--out", str(tmp_path / "raw"), *SMALL]) == 0
    res = json.loads((tmp_path / "raw" / "result.json").read_text())
    assert res["orientation"] == "raw" and res["exif_orientation"] == 6
    assert np.asarray(Image.open(tmp_path / "raw" / "mask_0.png")).shape == (48, 80)


def test_video_orientation(ckpt, tmp_path):
    from sam2_fast.io.sources import open_video, read_frames

    frames = tmp_path / "frames"
    frames.mkdir()
    stored = [_portrait_jpeg(frames / f"{i:05d}.jpg") for i in range(2)]
    src = open_video(str(frames))
    assert (src.width, src.height, src.exif_orientation) == (48, 80, 6)
    shown = read_frames(src, 0, 1)
    assert shown[0].shape == (80, 48, 3)
    err = [np.abs(shown[0].astype(int) - np.rot90(stored[0], k=k)).mean() for k in (-1, 1)]
    assert err[0] < 12 and err[1] > 3 * err[0], err  # turned clockwise, up to JPEG noise
    out = tmp_path / "out"
    assert main(["video", str(frames), "--checkpoint", str(ckpt), "--point", "1:0:10,70", "--out", str(out),
                 *SMALL]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["exif_orientation"] == 6 and run["orientation"] == "applied"
    assert load_palette_png(out / "00001.png")[0].shape == (80, 48)
    # a phone video: stored 64x32 with a display rotation of 90 degrees (counter-clockwise)
    import av

    mp4 = tmp_path / "phone.mp4"
    with av.open(str(mp4), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(2):
            a = np.zeros((32, 64, 3), np.uint8)
            a[:8, :16] = 255  # a white block top-left of the stored frame
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    src = open_video(str(mp4))
    assert (src.width, src.height, src.rotation) == (32, 64, 90)
    f0 = read_frames(src, 0, 0)[0]
    assert f0.shape == (64, 32, 3) and f0[60:, :6].mean() > 200 and f0[:8, :].mean() < 60  # block bottom-left
    raw = open_video(str(mp4), apply_orientation=False)
    assert (raw.width, raw.height) == (64, 32) and read_frames(raw, 0, 0)[0].shape == (32, 64, 3)
    out = tmp_path / "vout"
    assert main(["video", str(mp4), "--checkpoint", str(ckpt), "--point", "1:0:5,60", "--out", str(out),
                 *SMALL]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["rotation"] == 90 and run["orientation"] == "applied" and (run["width"], run["height"]) == (32, 64)
    assert load_palette_png(out / "00000.png")[0].shape == (64, 32)


# ============================================================================ --help
def test_help_shows_examples_and_required_prompts(capsys):
    for argv in (["--help"], ["video", "--help"], ["image", "--help"], ["checkpoint", "--help"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "example" in out and "sam2-fast " in out.split("example")[1], argv
        if argv[0] in ("video", "image"):
            assert "prompts (one of them required):" in out and "--point" in out and "--box" in out
            assert "--overwrite" in out and "--raw-orientation" in out
