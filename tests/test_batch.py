"""``sam2-fast batch`` / :func:`sam2_fast.batch.run_batch`: many videos from a manifest.

Three short videos made here (a folder of 4 JPEG frames, a 5-frame mp4, a corrupt mp4) with
fresh random pixels, a random-weight ``sam2.1_hiera_tiny`` at 64 px. Local executor: outputs,
status lines, exit code, resume; manifest validation (every kind of bad line); the Ray executor
on a local instance (``num_cpus=2``, tests marked ``ray``): the same masks byte for byte, and a
worker killed mid-video that Ray restarts.
"""

import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_fast import batch
from sam2_fast.cli import main
from sam2_fast.io.masks import DAVIS_PALETTE, VideoWriter, decode_rle, load_palette_png

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H, W = 48, 64
SMALL = ["--image-size", "64", "--quiet"]


# ============================================================================ fixtures
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    p = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    assert main(["checkpoint", "--random", "sam2.1_hiera_tiny", str(p), "--seed", "1"]) == 0
    return p


def _lines(path: Path, objs) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The three videos, a mask prompt, and the manifest (relative paths)."""
    d = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng()
    (d / "folder").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(d / "folder" / f"{i:05d}.jpg")
    with VideoWriter(d / "clip.mp4", W, H, fps=10) as w:
        for _ in range(5):
            w.write(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    (d / "corrupt.mp4").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    m = np.zeros((H, W), np.uint8)
    y0, x0 = rng.integers(4, 20), rng.integers(4, 30)
    m[y0:y0 + 20, x0:x0 + 24] = 3  # a DAVIS-style palette annotation: object 3
    mask = Image.fromarray(m, mode="P")
    mask.putpalette(DAVIS_PALETTE)
    mask.save(d / "ann.png")
    x, y = float(rng.uniform(5, W - 5)), float(rng.uniform(5, H - 5))
    lines = [
        # a click on frame 0, a new object (box) on frame 2
        {"id": "folder", "video": "folder",
         "prompts": {"0": {"1": {"points": [[x, y]], "labels": [1]}}, "2": {"2": {"box": [5, 5, 40, 30]}}}},
        # a mask prompt on frame 1 (tracking starts there), 3 frames
        {"id": "clip", "video": "clip.mp4", "prompts": {"1": {"1": {"mask": "ann.png", "mask_value": 3}}},
         "max_frames": 3},
        {"id": "broken", "video": "corrupt.mp4", "prompts": {"0": {"1": {"points": [[3, 3]]}}}},
    ]
    return d, _lines(d / "manifest.jsonl", lines)


def _run_local(ckpt, manifest, out, *extra):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Ray CPU actors: the byte-for-byte comparison needs it
    try:
        return main(["batch", str(manifest), "--out", str(out), "--checkpoint", str(ckpt),
                     "--format", "both", *SMALL, *extra])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def local_run(ckpt, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    rc = _run_local(ckpt, data[1], out)
    return rc, out


def _status(out: Path, name="status.jsonl"):
    return [json.loads(ln) for ln in (out / name).read_text().splitlines()]


def _pngs(folder: Path):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def _partials(out: Path):
    return [p.name for p in out.iterdir() if ".partial" in p.name]


# ============================================================================ local executor
def test_local_outputs_status_exit_code(local_run, data):
    rc, out = local_run
    assert rc == 1  # one failed video
    assert sorted(p.name for p in out.iterdir()) == ["clip", "folder", "status.jsonl", "summary.json"]
    # the layout of `sam2-fast video --format both`, plus DONE
    assert sorted(p.name for p in (out / "folder").iterdir()) == [
        "00000.json", "00000.png", "00001.json", "00001.png", "00002.json", "00002.png",
        "00003.json", "00003.png", "DONE", "run.json"]
    # an mp4's frames are numbered; tracking starts on the prompted frame 1, 3 frames
    assert sorted(p.name for p in (out / "clip").glob("*.png")) == ["00001.png", "00002.png", "00003.png"]
    ids_seen = set()
    for vid, ids in (("folder", {1, 2}), ("clip", {1})):
        for png in sorted((out / vid).glob("*.png")):
            mask, pal = load_palette_png(png)
            assert mask.shape == (H, W) and bytes(pal[:768]) == DAVIS_PALETTE
            assert set(np.unique(mask)) <= {0} | ids
            ids_seen |= set(np.unique(mask).tolist())
            with Image.open(png) as im:
                assert "RANDOM" in im.info["sam2_fast"]
            rec = json.loads(png.with_suffix(".json").read_text())
            assert rec["frame_name"] == png.stem and (rec["height"], rec["width"]) == (H, W)
            m = decode_rle([o["segmentation"] for o in rec["objects"]])
            for o, mo in zip(rec["objects"], m):
                # lower ids win where objects overlap (official put_per_obj_mask)
                assert ((mask == o["obj_id"]) <= mo).all()
    assert {1, 2} <= ids_seen  # masks are not empty, so the comparisons below can fail
    # the mask prompt is the output on its frame (official _use_mask_as_output)
    ann = np.array(Image.open(data[0] / "ann.png")) == 3
    first, _ = load_palette_png(out / "clip" / "00001.png")
    assert ((first == 1) == ann).mean() > 0.95
    run = json.loads((out / "folder" / "run.json").read_text())
    assert run["num_frames_written"] == 4 and run["frames"] == [0, 3] and run["image_size"] == 64
    assert run["config"] == "sam2.1_hiera_tiny" and run["random_weights"] and run["engine"] == "streaming"
    assert [(p["obj_id"], p["frame"]) for p in run["prompts"]] == [(1, 0), (2, 2)]
    done = json.loads((out / "clip" / "DONE").read_text())
    assert done["id"] == "clip" and done["frames"] == 3
    st = {r["id"]: r for r in _status(out)}
    assert st["folder"]["status"] == "done" and st["folder"]["frames"] == 4
    assert st["clip"]["status"] == "done" and st["clip"]["frames"] == 3
    assert st["broken"]["status"] == "failed" and "cannot read video" in st["broken"]["error"]
    assert st["broken"]["line"] == 3 and st["folder"]["fps"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["skipped"], summary["frames"]) == (2, 1, 0, 7)
    assert summary["exit_code"] == 1 and summary["failed_ids"] == ["broken"]


def test_same_layout_and_masks_as_video_command(ckpt, data, local_run, tmp_path):
    """`sam2-fast video` on the same video and click: the same files; the masks agree
    (streaming engine vs offline predictor: equal up to float rounding at the threshold)."""
    d, _ = data
    line = json.loads((d / "manifest.jsonl").read_text().splitlines()[0])
    x, y = line["prompts"]["0"]["1"]["points"][0]
    out = tmp_path / "v"
    assert main(["video", str(d / "folder"), "--checkpoint", str(ckpt), "--point", f"1:0:{x},{y}",
                 "--out", str(out), "--max-frames", "2", "--format", "both", *SMALL]) == 0
    for i in range(2):  # before the second object (frame 2) the two runs track the same object
        a, _ = load_palette_png(out / f"{i:05d}.png")
        b, _ = load_palette_png(local_run[1] / "folder" / f"{i:05d}.png")
        assert (a == b).mean() > 0.99
    va = json.loads((out / "run.json").read_text())
    vb = json.loads((local_run[1] / "folder" / "run.json").read_text())
    assert set(va) - {"reverse"} <= set(vb)


def test_resume(ckpt, data, local_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_run[1], out)
    before = _pngs(out / "folder")
    clip_before = _pngs(out / "clip")
    (out / "folder" / "DONE").unlink()  # unfinished now
    (out / "folder" / "junk.txt").write_text("left by a dead attempt")
    (out / ".folder.partial-dead").mkdir()  # a partial folder of a killed attempt
    (out / ".folder.partial-dead" / "00000.png").write_bytes(b"half")
    n_status = len(_status(out))
    assert _run_local(ckpt, data[1], out) == 1
    new = _status(out)[n_status:]
    assert [(r["id"], r["status"]) for r in new] == [("folder", "done"), ("broken", "failed")]
    assert any("partial folder" in n for n in new[0]["notes"])
    assert any("unfinished" in n for n in new[0]["notes"])
    assert not (out / "folder" / "junk.txt").exists() and not _partials(out)
    assert (out / "folder" / "DONE").is_file()
    assert _pngs(out / "folder") == before  # deterministic: the redo wrote the same masks
    assert _pngs(out / "clip") == clip_before
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 1, 1)


def test_failure_mid_video_leaves_nothing(ckpt, data, tmp_path, monkeypatch):
    """An error after some frames were written (here: the disk) -> failed, no partial output,
    and the next video still runs."""
    import sam2_fast.io.masks as masks_mod

    real = masks_mod.save_palette_png
    calls = {"n": 0}

    def flaky(path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(path, *a, **k)

    monkeypatch.setattr(masks_mod, "save_palette_png", flaky)
    out = tmp_path / "out"
    assert _run_local(ckpt, data[1], out) == 2
    st = {r["id"]: r for r in _status(out)}
    assert st["folder"]["status"] == "failed" and "No space left" in st["folder"]["error"]
    assert st["clip"]["status"] == "done"
    assert not (out / "folder").exists() and not _partials(out)


def test_bad_prompt_for_its_size_is_a_failed_video(ckpt, data, tmp_path):
    d, _ = data
    m = _lines(tmp_path / "m.jsonl", [
        {"id": "outside", "video": str(d / "folder"), "prompts": {"0": {"1": {"points": [[500, 10]]}}}},
        {"id": "late", "video": str(d / "folder"), "prompts": {"0": {"1": {"points": [[5, 5]]}},
                                                               "9": {"2": {"points": [[5, 5]]}}}},
        {"id": "ok", "video": str(d / "folder"), "prompts": {"3": {"1": {"box": [1, 1, 20, 20]}}}},
        # palette index 9 is not in the annotation (it holds 0 and 3): not an empty object
        {"id": "absent", "video": str(d / "folder"), "prompts": {"0": {"7": {"mask": str(d / "ann.png"),
                                                                             "mask_value": 9}}}},
    ])
    out = tmp_path / "out"
    assert _run_local(ckpt, m, out) == 3
    st = {r["id"]: r for r in _status(out)}
    assert st["outside"]["error"].startswith("ValueError")
    assert "points of object 1 on frame 0 (500, 10) is outside the" in st["outside"]["error"]  # no "--point"
    assert "prompt frame 9 is past the end" in st["late"]["error"]
    assert "no pixel has mask_value 9 (values present: 0, 3)" in st["absent"]["error"]
    assert st["ok"]["status"] == "done" and st["ok"]["frames"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["ok", "status.jsonl", "summary.json"]


def test_models_grouped_and_per_line_settings(ckpt, data, tmp_path, monkeypatch):
    """Lines with their own image_size / model form groups; each model loads once; a line's
    settings win over the CLI's."""
    d, _ = data
    loads = []
    from sam2_fast.batch.video import _LoadedModel

    real = _LoadedModel.__init__

    def counting(self, spec):
        loads.append((os.path.basename(spec.model), spec.image_size))
        real(self, spec)

    monkeypatch.setattr(_LoadedModel, "__init__", counting)
    other = tmp_path / "other.pt"
    shutil.copy(ckpt, other)
    p = {"0": {"1": {"points": [[10, 10]]}}}
    m = _lines(tmp_path / "m.jsonl", [
        {"id": "a", "video": str(d / "folder"), "prompts": p, "max_frames": 1},
        {"id": "b", "video": str(d / "folder"), "prompts": p, "max_frames": 1, "image_size": 96},
        {"id": "c", "video": str(d / "folder"), "prompts": p, "max_frames": 1, "model": "other.pt"},
        {"id": "d", "video": str(d / "folder"), "prompts": p, "max_frames": 1},
        {"id": "e", "video": str(d / "folder"), "prompts": p, "max_frames": 1, "image_size": 96},
    ])
    out = tmp_path / "out"
    assert _run_local(ckpt, m, out) == 0
    assert loads == [("tiny.pt", 64), ("tiny.pt", 96), ("other.pt", 64)]
    sizes = {v: json.loads((out / v / "run.json").read_text())["image_size"] for v in "abcde"}
    assert sizes == {"a": 64, "b": 96, "c": 64, "d": 64, "e": 96}
    assert json.loads((out / "c" / "run.json").read_text())["checkpoint"] == str(other)
    assert [r["id"] for r in _status(out)] == ["a", "d", "b", "e", "c"]  # grouped, manifest order inside


