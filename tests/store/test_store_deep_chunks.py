"""Files chunked deeper in time than a read block (a mirror's one chunk over all steps):
each worker keeps the chunk it reads decoded, so that it is decompressed once;
the memory that takes is checked before any work, and the values equal CDO remapcon."""

from __future__ import annotations

import os
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from conftest import assert_matches_cdo, lazy_variable, raw_decode, run_cli

from era5cache.bench.layouts import read_each_chunk_once, write_layout
from era5cache.config.recipe import PreprocessConfig
from era5cache.errors import InputError
from era5cache.read import h5chunks, netcdf
from era5cache.read.combine import open_era5
from era5cache.read.filecache import DEFAULT_CHUNK_CACHE_BYTES, FileCache
from era5cache.read.normalise import open_file, open_parts
from era5cache.read.options import ReadOptions
from era5cache.store import inputs as store_inputs
from era5cache.store.workerfiles import FileCachePlugin

STEPS = 124  # January of the sample, 6-hourly


@pytest.fixture(scope="module")
def layouts(sample_new, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layouts")
    src = sample_new / "era5_single-levels_2019-01.nc"
    out = {}
    for k in ("cds", "mirror"):
        (tmp / k).mkdir()
        out[k] = write_layout(src, tmp / k / "t2m.nc", k)
    return out


def test_layouts_are_what_they_claim(layouts):
    with netCDF4.Dataset(layouts["mirror"]) as nc:
        v = nc["t2m"]
        assert v.dtype == np.int16 and v.chunking() == [STEPS, 181, 360]
        assert v.filters()["complevel"] == 5 and v.filters()["shuffle"]
    with netCDF4.Dataset(layouts["cds"]) as nc:
        # netCDF's default chunks, as the CDS writes: deeper than a block, 2 x 2 per step
        assert nc["t2m"].chunking() == [62, 91, 180] and nc["t2m"].dtype == np.float32


def _slab(path, chunk_bytes):
    """The slab bytes the file's part reports (:attr:`era5cache.read.normalise.Part`)."""
    (part,) = open_parts(path, ReadOptions(chunk_bytes=chunk_bytes))
    part.dataset.close()
    return part.slab_bytes


def test_deep_chunks_are_counted_and_values_decode(layouts):
    chunk = STEPS * 181 * 360 * 2  # int16
    four = 4 * 181 * 360 * 4  # 4-step blocks
    assert _slab(layouts["mirror"], four) == chunk
    with open_file(layouts["mirror"], ReadOptions(chunk_bytes=four)) as ds:
        np.testing.assert_allclose(ds["t2m"].values, raw_decode(layouts["mirror"], "t2m")
                                   [:, ::-1], rtol=0, atol=1e-4)
    # blocks that take whole chunks need no cache
    assert _slab(layouts["cds"], 62 * 181 * 360 * 4) == 0
    # shallower blocks: every chunk of a time slab, across latitude and longitude
    assert _slab(layouts["cds"], four) == 62 * 91 * 180 * 4 * 2 * 2
    assert read_each_chunk_once(layouts["mirror"]) == STEPS * 181 * 360 * 4


def test_chunk_memory_is_checked_before_any_work(layouts, monkeypatch):
    monkeypatch.setattr(store_inputs, "NETCDF_CHUNK_CACHE", 2**20)  # the sample is small
    inputs = open_era5([layouts["mirror"]], options=ReadOptions(chunk_bytes=4 * 181 * 360 * 4))
    chunk = inputs.chunk_cache[0]
    assert inputs.chunk_cache == (STEPS * 181 * 360 * 2, layouts["mirror"])
    small = PreprocessConfig(dask={"memory_limit": "200MiB"})
    with pytest.raises(InputError) as exc:
        store_inputs.check_chunk_memory(small, inputs)
    msg = str(exc.value)
    need = store_inputs.chunk_memory_need(chunk, store_inputs.read_chunk_bytes(small))
    assert msg.startswith(f"{layouts['mirror']}: the compressed chunks of one time slab "
                          "hold 16 MB decompressed") and f"to {need / 2**30:g}GiB or more" in msg
    assert need >= 2 * chunk + store_inputs.WORKER_BASE and need % 2**28 == 0
    big = PreprocessConfig(dask={"memory_limit": "2GiB"})
    store_inputs.check_chunk_memory(big, inputs)
    files, cache = store_inputs.read_settings(big, inputs)
    assert cache == chunk and files == 4
    tight = PreprocessConfig(dask={"memory_limit": "260MiB"})  # no room: one open file
    assert store_inputs.read_settings(tight, inputs)[0] == 1
    inputs.close()


def test_a_file_cache_gives_netcdf_a_chunk_cache_that_holds_the_chunk(layouts):
    """netCDF4 files opened through a file cache whose chunk cache exceeds netCDF-C's
    default get that much per variable (plus room); the default leaves netCDF's own."""
    default = netCDF4.get_chunk_cache()[0]
    for size, want in ((DEFAULT_CHUNK_CACHE_BYTES // 2, default),
                       (400 * 10**6, int(400 * 10**6 * 1.05) + 2**20)):
        files = FileCache(1, size)
        manager = netcdf.netcdf_manager(str(layouts["cds"]), files)
        try:
            assert manager.acquire()["t2m"].get_var_chunk_cache()[0] == want
            assert files.keys() == [("netCDF4", str(layouts["cds"]))]
        finally:
            manager.close()
        assert len(files) == 0


@pytest.mark.cdo
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["cds", "mirror"])
def test_compressed_layouts_equal_cdo(layouts, layout, cdo, tmp_path):
    out = tmp_path / "cache"
    run_cli("preprocess", "--input", layouts[layout], "--output", out, "--workers", "2",
            "--chunk-steps", "24", "--no-progress")
    got = xr.open_zarr(out / "era5_2deg.zarr")["t2m"].values
    assert got.shape == (STEPS, 80, 180)
    assert_matches_cdo(got, cdo, layouts[layout], tmp_path, "t2m", None, rtol=1e-6)


def _holds_open(path: str) -> bool:
    """Whether this process has ``path`` open (Linux /proc)."""
    fds = Path("/proc/self/fd")
    return any(os.path.realpath(fds / fd) == path for fd in os.listdir(fds))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
@pytest.mark.slow  # a Dask worker process
@pytest.mark.parametrize("reader", ["h5chunks", "netCDF4"])
def test_a_worker_keeps_the_file_open_between_read_tasks(layouts, reader, monkeypatch):
    """A worker keeps the file open in its file cache (its :class:`FileCachePlugin`) from
    one read task to the next, so that the deep chunk is inflated once: read by
    :mod:`era5cache.read.h5chunks` (deflate, as here), which keeps the chunk decoded; or by
    netCDF4 (other filters), whose HDF5 chunk cache is kept with the file. The process that
    opened the file holds it only until the dataset closes; unregistering the plugin (the
    job's end) closes the worker's files."""
    from distributed import Client, LocalCluster

    if reader == "netCDF4":
        monkeypatch.setattr(netcdf, "direct_layouts", lambda path, names: {})
    path = os.path.realpath(layouts["mirror"])
    files = FileCache(1, STEPS * 181 * 360 * 2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}
                      ) as cluster, Client(cluster) as client:
        client.register_plugin(FileCachePlugin.like(files), name=files.name)
        options = ReadOptions(chunk_bytes=4 * 181 * 360 * 4, files=files)  # 31 blocks
        with open_file(path, options) as ds:
            got = ds["t2m"].astype(np.float64).sum(("lat", "lon")).compute().values
            assert list(client.run(_holds_open, path).values()) == [True]
            (counts,) = client.run(_counts, files.name).values()
            assert counts == ({"opened": 1} if reader == "netCDF4"
                              else {"opened": 1, "inflated": 1})
        assert not _holds_open(path) and len(files) == 0
        client.unregister_worker_plugin(files.name)
        assert list(client.run(_holds_open, path).values()) == [False]
    want = raw_decode(layouts["mirror"], "t2m").astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(got, want.sum(axis=(1, 2)), rtol=1e-12)


