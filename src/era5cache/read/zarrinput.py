"""ERA5 Zarr stores as inputs: Google's ARCO-ERA5, WeatherBench2's, or any store of ERA5
variables in long names (:mod:`.longnames`) or short ones; a local folder or an fsspec URL
(``gs://``, ``s3://``, ``http(s)://``, ``file://``).

A store is opened without Dask (``chunks=None``: its metadata only, no graph over its million
chunks; xarray#8902), its time axis cut to the selection (:mod:`.timeselect`) while still
lazy, and only then chunked into read blocks: one task reads a block of time steps of one
variable with *every* level asked of it, so that a source chunk holding all 37 levels (ARCO)
is fetched and decoded once, and zarr fetches the block's chunks concurrently. Each variable
is one part (:class:`.normalise.Part`), its own levels, combined like a GRIB file's.

Validity: ARCO-ERA5's time axis runs 1900-2100 with data only between the dates in its
attributes ``valid_time_start`` and ``valid_time_stop`` (final ERA5), up to
``valid_time_stop_era5t`` (preliminary ERA5T, expver '0005'), each day inclusive; NaN
outside. A store with such attributes needs ``--start``/``--end`` and refuses a step outside
them; a store without them (WeatherBench2's) is valid over its whole axis. A chunk missing
from a store reads as its fill value (NaN): its step is refused as all-NaN, naming the store.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlparse

import numpy as np
import xarray as xr

from ..errors import InputError
from ..timeaxis import TimeSelection, native_step, parse_time
from .blocks import block_steps
from .channels import parse_channel
from .expver import FINAL, PRELIMINARY
from .longnames import LONG_NAMES, accumulation_hours, hours, short_names
from .normalise import Part, coordinates_in_order, find_dimensions, float32_variables
from .options import ReadOptions
from .timeselect import (
    ACCUMULATION_ATTR,
    sum_count,
    summed,
    windows,
)

METADATA_NAMES = (".zmetadata", "zarr.json", ".zgroup")  # what makes a folder a Zarr store
ANONYMOUS = MappingProxyType({"gs": {"token": "anon"}, "gcs": {"token": "anon"},
                              "s3": {"anon": True}})


@dataclass(frozen=True)
class StoreInput:
    """What a cache records of a store it read: ``url`` (as given; a local folder's
    absolute path), ``metadata_sha256`` (of its consolidated metadata; hashing its terabytes
    of chunks is no option), the ``selection`` read
    (:meth:`era5cache.timeaxis.TimeSelection.to_json`) and the ``decoded_bytes`` it reads."""

    url: str
    metadata_sha256: str
    selection: dict
    decoded_bytes: int

    def to_json(self) -> dict:
        return {"url": self.url, "metadata_sha256": self.metadata_sha256,
                "selection": dict(self.selection)}


def is_store(pattern: str) -> bool:
    """Whether an input names a Zarr store: a URL (``scheme://``) or a folder holding Zarr
    metadata (:data:`METADATA_NAMES`)."""
    if "://" in str(pattern):
        return True
    path = Path(pattern)
    return path.is_dir() and any((path / n).exists() for n in METADATA_NAMES)


def location(url: str) -> str:
    """Where zarr opens ``url``: a local path for a folder or ``file://`` URL, else the URL."""
    parsed = urlparse(str(url))
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return str(url)


def storage_options(url: str, given: dict | None) -> dict | None:
    """fsspec options for ``url``: ``given`` (a recipe's ``storage_options``), else anonymous
    access for ``gs://`` and ``s3://`` (:data:`ANONYMOUS`); None for a local store."""
    loc = location(url)
    if "://" not in loc:
        return None
    return dict(given) if given is not None else dict(
        ANONYMOUS.get(urlparse(loc).scheme, {}))


def open_raw(url: str, options: ReadOptions) -> xr.Dataset:
    """The store as xarray opens it, lazily and without Dask; :class:`InputError` naming it
    when it is not a Zarr store (or cannot be reached)."""
    loc = location(url)
    if "://" not in loc and not Path(loc).exists():
        raise InputError(f"{url}: no such Zarr store")
    try:
        with warnings.catch_warnings():  # a store without consolidated metadata is fine
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated",
                                    RuntimeWarning)
            return xr.open_zarr(loc, chunks=None, consolidated=None, decode_timedelta=False,
                                storage_options=storage_options(url, options.storage_options))
    except (KeyError, ValueError, OSError, TypeError) as exc:  # zarr's errors are
        # ValueErrors (GroupNotFoundError), aiohttp's connection errors OSErrors
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{url}: not a readable Zarr store (no {', '.join(METADATA_NAMES)} "
                         f"found, or unreadable: {why})") from None


