"""Resident batches: sharded across ranks (disjoint equal shares, each rank holding only its
frames), masks kept for NaN channels only, 16-bit frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from era5cache import CachedERA5Dataset
from era5cache.sample.synthetic import write_synthetic_cache
from era5cache.serve.resident import resident_bytes, shard_windows


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resident")
    return {d: write_synthetic_cache(tmp / d, 103, channels=4, dtype=d)
            for d in ("float32", "bfloat16")}


def test_shard_windows_are_consecutive_disjoint_and_equal():
    for n, world in ((10, 3), (9, 3), (2, 4), (101, 8)):
        shards = [shard_windows(n, r, world) for r in range(world)]
        per = -(-n // world)
        assert all(s.size == per for s in shards)
        assert set(np.concatenate(shards).tolist()) == set(range(n))
        for r, s in enumerate(shards):
            own = np.unique(s)
            assert np.all(np.diff(own) == 1)  # one consecutive range
            for q in range(r):  # disjoint from the other ranks' (where they have their own)
                if r * per < n:
                    assert not set(own) & set(np.unique(shards[q]))


def _epoch_windows(res, ds) -> list[int]:
    """Window indices of one epoch, recovered from the batches' timestamps."""
    first = {int(t): i for i, t in enumerate(ds.info.times[ds.starts].astype(np.int64))}
    return [first[int(t)] for b in res for t in b[-1][:, 0]]


def test_sharded_ranks_hold_their_range_only_and_draw_it_once(caches):
    ds = CachedERA5Dataset(caches["float32"], split="all", return_mask=True, return_time=True)
    world = 3
    shards = [ds.to_device("cpu", batch_size=8, shuffle=True, seed=1, rank=r,
                           world_size=world, shard=True) for r in range(world)]
    full = ds.to_device("cpu", batch_size=8, shuffle=True)
    # each rank holds about a third of the frames
    assert sum(s.frames.shape[0] for s in shards) <= full.frames.shape[0] + world * 3
    assert all(s.nbytes < 0.4 * full.nbytes for s in shards)
    seen = []
    for r, res in enumerate(shards):
        res.set_epoch(0)
        w0 = _epoch_windows(res, ds)
        res.set_epoch(1)
        w1 = _epoch_windows(res, ds)
        assert sorted(w0) == sorted(shard_windows(len(ds), r, world).tolist())
        assert sorted(w0) == sorted(w1) and w0 != w1  # same share, new order
        seen += w0
    assert set(seen) == set(range(len(ds)))
    # values equal the Dataset's items
    res = shards[1]
    x, y, mask, t = next(iter(res))
    i = int(np.flatnonzero(ds.info.times[ds.starts].astype(np.int64) == int(t[2, 0]))[0])
    xi, yi, mi, _ = ds[i]
    assert torch.equal(x[2], xi) and torch.equal(y[2], yi) and torch.equal(mask[2], mi)


def test_mask_only_for_nan_channels(caches):
    ds = CachedERA5Dataset(caches["float32"], split="all", return_mask=True)
    assert ds.channels[0] == "sst" and ds.nan_channels.tolist() == [0]  # land in sst only
    res = ds.to_device("cpu", batch_size=16, shuffle=False)
    assert res.mask.shape[1] == 1
    assert resident_bytes(ds) == res.nbytes
    _, _, mask = next(iter(res))
    ref = ds.__getitems__(list(range(16))).batched[2]
    assert torch.equal(mask, ref) and not mask[:, 0].all() and mask[:, 1:].all()


def test_16bit_frames_take_half_and_batches_come_as_float32(caches):
    ds = CachedERA5Dataset(caches["bfloat16"], split="all")
    res = ds.to_device("cpu", dtype=torch.bfloat16, batch_size=8, shuffle=False,
                       batch_dtype=torch.float32)
    ref = CachedERA5Dataset(caches["float32"], split="all").to_device("cpu", batch_size=8,
                                                                     shuffle=False)
    assert res.frames.dtype == torch.bfloat16
    assert res.frames.element_size() * 2 == ref.frames.element_size()
    x, y = next(iter(res))
    xr, yr = next(iter(ref))
    assert x.dtype == torch.float32
    assert (x - xr).abs().max() <= 2.0**-8 * xr.abs().max() + 1e-6
    # the bf16 frames hold the cache's values exactly (no second rounding)
    assert torch.equal(x, ds.__getitems__(list(range(8))).batched[0])
