"""One GRIB file (edition 1 or 2) as MARS or the CDS delivers it, in the raw form the
normaliser takes (:mod:`.normalise`), decoded by eccodes.

A GRIB file is a sequence of messages, one field each, that may mix variables, levels, level
types, time steps and experiment versions. It is first scanned message by message (headers
only, eccodes), which catches what a GRIB reader such as cfgrib passes over silently or
late:

* a truncated or damaged file (cfgrib logs "skipping corrupted Message" and goes on with the
  steps before it): :class:`InputError` naming the message and its byte offset;
* a parameter eccodes does not know (``shortName`` "unknown"), its paramId named;
* a grid that is not regular latitude-longitude (``gridType`` reduced_gg, sh, ...): the
  regridder takes regular lat-lon cells only;
* messages on different grids in one file;
* two messages for the same field (variable, level, valid time, member, expver): identical
  bytes are one field; different ones are refused (cfgrib would keep the first).

The scan's headers then give the hypercube of each variable per group of compatible
messages (one expver, level type and step type; non-pressure levels one by one, as ``t2m``
at 2 m and ``u10`` at 10 m), with ``valid_time`` as the time dimension (forecast fields such
as accumulations included) and ``expver`` per step; a missing (step, member, level) field is
an :class:`InputError`. Each variable is one dataset: the parts combine across files like
CDS products (:mod:`.combine`), final ERA5 over ERA5T where a file holds both. Values are
decoded lazily by eccodes, message by message (:mod:`.gribfields`), as float32; missing
points (bitmap) are NaN. Nothing is written (cfgrib writes an index file beside the input,
which may be read-only; headers are not read twice either).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from .filecache import Files
from .gribfields import GribFieldArray, field_variable

GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb1", ".grb2")
PRESSURE_LEVEL_TYPES = ("isobaricInhPa",)
PASCAL_LEVEL_TYPES = ("isobaricInPa",)  # GRIB 2's pressure levels below 1 hPa
REGULAR = "regular_ll"


def is_grib(path: str | os.PathLike) -> bool:
    """True for a GRIB file: it starts with ``GRIB``, or is named like one (so that an empty
    or damaged ``.grib`` file is reported as GRIB, not as unreadable NetCDF)."""
    path = Path(path)
    if path.suffix.lower() in GRIB_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GRIB"
    except OSError:
        return False


@dataclass(frozen=True)
class Message:
    """What the scan learns of one GRIB message (headers only)."""

    offset: int
    length: int
    name: str  # cfgrib's variable name (cfVarName: t2m, z, ...)
    param_id: int
    grid_type: str
    grid: tuple  # (Ni, Nj, first lat, first lon, last lat, last lon)
    level_type: str
    level: float
    step_type: str
    valid: np.datetime64
    number: int
    expver: str | None  # None: no ECMWF local section

    def where(self) -> str:
        level = f" at {self.level:g} {self.level_type}" if self.level_type != "surface" else ""
        return f"{self.name!r}{level}, {self.valid}"


def scan(path: Path) -> list[Message]:
    """Every message of ``path``, headers only; :class:`InputError` for the cases in the
    module docstring (truncation, unknown parameter, grid type, mixed grids, conflicting
    duplicates)."""
    import eccodes

    size = path.stat().st_size
    messages: list[Message] = []
    with open(path, "rb") as f:
        while True:
            offset = f.tell()
            try:
                h = eccodes.codes_grib_new_from_file(f, headers_only=True)
            except eccodes.GribInternalError as exc:
                raise InputError(
                    f"{path}: truncated or damaged GRIB file: message {len(messages) + 1} "
                    f"(from byte {offset} of {size}) cannot be read ({exc}); download it "
                    "again") from exc
            if h is None:
                break
            try:
                messages.append(_message(h, f.tell()))
            finally:
                eccodes.codes_release(h)
    if not messages:
        raise InputError(f"{path}: holds no GRIB message ({size} bytes)")
    end = messages[-1].offset + messages[-1].length
    if end < size and any(_tail(path, end)):
        raise InputError(f"{path}: {size - end} bytes after the last GRIB message are not a "
                         "GRIB message (damaged file); download it again")
    _check(path, messages)
    return messages


def _message(h, end: int) -> Message:
    import eccodes

    def get(key, default=None):
        try:
            return eccodes.codes_get(h, key)
        except eccodes.GribInternalError:
            return default

    length = int(get("totalLength"))
    date, hhmm = int(get("validityDate")), int(get("validityTime"))
    valid = np.datetime64(f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}T"
                          f"{hhmm // 100:02d}:{hhmm % 100:02d}", "s")
    grid = tuple(get(k) for k in ("Ni", "Nj", "latitudeOfFirstGridPointInDegrees",
                                  "longitudeOfFirstGridPointInDegrees",
                                  "latitudeOfLastGridPointInDegrees",
                                  "longitudeOfLastGridPointInDegrees"))
    level_type, level = str(get("typeOfLevel", "?")), float(get("level", 0))
    if level_type in PASCAL_LEVEL_TYPES:  # pressures below 1 hPa, in Pa: one axis in hPa
        level_type, level = PRESSURE_LEVEL_TYPES[0], level / 100.0
    return Message(offset=end - length, length=length, name=str(get("cfVarName", "unknown")),
                   param_id=int(get("paramId", 0)), grid_type=str(get("gridType", "?")),
                   grid=grid, level_type=level_type,
                   level=level, step_type=str(get("stepType", "instant")),
                   valid=valid, number=int(get("number", 0) or 0),
                   expver=get("expver"))


def _tail(path: Path, start: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read().strip(b"\0")


def _check(path: Path, messages: list[Message]) -> None:
    first = messages[0]
    seen: dict[tuple, Message] = {}
    for i, m in enumerate(messages, start=1):
        if m.name == "unknown" or m.param_id == 0:
            raise InputError(
                f"{path}: message {i} holds a parameter eccodes does not know (paramId "
                f"{m.param_id}); remove it (grib_copy -w paramId!={m.param_id}) or give "
                "eccodes its definition")
        if m.grid_type != REGULAR:
            raise InputError(
                f"{path}: message {i} ({m.where()}) is on a {m.grid_type} grid (GRIB "
                "gridType); era5cache regrids regular latitude-longitude grids only: request "
                "a lat-lon grid (CDS/MARS grid=0.25/0.25) or convert the file first")
        if m.grid != first.grid:
            raise InputError(
                f"{path}: message {i} ({m.where()}) is on another grid than message 1 "
                f"({_describe(m.grid)} against {_describe(first.grid)}); give each grid in "
                "a separate run")
        key = (m.name, m.level_type, m.level, m.step_type, m.valid, m.number, m.expver)
        if key in seen:
            other = seen[key]
            if _raw(path, other) != _raw(path, m):
                raise InputError(
                    f"{path}: two different messages for {m.where()} (expver {m.expver}, "
                    f"at bytes {other.offset} and {m.offset}); remove one of them")
        seen[key] = m


def _describe(grid: tuple) -> str:
    ni, nj, lat0, lon0, lat1, lon1 = grid
    return f"{nj}x{ni} lat {lat0:g}..{lat1:g} lon {lon0:g}..{lon1:g}"


def _raw(path: Path, m: Message) -> bytes:
    with open(path, "rb") as f:
        f.seek(m.offset)
        return f.read(m.length)


def _groups(messages: list[Message]) -> dict[tuple, list[Message]]:
    """The messages of each variable and group of compatible messages (module docstring),
    in order of first appearance: one expver, level type and step type, non-pressure levels
    one by one; within a group, variables by name."""
    groups: dict[tuple, dict[str, list[Message]]] = {}
    for m in messages:
        level = None if m.level_type in PRESSURE_LEVEL_TYPES else m.level
        key = (m.level_type, m.step_type, m.expver, level)
        groups.setdefault(key, {}).setdefault(m.name, []).append(m)
    return {key + (name,): by_name[name] for key, by_name in groups.items()
            for name in sorted(by_name)}


def open_grib(path: Path, files: Files | None = None) -> list[xr.Dataset]:
    """The raw parts of one GRIB file, one dataset per variable and group (see the module
    docstring): dimensions ``valid_time``, ``number`` for ensembles, ``isobaricInhPa`` for
    pressure levels, ``latitude``, ``longitude`` (in the messages' scanning order); an
    ``expver`` coordinate per step where the messages carry one; the variables' ``units``
    as eccodes gives them. Lazy: each read decodes the messages it needs
    (:mod:`.gribfields`), the file kept open between reads by ``files``
    (:mod:`.filecache`) where given. Nothing is written: no index file beside the input or
    elsewhere."""
    messages = scan(path)
    first = messages[0]
    head = _header(path, first)
    fields = _fields(first.grid, head, files)
    groups = _groups(messages)
    _check_level_types(path, groups)
    parts = []
    for (level_type, _, expver, _, name), msgs in groups.items():
        attrs = head if msgs[0] is first else _header(path, msgs[0])
        parts.append(_part(path, msgs, (level_type, expver, name), fields, attrs))
    return parts


@dataclass(frozen=True)
class _Fields:
    """What every message of a file shares: its grid ``(nj, ni)``, the coordinates of the
    grid's points, whether values run column by column, the file cache."""

    grid: tuple[int, int]
    coords: dict
    columns_first: bool
    files: Files | None


def _fields(grid: tuple, head: dict, files: Files | None) -> _Fields:
    """The :class:`_Fields` of a file whose first message has the scanned ``grid`` and
    the header keys ``head`` (:func:`_header`)."""
    ni, nj, lat0, lon0, lat1, lon1 = grid
    if head["iScansNegatively"] == 0 and lon1 < lon0:
        lon1 += 360.0  # the grid crosses the meridian where the file's longitudes wrap
    elif head["iScansNegatively"] == 1 and lon1 > lon0:
        lon1 -= 360.0
    coords = {"latitude": ("latitude", np.linspace(lat0, lat1, nj),
                           {"units": "degrees_north", "long_name": "latitude"}),
              "longitude": ("longitude", np.linspace(lon0, lon1, ni),
                            {"units": "degrees_east", "long_name": "longitude"})}
    return _Fields((nj, ni), coords, bool(head["jPointsAreConsecutive"]), files)


def _check_level_types(path: Path, groups: dict[tuple, list[Message]]) -> None:
    """:class:`InputError` for a variable on two kinds of level (pressure levels and model
    levels, say), which cannot be one variable's channels."""
    kinds: dict[str, set[str]] = {}
    for level_type, _, _, _, name in groups:
        kinds.setdefault(name, set()).add(level_type)
    for name, types in kinds.items():
        if len(types) > 1:
            raise InputError(f"{path}: variable {name!r} comes on {len(types)} kinds of level "
                             f"({', '.join(sorted(types))}); era5cache reads one kind a "
                             "variable: split the file (grib_copy -w typeOfLevel=...)")


def _part(path: Path, msgs: list[Message], key: tuple[str, str | None, str],
          fields: _Fields, head: dict) -> xr.Dataset:
    """One variable of one group, ``key`` = (level type, expver, name), as a dataset over
    a :class:`.gribfields.GribFieldArray`; :class:`InputError` where its messages leave a
    cell of the hypercube empty."""
    level_type, expver, name = key
    times = np.unique(np.array([m.valid for m in msgs], dtype="datetime64[s]"))
    axes: list[tuple[str, np.ndarray]] = [("valid_time", times)]
    numbers = np.unique([m.number for m in msgs])
    if numbers.size > 1:
        axes.append(("number", numbers))
    pressure = level_type in PRESSURE_LEVEL_TYPES
    if pressure:
        axes.append((level_type, np.unique([m.level for m in msgs])))
    shape = tuple(values.size for _, values in axes)
    offsets = np.full(shape, -1, np.int64)
    lengths = np.zeros(shape, np.int64)
    for m in msgs:
        at = [np.searchsorted(times, m.valid)]
        if numbers.size > 1:
            at.append(np.searchsorted(numbers, m.number))
        if pressure:
            at.append(np.searchsorted(axes[-1][1], m.level))
        if offsets[tuple(at)] < 0:  # identical duplicates (scan checked): the first
            offsets[tuple(at)], lengths[tuple(at)] = m.offset, m.length
    if (offsets < 0).any():
        missing = int((offsets < 0).sum())
        raise InputError(
            f"{path}: GRIB messages of {name!r} ({level_type}) do not form one field per "
            f"step and level: {missing} of {offsets.size} (step, member, level) fields are "
            "missing")
    dims = tuple(d for d, _ in axes) + ("latitude", "longitude")
    array = GribFieldArray(path, offsets, lengths, fields.grid, fields.columns_first,
                           fields.files)
    attrs = {"units": head["units"], "long_name": head["name"]}
    ds = xr.Dataset({name: field_variable(array, dims, attrs)}, coords=fields.coords)
    ds = ds.assign_coords(valid_time=("valid_time", times.astype("datetime64[ns]")))
    if numbers.size > 1:
        ds = ds.assign_coords(number=("number", numbers))
    if pressure:
        ds = ds.assign_coords({level_type: (level_type, axes[-1][1].astype(np.float64),
                                            {"units": "hPa", "long_name": "pressure"})})
    if expver is not None:
        ds = ds.assign_coords(expver=("valid_time", np.full(times.size, str(expver))))
    return ds


def _header(path: Path, m: Message) -> dict:
    """Keys of message ``m`` that the scan does not keep: units, name, scanning mode."""
    import eccodes

    h = eccodes.codes_new_from_message(_raw(path, m))
    try:
        return {k: eccodes.codes_get(h, k) for k in ("units", "name", "iScansNegatively",
                                                     "jPointsAreConsecutive")}
    finally:
        eccodes.codes_release(h)
