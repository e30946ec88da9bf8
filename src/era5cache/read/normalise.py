"""One ERA5 input file (NetCDF in either CDS layout or converted by CDO/NCO, or GRIB)
opened into the normalised form.

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
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import xarray as xr

from ..errors import InputError
from .blocks import block_steps, disk_chunk_bytes, time_chunk_depth
from .expver import FINAL, collapse_expver_dim, expver_str
from .grib import is_grib, open_grib
from .members import Member, mean_of_members, pick_member
from .netcdf import open_netcdf
from .options import DEFAULT_OPTIONS, ReadOptions
from .packed import CODING_ATTRS, decode_packed, decode_table, is_raw_packed

TIME_NAMES = ("valid_time", "time")
LEVEL_NAMES = ("pressure_level", "level", "isobaricInhPa", "plev")
LAT_NAMES = ("latitude", "lat", "nav_lat", "y")
LON_NAMES = ("longitude", "lon", "nav_lon", "x")
# GRIB short names that CDO keeps as NetCDF variable names (`cdo -f nc4 copy x.grib x.nc`),
# with the names the CDS and cfgrib give the same parameters
GRIB_SHORT_NAMES = MappingProxyType({"2t": "t2m", "2d": "d2m", "10u": "u10", "10v": "v10",
                                     "100u": "u100", "100v": "v100", "10si": "si10"})


def _find(ds: xr.Dataset, names: tuple[str, ...], units: tuple[str, ...] = ()) -> str | None:
    for n in names:
        if n in ds.dims:
            return n
    for n in ds.dims:
        if n in ds.variables and ds[n].attrs.get("units") in units and units:
            return n
    return None


@dataclass(frozen=True)
class Part:
    """One normalised dataset of a file, and ``slab_bytes``: what keeping its compressed
    chunks decompressed costs an open file (:func:`.blocks.disk_chunk_bytes`) where its read
    blocks do not take whole chunks (chunks deeper in time than a block), else 0."""

    dataset: xr.Dataset
    slab_bytes: int = 0


def open_parts(path: str | os.PathLike, options: ReadOptions = DEFAULT_OPTIONS) -> list[Part]:
    """Open one ERA5 file, NetCDF or GRIB (:func:`.grib.is_grib`), normalised (see module
    docstring): one part for NetCDF, one per variable and message group for GRIB
    (:func:`.grib.open_grib`). Lazy (Dask): read blocks as ``options`` say
    (:func:`.blocks.block_steps`); an ensemble gives the member asked for (:mod:`.members`)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    raws = open_grib(path, options.files) if is_grib(path) else [
        open_netcdf(path, options.files)]
    return [normalise(raw, path, options) for raw in raws]


def open_file(path: str | os.PathLike, options: ReadOptions = DEFAULT_OPTIONS) -> xr.Dataset:
    """:func:`open_parts` as one dataset: a GRIB file's parts merged (their time steps must
    agree, else :class:`InputError`)."""
    parts = [p.dataset for p in open_parts(path, options)]
    if len(parts) == 1:
        return parts[0]
    try:
        merged = xr.merge(parts, join="exact", compat="override",
                          combine_attrs="drop_conflicts")
    except ValueError as exc:
        raise InputError(f"{path}: its variables cover different time steps; "
                         "read it with open_era5, which combines them") from exc
    merged.set_close(lambda: [p.close() for p in parts])
    return merged


@dataclass(frozen=True)
class Dims:
    """Names of a raw file's dimensions; ``single``: time was a scalar coordinate (one
    field, expanded to one step); ``per_hpa``: the level coordinate's units per hPa."""

    time: str
    lat: str
    lon: str
    level: str | None
    single: bool
    per_hpa: float | None


