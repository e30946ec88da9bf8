"""xarray/Dask adapter for :class:`era5cache.regrid.ConservativeRegridder`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from .grid import TARGET_LAT, TARGET_LON
from .regrid import ConservativeRegridder


def target_coords() -> dict[str, xr.DataArray]:
    """``lat`` (-79..79) and ``lon`` (1..359) coordinates of the 2-degree grid, with CF attrs."""
    return {
        "lat": xr.DataArray(TARGET_LAT, dims="lat",
                            attrs={"units": "degrees_north", "long_name": "latitude",
                                   "standard_name": "latitude"}),
        "lon": xr.DataArray(TARGET_LON, dims="lon",
                            attrs={"units": "degrees_east", "long_name": "longitude",
                                   "standard_name": "longitude"}),
    }


def regrid_dataarray(da: xr.DataArray, regridder: ConservativeRegridder,
                     threshold: float = 0.5) -> xr.DataArray:
    """Regrid ``da`` (..., lat, lon) lazily, one task per input chunk; keeps attrs."""
    out = xr.apply_ufunc(
        regridder,
        da,
        kwargs={"threshold": threshold},
        input_core_dims=[["lat", "lon"]],
        output_core_dims=[["lat_t", "lon_t"]],
        exclude_dims={"lat", "lon"},
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"lat_t": TARGET_LAT.size,
                                             "lon_t": TARGET_LON.size}},
        keep_attrs=True,
    )
    return out.rename(lat_t="lat", lon_t="lon").assign_coords(target_coords())


def regrid_dataset(ds: xr.Dataset, regridder: ConservativeRegridder,
                   thresholds: Mapping[str, float] | None = None,
                   default_threshold: float = 0.5) -> xr.Dataset:
    """Regrid every data variable; ``thresholds`` maps names to valid-share thresholds."""
    thresholds = thresholds or {}
    out = xr.Dataset(
        {v: regrid_dataarray(ds[v], regridder, thresholds.get(v, default_threshold))
         for v in ds.data_vars},
        attrs=ds.attrs,
    )
    return out
