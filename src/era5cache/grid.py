"""The fixed 2-degree target grid and cell bounds of regular lat-lon source grids.

All angles are in degrees. The target grid (docs/contracts.md section 5) has 80 latitudes
(-79 .. 79, ascending) and 180 longitudes (1 .. 359); cell edges lie on even degrees and
cover 80S..80N and 0..360E.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_RESOLUTION = 2.0
TARGET_LAT_EDGES = np.arange(-80.0, 80.0 + 1e-9, TARGET_RESOLUTION)  # (81,)
TARGET_LON_EDGES = np.arange(0.0, 360.0 + 1e-9, TARGET_RESOLUTION)  # (181,)
TARGET_LAT = 0.5 * (TARGET_LAT_EDGES[:-1] + TARGET_LAT_EDGES[1:])  # (80,) -79..79
TARGET_LON = 0.5 * (TARGET_LON_EDGES[:-1] + TARGET_LON_EDGES[1:])  # (180,) 1..359
NLAT = TARGET_LAT.size
NLON = TARGET_LON.size


@dataclass(frozen=True)
class SourceGrid:
    """A regular latitude-longitude source grid, in file order.

    ``lat`` and ``lon`` are the cell centres exactly as stored in the file (any order, longitudes
    in any range such as 0..360 or -180..180).
    """

    lat: np.ndarray
    lon: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    @property
    def lon_periodic(self) -> bool:
        """True when the longitudes close the circle (n * spacing == 360)."""
        if self.lon.size < 2:
            return False
        step = _spacing(self.lon)
        return bool(abs(step * self.lon.size - 360.0) < 1e-6 * 360.0)

    def same_as(self, other: SourceGrid) -> bool:
        return (
            self.lat.shape == other.lat.shape
            and self.lon.shape == other.lon.shape
            and bool(np.allclose(self.lat, other.lat, atol=1e-6))
            and bool(np.allclose(np.mod(self.lon, 360), np.mod(other.lon, 360), atol=1e-6))
        )

    def describe(self) -> str:
        return (
            f"{self.lat.size}x{self.lon.size} lat {self.lat.min():g}..{self.lat.max():g} "
            f"lon {self.lon.min():g}..{self.lon.max():g}"
        )


def _spacing(centres: np.ndarray) -> float:
    d = np.diff(np.sort(np.asarray(centres, dtype=np.float64)))
    return float(np.median(d)) if d.size else 0.0


def lat_bounds(lat: np.ndarray) -> np.ndarray:
    """Cell bounds of latitude centres, shape (n, 2) as (south, north), in file order.

    Bounds are midpoints between neighbours; the outermost bounds lie half a spacing beyond
    the outermost centres and are clipped to +-90.
    """
    lat = np.asarray(lat, dtype=np.float64)
    order = np.argsort(lat)
    s = lat[order]
    if s.size == 1:
        half = 0.5
        edges = np.array([s[0] - half, s[0] + half])
    else:
        mid = 0.5 * (s[:-1] + s[1:])
        edges = np.concatenate([[s[0] - (mid[0] - s[0])], mid, [s[-1] + (s[-1] - mid[-1])]])
    edges = np.clip(edges, -90.0, 90.0)
    out = np.empty((lat.size, 2))
    out[order, 0] = edges[:-1]
    out[order, 1] = edges[1:]
    return out


def lon_bounds(lon: np.ndarray) -> np.ndarray:
    """Cell bounds of longitude centres, shape (n, 2) as (west, east), in file order.

    Longitudes are first mapped to [0, 360). Bounds are midpoints between neighbours along
    the circle; for a grid that closes the circle the first and last cells meet across the
    dateline/meridian, otherwise the outer bounds lie half a spacing beyond the outer centres.
    West bounds are in [0, 360) and east bounds may exceed 360.
    """
    lon = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
    n = lon.size
    order = np.argsort(lon)
    s = lon[order]
    step = _spacing(s) if n > 1 else 1.0
    periodic = n > 1 and abs(step * n - 360.0) < 1e-6 * 360.0
    if periodic:
        prev = np.concatenate([[s[-1] - 360.0], s[:-1]])
        nxt = np.concatenate([s[1:], [s[0] + 360.0]])
        west, east = 0.5 * (prev + s), 0.5 * (s + nxt)
    else:
        # A regional grid may straddle 0E (e.g. -10..10 -> 350..10): unwrap at the largest gap.
        if n > 1:
            gaps = np.diff(np.concatenate([s, [s[0] + 360.0]]))
            start = (int(np.argmax(gaps)) + 1) % n
            s = np.concatenate([s[start:], s[:start] + 360.0])
            order = np.concatenate([order[start:], order[:start]])
            mid = 0.5 * (s[:-1] + s[1:])
            edges = np.concatenate([[s[0] - (mid[0] - s[0])], mid, [s[-1] + (s[-1] - mid[-1])]])
        else:
            edges = np.array([s[0] - 0.5, s[0] + 0.5])
        west, east = edges[:-1], edges[1:]
    shift = np.floor(west / 360.0) * 360.0
    out = np.empty((n, 2))
    out[order, 0] = west - shift
    out[order, 1] = east - shift
    return out


def cdo_grid_description() -> str:
    """The target grid as a CDO grid description file (for ``cdo remapcon,FILE``)."""
    return (f"gridtype = lonlat\nxsize = {NLON}\nysize = {NLAT}\n"
            f"xfirst = {TARGET_LON[0]:g}\nxinc = {TARGET_RESOLUTION:g}\n"
            f"yfirst = {TARGET_LAT[0]:g}\nyinc = {TARGET_RESOLUTION:g}\n")
