"""The synthetic sample is written as the CDS delivers ERA5, and is physically plausible."""

from __future__ import annotations

import netCDF4
import numpy as np
from conftest import raw_decode

from era5cache.config.sample import SampleSpec
from era5cache.sample.fields import land_mask
from era5cache.sample.netcdf import write_sample


def test_new_layout_structure(sample_new):
    path = sample_new / "era5_single-levels_2019-01.nc"
    with netCDF4.Dataset(path) as ds:
        assert ds.data_model == "NETCDF4"
        assert ds["valid_time"].dtype == np.int64
        assert ds["valid_time"].units == "seconds since 1970-01-01"
        assert ds["valid_time"][0] == np.datetime64("2019-01-01", "s").astype(np.int64)
        assert ds["latitude"][0] == 90 and ds["latitude"][-1] == -90
        assert ds["longitude"][0] == 0 and ds["longitude"][-1] == 359
        assert set(ds["expver"][:]) == {"0001"}
        assert ds["number"][...] == 0
        sst = ds["sst"]
        assert sst.dtype == np.float32
        f = sst.filters()
        assert f["zlib"] and f["shuffle"] and f["complevel"] == 1
        assert np.isnan(sst._FillValue)
    with netCDF4.Dataset(sample_new / "era5_pressure-levels_2019-01.nc") as ds:
        assert list(ds["pressure_level"][:]) == [500, 850]
        assert ds["z"].dimensions == ("valid_time", "pressure_level", "latitude", "longitude")


def test_legacy_layout_structure(tmp_path):
    """Two short months at 2 degrees, the last 8 steps preliminary, as the session's
    sample_legacy is written."""
    sample_legacy = tmp_path
    write_sample(tmp_path, SampleSpec(start="2019-01-29T00", end="2019-02-04T18",
                                      resolution=2.0, layout="legacy", variables=("t2m",),
                                      levels=(), preliminary_steps=8))
    path = sample_legacy / "era5_single-levels_2019-02.nc"  # holds the preliminary tail
    with netCDF4.Dataset(path) as ds:
        assert ds.data_model == "NETCDF3_64BIT_OFFSET"
        assert ds["time"].units.startswith("hours since 1900-01-01")
        t2m = ds["t2m"]
        assert t2m.dtype == np.int16
        assert t2m._FillValue == -32767 and t2m.missing_value == -32767
        assert t2m.dimensions == ("time", "expver", "latitude", "longitude")
        assert list(ds["expver"][:]) == [1, 5]
        raw = raw_decode(path, "t2m")
        final_valid = ~np.isnan(raw[:, 0]).all(axis=(1, 2))
        prelim_valid = ~np.isnan(raw[:, 1]).all(axis=(1, 2))
        assert np.all(final_valid ^ prelim_valid)  # each step valid in exactly one slot
        assert prelim_valid.sum() == 8 and prelim_valid[-8:].all()
    with netCDF4.Dataset(sample_legacy / "era5_single-levels_2019-01.nc") as ds:
        s1 = ds["t2m"].scale_factor
    with netCDF4.Dataset(path) as ds:
        assert ds["t2m"].scale_factor != s1  # packing is per file


def test_fields_are_plausible(sample_new):
    path = sample_new / "era5_single-levels_2019-01.nc"
    t2m = raw_decode(path, "t2m")
    sst = raw_decode(path, "sst")
    with netCDF4.Dataset(path) as ds:
        lat = ds["latitude"][:]
        lon = ds["longitude"][:]
    assert 200 < np.nanmin(t2m) and np.nanmax(t2m) < 330
    # Equator warmer than the poles; in January the south is warmer than the north at 60.
    zonal = t2m.mean(axis=(0, 2))
    assert zonal[lat == 0] > zonal[lat == 60] + 20
    assert zonal[lat == -60] > zonal[lat == 60]
    # Diurnal cycle over land (Sahara ~ 20N, 10E): 12 UTC warmer than 00 UTC.
    i, j = int(np.argmin(np.abs(lat - 20))), int(np.argmin(np.abs(lon - 10)))
    assert t2m[2::4, i, j].mean() > t2m[0::4, i, j].mean() + 3
    # SST: NaN over land only, a plausible ocean fraction, never below freezing sea water.
    land = land_mask(lat, lon)
    assert np.array_equal(np.isnan(sst[0]), land)
    assert 0.25 < land[np.abs(lat) < 60].mean() < 0.45
    assert np.nanmin(sst) >= 271.3
    # Something travels: day-to-day changes are not just the cycles.
    assert np.nanstd(np.diff(t2m[::4], axis=0)) > 0.5


def test_deterministic_per_seed(tmp_path):
    spec = SampleSpec(start="2019-03-01", end="2019-03-02T18", resolution=2.0,
                      variables=("t2m",), seed=7)
    a = write_sample(tmp_path / "a", spec)[0]
    b = write_sample(tmp_path / "b", spec)[0]
    c = write_sample(tmp_path / "c", SampleSpec(**{**spec.__dict__, "seed": 8}))[0]
    np.testing.assert_array_equal(raw_decode(a, "t2m"), raw_decode(b, "t2m"))
    assert not np.array_equal(raw_decode(a, "t2m"), raw_decode(c, "t2m"))


def test_deflated_chunks_decode_to_what_netcdf4_writes_uncompressed(tmp_path):
    """The deflated variables are written as stored chunks (shuffled and deflated by the
    writer, not by netCDF4): netCDF4 reads them back bit for bit equal to the same sample
    written uncompressed through netCDF4 itself, with the CDS's chunks and filters."""
    spec = SampleSpec(start="2019-03-01", end="2019-03-02T18", resolution=2.0,
                      variables=("sst", "t2m", "z"), levels=(500, 850), preliminary_steps=2)
    deflated = write_sample(tmp_path / "deflated", spec)
    plain = write_sample(tmp_path / "plain", SampleSpec(**{**spec.__dict__, "compress": False}))
    for a, b in zip(deflated, plain, strict=True):
        with netCDF4.Dataset(a) as da, netCDF4.Dataset(b) as db:
            names = [n for n in da.variables if da[n].ndim >= 3]
            assert names and names == [n for n in db.variables if db[n].ndim >= 3]
            for n in names:
                assert da[n].filters()["zlib"] and da[n].filters()["shuffle"]
                assert not db[n].filters()["zlib"]
                assert da[n].chunking() == db[n].chunking() == [1] * (da[n].ndim - 2) + [91, 180]
                got, want = da[n][:].filled(np.nan), db[n][:].filled(np.nan)
                np.testing.assert_array_equal(got, want)
                assert np.isfinite(got).any()
