"""Deflated netCDF-4 chunks read directly (:mod:`era5cache.read.h5chunks`) give netCDF4's
stored values bit for bit, whatever the chunking, filters, byte order or unwritten chunks;
variables it cannot read are left to netCDF4; a worker inflates a chunk once."""

from __future__ import annotations

import os
import zlib

import h5py
import netCDF4
import numpy as np
import pytest
from conftest import lazy_variable

from era5cache.errors import InputError
from era5cache.read import netcdf
from era5cache.read.filecache import FileCache
from era5cache.read.h5chunks import (
    DEFLATE,
    DIRECT,
    SHUFFLE,
    ChunkLayout,
    H5ChunkArray,
    InflatedChunk,
    decode_chunk,
    direct_layouts,
    read_region,
)
from era5cache.read.normalise import open_file
from era5cache.read.options import ReadOptions

SHAPE = (11, 9, 14)  # no chunk shape below divides it: edge chunks everywhere

KEYS = [
    (slice(None),) * 3,
    (slice(2, 9), slice(None), slice(3, 13)),
    (4, slice(None, None, -1), slice(None)),  # xarray turns descending latitude into this
    (slice(1, 10, 3), slice(8, 0, -2), 13),
    (slice(5, 5), slice(None), slice(None)),
]


def _write(path, variables, written=None):
    """netCDF4 file with one variable per ``variables`` item: name -> createVariable
    keywords; values random in the dtype's range, or rows ``written`` only."""
    rng = np.random.default_rng(0)
    with netCDF4.Dataset(path, "w") as nc:
        for d, n in zip(("t", "y", "x"), SHAPE, strict=True):
            nc.createDimension(d, n)
        for name, kw in variables.items():
            kw = dict(kw)
            dtype = np.dtype(kw.pop("datatype")).newbyteorder(
                ">" if kw.get("endian") == "big" else "=")
            v = nc.createVariable(name, dtype, ("t", "y", "x"), **kw)
            v.set_auto_maskandscale(False)
            if dtype.kind == "f":
                data = rng.normal(280, 20, SHAPE).astype(dtype)
                data[0, 0, :3] = np.nan
            else:
                info = np.iinfo(dtype)
                data = rng.integers(info.min, info.max, SHAPE, endpoint=True).astype(dtype)
            if written is None:
                v[:] = data
            else:
                v[written] = data[written]
    return path


VARIANTS = {
    "f4_shuffle": dict(datatype="f4", zlib=True, complevel=1, shuffle=True,
                       chunksizes=(4, 5, 6)),
    "f4_noshuffle": dict(datatype="f4", zlib=True, complevel=6, shuffle=False,
                         chunksizes=(3, 9, 14)),
    "i2_deep": dict(datatype="i2", zlib=True, complevel=5, shuffle=True,
                    chunksizes=(11, 9, 14), fill_value=np.int16(-32767)),
    "u1": dict(datatype="u1", zlib=True, shuffle=True, chunksizes=(2, 2, 2)),
    "f8_big": dict(datatype="f8", zlib=True, shuffle=True, chunksizes=(5, 4, 8),
                   endian="big"),
    "i4_big": dict(datatype="i4", zlib=True, shuffle=False, chunksizes=(6, 9, 7),
                   endian="big"),
}


def _netcdf4_raw(path, name, key):
    with netCDF4.Dataset(path) as nc:
        v = nc[name]
        v.set_auto_maskandscale(False)
        return np.asarray(v[key])


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("h5") / "variants.nc", VARIANTS)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_values_equal_netcdf4_bit_for_bit(variants, name):
    layouts = direct_layouts(variants, list(VARIANTS))
    assert set(layouts) == set(VARIANTS)
    arr = H5ChunkArray(str(variants), name, layouts[name])
    assert arr.dtype.isnative and arr.shape == SHAPE
    for key in KEYS:
        got = arr.basic(key)
        want = _netcdf4_raw(variants, name, key)
        assert got.shape == want.shape and got.dtype == want.dtype.newbyteorder("=")
        assert got.tobytes() == want.astype(got.dtype).tobytes(), key


def test_unwritten_chunks_read_as_the_fill_value(tmp_path):
    path = _write(tmp_path / "part.nc", {"a": VARIANTS["i2_deep"] | {"chunksizes": (2, 9, 14)},
                                         "b": VARIANTS["f4_shuffle"]},
                  written=slice(0, 4))
    layouts = direct_layouts(path, ["a", "b"])
    for name in ("a", "b"):
        got = H5ChunkArray(str(path), name, layouts[name]).basic(KEYS[0])
        want = _netcdf4_raw(path, name, KEYS[0])
        assert got.tobytes() == want.tobytes()
    assert (got[8:] == np.float32(netCDF4.default_fillvals["f4"])).all()
    assert (H5ChunkArray(str(path), "a", layouts["a"]).basic(KEYS[0])[4:] == -32767).all()


