"""``BlockShuffleSampler``: shuffled windows of a cache bigger than memory, read off the disk
in large sequential blocks.

A full shuffle (``DataLoader(shuffle=True)``) draws windows uniformly from the whole split:
once the cache no longer fits the page cache, every window is a random read, and every
frame is read ``seq_len + lead`` times an epoch (once for each window that holds it). This
sampler orders an epoch so that the file is read about once, in order within blocks:

1. The split's windows, in time order, are cut into **blocks** of ``block_bytes`` of
   consecutive windows (one step of the selected channels per window: 16 MiB by default,
   less where memory is short: :func:`default_sizes`).
2. Each epoch the blocks are permuted (seed ``(seed, epoch)``, the same on every rank), and
   the windows of the permuted blocks laid end to end.
3. Ranks take consecutive, equal shares of that order (padded by repeating its start, as
   ``DistributedSampler`` does, or cut with ``drop_last``): disjoint, the same count on
   every rank, and each made of whole blocks but for its ends.
4. Each rank's share is cut into **pools** of ``pool_bytes`` (whole blocks) and each pool is
   shuffled: the shuffle buffer. Its windows are handed out in that order.

While pool ``k`` is handed out, pool ``k + 1``'s bytes are read ahead in a background thread
(:class:`.readahead.ReadAhead`, ``posix_fadvise(WILLNEED)``): the disk reads the next pool
sequentially while the consumer works on the current one from the page cache, which needs to
hold the pools between the consumer and the sampler: a DataLoader draws indices
``num_workers * prefetch_factor`` batches ahead of the batch it hands out, so about two
pools (``2 * pool_bytes``, 256 MiB by default) plus that lead. Under memory pressure the
kernel must evict the consumed pages rather than those read ahead: open the dataset with
``cold_after_read=True`` (see :class:`BlockShuffleSampler`). (Tried instead and no better:
``madvise(MADV_COLD)`` on each window once copied, 1.3x the bytes off the disk at 69
channels; dropping consumed pools' pages with ``POSIX_FADV_DONTNEED``, which the workers'
memory maps still hold.)

**The randomness given up.** Every window is drawn exactly once an epoch and the epoch's order
changes with the epoch, as with a full shuffle, but a batch is drawn from one pool: from
``pool_bytes / block_bytes`` random blocks (8 by default) instead of the whole split, so its
windows come in groups of neighbours in time (a batch of 64 from 8 blocks holds ~8 windows
of each block, hours or days apart). Two windows of one batch share a block with
probability ~``block_bytes / pool_bytes`` (1/8), against ~``block / windows`` for a full
shuffle. Gradients are averaged over more correlated samples; for the RATransformer on the
sample the validation skill matched the full shuffle's (``tests/train/test_train_blocks.py``).
Smaller blocks and larger pools give more randomness for more page cache and shorter reads.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .memory import available_memory
from .readahead import ReadAhead

POOL_BYTES = 128 << 20
BLOCKS_PER_POOL = 8
MIN_BLOCK_SPANS = 8  # windows per block, at least, per step that a window spans
MIN_POOL_BLOCKS = 2


def default_sizes(available: int) -> tuple[int, int]:
    """(block_bytes, pool_bytes) for a process that can fill ``available`` bytes: pools of
    128 MiB, or 1/64 of that memory where it is less, of 8 blocks. Measured in a 2 GiB
    cgroup (``bench loader --memory-limit``): 32 MiB pools of 4 MiB blocks fed the loader
    10-20% faster than 64 MiB or 256 MiB ones, with the disk's reads throttled to 400 MB/s
    and without (the kernel reclaims less under the limit, and a pool read ahead is ready
    sooner), and 2 or 3 pools read ahead were slower than 1."""
    pool = max(1 << 20, min(POOL_BYTES, available // 64))
    return pool // BLOCKS_PER_POOL, pool


def epoch_order(n: int, block: int, pool: int, *, shuffle: bool, seed: int, epoch: int,
                rank: int = 0, world_size: int = 1, drop_last: bool = False) -> np.ndarray:
    """Rank ``rank``'s window indices (into ``0 .. n-1``) for ``epoch``; see the module
    docstring (steps 2-4). ``block`` and ``pool`` are in windows, ``pool`` a multiple of
    ``block``. Without ``shuffle``: ``0 .. n-1`` in order, shared out the same way."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    n_blocks = math.ceil(n / block) if n else 0
    if shuffle:
        blocks = np.random.default_rng([seed, epoch]).permutation(n_blocks)
        order = (blocks[:, None] * block + np.arange(block)).ravel()
        order = order[order < n]  # the last block may be short
    else:
        order = np.arange(n)
    per_rank = n // world_size if drop_last else math.ceil(n / world_size)
    total = per_rank * world_size
    if total > n:  # pad by repeating from the start, as DistributedSampler
        order = np.resize(order, total)
    mine = order[rank * per_rank:(rank + 1) * per_rank].copy()
    if shuffle:
        rng = np.random.default_rng([seed, epoch, rank + 1])
        for a in range(0, mine.size, pool):
            rng.shuffle(mine[a:a + pool])
    return mine