def normalise(raw: xr.Dataset, path: Path, options: ReadOptions = DEFAULT_OPTIONS) -> Part:
    """One raw dataset of ``path`` (as :func:`.netcdf.open_netcdf` or
    :func:`.grib.open_grib` give it) in the normalised form; closing the result closes
    ``raw``. The steps: find the dimensions, rename to ERA5's names and pick the member,
    chunk into read blocks and decode packed values, one expver per step, coordinates in
    order, float32 variables with their CF attributes."""
    opened = raw  # what closes the file
    raw, dims = find_dimensions(raw, path)
    ds, back = _renamed(raw, dims, path, options.member)
    names = [back.get(v, v) for v in ds.data_vars]  # the raw file's
    depth = None if dims.single else time_chunk_depth(raw, dims.time, names)
    ev = ds["expver"].values if "expver" in ds.coords and "expver" not in ds.dims else None
    ds, nt = _read_blocks(ds, depth, options)
    if options.member == "mean":
        ds = mean_of_members(ds)
    ds = coordinates_in_order(_with_expver(ds, ev, path), dims.per_hpa, path)
    out = float32_variables(ds, raw, back)
    shared = bool(depth and depth > 1 and nt % depth)  # blocks share chunks
    out.set_close(opened.close)
    return Part(out, disk_chunk_bytes(raw, names, dims.time) if shared else 0)


def find_dimensions(raw: xr.Dataset, path: Path) -> tuple[xr.Dataset, Dims]:
    """``raw`` with a scalar time or level expanded to a dimension of one (cfgrib, xarray
    squeeze them), and the names of its dimensions; :class:`InputError` where time,
    latitude or longitude is missing or the coordinates cannot be ERA5's
    (:func:`check_coordinates`)."""
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
    check_coordinates(raw, path, tdim, lat, lon)
    level = _find(raw, LEVEL_NAMES, ("hPa", "millibars", "mbar", "Pa"))
    scalar_level = level is None and next(
        (n for n in LEVEL_NAMES if n in raw.coords and raw[n].ndim == 0), None)
    if scalar_level:  # one pressure level, squeezed to a scalar coordinate (cfgrib)
        raw = raw.expand_dims(scalar_level)
        level = scalar_level
    per_hpa = _pressure_unit(raw, level, path) if level else None
    return raw, Dims(tdim, lat, lon, level, bool(single), per_hpa)


def _renamed(raw: xr.Dataset, dims: Dims, path: Path, member: Member
             ) -> tuple[xr.Dataset, dict[str, str]]:
    """The variables on (time, latitude, longitude) renamed to the normalised names (ERA5's
    for GRIB's short names), one ensemble member picked; and the renames reversed."""
    ren = {dims.time: "time", dims.lat: "lat", dims.lon: "lon"}
    ren |= ({dims.level: "level"} if dims.level else {}) | _era5_names(raw)
    ds = pick_member(raw.rename(ren), path, member)
    grid_dims = {"time", "lat", "lon"}
    data_vars = [v for v in ds.data_vars if grid_dims <= set(ds[v].dims)]
    if not data_vars:
        raise InputError(f"{path}: holds no variable on (time, latitude, longitude)")
    return ds[data_vars], {new: old for old, new in ren.items()}


def _read_blocks(ds: xr.Dataset, depth: int | None, options: ReadOptions
                 ) -> tuple[xr.Dataset, int]:
    """``ds`` chunked into read blocks of ``nt`` steps (one level a block), packed values
    decoded by table (:mod:`.packed`); and ``nt``. Chunked before any re-indexing, so that
    sorting happens in memory on whole blocks read with plain slices (netCDF4 is slow with
    index arrays). ``depth``: time steps per HDF5 chunk of the file."""
    step_bytes = sum(
        4 * int(np.prod([ds.sizes[d] for d in ds[v].dims if d not in ("time", "level")]))
        for v in ds.data_vars
    )
    nt = int(min(ds.sizes["time"], block_steps(step_bytes, options.chunk_bytes,
                                               options.align_steps, depth,
                                               options.max_block_bytes)))
    ds = ds.chunk({"time": nt} | ({"level": 1} if "level" in ds.dims else {})
                  | ({"number": -1} if "number" in ds.dims else {}))
    for v in ds.data_vars:
        if is_raw_packed(ds[v]):  # opened raw (.netcdf.open_netcdf)
            ds[v] = decode_packed(ds[v], decode_table(ds[v].variable))
    return ds, nt


