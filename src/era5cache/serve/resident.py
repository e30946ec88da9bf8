"""GPU-resident batches: copy a split once to a device, then build every batch there.

Frames are normalised and NaN-filled once while copying (in blocks, so host memory stays
bounded), stored in ``dtype`` (float32 or bfloat16) on ``device``; a batch is two gathers by
index on the device. Each epoch draws one permutation from ``seed + epoch`` (identical on all
ranks), pads it like ``DistributedSampler`` so every rank gets the same number of batches (no
rank hangs on an uneven split), and gives rank ``r`` the entries ``r, r + world_size, ...``.
Works on any device, the CPU included.
"""

from __future__ import annotations

import math

import numpy as np
import torch

COPY_BLOCK_STEPS = 256


class ResidentBatches:
    """Iterable of batches ``(x, y[, mask][, times])`` built on ``device``; see module doc."""

    def __init__(self, ds, device="cuda", dtype=torch.float32, batch_size=64, shuffle=True,
                 drop_last=False, seed=0, rank=0, world_size=1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.device = torch.device(device)
        self.dtype, self.batch_size = dtype, int(batch_size)
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.rank, self.world_size = rank, world_size
        self.seq_len, self.lead = ds.seq_len, ds.lead
        self.return_mask, self.return_time = ds.return_mask, ds.return_time
        self.epoch = 0
        starts = ds.starts
        if starts.size == 0:
            raise ValueError(f"{ds!r} has no windows to place on {self.device}")
        lo = int(starts.min())
        hi = int(starts.max()) + ds.seq_len - 1 + ds.lead + 1
        shape = (hi - lo, *ds.frame_shape)
        self.frames = torch.empty(shape, dtype=dtype, device=self.device)
        self.mask = (torch.empty(shape, dtype=torch.bool, device=self.device)
                     if ds.return_mask else None)
        for a in range(lo, hi, COPY_BLOCK_STEPS):
            b = min(hi, a + COPY_BLOCK_STEPS)
            block = ds.read_steps(slice(a, b))  # normalised as the Dataset's items are
            if self.mask is not None:
                self.mask[a - lo:b - lo] = torch.from_numpy(~np.isnan(block)).to(self.device)
            t = torch.nan_to_num_(torch.from_numpy(block), nan=ds.fill_value)
            self.frames[a - lo:b - lo] = t.to(self.device, dtype)
        self.starts = torch.as_tensor(starts - lo, device=self.device)
        self.times = (torch.as_tensor(ds.info.times[lo:hi].astype(np.int64), device=self.device)
                      if ds.return_time else None)
        self._offsets = torch.arange(ds.seq_len, device=self.device)
        self.n_windows = int(starts.size)

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
        """The batch of window indices ``idx`` (a device tensor)."""
        s = self.starts[idx]
        x = self.frames[s[:, None] + self._offsets]
        t = s + (self.seq_len - 1 + self.lead)
        out = [x, self.frames[t]]
        if self.mask is not None:
            out.append(self.mask[t])
        if self.times is not None:
            cols = torch.cat([s[:, None] + self._offsets, t[:, None]], dim=1)
            out.append(self.times[cols])
        return tuple(out)

    def __iter__(self):
        mine = self._order()
        for b in range(len(self)):
            yield self.batch(mine[b * self.batch_size:(b + 1) * self.batch_size])
