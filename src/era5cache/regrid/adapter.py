"""xarray/Dask adapter for :class:`era5cache.regrid.conservative.ConservativeRegridder`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..grid import TARGET_LAT, TARGET_LON
from .conservative import ConservativeRegridder, InfiniteValueError
from .quality import NonFiniteValueError, OutOfRangeError, infinite_steps, outside_steps

# (low, high, units) of a variable's physical values (era5cache.read.physical.Quantity)
Bounds = tuple[float, float, str]


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


def _regrid_block(block: np.ndarray, regridder: ConservativeRegridder, threshold: float,
                  name: str, time_axis: int | None, bounds: Bounds | None,
                  block_info=None) -> np.ndarray:
    """Regrid one block; raise :class:`NonFiniteValueError` if it holds +-inf,
    :class:`OutOfRangeError` if it holds a finite value outside ``bounds``."""
    start = (block_info[0]["array-location"][time_axis][0]
             if block_info and time_axis is not None else 0)
    if bounds is not None and time_axis is not None:
        outside = outside_steps(block, bounds[0], bounds[1], time_axis)
        if outside is not None:
            raise _outside_error(block, outside, name, start, time_axis, bounds)
    try:
        return regridder(block, threshold=threshold)
    except InfiniteValueError as exc:
        if time_axis is None:
            raise
        # the step the regridder refused (an inf in a row it reads), not merely the first
        # step holding an inf anywhere (rows beyond 80 degrees are not read)
        first = int(np.unravel_index(exc.step, block.shape[:-2])[time_axis])
        count = int(infinite_steps(block, time_axis).sum())
        raise NonFiniteValueError(name, start + first, count) from None


def _outside_error(block: np.ndarray, outside: np.ndarray, name: str, start: int,
                   time_axis: int, bounds: Bounds) -> ValueError:
    """The error for the first step of ``block`` that ``outside`` marks."""
    first = int(np.argmax(outside))
    step = np.take(block, first, axis=time_axis)
    with np.errstate(invalid="ignore"):
        value = float(step[(step < bounds[0]) | (step > bounds[1])].flat[0])
    if np.isinf(value):
        return NonFiniteValueError(name, start + first, int(infinite_steps(block,
                                                                           time_axis).sum()))
    return OutOfRangeError(name, start + first, value, *bounds)


def regrid_dataarray(da: xr.DataArray, regridder: ConservativeRegridder,
                     threshold: float = 0.5, bounds: Bounds | None = None) -> xr.DataArray:
    """Regrid ``da`` (..., lat, lon) lazily, one task per input chunk; keeps attrs.

    Infinite source values raise :class:`era5cache.regrid.quality.NonFiniteValueError`, a
    finite one outside ``bounds`` (low, high, units) raises
    :class:`era5cache.regrid.quality.OutOfRangeError`, when the block is computed (their
    ``first`` indexes ``da``'s time axis).
    """
    da = da.transpose(..., "lat", "lon")
    time_axis = da.get_axis_num("time") if "time" in da.dims else None
    args = (regridder, threshold, str(da.name), time_axis, bounds)
    if isinstance(da.data, np.ndarray):
        data = _regrid_block(da.data, *args)
    else:
        src = da.data.rechunk({da.ndim - 2: -1, da.ndim - 1: -1})
        data = src.map_blocks(_regrid_block, *args, dtype=np.float32,
                              chunks=src.chunks[:-2] + ((TARGET_LAT.size,), (TARGET_LON.size,)),
                              meta=np.empty((0,) * da.ndim, np.float32))
    coords = {k: v for k, v in da.coords.items() if not {"lat", "lon"} & set(v.dims)}
    out = xr.DataArray(data, dims=da.dims, coords=coords, attrs=da.attrs, name=da.name)
    return out.assign_coords(target_coords())


def regrid_dataset(ds: xr.Dataset, regridder: ConservativeRegridder,
                   thresholds: Mapping[str, float] | None = None,
                   default_threshold: float = 0.5,
                   bounds: Mapping[str, Bounds] | None = None) -> xr.Dataset:
    """Regrid every data variable; ``thresholds`` maps names to valid-share thresholds,
    ``bounds`` to physical ranges (none: not checked)."""
    thresholds, bounds = thresholds or {}, bounds or {}
    out = xr.Dataset(
        {v: regrid_dataarray(ds[v], regridder, thresholds.get(v, default_threshold),
                             bounds.get(v))
         for v in ds.data_vars},
        attrs=ds.attrs,
    )
    return out