def metadata_sha256(url: str, raw: xr.Dataset, options: ReadOptions) -> str:
    """sha256 of the store's consolidated metadata (``.zmetadata``, or ``zarr.json`` for
    Zarr 3), else of its variables' names, dimensions, shapes, chunks and attributes."""
    import fsspec

    loc = location(url)
    for name in METADATA_NAMES[:2]:
        try:
            if "://" in loc:
                with fsspec.open(f"{loc.rstrip('/')}/{name}", "rb",
                                 **(storage_options(url, options.storage_options) or {})) as f:
                    return hashlib.sha256(f.read()).hexdigest()
            return hashlib.sha256((Path(loc) / name).read_bytes()).hexdigest()
        except (FileNotFoundError, OSError):
            continue
    described = {"attrs": raw.attrs, "variables": {
        str(v): {"dims": list(raw[v].dims), "shape": list(raw[v].shape),
                 "chunks": list(raw[v].encoding.get("chunks") or ()),
                 "attrs": raw[v].attrs} for v in raw.variables}}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()
                          ).hexdigest()


@dataclass(frozen=True)
class OpenedStore:
    """A store's parts (one per variable asked for, normalised), its record, and every
    channel it holds (for messages)."""

    parts: list[Part]
    record: StoreInput
    available: tuple[str, ...]


def open_store(url: str, variables: list[str] | None, options: ReadOptions) -> OpenedStore:
    """The ``variables`` (short names and channels, as :func:`.channels.base_names` gives
    them; None: all) of the store at ``url``, at the steps ``options.time`` selects,
    normalised (see the module docstring)."""
    raw, dims = find_dimensions(open_raw(url, options), url)
    times = raw[dims.time].values.astype("datetime64[s]")
    valid = valid_range(raw, url)
    picked = _picked(times, options.time, valid, url)
    step = options.time.step if options.time and options.time.step else native_step(times)
    names = _store_names(raw, dims, None if step is None else hours(step))
    parts, available, decoded = [], [], 0
    for name, short in names.items():
        check_table_units(raw[name], url)
        levels = _levels_hpa(raw, dims) if dims.level in raw[name].dims else None
        available += [short] if levels is None else [f"{short}{h:g}" for h in levels]
        if variables is not None and short not in variables:
            continue
        part, nbytes = _variable(raw, _Variable(name, short, levels), dims,
                                 _Steps(times, picked, valid, url), variables, options)
        parts.append(part)
        decoded += nbytes
    sel = options.time.to_json() if options.time else {}
    where = url if "://" in str(url) else str(Path(url).resolve())  # as files: absolute
    record = StoreInput(where, metadata_sha256(url, raw, options), sel, decoded)
    return OpenedStore(parts, record, tuple(available))


def _spelling(units: str) -> str:
    return str(units).replace("**", "").replace("^", "").replace(" ", "").lower()


def check_table_units(variable: xr.DataArray, url: str) -> None:
    """:class:`InputError` naming the store when a variable of the long-name table
    (:data:`.longnames.LONG_NAMES`) carries units other than the table's (``mm`` of
    precipitation, which the cache would record and sum as metres); spellings of one unit
    (``m**2 s**-2``, ``m2 s-2``) agree. No ``units`` attribute: left to the physical check
    (:func:`.physical.check_units`), which refuses ERA5's known variables without one."""
    entry = LONG_NAMES.get(str(variable.name))
    units = variable.attrs.get("units")
    if entry is None or units is None or _spelling(units) == _spelling(entry.units):
        return
    raise InputError(f"{url}: variable {variable.name!r} is in {units!r}; ERA5 delivers it "
                     f"in {entry.units!r}: convert the store or drop the variable")


def _store_names(raw: xr.Dataset, dims, step_hours: float | None) -> dict[str, str]:
    """{store variable: short name} of the variables on the grid: long names mapped
    (:func:`.longnames.short_names`; of two for one short name, the other left out), other
    names kept."""
    grid = {dims.time, dims.lat, dims.lon}
    on_grid = [str(v) for v in raw.data_vars if grid <= set(raw[v].dims)]
    mapped = short_names(on_grid, step_hours)
    return {v: mapped.get(v, v) for v in on_grid if v in mapped or v not in LONG_NAMES}