def frame_runs(starts: np.ndarray, span: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` ranges of time steps that the windows starting at ``starts`` read (steps
    ``s .. s + span`` each), merged where they touch, ascending."""
    s = np.unique(starts)
    if s.size == 0:
        return []
    cut = np.flatnonzero(np.diff(s) > span + 1) + 1
    return [(int(g[0]), int(g[-1]) + span + 1) for g in np.split(s, cut)]


class BlockShuffleSampler(torch.utils.data.Sampler[int]):
    """Window indices of ``dataset`` (a :class:`~era5cache.CachedERA5Dataset`) in block-shuffled
    order, read ahead; see the module docstring.

    Args:
        dataset: the split to draw from.
        shuffle: block-shuffle (True) or time order (False, e.g. validation).
        seed: the order of epoch ``e`` depends on ``(seed, e)`` only.
        rank, world_size: this process's share (as ``DistributedSampler``).
        drop_last: cut the windows that do not divide evenly among ranks instead of padding.
        block_bytes, pool_bytes: bytes of consecutive steps (of the selected channels) per
            block, and per shuffle pool (rounded down to whole blocks); None:
            :func:`default_sizes` of the memory available now (cgroup limits included).
            The defaults hold at least ``8 * (seq_len + lead)`` windows a block and 2 blocks
            a pool, whatever the bytes: wide steps (69 channels, 4 MB) make larger blocks.
        readahead: pools read ahead in a background thread (0: none).

    Use ``DataLoader(dataset, batch_size=B, sampler=sampler, collate_fn=
    CachedERA5Dataset.collate)`` and call :meth:`set_epoch` before each epoch (Lightning
    does). Open the dataset with ``cold_after_read=True`` when it does not fit in memory:
    each step is read by several windows, which makes the kernel keep consumed pages over
    those read ahead for the next pool; measured in a 2 GiB cgroup with reads throttled to
    400 MB/s, the disk read 1.05x instead of 1.2-1.6x the bytes of the steps.
    """

    def __init__(self, dataset, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, block_bytes: int | None = None,
                 pool_bytes: int | None = None, readahead: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.dataset = dataset
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        step = dataset.step_bytes
        if block_bytes is None or pool_bytes is None:
            auto_block, auto_pool = default_sizes(available_memory())
        if block_bytes is None:
            # a block spans its windows plus seq_len - 1 + lead steps that the next block's
            # first windows read again (in another pool): at least 8 windows per step of a
            # window keeps that below ~10% of the reads
            span = dataset.seq_len + dataset.lead
            self.block = max(MIN_BLOCK_SPANS * span, auto_block // step)
        else:
            self.block = max(1, int(block_bytes) // step)
        if pool_bytes is None:
            self.pool = max(MIN_POOL_BLOCKS, auto_pool // step // self.block) * self.block
        else:
            self.pool = max(1, int(pool_bytes) // step // self.block) * self.block
        self.readahead = int(readahead)
        self.epoch = 0
        self.last_readahead_bytes = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.world_size if self.drop_last else math.ceil(n / self.world_size)

    def order(self) -> np.ndarray:
        """This rank's window indices for the current epoch."""
        return epoch_order(len(self.dataset), self.block, self.pool, shuffle=self.shuffle,
                           seed=self.seed, epoch=self.epoch, rank=self.rank,
                           world_size=self.world_size, drop_last=self.drop_last)

    def pool_ranges(self, windows: np.ndarray) -> list[tuple[int, int]]:
        """File byte ranges that the windows ``windows`` read."""
        ds = self.dataset
        span = ds.seq_len - 1 + ds.lead
        return [r for lo, hi in frame_runs(ds.starts[windows], span)
                for r in ds.byte_runs(lo, hi)]

    def __iter__(self):
        order = self.order()
        if not self.readahead or order.size == 0:
            yield from order.tolist()
            return
        ahead = ReadAhead(self.dataset.path)
        pools = [order[a:a + self.pool] for a in range(0, order.size, self.pool)]
        try:
            for pool in pools[:self.readahead]:
                ahead.submit(self.pool_ranges(pool))
            for k, pool in enumerate(pools):
                if k + self.readahead < len(pools):
                    ahead.submit(self.pool_ranges(pools[k + self.readahead]))
                yield from pool.tolist()
        finally:
            ahead.close()
            self.last_readahead_bytes = ahead.requested_bytes

    def __repr__(self) -> str:
        return (f"BlockShuffleSampler({len(self.dataset)} windows, block {self.block}, "
                f"pool {self.pool}, rank {self.rank}/{self.world_size})")
