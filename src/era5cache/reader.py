"""Open ERA5 NetCDF as the CDS delivers it (both layouts) into one normalised xarray Dataset.

Normalised form: dimension ``time`` (ascending, unique, datetime64), optional ``level`` (hPa),
``lat`` ascending and ``lon`` in [0, 360) ascending; one float32 variable per ERA5 short name
in physical units, NaN where missing; a per-step string coordinate ``expver`` ('0001' final
ERA5, '0005' preliminary ERA5T). Each file is decoded with its own ``scale_factor`` /
``add_offset`` *before* files are combined, and the encoding is dropped so that no packing
leaks into the outputs. Data stay lazy (Dask) except where a decision needs values: collapsing
a legacy ``expver`` dimension and comparing duplicate steps.
"""

from __future__ import annotations

import glob
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import InputError
from .grid import SourceGrid
from .timeaxis import TimeAxis, analyse

TIME_NAMES = ("valid_time", "time")
LEVEL_NAMES = ("pressure_level", "level", "isobaricInhPa", "plev")
LAT_NAMES = ("latitude", "lat", "nav_lat", "y")
LON_NAMES = ("longitude", "lon", "nav_lon", "x")
FINAL, PRELIMINARY = "0001", "0005"
# Decoded bytes per read task: under glibc's 32 MiB ceiling for its mmap threshold, so that
# with the worker malloc settings of the job (pipeline.WORKER_MALLOC) blocks reuse heap pages
# instead of page-faulting a fresh mapping each time (measured: 1.5x faster regridding).
TARGET_CHUNK_BYTES = 30 * 2**20


@dataclass(frozen=True)
class Era5Inputs:
    """The combined inputs: the dataset plus what was learned while combining them.

    ``source`` holds, for each time step of ``dataset``, the file it was read from.
    """

    dataset: xr.Dataset
    files: tuple[Path, ...]
    source: np.ndarray
    axis: TimeAxis
    dropped_duplicates: int
    closers: tuple = ()

    def close(self) -> None:
        """Close every file handle held in this process (lazy reads re-open on demand).

        HDF5 is not thread-safe: call this before handing the graph to a Dask client, so
        that no handle is left for another thread to close while this one reads.
        """
        for close in self.closers:
            close()

    @property
    def grid(self) -> SourceGrid:
        return SourceGrid(self.dataset["lat"].values, self.dataset["lon"].values)

    @property
    def preliminary(self) -> np.ndarray:
        """Times still preliminary (ERA5T) after final data replaced what it could."""
        ev = self.dataset["expver"].values
        return self.dataset["time"].values[ev != FINAL]


def list_inputs(patterns: list[str] | tuple[str, ...]) -> list[Path]:
    """The files that paths, directories (their *.nc and *.zip) and globs name, unique, in
    order; ZIP archives are listed, not opened. :class:`InputError` when a pattern matches
    nothing."""
    files: list[Path] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir():
            matches = sorted(str(x) for x in p.glob("*.nc")) + sorted(
                str(x) for x in p.glob("*.zip"))
        else:
            matches = sorted(glob.glob(str(pat))) or ([str(p)] if p.exists() else [])
        if not matches:
            raise InputError(f"{pat}: no such input file (nothing matches)")
        files.extend(Path(m) for m in matches)
    seen, unique = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def expand_inputs(patterns: list[str] | tuple[str, ...], extract_dir: Path | None = None
                  ) -> list[Path]:
    """:func:`list_inputs`, with CDS ZIP archives unpacked: their NetCDF members are
    extracted into ``extract_dir`` (default: a folder beside the archive)."""
    files: list[Path] = []
    for f in list_inputs(patterns):
        if zipfile.is_zipfile(f):
            files.extend(_extract_zip(f, extract_dir))
        else:
            files.append(f)
    return files


def _extract_zip(path: Path, extract_dir: Path | None) -> list[Path]:
    dest = (extract_dir or path.parent / f".{path.name}.d") / path.stem
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.namelist() if m.endswith(".nc") and not m.endswith("/")]
        if not members:
            raise InputError(f"{path}: ZIP archive holds no .nc file")
        for m in members:
            target = dest / Path(m).name
            info = zf.getinfo(m)
            if not target.exists() or target.stat().st_size != info.file_size:
                tmp = target.with_suffix(".nc.tmp")
                with zf.open(m) as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 22):
                        dst.write(chunk)
                os.replace(tmp, target)
            out.append(target)
    return out


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


