"""One ERA5 NetCDF file as the CDS delivers it (either layout), opened into the normalised form.

Normalised form: dimension ``time`` (ascending, unique, datetime64), optional ``level`` (hPa),
``lat`` ascending and ``lon`` in [0, 360) ascending; one float32 variable per ERA5 short name
in physical units, NaN where missing; a per-step string coordinate ``expver`` ('0001' final
ERA5, '0005' preliminary ERA5T). Each file is decoded with its own ``scale_factor`` /
``add_offset`` *before* files are combined, and the encoding is dropped so that no packing
leaks into the outputs. Data stay lazy (Dask) except where a decision needs values: collapsing
a legacy ``expver`` dimension and comparing duplicate steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from .blocks import TARGET_CHUNK_BYTES, block_steps, time_chunk_depth
from .expver import FINAL, collapse_expver_dim, expver_str
from .members import Member, mean_of_members, pick_member

TIME_NAMES = ("valid_time", "time")
LEVEL_NAMES = ("pressure_level", "level", "isobaricInhPa", "plev")
LAT_NAMES = ("latitude", "lat", "nav_lat", "y")
LON_NAMES = ("longitude", "lon", "nav_lon", "x")


def _find(ds: xr.Dataset, names: tuple[str, ...], units: tuple[str, ...] = ()) -> str | None:
    for n in names:
        if n in ds.dims:
            return n
    for n in ds.dims:
        if n in ds.variables and ds[n].attrs.get("units") in units and units:
            return n
    return None


# Units ERA5 delivers for the variables users most often take (CDS spellings and CF ones).
EXPECTED_UNITS = {
    **dict.fromkeys(("t2m", "sst", "t", "d2m", "skt", "stl1"), ("K", "kelvin", "Kelvin")),
    "z": ("m**2 s**-2", "m2 s-2", "m^2/s^2", "m2/s2"),
    **dict.fromkeys(("u", "v", "u10", "v10", "u100", "v100"), ("m s**-1", "m s-1", "m/s")),
    **dict.fromkeys(("msl", "sp"), ("Pa",)),
}


def check_units(ds: xr.Dataset, path: Path) -> None:
    """A known variable in unexpected units (say degC for t2m) is an error, not a silent
    offset of 273.15 in the cache. Variables without a units attribute pass."""
    for v in ds.data_vars:
        units = ds[v].attrs.get("units")
        want = EXPECTED_UNITS.get(v)
        if units is not None and want is not None and str(units).strip() not in want:
            raise InputError(f"{path}: variable {v!r} is in {units!r}, ERA5 delivers it in "
                             f"{want[0]!r}; convert the file or drop the variable")


def check_classic_size(path: Path, raw: xr.Dataset) -> None:
    """A truncated netCDF3 file opens and reads fill/garbage silently: compare its size with
    the bytes its variables need (classic files store them unpadded, uncompressed).
    ``raw`` is the file as xarray opened it; the on-disk dtypes are in the encodings."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:3] != b"CDF":
        return
    need = sum(int(np.prod(v.shape)) * np.dtype(v.encoding.get("dtype", v.dtype)).itemsize
               for v in raw.variables.values())
    have = path.stat().st_size
    if have < need:
        raise InputError(f"{path}: truncated netCDF3 file ({have} bytes, its variables need "
                         f"at least {need}); download it again")



