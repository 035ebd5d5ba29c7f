"""The one tolerance table of the test suite.

Every comparison in tests/ reads its bound from here. Metric: relative L2 error
``||ours - ref||_2 / max(||ref||_2, tiny)`` over the whole tensor (``rel_l2`` below), unless
a row says otherwise.

Why these numbers (fp32): ours and the official compute the same maths in fp32 but in a
different order (fused kernels, other reductions, other matmul blocking), so each op adds
rounding of order 1e-7 relative; across ~30 transformer blocks with random weights and
LayerNorms this grows to ~1e-6..1e-5. The bound 1e-4 leaves 10x headroom over what we
measure (NOTES.md records the measured errors) while still catching any real maths error,
which gives errors of order 1e-2..1.

Video tracking compounds errors through the memory bank frame after frame: 1e-4 on the first
frame, 1e-3 after 12 frames (the issue's aim).

bf16/fp16 rows are for kernel-level tests, where the rule is relative to torch's own error in
the same dtype (flash-attention's test rule): kernel error vs an fp64 reference at most
``KERNEL_ERR_FACTOR`` times torch's error in that dtype plus ``KERNEL_ATOL[dtype]``.
"""

from __future__ import annotations

import torch

# (area, dtype) -> max relative L2 error
REL_L2 = {
    ("module", torch.float32): 1e-4,  # one module (encoder, decoder, prompt encoder)
    ("image_predictor", torch.float32): 1e-4,  # end to end image predictor, logits
    ("video_first_frame", torch.float32): 1e-4,
    ("video_late_frame", torch.float32): 1e-3,  # after up to 12+ tracked frames
    # bf16 model vs the same weights in fp32: bf16 keeps 8 mantissa bits (4e-3 relative per
    # rounding); through the 12-block tiny trunk, the neck and the decoder with random weights
    # the logits drift to ~1.5e-2 (measured); 5e-2 still catches a wrong-dtype bug (O(1) errors)
    ("image_predictor", torch.bfloat16): 5e-2,
}

# Binary masks: pixels whose logit is within rounding of the threshold may flip; with logits
# matching to ~1e-6 relative, far fewer than 0.1% of the pixels are that close to 0.
MASK_FLIP_FRACTION = 1e-3

# A frame given as a torch tensor is resized on its device with torch's antialiased bicubic; the
# official path is PIL's bicubic with uint8 rounding. Both round to uint8: they may differ by
# one intensity level (measured: exactly 1 at most on the bedroom frames).
FRAME_RESIZE_MAX_LEVELS = 1.0

# Automatic mask generator vs the official (tests/test_amg.py), fp32. Ours and the official
# decode the same prompts with logits equal to ~1e-6; the test rig rounds the decoder's mask
# logits to multiples of 1/16, so both sides threshold, upsample and count bitwise-equal logits
# and the masks come out identical (measured: every mask identical). The bounds are the issue's:
# - each official mask matched one-to-one to one of ours with mask IoU >= 0.99;
# - predicted_iou and stability_score within 1e-4 absolute (the IoU predictions differ by ~1e-7;
#   a stability score moves by ~5e-4 per flipped pixel, so this also says "no pixel flipped");
# - area, bbox, point and crop coordinates (integers / exact floats) within 1e-4 relative, which
#   for values below 1e4 pixels means equal.
AMG_MASK_IOU_MIN = 0.99
AMG_SCORE_ATOL = 1e-4
AMG_FIELD_RTOL = 1e-4

KERNEL_ERR_FACTOR = 2.0
KERNEL_ATOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def tol(area: str, dtype: torch.dtype = torch.float32) -> float:
    """The bound for ``area`` in ``dtype`` (KeyError if the table has no such row)."""
    return REL_L2[(area, dtype)]


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative L2 error of ``ours`` against ``ref`` (both cast to float64)."""
    ours = torch.as_tensor(ours).detach().double().cpu()
    ref = torch.as_tensor(ref).detach().double().cpu()
    assert ours.shape == ref.shape, f"shape mismatch {tuple(ours.shape)} vs {tuple(ref.shape)}"
    den = ref.norm().item()
    return (ours - ref).norm().item() / max(den, 1e-12)


# measured errors of this session: (area, what) -> max error; printed at the end of the run
# (conftest's terminal summary) so NOTES.md can record them.
MEASURED: dict = {}


def assert_close_rel(ours, ref, area: str, dtype=torch.float32, what: str = "") -> float:
    """Assert rel_l2(ours, ref) <= tol(area, dtype); records and returns the measured error."""
    err = rel_l2(ours, ref)
    bound = tol(area, dtype)
    key = (area, what or area)
    MEASURED[key] = max(MEASURED.get(key, 0.0), err)
    assert err <= bound, f"{what or area}: relative L2 error {err:.3e} > {bound:.1e}"
    return err
