"""Read blocks: sized to the target, aligned with the output's time chunks and with the
file's own HDF5 chunks (each compressed chunk decompressed once where it fits)."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from era5cache.read.blocks import block_steps
from era5cache.read.normalise import open_file
from era5cache.read.options import ReadOptions


def test_read_block_steps():
    assert block_steps(4, 7 * 4, 24) == 6  # 7 fit: the largest divisor of 24 below
    assert block_steps(4, 100 * 4, 24) == 96  # a multiple of 24
    assert block_steps(4, 5 * 4, 7) == 1
    assert block_steps(4, 7 * 4) == 7 and block_steps(4, 1) == 1
    # files chunked over several steps: whole chunks per block where they fit the ceiling
    assert block_steps(4, 7 * 4, 24, depth=32, max_bytes=60 * 4) == 32
    assert block_steps(4, 7 * 4, 24, depth=8, max_bytes=60 * 4) == 8  # also divides 24
    assert block_steps(4, 7 * 4, 24, depth=2, max_bytes=60 * 4) == 6
    assert block_steps(4, 100 * 4, 24, depth=12, max_bytes=200 * 4) == 96
    assert block_steps(4, 7 * 4, 24, depth=124, max_bytes=60 * 4) == 6  # too deep: as before
    assert block_steps(4, 7 * 4, 24, depth=32) == 6  # no ceiling known: as before
    assert block_steps(4, 7 * 4, 24, depth=1, max_bytes=60 * 4) == 6


@pytest.mark.slow  # rewrites and reads a month at 1 degree
def test_read_blocks_hold_whole_file_chunks(tmp_path, sample_new):
    """A compressed file chunked over 8 time steps (netCDF's default chunking makes such
    files) is read in blocks of whole chunks, not in blocks that end inside a chunk (each
    such block decompressed the chunk again); values equal a raw decode."""
    src = sample_new / "era5_single-levels_2019-01.nc"
    path = tmp_path / "era5_single-levels_2019-01.nc"
    with xr.open_dataset(src) as ds:
        ds = ds.load()
    enc = {v: {"zlib": True, "complevel": 1, "chunksizes": (8, 61, 120)}
           for v in ("t2m", "sst")}
    ds.to_netcdf(path, encoding=enc)
    with open_file(path) as opened:
        step = sum(4 * opened.sizes["lat"] * opened.sizes["lon"] for _ in opened.data_vars)
    with open_file(path, options=ReadOptions(chunk_bytes=3 * step, align_steps=24)) as opened:
        assert opened["t2m"].chunks[0][0] == 3  # no ceiling: the size target alone
    with open_file(path, ReadOptions(chunk_bytes=3 * step, align_steps=24,
                                     max_block_bytes=20 * step)) as opened:
        chunks = opened["t2m"].chunks[0]
        assert set(chunks[:-1]) == {8} and sum(chunks) == 124
        got = opened["t2m"].values
    with netCDF4.Dataset(path) as raw:
        want = raw["t2m"][:].filled(np.nan)[:, ::-1]  # the reader orders latitude ascending
    np.testing.assert_array_equal(got, want)


def test_read_blocks_never_straddle_an_output_chunk(sample_new):
    """Per file, read blocks end on output chunk boundaries (a straddling block was read and
    regridded once for each chunk)."""
    path = sample_new / "era5_single-levels_2019-01.nc"
    with open_file(path) as ds:
        step = sum(4 * ds.sizes["lat"] * ds.sizes["lon"] for _ in ds.data_vars)
    with open_file(path, options=ReadOptions(chunk_bytes=14 * step, align_steps=24)) as ds:
        chunks = ds["t2m"].chunks[0]
    assert ds.sizes["time"] == 124 and sum(chunks) == 124
    assert set(chunks[:-1]) == {12} and chunks[-1] == 124 % 12  # 14 steps fit: 12 divides 24
