"""Memory attention of SAM 2: the current frame's features attend to themselves and to the memory
bank (spatial memories + object-pointer tokens), with 2-D axial rotary position encoding.

Mirrors ``sam2.modeling.memory_attention`` (``MemoryAttentionLayer``, ``MemoryAttention``) and
``sam2.modeling.sam.transformer.RoPEAttention`` of the official SAM 2, as configured by every
published config: 4 layers, d_model 256, 1 head, FFN 2048 with ReLU, RoPE theta 10000, cross
attention from 64-dim memories (``kv_in_dim``), position encoding added to the input (x0.1) and to
the cross-attention keys only, final LayerNorm. Parameter names are the official ones
(``memory_attention.layers.{i}.self_attn.q_proj.weight``, ``...cross_attn_image.k_proj...``,
``linear1``, ``linear2``, ``norm1..3``, ``memory_attention.norm``).

The attention itself runs through :func:`sam2_fast.kernels.rope_attention` (rotation of q and of
all but the last ``num_k_exclude_rope`` keys, then softmax attention).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from sam2_fast.model.common import Attention


class RoPEAttention(Attention):
    """Attention with 2-D axial rotary position encoding (official ``RoPEAttention``).

    ``forward(q (B, Nq, E), k (B, Nk, kv_in_dim), v (B, Nk, kv_in_dim), num_k_exclude_rope=0,
    feat_hw=None) -> (B, Nq, E)`` in the input dtype. The queries form a (H, W) grid (row-major,
    ``Nq = H*W``); the first ``Nk - num_k_exclude_rope`` keys are that grid repeated over
    memory frames (``rope_k_repeat``) and are rotated like the queries; the remaining keys (the
    object pointers) are not rotated.

    The cos/sin tables (``axial_rope_tables``, float32, (H*W, head_dim/2)) are cached per grid
    and device; the constructor's ``feat_sizes`` is only the grid assumed when ``feat_hw`` is not
    given and Nq matches it; otherwise a square grid of side sqrt(Nq) is assumed, like the
    official.

    Attribute ``backend`` ("auto" | "triton" | "torch") is passed to the kernel.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1,
                 dropout: float = 0.0, kv_in_dim: Optional[int] = None,
                 rope_theta: float = 10000.0, rope_k_repeat: bool = False,
                 feat_sizes: Tuple[int, int] = (64, 64)) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.rope_theta = float(rope_theta)
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = (int(feat_sizes[0]), int(feat_sizes[1]))  # (end_x = W, end_y = H)
        self.head_dim = self.internal_dim // num_heads
        self.backend = "auto"
        self.kernel_profile = None  # a kernels.KernelProfile (set by build_sam2), or None
        self._tables: Dict[Tuple[int, int, str], Tuple[torch.Tensor, torch.Tensor]] = {}

    def _grid(self, nq: int, feat_hw: Optional[Tuple[int, int]]) -> Tuple[int, int]:
        if feat_hw is not None:
            h, w = int(feat_hw[0]), int(feat_hw[1])
        elif self.feat_sizes[0] * self.feat_sizes[1] == nq:
            w, h = self.feat_sizes
        else:
            side = math.isqrt(nq)
            if side * side != nq:
                raise ValueError(
                    f"RoPEAttention: {nq} queries do not form a square grid; pass feat_hw=(H, W)"
                )
            h = w = side
        if h * w != nq:
            raise ValueError(f"RoPEAttention: grid {h}x{w} does not match {nq} queries")
        return h, w

    def rope_tables(self, h: int, w: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each (h*w, head_dim // 2) float32 on ``device``, cached."""
        key = (h, w, str(device))
        if key not in self._tables:
            from sam2_fast.kernels import axial_rope_tables

            cos, sin = axial_rope_tables(self.head_dim, w, h, theta=self.rope_theta, device=device)
            self._tables[key] = (cos.contiguous(), sin.contiguous())
        return self._tables[key]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                num_k_exclude_rope: int = 0,
                feat_hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        from sam2_fast.kernels import rope_attention

        nq, nk = q.shape[1], k.shape[1]
        if not 0 <= num_k_exclude_rope <= nk:
            raise ValueError(f"num_k_exclude_rope={num_k_exclude_rope} outside [0, {nk}]")
        n_rope = nk - num_k_exclude_rope
        if n_rope != nq and not (self.rope_k_repeat and n_rope % nq == 0):
            raise ValueError(
                f"RoPEAttention: {n_rope} rotated keys must equal the {nq} queries"
                + (" or be a multiple of them" if self.rope_k_repeat else " (rope_k_repeat=False)")
            )
        h, w = self._grid(nq, feat_hw)
        cos, sin = self.rope_tables(h, w, q.device)
        qh = self.separate_heads(self.q_proj(q))
        kh = self.separate_heads(self.k_proj(k))
        vh = self.separate_heads(self.v_proj(v))
        out = rope_attention(qh, kh, vh, cos, sin, num_k_exclude_rope, backend=self.backend,
                             profile=self.kernel_profile)
        return self.out_proj(self.recombine_heads(out))


class MemoryAttentionLayer(nn.Module):
    """One memory-attention layer (official ``MemoryAttentionLayer`` as configured by SAM 2):
    pre-norm self-attention (RoPE, no pos enc added), pre-norm cross-attention to the memory
    (RoPE on queries and spatial keys, memory pos enc added to keys), pre-norm ReLU FFN.

    ``forward(tgt (B, Nq, d_model), memory (B, Nk, kv_in_dim), pos (B, Nk, kv_in_dim),
    query_pos (B, Nq, d_model) | None, num_k_exclude_rope=0, feat_hw=None) -> (B, Nq, d_model)``.
    """

    def __init__(self, d_model: int = 256, dim_feedforward: int = 2048, kv_in_dim: int = 64,
                 rope_theta: float = 10000.0, feat_size: int = 64, num_heads: int = 1) -> None:
        super().__init__()
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        fs = (feat_size, feat_size)
        self.self_attn = RoPEAttention(d_model, num_heads, rope_theta=rope_theta, feat_sizes=fs)
        self.cross_attn_image = RoPEAttention(d_model, num_heads, kv_in_dim=kv_in_dim,
                                              rope_theta=rope_theta, rope_k_repeat=True,
                                              feat_sizes=fs)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        # official flags of every published config
        self.pos_enc_at_attn = False
        self.pos_enc_at_cross_attn_queries = False
        self.pos_enc_at_cross_attn_keys = True

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: Optional[torch.Tensor] = None,
                query_pos: Optional[torch.Tensor] = None, num_k_exclude_rope: int = 0,
                feat_hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        tgt = self.self_block(tgt, query_pos, feat_hw)
        return self.cross_block(tgt, memory, pos, query_pos, num_k_exclude_rope, feat_hw)

    def self_block(self, tgt: torch.Tensor, query_pos: Optional[torch.Tensor] = None,
                   feat_hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """The pre-norm self-attention half: (B, Nq, d_model) -> (B, Nq, d_model)."""
        x = self.norm1(tgt)
        qk = x + query_pos if (self.pos_enc_at_attn and query_pos is not None) else x
        return tgt + self.self_attn(qk, qk, x, feat_hw=feat_hw)

    def cross_block(self, tgt: torch.Tensor, memory: torch.Tensor,
                    pos: Optional[torch.Tensor] = None, query_pos: Optional[torch.Tensor] = None,
                    num_k_exclude_rope: int = 0,
                    feat_hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """The cross-attention to the memory and the FFN: (B, Nq, d_model) -> same."""
        x = self.norm2(tgt)
        q = x + query_pos if (self.pos_enc_at_cross_attn_queries and query_pos is not None) else x
        k = memory + pos if (self.pos_enc_at_cross_attn_keys and pos is not None) else memory
        tgt = tgt + self.cross_attn_image(q, k, memory, num_k_exclude_rope=num_k_exclude_rope,
                                          feat_hw=feat_hw)
        x = self.norm3(tgt)
        return tgt + self.linear2(F.relu(self.linear1(x)))


class MemoryAttention(nn.Module):
    """The memory-attention transformer (official ``MemoryAttention``): input + 0.1 * pos enc,
    ``num_layers`` MemoryAttentionLayers, final LayerNorm ``norm``.

    Constructed by ``Sam2Model`` as ``MemoryAttention(d_model=cfg.d_model,
    num_layers=cfg.memory_attention_layers, dim_feedforward=cfg.memory_attention_ffn_dim,
    kv_in_dim=cfg.mem_dim, rope_theta=cfg.rope_theta, feat_size=cfg.feat_size)``.

    Attribute ``backend`` (property): setting it sets every RoPEAttention's backend.
    """

    def __init__(self, d_model: int = 256, num_layers: int = 4, dim_feedforward: int = 2048,
                 kv_in_dim: int = 64, rope_theta: float = 10000.0, feat_size: int = 64) -> None:
        super().__init__()
        self.d_model = d_model
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, dim_feedforward, kv_in_dim, rope_theta, feat_size)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = True

    @property
    def backend(self) -> str:
        return self.layers[0].self_attn.backend if len(self.layers) else "auto"

    @backend.setter
    def backend(self, value: str) -> None:
        for m in self.modules():
            if isinstance(m, RoPEAttention):
                m.backend = value

    def forward(self, curr: Union[torch.Tensor, Sequence[torch.Tensor]],
                memory: torch.Tensor,
                curr_pos: Union[torch.Tensor, Sequence[torch.Tensor], None] = None,
                memory_pos: Optional[torch.Tensor] = None,
                num_obj_ptr_tokens: int = 0,
                feat_hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Condition the current frame's features on the memory.

        Official (sequence-first) layout:

        Args:
            curr: (HW, B, d_model) current features, row-major over the (H, W) grid, or a
                one-element list of it (the official passes a list).
            memory: (M*HW + P, B, kv_in_dim): M spatial memories of HW tokens each, then P
                object-pointer tokens (not rotated).
            curr_pos: (HW, B, d_model) sine position encoding of ``curr`` (or a 1-list).
            memory_pos: (M*HW + P, B, kv_in_dim) position encodings of the memory (spatial +
                temporal), added to the cross-attention keys.
            num_obj_ptr_tokens: P.
            feat_hw: (H, W); default: the constructor's square ``feat_size`` grid if it matches
                HW, else sqrt(HW) square (as the official).

        Returns:
            (HW, B, d_model), dtype of ``curr``.

        Raises:
            ValueError: list inputs of length != 1, batch mismatch between ``curr`` and
                ``memory``, or a memory length inconsistent with the grid.
        """
        if isinstance(curr, (list, tuple)):
            if len(curr) != 1 or not isinstance(curr_pos, (list, tuple)) or len(curr_pos) != 1:
                raise ValueError("MemoryAttention: list inputs must hold exactly one level")
            curr, curr_pos = curr[0], curr_pos[0]
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(
                f"MemoryAttention: batch of curr ({curr.shape[1]}) != batch of memory "
                f"({memory.shape[1]})"
            )
        B = curr.shape[1]
        # several objects on one frame: ``curr`` is that frame's features broadcast over the
        # objects (stride 0), so the first layer's self-attention, which sees only the frame,
        # is computed once and broadcast
        shared = (B > 1 and curr.stride(1) == 0
                  and (curr_pos is None or curr_pos.stride(1) == 0))
        if shared:
            curr = curr[:, :1]
            curr_pos = curr_pos[:, :1] if curr_pos is not None else None
        out = curr
        if self.pos_enc_at_input and curr_pos is not None:
            out = out + 0.1 * curr_pos
        out = out.transpose(0, 1)
        qpos = curr_pos.transpose(0, 1) if curr_pos is not None else None
        mem = memory.transpose(0, 1)
        mpos = memory_pos.transpose(0, 1) if memory_pos is not None else None
        for i, layer in enumerate(self.layers):
            if i == 0 and shared:
                # materialized: the layers after it run faster on a contiguous batch
                out = layer.self_block(out, qpos, feat_hw).expand(B, -1, -1).contiguous()
                qpos = qpos.expand(B, -1, -1) if qpos is not None else None
                out = layer.cross_block(out, mem, pos=mpos, query_pos=qpos,
                                        num_k_exclude_rope=num_obj_ptr_tokens, feat_hw=feat_hw)
            else:
                out = layer(out, mem, pos=mpos, query_pos=qpos,
                            num_k_exclude_rope=num_obj_ptr_tokens, feat_hw=feat_hw)
        return self.norm(out).transpose(0, 1)
