"""BlockShuffleSampler: exactly once per epoch, disjoint equal shards, block locality, the
bytes it reads ahead, and a DataLoader fed by it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from era5cache import BlockShuffleSampler, CachedERA5Dataset
from era5cache.sample.synthetic import write_synthetic_cache
from era5cache.serve.sampler import epoch_order, frame_runs


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_synthetic_cache(tmp_path_factory.mktemp("sampler") / "c", 300, channels=5)


def test_each_window_once_per_epoch_new_order_each_epoch():
    n, block, pool = 1003, 10, 40
    orders = [epoch_order(n, block, pool, shuffle=True, seed=3, epoch=e) for e in range(3)]
    for o in orders:
        assert o.size == n and np.array_equal(np.sort(o), np.arange(n))
    assert not np.array_equal(orders[0], orders[1])
    again = epoch_order(n, block, pool, shuffle=True, seed=3, epoch=1)
    assert np.array_equal(again, orders[1])  # the epoch's order depends on (seed, epoch) only
    assert not np.array_equal(orders[0], epoch_order(n, block, pool, shuffle=True, seed=4,
                                                     epoch=0))
    assert np.array_equal(epoch_order(n, block, pool, shuffle=False, seed=3, epoch=2),
                          np.arange(n))


@pytest.mark.parametrize("world", [2, 3, 7])
def test_shards_are_disjoint_and_equal(world):
    n, block, pool = 1003, 10, 40
    shards = [epoch_order(n, block, pool, shuffle=True, seed=0, epoch=5, rank=r,
                          world_size=world) for r in range(world)]
    per = -(-n // world)
    assert all(s.size == per for s in shards)
    allw = np.concatenate(shards)
    assert np.array_equal(np.unique(allw), np.arange(n))  # every window drawn
    # padding repeats exactly per * world - n windows, nothing else overlaps
    assert allw.size - n == per * world - n
    dropped = [epoch_order(n, block, pool, shuffle=True, seed=0, epoch=5, rank=r,
                           world_size=world, drop_last=True) for r in range(world)]
    flat = np.concatenate(dropped)
    assert all(s.size == n // world for s in dropped)
    assert np.unique(flat).size == flat.size  # disjoint


def test_pools_hold_few_blocks_and_frames_are_read_about_once():
    n, block, pool = 5000, 50, 400  # 8 blocks per pool
    order = epoch_order(n, block, pool, shuffle=True, seed=1, epoch=0)
    for a in range(0, n, pool):
        blocks = np.unique(order[a:a + pool] // block)
        assert blocks.size <= pool // block
        # a pool is whole blocks: every window of each of its blocks is in it
        assert sum(min(n, (b + 1) * block) - b * block for b in blocks) == order[a:a + pool].size
    # the windows of a pool, read ahead as merged frame ranges: over the epoch each frame is
    # read once, plus `span` frames at each block's end
    span = 2
    total = sum(hi - lo for a in range(0, n, pool)
                for lo, hi in frame_runs(order[a:a + pool], span))
    assert n + span <= total <= n + span * (n // block + 1)


def test_frame_runs_merge_touching_windows():
    assert frame_runs(np.array([7, 0, 1, 2, 20]), 2) == [(0, 5), (7, 10), (20, 23)]
    assert frame_runs(np.array([0, 3]), 2) == [(0, 6)]  # 0..2 and 3..5 touch
    assert frame_runs(np.array([], dtype=int), 2) == []


def test_readahead_ranges_are_the_selected_channels_bytes(cache):
    ds = CachedERA5Dataset(cache, split="all", channels=["t2m", "z50", "sst"])
    raw = np.fromfile(ds.path, dtype=np.uint8)
    s = BlockShuffleSampler(ds, block_bytes=ds.step_bytes * 4, pool_bytes=ds.step_bytes * 16)
    windows = s.order()[:16]
    ranges = s.pool_ranges(windows)
    got = np.concatenate([raw[o:o + n] for o, n in ranges]).view(np.float32)
    # expected: for each needed step, channels in file order (sst=0, t2m=1, z50=3)
    steps = [t for lo, hi in frame_runs(ds.starts[windows], 2) for t in range(lo, hi)]
    want = np.concatenate([ds.data[t, [0, 1, 3]].ravel() for t in steps])
    np.testing.assert_array_equal(got, want)
    assert sum(n for _, n in ranges) == len(steps) * ds.step_bytes


def test_dataloader_with_sampler_gives_every_window_once(cache):
    ds = CachedERA5Dataset(cache, split="train", return_time=True)
    sampler = BlockShuffleSampler(ds, seed=0, block_bytes=ds.step_bytes * 8,
                                  pool_bytes=ds.step_bytes * 32)
    dl = DataLoader(ds, batch_size=16, sampler=sampler, num_workers=2,
                    collate_fn=CachedERA5Dataset.collate, multiprocessing_context="fork")
    seen = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        got = [t[:, 0] for _, _, t in dl]
        got = torch.cat(got).numpy()
        assert sorted(got.tolist()) == sorted(ds.info.times[ds.starts].astype(np.int64)
                                              .tolist())
        seen.append(got)
        # the file bytes read ahead: every step of the split once, plus block ends
        split_bytes = (len(ds) + 2) * ds.step_bytes
        assert split_bytes <= sampler.last_readahead_bytes <= split_bytes * 1.3
    assert not np.array_equal(seen[0], seen[1])
    # values equal the Dataset's own items
    x, y, t = next(iter(dl))
    i = int(np.flatnonzero(ds.info.times[ds.starts].astype(np.int64) == int(t[3, 0]))[0])
    xi, yi, _ = ds[i]
    assert torch.equal(x[3], xi) and torch.equal(y[3], yi)


def test_batches_built_on_threads_under_inference_mode(cache):
    """Lightning validates under torch.inference_mode: the helper threads that share a batch
    must run in it too (tensors made under it may only be changed in place under it)."""
    ds = CachedERA5Dataset(cache, split="all", threads=2)
    with torch.inference_mode():
        x, y = ds.__getitems__(list(range(40))).batched
    assert torch.equal(x[7], ds[7][0]) and torch.equal(y[39], ds[39][1])


def _map_flags(path) -> list[set[str]]:
    """VmFlags of this process's mappings of ``path`` (/proc/self/smaps)."""
    flags, mine = [], False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            mine = line.split(maxsplit=5)[-1] == str(path)
        elif mine and line.startswith("VmFlags:"):
            flags.append(set(line.split()[1:]))
    return flags


@pytest.mark.parametrize("channels", [None, ["z50", "sst"]])
def test_cold_after_read_keeps_values(cache, channels):
    """cold_after_read advises the map MADV_SEQUENTIAL (the kernel shows it as the VmFlag
    ``sr``): it changes which pages the kernel reclaims first, never the values; set after
    the map is open, it advises that map; off again, the advice is gone."""
    plain = CachedERA5Dataset(cache, split="all", channels=channels, return_mask=True)
    cold = CachedERA5Dataset(cache, split="all", channels=channels, return_mask=True,
                             cold_after_read=True)
    idx = [290, 3, 150, 4, 5]
    for a, b in zip(plain.__getitems__(idx).batched, cold.__getitems__(idx).batched,
                    strict=True):
        assert torch.equal(a, b)
    if not Path("/proc/self/smaps").exists():
        pytest.skip("no /proc/self/smaps on this platform")
    assert sorted("sr" in f for f in _map_flags(cold.path)) == [False, True]
    plain.cold_after_read = True  # its map is already open
    assert [("sr" in f) for f in _map_flags(cold.path)] == [True, True]
    cold.cold_after_read = plain.cold_after_read = False
    assert not any("sr" in f for f in _map_flags(cold.path))
