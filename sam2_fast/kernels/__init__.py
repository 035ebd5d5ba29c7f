"""Triton kernels of sam2_fast, each with its pure-torch reference.

Public ops (all take ``backend="auto" | "triton" | "torch"``, see :mod:`._backend`):

* :func:`windowed_attention` -- Hiera window attention + q max-pool (``sam2_fast::windowed_attention``)
* :func:`rope_attention` -- SAM 2 memory attention with axial RoPE (``sam2_fast::rope_attention``);
  :func:`rope_rotate` -- the key rotation on its own, for keys cached across frames
  (``sam2_fast::rope_rotate``)
* :func:`fpn_upsample_add` / :func:`fpn_lateral_upsample_add` -- FPN top-down step
  (``sam2_fast::fpn_upsample_add`` / ``sam2_fast::fpn_lateral_upsample_add``)

Which implementation ``backend="auto"`` runs, per op and shape, comes from a runtime profile
(``sam2-fast tune``) or the built-in table of measured wins (:mod:`.profile`); auto never picks a
path measured slower than torch on that GPU.

Importing this package does not need triton (kernels are defined against stand-ins then, and
only the torch backend can run). The torch.library ops are registered at import.
"""

from ._backend import interpreter_enabled, resolve_backend, triton_available
from .fpn_upsample_add import (
    fpn_lateral_upsample_add,
    fpn_lateral_upsample_add_reference,
    fpn_upsample_add,
    fpn_upsample_add_reference,
)
from ._flash import FlashConfig
from .profile import (
    BUILTIN_PROFILES,
    PROFILE_FILENAME,
    KernelProfile,
    ProfileError,
    ProfileWarning,
    load_profile,
    resolve_profile,
    save_profile,
)
from .rope_attention import (
    axial_rope_tables,
    rope_attention,
    rope_attention_reference,
    rope_rotate,
    rope_rotate_reference,
)
from .windowed_attention import windowed_attention, windowed_attention_reference

__all__ = [
    "BUILTIN_PROFILES",
    "FlashConfig",
    "KernelProfile",
    "PROFILE_FILENAME",
    "ProfileError",
    "ProfileWarning",
    "axial_rope_tables",
    "fpn_lateral_upsample_add",
    "fpn_lateral_upsample_add_reference",
    "fpn_upsample_add",
    "fpn_upsample_add_reference",
    "interpreter_enabled",
    "load_profile",
    "resolve_backend",
    "rope_attention",
    "rope_attention_reference",
    "rope_rotate",
    "rope_rotate_reference",
    "resolve_profile",
    "save_profile",
    "triton_available",
    "windowed_attention",
    "windowed_attention_reference",
]