@dataclass(frozen=True)
class ValidRange:
    """A store's valid data (its attributes; each day inclusive): from ``start``, final ERA5
    to ``final``, preliminary ERA5T to ``era5t``. datetime64[s]."""

    start: np.datetime64
    final: np.datetime64
    era5t: np.datetime64

    def describe(self) -> str:
        return (f"{self.start} .. {self.era5t}" + (
            f", final ERA5 to {self.final}" if self.era5t != self.final else ""))


def valid_range(raw: xr.Dataset, url: str) -> ValidRange | None:
    """The store's valid range from ``valid_time_start``, ``valid_time_stop`` and
    ``valid_time_stop_era5t`` (ARCO-ERA5's attributes; a date alone is the whole day);
    None when it has none; :class:`InputError` naming the store when one is not a date."""
    a = raw.attrs
    if "valid_time_start" not in a or "valid_time_stop" not in a:
        return None
    try:
        start = parse_time(a["valid_time_start"], "valid_time_start")
        final = parse_time(a["valid_time_stop"], "valid_time_stop", last=True)
        era5t = parse_time(a.get("valid_time_stop_era5t") or a["valid_time_stop"],
                           "valid_time_stop_era5t", last=True)
    except ValueError as exc:
        raise InputError(f"{url}: attribute {exc}") from None
    return ValidRange(start, final, max(final, era5t))


def _picked(times: np.ndarray, sel: TimeSelection | None, valid: ValidRange | None,
            url: str) -> np.ndarray:
    """Positions of the selected steps; :class:`InputError` naming the store when a store
    with a valid range is read without ``--start``/``--end``, or a selected step lies
    outside the range."""
    if valid is not None and (sel is None or sel.start is None or sel.end is None):
        raise InputError(f"{url}: the store's time axis runs {times[0]} .. {times[-1]} with "
                         f"data only in {valid.describe()}: give --start and --end (recipe "
                         "keys start:, end:)")
    picked = sel.indices(times, url) if sel is not None else np.arange(times.size)
    _check_valid(times[picked], valid, url, "")
    return picked


def _check_valid(when: np.ndarray, valid: ValidRange | None, url: str, why: str,
                 hint: str = "") -> None:
    if valid is None:
        return
    bad = (when < valid.start) | (when > valid.era5t)
    if bad.any():
        raise InputError(f"{url}: {when[bad][0]}{why} is outside the store's valid data "
                         f"({valid.describe()}){hint}")


@dataclass(frozen=True)
class _Steps:
    times: np.ndarray  # the store's, datetime64[s]
    picked: np.ndarray  # positions of the selected steps
    valid: ValidRange | None
    url: str


@dataclass(frozen=True)
class _Variable:
    name: str  # the store's
    short: str
    levels: np.ndarray | None  # hPa, the store's order


def _levels_hpa(raw: xr.Dataset, dims) -> np.ndarray:
    return raw[dims.level].values.astype(np.float64) / dims.per_hpa


def _level_positions(var: _Variable, variables: list[str] | None) -> list[int] | None:
    """The positions of the levels asked of ``var`` (channels ``z500``...); None: all (none
    asked by name, or none of them there: the channel check names what is missing)."""
    if var.levels is None or variables is None:
        return None
    wanted = {lev for v in variables for base, lev in [parse_channel(v)]
              if base == var.short and lev is not None}
    pos = [i for i, h in enumerate(var.levels) if h in wanted]
    return pos or None


def _indexer(pos: np.ndarray) -> slice | np.ndarray:
    """``pos`` as a slice when it is a regular stride (a basic selection for zarr)."""
    if pos.size == 1:
        return slice(int(pos[0]), int(pos[0]) + 1)
    stride = np.diff(pos)
    if (stride == stride[0]).all() and stride[0] > 0:
        return slice(int(pos[0]), int(pos[-1]) + 1, int(stride[0]))
    return pos


