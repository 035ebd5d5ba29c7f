"""Module-level parity of the memory encoder and memory attention against the official
``sam2==1.1.0`` modules (same randomized weights, loaded strictly under the official names)."""

from __future__ import annotations

import pytest
import torch

from tests.official import build_official
from tests.tolerances import assert_close_rel, rel_l2

from sam2_fast.model.memory_attention import MemoryAttention, RoPEAttention
from sam2_fast.model.memory_encoder import MemoryEncoder


@pytest.fixture(scope="module")
def official_tiny_128():
    torch.manual_seed(0)
    return build_official("sam2.1_hiera_tiny", image_size=128, seed=1)


def _sub_state(model, prefix):
    return {k[len(prefix):]: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def test_memory_encoder_parity(official_tiny_128):
    off = official_tiny_128.memory_encoder
    ours = MemoryEncoder(out_dim=64, in_dim=256)
    ours.load_state_dict(_sub_state(official_tiny_128, "memory_encoder."), strict=True)
    ours.eval()
    g = torch.Generator().manual_seed(3)
    pix = torch.randn(2, 256, 8, 8, generator=g)
    masks = torch.randn(2, 1, 128, 128, generator=g) * 5
    with torch.no_grad():
        for skip in (False, True):
            ref = off(pix, masks, skip_mask_sigmoid=skip)
            out = ours(pix, masks, skip_mask_sigmoid=skip)
            assert_close_rel(out["vision_features"], ref["vision_features"], "module")
            assert len(out["vision_pos_enc"]) == 1
            assert_close_rel(out["vision_pos_enc"][0], ref["vision_pos_enc"][0], "module")


def test_memory_encoder_bad_mask_size(official_tiny_128):
    ours = MemoryEncoder(out_dim=64, in_dim=256)
    with pytest.raises(ValueError, match="does not match"):
        ours(torch.randn(1, 256, 8, 8), torch.randn(1, 1, 64, 64))


def _make_memory(g, hw, b, n_mem, n_ptr):
    mem = torch.randn(n_mem * hw + n_ptr, b, 64, generator=g)
    mem_pos = torch.randn(n_mem * hw + n_ptr, b, 64, generator=g)
    return mem, mem_pos


@pytest.mark.parametrize("n_mem,n_ptr", [(1, 0), (3, 8), (7, 64)])
def test_memory_attention_parity(official_tiny_128, n_mem, n_ptr):
    off = official_tiny_128.memory_attention
    ours = MemoryAttention(d_model=256, num_layers=4, dim_feedforward=2048, kv_in_dim=64,
                           rope_theta=10000.0, feat_size=8)
    ours.load_state_dict(_sub_state(official_tiny_128, "memory_attention."), strict=True)
    ours.eval()
    g = torch.Generator().manual_seed(5)
    hw, b = 64, 2
    curr = torch.randn(hw, b, 256, generator=g)
    curr_pos = torch.randn(hw, b, 256, generator=g)
    mem, mem_pos = _make_memory(g, hw, b, n_mem, n_ptr)
    with torch.no_grad():
        ref = off(curr=[curr], curr_pos=[curr_pos], memory=mem, memory_pos=mem_pos,
                  num_obj_ptr_tokens=n_ptr)
        out = ours(curr=[curr], curr_pos=[curr_pos], memory=mem, memory_pos=mem_pos,
                   num_obj_ptr_tokens=n_ptr)
    err = assert_close_rel(out, ref, "module")
    print(f"memory attention n_mem={n_mem} n_ptr={n_ptr}: rel L2 {err:.2e}")


def test_memory_attention_other_grid(official_tiny_128):
    """A grid other than the constructor's is recomputed (official recomputes sqrt(Nq))."""
    off = official_tiny_128.memory_attention
    ours = MemoryAttention(feat_size=8)
    ours.load_state_dict(_sub_state(official_tiny_128, "memory_attention."), strict=True)
    g = torch.Generator().manual_seed(7)
    hw = 16 * 16
    curr = torch.randn(hw, 1, 256, generator=g)
    curr_pos = torch.randn(hw, 1, 256, generator=g)
    mem, mem_pos = _make_memory(g, hw, 1, 2, 4)
    with torch.no_grad():
        ref = off(curr=[curr], curr_pos=[curr_pos], memory=mem, memory_pos=mem_pos,
                  num_obj_ptr_tokens=4)
        out = ours(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4)
        out2 = ours(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4, feat_hw=(16, 16))
    assert_close_rel(out, ref, "module")
    assert rel_l2(out2, out) == 0.0


def test_memory_attention_bad_inputs():
    ours = MemoryAttention(feat_size=4)
    curr = torch.randn(16, 1, 256)
    with pytest.raises(ValueError, match="batch"):
        ours(curr, torch.randn(16, 2, 64), curr, torch.randn(16, 2, 64))
    with pytest.raises(ValueError, match="rotated keys"):
        ours(curr, torch.randn(20, 1, 64), curr, torch.randn(20, 1, 64), num_obj_ptr_tokens=0)
    with pytest.raises(ValueError, match="square grid"):
        ours(torch.randn(15, 1, 256), torch.randn(15, 1, 64), torch.randn(15, 1, 256),
             torch.randn(15, 1, 64))


def test_backend_attribute_propagates():
    m = MemoryAttention(num_layers=2, feat_size=4)
    assert m.backend == "auto"
    m.backend = "torch"
    assert all(x.backend == "torch" for x in m.modules() if isinstance(x, RoPEAttention))


def test_memory_attention_triton_backend(official_tiny_128):
    """The memory attention through the Triton rope_attention kernel (interpreter on CPU)."""
    from sam2_fast.kernels import interpreter_enabled

    if not torch.cuda.is_available() and not interpreter_enabled():
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    off = official_tiny_128.memory_attention
    ours = MemoryAttention(feat_size=8)
    ours.load_state_dict(_sub_state(official_tiny_128, "memory_attention."), strict=True)
    ours.backend = "triton"
    g = torch.Generator().manual_seed(11)
    curr = torch.randn(64, 1, 256, generator=g)
    curr_pos = torch.randn(64, 1, 256, generator=g)
    mem, mem_pos = _make_memory(g, 64, 1, 3, 8)
    with torch.no_grad():
        ref = off(curr=[curr], curr_pos=[curr_pos], memory=mem, memory_pos=mem_pos,
                  num_obj_ptr_tokens=8)
        out = ours(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=8)
    err = assert_close_rel(out, ref, "module")
    print(f"memory attention (triton backend): rel L2 {err:.2e}")
