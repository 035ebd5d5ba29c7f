"""Helpers for the video parity tests: the official ``SAM2VideoPredictor`` and ours, run side by
side on the same randomized checkpoint and the same real frames, compared after every call.

* The official stores memories in bf16 (``maskmem_features.to(torch.bfloat16)``), which makes an
  fp32 reference impossible (upstream #308). :func:`neutralize_bf16_memory` wraps the official
  ``_encode_new_memory`` so that its features come back as a tensor subclass whose
  ``.to(torch.bfloat16)`` is a no-op (every other op returns plain tensors), so the official
  runs in fp32 end to end without editing its code.
* Forward hooks on both mask decoders record the raw mask logits and object scores of every
  decoder call *before* the NO_OBJ_SCORE gating, so frames where the object is predicted absent
  are still compared on real numbers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

import torch

from tests.official import DATA_DIR, build_official
from tests.tolerances import rel_l2, tol

BEDROOM = DATA_DIR / "bedroom"


class _KeepFp32(torch.Tensor):
    """A tensor whose ``.to(torch.bfloat16)`` returns itself; all other ops give plain tensors."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.to:
            dt = kwargs.get("dtype", next((a for a in args[1:] if isinstance(a, torch.dtype)), None))
            if dt is torch.bfloat16:
                return args[0]
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)


def neutralize_bf16_memory(official) -> None:
    """Keep the official video predictor's memories in fp32 (see the module docstring)."""
    orig = official._encode_new_memory

    def wrapped(*args, **kwargs):
        feats, pos = orig(*args, **kwargs)
        return feats.as_subclass(_KeepFp32), pos

    official._encode_new_memory = wrapped