def read_blocks(lazy: xr.DataArray, steps: int) -> xr.DataArray:
    """``lazy`` (a store's variable, lazily indexed, time first) as a Dask array of read
    blocks of ``steps`` time steps, every other dimension whole: one task per block reads
    it (:func:`_read_block`). Built as a plain graph rather than xarray's ``chunk``, whose
    blockwise read Dask fuses into each selection made of it (a level, for the channel
    z500): each channel would fetch and decode the chunks holding all the levels again."""
    import dask.array as dsa
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    variable = lazy.variable
    token = tokenize(str(lazy.name), variable.shape, lazy.attrs, id(variable))
    source, name = f"store-source-{token}", f"store-read-{lazy.name}-{token}"
    n = variable.shape[0]
    edges = list(range(0, n, steps)) + [n]
    graph: dict = {source: variable}
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        graph[(name, i) + (0,) * (variable.ndim - 1)] = (_read_block, source, a, b)
    chunks = (tuple(np.diff(edges)),) + tuple((s,) for s in variable.shape[1:])
    array = dsa.Array(HighLevelGraph.from_collections(name, graph, dependencies=()), name,
                      chunks, dtype=variable.dtype)
    return lazy.copy(data=array)


def _read_block(variable: xr.Variable, a: int, b: int) -> np.ndarray:
    """Time steps ``a:b`` of a store's variable: zarr fetches their chunks concurrently."""
    return np.asarray(variable[a:b].values)


def touched_bytes(variable: xr.DataArray, level_dim: str | None,
                  levels: list[int] | None) -> int:
    """Decoded bytes of the store's chunks that one time step of ``variable`` (time first)
    reads when ``levels`` (positions; None: all) are asked: whole chunks, so all 37 levels
    of an ARCO-ERA5 chunk (154 MB a step at 0.25 degrees) for one level. What a read block
    is sized by: zarr decodes every chunk a block touches, concurrently."""
    chunks = variable.encoding.get("chunks") or variable.shape
    total = variable.dtype.itemsize
    for dim, size, chunk in zip(variable.dims[1:], variable.shape[1:], chunks[1:],
                                strict=True):
        touched = -(-size // chunk)
        if dim == level_dim and levels is not None:
            touched = len({p // chunk for p in levels})
        total *= min(size, touched * chunk)
    return int(total)


def _variable(raw: xr.Dataset, var: _Variable, dims, steps: _Steps,
              variables: list[str] | None, options: ReadOptions) -> tuple[Part, int]:
    """One variable as a normalised part, and the bytes it decodes: its selected steps
    (and for a sum, the steps before each), its levels asked, in read blocks of whole
    levels sized by the chunks they decode (:func:`touched_bytes`), summed where
    subsampling calls for it (:mod:`.timeselect`)."""
    period = accumulation_hours(var.name)
    step = options.time.step if options.time else None
    count = sum_count(period, native_step(steps.times), step)
    pos = windows(steps.times, steps.picked, count, steps.url)
    _check_valid(steps.times[pos], steps.valid, steps.url,
                 f" (summed into {steps.times[steps.picked][0]})" if count > 1 else "",
                 "; start a step later" if count > 1 else "")
    ren = {var.name: var.short, dims.time: "time", dims.lat: "lat", dims.lon: "lon"}
    ds = raw[[var.name]].rename(ren | ({dims.level: "level"} if var.levels is not None else {}))
    source = ds
    levels = _level_positions(var, variables)
    ds = ds.isel(time=_indexer(pos)) if levels is None else ds.isel(time=_indexer(pos),
                                                                     level=levels)
    step_bytes = touched_bytes(raw[var.name], dims.level, levels)
    nt = int(block_steps(step_bytes, options.chunk_bytes, options.align_steps))
    if options.align_steps:  # no block over an output chunk: in-process chunks share none
        nt = min(nt, options.align_steps)
    picked_times = steps.times[steps.picked]
    da = summed(read_blocks(ds[var.short], nt * count), count, picked_times)
    ev = np.where(picked_times > steps.valid.final, PRELIMINARY, FINAL) if (
        steps.valid is not None) else np.full(picked_times.size, FINAL)
    ds = da.to_dataset().assign_coords(expver=("time", ev.astype("U4")))
    ds = coordinates_in_order(ds, dims.per_hpa, steps.url)
    out = float32_variables(ds, source, {})
    if period is not None:
        out[var.short].attrs[ACCUMULATION_ATTR] = period * count
    return Part(out, 0), int(pos.size) * step_bytes