def test_other_filters_and_layouts_are_left_to_netcdf4(tmp_path):
    path = _write(tmp_path / "other.nc", {
        "fletcher": dict(datatype="f4", zlib=True, fletcher32=True, chunksizes=(4, 5, 6)),
        "plain_chunks": dict(datatype="f4", chunksizes=(4, 5, 6)),
        "contiguous": dict(datatype="f4", contiguous=True),
        "deflated": dict(datatype="f4", zlib=True),
    })
    assert set(direct_layouts(path, ["fletcher", "plain_chunks", "contiguous", "deflated",
                                     "t"])) == {"deflated"}
    classic = tmp_path / "classic.nc"
    with netCDF4.Dataset(classic, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("t", 3)
        nc.createVariable("a", "f4", ("t",))[:] = 1
    assert direct_layouts(classic, ["a"]) == {}


def test_a_filter_skipped_for_one_chunk_is_not_undone(tmp_path):
    """HDF5 marks a filter it did not apply to a chunk (an optional filter that failed)
    in the chunk's filter mask; here deflate (filter 1, after shuffle) is skipped for the
    first chunk, which is stored shuffled only."""
    path = tmp_path / "mask.h5"
    values = np.arange(24, dtype="<f4").reshape(2, 3, 4) * 1.5
    with h5py.File(path, "w") as f:
        d = f.create_dataset("v", shape=(4, 3, 4), chunks=(2, 3, 4), dtype="<f4",
                             shuffle=True, compression="gzip")
        d[2:] = values + 100
        shuffled = values.view(np.uint8).reshape(-1, 4).T.tobytes()
        d.id.write_direct_chunk((0, 0, 0), shuffled, filter_mask=0b10)
    layout = direct_layouts(path, ["v"])["v"]
    assert layout.filters == (SHUFFLE, DEFLATE)
    got = H5ChunkArray(str(path), "v", layout).basic((slice(None),) * 3)
    with h5py.File(path) as f:
        want = f["v"][:]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:2], values)


def test_decode_chunk_inflates_and_values_unshuffle_the_rows_asked_for():
    values = np.linspace(-5, 5, 60, dtype=">f8").reshape(3, 4, 5)
    shuffled = values.view(np.uint8).reshape(-1, 8).T.tobytes()
    layout = ChunkLayout((3, 4, 5), (3, 4, 5), np.dtype(">f8"), (SHUFFLE, DEFLATE), 0.0)
    chunk = decode_chunk((0, zlib.compress(shuffled, 3)), layout)
    assert chunk.shuffled and chunk.nbytes == 480
    for box in [(slice(0, 3), slice(0, 4), slice(0, 5)), (slice(1, 2), slice(2, 4),
                                                           slice(0, 3))]:
        got = chunk.values(box)
        assert got.dtype == np.dtype("=f8")
        np.testing.assert_array_equal(got, values[box])
    plain = decode_chunk((0b10, shuffled), layout)  # deflate (filter 1) skipped: not undone
    np.testing.assert_array_equal(plain.values((slice(2, 3), slice(0, 4), slice(1, 5))),
                                  values[2:3, :, 1:])
    unshuffled = decode_chunk((0b01, zlib.compress(values.tobytes())), layout)  # no shuffle
    assert not unshuffled.shuffled
    np.testing.assert_array_equal(unshuffled.values((slice(0, 3),) + (slice(0, 4), slice(0, 5))),
                                  values)
    with pytest.raises(ValueError, match="inflates to 240 bytes, not 480"):
        decode_chunk((0, zlib.compress(shuffled[:240])), layout)


def _chunk_of(block: np.ndarray, layout: ChunkLayout) -> InflatedChunk:
    return InflatedChunk(block.astype(layout.dtype).tobytes(), layout, shuffled=False)


