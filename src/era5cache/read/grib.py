"""One GRIB file (edition 1 or 2) as MARS or the CDS delivers it, in the raw form the
normaliser takes (:mod:`.normalise`), decoded by eccodes through cfgrib.

A GRIB file is a sequence of messages, one field each, that may mix variables, levels, level
types, time steps and experiment versions. It is first scanned message by message (headers
only, eccodes), which catches what cfgrib would pass over silently or late:

* a truncated or damaged file (cfgrib logs "skipping corrupted Message" and goes on with the
  steps before it): :class:`InputError` naming the message and its byte offset;
* a parameter eccodes does not know (``shortName`` "unknown"), its paramId named;
* a grid that is not regular latitude-longitude (``gridType`` reduced_gg, sh, ...): the
  regridder takes regular lat-lon cells only;
* messages on different grids in one file;
* two messages for the same field (variable, level, valid time, member, expver): identical
  bytes are one field; different ones are refused (cfgrib would keep the first).

The file is then opened through cfgrib once per group of compatible messages (one expver,
level type and step type; non-pressure levels one by one, as ``t2m`` at 2 m and ``u10`` at
10 m), with ``valid_time`` as the time dimension (forecast fields such as accumulations
included) and ``expver`` read per step. Each group is split into one dataset per variable:
the parts combine across files like CDS products (:mod:`.combine`), final ERA5 over ERA5T
where a file holds both. Values are decoded lazily, per message, as float32; missing points
(bitmap) are NaN. cfgrib's index files go into ``index_dir`` (never beside the inputs,
which may be read-only), or nowhere.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError

GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb1", ".grb2")
PRESSURE_LEVEL_TYPES = ("isobaricInhPa",)
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
    return Message(offset=end - length, length=length, name=str(get("cfVarName", "unknown")),
                   param_id=int(get("paramId", 0)), grid_type=str(get("gridType", "?")),
                   grid=grid, level_type=str(get("typeOfLevel", "?")),
                   level=float(get("level", 0)), step_type=str(get("stepType", "instant")),
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


def _groups(messages: list[Message]) -> list[dict[str, object]]:
    """cfgrib filters, one per group of messages that form one hypercube."""
    keys = []
    for m in messages:
        k = {"typeOfLevel": m.level_type, "stepType": m.step_type}
        if m.expver is not None:
            k["expver"] = m.expver
        if m.level_type not in PRESSURE_LEVEL_TYPES:
            k["level"] = int(m.level) if float(m.level).is_integer() else m.level
        if k not in keys:
            keys.append(k)
    return keys


def open_grib(path: Path, index_dir: Path | None = None) -> list[xr.Dataset]:
    """The raw parts of one GRIB file, one dataset per variable and group (see the module
    docstring): dimensions ``valid_time`` (or a scalar ``valid_time`` for one step),
    ``latitude``, ``longitude``, ``isobaricInhPa`` for pressure levels and ``number`` for
    ensembles; an ``expver`` coordinate per step; the variables' ``units`` as eccodes
    gives them. Lazy: each read decodes the messages it needs."""
    messages = scan(path)
    if index_dir is not None:
        index_dir.mkdir(parents=True, exist_ok=True)
        indexpath = str(index_dir / f"{path.name}.{{short_hash}}.idx")
    else:
        indexpath = ""
    logging.getLogger("cfgrib").setLevel(logging.ERROR)
    parts = []
    for keys in _groups(messages):
        extra = {"expver": "valid_time"} if "expver" in keys else {}
        try:
            ds = xr.open_dataset(
                path, engine="cfgrib", chunks=None, cache=False, decode_timedelta=False,
                backend_kwargs={"indexpath": indexpath, "filter_by_keys": keys,
                                "time_dims": ("valid_time",), "extra_coords": extra})
        except Exception as exc:  # cfgrib's DatasetBuildError and eccodes' errors
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{path}: GRIB messages {keys} do not form one field per "
                             f"step and level ({reason})") from exc
        for v in ds.data_vars:
            part = ds[[v]]
            part.set_close(ds.close)
            parts.append(part)
    return parts