def _with_expver(ds: xr.Dataset, ev: np.ndarray | None, path: Path) -> xr.Dataset:
    """``ds`` with a string ``expver`` per step: a legacy expver dimension collapsed, the
    file's per-step values ``ev`` (read before chunking: computed through Dask it costs a
    graph execution per file), else final ERA5; other extra coordinates dropped."""
    if "expver" in ds.dims:
        ds = collapse_expver_dim(ds, path)
    elif ev is not None:
        ds = ds.assign_coords(expver=("time", np.array([expver_str(e) for e in np.atleast_1d(
            ev)] if ev.ndim else [expver_str(ev.item())] * ds.sizes["time"], dtype="U4")))
    else:
        ds = ds.assign_coords(expver=("time", np.full(ds.sizes["time"], FINAL, dtype="U4")))
    extra = [c for c in ds.coords if c not in ("time", "lat", "lon", "level", "expver")]
    return ds.drop_vars(extra)


def coordinates_in_order(ds: xr.Dataset, per_hpa: float | None, path: Path) -> xr.Dataset:
    """Latitude ascending, longitude in [0, 360) ascending (a cyclic column dropped), time
    ascending, levels in whole hPa ascending (``per_hpa``: the file's units per hPa)."""
    lon_vals = np.mod(ds["lon"].values.astype(np.float64), 360.0)
    repeated = _repeated_longitudes(lon_vals, path)
    if repeated.size:  # a cyclic column (0 and 360), as CDO and NCL write: dropped
        kept = np.setdiff1d(np.arange(lon_vals.size), repeated)
        ds, lon_vals = ds.isel(lon=kept), lon_vals[kept]
    ds = ds.assign_coords(lon=lon_vals, lat=ds["lat"].values.astype(np.float64))
    ds = ds.isel(lat=_sorter(ds["lat"].values), lon=_sorter(lon_vals))
    if not np.all(np.diff(ds["time"].values) > np.timedelta64(0)):
        ds = ds.isel(time=np.argsort(ds["time"].values, kind="stable"))
    if "level" in ds.dims:  # in hPa, ascending (GRIB lists them from the ground up)
        hpa = ds["level"].values.astype(np.float64) / per_hpa
        odd = hpa[(hpa < 1) | (np.abs(hpa - np.round(hpa)) > 1e-6)]
        if odd.size:  # a channel is named by whole hPa ('z500'); ERA5's top level is 1 hPa
            raise InputError(f"{path}: pressure level {odd[0]:g} hPa is not a whole number "
                             "of hPa from 1 up (ERA5's levels are 1-1000 hPa)")
        ds = ds.assign_coords(level=hpa).isel(level=_sorter(hpa))
    return ds


def float32_variables(ds: xr.Dataset, raw: xr.Dataset, back: dict[str, str]) -> xr.Dataset:
    """The normalised dataset: float32 variables (time, [level,] lat, lon) with the raw
    file's attributes less GRIB's and the coding ones, coordinates with CF attributes, no
    encoding (no packing leaks into the outputs)."""
    out = xr.Dataset(attrs=dict(raw.attrs))
    for v in ds.data_vars:
        attrs = raw[back.get(v, v)].attrs if back.get(v, v) in raw.variables else ds[v].attrs
        da = ds[v] if ds[v].dtype == np.float32 else ds[v].astype(np.float32)
        da = da.transpose("time", ..., "lat", "lon")
        da.encoding = {}
        da.attrs = {k: val for k, val in attrs.items() if not k.startswith("GRIB_")
                    and k not in CODING_ATTRS + ("coordinates",)}
        out[v] = da
    out["lat"].attrs = {"units": "degrees_north", "long_name": "latitude"}
    out["lon"].attrs = {"units": "degrees_east", "long_name": "longitude"}
    if "level" in out.dims:
        out["level"].attrs = {"units": "hPa", "long_name": "pressure level"}
    for name in out.variables:
        out[name].encoding = {}
    return out