def test_shards_split_the_ids(ckpt, data, local_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_run[1], out)
    seen = []
    for i in range(2):
        assert _run_local(ckpt, data[1], out, "--shard", f"{i}/2") == (
            int(zlib.crc32(b"broken") % 2 == i))
        s = json.loads((out / f"summary.shard-{i}-of-2.json").read_text())
        seen += [r["id"] for r in _status(out, f"status.shard-{i}-of-2.jsonl")]
        assert s["skipped"] == sum(zlib.crc32(v.encode()) % 2 == i for v in ("folder", "clip"))
    assert seen == ["broken"]  # the done ones were skipped; the failed one ran in its shard only


# ============================================================================ "auto" prompts
def test_auto_prompts(ckpt, data, tmp_path):
    """"auto" with the line's generator settings (random weights: keep every candidate of a
    small grid); with the defaults the same random model keeps no mask, and that video fails
    with the way out named."""
    assert batch.auto_prompts_supported()
    d, _ = data
    keep_all = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    m = _lines(tmp_path / "m.jsonl", [
        {"id": "auto", "video": str(d / "clip.mp4"), "prompts": "auto", "max_objects": 3, "max_frames": 2,
         "amg": keep_all},
        {"id": "strict", "video": str(d / "clip.mp4"), "prompts": "auto", "max_frames": 1,
         "amg": {"points_per_side": 2, "pred_iou_thresh": 1.0}}])
    out = tmp_path / "out"
    assert _run_local(ckpt, m, out) == 1
    st = {r["id"]: r for r in _status(out)}
    assert st["auto"]["status"] == "done", st["auto"].get("error")
    assert "kept no mask" in st["strict"]["error"] and '"amg" in a batch manifest line' in st["strict"]["error"]
    run = json.loads((out / "auto" / "run.json").read_text())
    assert run["prompts"] == "auto" and run["max_objects"] == 3 and run["num_frames_written"] == 2
    assert run["amg"] == keep_all
    assert sorted(p.name for p in (out / "auto").glob("*.png")) == ["00000.png", "00001.png"]
    for png in (out / "auto").glob("*.png"):
        mask, _ = load_palette_png(png)
        assert mask.shape == (H, W) and int(mask.max()) <= 3


