"""The streamed HDF5 build equals the build from the Zarr store, whatever order chunks come in."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr

from era5cache.format.h5 import CacheSpec
from era5cache.grid import TARGET_LAT, TARGET_LON
from era5cache.regrid.quality import all_nan_steps
from era5cache.store.h5build import ChunkFeed, FeedClosed, H5Builder, build_h5
from era5cache.timeaxis import Period, Periods, analyse

CHANNELS = ["sst", "t2m"]
STEPS, CHUNK = 50, 8  # 7 chunks, the last one short
PERIODS = Periods(train=Period("2020-01-01T00", "2020-01-09T00"),
                  val=Period("2020-01-09T06", "2020-01-13T12"))
ATTRS = {c: {"units": "K", "long_name": c} for c in CHANNELS}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A Zarr store as the job writes it: NaN land in sst, one all-NaN step in t2m."""
    rng = np.random.default_rng(3)
    times = np.datetime64("2020-01-01T00") + np.arange(STEPS) * np.timedelta64(6, "h")
    shape = (STEPS, TARGET_LAT.size, TARGET_LON.size)
    sst = (280 + 10 * rng.standard_normal(shape)).astype(np.float32)
    sst[:, :20, :30] = np.nan
    t2m = (270 + 20 * rng.standard_normal(shape)).astype(np.float32)
    t2m[17] = np.nan
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), sst), "t2m": (("time", "lat", "lon"), t2m)},
                    coords={"time": times, "lat": TARGET_LAT, "lon": TARGET_LON})
    path = tmp_path_factory.mktemp("stream") / "s.zarr"
    enc = {c: {"chunks": (CHUNK, TARGET_LAT.size, TARGET_LON.size)} for c in CHANNELS}
    enc["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64"}
    ds.to_zarr(path, encoding=enc, zarr_format=3, consolidated=False)
    return path, times, np.stack([sst, t2m], axis=1)


def _spec(times):
    return CacheSpec(times, analyse(times, "6h"), tuple(CHANNELS), ATTRS, PERIODS, CHUNK)


def _stream(path, times, data, order, with_block, max_bytes=512 * 2**20, tmp=None):
    feed = ChunkFeed(path, CHANNELS, CHUNK, STEPS, max_bytes=max_bytes)
    out = tmp / "streamed.h5"
    builder = H5Builder(feed, _spec(times), out)
    for k in order:
        block = data[k * CHUNK:(k + 1) * CHUNK].copy() if with_block(k) else None
        feed.put(k, block)
        builder.check()
    return builder.result(), feed, out


@pytest.mark.parametrize("order, with_block, max_bytes", [
    (range(7), lambda k: True, 512 * 2**20),           # in order, all blocks at hand
    ([6, 3, 5, 0, 2, 1, 4], lambda k: k % 2 == 0, 512 * 2**20),  # shuffled, odd from store
    ([6, 5, 4, 3, 2, 1, 0], lambda k: True, 2 * 8 * 80 * 180 * 4 * 2),  # 2 may wait
])
def test_streamed_build_equals_build_from_store(store, tmp_path, order, with_block, max_bytes):
    path, times, data = store
    ref = tmp_path / "ref.h5"
    ref_stats = build_h5(path, ref, _spec(times))
    stats, feed, out = _stream(path, times, data, order, with_block, max_bytes, tmp_path)
    assert out.read_bytes() == ref.read_bytes()  # same bytes, statistics included
    for name in ("mean", "std", "diff_std", "count"):
        np.testing.assert_array_equal(getattr(stats, name), getattr(ref_stats, name))
    for i, c in enumerate(CHANNELS):  # all-NaN steps, against an independent count
        np.testing.assert_array_equal(feed.all_nan[c], all_nan_steps(data[:, i]))
    assert np.flatnonzero(feed.all_nan["t2m"]).tolist() == [17]
    assert not feed.all_nan["sst"].any()
    assert feed.waiting == (0, 0)


def test_waiting_blocks_are_bounded(store, tmp_path):
    path, times, data = store
    feed = ChunkFeed(path, CHANNELS, CHUNK, STEPS, max_bytes=CHUNK * 2 * 80 * 180 * 4 * 2)
    for k in range(6, 0, -1):  # chunk 0 late: nothing consumed yet
        feed.put(k, data[k * CHUNK:(k + 1) * CHUNK].copy())
    count, nbytes = feed.waiting
    assert nbytes <= feed.max_bytes and count == 2


def test_abandoned_builder_lets_go(store, tmp_path):
    path, times, data = store
    feed = ChunkFeed(path, CHANNELS, CHUNK, STEPS)
    out = tmp_path / "abandoned.h5"
    builder = H5Builder(feed, _spec(times), out)
    feed.put(0, data[:CHUNK].copy())
    builder.abandon()  # chunk 1 never comes: the writer gives up and closes the file
    with pytest.raises(FeedClosed):
        builder.result()
    with h5py.File(out, "w"):  # closed by the writer: HDF5 refuses to truncate an open file
        pass


def test_block_that_is_not_a_chunk_is_refused(store):
    path, _, _ = store
    feed = ChunkFeed(path, CHANNELS, CHUNK, STEPS)
    with pytest.raises(ValueError, match="not time chunk"):
        feed.read_block(4, 12)
