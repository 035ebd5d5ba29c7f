"""Every command and code example in README.md runs as written, on a fresh machine's terms: the
main job uses the sample clip shipped with the package and a random checkpoint it writes itself;
the real-weights line and ``from_pretrained`` find a (random, official-format) checkpoint in the
download cache with the network switched off; the Python snippets run verbatim in a folder where
the test created the files they name (``truck.jpg``, ``sam2.1_hiera_tiny.pt``). To keep the run
short the model resolution is lowered through the config registry (``CONFIGS``), never by editing
the README's text."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import sam2_fast
from sam2_fast import config as config_mod
from sam2_fast.checkpoint import randomize_
from sam2_fast.model.sam2_model import Sam2Model
from official import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BASH = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
PY = re.findall(r"```python\n(.*?)```", README, flags=re.S)
SMALL = ["--max-frames", "2", "--image-size", "64", "--device", "cpu", "--quiet"]


def _commands():
    return [ln.strip() for block in BASH for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def _main_job():
    (cmd,) = [c for c in _commands() if c.startswith("sam2-fast checkpoint")]
    return cmd


def _real_weights_job():
    cmds = _commands()
    return cmds[cmds.index(_main_job()) + 1]


def test_readme_has_the_main_job_and_the_test_command():
    main_job, real = _main_job(), _real_weights_job()
    assert "sam2-fast checkpoint --random" in main_job and "sam2-fast video --sample" in main_job
    assert "random" in main_job.split("&&")[1]  # the checkpoint's name says what it is
    # the next line: the same job with the real weights
    assert real.startswith("sam2-fast video --sample --model sam2.1_hiera_tiny")
    assert main_job.split("--point")[1].split()[0] == real.split("--point")[1].split()[0]
    assert "python -m pytest -q" in _commands()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "\npython -m pytest -q\n" in ci, ".ci/run must run the README's test command exactly"
    # what the README promises: CPU timing, the fast variant, the CPU-only torch line
    assert "--image-size 512" in README and "--max-frames" in README and "per frame" in README
    assert "download.pytorch.org/whl/cpu" in README


def _run(argv, cwd, env=None):
    exe = shutil.which("sam2-fast", path=os.path.dirname(sys.executable))
    assert exe, "the console script is installed with the package"
    return subprocess.run([exe] + argv[1:], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_main_job_command_runs(tmp_path):
    """The README's main job as written, in an empty folder (2 frames at 64 px; the full run's
    time is in NOTES.md)."""
    for part in _main_job().split("&&"):
        argv = shlex.split(part)
        if argv[1] == "video":
            argv += SMALL
        res = _run(argv, tmp_path)
        assert res.returncode == 0, res.stderr
    assert "random weights" in res.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.png", "00001.png", "overlay.mp4",
                                                                    "run.json"]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["random_weights"] and run["sample"] and "RANDOM" in run["note"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A download cache holding a random sam2.1_hiera_tiny in the official layout, offline."""
    d = tmp_path / "cache"
    d.mkdir()
    model = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny")), seed=5)
    torch.save({"model": model.state_dict()}, d / "sam2.1_hiera_tiny.pt")
    monkeypatch.setenv("SAM2_FAST_CACHE", str(d))
    monkeypatch.setenv("SAM2_FAST_OFFLINE", "1")
    return d


def test_real_weights_command_runs(tmp_path, cache):
    work = tmp_path / "work"
    work.mkdir()
    res = _run(shlex.split(_real_weights_job()) + SMALL, work)
    assert res.returncode == 0, res.stderr
    run = json.loads((work / "out-real" / "run.json").read_text())
    assert run["checkpoint"] == str(cache / "sam2.1_hiera_tiny.pt") and run["num_frames_written"] == 2


@pytest.mark.parametrize("idx", range(4), ids=["image", "video", "stream", "everything"])
def test_python_examples_run_as_written(idx, tmp_path, cache, monkeypatch):
    assert len(PY) == 4
    for name, cfg in list(config_mod.CONFIGS.items()):
        monkeypatch.setitem(config_mod.CONFIGS, name, cfg.with_image_size(64))
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(cache / "sam2.1_hiera_tiny.pt", work / "sam2.1_hiera_tiny.pt")
    Image.fromarray(np.random.default_rng().integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(work / "truck.jpg")
    monkeypatch.chdir(work)
    code = PY[idx]
    if idx == 3:  # random weights: keep every candidate, few points
        code = code.replace("points_per_side=32)", "points_per_side=3, pred_iou_thresh=0, stability_score_thresh=0)")
        assert "pred_iou_thresh=0" in code
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    if idx == 0:
        assert scope["masks"].shape == (3, 480, 640) and scope["masks"].dtype == np.float32
    elif idx == 1:
        assert sorted(scope["masks"]) == list(range(16)) and scope["masks"][0].shape == (2, 1, 270, 480)
    elif idx == 2:
        assert scope["out"].frame_idx == 15 and scope["out"].masks.shape == (1, 1, 270, 480)
    else:
        assert scope["records"] and scope["records"][0]["segmentation"].shape == (480, 640)
        n = scope["out"].masks.shape[0]
        assert scope["out"].frame_idx == 15 and 1 <= n <= 8 and scope["out"].obj_ids == list(range(1, n + 1))


def test_promised_versions_are_pinned():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "torch>=2.11,<2.14" in project["dependencies"]
    assert "triton>=3.6,<3.10" in project["optional-dependencies"]["triton"]
    assert "torch 2.11-2.13" in README and "triton 3.6-3.9" in README
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    assert "/*.pt" in ignored  # outputs of the README commands made in the repository root