def _counts(name: str, dask_worker) -> dict:
    return dict(dask_worker.plugins[name].cache.counts)


def test_a_time_slab_of_split_chunks_is_kept_whole(layouts):
    """netCDF's default chunks (the CDS's) run deeper in time than a block and split each
    step in latitude and longitude: an open file keeps a whole time slab (every chunk a
    block touches, :func:`disk_chunk_bytes`), so that blocks read in order inflate each of
    the 2 x 4 chunks once; with room for one chunk they are inflated again block after
    block. Values as netCDF4 reads them."""
    path = str(layouts["cds"])
    layout = h5chunks.direct_layouts(layouts["cds"], ["t2m"])["t2m"]
    slab = _slab(path, 4 * 181 * 360 * 4)
    want = raw_decode(layouts["cds"], "t2m").astype(np.float32)
    for budget, inflated in ((slab, 8), (layout.chunk_bytes, 4 * 31 + 4)):
        files = FileCache(1)
        files.chunk_cache_bytes = budget  # below the default's floor: the sample is small
        arr = lazy_variable(h5chunks.H5ChunkArray(path, "t2m", layout, files))
        try:
            got = np.concatenate([arr[a:a + 4].values for a in range(0, STEPS, 4)])
        finally:
            files.close()
        np.testing.assert_array_equal(got, want)
        assert files.counts["inflated"] == inflated

