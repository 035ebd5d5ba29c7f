"""The kernels in place: model modules with backend="triton" (interpreted on the CPU, compiled
on CUDA) against the official SAM 2 outputs."""

from __future__ import annotations

import pytest
import torch

import sam2_fast
from sam2_fast.kernels import interpreter_enabled
from official import build_official, save_checkpoint
from tolerances import assert_close_rel

needs_triton = pytest.mark.skipif(
    not (torch.cuda.is_available() or interpreter_enabled()),
    reason="needs CUDA or TRITON_INTERPRET=1")


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    size = 64 if not torch.cuda.is_available() else 256
    official = build_official("sam2.1_hiera_tiny", size, seed=int(torch.randint(0, 2**31 - 1, ()).item()))
    pt, _ = save_checkpoint(official, tmp_path_factory.mktemp("tiny_triton"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ours = sam2_fast.build_sam2(None, pt, device=device, image_size=size, backend="triton")
    return official, ours, size, device


@needs_triton
@torch.no_grad()
def test_image_encoder_triton_vs_official(tiny_pair):
    official, ours, size, device = tiny_pair
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(1, 3, size, size)
    ref = official.forward_image(x)
    out = ours.forward_image(x.to(device))
    for i in range(3):
        assert_close_rel(out["backbone_fpn"][i], ref["backbone_fpn"][i], "module", what=f"triton backbone_fpn[{i}]")


@pytest.mark.gpu
@torch.no_grad()
def test_torch_compile_fullgraph_over_the_model(tiny_pair):
    """torch.compile(fullgraph=True) traces the image encoder and memory attention with the
    Triton ops in place (inductor on CUDA) and computes what eager computes."""
    _, ours, size, device = tiny_pair
    x = torch.randn(1, 3, size, size, device=device)
    ref = ours.forward_image(x)
    out = torch.compile(ours.forward_image, fullgraph=True)(x)
    for i in range(3):
        assert_close_rel(out["backbone_fpn"][i], ref["backbone_fpn"][i], "module", what=f"compiled backbone_fpn[{i}]")
    hw = size // 16
    curr = torch.randn(hw * hw, 2, 256, device=device)
    pos = torch.randn(hw * hw, 2, 256, device=device)
    mem = torch.randn(3 * hw * hw + 8, 2, 64, device=device)
    mem_pos = torch.randn(3 * hw * hw + 8, 2, 64, device=device)
    ma = ours.memory_attention
    ref = ma(curr=[curr], curr_pos=[pos], memory=mem, memory_pos=mem_pos, num_obj_ptr_tokens=8, feat_hw=(hw, hw))
    out = torch.compile(ma, fullgraph=True)(curr=[curr], curr_pos=[pos], memory=mem, memory_pos=mem_pos,
                                            num_obj_ptr_tokens=8, feat_hw=(hw, hw))
    assert_close_rel(out, ref, "module", what="compiled memory_attention")
