"""sam2_fast as an exact drop-in for the official package: the official names, ``build_sam2`` /
``build_sam2_video_predictor`` with the official positional and keyword arguments (the
sam2_fast keywords still work), ``from_pretrained`` through the download cache, and the
``propagate_in_video`` progress bar. (Float32 masks from ``predict``/``predict_batch`` are
checked against the official in test_image_parity.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sam2_fast
from sam2_fast import hub
from sam2_fast.checkpoint import randomize_
from sam2_fast.model.sam2_model import Sam2Model
from official import _overrides, install_torchvision_shim
from tolerances import assert_close_rel

S = 64
CFG_FILE = "configs/sam2.1/sam2.1_hiera_t.yaml"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A random sam2.1_hiera_tiny in the official .pt layout (valid for the download cache)."""
    p = tmp_path_factory.mktemp("dropin") / "sam2.1_hiera_tiny.pt"
    model = randomize_(Sam2Model(sam2_fast.get_config("sam2.1_hiera_tiny")), seed=11)
    torch.save({"model": model.state_dict()}, p)
    return p


def test_official_names():
    assert sam2_fast.SAM2ImagePredictor is sam2_fast.Sam2ImagePredictor
    assert sam2_fast.SAM2VideoPredictor is sam2_fast.Sam2VideoPredictor
    for name in ("SAM2ImagePredictor", "SAM2VideoPredictor", "build_sam2", "build_sam2_video_predictor",
                 "build_sam2_hf", "build_sam2_video_predictor_hf"):
        assert name in sam2_fast.__all__


def test_build_sam2_official_arguments(ckpt):
    sd = torch.load(ckpt, weights_only=True)["model"]
    # the official positional order: config_file, ckpt_path, device, mode, hydra_overrides_extra,
    # apply_postprocessing
    m = sam2_fast.build_sam2(CFG_FILE, str(ckpt), "cpu", "eval", [f"++model.image_size={S}"], True)
    assert m.config.name == "sam2.1_hiera_tiny" and m.config.image_size == S and not m.training
    assert all(torch.equal(v, sd[k]) for k, v in m.state_dict().items())
    # the official keywords, and the sam2_fast ones
    m2 = sam2_fast.build_sam2(config_file=CFG_FILE, ckpt_path=ckpt, device="cpu", mode="train",
                              apply_postprocessing=False, image_size=S)
    assert m2.training and not m2.config.dynamic_multimask_via_stability
    assert not m2.config.binarize_mask_from_pts_for_mem_enc
    m3 = sam2_fast.build_sam2(config="sam2.1_hiera_tiny", checkpoint=ckpt, device="cpu", image_size=S)
    assert m3.config == m.config
    over = ["++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.9",
            "model.memory_temporal_stride_for_eval=2"]
    m4 = sam2_fast.build_sam2(CFG_FILE, ckpt, device="cpu", hydra_overrides_extra=over, image_size=S)
    assert m4.config.dynamic_multimask_stability_thresh == 0.9 and m4.config.memory_temporal_stride_for_eval == 2
    assert m4.sam_mask_decoder.dynamic_multimask_stability_thresh == 0.9
    for kw, match in [
        (dict(config_file=CFG_FILE, config="sam2.1_hiera_tiny"), "config_file or config"),
        (dict(ckpt_path=ckpt, checkpoint=ckpt), "ckpt_path or checkpoint"),
        (dict(config_file=CFG_FILE, mode="predict"), "mode"),
        (dict(config_file=CFG_FILE, hydra_overrides_extra=["++model.no_such_field=1"]), "no_such_field"),
        (dict(config_file=CFG_FILE, hydra_overrides_extra=["++model.fill_hole_area=3"]), "video predictor"),
        (dict(config_file=CFG_FILE, hydra_overrides_extra="++model.image_size=64"), "list of strings"),
        (dict(config_file=CFG_FILE, hydra_overrides_extra=["image_size=64"]), r"\+\+model\."),
    ]:
        with pytest.raises(ValueError, match=match):
            sam2_fast.build_sam2(**kw, device="cpu")


