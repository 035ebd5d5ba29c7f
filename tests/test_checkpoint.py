"""Checkpoint loading: formats, variant/version detection, strictness, corrupt files, configs."""

from __future__ import annotations

import pytest
import torch

import sam2_fast
from sam2_fast.checkpoint import CheckpointError, detect_config, load_state_dict, save_state_dict
from sam2_fast.config import CONFIGS, get_config
from sam2_fast.model.sam2_model import Sam2Model
from official import ALL_CONFIGS, build_official


@pytest.fixture(scope="module")
def tiny_sd():
    return build_official("sam2.1_hiera_tiny", 128, seed=1).state_dict()


def test_configs_match_official_values():
    """The registry holds the official Hydra values (read from the installed package)."""
    from omegaconf import OmegaConf
    import sam2
    from pathlib import Path

    from official import OFFICIAL_CONFIG_FILES

    root = Path(sam2.__file__).parent
    for name, rel in OFFICIAL_CONFIG_FILES.items():
        y = OmegaConf.load(root / rel).model
        cfg = CONFIGS[name]
        trunk = y.image_encoder.trunk
        assert cfg.hiera.embed_dim == trunk.embed_dim and cfg.hiera.num_heads == trunk.num_heads
        if "stages" in trunk:
            assert tuple(trunk.stages) == cfg.hiera.stages
            assert tuple(trunk.global_att_blocks) == cfg.hiera.global_att_blocks
        if "window_spec" in trunk:
            assert tuple(trunk.window_spec) == cfg.hiera.window_spec
        if "window_pos_embed_bkg_spatial_size" in trunk:
            assert tuple(trunk.window_pos_embed_bkg_spatial_size) == cfg.hiera.window_pos_embed_bkg_spatial_size
        assert tuple(y.image_encoder.neck.backbone_channel_list) == cfg.backbone_channel_list
        assert bool(y.get("no_obj_embed_spatial", False)) == cfg.no_obj_embed_spatial
        assert bool(y.add_tpos_enc_to_obj_ptrs) == cfg.add_tpos_enc_to_obj_ptrs
        assert bool(y.get("proj_tpos_enc_in_obj_ptrs", False)) == cfg.proj_tpos_enc_in_obj_ptrs
        assert bool(y.get("use_signed_tpos_enc_to_obj_ptrs", False)) == cfg.use_signed_tpos_enc_to_obj_ptrs
        assert y.num_maskmem == cfg.num_maskmem and y.image_size == cfg.image_size


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_detect_every_published_config(name):
    """Keys and shapes of the official model identify variant and version."""
    sd = build_official(name, 128).state_dict()
    assert detect_config(sd).name == name
    # and our model has exactly the official keys and shapes
    ours = Sam2Model(get_config(name, 128)).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in sd.items()}


def test_formats_roundtrip(tmp_path, tiny_sd):
    pt = save_state_dict(tiny_sd, tmp_path / "a.pt")
    st = save_state_dict(tiny_sd, tmp_path / "a.safetensors")
    torch.save(tiny_sd, tmp_path / "bare.pt")  # a bare state dict
    for p in (pt, st, tmp_path / "bare.pt"):
        sd = load_state_dict(p)
        assert sd.keys() == tiny_sd.keys()
        assert all(torch.equal(sd[k], tiny_sd[k]) for k in sd)
    assert "model" in torch.load(pt, weights_only=True)  # the official layout
    m = sam2_fast.build_sam2(None, st, device="cpu", image_size=128)
    assert m.config.name == "sam2.1_hiera_tiny" and not m.training


def test_missing_and_unexpected_keys_listed(tmp_path, tiny_sd):
    sd = dict(tiny_sd)
    del sd["no_mem_embed"]
    sd["extra.weight"] = torch.randn(3)
    save_state_dict(sd, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): no_mem_embed.*unexpected keys \(1\): extra.weight"):
        sam2_fast.build_sam2(None, tmp_path / "x.pt", device="cpu")


def test_config_mismatch_names_keys(tmp_path, tiny_sd):
    save_state_dict(tiny_sd, tmp_path / "t.pt")
    with pytest.raises(CheckpointError,
                       match=r"sam2.1_hiera_large does not match.*detected: sam2.1_hiera_tiny.*shape mismatches"):
        sam2_fast.build_sam2("sam2.1_hiera_large", tmp_path / "t.pt", device="cpu")
    with pytest.raises(CheckpointError, match=r"detected: sam2.1_hiera_tiny.*unexpected keys.*no_obj_embed_spatial"):
        sam2_fast.build_sam2("sam2_hiera_tiny", tmp_path / "t.pt", device="cpu")


def test_corrupt_and_truncated_files(tmp_path, tiny_sd):
    pt = save_state_dict(tiny_sd, tmp_path / "c.pt")
    st = save_state_dict(tiny_sd, tmp_path / "c.safetensors")
    for p in (pt, st):
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 3])
        with pytest.raises(CheckpointError, match="cannot read"):
            load_state_dict(p)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state_dict(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "nope.pt")
    torch.save({"model": {"a": 1}}, tmp_path / "nt.pt")
    with pytest.raises(CheckpointError, match="non-tensor"):
        load_state_dict(tmp_path / "nt.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a SAM 2 checkpoint"):
        sam2_fast.build_sam2(None, tmp_path / "other.pt", device="cpu")


def test_config_lookup_and_image_size():
    assert get_config("sam2.1_hiera_b+.yaml").name == "sam2.1_hiera_base_plus"
    assert get_config("configs/sam2/sam2_hiera_l.yaml").name == "sam2_hiera_large"
    assert get_config("sam2_hiera_small", 512).image_size == 512
    with pytest.raises(ValueError, match="unknown SAM 2 config") as e:
        get_config("sam3_hiera_tiny")
    assert "checkpoint" not in str(e.value)
    with pytest.raises(ValueError, match=r"looks like a checkpoint file: .*build_sam2\(checkpoint=\.\.\.\)"):
        get_config("weights/rt.pt")  # build_sam2("rt.pt") puts a checkpoint where the config goes
    for bad in (500, 0, -32, 1000):
        with pytest.raises(ValueError, match="multiple of 32"):
            get_config("sam2_hiera_tiny", bad)
    with pytest.raises(ValueError, match="needs a config"):
        sam2_fast.build_sam2()
    with pytest.raises(ValueError, match="dtype"):
        sam2_fast.build_sam2("sam2_hiera_tiny", dtype="int8")
    with pytest.raises(ValueError, match="backend"):
        sam2_fast.build_sam2("sam2_hiera_tiny", backend="cuda")