def open_file(path: str | os.PathLike, chunk_bytes: int = TARGET_CHUNK_BYTES,
              align_steps: int | None = None, max_block_bytes: int | None = None,
              member: Member = None) -> xr.Dataset:
    """Open one ERA5 NetCDF file and normalise it (see module docstring). Lazy (Dask): read
    blocks of about ``chunk_bytes`` decoded, aligned to ``align_steps`` and to the file's
    own time chunks where those fit in ``max_block_bytes`` (:func:`block_steps`). An ensemble
    gives the ``member`` asked for (:mod:`.members`)."""
    path = Path(path)
    try:
        raw = xr.open_dataset(path, engine="netcdf4", chunks=None, decode_timedelta=False,
                              cache=False)
    except Exception as exc:  # netCDF4/HDF5 raise a variety of OSError/ValueError
        if not path.exists():
            raise InputError(f"{path}: no such file") from exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable NetCDF file ({reason})") from exc
    check_classic_size(path, raw)
    opened = raw  # what closes the file
    tdim = _find(raw, TIME_NAMES)
    single = tdim is None and next((n for n in TIME_NAMES if n in raw.coords
                                    and raw[n].ndim == 0), None)
    if single:  # one field, time as a scalar coordinate (cfgrib, xarray): one step
        raw = raw.expand_dims(single)
        tdim = single
    lat = _find(raw, LAT_NAMES, ("degrees_north", "degree_north"))
    lon = _find(raw, LON_NAMES, ("degrees_east", "degree_east"))
    if tdim is None or lat is None or lon is None:
        missing = [n for n, v in (("time", tdim), ("latitude", lat), ("longitude", lon))
                   if v is None]
        raise InputError(f"{path}: no {'/'.join(missing)} dimension found "
                         f"(dims: {dict(raw.sizes)})")
    level = _find(raw, LEVEL_NAMES, ("hPa", "millibars", "mbar", "Pa"))
    units_per_hpa = _pressure_unit(raw, level, path) if level else None
    ren = {tdim: "time", lat: "lat", lon: "lon"} | ({level: "level"} if level else {})
    ds = raw.rename(ren)
    ds = pick_member(ds, path, member)
    grid_dims = {"time", "lat", "lon"}
    data_vars = [v for v in ds.data_vars if grid_dims <= set(ds[v].dims)]
    if not data_vars:
        raise InputError(f"{path}: holds no variable on (time, latitude, longitude)")
    ds = ds[data_vars]
    # Chunk before any re-indexing so that sorting happens in memory on whole blocks read
    # with plain slices (netCDF4 is slow with index arrays). One block <= chunk_bytes.
    step_bytes = sum(
        4 * int(np.prod([ds.sizes[d] for d in ds[v].dims if d not in ("time", "level")]))
        for v in ds.data_vars
    )
    depth = None if single else time_chunk_depth(raw, tdim, data_vars)
    nt = int(min(ds.sizes["time"], block_steps(step_bytes, chunk_bytes, align_steps, depth,
                                               max_block_bytes)))
    # a per-step expver coordinate is read before chunking makes it a Dask array (computed
    # through Dask it costs a graph execution per file at planning)
    ev = ds["expver"].values if "expver" in ds.coords and "expver" not in ds.dims else None
    ds = ds.chunk({"time": nt} | ({"level": 1} if "level" in ds.dims else {})
                  | ({"number": -1} if "number" in ds.dims else {}))
    if member == "mean":
        ds = mean_of_members(ds)
    if "expver" in ds.dims:
        ds = collapse_expver_dim(ds, path)
    elif ev is not None:
        ds = ds.assign_coords(expver=("time", np.array([expver_str(e) for e in np.atleast_1d(
            ev)] if ev.ndim else [expver_str(ev.item())] * ds.sizes["time"], dtype="U4")))
    else:
        ds = ds.assign_coords(expver=("time", np.full(ds.sizes["time"], FINAL, dtype="U4")))
    extra = [c for c in ds.coords if c not in ("time", "lat", "lon", "level", "expver")]
    ds = ds.drop_vars(extra)
    # Normalise coordinate order: lat ascending, lon in [0, 360) ascending, time ascending.
    lon_vals = np.mod(ds["lon"].values.astype(np.float64), 360.0)
    ds = ds.assign_coords(lon=lon_vals, lat=ds["lat"].values.astype(np.float64))
    ds = ds.isel(lat=_sorter(ds["lat"].values), lon=_sorter(lon_vals))
    if not np.all(np.diff(ds["time"].values) > np.timedelta64(0)):
        ds = ds.isel(time=np.argsort(ds["time"].values, kind="stable"))
    if "level" in ds.dims:
        ds = ds.assign_coords(level=ds["level"].values.astype(np.float64) / units_per_hpa)
    out = xr.Dataset(attrs=dict(raw.attrs))
    for v in ds.data_vars:
        da = ds[v] if ds[v].dtype == np.float32 else ds[v].astype(np.float32)
        da.encoding = {}
        da.attrs = {k: val for k, val in raw[v].attrs.items()
                    if k not in ("scale_factor", "add_offset", "_FillValue", "missing_value",
                                 "coordinates")}
        out[v] = da
    out["lat"].attrs = {"units": "degrees_north", "long_name": "latitude"}
    out["lon"].attrs = {"units": "degrees_east", "long_name": "longitude"}
    if "level" in out.dims:
        out["level"].attrs = {"units": "hPa", "long_name": "pressure level"}
    for name in out.variables:
        out[name].encoding = {}
    out.set_close(opened.close)
    return out


# units of a pressure coordinate per hPa (CF / UDUNITS spellings; no units: hPa, as the CDS)
PRESSURE_UNITS = {"hpa": 1.0, "millibars": 1.0, "millibar": 1.0, "mbar": 1.0, "mb": 1.0,
                  "pa": 100.0, "": 1.0}


def _pressure_unit(raw: xr.Dataset, level: str, path: Path) -> float:
    """Units of the vertical coordinate ``level`` per hPa (100 for Pa); :class:`InputError` when its
    units are not a pressure (model levels, isentropic levels, heights)."""
    units = str(raw[level].attrs.get("units", "")).strip()
    factor = PRESSURE_UNITS.get(units.lower())
    if factor is None:
        raise InputError(f"{path}: vertical coordinate {level!r} is in {units!r}, not a "
                         "pressure (Pa, hPa, millibars); era5cache reads pressure levels only")
    return factor


def _sorter(values: np.ndarray) -> slice | np.ndarray:
    """An indexer that sorts ``values`` ascending: a slice (a view, no copy) when the values
    are already ascending or descending, else an index array."""
    d = np.diff(values)
    if values.size < 2 or (d > 0).all():
        return slice(None)
    if (d < 0).all():
        return slice(None, None, -1)
    return np.argsort(values, kind="stable")

