"""First-order conservative regridding from a regular lat-lon grid to the 2-degree target.

Pure numpy; no xarray, no Dask (the adapter lives in :mod:`era5cache.regrid_xarray`).

Each target value is the area-weighted mean of the source cells it overlaps, with areas on
the sphere: the latitude weight of an overlap is ``sin(north) - sin(south)`` and the longitude
weight its length in degrees. On regular grids the weights factor into a latitude matrix
``(80, n_lat_src)`` and a longitude matrix ``(180, n_lon_src)``; both are stored sparse, as the
few source indices each target row/column touches, so applying them costs a handful of
passes over the field rather than a dense matrix product.

NaN rule (CDO ``remapcon`` with the default ``fracarea`` normalisation and
``REMAP_AREA_MIN=threshold``): a target cell is the mean over the *valid* part of its area;
it is NaN when the valid share of its area is below ``threshold``. ``threshold=0`` keeps any
cell with at least some valid source area. A cell with no valid source area is always NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import (
    NLAT,
    NLON,
    TARGET_LAT_EDGES,
    TARGET_LON_EDGES,
    SourceGrid,
    lat_bounds,
    lon_bounds,
)


class CoverageError(ValueError):
    """The source grid does not cover the whole target grid (80S..80N, all longitudes)."""


@dataclass(frozen=True)
class SparseWeights:
    """Weights of one axis: ``out[i] = sum_k weight[i, k] * src[index[i, k]]``.

    ``index`` and ``weight`` have shape ``(n_target, K)``; padding entries have weight 0.
    Weights are unnormalised overlap measures (sin-latitude differences or degrees).
    """

    index: np.ndarray
    weight: np.ndarray

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> SparseWeights:
        nz = dense > 0
        k = max(1, int(nz.sum(axis=1).max()))
        index = np.zeros((dense.shape[0], k), dtype=np.intp)
        weight = np.zeros((dense.shape[0], k), dtype=np.float64)
        for i in range(dense.shape[0]):
            cols = np.flatnonzero(nz[i])
            index[i, : cols.size] = cols
            weight[i, : cols.size] = dense[i, cols]
        return cls(index=index, weight=weight)

    def to_dense(self, n_source: int) -> np.ndarray:
        dense = np.zeros((self.index.shape[0], n_source))
        np.add.at(dense, (np.arange(self.index.shape[0])[:, None], self.index), self.weight)
        return dense


def lat_weight_matrix(src_lat: np.ndarray) -> np.ndarray:
    """Dense latitude overlap weights, shape (80, n_src): sin(north) - sin(south) of overlaps."""
    b = np.deg2rad(lat_bounds(src_lat))
    t = np.deg2rad(TARGET_LAT_EDGES)
    lo = np.maximum(b[None, :, 0], t[:-1, None])
    hi = np.minimum(b[None, :, 1], t[1:, None])
    return np.where(hi > lo, np.sin(hi) - np.sin(lo), 0.0)


def lon_weight_matrix(src_lon: np.ndarray) -> np.ndarray:
    """Dense longitude overlap weights in degrees, shape (180, n_src); longitude is periodic."""
    b = lon_bounds(src_lon)
    c, d = TARGET_LON_EDGES[:-1, None], TARGET_LON_EDGES[1:, None]
    w = np.zeros((NLON, b.shape[0]))
    for shift in (-360.0, 0.0, 360.0):
        lo = np.maximum(b[None, :, 0] + shift, c)
        hi = np.minimum(b[None, :, 1] + shift, d)
        w += np.where(hi > lo, hi - lo, 0.0)
    return w


@dataclass(frozen=True)
class ConservativeRegridder:
    """Precomputed conservative weights from one source grid to the 2-degree target.

    Build with :meth:`for_grid`; apply with :meth:`__call__`. Picklable (plain arrays).
    """

    lat: SparseWeights
    lon: SparseWeights
    area: np.ndarray  # (80, 180) target cell areas (sin-lat x degrees), float64
    source_shape: tuple[int, int]

    @classmethod
    def for_grid(cls, grid: SourceGrid) -> ConservativeRegridder:
        """Weights for ``grid``; raises :class:`CoverageError` if it does not cover the target."""
        wlat = lat_weight_matrix(grid.lat)
        wlon = lon_weight_matrix(grid.lon)
        want_lat = np.diff(np.sin(np.deg2rad(TARGET_LAT_EDGES)))
        got_lat = wlat.sum(axis=1)
        got_lon = wlon.sum(axis=1)
        bad_lat = np.abs(got_lat - want_lat) > 1e-9 * want_lat
        bad_lon = np.abs(got_lon - 2.0) > 1e-9
        if bad_lat.any() or bad_lon.any():
            raise CoverageError(
                f"source grid {grid.describe()} does not cover the 2-degree target "
                f"(80S..80N, 0..360E): {int(bad_lat.sum())} of {NLAT} target latitude rows and "
                f"{int(bad_lon.sum())} of {NLON} longitude columns are not fully covered"
            )
        return cls(
            lat=SparseWeights.from_dense(wlat),
            lon=SparseWeights.from_dense(wlon),
            area=np.outer(got_lat, got_lon),
            source_shape=grid.shape,
        )

    def _apply(self, x: np.ndarray) -> np.ndarray:
        """Weighted sums (no normalisation) of x (..., nlat_src, nlon_src) -> (..., 80, 180)."""
        acc = np.zeros(x.shape[:-2] + (NLAT, x.shape[-1]), dtype=np.float64)
        for k in range(self.lat.index.shape[1]):
            acc += self.lat.weight[:, k, None] * x[..., self.lat.index[:, k], :]
        out = np.zeros(x.shape[:-2] + (NLAT, NLON), dtype=np.float64)
        for k in range(self.lon.index.shape[1]):
            out += self.lon.weight[:, k] * acc[..., self.lon.index[:, k]]
        return out

    def __call__(self, field: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Regrid ``field`` shaped ``(..., n_lat_src, n_lon_src)`` to ``(..., 80, 180)`` float32.

        NaN marks missing source values; see the module docstring for the rule. Sums are
        accumulated in float64.
        """
        field = np.asarray(field)
        if field.shape[-2:] != self.source_shape:
            raise ValueError(
                f"field has grid shape {field.shape[-2:]}, weights were built for "
                f"{self.source_shape}"
            )
        valid = ~np.isnan(field)
        if valid.all():
            return (self._apply(field) / self.area).astype(np.float32)
        num = self._apply(np.where(valid, field, 0.0))
        den = self._apply(valid.astype(np.float32))
        share = den / self.area
        keep = (den > 0) & (share >= threshold - 1e-9)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(keep, num / den, np.nan)
        return out.astype(np.float32)
