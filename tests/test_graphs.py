"""CUDA-graph replay (sam2_fast/engine/graphs.py): the bookkeeping (which calls replay, the
eager fallback on prompts and before the bank is full) and the static-output aliasing, tested on
the CPU with the eager stand-in of a graph; replay vs eager on CUDA (gpu marker)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import sam2_fast
from sam2_fast.checkpoint import randomize_
from sam2_fast.engine.graphs import EagerStaticGraph, GraphRunner, default_graph_runner
from sam2_fast.model.sam2_model import Sam2Model
from sam2_fast.predictors.video import Sam2VideoPredictor
from official import DATA_DIR

S = 128
N = 26


def test_runner_warms_up_captures_and_replays():
    calls = []

    def fn(x, y):
        calls.append(1)
        return (x * 2 + y,)

    r = GraphRunner(enabled=True, warmup=1, graph_cls=EagerStaticGraph)
    x, y = torch.randn(3, 4), torch.randn(1, 4).expand(3, 4)  # y: a broadcast input
    out1, rep1 = r.run("k", fn, (x, y))
    out2, rep2 = r.run("k", fn, (x + 1, y))
    out3, rep3 = r.run("k", fn, (x, y))
    assert (rep1, rep2, rep3) == (False, True, True)
    assert out2[0] is out3[0]  # static outputs: the next replay overwrites them
    assert torch.equal(out3[0], x * 2 + y)
    (graph,) = r.graphs.values()
    assert graph.static_inputs[1].shape == (1, 4)  # the broadcast input is stored once
    _, rep = r.run("k", fn, (torch.randn(5, 4), torch.randn(5, 4)))  # a new signature: eager
    assert rep is False
    _, rep = r.run(None, fn, (x, y))
    assert rep is False
    assert r.op_stats["k"]["replayed"] == 2 and r.op_stats["k"]["captured"] == 1
    off = GraphRunner(enabled=False)
    assert off.run("k", fn, (x, y))[1] is False and off.run("k", fn, (x, y))[1] is False
    assert default_graph_runner(torch.device("cpu"), None).enabled is False
    with pytest.raises(ValueError, match="CUDA"):
        default_graph_runner(torch.device("cpu"), True)


@pytest.fixture(scope="module")
def frames():
    return [np.asarray(Image.open(DATA_DIR / "bedroom" / f"{i:05d}.jpg").convert("RGB"))
            for i in range(N)]


@pytest.fixture(scope="module")
def model():
    return randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", S)),
                      seed=int(torch.randint(0, 2**31 - 1, ()))).eval()


def _fake_graphs(core):
    core.graphs = GraphRunner(enabled=True, warmup=1, graph_cls=EagerStaticGraph)
    return core.graphs


def _stream(model, frames, graphs: bool):
    sam = sam2_fast.Sam2(model)
    runner = _fake_graphs(sam._tracker.core) if graphs else None
    state = sam.new_video_state()
    outs = []
    for i, f in enumerate(frames):
        prompts = None
        if i == 0:
            prompts = {1: {"points": [[210, 350]], "labels": [1]}, 2: {"box": [480, 180, 720, 460]}}
        elif i == 20:
            prompts = {3: {"points": [[700, 250]], "labels": [1]}}  # a new object: a new group
        elif i == 22:
            prompts = {1: {"points": [[300, 300]], "labels": [0]}}  # a correction
        o = sam.predict_video_frame(state, f, prompts)
        outs.append((o.mask_logits.clone(), o.object_score_logits.clone()))
    return outs, runner


def test_stream_replay_bookkeeping_and_equality(model, frames):
    """Steady-state steps replay (from the second full-bank step on), prompts and the steps
    before the bank fills run eagerly, and the results equal a run without graphs bit for bit
    (stored memories are cloned out of the static outputs)."""
    eager, _ = _stream(model, frames, graphs=False)
    graphed, runner = _stream(model, frames, graphs=True)
    for (a, sa), (b, sb) in zip(eager, graphed):
        assert torch.equal(a, b) and torch.equal(sa, sb)
    image, track = runner.op_stats["image"], runner.op_stats["track"]
    assert image["eager"] == 1 and image["replayed"] == N - 1
    # group {1, 2}: the bank is full from frame 16 (15 tracked pointers): 16 eager (warm-up),
    # captured at 17, replayed on 17..25 (the correction on 22 is a separate eager prompt step);
    # group {3} (frame 20) never fills its bank here
    assert track == {"eager": 1, "captured": 1, "replayed": N - 17, "capture_s": track["capture_s"]}


def test_offline_replay_equals_eager(model, frames):
    outs = {}
    for graphs in (False, True):
        pred = Sam2VideoPredictor(model)
        if graphs:
            runner = _fake_graphs(pred.core)
        st = pred.init_state(frames[:20])
        pred.add_new_points_or_box(st, 0, 1, points=[[210, 350]], labels=[1])
        outs[graphs] = [m.clone() for _, _, m in pred.propagate_in_video(st)]
    assert all(torch.equal(a, b) for a, b in zip(outs[False], outs[True]))
    assert runner.op_stats["track"]["replayed"] == 3  # frames 17..19


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager(frames):
    """30 frames of a 2-object stream on CUDA, captured graphs vs eager: equal within fp32
    noise on every output; the capture time is reported."""
    model = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", 256)), seed=0)
    model = model.to("cuda").eval()
    dev = [torch.from_numpy(f.copy()).cuda() for f in frames] * 2
    res = {}
    for graphs in (False, True):
        sam = sam2_fast.Sam2(model, cuda_graphs=graphs)
        st = sam.new_video_state()
        p = {1: {"points": [[210, 350]], "labels": [1]}, 2: {"box": [480, 180, 720, 460]}}
        res[graphs] = [sam.predict_video_frame(st, f, p if i == 0 else None)
                       for i, f in enumerate(dev[:30])]
        if graphs:
            stats = sam.graph_stats
    assert stats["replayed"] > 0 and stats["capture_s"] < 60
    for a, b in zip(res[False], res[True]):
        assert torch.allclose(a.mask_logits, b.mask_logits, rtol=1e-4, atol=1e-4)
        assert torch.allclose(a.object_score_logits, b.object_score_logits, rtol=1e-4, atol=1e-4)
