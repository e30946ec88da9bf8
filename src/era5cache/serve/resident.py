"""Resident batches: copy a split once to a device, then build every batch there.

Frames are normalised and NaN-filled once while copying (in blocks, so host memory stays
bounded), stored in ``dtype`` (float32, bfloat16 or float16) on ``device``; a batch is two
gathers by index on the device, cast to ``batch_dtype`` (default: ``dtype``). The validity
mask is kept only for the channels whose split holds a NaN (one byte a value of those
channels; the others are all valid).

Sharing out among ``world_size`` ranks, two ways:

- ``shard=False``: every rank holds the whole split. Each epoch draws one permutation from
  ``seed + epoch`` (identical on all ranks), pads it like ``DistributedSampler`` so every rank
  gets the same number of batches (no rank hangs on an uneven split), and gives rank ``r``
  the entries ``r, r + world_size, ...``.
- ``shard=True``: rank ``r`` holds only the ``r``-th of ``world_size`` consecutive, equal
  ranges of the split's windows (padded by repeating its own windows), so ``world_size``
  devices hold ``world_size`` times the steps. Each epoch it permutes its own range (seed
  ``(seed, epoch, rank)``). What it gives up: a rank always draws from the same time range;
  the global batch (all ranks together, averaged by DDP) still spans the whole split.

Works on any device, the CPU included.
"""

from __future__ import annotations

import math

import numpy as np
import torch

COPY_BLOCK_STEPS = 256


def shard_windows(n: int, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s windows (indices into ``0 .. n-1``) when sharded: the ``rank``-th of
    ``world_size`` consecutive ranges of ``ceil(n / world_size)``, a short last range padded
    by repeating its own windows (the last window where a rank has none)."""
    per = math.ceil(n / world_size)
    own = np.arange(rank * per, min(n, (rank + 1) * per))
    if own.size == 0:
        own = np.array([n - 1])
    return np.resize(own, per)


def resident_bytes(ds, windows: np.ndarray | None = None, dtype=torch.float32) -> int:
    """Device bytes that :class:`ResidentBatches` takes for ``windows`` (default all) of
    ``ds``: the frames they span in ``dtype``, plus the mask of the channels with NaN where
    ``ds`` returns masks."""
    starts = ds.starts if windows is None else ds.starts[windows]
    if starts.size == 0:
        return 0
    frames = int(starts.max() - starts.min()) + ds.seq_len + ds.lead
    c, h, w = ds.frame_shape
    mask = ds.nan_channels.size * h * w if ds.return_mask else 0
    per_frame = c * h * w * torch.finfo(dtype).bits // 8 + mask
    return frames * per_frame


class ResidentBatches:
    """Iterable of batches ``(x, y[, mask][, times])`` built on ``device``; see module doc."""

    def __init__(self, ds, device="cuda", dtype=torch.float32, batch_size=64, shuffle=True,
                 drop_last=False, seed=0, rank=0, world_size=1, shard=False,
                 batch_dtype=None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.device = torch.device(device)
        self.dtype, self.batch_size = dtype, int(batch_size)
        self.batch_dtype = batch_dtype or dtype
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.rank, self.world_size, self.shard = rank, world_size, bool(shard)
        self.seq_len, self.lead = ds.seq_len, ds.lead
        self.return_mask, self.return_time = ds.return_mask, ds.return_time
        self.epoch = 0
        if len(ds) == 0:
            raise ValueError(f"{ds!r} has no windows to place on {self.device}")
        mine = shard_windows(len(ds), rank, world_size) if shard else np.arange(len(ds))
        starts = ds.starts[mine]
        lo = int(starts.min())
        hi = int(starts.max()) + ds.seq_len - 1 + ds.lead + 1
        c, h, w = ds.frame_shape
        self.frames = torch.empty((hi - lo, c, h, w), dtype=dtype, device=self.device)
        self.nan_channels = torch.as_tensor(ds.nan_channels, device=self.device)
        self.mask = (torch.empty((hi - lo, ds.nan_channels.size, h, w), dtype=torch.bool,
                                 device=self.device) if ds.return_mask else None)
        for a in range(lo, hi, COPY_BLOCK_STEPS):
            b = min(hi, a + COPY_BLOCK_STEPS)
            block = ds.read_steps(slice(a, b))  # normalised as the Dataset's items are
            if self.mask is not None:
                valid = ~np.isnan(block[:, ds.nan_channels])
                self.mask[a - lo:b - lo] = torch.from_numpy(valid).to(self.device)
            t = torch.nan_to_num_(torch.from_numpy(block), nan=ds.fill_value)
            self.frames[a - lo:b - lo] = t.to(self.device, dtype)
        self.starts = torch.as_tensor(starts - lo, device=self.device)
        self.times = (torch.as_tensor(ds.info.times[lo:hi].astype(np.int64), device=self.device)
                      if ds.return_time else None)
        self._offsets = torch.arange(ds.seq_len, device=self.device)
        self.n_windows = int(len(ds))

    @property
    def nbytes(self) -> int:
        """Device bytes of the frames and the mask."""
        n = self.frames.numel() * self.frames.element_size()
        return n + (self.mask.numel() if self.mask is not None else 0)

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of the next iteration (as ``DistributedSampler``)."""
        self.epoch = int(epoch)

    @property
    def per_rank(self) -> int:
        return math.ceil(self.n_windows / self.world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def _order(self) -> torch.Tensor:
        """Indices into ``self.starts`` for this rank and epoch."""
        if self.shard:
            if not self.shuffle:
                return torch.arange(self.per_rank, device=self.device)
            rng = np.random.default_rng([self.seed, self.epoch, self.rank])
            return torch.as_tensor(rng.permutation(self.per_rank), device=self.device)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.n_windows, generator=g).to(self.device)
        else:
            perm = torch.arange(self.n_windows, device=self.device)
        total = self.per_rank * self.world_size
        if total > self.n_windows:  # pad by repeating from the start, as DistributedSampler
            reps = math.ceil(total / self.n_windows)
            perm = perm.repeat(reps)[:total]
        return perm[self.rank:total:self.world_size]

    def batch(self, idx: torch.Tensor):
        """The batch of positions ``idx`` (a device tensor) into this rank's windows."""
        s = self.starts[idx]
        x = self.frames[s[:, None] + self._offsets]
        t = s + (self.seq_len - 1 + self.lead)
        y = self.frames[t]
        out = [x.to(self.batch_dtype), y.to(self.batch_dtype)]
        if self.mask is not None:
            mask = torch.ones(y.shape, dtype=torch.bool, device=self.device)
            if self.nan_channels.numel():
                mask[:, self.nan_channels] = self.mask[t]
            out.append(mask)
        if self.times is not None:
            cols = torch.cat([s[:, None] + self._offsets, t[:, None]], dim=1)
            out.append(self.times[cols])
        return tuple(out)

    def __iter__(self):
        mine = self._order()
        for b in range(len(self)):
            yield self.batch(mine[b * self.batch_size:(b + 1) * self.batch_size])
