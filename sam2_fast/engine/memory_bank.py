"""The memory bank of SAM 2 video tracking: typed entries, the one rule for what a tracking step
reads, and the fixed-capacity buffers a step reads them from.

Three pieces, each used by every front end (:class:`~sam2_fast.predictors.video.Sam2VideoPredictor`,
the streams of :mod:`sam2_fast.predictors.streaming`, several streams batched together):

* :class:`MemoryEntry` — one frame's output and memory for a batch of B objects (the official
  per-frame ``current_out`` dict, typed). Row views of a batched entry remember their parent, so
  the entries of objects tracked as one batch are stored once and re-batched without copies.
* :func:`plan_memory_read` — THE rule (official ``SAM2Base._prepare_memory_conditioned_features``,
  eval mode): which conditioning frames, which tracked frames (``t_pos`` 1..num_maskmem-1, with
  ``memory_temporal_stride_for_eval``) and which object pointers a step on ``frame_idx`` reads.
  Retention of a stream, ``clear_non_cond_mem_around_input`` and object batching are all
  decided from this one :class:`MemoryReadPlan` (see :class:`MemoryStore`).
* :class:`MemoryBank` — preallocated, fixed-capacity buffers of the memory tokens and their
  position encodings for one batch of objects: conditioning slots, ``num_maskmem - 1`` spatial
  slots, and the object-pointer slots, with a validity mask. :meth:`MemoryBank.load` copies the
  entries a plan names into them (no host sync, no allocation once the capacity is reached);
  once the bank is full every step reads tensors of the same shapes at the same addresses,
  which is what lets a step be compiled once or captured as a CUDA graph.

Token layout of the buffers (official order, sequence-first, ``mem_dim`` channels)::

    [selected conditioning frames | tracked frames t_pos 1..num_maskmem-1 | pointer tokens]
      HW tokens each (t_pos 0)      HW tokens each, missing ones skipped    k = hidden/mem_dim
                                                                          tokens per pointer

Valid slots are packed to the front in that order, so the attention reads ``memory[:T]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch

from ..config import Sam2Config

COND = "cond"
NON_COND = "non_cond"


# ----------------------------------------------------------------------------- entries
@dataclass(eq=False)
class MemoryEntry:
    """One frame's tracking output and memory for a batch of B objects.

    Attributes:
        obj_ptr: (B, hidden_dim) object pointer, model dtype.
        object_score_logits: (B, 1) object score logits (> 0: visible).
        maskmem_features: (B, mem_dim, h, w) spatial memory in the storage dtype, or None
            (not encoded yet, or dropped because no later step reads it).
        maskmem_pos_enc: (B, mem_dim, h, w) its sine position encoding (the same for every
            frame and object: a view of one constant), or None with ``maskmem_features``.
        pred_masks: (B, 1, 4h, 4w) float32 low-resolution mask logits (hole-filled when hole
            filling is on), or None where the front end does not keep them.

    Official key access works too (``entry["obj_ptr"]``, ``entry.get("maskmem_features")``,
    ``entry["maskmem_pos_enc"]`` is a one-element list as in the official books).
    """

    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    maskmem_features: Optional[torch.Tensor] = None
    maskmem_pos_enc: Optional[torch.Tensor] = None
    pred_masks: Optional[torch.Tensor] = None
    _parent: Optional[Tuple["MemoryEntry", int]] = field(default=None, repr=False)

    _TENSORS = ("obj_ptr", "object_score_logits", "maskmem_features", "maskmem_pos_enc",
                "pred_masks")

    # -- official dict access (read-only) ---------------------------------------------------
    def __getitem__(self, key: str):
        if key not in self._TENSORS:
            raise KeyError(key)
        value = getattr(self, key)
        if key == "maskmem_pos_enc" and value is not None:
            return [value]
        return value

    def get(self, key: str, default=None):
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, key: str) -> bool:
        return key in self._TENSORS and getattr(self, key) is not None

    # -- batch ----------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return int(self.obj_ptr.shape[0])

    def tensors(self) -> Iterable[torch.Tensor]:
        for name in self._TENSORS:
            t = getattr(self, name)
            if t is not None:
                yield t

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Dict[str, Optional[torch.Tensor]]:
        return {n: (None if getattr(self, n) is None else fn(getattr(self, n))) for n in self._TENSORS}

    def row(self, j: int) -> "MemoryEntry":
        """Object ``j`` as a one-object entry of views (no copy); remembers its parent so that
        :meth:`cat` of consecutive rows gives the parent back."""
        return MemoryEntry(**self._map(lambda t: t[j:j + 1]), _parent=(self, j))

    def select(self, rows: Sequence[int]) -> "MemoryEntry":
        """A copy holding only batch ``rows`` (in that order)."""
        idx = list(rows)
        return MemoryEntry(**self._map(lambda t: t[torch.tensor(idx, device=t.device)]))

    @staticmethod
    def cat(entries: Sequence["MemoryEntry"]) -> "MemoryEntry":
        """Concatenate entries over the batch. When they are rows 0..B-1 of one batched entry,
        in order, that entry is returned (no copy). Missing (None) tensors stay None only when
        missing in every entry.

        Raises:
            ValueError: an empty list, or a tensor present in some entries and not others.
        """
        if not entries:
            raise ValueError("MemoryEntry.cat needs at least one entry")
        whole = MemoryEntry.parent_of(entries)
        if whole is not None:
            return whole
        out = {}
        for name in MemoryEntry._TENSORS:
            vals = [getattr(e, name) for e in entries]
            present = [v is not None for v in vals]
            if all(present):
                out[name] = torch.cat(vals, dim=0)
            elif any(present):
                raise ValueError(f"MemoryEntry.cat: {name} is missing in some entries")
            else:
                out[name] = None
        return MemoryEntry(**out)

    @staticmethod
    def parent_of(entries: Sequence["MemoryEntry"]) -> Optional["MemoryEntry"]:
        """The batched entry whose rows 0..B-1 are ``entries`` in order (or the single entry
        itself), else None."""
        if len(entries) == 1:
            return entries[0]
        parent = entries[0]._parent
        if parent is not None and parent[0].batch_size == len(entries) and all(
                e._parent is not None and e._parent[0] is parent[0] and e._parent[1] == i
                for i, e in enumerate(entries)):
            return parent[0]
        return None

    def to(self, device: torch.device, dtype_features: Optional[torch.dtype] = None,
           non_blocking: bool = True) -> "MemoryEntry":
        """The entry on ``device`` (``maskmem_features`` cast to ``dtype_features`` if given);
        ``self`` when nothing changes."""
        same_dev = all(t.device == torch.device(device) for t in self.tensors())
        f = self.maskmem_features
        if same_dev and (dtype_features is None or f is None or f.dtype == dtype_features):
            return self
        vals = self._map(lambda t: t.to(device, non_blocking=non_blocking))
        if f is not None and dtype_features is not None:
            vals["maskmem_features"] = f.to(device=device, dtype=dtype_features,
                                            non_blocking=non_blocking)
        return MemoryEntry(**vals)

    def pointer_only(self) -> "MemoryEntry":
        """The same entry without its spatial memory (and without masks)."""
        return MemoryEntry(obj_ptr=self.obj_ptr, object_score_logits=self.object_score_logits)

    def with_memory(self, maskmem_features: torch.Tensor, maskmem_pos_enc: torch.Tensor
                    ) -> "MemoryEntry":
        vals = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_parent"}
        vals.update(maskmem_features=maskmem_features, maskmem_pos_enc=maskmem_pos_enc)
        return MemoryEntry(**vals)


# ----------------------------------------------------------------------------- the rule
@dataclass(frozen=True)
class MemoryReadPlan:
    """What a tracking step on ``frame_idx`` reads (official eval-mode selection).

    Attributes:
        frame_idx: the frame being tracked.
        cond_frames: selected conditioning frames (official order; all read with t_pos 0).
        spatial: ``(t_pos, frame, source)`` of the tracked-frame memories read, t_pos ascending
            (1 = oldest .. num_maskmem-1 = previous frame); ``source`` is ``"non_cond"``, or
            ``"cond"`` for a conditioning frame that was not selected.
        pointers: ``(frame, source, distance)`` of the object pointers read, official order
            (conditioning frames first), ``distance`` the temporal position fed to the pointer
            encoding.
        max_ptrs: ``min(num_frames, max_obj_ptrs_in_encoder)`` (the encoding divides the
            distances by ``max_ptrs - 1``).
    """

    frame_idx: int
    cond_frames: Tuple[int, ...]
    spatial: Tuple[Tuple[int, int, str], ...]
    pointers: Tuple[Tuple[int, str, int], ...]
    max_ptrs: int

    def non_cond_spatial_frames(self) -> set:
        """Tracked frames whose spatial memory this step reads."""
        return {f for _, f, src in self.spatial if src == NON_COND}

    def non_cond_pointer_frames(self) -> set:
        """Tracked frames whose object pointer this step reads."""
        return {f for f, src, _ in self.pointers if src == NON_COND}

    def relative(self) -> tuple:
        """The plan with every frame index taken relative to ``frame_idx``: two objects (or
        streams) whose relative plans are equal can be tracked as one batch."""
        t = self.frame_idx
        return (tuple(f - t for f in self.cond_frames),
                tuple((p, f - t, s) for p, f, s in self.spatial),
                tuple((f - t, s, d) for f, s, d in self.pointers), self.max_ptrs)


def select_closest_cond_frames(frame_idx: int, cond_frames: Sequence[int],
                               max_cond_frame_num: int) -> Tuple[List[int], List[int]]:
    """At most ``max_cond_frame_num`` conditioning frames temporally closest to ``frame_idx``
    (official ``sam2.modeling.sam2_utils.select_closest_cond_frames``): the closest before, the
    closest at-or-after, then the nearest others; ``-1`` means all.

    Args:
        cond_frames: the conditioning frame indices in insertion order.

    Returns:
        (selected, unselected) frame lists; the selected ones in the official order.

    Raises:
        ValueError: ``max_cond_frame_num`` is 0, 1 or below -1 while there are more
            conditioning frames than it.
    """
    frames = list(cond_frames)
    if max_cond_frame_num == -1 or len(frames) <= max_cond_frame_num:
        return frames, []
    if max_cond_frame_num < 2:
        raise ValueError(f"max_cond_frames_in_attn must be -1 or >= 2, got {max_cond_frame_num}")
    selected: List[int] = []
    before = [t for t in frames if t < frame_idx]
    after = [t for t in frames if t >= frame_idx]
    if before:
        selected.append(max(before))
    if after:
        selected.append(min(after))
    rest = sorted((t for t in frames if t not in selected), key=lambda t: abs(t - frame_idx))
    selected += rest[: max_cond_frame_num - len(selected)]
    return selected, [t for t in frames if t not in selected]


def plan_memory_read(config: Sam2Config, frame_idx: int, cond_frames: Sequence[int],
                     non_cond_frames, num_frames: Optional[int],
                     track_in_reverse: bool = False) -> MemoryReadPlan:
    """The frames a (non-initial) tracking step on ``frame_idx`` reads: the one rule, mirroring
    the official ``SAM2Base._prepare_memory_conditioned_features`` in eval mode.

    Args:
        config: the model config (``num_maskmem``, ``max_cond_frames_in_attn``,
            ``memory_temporal_stride_for_eval``, ``max_obj_ptrs_in_encoder``,
            ``only_obj_ptrs_in_the_past_for_eval``, ``use_signed_tpos_enc_to_obj_ptrs``,
            ``use_obj_ptrs_in_encoder``).
        frame_idx: the frame to track.
        cond_frames: conditioning frames held for this batch, in insertion order.
        non_cond_frames: a container (``in``) of the tracked frames held.
        num_frames: video length (None: unbounded stream).
        track_in_reverse: tracking towards frame 0.

    Returns:
        a :class:`MemoryReadPlan` naming only frames that are held.

    Raises:
        RuntimeError: no conditioning frame (a step needs at least one prompt first).
        ValueError: a bad ``max_cond_frames_in_attn``.
    """
    if len(cond_frames) == 0:
        raise RuntimeError(f"frame {frame_idx}: tracking needs at least one conditioning frame "
                           "in the memory bank (add a prompt first)")
    selected, unselected = select_closest_cond_frames(frame_idx, cond_frames,
                                                      config.max_cond_frames_in_attn)
    unselected_set = set(unselected)

    def source(t: int) -> Optional[str]:
        if t in non_cond_frames:
            return NON_COND
        if t in unselected_set:
            return COND
        return None

    num_maskmem = config.num_maskmem
    r = config.memory_temporal_stride_for_eval
    spatial = []
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos
        if t_rel == 1:
            prev = frame_idx + 1 if track_in_reverse else frame_idx - 1
        elif not track_in_reverse:
            prev = ((frame_idx - 2) // r) * r - (t_rel - 2) * r
        else:
            prev = -(-(frame_idx + 2) // r) * r + (t_rel - 2) * r
        src = source(prev)
        if src is not None:
            spatial.append((t_pos, prev, src))

    big = 1 << 62
    max_ptrs = min(num_frames if num_frames is not None else big, config.max_obj_ptrs_in_encoder)
    pointers = []
    if config.use_obj_ptrs_in_encoder:
        sign = -1 if track_in_reverse else 1
        for t in selected:
            if config.only_obj_ptrs_in_the_past_for_eval and \
                    (t < frame_idx if track_in_reverse else t > frame_idx):
                continue
            d = (frame_idx - t) * sign if config.use_signed_tpos_enc_to_obj_ptrs \
                else abs(frame_idx - t)
            pointers.append((t, COND, d))
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if track_in_reverse else frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            src = source(t)
            if src is not None:
                pointers.append((t, src, t_diff))
    return MemoryReadPlan(frame_idx, tuple(selected), tuple(spatial), tuple(pointers), max_ptrs)


# ----------------------------------------------------------------------------- the store
class MemoryStore:
    """The memories held for one batch of objects: conditioning and tracked entries by frame
    (``cond`` / ``non_cond``, dicts of :class:`MemoryEntry` with B rows), in insertion order.

    The offline predictor keeps every frame (official semantics: any frame can be re-read when
    tracking resumes, in either direction); a stream calls :meth:`retain` after each frame,
    which keeps exactly what the next step's :class:`MemoryReadPlan` reads (everything older
    is never read again, for any ``memory_temporal_stride_for_eval``).
    """

    def __init__(self, cond: Optional[Dict[int, MemoryEntry]] = None,
                 non_cond: Optional[Dict[int, MemoryEntry]] = None) -> None:
        self.cond: Dict[int, MemoryEntry] = cond if cond is not None else {}
        self.non_cond: Dict[int, MemoryEntry] = non_cond if non_cond is not None else {}

    # the official books' keys: store["cond_frame_outputs"], store["non_cond_frame_outputs"]
    def __getitem__(self, key: str) -> Dict[int, MemoryEntry]:
        if key == "cond_frame_outputs":
            return self.cond
        if key == "non_cond_frame_outputs":
            return self.non_cond
        raise KeyError(key)

    def clear(self) -> None:
        self.cond.clear()
        self.non_cond.clear()

    def plan(self, config: Sam2Config, frame_idx: int, num_frames: Optional[int],
             track_in_reverse: bool = False) -> MemoryReadPlan:
        """:func:`plan_memory_read` over the frames held here."""
        return plan_memory_read(config, frame_idx, list(self.cond), self.non_cond, num_frames,
                                track_in_reverse)

    def entry(self, frame: int, source: str) -> MemoryEntry:
        return (self.cond if source == COND else self.non_cond)[frame]

    def retain(self, plan: MemoryReadPlan) -> None:
        """Keep only the tracked frames ``plan`` reads: spatial memories of its spatial frames,
        object pointers (and scores) of its pointer frames; drop the rest."""
        spatial = plan.non_cond_spatial_frames()
        ptr = plan.non_cond_pointer_frames()
        for f in list(self.non_cond):
            if f in spatial:
                continue
            if f in ptr:
                e = self.non_cond[f]
                if e.maskmem_features is not None or e.pred_masks is not None:
                    self.non_cond[f] = e.pointer_only()
            else:
                del self.non_cond[f]

    def select_rows(self, rows: Sequence[int]) -> None:
        """Keep only batch ``rows`` of every entry (copies)."""
        self.cond = {t: e.select(rows) for t, e in self.cond.items()}
        self.non_cond = {t: e.select(rows) for t, e in self.non_cond.items()}

    def rekeyed(self, offset: int) -> "MemoryStore":
        """A view with every frame index shifted by ``offset`` (same entries)."""
        return MemoryStore({t + offset: e for t, e in self.cond.items()},
                           {t + offset: e for t, e in self.non_cond.items()})

    def nbytes(self) -> int:
        """Bytes of the distinct tensors held (a shared constant counted once)."""
        return MemoryStore.nbytes_of([self])

    @staticmethod
    def nbytes_of(stores: Sequence["MemoryStore"]) -> int:
        """Bytes of the distinct tensors held by several stores together."""
        seen, total = set(), 0
        for store in stores:
            for e in list(store.cond.values()) + list(store.non_cond.values()):
                for t in e.tensors():
                    key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()))
                    if key not in seen:
                        seen.add(key)
                        total += t.numel() * t.element_size()
        return total


def frames_read_around(config: Sam2Config, frame_idx: int, cond_frames: Sequence[int],
                       non_cond_frames, num_frames: Optional[int]) -> set:
    """Tracked frames whose spatial memory the steps next to ``frame_idx`` read (the step on
    ``frame_idx + 1`` forwards and on ``frame_idx - 1`` in reverse), ``frame_idx`` itself
    excluded: what ``clear_non_cond_mem_around_input`` drops after a prompt on ``frame_idx``, so
    that tracking on from a corrected frame never reads memories of the old prediction next to
    it."""
    out = set()
    if num_frames is None or frame_idx + 1 < num_frames:
        out |= plan_memory_read(config, frame_idx + 1, cond_frames, non_cond_frames, num_frames,
                                False).non_cond_spatial_frames()
    if frame_idx - 1 >= 0:
        out |= plan_memory_read(config, frame_idx - 1, cond_frames, non_cond_frames, num_frames,
                                True).non_cond_spatial_frames()
    out.discard(frame_idx)
    return out


# ----------------------------------------------------------------------------- the buffers
class MemoryInputs(NamedTuple):
    """What a tracking step reads (``Sam2Model.track_step``'s ``memory`` argument).

    Attributes:
        memory: (T, B, mem_dim) memory tokens (spatial memories, then pointer tokens).
        memory_pos: (T, B, mem_dim) their position encodings.
        num_obj_ptr_tokens: how many of the T tokens are pointer tokens (at the end).
        steady: the bank was full: every later step of this batch reads the same shapes from
            the same buffers (what makes a step capturable as a CUDA graph).
    """

    memory: torch.Tensor
    memory_pos: torch.Tensor
    num_obj_ptr_tokens: int
    steady: bool = False


def host_to_device(values: Sequence, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small host list as a device tensor without a host sync (pinned memory and an
    asynchronous copy on CUDA)."""
    t = torch.tensor(list(values), dtype=dtype)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class MemoryBank:
    """Fixed-capacity buffers holding the memory that one tracking step of B objects reads.

    Capacity: ``cond_capacity`` conditioning slots + ``num_maskmem - 1`` spatial slots of
    ``h*w`` tokens each, and ``cond_capacity + max_obj_ptrs_in_encoder - 1`` pointer slots of
    ``k = hidden_dim // mem_dim`` tokens each (``k = 1`` when they are equal). The buffers are
    allocated once; :meth:`load` grows the conditioning capacity (a new allocation) only when a
    plan selects more conditioning frames than it holds.

    Attributes:
        memory: (capacity tokens, B, mem_dim) buffer, model dtype.
        memory_pos: (capacity tokens, B, mem_dim) position encodings (spatial + temporal).
        obj_ptrs: (pointer slots, B, hidden_dim) the pointers of the last load.
        valid_spatial: host list, one bool per spatial slot (conditioning slots first, then
            t_pos 1..num_maskmem-1) — which slots the last load filled.
        valid_ptr: host list, one bool per pointer slot.
        num_tokens / num_obj_ptr_tokens: valid lengths of the last load (host ints).
    """

    def __init__(self, model, batch_size: int, feat_hw: Tuple[int, int],
                 cond_capacity: int = 1) -> None:
        cfg = model.config
        self.model = model
        self.batch_size = int(batch_size)
        self.feat_hw = (int(feat_hw[0]), int(feat_hw[1]))
        self.hw = self.feat_hw[0] * self.feat_hw[1]
        self.mem_dim = model.mem_dim
        self.hidden_dim = model.hidden_dim
        self.num_maskmem = model.num_maskmem
        self.max_ptrs = cfg.max_obj_ptrs_in_encoder
        self.ptr_split = self.hidden_dim // self.mem_dim if self.mem_dim < self.hidden_dim else 1
        self.device = model.device
        self.dtype = model.dtype
        self._spatial_key: Optional[tuple] = None
        self._allocate(max(1, int(cond_capacity)))

    def _allocate(self, cond_capacity: int) -> None:
        self.cond_capacity = cond_capacity
        self.spatial_slots = cond_capacity + self.num_maskmem - 1
        self.ptr_slots = cond_capacity + self.max_ptrs - 1
        tokens = self.spatial_slots * self.hw + self.ptr_slots * self.ptr_split
        B, M = self.batch_size, self.mem_dim
        self.memory = torch.empty(tokens, B, M, device=self.device, dtype=self.dtype)
        self.memory_pos = torch.empty(tokens, B, M, device=self.device, dtype=self.dtype)
        self.obj_ptrs = torch.empty(self.ptr_slots, B, self.hidden_dim, device=self.device,
                                    dtype=self.dtype)
        self.valid_spatial = [False] * self.spatial_slots
        self.valid_ptr = [False] * self.ptr_slots
        self.num_tokens = 0
        self.num_obj_ptr_tokens = 0
        self._spatial_key = None

    @property
    def full(self) -> bool:
        """Every non-conditioning slot was filled by the last load (steady state)."""
        c = self.cond_capacity
        return all(self.valid_spatial[c:]) and all(self.valid_ptr[c:])

    def load(self, plan: MemoryReadPlan, stores: Sequence[MemoryStore],
             offsets: Optional[Sequence[int]] = None) -> MemoryInputs:
        """Fill the buffers with what ``plan`` reads.

        Args:
            plan: from :func:`plan_memory_read` (frames relative to the first store's frames
                plus ``offsets[0]``).
            stores: row blocks of the batch, in order; their batch sizes add up to B.
            offsets: per store, the shift from the plan's frame indices to the store's own
                (several streams at different frames batched together); default 0.

        Returns:
            :class:`MemoryInputs` (views of the buffers; ``steady`` when the bank is full).

        Raises:
            ValueError: the stores' batch sizes do not add up to B.
        """
        offs = list(offsets) if offsets is not None else [0] * len(stores)
        n_cond = len(plan.cond_frames)
        if n_cond > self.cond_capacity:
            cap = self.cond_capacity
            while cap < n_cond:
                cap *= 2
            self._allocate(cap)
        hw = self.hw

        def gather(frame: int, source: str) -> List[Tuple[int, MemoryEntry]]:
            """(first row, entry) blocks covering the batch: one block when the entries are
            rows of one batched entry (objects tracked together last time)."""
            entries = [s.entry(frame + o, source) for s, o in zip(stores, offs)]
            whole = MemoryEntry.parent_of(entries)
            if whole is not None:
                entries = [whole]
            blocks, row = [], 0
            for e in entries:
                blocks.append((row, e))
                row += e.batch_size
            if row != self.batch_size:
                raise ValueError(f"memory of frame {frame} has {row} objects, the bank holds "
                                 f"{self.batch_size}")
            return blocks

        # spatial slots: conditioning frames (t_pos 0), then tracked frames t_pos ascending
        reads = [(0, f, COND) for f in plan.cond_frames] + list(plan.spatial)
        slot_of = list(range(n_cond)) + [self.cond_capacity + t_pos - 1
                                         for t_pos, _, _ in plan.spatial]
        self.valid_spatial = [False] * self.spatial_slots
        pos_const = None
        for i, ((_t_pos, frame, source), slot) in enumerate(zip(reads, slot_of)):
            dst = self.memory[i * hw:(i + 1) * hw]
            for row, e in gather(frame, source):
                if e.maskmem_features is None:
                    raise RuntimeError(f"frame {frame}: its spatial memory is not encoded (run "
                                       "the memory encoder on prompted frames before tracking)")
                dst[:, row:row + e.batch_size].copy_(
                    e.maskmem_features.flatten(2).permute(2, 0, 1), non_blocking=True)
                if pos_const is None:
                    pos_const = e.maskmem_pos_enc
            self.valid_spatial[slot] = True
        n_spatial = len(reads)
        key = (tuple(t for t, _, _ in reads),)
        if n_spatial and key != self._spatial_key:
            # position encodings: the constant sine encoding + the temporal encoding of each
            # t_pos; rewritten only when the layout changes (constant in steady state)
            tpos = self.model.maskmem_tpos_enc
            p = pos_const[:1].flatten(2).permute(2, 0, 1).to(self.dtype)  # (HW, 1, M)
            for i, (t_pos, _, _) in enumerate(reads):
                self.memory_pos[i * hw:(i + 1) * hw].copy_(
                    (p + tpos[self.num_maskmem - t_pos - 1].to(self.dtype)).expand(
                        hw, self.batch_size, self.mem_dim))
            self._spatial_key = key

        # object pointers
        self.valid_ptr = [False] * self.ptr_slots
        n_ptr = len(plan.pointers)
        start = n_spatial * hw
        if n_ptr:
            dists = []
            n_cond_ptr = 0
            for j, (frame, source, d) in enumerate(plan.pointers):
                for row, e in gather(frame, source):
                    self.obj_ptrs[j, row:row + e.batch_size].copy_(e.obj_ptr, non_blocking=True)
                dists.append(d)
                if source == COND and frame in plan.cond_frames:
                    self.valid_ptr[n_cond_ptr] = True
                    n_cond_ptr += 1
                else:
                    self.valid_ptr[self.cond_capacity + min(abs(d), self.max_ptrs - 1) - 1] = True
            tokens, pos = self.model._object_pointer_tokens(self.obj_ptrs[:n_ptr], dists,
                                                            plan.max_ptrs)
            k = tokens.shape[0]
            self.memory[start:start + k].copy_(tokens)
            self.memory_pos[start:start + k].copy_(pos)
            self.num_obj_ptr_tokens = k
        else:
            self.num_obj_ptr_tokens = 0
        self.num_tokens = start + self.num_obj_ptr_tokens
        return MemoryInputs(self.memory[:self.num_tokens], self.memory_pos[:self.num_tokens],
                            self.num_obj_ptr_tokens, self.full)


__all__ = ["MemoryEntry", "MemoryReadPlan", "MemoryStore", "MemoryBank", "MemoryInputs",
           "plan_memory_read",
           "select_closest_cond_frames", "frames_read_around", "host_to_device", "COND",
           "NON_COND"]
