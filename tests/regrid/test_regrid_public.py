"""``era5cache.regrid_2deg`` on xarray data as users hold it (numpy or Dask, latitude either
way, longitudes -180..180, DataArray or Dataset) against CDO's ``remapcon``."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from conftest import run_cdo_remapcon

import era5cache


def _fields(res: float = 1.0, steps: int = 3) -> xr.Dataset:
    """A smooth field, a noisy one and one with a land mask (NaN), latitude descending,
    longitudes -180..180, as a user's own Dataset."""
    lat, lon = np.arange(90, -90 - res / 2, -res), np.arange(-180, 180, res)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    rng = np.random.default_rng(5)
    smooth = 280 + 25 * np.cos(la) * np.sin(3 * lo)
    data = {"smooth": np.stack([smooth + k for k in range(steps)]),
            "noisy": smooth + rng.normal(0, 2, (steps, *la.shape))}
    masked = data["noisy"].copy()
    masked[:, (np.sin(2 * lo) * np.cos(3 * la)) > 0.3] = np.nan
    data["masked"] = masked
    coords = {"time": np.datetime64("2020-01-01", "ns") + np.arange(steps)
              * np.timedelta64(6, "h"), "latitude": lat, "longitude": lon}
    ds = xr.Dataset({k: (("time", "latitude", "longitude"), v.astype(np.float32),
                         {"units": "K"}) for k, v in data.items()}, coords=coords)
    ds["latitude"].attrs, ds["longitude"].attrs = ({"units": "degrees_north"},
                                                  {"units": "degrees_east"})
    return ds


@pytest.mark.cdo
@pytest.mark.parametrize("lazy", [False, True])
def test_equals_cdo_remapcon(cdo, tmp_path, lazy):
    ds = _fields()
    src, dst = tmp_path / "src.nc", tmp_path / "dst.nc"
    ds.to_netcdf(src)
    run_cdo_remapcon(cdo, src, dst, tmp_path, area_min=0.5)
    got = era5cache.regrid_2deg(ds.chunk({"time": 2}) if lazy else ds)
    assert got.sizes == {"time": 3, "lat": 80, "lon": 180}
    assert got["smooth"].attrs["units"] == "K"
    np.testing.assert_array_equal(got["lat"].values, np.arange(-79, 80, 2))
    with netCDF4.Dataset(dst) as ref:
        for name in ("smooth", "noisy", "masked"):
            want = ref[name][:].filled(np.nan)
            have = got[name].values
            np.testing.assert_array_equal(np.isnan(have), np.isnan(want), err_msg=name)
            ok = ~np.isnan(want)
            assert (np.abs(have[ok] - want[ok]) / np.abs(want[ok])).max() <= 1e-5, name


def test_dataarray_thresholds_and_errors():
    ds = _fields()
    whole = era5cache.regrid_2deg(ds, valid_share={"masked": 0.0, "default": 0.5})
    one = era5cache.regrid_2deg(ds["masked"], valid_share=0.0)
    assert isinstance(one, xr.DataArray) and one.name == "masked"
    np.testing.assert_array_equal(one.values, whole["masked"].values)
    strict = era5cache.regrid_2deg(ds["masked"], valid_share=1.0)
    assert np.isnan(strict.values).sum() > np.isnan(one.values).sum()
    with pytest.raises(ValueError, match="does not cover the 2-degree target"):
        era5cache.regrid_2deg(ds.sel(latitude=slice(60, -60)))
    with pytest.raises(ValueError, match="no latitude/longitude dimensions"):
        era5cache.regrid_2deg(ds.rename(latitude="y"))