def save_safetensors(model, path: Path) -> Path:
    """The ``.safetensors`` half of ``tests.official.save_checkpoint`` (same keys, no ``.pt``:
    writing the 1 GB ``.pt`` of the large models dominates test setup)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              str(path))
    return path


def frames_dir(root: Path, num_frames: int) -> str:
    """A folder with symlinks to the first ``num_frames`` bedroom frames."""
    d = Path(root) / f"bedroom_{num_frames}"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(num_frames):
        link = d / f"{i:05d}.jpg"
        if not link.exists():
            os.symlink(BEDROOM / f"{i:05d}.jpg", link)
    return str(d)


class VideoPair:
    """The official and our video predictor on one randomized checkpoint.

    ``score_shift`` is added to the bias of the object-score head's last layer (in the official
    model, before saving the checkpoint) to choose whether random weights see the object
    (positive scores) or not.
    """

    def __init__(self, tmp_path: Path, name: str, image_size: int, num_frames: int,
                 seed: int = 0, score_shift: float = 0.0, config_overrides=None,
                 **predictor_kwargs) -> None:
        import dataclasses

        from sam2_fast.config import get_config
        from sam2_fast.predictors.video import build_sam2_video_predictor

        self.name = name
        off = build_official(name, image_size=image_size, video=True, seed=seed)
        with torch.no_grad():
            off.sam_mask_decoder.pred_obj_score_head.layers[2].bias += score_shift
        st = save_safetensors(off, Path(tmp_path) / "ckpt.safetensors")
        neutralize_bf16_memory(off)
        off.fill_hole_area = 0  # the official skips hole filling on CPU anyway (no CUDA ext)
        for k, v in predictor_kwargs.items():
            setattr(off, k, v)
        config = name
        if config_overrides:  # model settings (e.g. memory_temporal_stride_for_eval) on both
            for k, v in config_overrides.items():
                assert hasattr(off, k), k
                setattr(off, k, v)
            config = dataclasses.replace(get_config(name, image_size), **config_overrides)
        self.off = off
        self.ours = build_sam2_video_predictor(config, st, device="cpu", image_size=image_size,
                                               backend="torch", fill_hole_area=0,
                                               **predictor_kwargs)
        self.raw: Dict[str, list] = {"off": [], "ours": []}
        off.sam_mask_decoder.register_forward_hook(self._hook("off"))
        self.ours.model.sam_mask_decoder.register_forward_hook(self._hook("ours"))
        video = frames_dir(tmp_path, num_frames)
        with torch.inference_mode():
            self.s_off = off.init_state(video)
            self.s_ours = self.ours.init_state(video)
        self.errors: List[tuple] = []  # (what, frame, rel_l2)
        self.scores: Dict[object, List[tuple]] = {}  # obj_id -> [(frame, off, ours)]
        self.n_yielded = 0

    def _hook(self, side):
        def hook(module, inputs, outputs):
            self.raw[side].append((outputs[0].detach().float().clone(),
                                   outputs[3].detach().float().clone()))
        return hook

    # ---------------------------------------------------------------- comparisons
    def _check(self, what: str, frame: int, ours, ref, area: str) -> float:
        err = rel_l2(ours, ref)
        self.errors.append((what, frame, err))
        bound = tol(area)
        assert err <= bound, f"{self.name} {what} frame {frame}: rel L2 {err:.3e} > {bound:.1e}"
        return err

    def _check_raw(self, frame: int, area: str) -> None:
        """Compare decoder calls recorded since the last check (pre-gating logits, scores)."""
        ro, rm = self.raw["off"], self.raw["ours"]
        assert len(ro) == len(rm), f"decoder called {len(rm)} times, official {len(ro)}"
        for (lo, so), (lm, sm) in zip(ro, rm):
            self._check("raw_logits", frame, lm, lo, area)
            self._check("raw_score", frame, sm, so, area)
        ro.clear()
        rm.clear()

    def _record_scores(self, frame: int) -> None:
        for obj_idx, obj_id in enumerate(self.s_ours["obj_ids"]):
            assert self.s_off["obj_ids"][obj_idx] == obj_id

            def find(state, obj_idx=obj_idx):
                d = state["output_dict_per_obj"][obj_idx]
                t = state["temp_output_dict_per_obj"][obj_idx]
                for dd in (t["cond_frame_outputs"], t["non_cond_frame_outputs"],
                           d["cond_frame_outputs"], d["non_cond_frame_outputs"]):
                    if frame in dd:
                        return dd[frame]
                return None

            a, b = find(self.s_off), find(self.s_ours)
            assert (a is None) == (b is None)
            if a is None:
                continue
            sa, sb = a["object_score_logits"].item(), b["object_score_logits"].item()
            self.scores.setdefault(obj_id, []).append((frame, sa, sb))
            if abs(sa) > 1e-3:
                assert (sa > 0) == (sb > 0), f"object {obj_id} frame {frame}: score sign differs"
            self._check(f"obj_ptr[{obj_id}]", frame, b["obj_ptr"], a["obj_ptr"],
                        "video_late_frame")
            if a.get("maskmem_features") is not None:
                self._check(f"maskmem[{obj_id}]", frame, b["maskmem_features"],
                            a["maskmem_features"], "video_late_frame")

    def _area(self) -> str:
        return "video_first_frame" if self.n_yielded == 0 else "video_late_frame"

    # ---------------------------------------------------------------- actions
    def add_points(self, frame: int, obj_id, **kwargs):
        with torch.inference_mode():
            fa, ia, ma = self.off.add_new_points_or_box(self.s_off, frame, obj_id, **kwargs)
            fb, ib, mb = self.ours.add_new_points_or_box(self.s_ours, frame, obj_id, **kwargs)
        assert fa == fb and list(ia) == list(ib)
        area = self._area()
        self._check("prompt_mask", frame, mb, ma, area)
        self._check_raw(frame, area)
        self._record_scores(frame)
        return mb

    def add_mask(self, frame: int, obj_id, mask):
        with torch.inference_mode():
            fa, ia, ma = self.off.add_new_mask(self.s_off, frame, obj_id, mask)
            fb, ib, mb = self.ours.add_new_mask(self.s_ours, frame, obj_id, mask)
        assert fa == fb and list(ia) == list(ib)
        area = self._area()
        self._check("prompt_mask", frame, mb, ma, area)
        self._check_raw(frame, area)
        self._record_scores(frame)
        return mb

    def propagate(self, **kwargs) -> List[int]:
        frames = []
        with torch.inference_mode():
            it_off = self.off.propagate_in_video(self.s_off, **kwargs)
            it_ours = self.ours.propagate_in_video(self.s_ours, **kwargs)
            for (fa, ia, ma), (fb, ib, mb) in zip(it_off, it_ours):
                assert fa == fb and list(ia) == list(ib)
                area = self._area()
                self._check("mask", fa, mb, ma, area)
                self._check_raw(fa, area)
                self._record_scores(fa)
                self.n_yielded += 1
                frames.append(fa)
            # both generators must be exhausted together
            assert next(it_off, None) is None and next(it_ours, None) is None
        return frames

    def clear_prompts(self, frame: int, obj_id):
        with torch.inference_mode():
            fa, ia, ma = self.off.clear_all_prompts_in_frame(self.s_off, frame, obj_id)
            fb, ib, mb = self.ours.clear_all_prompts_in_frame(self.s_ours, frame, obj_id)
        assert fa == fb and list(ia) == list(ib)
        self._check("cleared_mask", frame, mb, ma, "video_late_frame")
        return mb

    def remove_object(self, obj_id):
        with torch.inference_mode():
            ids_a, upd_a = self.off.remove_object(self.s_off, obj_id)
            ids_b, upd_b = self.ours.remove_object(self.s_ours, obj_id)
        assert list(ids_a) == list(ids_b)
        assert [f for f, _ in upd_a] == sorted(f for f, _ in upd_b) or \
            sorted(f for f, _ in upd_a) == [f for f, _ in upd_b]
        da, db = dict(upd_a), dict(upd_b)
        assert da.keys() == db.keys()
        for f in da:
            self._check("removed_update", f, db[f], da[f], "video_late_frame")
        return ids_b

    # ---------------------------------------------------------------- summary
    def max_error(self, what_prefix: str = "") -> float:
        errs = [e for w, _, e in self.errors if w.startswith(what_prefix)]
        return max(errs) if errs else 0.0

    def positive_score_frames(self) -> int:
        return sum(1 for v in self.scores.values() for _, sa, _ in v if sa > 0)

    def report(self) -> str:
        per_frame: Dict[int, float] = {}
        for w, f, e in self.errors:
            if w in ("mask", "prompt_mask", "raw_logits"):
                per_frame[f] = max(per_frame.get(f, 0.0), e)
        lines = [f"[{self.name}] max rel L2 per frame (masks, pre-gating logits): "
                 + ", ".join(f"{f}:{e:.1e}" for f, e in sorted(per_frame.items()))]
        for what in ("mask", "raw_logits", "raw_score", "obj_ptr", "maskmem"):
            lines.append(f"  max {what}: {self.max_error(what):.2e}")
        for obj_id, v in self.scores.items():
            lines.append(f"  obj {obj_id} scores: "
                         + " ".join(f"{f}:{a:+.3f}" for f, a, _ in v[:24]))
        return "\n".join(lines)
