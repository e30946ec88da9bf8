"""Packed 8- and 16-bit variables decoded by table give xarray's CF decoding bit for bit."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from era5cache.read import packed
from era5cache.read.normalise import open_file
from era5cache.read.packed import decode_table, lookup, packed_names

NT, NLAT, NLON = 5, 7, 12


def _packed_file(path, variants):
    """A CDS-like file (valid_time, latitude descending, longitude) with one variable per
    variant: raw integers covering their whole range, fill and missing values included."""
    rng = np.random.default_rng(3)
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("valid_time", NT)
        nc.createDimension("latitude", NLAT)
        nc.createDimension("longitude", NLON)
        t = nc.createVariable("valid_time", "i8", ("valid_time",))
        t.units, t.calendar = "hours since 2020-01-01", "proleptic_gregorian"
        t[:] = np.arange(NT)
        nc.createVariable("latitude", "f8", ("latitude",))[:] = np.linspace(60, 0, NLAT)
        nc["latitude"].units = "degrees_north"
        nc.createVariable("longitude", "f8", ("longitude",))[:] = np.arange(NLON) * 30.0
        nc["longitude"].units = "degrees_east"
        for name, (dtype, attrs) in variants.items():
            fill = attrs.pop("_FillValue", None)
            v = nc.createVariable(name, dtype, ("valid_time", "latitude", "longitude"),
                                  fill_value=fill, zlib=True, shuffle=True)
            v.set_auto_maskandscale(False)
            info = np.iinfo(dtype)
            raw = rng.integers(info.min, info.max, (NT, NLAT, NLON), endpoint=True)
            raw.flat[:4] = [info.min, info.max, 0, -1 if info.min < 0 else 1]
            if fill is not None:
                raw.flat[5] = fill
            if "missing_value" in attrs:
                raw.flat[6] = attrs["missing_value"]
            v[:] = raw.astype(dtype)
            for k, val in attrs.items():
                v.setncattr(k, val)
    return path


VARIANTS = {
    # ERA5 as the pre-2024 CDS and mirrors pack it: float64 attributes, a fill value
    "t2m": ("i2", {"scale_factor": 0.0016447424794017618, "add_offset": 263.4347534,
                   "_FillValue": np.int16(-32767), "missing_value": np.int16(-32767),
                   "units": "K"}),
    # float32 attributes: xarray unpacks in float32
    "sst": ("i2", {"scale_factor": np.float32(0.00061), "add_offset": np.float32(289.1),
                   "_FillValue": np.int16(-32767), "missing_value": np.int16(-32000),
                   "units": "K"}),
    # an unsigned byte, marked as netCDF3 does
    "tcc": ("i1", {"scale_factor": 1.0 / 250, "add_offset": 0.0, "_Unsigned": "true",
                   "_FillValue": np.int8(-1)}),
}


@pytest.mark.filterwarnings("ignore:variable .sst. has multiple fill values")
def test_packed_variables_decode_like_xarray(tmp_path):
    path = _packed_file(tmp_path / "packed.nc", {k: (d, dict(a)) for k, (d, a) in
                                                VARIANTS.items()})
    with xr.open_dataset(path) as ref:
        assert sorted(packed_names(ref)) == sorted(VARIANTS)
        want = {v: ref[v].values.astype(np.float32)[:, ::-1] for v in VARIANTS}
    with open_file(path) as ds:
        for v in VARIANTS:
            got = ds[v].values
            assert got.dtype == np.float32
            # bit for bit, NaN where xarray masks (fill and missing values)
            np.testing.assert_array_equal(got.view(np.uint32), want[v].view(np.uint32),
                                          err_msg=v)
            assert np.isnan(got).sum() == np.isnan(want[v]).sum() > 0
            assert not {"scale_factor", "add_offset", "_FillValue", "missing_value",
                        "_Unsigned"} & set(ds[v].attrs)
    assert want["tcc"][np.isfinite(want["tcc"])].min() >= 0  # _Unsigned honoured


def test_table_covers_every_raw_value():
    var = xr.Variable(("x",), np.zeros(1, np.int16),
                      attrs={"scale_factor": 0.5, "add_offset": 10.0, "_FillValue": -32767})
    table = decode_table(var)
    assert table.shape == (65536,) and table.dtype == np.float32
    raw = np.array([-32768, -32767, -1, 0, 1, 32767], np.int16)
    np.testing.assert_array_equal(lookup(raw, table),
                                  [-16374.0, np.nan, 9.5, 10.0, 10.5, 16393.5])


def test_lookup_in_runs_equals_one_gather(monkeypatch):
    """Gathered a run at a time (runs of 7 here, with a last short one), over a strided
    3-D block: the same as one ``table[bits]``."""
    monkeypatch.setattr(packed, "LOOKUP_RUN", 7)
    table = np.random.default_rng(1).random(65536).astype(np.float32)
    raw = np.random.default_rng(2).integers(-32768, 32767, (4, 6, 10), dtype=np.int16)
    block = raw[:, ::-1, 1:]  # 180 values, not contiguous
    got = lookup(block, table)
    assert got.shape == block.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, table[np.ascontiguousarray(block).view(np.uint16)])


@pytest.mark.parametrize("dtype", ["i4", "f4"])
def test_wider_or_float_variables_keep_xarray_decoding(tmp_path, dtype):
    attrs = {"scale_factor": 0.5, "add_offset": 1.0}
    path = tmp_path / "wide.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for d, n in (("time", 2), ("latitude", 2), ("longitude", 3)):
            nc.createDimension(d, n)
        nc.createVariable("time", "i8", ("time",))[:] = [0, 1]
        nc["time"].units = "hours since 2020-01-01"
        nc.createVariable("latitude", "f8", ("latitude",))[:] = [0.0, 1.0]
        nc.createVariable("longitude", "f8", ("longitude",))[:] = [0.0, 1.0, 2.0]
        v = nc.createVariable("t2m", dtype, ("time", "latitude", "longitude"))
        v.set_auto_maskandscale(False)
        v[:] = np.arange(12).reshape(2, 2, 3)
        v.setncatts(attrs | {"units": "K"})
    with xr.open_dataset(path) as ref:
        assert packed_names(ref) == []
    with open_file(path) as ds:
        np.testing.assert_array_equal(ds["t2m"].values,
                                      np.arange(12).reshape(2, 2, 3) * 0.5 + 1.0)