def test_read_region_asks_for_each_chunk_once_and_says_which_are_whole():
    layout = ChunkLayout((10, 6), (4, 4), np.dtype("i4"), (DEFLATE,), -1)
    full = np.arange(60, dtype="i4").reshape(10, 6)
    asked = []

    def chunk(origin, whole):
        asked.append((origin, whole))
        if origin == (4, 4):
            return None  # never written
        block = np.zeros((4, 4), "i4")
        part = full[origin[0]:origin[0] + 4, origin[1]:origin[1] + 4]
        block[:part.shape[0], :part.shape[1]] = part
        return _chunk_of(block, layout)

    got = read_region(layout, (slice(3, 10), slice(0, 6)), chunk)
    want = full[3:10].copy()
    want[1:5, 4:6] = -1
    np.testing.assert_array_equal(got, want)
    # rows 3:10 cover chunk rows 4:8 and 8:10 (the edge) whole, 0:4 partly
    assert asked == [((0, 0), False), ((0, 4), False), ((4, 0), True), ((4, 4), True),
                     ((8, 0), True), ((8, 4), True)]


def test_a_file_cache_keeps_a_partly_read_chunk_inflated(variants):
    """With a file cache, the file stays open and a chunk read in parts is inflated once,
    up to the cache's chunk budget (chunks read whole are not kept); closing the cache
    closes the file. Without one, each read opens the file and inflates what it needs."""
    layout = direct_layouts(variants, ["i2_deep"])["i2_deep"]  # one chunk, all steps
    want = _netcdf4_raw(variants, "i2_deep", KEYS[0])
    files = FileCache(1)
    arr = lazy_variable(H5ChunkArray(str(variants), "i2_deep", layout, files))
    try:
        got = np.concatenate([arr[a:a + 2].values for a in range(0, SHAPE[0], 2)])
        assert got.tobytes() == want.tobytes()
        assert files.counts["inflated"] == 1 and files.keys() == [("h5py", str(variants))]
        whole = lazy_variable(H5ChunkArray(str(variants), "f4_shuffle", direct_layouts(
            variants, ["f4_shuffle"])["f4_shuffle"], files))
        assert whole[4:8].values.shape == (4, 9, 14)  # chunks read whole: not kept
        assert files.counts["inflated"] == 1 + 6
        assert files.close() == 1 and len(files) == 0
        files.chunk_cache_bytes = layout.chunk_bytes - 1  # too small: inflated each time
        again = np.concatenate([arr[a:a + 2].values for a in range(0, SHAPE[0], 2)])
        assert again.tobytes() == want.tobytes()
        assert files.counts["inflated"] == 7 + 6  # six reads, each inflates the chunk
    finally:
        files.close()
    bare = lazy_variable(H5ChunkArray(str(variants), "i2_deep", layout))
    assert bare[3:5].values.tobytes() == want[3:5].tobytes()


def test_open_netcdf_reads_deflated_variables_directly(sample_new, monkeypatch):
    """The normalised dataset of a compressed CDS file is the same bit for bit whether
    its variables are read here or by netCDF4."""
    path = sample_new / "era5_single-levels_2019-01.nc"
    raw = netcdf.open_netcdf(path)
    try:
        direct = [v for v in raw.data_vars if raw[v].encoding.get(DIRECT)]
        assert direct and set(direct) == set(direct_layouts(path, list(raw.data_vars)))
    finally:
        raw.close()
    with open_file(path, options=ReadOptions(chunk_bytes=2**20)) as ds:
        got = {v: ds[v].values for v in ds.data_vars}
    monkeypatch.setattr(netcdf, "direct_layouts", lambda path, names: {})
    with open_file(path, options=ReadOptions(chunk_bytes=2**20)) as ds:
        for v in ds.data_vars:
            assert got[v].tobytes() == ds[v].values.tobytes(), v


def test_a_damaged_chunk_is_an_error_naming_the_file(tmp_path):
    path = _write(tmp_path / "damaged.nc", {"a": VARIANTS["f4_shuffle"]})
    with h5py.File(path) as f:
        info = f["a"].id.get_chunk_info(3)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        f.write(os.urandom(16))
    arr = H5ChunkArray(str(path), "a", direct_layouts(path, ["a"])["a"])
    with pytest.raises(InputError, match=rf"^{path}: variable 'a' \[0:11, 0:9, 0:14\] "
                                         "cannot be read .*damaged"):
        arr.basic(KEYS[0])


def test_zlib_fallback_gives_the_same_values(variants):
    """Where isal has no wheel the stdlib's zlib inflates: the same bytes."""
    for name in ("i2_deep", "f4_shuffle"):
        layout = direct_layouts(variants, [name])[name]
        with h5py.File(variants) as f:
            stored = f[name].id.read_direct_chunk((0,) * len(layout.shape))
        a = decode_chunk(stored, layout, inflate=zlib.decompress)
        b = decode_chunk(stored, layout)
        assert a.data == b.data and a.shuffled == b.shuffled