def check_coordinates(raw: xr.Dataset, path: Path, time: str, lat: str, lon: str) -> None:
    """:class:`InputError` naming the file when its coordinates cannot be ERA5's: a time
    that did not decode to dates (no or unknown ``units``, a calendar other than ERA5's
    proleptic Gregorian, a missing step), a latitude or longitude that is not finite, a
    latitude beyond the poles."""
    t = raw[time]
    if t.dtype.kind != "M":
        calendar = t.encoding.get("calendar") or t.attrs.get("calendar")
        if t.dtype == object and calendar:  # decoded to cftime dates
            raise InputError(f"{path}: time coordinate {time!r} uses the {calendar!r} "
                             "calendar; ERA5 uses the proleptic Gregorian calendar (a model's "
                             "output, or a file converted wrongly?)")
        units = t.attrs.get("units")
        why = "has no units attribute" if units is None else f"has units {units!r}"
        raise InputError(f"{path}: time coordinate {time!r} {why}, not a time since a date "
                         "(ERA5: 'hours since 1900-01-01' or 'seconds since 1970-01-01'); "
                         "cannot tell when its steps are")
    if np.isnat(t.values).any():
        raise InputError(f"{path}: time coordinate {time!r} has a missing value at index "
                         f"{int(np.argmax(np.isnat(t.values)))}")
    for name, what, limit in ((lat, "latitude", 90.0), (lon, "longitude", None)):
        values = np.asarray(raw[name].values, dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise InputError(f"{path}: {what} coordinate {name!r} holds {values[bad][0]} at "
                             f"index {int(np.argmax(bad))}")
        if limit is not None and (np.abs(values) > limit + 1e-6).any():
            raise InputError(f"{path}: {what} coordinate {name!r} holds "
                             f"{values[np.abs(values) > limit + 1e-6][0]:g}, beyond the poles")


def _repeated_longitudes(lon: np.ndarray, path: Path) -> np.ndarray:
    """Positions of columns that repeat an earlier one modulo 360 degrees: the last column of
    a global grid that ends where it starts (0 and 360, a cyclic column). Any other repeated
    longitude is an :class:`InputError`."""
    _, first = np.unique(lon, return_index=True)
    repeated = np.setdiff1d(np.arange(lon.size), first)
    if repeated.size and not (repeated.size == 1 and repeated[0] == lon.size - 1
                              and lon[-1] == lon[0]):
        raise InputError(f"{path}: longitude {lon[repeated[0]]:g} appears twice (modulo 360); "
                         "each column must be a different longitude")
    return repeated


# units of a pressure coordinate per hPa (CF / UDUNITS spellings; no units: hPa, as the CDS)
PRESSURE_UNITS = MappingProxyType({"hpa": 1.0, "millibars": 1.0, "millibar": 1.0,
                                   "mbar": 1.0, "mb": 1.0, "pa": 100.0, "": 1.0})


def _pressure_unit(raw: xr.Dataset, level: str, path: Path) -> float:
    """Units of the vertical coordinate ``level`` per hPa (100 for Pa); :class:`InputError` when its
    units are not a pressure (model levels, isentropic levels, heights)."""
    units = str(raw[level].attrs.get("units", "")).strip()
    factor = PRESSURE_UNITS.get(units.lower())
    if factor is None:
        raise InputError(f"{path}: vertical coordinate {level!r} is in {units!r}, not a "
                         "pressure (Pa, hPa, millibars); era5cache reads pressure levels only")
    return factor


def _era5_names(raw: xr.Dataset) -> dict[str, str]:
    """Renames from GRIB short names (:data:`GRIB_SHORT_NAMES`, also CDO's member copies
    ``2t_2`` ...) to ERA5's NetCDF names, where the NetCDF name is not taken."""
    ren = {}
    for v in raw.data_vars:
        base, _, member = str(v).partition("_")
        new = GRIB_SHORT_NAMES.get(base)
        if new and (not member or member.isdigit()):
            target = new + (f"_{member}" if member else "")
            if target not in raw.variables:
                ren[v] = target
    return ren


def _sorter(values: np.ndarray) -> slice | np.ndarray:
    """An indexer that sorts ``values`` ascending: a slice (a view, no copy) when the values
    are already ascending or descending, else an index array."""
    d = np.diff(values)
    if values.size < 2 or (d > 0).all():
        return slice(None)
    if (d < 0).all():
        return slice(None, None, -1)
    return np.argsort(values, kind="stable")

