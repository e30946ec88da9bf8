"""``era5cache sample --layout arco|wb2``: stores laid out as ARCO-ERA5's and
WeatherBench2's, checked with zarr and xarray directly."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
import zarr
from conftest import cli_in_process

from era5cache.config.sample import SampleSpec
from era5cache.sample.stores import ARCO_LEVELS, WB2_LEVELS, write_store


def test_arco_layout(arco_store):
    meta = json.loads((arco_store / ".zmetadata").read_text())["metadata"]
    assert json.loads((arco_store / ".zgroup").read_text())["zarr_format"] == 2
    z = meta["geopotential/.zarray"]
    assert z["chunks"][:2] == [1, 37] and meta["geopotential/.zattrs"]["_ARRAY_DIMENSIONS"] == [
        "time", "level", "latitude", "longitude"]
    assert meta["level/.zattrs"]["units"] == "millibars"
    assert meta["time/.zattrs"]["units"] == "hours since 1900-01-01"
    ds = xr.open_zarr(arco_store, chunks=None)
    assert list(ds["level"].values) == list(ARCO_LEVELS)
    assert ds["latitude"].values[0] == 90 and ds["latitude"].values[-1] == -90
    assert ds.attrs["valid_time_start"] == "2020-01-01"
    assert ds.attrs["valid_time_stop"] == "2020-01-01"  # the last day is ERA5T
    assert ds.attrs["valid_time_stop_era5t"] == "2020-01-02"
    t = ds["time"].values
    assert t[0] == np.datetime64("2019-12-31T00") and t[-1] == np.datetime64("2020-01-03T23")
    assert (np.diff(t) == np.timedelta64(1, "h")).all()
    # outside the valid days the chunks were never written: they read as NaN
    k = int(np.searchsorted(t, np.datetime64("2019-12-31T12")))
    assert not (arco_store / "2m_temperature" / f"{k}.0.0").exists()
    assert np.isnan(ds["2m_temperature"][k].values).all()
    valid = ds["2m_temperature"].sel(time=slice("2020-01-01", "2020-01-02T23")).values
    assert np.isfinite(valid).all() and 200 < valid.mean() < 300
    assert (ds["total_precipitation"].sel(time="2020-01-01").values >= 0).all()


def test_arco_temperature_has_a_stratosphere(tmp_path):
    """ARCO's levels reach 1 hPa: the sample's temperature stays physical up there."""
    spec = SampleSpec(start="2020-01-01T00", end="2020-01-01T03", step="1h", resolution=10.0,
                      layout="arco", variables=("t", "u"))
    ds = xr.open_zarr(write_store(tmp_path / "t.zarr", spec), chunks=None)
    t = ds["temperature"].sel(time="2020-01-01T00").values
    assert 190 < np.nanmin(t) and np.nanmax(t) < 320  # not -44 K at 1 hPa
    assert np.abs(ds["u_component_of_wind"].sel(time="2020-01-01T00").values).max() < 100


def test_wb2_layout(tmp_path):
    spec = SampleSpec(start="2020-01-01T00", end="2020-01-02T18", step="6h", resolution=10.0,
                      layout="wb2", variables=("t2m", "tp", "z"))
    store = write_store(tmp_path / "wb2.zarr", spec)
    ds = xr.open_zarr(store, chunks=None)
    assert ds["geopotential"].dims == ("time", "level", "longitude", "latitude")
    assert list(ds["level"].values) == list(WB2_LEVELS) and ds["level"].attrs == {}
    assert ds["latitude"].values[0] == -90  # ascending
    assert "total_precipitation_6hr" in ds and not set(ds.attrs) & {"valid_time_start"}
    assert (np.diff(ds["time"].values) == np.timedelta64(6, "h")).all()
    assert zarr.open_group(store, mode="r")["2m_temperature"].chunks == (1, 36, 19)
    assert np.isfinite(ds["2m_temperature"].values).all()


def test_sample_command_writes_a_store(tmp_path):
    r = cli_in_process("sample", "--layout", "wb2", "--out", tmp_path / "s.zarr", "--start",
                       "2020-01-01", "--end", "2020-01-01T12", "--resolution", "10",
                       "--variables", "t2m,u")
    assert r.returncode == 0 and "Zarr store in wb2 layout" in r.stdout
    assert set(xr.open_zarr(tmp_path / "s.zarr").data_vars) == {"2m_temperature",
                                                                 "u_component_of_wind"}
