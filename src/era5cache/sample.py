"""A synthetic but physically plausible ERA5 sample, written exactly as the CDS delivers it.

One file per month and per product (single levels / pressure levels), in either layout:

* ``new`` (CDS 2024+): netCDF4/HDF5, zlib level 1 + shuffle, float32 with NaN fill; time
  dimension ``valid_time`` (int64 seconds since 1970); ``pressure_level``; coordinates
  ``number`` (scalar) and ``expver`` (a string per step, '0001' final or '0005' ERA5T).
* ``legacy`` (before late 2024): netCDF3 64-bit offset, int16 with a per-file
  ``scale_factor``/``add_offset``, ``_FillValue`` = ``missing_value`` = -32767; ``time`` in int32
  hours since 1900-01-01; ``level``; with preliminary steps, an ``expver`` *dimension* (1, 5)
  where each step is valid in exactly one slot.

Latitude runs 90 .. -90 (descending), longitude 0 .. 360-res. Fields: ``sst`` (K, NaN over a
land mask shaped like the continents), ``t2m`` (K), and ``z`` (m**2 s**-2) / ``t`` (K) on
pressure levels. They have a latitude gradient, seasonal and diurnal cycles, and eastward
travelling mid-latitude waves plus slow ocean anomalies, so a forecast model has structure to
learn. Output is deterministic for a given seed.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SINGLE_LEVEL = ("sst", "t2m")
PRESSURE_LEVEL = ("z", "t")
ATTRS = {
    "sst": {"units": "K", "long_name": "Sea surface temperature", "GRIB_paramId": 34},
    "t2m": {"units": "K", "long_name": "2 metre temperature", "GRIB_paramId": 167},
    "z": {"units": "m**2 s**-2", "long_name": "Geopotential", "GRIB_paramId": 129,
          "standard_name": "geopotential"},
    "t": {"units": "K", "long_name": "Temperature", "GRIB_paramId": 130,
          "standard_name": "air_temperature"},
}
G = 9.80665

# Coarse continent outlines (lon -180..180, lat), enough for a realistic land-sea pattern.
_CONTINENTS = [
    [(-168, 66), (-140, 70), (-95, 72), (-80, 73), (-62, 60), (-55, 50), (-67, 45), (-76, 35),
     (-81, 25), (-97, 26), (-97, 18), (-87, 14), (-78, 8), (-84, 9), (-105, 20), (-117, 32),
     (-125, 42), (-125, 50), (-140, 60), (-165, 60)],
    [(-78, 8), (-60, 10), (-50, 0), (-35, -6), (-40, -22), (-53, -34), (-66, -42), (-68, -55),
     (-74, -50), (-72, -30), (-71, -18), (-81, -6), (-80, 2)],
    [(-17, 21), (-10, 35), (10, 37), (32, 31), (43, 12), (51, 12), (40, -3), (40, -15),
     (33, -26), (20, -35), (12, -18), (9, 0), (-8, 4), (-17, 14)],
    [(-10, 36), (-9, 43), (-2, 48), (5, 53), (10, 58), (5, 62), (25, 71), (60, 70), (100, 77),
     (140, 72), (180, 68), (180, 65), (160, 60), (142, 52), (141, 45), (130, 42), (122, 40),
     (121, 30), (110, 20), (105, 10), (100, 13), (98, 8), (92, 22), (80, 15), (77, 8),
     (72, 20), (57, 25), (50, 30), (57, 17), (44, 12), (35, 28), (35, 36), (27, 37), (23, 36),
     (19, 42), (12, 44), (15, 38), (8, 44), (3, 43), (-5, 36)],
    [(114, -22), (122, -17), (130, -12), (137, -12), (142, -10), (146, -19), (153, -26),
     (150, -37), (141, -38), (131, -31), (115, -34)],
    [(-55, 60), (-42, 60), (-20, 70), (-20, 82), (-60, 82), (-70, 77)],
]


@dataclass(frozen=True)
class SampleSpec:
    """What to write. Times are numpy datetime64 strings; ``step`` like '6h' or '1h'."""

    start: str = "2019-01-01T00"
    end: str = "2020-12-31T18"
    step: str = "6h"
    resolution: float = 0.25
    layout: str = "new"
    variables: tuple[str, ...] = ("sst", "t2m", "z")
    levels: tuple[int, ...] = (500, 850)
    preliminary_steps: int = 0  # the last N steps are ERA5T ('0005')
    seed: int = 0
    compress: bool = True  # new layout: zlib level 1 + shuffle as the CDS; False for benches

    def times(self) -> np.ndarray:
        step = parse_step(self.step)
        t0 = np.datetime64(self.start, "s")
        t1 = np.datetime64(self.end, "s")
        if t1 < t0:
            raise ValueError(f"sample end {self.end} is before start {self.start}")
        return np.arange(t0, t1 + step, step)


def parse_step(text: str) -> np.timedelta64:
    """'6h' -> timedelta64(6, 'h'); accepts h, m (minutes), d."""
    text = text.strip().lower()
    units = {"h": "h", "d": "D", "min": "m", "m": "m"}
    for suffix, unit in units.items():
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return np.timedelta64(int(text[: -len(suffix)]), unit).astype("timedelta64[s]")
    raise ValueError(f"cannot parse time step {text!r}; use e.g. '6h', '1d'")


def land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Boolean (nlat, nlon) land mask from the continent outlines; Antarctica south of 70S."""
    lon180 = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    la, lo = np.meshgrid(np.asarray(lat, dtype=float), lon180, indexing="ij")
    inside = la < -70.0
    for poly in _CONTINENTS:
        p = np.asarray(poly, dtype=float)
        x0, y0 = p[:, 0], p[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        hit = np.zeros(la.shape, dtype=bool)
        for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
            if b == d:
                continue
            crosses = (b > la) != (d > la)
            xint = a + (la - b) * (c - a) / (d - b)
            hit ^= crosses & (lo < xint)
        inside |= hit
    return inside


class _Fields:
    """Evaluates the synthetic fields on one grid; wave parameters fixed by the seed."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray, seed: int):
        self.phi = np.deg2rad(lat)[:, None]  # (nlat, 1)
        self.lam = np.deg2rad(lon)[None, :]  # (1, nlon)
        self.land = land_mask(lat, lon).astype(np.float64)
        rng = np.random.default_rng(seed)
        # Eastward travelling waves: zonal wavenumber k, period (days), phase, latitude centre.
        self.waves = [
            (k, rng.uniform(3.0, 9.0), rng.uniform(0, 2 * np.pi), rng.uniform(35, 55))
            for k in (3, 4, 5, 6, 7)
        ]
        self.ocean_modes = [
            (k, rng.uniform(40.0, 400.0), rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3)
        ]
        self.seed = seed

    def _waves(self, hours: np.ndarray) -> np.ndarray:
        """Sum of travelling waves, amplitude ~1, shape (nt, nlat, nlon)."""
        t = hours[:, None, None] / 24.0
        lat_deg = np.rad2deg(self.phi)[None]
        out = 0.0
        for k, period, phase, centre in self.waves:
            env = np.exp(-(((np.abs(lat_deg) - centre) / 15.0) ** 2))
            mod = 1.0 + 0.4 * np.sin(2 * np.pi * t / (5 * period) + phase)
            out = out + env * mod * np.cos(k * self.lam[None] - 2 * np.pi * t / period + phase)
        return out / np.sqrt(len(self.waves))

    def evaluate(self, name: str, level: int | None, times: np.ndarray) -> np.ndarray:
        """Field ``name`` at ``level`` (hPa) for datetime64 ``times``: float32 (nt, nlat, nlon)."""
        hours = (times - np.datetime64("1970-01-01", "s")).astype(np.float64) / 3600.0
        doy = (hours / 24.0) % 365.2425
        hod = hours % 24.0
        s2 = np.sin(self.phi) ** 2
        hemi = np.sign(self.phi)
        season = np.cos(2 * np.pi * (doy - 200.0) / 365.2425)[:, None, None]  # +1 late July
        rng = np.random.default_rng([self.seed, int(hours[0]) & 0xFFFFFFFF, len(name), level or 0])
        noise = rng.standard_normal((times.size,) + self.land.shape)
        if name == "t2m":
            base = 300.0 - 50.0 * s2
            seas = hemi * (3.0 + 14.0 * np.abs(np.sin(self.phi))) * (1 + self.land) * season
            local = (hod[:, None, None] + np.rad2deg(self.lam)[None] / 15.0 - 15.0) / 24.0
            diurnal = (1.0 + 5.0 * self.land) * np.cos(2 * np.pi * local)
            out = base + seas + diurnal + 5.0 * self._waves(hours) + 0.3 * noise
        elif name == "sst":
            t = hours[:, None, None] / 24.0
            anom = sum(
                0.8 * np.cos(k * self.lam[None] - 2 * np.pi * t / p + ph) * np.cos(self.phi)
                for k, p, ph in self.ocean_modes
            )
            base = 302.0 - 32.0 * s2 + 2.5 * hemi * np.abs(np.sin(self.phi)) * season
            out = np.maximum(base + anom + 0.3 * self._waves(hours) + 0.05 * noise, 271.35)
            out = np.where(self.land[None] > 0, np.nan, out)
        elif name == "z":
            p = float(level)
            height = 7400.0 * np.log(1013.0 / p)  # m, scale-height atmosphere
            thick = height * (1.0 - 0.06 * s2 + 0.01 * hemi * season)
            amp = 20.0 + 0.2 * height / 50.0
            out = G * (thick + amp * self._waves(hours) + 2.0 * noise)
        elif name == "t":
            p = float(level)
            base = 288.0 - 6.5 * 7.4 * np.log(1013.0 / p) - 30.0 * s2
            out = base + 3.0 * hemi * season + 3.0 * self._waves(hours) + 0.3 * noise
        else:
            raise ValueError(f"sample has no variable {name!r}; choose from sst, t2m, z, t")
        return np.broadcast_to(out, noise.shape).astype(np.float32)


def _month_groups(times: np.ndarray) -> list[np.ndarray]:
    months = times.astype("datetime64[M]")
    return [times[months == m] for m in np.unique(months)]


def write_sample(out_dir: str | os.PathLike, spec: SampleSpec) -> list[Path]:
    """Write the sample; returns the file paths. Each file appears atomically (tmp + rename)."""
    import netCDF4  # noqa: F401  (fail early with a clear ImportError)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if spec.layout not in ("new", "legacy"):
        raise ValueError(f"layout must be 'new' or 'legacy', not {spec.layout!r}")
    nlat = int(round(180.0 / spec.resolution)) + 1
    nlon = int(round(360.0 / spec.resolution))
    if abs(nlon * spec.resolution - 360.0) > 1e-9:
        raise ValueError(f"resolution {spec.resolution} does not divide 360 degrees")
    lat = np.linspace(90.0, -90.0, nlat)
    lon = np.arange(nlon) * spec.resolution
    fields = _Fields(lat, lon, spec.seed)
    times = spec.times()
    prelim = np.zeros(times.size, dtype=bool)
    if spec.preliminary_steps:
        prelim[-spec.preliminary_steps :] = True
    products = {
        "single-levels": [v for v in spec.variables if v in SINGLE_LEVEL],
        "pressure-levels": [v for v in spec.variables if v in PRESSURE_LEVEL],
    }
    unknown = set(spec.variables) - set(SINGLE_LEVEL) - set(PRESSURE_LEVEL)
    if unknown:
        raise ValueError(f"sample has no variable(s) {sorted(unknown)}; choose from sst, t2m, z, t")
    written = []
    for chunk in _month_groups(times):
        sel = np.isin(times, chunk)
        month = str(chunk[0].astype("datetime64[M]"))
        for product, names in products.items():
            if not names:
                continue
            levels = spec.levels if product == "pressure-levels" else None

            def produce(name, a, b, levels=levels, chunk=chunk):
                """Field ``name`` for steps a..b of this month (bounded memory)."""
                if levels:
                    return np.stack([fields.evaluate(name, lv, chunk[a:b]) for lv in levels],
                                    axis=1)
                return fields.evaluate(name, None, chunk[a:b])

            data = {n: functools.partial(produce, n) for n in names}
            path = out / f"era5_{product}_{month}.nc"
            tmp = path.with_suffix(".nc.tmp")
            if spec.layout == "new":
                _write_new(tmp, chunk, lat, lon, levels, data, prelim[sel], spec.compress)
            else:
                _write_legacy(tmp, chunk, lat, lon, levels, data, prelim[sel])
            os.replace(tmp, path)
            written.append(path)
    return written


def _write_new(path, times, lat, lon, levels, data, prelim, compress=True) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts({"GRIB_centre": "ecmf", "GRIB_centreDescription":
                      "European Centre for Medium-Range Weather Forecasts",
                      "GRIB_subCentre": 0, "Conventions": "CF-1.7",
                      "institution": "European Centre for Medium-Range Weather Forecasts",
                      "history": "era5cache synthetic sample in CDS 2024+ layout"})
        ds.createDimension("valid_time", times.size)
        if levels:
            ds.createDimension("pressure_level", len(levels))
        ds.createDimension("latitude", lat.size)
        ds.createDimension("longitude", lon.size)
        v = ds.createVariable("number", "i8")
        v.setncatts({"long_name": "ensemble member numerical id", "units": "1",
                     "standard_name": "realization"})
        v.assignValue(0)
        v = ds.createVariable("valid_time", "i8", ("valid_time",))
        v.setncatts({"long_name": "time", "standard_name": "time",
                     "units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian"})
        v[:] = times.astype("datetime64[s]").astype(np.int64)
        if levels:
            v = ds.createVariable("pressure_level", "f8", ("pressure_level",))
            v.setncatts({"long_name": "pressure", "units": "hPa", "positive": "down",
                         "standard_name": "air_pressure", "stored_direction": "decreasing"})
            v[:] = np.asarray(levels, dtype=np.float64)
        v = ds.createVariable("latitude", "f8", ("latitude",))
        v.setncatts({"long_name": "latitude", "units": "degrees_north",
                     "standard_name": "latitude", "stored_direction": "decreasing"})
        v[:] = lat
        v = ds.createVariable("longitude", "f8", ("longitude",))
        v.setncatts({"long_name": "longitude", "units": "degrees_east",
                     "standard_name": "longitude"})
        v[:] = lon
        # No fill value on the string variable: HDF5 can crash converting a variable-length
        # fill value when a file is re-opened in the same process.
        v = ds.createVariable("expver", str, ("valid_time",), fill_value=False)
        v.setncatts({"long_name": "experiment version"})
        v[:] = np.array(["0005" if p else "0001" for p in prelim], dtype=object)
        dims = ("valid_time",) + (("pressure_level",) if levels else ()) + ("latitude", "longitude")
        chunks = (1,) + ((1,) if levels else ()) + (lat.size, lon.size)
        for name, arr in data.items():
            v = ds.createVariable(name, "f4", dims, zlib=compress, complevel=1, shuffle=compress,
                                  chunksizes=chunks, fill_value=np.float32(np.nan))
            v.setncatts({k: val for k, val in ATTRS[name].items()} |
                        {"GRIB_missingValue": 3.4028234663852886e38,
                         "coordinates": "number valid_time latitude longitude expver"})
            for a, b in _blocks(times.size, lat.size * lon.size):
                v[a:b] = arr(a, b)


def _write_legacy(path, times, lat, lon, levels, data, prelim) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.setncatts({"Conventions": "CF-1.6",
                      "history": "era5cache synthetic sample in legacy CDS layout"})
        ds.createDimension("longitude", lon.size)
        ds.createDimension("latitude", lat.size)
        if levels:
            ds.createDimension("level", len(levels))
        with_expver = bool(prelim.any())
        if with_expver:
            ds.createDimension("expver", 2)
        ds.createDimension("time", times.size)
        v = ds.createVariable("longitude", "f4", ("longitude",))
        v.setncatts({"units": "degrees_east", "long_name": "longitude"})
        v[:] = lon
        v = ds.createVariable("latitude", "f4", ("latitude",))
        v.setncatts({"units": "degrees_north", "long_name": "latitude"})
        v[:] = lat
        if levels:
            v = ds.createVariable("level", "i4", ("level",))
            v.setncatts({"units": "millibars", "long_name": "pressure_level"})
            v[:] = np.asarray(levels, dtype=np.int32)
        if with_expver:
            v = ds.createVariable("expver", "i4", ("expver",))
            v.setncatts({"long_name": "expver"})
            v[:] = np.array([1, 5], dtype=np.int32)
        v = ds.createVariable("time", "i4", ("time",))
        v.setncatts({"units": "hours since 1900-01-01 00:00:00.0", "long_name": "time",
                     "calendar": "gregorian"})
        v[:] = ((times - np.datetime64("1900-01-01", "s")).astype(np.int64) // 3600).astype(
            np.int32)
        dims = ("time",) + (("expver",) if with_expver else ()) + (
            ("level",) if levels else ()) + ("latitude", "longitude")
        for name, arr in data.items():
            lo, hi = np.inf, -np.inf  # first pass: the range, for this file's packing
            for a, b in _blocks(times.size, lat.size * lon.size):
                block = arr(a, b)
                lo, hi = min(lo, float(np.nanmin(block))), max(hi, float(np.nanmax(block)))
            scale = (hi - lo) / 65533 if hi > lo else 1.0
            offset = lo + 32766 * scale  # min -> -32766, max -> 32767; -32767 is fill
            v = ds.createVariable(name, "i2", dims, fill_value=np.int16(-32767))
            v.setncatts({"scale_factor": scale, "add_offset": offset,
                         "missing_value": np.int16(-32767)} | {
                k: val for k, val in ATTRS[name].items() if k != "GRIB_paramId"})
            v.set_auto_maskandscale(False)
            for a, b in _blocks(times.size, lat.size * lon.size):
                block = arr(a, b)
                packed = np.where(np.isnan(block), -32767,
                                  np.round((block - offset) / scale)).astype(np.int16)
                if with_expver:
                    p = prelim[a:b]
                    full = np.full((b - a, 2) + block.shape[1:], -32767, dtype=np.int16)
                    full[~p, 0] = packed[~p]
                    full[p, 1] = packed[p]
                    packed = full
                v[a:b] = packed


def _blocks(n: int, points: int, budget: int = 8_000_000) -> list[tuple[int, int]]:
    """Time blocks of at most ``budget`` grid values (bounds the writer's memory)."""
    step = max(1, budget // max(points, 1))
    return [(a, min(n, a + step)) for a in range(0, n, step)]
