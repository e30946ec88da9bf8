"""The sample as a Zarr store laid out as the stores ML groups read (the fields of
:mod:`.fields`), so that tests, the benchmark and users can try a store without the network.

* ``arco``: as Google's ARCO-ERA5 (``full_37-1h-0p25deg-chunk-1.zarr-v3``): Zarr format 2,
  consolidated metadata; long variable names; hourly ``time`` in hours since 1900-01-01 that
  runs a day past the data (whole days from ``start`` to ``end``) at each end, with the
  data's dates in the attributes
  ``valid_time_start``, ``valid_time_stop`` (final ERA5) and ``valid_time_stop_era5t`` (the
  days of the last ``preliminary_steps`` steps are ERA5T), the chunks outside never written
  (they read as NaN, the fill value, as ARCO's do); ``level`` the 37 pressure levels in
  ``millibars``; latitude 90 .. -90; one chunk per time step holding all levels;
  ``total_precipitation`` the hourly accumulation.
* ``wb2``: as WeatherBench2's low-resolution ERA5 stores: ``step`` apart (6-hourly), 13
  levels without units, dimensions ``(time, longitude, latitude)`` with latitude ascending,
  no validity attributes; ``total_precipitation_6hr`` summed over the ``step`` hours ending
  at each step (from the same hourly field).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from ..config.sample import PRESSURE_LEVEL, SampleSpec
from ..timeaxis import parse_step
from .fields import ATTRS, Fields

ARCO_LEVELS = (1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300, 350,
               400, 450, 500, 550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900, 925, 950,
               975, 1000)
WB2_LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
LONG = {"t2m": "2m_temperature", "sst": "sea_surface_temperature", "tp": "total_precipitation",
        "z": "geopotential", "t": "temperature", "u": "u_component_of_wind"}
HOUR = np.timedelta64(3600, "s")


def write_store(out: str | os.PathLike, spec: SampleSpec, only_every: int = 1) -> Path:
    """Write the sample as one Zarr store at ``out`` (replaced if there), laid out as
    ``spec.layout`` says (``arco`` or ``wb2``); returns its path. ``only_every``: write only
    every so many of the valid steps (from midnight), leaving the others missing chunks
    (the benchmark's hourly store read every 6 hours). Memory: about 2 million values a
    block."""
    out = Path(out)
    lat, lon = spec.grid()
    arco = spec.layout == "arco"
    days = spec.times().astype("datetime64[D]").astype("datetime64[s]")
    valid = np.arange(days[0], days[-1] + 24 * HOUR, HOUR) if arco else spec.times()
    axis = np.arange(valid[0] - 24 * HOUR, valid[-1] + 25 * HOUR, HOUR) if arco else valid
    levels = ARCO_LEVELS if arco else WB2_LEVELS
    template = _template(spec, axis, lat if arco else lat[::-1], lon, levels)
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    template.to_zarr(tmp, compute=False, zarr_format=2, consolidated=True,
                     encoding=_encoding(template, arco))
    fields = Fields(lat, lon, spec.seed)
    first = int(np.searchsorted(axis, valid[0]))
    if only_every > 1:
        valid = valid[::only_every]
    per_step = lat.size * lon.size * (len(levels) if set(spec.variables) & set(
        PRESSURE_LEVEL) else 1)
    block = max(1, 2_000_000 // per_step)
    for a in range(0, valid.size, block):
        at = valid[a:a + block]
        part = xr.Dataset({name: (template[name].dims, _field(fields, var, at, levels, arco,
                                                              spec))
                           for var, name in _names(spec, arco).items()})
        if only_every > 1:  # one step a region: the steps are not contiguous
            for k, t in enumerate(at):
                i = first + int(np.searchsorted(axis[first:], t))
                part.isel(time=slice(k, k + 1)).to_zarr(tmp, region={"time": slice(i, i + 1)},
                                                        zarr_format=2)
            continue
        part.to_zarr(tmp, region={"time": slice(first + a, first + a + at.size)},
                     zarr_format=2)
    os.replace(tmp, out)
    return out


def _names(spec: SampleSpec, arco: bool) -> dict[str, str]:
    """{short name: the store's name} of the sample's variables."""
    names = {v: LONG[v] for v in spec.variables}
    if "tp" in names and not arco:
        names["tp"] = f"total_precipitation_{_hours(spec)}hr"
    return names


def _hours(spec: SampleSpec) -> int:
    return int(parse_step(spec.step) // HOUR)


def _field(fields: Fields, var: str, at: np.ndarray, levels, arco: bool,
           spec: SampleSpec) -> np.ndarray:
    """Steps ``at`` of ``var`` as the layout holds them: time, (level,) lat, lon (ARCO) or
    time, (level,) lon, lat ascending (WeatherBench2); WeatherBench2's precipitation summed
    over the hours of each step, ending at it."""
    if var in PRESSURE_LEVEL:
        data = np.stack([fields.evaluate(var, lev, at) for lev in levels], axis=1)
    elif var == "tp" and not arco:
        n = _hours(spec)
        hours = (at[:, None] - np.arange(n)[::-1][None, :] * HOUR).ravel()
        data = fields.evaluate(var, None, hours).reshape(at.size, n, *fields.land.shape)
        data = data.sum(axis=1, dtype=np.float64)
    else:
        data = fields.evaluate(var, None, at)
    data = np.asarray(data, dtype=np.float32)
    return data if arco else np.swapaxes(data[..., ::-1, :], -1, -2)


def _template(spec: SampleSpec, axis: np.ndarray, lat: np.ndarray, lon: np.ndarray,
              levels) -> xr.Dataset:
    """The store's coordinates and lazy, unwritten variables (chunks of one step)."""
    import dask.array as da

    arco = spec.layout == "arco"
    space = ("latitude", "longitude") if arco else ("longitude", "latitude")
    shape = {"latitude": lat.size, "longitude": lon.size}
    data = {}
    for var, name in _names(spec, arco).items():
        dims = ("time",) + (("level",) if var in PRESSURE_LEVEL else ()) + space
        sizes = (axis.size,) + ((len(levels),) if var in PRESSURE_LEVEL else ()) + tuple(
            shape[d] for d in space)
        arr = da.full(sizes, np.nan, dtype=np.float32, chunks=(1,) + sizes[1:])
        attrs = {"units": ATTRS[var]["units"], "long_name": ATTRS[var]["long_name"],
                 "short_name": var}
        data[name] = xr.Variable(dims, arr, attrs)
    ds = xr.Dataset(data, coords={"time": axis.astype("datetime64[ns]"),
                                  "latitude": lat, "longitude": lon})
    ds["latitude"].attrs = {"long_name": "latitude", "units": "degrees_north"}
    ds["longitude"].attrs = {"long_name": "longitude", "units": "degrees_east"}
    if any(v in PRESSURE_LEVEL for v in spec.variables):
        ds = ds.assign_coords(level=("level", np.asarray(levels, dtype=np.int64)))
        if arco:
            ds["level"].attrs = {"units": "millibars", "long_name": "pressure_level"}
    if arco:
        ds.attrs = _validity(spec, axis)
    return ds


def _validity(spec: SampleSpec, axis: np.ndarray) -> dict[str, str]:
    """ARCO-ERA5's validity attributes: the data's first and last day (whole days), the
    days of the last ``preliminary_steps`` steps as ERA5T."""
    times = spec.times()
    final_day = np.datetime64(times[-1], "D")
    if spec.preliminary_steps:
        final_day = np.datetime64(times[-spec.preliminary_steps], "D") - np.timedelta64(1, "D")
    return {"valid_time_start": str(np.datetime64(times[0], "D")),
            "valid_time_stop": str(final_day),
            "valid_time_stop_era5t": str(np.datetime64(times[-1], "D")),
            "last_updated": str(axis[-1])}


def _encoding(ds: xr.Dataset, arco: bool) -> dict:
    """Time in hours since 1900 (ARCO) or 1959 (WeatherBench2); NaN fill; chunks of one
    step."""
    enc = {v: {"_FillValue": np.float32(np.nan), "chunks": (1,) + ds[v].shape[1:]}
           for v in ds.data_vars}
    since = "1900-01-01" if arco else "1959-01-01"
    enc["time"] = {"units": f"hours since {since}", "dtype": "int64", "chunks": (ds.sizes["time"],)}
    return enc