# ============================================================================ manifest validation
def _bad_lines(d: Path):
    ok = {"0": {"1": {"points": [[10, 10]]}}}
    v = str(d / "folder")
    rows = [
        ('{"id": "x", "video": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"video": v, "prompts": ok}, '"id" is a required property'),
        ({"id": "p", "video": v}, '"prompts" is a required property'),
        ({"id": ".hidden", "video": v, "prompts": ok}, "/id: '.hidden' must be letters"),
        ({"id": "status.jsonl", "video": v, "prompts": ok}, "reserved"),
        ({"id": "a.partial-1", "video": v, "prompts": ok}, "reserved"),
        ({"id": "good", "video": v, "prompts": ok}, "repeats line 1"),
        ({"id": "GOOD", "video": v, "prompts": ok}, "differ beyond letter case"),
        ({"id": "f1", "video": v, "prompts": ok, "colour": "red"}, "'colour' was unexpected"),
        ({"id": "f2", "video": str(d / "missing.mp4"), "prompts": ok}, "/video:"),
        ({"id": "f3", "video": v, "prompts": 5}, 'must be "auto" or'),
        ({"id": "f4", "video": v, "prompts": {}}, "/prompts: {} has less than 1 property"),
        ({"id": "f5", "video": v, "prompts": {"x": {"1": {"points": [[1, 1]]}}}}, 'frame key "x"'),
        ({"id": "f6", "video": v, "prompts": {"0": {"0": {"points": [[1, 1]]}}}}, 'object id "0"'),
        ({"id": "f7", "video": v, "prompts": {"0": {"256": {"points": [[1, 1]]}}}}, 'object id "256"'),
        ({"id": "f8", "video": v, "prompts": {"0": {"1": {}}}}, "give points, a box or a mask"),
        ({"id": "f9", "video": v, "prompts": {"0": {"1": {"points": [[1, 1], [2, 2]], "labels": [1]}}}},
         "2 points but 1 labels"),
        ({"id": "f10", "video": v, "prompts": {"0": {"1": {"points": [[1, 1]], "labels": [2]}}}},
         "2 is not one of 0 or 1"),
        ({"id": "f11", "video": v, "prompts": {"0": {"1": {"points": [[-1, 1]]}}}}, "less than the minimum"),
        ({"id": "f12", "video": v, "prompts": {"0": {"1": {"points": [[1, 1, 1]]}}}}, "has more than 2 items"),
        ({"id": "f13", "video": v, "prompts": {"0": {"1": {"box": [30, 1, 10, 20]}}}}, "need x1 >= x0"),
        ({"id": "f14", "video": v, "prompts": {"0": {"1": {"box": [1, 2, 3]}}}}, "has less than 4 items"),
        ({"id": "f15", "video": v, "prompts": {"0": {"1": {"mask": "ann.png", "points": [[1, 1]]}}}},
         "cannot be combined"),
        ({"id": "f16", "video": v, "prompts": {"0": {"1": {"mask": "nope.png"}}}}, "/mask:"),
        ({"id": "f17", "video": v, "prompts": {"0": {"1": {"labels": [1], "box": [1, 1, 2, 2]}}}},
         '/prompts/0/1: "points" is a required property'),
        ({"id": "f18", "video": v, "prompts": ok, "image_size": 100}, "multiple of 32"),
        ({"id": "f19", "video": v, "prompts": ok, "max_frames": 0}, "less than the minimum of 1"),
        ({"id": "f20", "video": v, "prompts": {"0": {"1": {"points": [[1, 1]]}}, "5": {"2": {"box": [1, 1, 2, 2]}}},
          "max_frames": 5}, "outside the tracked frames 0..4"),
        ({"id": "f21", "video": v, "prompts": ok, "model": "sam3_hiera_huge"}, "neither a checkpoint file"),
        ('{"id": "f22", "video": "v", "prompts": {"0": {"1": {"points": [[NaN, 1]]}}}}', "NaN is not valid JSON"),
        ({"id": "f23", "video": v, "prompts": ok, "max_objects": 3}, '/max_objects: goes with prompts "auto" only'),
        ({"id": "f24", "video": v, "prompts": ok, "max_frames": "3"}, '"3" is not of type "integer"'),
        ({"id": "f26", "video": v, "prompts": ok, "amg": {"pred_iou_thresh": 0.1}},
         '/amg: goes with prompts "auto" only'),
        ({"id": "f27", "video": v, "prompts": "auto", "amg": {"pred_iou_tresh": 0.1}}, "pred_iou_tresh"),
        ({"id": "f28", "video": v, "prompts": "auto", "amg": {"pred_iou_thresh": 1.5}}, "1.5 is greater than"),
        ({"id": "f29", "video": v, "prompts": "auto",
          "amg": {"points_per_side": 4, "crop_n_layers": 2, "crop_n_points_downscale_factor": 4}},
         "/amg: points_per_side=4"),
    ]
    if not batch.auto_prompts_supported():
        rows.append(({"id": "f25", "video": v, "prompts": "auto"}, 'needs Sam2.track(prompts="auto")'))
    return [({"id": "good", "video": v, "prompts": ok, "max_frames": 1}, None), ("", None)] + rows


def test_manifest_validation_reports_every_bad_line(ckpt, data, tmp_path, capsys):
    d, _ = data
    rows = _bad_lines(d)
    m = _lines(d / "bad.jsonl", [r for r, _ in rows])
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["batch", str(m), "--out", str(out), "--checkpoint", str(ckpt), *SMALL]) == 2
    err = capsys.readouterr().err.splitlines()
    assert not out.exists()  # nothing ran, nothing written
    expected = [(n, frag) for n, (_, frag) in enumerate(rows, start=1) if frag]
    assert len(err) == len(expected) + 1 and "nothing was run" in err[-1]
    for (n, frag), line in zip(expected, err):
        assert line.startswith(f"sam2-fast: error: {m}:line {n}"), line
        assert frag in line, (frag, line)
    # no model anywhere: every line says so
    jobs, errors = batch.load_manifest(_lines(tmp_path / "nomodel.jsonl", [rows[0][0]]))
    assert not jobs and "no model" in errors[0].message
    # dicts in Python: int keys read as their JSON text; values JSON cannot hold are named
    good = dict(rows[0][0], prompts={0: {1: {"points": [[1, 1]]}}})
    jobs, errors = batch.load_manifest([good, dict(good, id="arr", max_frames=np.int64(2))],
                                       default_model=str(ckpt))
    assert [j.id for j in jobs] == ["good"] and jobs[0].prompts[0][1]["points"] == [[1.0, 1.0]]
    assert errors[0].line == 2 and "not JSON-serializable" in errors[0].message