def test_apply_postprocessing_false_matches_official(ckpt):
    """apply_postprocessing=False turns the dynamic multimask fallback off, as the official."""
    install_torchvision_shim()
    from sam2.build_sam import build_sam2 as official_build
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    official = official_build(CFG_FILE, str(ckpt), device="cpu", hydra_overrides_extra=_overrides(S),
                              apply_postprocessing=False)
    ref = SAM2ImagePredictor(official)
    ref._bb_feat_sizes = [(16, 16), (8, 8), (4, 4)]  # upstream #138
    ours = sam2_fast.SAM2ImagePredictor(sam2_fast.build_sam2(CFG_FILE, ckpt, "cpu", apply_postprocessing=False,
                                                             image_size=S))
    image = np.random.default_rng().integers(0, 256, (40, 56, 3), dtype=np.uint8)
    ref.set_image(image)
    ours.set_image(image)
    kw = dict(point_coords=np.array([[20.0, 10.0]]), point_labels=np.array([1]), multimask_output=False,
              return_logits=True)
    for o, r, what in zip(ours.predict(**kw), ref.predict(**kw), ("masks", "iou", "low_res")):
        assert_close_rel(o, r, "image_predictor", what=f"no_postprocessing.{what}")


def test_build_sam2_video_predictor_official_arguments(ckpt):
    p = sam2_fast.build_sam2_video_predictor(CFG_FILE, ckpt, "cpu", "eval", [f"++model.image_size={S}"])
    assert p.fill_hole_area == 8 and p.model.config.binarize_mask_from_pts_for_mem_enc
    p = sam2_fast.build_sam2_video_predictor(CFG_FILE, ckpt, "cpu", apply_postprocessing=False,
                                             vos_optimized=True, image_size=S)
    assert p.fill_hole_area == 0 and not p.model.config.binarize_mask_from_pts_for_mem_enc
    # tools/vos_inference.py passes non_overlap_masks as an override
    p = sam2_fast.build_sam2_video_predictor(config_file=CFG_FILE, ckpt_path=ckpt, device="cpu",
                                             hydra_overrides_extra=["++model.non_overlap_masks=true",
                                                                    "++model.fill_hole_area=3"], image_size=S)
    assert p.non_overlap_masks and p.fill_hole_area == 3
    p = sam2_fast.build_sam2_video_predictor("sam2.1_hiera_tiny", checkpoint=ckpt, device="cpu", image_size=S,
                                             add_all_frames_to_correct_as_cond=True)
    assert p.add_all_frames_to_correct_as_cond
    with pytest.raises(TypeError):
        sam2_fast.build_sam2_video_predictor(CFG_FILE, ckpt, device="cpu", image_size=S, no_such_option=1)


def test_from_pretrained_uses_the_cache(ckpt, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SAM2_FAST_CACHE", str(cache))
    monkeypatch.setenv("SAM2_FAST_OFFLINE", "1")
    with pytest.raises(hub.HubError) as e:  # offline and not cached: where to put the file
        sam2_fast.SAM2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-tiny")
    assert str(cache / "sam2.1_hiera_tiny.pt") in str(e.value) and hub.MODEL_URLS["sam2.1_hiera_tiny"] in str(e.value)
    with pytest.raises(hub.HubError, match="unknown model"):
        sam2_fast.SAM2VideoPredictor.from_pretrained("facebook/sam3-hiera-tiny")
    (cache / "sam2.1_hiera_tiny.pt").symlink_to(ckpt)
    p = sam2_fast.SAM2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-tiny", device="cpu", image_size=S,
                                                     mask_threshold=0.5)
    assert p.mask_threshold == 0.5 and p.model.config.name == "sam2.1_hiera_tiny" and p.model.config.image_size == S
    v = sam2_fast.SAM2VideoPredictor.from_pretrained("sam2.1_hiera_tiny", device="cpu", image_size=S,
                                                     fill_hole_area=2)
    assert isinstance(v, sam2_fast.Sam2VideoPredictor) and v.fill_hole_area == 2
    assert all(hub.canonical_name(k) == n for k, n in hub.HF_MODEL_IDS.items()) and len(hub.HF_MODEL_IDS) == 8


def test_propagate_progress_bar(ckpt, capsys):
    p = sam2_fast.build_sam2_video_predictor(None, ckpt, device="cpu", image_size=S)
    frames = [np.random.default_rng().integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(3)]
    st = p.init_state(frames)
    p.add_new_points_or_box(st, 0, 1, points=[[10, 10]], labels=[1])
    capsys.readouterr()
    assert [f for f, _, _ in p.propagate_in_video(st)] == [0, 1, 2]
    assert "propagate in video" in capsys.readouterr().err  # on by default, as the official
    assert [f for f, _, _ in p.propagate_in_video(st, progress=False)] == [0, 1, 2]
    assert capsys.readouterr().err == ""
