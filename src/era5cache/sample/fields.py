"""The sample's synthetic fields: plausible ERA5-like values on any lat-lon grid.

``sst`` (K, NaN over a land mask shaped like the continents), ``t2m`` (K), ``tp`` (m of
water in the hour ending at the step, >= 0), and ``z`` (m**2 s**-2) / ``t`` (K) / ``u``
(m s**-1) on pressure levels from 1 to 1000 hPa, with a latitude gradient, seasonal and diurnal
cycles, and eastward travelling mid-latitude waves plus slow ocean anomalies, so a forecast
model has structure to learn. Deterministic for a given seed. Pure numpy.
"""

from __future__ import annotations

import numpy as np

ATTRS = {
    "sst": {"units": "K", "long_name": "Sea surface temperature", "GRIB_paramId": 34},
    "t2m": {"units": "K", "long_name": "2 metre temperature", "GRIB_paramId": 167},
    "z": {"units": "m**2 s**-2", "long_name": "Geopotential", "GRIB_paramId": 129,
          "standard_name": "geopotential"},
    "t": {"units": "K", "long_name": "Temperature", "GRIB_paramId": 130,
          "standard_name": "air_temperature"},
    "u": {"units": "m s**-1", "long_name": "U component of wind", "GRIB_paramId": 131,
          "standard_name": "eastward_wind"},
    "tp": {"units": "m", "long_name": "Total precipitation", "GRIB_paramId": 228},
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


class Fields:
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
        """Sum of travelling waves, amplitude ~1, shape (nt, nlat, nlon). Each wave is a
        latitude envelope times a zonal cosine, ``cos(k lon - w t + p)`` =
        ``cos(k lon) cos(w t - p) + sin(k lon) sin(w t - p)``, so the sum over waves is one
        matrix product, (nt x nlat, 2 x waves) by (2 x waves, nlon), instead of a cosine of
        every point of every wave."""
        t = hours[:, None] / 24.0  # (nt, 1)
        lat_deg = np.rad2deg(self.phi[:, 0])[None]  # (1, nlat)
        rows, cols = [], []
        for k, period, phase, centre in self.waves:
            env = np.exp(-(((np.abs(lat_deg) - centre) / 15.0) ** 2))
            mod = 1.0 + 0.4 * np.sin(2 * np.pi * t / (5 * period) + phase)  # (nt, 1)
            arg = 2 * np.pi * t / period - phase  # (nt, 1)
            rows += [env * mod * np.cos(arg), env * mod * np.sin(arg)]  # (nt, nlat) each
            cols += [np.cos(k * self.lam[0]), np.sin(k * self.lam[0])]  # (nlon,) each
        nt, nlat = t.size, self.phi.shape[0]
        out = np.stack(rows, axis=-1).reshape(nt * nlat, len(rows)) @ np.stack(cols)
        return out.reshape(nt, nlat, -1) / np.sqrt(len(self.waves))

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
            km = 7.4 * np.log(1013.0 / float(level))
            # a lapse rate of 6.5 K/km up to the tropopause, warming above 20 km
            base = np.maximum(288.0 - 6.5 * km - 30.0 * s2, 205.0 + 2.0 * max(km - 20.0, 0.0))
            out = base + 3.0 * hemi * season + 3.0 * self._waves(hours) + 0.3 * noise
        elif name == "u":
            km = 7.4 * np.log(1013.0 / float(level))
            jet = 35.0 * np.exp(-(((np.abs(np.rad2deg(self.phi)) - 40.0) / 12.0) ** 2))
            out = jet * (1.0 - np.exp(-km / 4.0)) + 8.0 * self._waves(hours) + 1.0 * noise
        elif name == "tp":  # hourly accumulation, m of water: showers where waves rise
            wet = np.maximum(self._waves(hours) + 0.3 * noise, 0.0)
            out = 4e-4 * wet * (1.0 + 0.5 * np.cos(self.phi))
        else:
            raise ValueError(f"sample has no variable {name!r}; choose from sst, t2m, tp, "
                             "z, t, u")
        return np.broadcast_to(out, noise.shape).astype(np.float32)