def block_steps(step_bytes: int, chunk_bytes: int, align: int | None = None,
                depth: int | None = None, max_bytes: int | None = None) -> int:
    """Time steps per read block: as many as fit in ``chunk_bytes`` (at least one), rounded
    down to a divisor or a multiple of ``align`` (the output's time chunk) when given.

    A read block that straddles an output chunk boundary was read and regridded twice, once
    for each chunk (Dask fuses the read into both consumers): 778 steps regridded for 624 on
    the 2.6 GB bench input with 7-step blocks and 24-step chunks. Aligned, a file that starts
    on a chunk boundary is read once; one that starts off it repeats a block at each
    boundary.

    ``depth``: time steps per HDF5 chunk of the file (compressed netCDF4 with the library's
    default chunking holds many steps per chunk: 32 for 96 hourly 0.25-degree steps, 124 for
    a month). HDF5 decompresses a whole chunk to read any step of it, so a block that ends
    inside a chunk makes the next block decompress it again (2.3x the time on the 32-step
    file with 6-step blocks). Where whole chunks fit in ``max_bytes`` (the hard bound; the
    block may exceed ``chunk_bytes`` to reach one chunk), the block is a multiple of
    ``depth``, also aligned with ``align`` when ``depth`` divides it.
    """
    step_bytes = max(step_bytes, 1)
    whole_chunks = bool(depth and depth > 1
                        and depth * step_bytes <= max(max_bytes or 0, chunk_bytes))
    unit = depth if whole_chunks else 1  # blocks are multiples of this
    n = max(1, chunk_bytes // step_bytes // unit) * unit
    if not align or align % unit:
        return n
    if n >= align:
        return n // align * align
    return max(d for d in range(unit, n + 1, unit) if align % d == 0)


def _time_chunk_depth(raw: xr.Dataset, tdim: str, names: list[str]) -> int | None:
    """Time steps per HDF5 chunk of the variables ``names`` (the largest), None when they
    are contiguous or the file is netCDF3."""
    depths = []
    for v in names:
        enc = raw[v].encoding
        sizes = enc.get("chunksizes")
        if sizes and not enc.get("contiguous") and tdim in raw[v].dims:
            depths.append(int(sizes[raw[v].dims.index(tdim)]))
    return max(depths) if depths else None


def open_file(path: str | os.PathLike, chunk_bytes: int = TARGET_CHUNK_BYTES,
              align_steps: int | None = None, max_block_bytes: int | None = None
              ) -> xr.Dataset:
    """Open one ERA5 NetCDF file and normalise it (see module docstring). Lazy (Dask): read
    blocks of about ``chunk_bytes`` decoded, aligned to ``align_steps`` and to the file's
    own time chunks where those fit in ``max_block_bytes`` (:func:`block_steps`)."""
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
    tdim = _find(raw, TIME_NAMES)
    lat = _find(raw, LAT_NAMES, ("degrees_north", "degree_north"))
    lon = _find(raw, LON_NAMES, ("degrees_east", "degree_east"))
    if tdim is None or lat is None or lon is None:
        missing = [n for n, v in (("time", tdim), ("latitude", lat), ("longitude", lon))
                   if v is None]
        raise InputError(f"{path}: no {'/'.join(missing)} dimension found "
                         f"(dims: {dict(raw.sizes)})")
    level = _find(raw, LEVEL_NAMES, ("hPa", "millibars", "mbar"))
    ren = {tdim: "time", lat: "lat", lon: "lon"} | ({level: "level"} if level else {})
    ds = raw.rename(ren)
    if "number" in ds.variables:
        if ds["number"].size > 1:
            raise InputError(f"{path}: holds {ds['number'].size} ensemble members; "
                             "era5cache handles the reanalysis (one member) only")
        ds = ds.drop_vars("number").squeeze([d for d in ("number",) if d in ds.dims], drop=True)
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
    depth = _time_chunk_depth(raw, tdim, data_vars)
    nt = int(min(ds.sizes["time"], block_steps(step_bytes, chunk_bytes, align_steps, depth,
                                               max_block_bytes)))
    # a per-step expver coordinate is read before chunking makes it a Dask array (computing
    # that took 14 ms per file: 0.7 s of planning for the 48 files of the sample)
    ev = ds["expver"].values if "expver" in ds.coords and "expver" not in ds.dims else None
    ds = ds.chunk({"time": nt} | ({"level": 1} if "level" in ds.dims else {}))
    if "expver" in ds.dims:
        ds = _collapse_expver_dim(ds, path)
    elif ev is not None:
        ds = ds.assign_coords(expver=("time", np.array([_expver_str(e) for e in np.atleast_1d(
            ev)] if ev.ndim else [_expver_str(ev.item())] * ds.sizes["time"], dtype="U4")))
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
        ds = ds.assign_coords(level=ds["level"].values.astype(np.float64))
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
    out.set_close(raw.close)
    return out


def _sorter(values: np.ndarray) -> slice | np.ndarray:
    """An indexer that sorts ``values`` ascending: a slice (a view, no copy) when the values
    are already ascending or descending, else an index array."""
    d = np.diff(values)
    if values.size < 2 or (d > 0).all():
        return slice(None)
    if (d < 0).all():
        return slice(None, None, -1)
    return np.argsort(values, kind="stable")


def _expver_str(value) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return f"{int(str(value).strip()):04d}"
    except ValueError:
        return str(value).strip()


def _collapse_expver_dim(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Legacy ``expver`` dimension -> one series; per step the final slot wins when it holds data.

    Each step is valid in one slot (the other is fill). A step whose final ('0001') slot holds
    any value takes that slot; otherwise the first other slot that holds any value.
    """
    labels = [_expver_str(e) for e in ds["expver"].values]
    order = sorted(range(len(labels)), key=lambda i: (labels[i] != FINAL, labels[i]))
    first = next(iter(ds.data_vars))
    spatial = [d for d in ds[first].dims if d not in ("time", "expver")]
    has = ds[first].notnull().any(spatial).compute().values  # (time, expver)
    if has.shape[1] != len(labels):
        has = has.T
    chosen = np.full(ds.sizes["time"], -1)
    for i in reversed(order):
        chosen = np.where(has[:, i], i, chosen)
    chosen = np.where(chosen < 0, order[0], chosen)
    pick = xr.DataArray(chosen, dims="time")
    out = xr.Dataset({v: ds[v].isel(expver=order[0]) for v in ds.data_vars})
    for i in order[1:]:
        for v in ds.data_vars:
            out[v] = xr.where(pick == i, ds[v].isel(expver=i), out[v], keep_attrs=True)
    out = out.drop_vars("expver", errors="ignore")
    return out.assign_coords(expver=("time", np.array([labels[c] for c in chosen], dtype="U4")))


def open_era5(paths: list[str | os.PathLike] | tuple, variables: list[str] | None = None,
              chunk_bytes: int = TARGET_CHUNK_BYTES, extract_dir: Path | None = None,
              align_steps: int | None = None, max_block_bytes: int | None = None
              ) -> Era5Inputs:
    """Open and combine ERA5 files into one normalised dataset.

    Rules: files are decoded one by one and then concatenated along time per product (files
    holding the same variables); duplicate steps are resolved with final ERA5 winning over
    ERA5T; duplicates with the same expver must be identical (else :class:`InputError`
    naming both files); all files must share one grid; every variable must cover every step.
    ``variables`` restricts the ERA5 short names kept. The time axis is analysed (step, gaps,
    irregular steps) but not enforced here: callers decide. ``chunk_bytes``,
    ``align_steps`` and ``max_block_bytes``: the read blocks (:func:`block_steps`).
    """
    files = expand_inputs([str(p) for p in paths], extract_dir)
    opened: list[tuple[Path, xr.Dataset]] = []
    grid: tuple[Path, SourceGrid] | None = None
    for f in files:
        ds = open_file(f, chunk_bytes, align_steps, max_block_bytes)
        if variables is not None:
            keep = [v for v in ds.data_vars if v in variables]
            if not keep:
                continue
            ds = ds[keep]
        check_units(ds, f)
        g = SourceGrid(ds["lat"].values, ds["lon"].values)
        if grid is None:
            grid = (f, g)
        elif not grid[1].same_as(g):
            raise InputError(f"{f}: grid {g.describe()} differs from {grid[0]} "
                             f"({grid[1].describe()}); regrid them in separate runs")
        opened.append((f, ds))
    closers = tuple(ds.close for _, ds in opened)
    if not opened:
        raise InputError(f"{files[0] if files else paths}: none of the inputs holds "
                         f"the requested variables {variables}")
    groups: dict[tuple[str, ...], list[tuple[Path, xr.Dataset]]] = {}
    for f, ds in opened:
        groups.setdefault(tuple(sorted(ds.data_vars)), []).append((f, ds))
    parts, dropped = [], 0
    sources: dict[str, np.ndarray] = {}
    for _names, members in groups.items():
        combined, src, n_dropped = _concat_dedup(members)
        dropped += n_dropped
        parts.append(combined)
        for v in combined.data_vars:
            if v in sources:
                raise InputError(f"{src[0]}: variable {v!r} also arrives in a file with other "
                                 "variables; give each variable in one product only")
            sources[v] = src
    times = np.unique(np.concatenate([p["time"].values for p in parts]))
    for p in parts:
        if p.sizes["time"] != times.size:
            missing = np.setdiff1d(times, p["time"].values)
            names = ", ".join(p.data_vars)
            raise InputError(
                f"{sources[next(iter(p.data_vars))][0]}: variables {names} lack "
                f"{missing.size} time steps that other inputs have (first {missing[0]})")
    base = parts[0]
    expver = np.stack([p["expver"].values for p in parts])
    # A step is final only when every product has it final.
    ev = np.where((expver == FINAL).all(axis=0), FINAL, PRELIMINARY)
    merged = xr.merge([p.drop_vars("expver") for p in parts], join="exact",
                      combine_attrs="drop_conflicts")
    merged = merged.assign_coords(expver=("time", ev))
    merged.attrs = dict(base.attrs)
    first_src = sources[next(iter(base.data_vars))]
    return Era5Inputs(
        dataset=merged,
        files=tuple(files),
        source=first_src,
        axis=analyse(merged["time"].values.astype("datetime64[s]")),
        dropped_duplicates=dropped,
        closers=closers,
    )


def _concat_dedup(members: list[tuple[Path, xr.Dataset]]):
    src = np.concatenate([np.full(ds.sizes["time"], str(f), dtype=object) for f, ds in members])
    ds = members[0][1] if len(members) == 1 else xr.concat(
        [m[1] for m in members], dim="time", data_vars="minimal", coords="minimal",
        compat="override", join="override", combine_attrs="override")
    t = ds["time"].values
    rank = (ds["expver"].values != FINAL).astype(int)
    order = np.lexsort((rank, t))
    t_sorted, r_sorted = t[order], rank[order]
    keep = np.ones(t.size, dtype=bool)
    keep[1:] = t_sorted[1:] != t_sorted[:-1]
    # Same-expver duplicates must hold identical values; compared in batches of steps.
    pairs = []
    for pos in np.flatnonzero(~keep):
        first = pos
        while not keep[first]:
            first -= 1
        if r_sorted[pos] == r_sorted[first]:
            pairs.append((order[first], order[pos], pos))
    step_bytes = sum(ds[v].nbytes // max(ds.sizes["time"], 1) for v in ds.data_vars)
    batch = max(1, TARGET_CHUNK_BYTES // max(step_bytes, 1))
    for k in range(0, len(pairs), batch):
        part = pairs[k:k + batch]
        ii = [p[0] for p in part]
        jj = [p[1] for p in part]
        for v in ds.data_vars:
            a_all, b_all = ds[v].isel(time=ii).values, ds[v].isel(time=jj).values
            for n, (i, j, pos) in enumerate(part):
                a, b = a_all[n], b_all[n]
                if not np.array_equal(a, b, equal_nan=True):
                    diff = np.nanmax(np.abs(a - b))
                    raise InputError(
                        f"{src[j]}: time step {t_sorted[pos].astype('datetime64[s]')} of "
                        f"{v!r} conflicts with the same step in {src[i]} (max difference "
                        f"{diff:.6g}); remove one of the two files")
    sel = order[keep]
    if sel.size != t.size or np.any(np.diff(sel) < 0):
        ds = ds.isel(time=sel)
    return ds, src[sel], int((~keep).sum())


def all_channels(ds: xr.Dataset) -> list[str]:
    """Every channel of a normalised dataset: variables, one per pressure level ('z500')."""
    out = []
    for v in ds.data_vars:
        if "level" in ds[v].dims:
            out += [f"{v}{int(x)}" for x in ds["level"].values]
        else:
            out.append(v)
    return out


def select_channels(ds: xr.Dataset, channels: list[str] | tuple[str, ...], where: str = "inputs"
                    ) -> xr.Dataset:
    """One (time, lat, lon) variable per channel: 'sst' or variable + level in hPa ('z500')."""
    out = {}
    for ch in channels:
        if ch in ds.data_vars and "level" not in ds[ch].dims:
            out[ch] = ds[ch]
            continue
        base = ch.rstrip("0123456789")
        lev = ch[len(base):]
        if base in ds.data_vars and "level" in ds[base].dims and lev:
            levels = ds["level"].values
            if float(lev) not in levels:
                raise InputError(f"{where}: variable {base!r} has no level {lev} hPa "
                                 f"(levels: {', '.join(f'{x:g}' for x in levels)})")
            da = ds[base].sel(level=float(lev)).drop_vars("level")
            da.attrs = dict(ds[base].attrs)
            out[ch] = da
            continue
        raise InputError(f"{where}: requested variable {ch!r} is not in the inputs "
                         f"(available: {', '.join(all_channels(ds))})")
    return xr.Dataset(out, attrs=ds.attrs)