def test_empty_manifest_is_said(ckpt, tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    assert main(["batch", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "o"),
                 "--checkpoint", str(ckpt), *SMALL]) == 0
    assert "has no lines: there is no video to run" in capsys.readouterr().err


def test_skip_invalid_runs_the_valid_lines(ckpt, data, tmp_path, capsys):
    d, _ = data
    rows = _bad_lines(d)
    m = _lines(d / "bad2.jsonl", [r for r, _ in rows])
    out = tmp_path / "out"
    n_bad = sum(1 for _, f in rows if f)
    rc = main(["batch", str(m), "--out", str(out), "--checkpoint", str(ckpt), "--skip-invalid", *SMALL])
    assert rc == n_bad  # invalid lines count in the exit status
    st = _status(out)
    assert [r["status"] for r in st].count("invalid") == n_bad
    assert [r for r in st if r["status"] == "done"][0]["id"] == "good"
    assert {r["line"] for r in st if r["status"] == "invalid"} == {
        n for n, (_, f) in enumerate(rows, start=1) if f}


def test_cli_dry_and_usage_errors(ckpt, data, tmp_path, capsys, monkeypatch):
    d, m = data
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["batch", str(m), "--out", str(out), "--checkpoint", str(ckpt), "--dry"]) == 0
    plan = capsys.readouterr().out
    assert "3 valid, 0 invalid" in plan and "0 already done, 3 to run" in plan and "tiny.pt @ default px" in plan
    assert not out.exists()
    for argv, frag in [
        (["--shard", "2/2"], "--shard"),
        (["--shard", "x"], "--shard"),
        (["--image-size", "100"], "multiple of 32"),
    ]:
        assert main(["batch", str(m), "--out", str(out), "--checkpoint", str(ckpt), *argv]) == 2
        assert frag in capsys.readouterr().err
        assert not out.exists()
    assert main(["batch", str(d / "nope.jsonl"), "--out", str(out), "--checkpoint", str(ckpt)]) == 2
    assert "manifest not found" in capsys.readouterr().err
    # a backend that cannot run here is said before any video runs (not as every video's failure)
    with pytest.MonkeyPatch.context() as mp:  # the suite's interpreter would let it run
        mp.delenv("TRITON_INTERPRET", raising=False)
        assert main(["batch", str(m), "--out", str(out), "--checkpoint", str(ckpt), "--backend", "triton",
                     "--device", "cpu"]) == 2
    assert "--backend triton: backend='triton' needs CUDA tensors" in capsys.readouterr().err
    assert not out.exists()
    # --ray without Ray installed: one clear line, exit 2
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["batch", str(m), "--out", str(out), "--checkpoint", str(ckpt), "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sam2-fast: error: --ray needs Ray, which is not installed: pip install 'sam2_fast[ray]'"]
    assert not out.exists()


