"""The model runs in the dtype it is built with, end to end (no fp32/bf16 mix-ups)."""

from __future__ import annotations

import numpy as np
import torch

import sam2_fast
from sam2_fast.checkpoint import randomize_
from sam2_fast.model.sam2_model import Sam2Model
from sam2_fast.predictors.video import Sam2VideoPredictor
from tolerances import assert_close_rel


def test_bf16_image_video_and_stream_run_in_bf16():
    seed = int(torch.randint(0, 2**31 - 1, ()))
    m32 = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", 64)), seed=seed).eval()
    m16 = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny", 64)), seed=seed).eval().to(torch.bfloat16)
    assert m16.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.dtype == torch.float32
    img = np.random.default_rng().integers(0, 256, (60, 80, 3), dtype=np.uint8)
    res = []
    for m in (m32, m16):
        p = sam2_fast.Sam2ImagePredictor(m)
        p.set_image(img)
        res.append(p.predict(np.array([[10.0, 20.0]]), np.array([1]), box=np.array([5, 5, 60, 50]),
                             return_logits=True))
    for a, b in zip(res[1], res[0]):
        assert a.dtype == np.float32 and np.isfinite(a).all()
        assert_close_rel(a, b, "image_predictor", torch.bfloat16, what="bf16 vs fp32 predict")
    # video and stream: memories live in the model dtype
    vp = Sam2VideoPredictor(m16)
    st = vp.init_state([img] * 3)
    vp.add_new_points_or_box(st, 0, 1, points=[[10, 20]], labels=[1])
    outs = [m for _, _, m in vp.propagate_in_video(st)]
    assert len(outs) == 3 and all(torch.isfinite(o).all() for o in outs)
    mem = st["output_dict_per_obj"][0]["non_cond_frame_outputs"][2]["maskmem_features"]
    assert mem.dtype == torch.bfloat16
    sam = sam2_fast.Sam2(m16)
    state = sam.new_video_state()
    for i in range(3):
        out = sam.predict_video_frame(state, img, {1: {"points": [[10, 20]], "labels": [1]}} if i == 0 else None)
        assert out.mask_logits.dtype == torch.float32 and torch.isfinite(out.mask_logits).all()
    assert state.groups[0].non_cond[2]["maskmem_features"].dtype == torch.bfloat16
