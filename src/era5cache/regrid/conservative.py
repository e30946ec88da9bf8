"""First-order conservative regridding from a regular lat-lon grid to the 2-degree target.

Pure numpy; no xarray, no Dask (the adapter lives in :mod:`era5cache.regrid.adapter`; the
weights of each axis in :mod:`era5cache.regrid.weights`).

Each target value is the area-weighted mean of the source cells it overlaps, with areas on
the sphere: the latitude weight of an overlap is ``sin(north) - sin(south)`` and the longitude
weight its length in degrees. On regular grids the weights factor into a latitude matrix
``(80, n_lat_src)`` and a longitude matrix ``(180, n_lon_src)``; both are stored sparse, as the
few source indices each target row/column touches, so applying them costs a handful of
passes over the field rather than a dense matrix product. Where the source cells nest in the
target's at an even stride (0.25, 0.5, 1 degree ... ERA5's grids, latitude ascending), each
axis is also stored as a :class:`Band` and applied as one ``einsum`` over a reshaped view:
the same sums, about twice as fast.

NaN rule (CDO ``remapcon`` with the default ``fracarea`` normalisation and
``REMAP_AREA_MIN=threshold``): a target cell is the mean over the *valid* part of its area;
it is NaN when the valid share of its area is below ``threshold``. ``threshold=0`` keeps any
cell with at least some valid source area. A cell with no valid source area is always NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import NLAT, NLON, TARGET_LAT_EDGES, SourceGrid
from .weights import Band, SparseWeights, as_slice, lat_weight_matrix, lon_weight_matrix


class CoverageError(ValueError):
    """The source grid does not cover the whole target grid (80S..80N, all longitudes)."""


@dataclass(frozen=True)
class ConservativeRegridder:
    """Precomputed conservative weights from one source grid to the 2-degree target.

    Build with :meth:`for_grid`; apply with :meth:`__call__`. Picklable (plain arrays).
    """

    lat: SparseWeights
    lon: SparseWeights
    area: np.ndarray  # (80, 180) target cell areas (sin-lat x degrees), float64
    source_shape: tuple[int, int]
    lat_band: Band | None = None  # the same weights as ``lat`` where they form a band
    lon_band: Band | None = None

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
            lat_band=Band.from_dense(wlat),
            lon_band=Band.from_dense(wlon),
        )

    def apply_step(self, x: np.ndarray, out: np.ndarray, work: Work) -> None:
        """Weighted sums (no normalisation) of one field ``x`` (n_lat_src, n_lon_src) into
        ``out`` (80, 180) float64: the latitude pass, then the longitude pass.

        One step at a time on preallocated buffers: the float64 intermediate of one step
        (80 x n_lon_src) stays in the CPU cache, which that of a whole block does not.
        """
        acc, product = work.acc, work.product
        if self.lat_band is not None and work.banded:
            self.lat_band.rows(x, out=acc)
        else:
            self._sparse_rows(x, acc, product, work)
        if self.lon_band is not None and work.banded:
            self.lon_band.columns(acc, out=out)
            return
        out[...] = 0.0
        for k in range(self.lon.index.shape[1]):
            out += self.lon.weight[:, k] * acc[:, self.lon.index[:, k]]

    def _sparse_rows(self, x: np.ndarray, acc: np.ndarray, product: np.ndarray,
                     work: Work) -> None:
        for k, rows in enumerate(work.lat_rows):
            source = x[rows]  # a view for a slice, else a gathered copy
            if k == 0:
                np.multiply(self.lat.weight[:, k, None], source, out=acc)
            else:
                np.multiply(self.lat.weight[:, k, None], source, out=product)
                acc += product

    def __call__(self, field: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Regrid ``field`` shaped ``(..., n_lat_src, n_lon_src)`` to ``(..., 80, 180)`` float32.

        NaN marks missing source values; see the module docstring for the rule. Sums are
        accumulated in float64. Each 2-D field (step) is regridded on its own, so a result
        does not depend on which other steps share the call. Raises
        :class:`InfiniteValueError` for a field with +-inf in a source row that contributes
        to the target (never valid data; it would spread over every target cell it touches);
        rows poleward of the target (beyond 80 degrees) are not read.
        """
        field = np.asarray(field)
        if field.shape[-2:] != self.source_shape:
            raise ValueError(
                f"field has grid shape {field.shape[-2:]}, weights were built for "
                f"{self.source_shape}"
            )
        if field.dtype.kind != "f":
            field = field.astype(np.float64)
        lead = field.shape[:-2]
        steps = field.reshape((-1,) + self.source_shape)
        out = np.empty((steps.shape[0], NLAT, NLON), dtype=np.float32)
        work = Work.for_shape(self.source_shape[1], self.lat.index)
        num = np.empty((NLAT, NLON))
        den = np.empty((NLAT, NLON))
        rows = slice(int(self.lat.index.min()), int(self.lat.index.max()) + 1)
        for i, x in enumerate(steps):
            with np.errstate(invalid="ignore"):
                self.apply_step(x, num, work)
            # Every index names a contributing cell (weight > 0), so the sums are finite
            # exactly when no contributing cell is NaN or inf: the common case, checked on
            # the 80 x 180 sums rather than on the source field.
            if np.isfinite(num).all():
                np.divide(num, self.area, out=out[i], casting="same_kind")
                continue
            if np.isinf(x[..., rows, :]).any():
                raise InfiniteValueError(i)
            valid = ~np.isnan(x)
            self.apply_step(np.where(valid, x, 0), num, work)
            self.apply_step(valid.astype(x.dtype), den, work)
            share = den / self.area
            keep = (den > 0) & (share >= threshold - 1e-9)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[i] = np.where(keep, num / den, np.nan)
        return out.reshape(lead + (NLAT, NLON))


class InfiniteValueError(ValueError):
    """A field holds +-inf. ``step`` is its index among the fields of the call (the leading
    dimensions flattened in C order)."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step

    def __str__(self) -> str:
        return f"field {self.step} holds infinite values"


@dataclass(frozen=True)
class Work:
    """Scratch buffers of one regridding call: float64 sums and products, (80, n_lon_src);
    ``lat_rows[k]``: the source rows of term ``k`` of every target row, as a slice where
    they are evenly spaced (always on a regular grid whose cells nest in the target's, such
    as 0.25 degrees): a strided view instead of a gathered copy. ``banded``: use the
    regridder's :class:`Band` forms where it has them (False: the sparse form, for tests
    comparing the two)."""

    acc: np.ndarray
    product: np.ndarray
    lat_rows: tuple[slice | np.ndarray, ...]
    banded: bool = True

    @classmethod
    def for_shape(cls, n_lon_src: int, lat_index: np.ndarray) -> Work:
        return cls(acc=np.empty((NLAT, n_lon_src)), product=np.empty((NLAT, n_lon_src)),
                   lat_rows=tuple(as_slice(lat_index[:, k]) for k in range(lat_index.shape[1])))