def test_schema_ships_with_the_package():
    from importlib.resources import files

    text = (files("sam2_fast") / "schemas" / "batch_manifest.schema.json").read_text()
    schema = json.loads(text)
    assert schema["required"] == ["id", "video", "prompts"]
    assert batch.SCHEMA_PATH.read_text() == text


# ============================================================================ Ray
def test_ray_worker_plan():
    """Actor count and resources from the cluster's resources (no Ray needed)."""
    plan = batch.ray_worker_plan
    assert plan({"CPU": 64.0, "GPU": 8.0}, None, None) == (8, {"num_gpus": 1.0, "num_cpus": 1}, None, "cuda")
    assert plan({"CPU": 64.0, "GPU": 8.0}, None, 5) == (5, {"num_gpus": 1.0, "num_cpus": 1}, None, "cuda")
    assert plan({"CPU": 64.0, "GPU": 8.0}, "cuda", 99, 2) == (16, {"num_gpus": 0.5, "num_cpus": 1}, None, "cuda")
    assert plan({"CPU": 64.0, "GPU": 8.0}, "cpu", 3) == (3, {"num_cpus": 1}, 1, "cpu")
    assert plan({"CPU": 2.0}, None, None) == (1, {"num_cpus": 1}, 1, "cpu")
    with pytest.raises(batch.BatchError, match="no GPU"):
        plan({"CPU": 2.0}, "cuda", None)


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A local Ray instance with 2 CPUs; the fault-injection variable is set before it starts
    so that its worker processes inherit it (it names only the test's "crashme" video)."""
    ray = pytest.importorskip("ray")
    fault = tmp_path_factory.mktemp("fault")
    old = os.environ.get(batch.FAULT_ENV)
    os.environ[batch.FAULT_ENV] = f"crashme:2:{fault / 'crashme'};noretry:1:{fault / 'noretry'}"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield fault
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop(batch.FAULT_ENV, None)
        else:
            os.environ[batch.FAULT_ENV] = old


def _run_ray(ckpt, manifest, out, **kw):
    return batch.run_batch(manifest, out, "ray", model=str(ckpt), image_size=64, format="both",
                           progress=False, num_workers=2, **kw)


@pytest.mark.ray
def test_ray_same_masks_as_local(ray_local, ckpt, data, local_run, tmp_path):
    out = tmp_path / "out"
    s = _run_ray(ckpt, data[1], out)
    assert s.exit_code == 1 and s.workers == 2 and s.executor == "ray"
    assert (s.count("done"), s.count("failed")) == (2, 1)
    for vid in ("folder", "clip"):
        assert _pngs(out / vid) == _pngs(local_run[1] / vid) != {}
        for f in (out / vid).glob("*.json"):
            if f.name != "run.json":
                assert f.read_bytes() == (local_run[1] / vid / f.name).read_bytes()
        assert (out / vid / "DONE").is_file()
    st = {r["id"]: r for r in _status(out)}
    assert st["broken"]["status"] == "failed" and "cannot read video" in st["broken"]["error"]
    assert len({st["folder"]["worker"], st["clip"]["worker"], st["broken"]["worker"]}) >= 2
    assert not _partials(out)


@pytest.mark.ray
def test_ray_worker_killed_mid_video_is_rerun(ray_local, ckpt, data, local_run, tmp_path):
    d, _ = data
    line = json.loads((d / "manifest.jsonl").read_text().splitlines()[0])
    line["video"] = str(d / "folder")
    line["id"] = "crashme"  # the fault hook kills the worker before its frame 2, first attempt only
    m = _lines(tmp_path / "m.jsonl", [line])
    out = tmp_path / "out"
    assert not (ray_local / "crashme").exists()
    s = _run_ray(ckpt, m, out)
    assert (ray_local / "crashme").exists()  # the worker did die
    assert s.exit_code == 0 and s.count("done") == 1
    (rec,) = _status(out)
    assert rec["status"] == "done" and rec["frames"] == 4
    assert any("restarted by Ray" in n for n in rec["notes"])
    assert any("partial folder" in n for n in rec["notes"])  # the dead attempt's, deleted
    assert not _partials(out)
    assert _pngs(out / "crashme") == _pngs(local_run[1] / "folder")  # all 4 frames, from scratch


@pytest.mark.ray
def test_ray_worker_died_without_retries_is_not_done(ray_local, ckpt, data, local_run, tmp_path):
    """max_retries=0: the video fails ("worker died"), its partial folder is not taken as done,
    and the next run redoes it from scratch."""
    d, _ = data
    line = json.loads((d / "manifest.jsonl").read_text().splitlines()[0])
    line.update(video=str(d / "folder"), id="noretry")  # dies before frame 1, first attempt only
    m = _lines(tmp_path / "m.jsonl", [line])
    out = tmp_path / "out"
    s = _run_ray(ckpt, m, out, max_retries=0)
    assert (ray_local / "noretry").exists() and s.exit_code == 1
    (rec,) = _status(out)
    assert rec["status"] == "failed" and "worker died 1 time(s)" in rec["error"]
    assert not (out / "noretry").exists() and not batch.is_done(out, "noretry")
    assert len(_partials(out)) == 1  # what the dead worker had written: never renamed into place
    assert _run_local(ckpt, m, out) == 0
    assert not _partials(out) and _pngs(out / "noretry") == _pngs(local_run[1] / "folder")


def test_corrupt_frame_mid_video(ckpt, data, tmp_path):
    """A frame folder whose frame 2 cannot be decoded: failed after 2 tracked frames, nothing
    left behind (the error comes from the decoding thread)."""
    d, _ = data
    v = tmp_path / "frames"
    shutil.copytree(d / "folder", v)
    (v / "00002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    m = _lines(tmp_path / "m.jsonl", [{"id": "v", "video": str(v), "prompts": {"0": {"1": {"points": [[9, 9]]}}}}])
    out = tmp_path / "out"
    assert _run_local(ckpt, m, out) == 1
    (rec,) = _status(out)
    assert rec["status"] == "failed" and "00002.jpg" in rec["error"], rec
    assert sorted(p.name for p in out.iterdir()) == ["status.jsonl", "summary.json"]


def test_load_manifest_from_python_objects(data, ckpt):
    """An iterable of dicts / JSON strings works like a file (line i = item i + 1); relative
    paths are relative to base_dir; labels default to 1."""
    d, _ = data
    jobs, errors = batch.load_manifest(
        [{"id": "a", "video": "folder", "prompts": {"2": {"7": {"points": [[1, 2], [3, 4]]}}}},
         '{"id": "b", "video": "nope", "prompts": {"0": {"1": {"box": [1, 2, 3, 4]}}}}',
         {"id": "c", "video": "clip.mp4", "prompts": {"0": {"1": {"mask": "ann.png"}}}, "model": str(ckpt)}],
        default_model=str(ckpt), base_dir=d)
    assert [(j.line, j.id) for j in jobs] == [(1, "a"), (3, "c")]
    assert jobs[0].video == str(d / "folder") and jobs[0].model is None
    assert jobs[0].prompts == {2: {7: {"points": [[1.0, 2.0], [3.0, 4.0]], "labels": [1, 1]}}}
    assert jobs[1].prompts == {0: {1: {"mask": str(d / "ann.png"), "mask_value": None}}}
    assert jobs[1].model == str(ckpt)
    assert [(e.line, e.id) for e in errors] == [(2, "b")] and "/video:" in errors[0].message
