"""ERA5 fields written as GRIB (edition 1 or 2) by eccodes, as MARS and the CDS encode them.

Used to make GRIB inputs for tests and benchmarks from any field on a regular lat-lon grid:
one message per (variable, level, time step), ECMWF local section (class ``ea``, stream
``oper``, type ``an``, ``expver`` per message), simple packing with ``bits`` bits per value
(ERA5 uses 16), NaN written as missing points through a bitmap. The reader
(:mod:`era5cache.read.grib`) decodes with eccodes too: tests check it against CDO's
decoding of real CDS GRIB, and CDO reads the same files for the reference regridding.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

# ECMWF parameter ids of the ERA5 variables the sample and the tests use
PARAM_IDS = {"t2m": 167, "sst": 34, "z": 129, "t": 130, "u": 131, "v": 132, "q": 133,
             "u10": 165, "v10": 166, "msl": 151, "sp": 134, "d2m": 168}
MISSING = 9999.0  # GRIB missingValue for bitmap points; outside every field's range
GRIB_READ_BYTES = 256 * 2**20  # grib_from_netcdf reads this much of the NetCDF at a time


class Field(NamedTuple):
    """One GRIB message: ERA5 short name, pressure level in hPa (None: a single-level
    field), valid time, values of shape (nlat, nlon) in physical units (NaN: missing),
    experiment version, ensemble member number (None: not an ensemble)."""

    name: str
    level: float | None
    time: np.datetime64
    values: np.ndarray
    expver: str = "0001"
    number: int | None = None


def write_grib(fields: Iterable[Field], lat: np.ndarray, lon: np.ndarray,
               path: str | os.PathLike, edition: int = 2, bits: int = 16,
               param_ids: dict[str, int] | None = None) -> Path:
    """Write one GRIB message per :class:`Field`, in the order given.

    ``lat`` must run north to south (as ERA5 is encoded) and ``lon`` eastward, both evenly
    spaced. ``param_ids`` overrides :data:`PARAM_IDS` (an id eccodes does not know makes a
    message of an unknown parameter). The file appears atomically."""
    import eccodes

    ids = PARAM_IDS | (param_ids or {})
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        for name, level, t, values, expver, number in fields:
            kind = "pl" if level is not None else "sfc"
            h = eccodes.codes_grib_new_from_samples(f"regular_ll_{kind}_grib{edition}")
            try:
                _set_grid(h, lat, lon)
                eccodes.codes_set(h, "centre", "ecmf")
                if edition == 2:
                    eccodes.codes_set(h, "setLocalDefinition", 1)
                eccodes.codes_set(h, "localDefinitionNumber", 1)
                eccodes.codes_set(h, "class", "ea")
                eccodes.codes_set(h, "stream", "oper" if number is None else "enda")
                eccodes.codes_set(h, "type", "an")
                eccodes.codes_set(h, "expver", expver)
                if number is not None:
                    if edition == 2:
                        eccodes.codes_set(h, "productDefinitionTemplateNumber", 1)
                    eccodes.codes_set(h, "perturbationNumber", int(number))
                    eccodes.codes_set(h, "numberOfForecastsInEnsemble", 10)
                eccodes.codes_set(h, "paramId", ids[name])
                if level is not None:
                    eccodes.codes_set(h, "typeOfLevel", "isobaricInhPa")
                    eccodes.codes_set(h, "level", int(level))
                day = np.datetime64(t, "D")
                minutes = int((np.datetime64(t, "m") - day) / np.timedelta64(1, "m"))
                eccodes.codes_set(h, "dataDate", int(str(day).replace("-", "")))
                eccodes.codes_set(h, "dataTime", minutes // 60 * 100 + minutes % 60)
                eccodes.codes_set(h, "stepRange", "0")
                v = np.asarray(values, np.float64)
                missing = np.isnan(v)
                if missing.any():
                    eccodes.codes_set(h, "bitmapPresent", 1)
                    eccodes.codes_set(h, "missingValue", MISSING)
                    v = np.where(missing, MISSING, v)
                eccodes.codes_set(h, "bitsPerValue", bits)
                eccodes.codes_set_values(h, v.ravel())
                eccodes.codes_write(h, out)
            finally:
                eccodes.codes_release(h)
    os.replace(tmp, path)
    return path


def _set_grid(h, lat: np.ndarray, lon: np.ndarray) -> None:
    import eccodes

    dlat = abs(lat[1] - lat[0]) if lat.size > 1 else 1.0
    dlon = (lon[1] - lon[0]) if lon.size > 1 else 1.0
    for key, value in (("Ni", lon.size), ("Nj", lat.size), ("iScansNegatively", 0),
                       ("jScansPositively", 0),
                       ("latitudeOfFirstGridPointInDegrees", float(lat[0])),
                       ("latitudeOfLastGridPointInDegrees", float(lat[-1])),
                       ("longitudeOfFirstGridPointInDegrees", float(lon[0])),
                       ("longitudeOfLastGridPointInDegrees", float(lon[-1])),
                       ("iDirectionIncrementInDegrees", float(dlon)),
                       ("jDirectionIncrementInDegrees", float(dlat))):
        eccodes.codes_set(h, key, value)


def grib_from_netcdf(src: str | os.PathLike, path: str | os.PathLike, edition: int = 2,
                     bits: int = 16, variables: tuple[str, ...] | None = None) -> Path:
    """Write the variables of an ERA5 NetCDF file (either CDS layout, as the reader opens
    it) as GRIB: the same fields, encoded as the CDS would have delivered them in GRIB."""
    from ..read.normalise import open_file

    with open_file(src) as ds:
        names = [v for v in ds.data_vars if variables is None or v in variables]
        lat, lon = ds["lat"].values[::-1], ds["lon"].values
        lon = np.where(lon > 180.0, lon - 360.0, lon) if lon.min() < 0 else lon

        times, expver = ds["time"].values, ds["expver"].values

        def fields():
            # a block of steps read at once: a read per step decompresses a time-deep chunk
            # per step (43 ms a step of a 1-degree month file)
            step = sum(ds[v].nbytes for v in names) // max(times.size, 1)
            block = max(1, GRIB_READ_BYTES // max(step, 1))
            for a in range(0, times.size, block):
                values = {v: ds[v].isel(time=slice(a, a + block)).values for v in names}
                for i in range(a, min(a + block, times.size)):
                    for v in names:
                        levels = ds["level"].values if "level" in ds[v].dims else [None]
                        for k, lev in enumerate(levels):
                            f = values[v][i - a] if lev is None else values[v][i - a, k]
                            yield Field(v, lev, times[i], f[::-1], str(expver[i]))

        return write_grib(fields(), lat, lon, path, edition=edition, bits=bits)
