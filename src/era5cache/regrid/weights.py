"""Conservative weights of one axis, from a regular source grid to the 2-degree target.

Areas on the sphere: the latitude weight of an overlap is ``sin(north) - sin(south)``, the
longitude weight its length in degrees. Dense matrices (:func:`lat_weight_matrix`,
:func:`lon_weight_matrix`) are stored sparse (:class:`SparseWeights`: the few source cells
each target cell touches) and, where the source cells nest in the target's at an even
stride (ERA5's 0.25, 0.5, 1 degree grids, latitude ascending), as a :class:`Band` applied as
one ``einsum`` over a reshaped view. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import NLON, TARGET_LAT_EDGES, TARGET_LON_EDGES, lat_bounds, lon_bounds


@dataclass(frozen=True)
class SparseWeights:
    """Weights of one axis: ``out[i] = sum_k weight[i, k] * src[index[i, k]]``.

    ``index`` and ``weight`` have shape ``(n_target, K)``; padding entries have weight 0 and
    repeat an index of their row, so every index names a source cell that contributes.
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
            index[i, :] = cols[0] if cols.size else 0  # padding repeats a used index
            index[i, : cols.size] = cols
            weight[i, : cols.size] = dense[i, cols]
        return cls(index=index, weight=weight)

    def to_dense(self, n_source: int) -> np.ndarray:
        dense = np.zeros((self.index.shape[0], n_source))
        np.add.at(dense, (np.arange(self.index.shape[0])[:, None], self.index), self.weight)
        return dense


@dataclass(frozen=True)
class Band:
    """Weights of one axis whose target cell ``i`` takes the ``K`` consecutive source cells
    from ``start + step * i``: ``out[i] = sum_k weight[i, k] * src[(start + step*i + k) % n_src]``.

    Terms ``k < step`` read a reshaped view of the source range ``start : start + step * n``
    (one ``einsum``, float64 sums); the terms beyond (the cell a target shares with the next
    one, half weight on ERA5's grids) read an evenly spaced slice, or an index where the axis
    wraps. ``weight`` has shape ``(n_target, K)``, every entry positive: each cell read
    contributes.
    """

    start: int
    step: int
    weight: np.ndarray
    extra: tuple[slice | np.ndarray, ...]  # source cells of the terms k >= step

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> Band | None:
        """The band form of ``dense`` (n_target, n_src), or None when its non-zero weights
        are not evenly strided windows that fit the source axis (the sparse form serves)."""
        n, m = dense.shape
        nz = dense > 0
        if n < 3 or not nz.any(axis=1).all():
            return None
        mid = n // 2  # rows away from the ends, where a periodic axis may wrap
        step = int(np.argmax(nz[mid + 1]) - np.argmax(nz[mid]))
        start = int(np.argmax(nz[mid])) - step * mid
        if step < 1 or start < 0 or start + step * n > m:
            return None
        width = int(nz.sum(axis=1).max())
        first = start + step * np.arange(n)
        cols = (first[:, None] + np.arange(width)) % m
        weight = np.take_along_axis(dense, cols, axis=1)
        if width > m or not (weight > 0).all() or not (nz.sum(axis=1) == width).all():
            # a non-zero weight outside its window, or a window cell that does not
            # contribute (it may hold NaN: every cell read must contribute, as in the
            # sparse form, for the finite-sums shortcut of ``__call__``)
            return None
        extra = tuple(as_slice(cols[:, k]) for k in range(step, width))
        return cls(start=start, step=step, weight=weight, extra=extra)

    def rows(self, x: np.ndarray, out: np.ndarray) -> None:
        """``out`` (n_target, L) float64 = the weighted sums of the rows of ``x`` (n_src, L)."""
        n, width = self.weight.shape
        body = min(width, self.step)
        view = x[self.start:self.start + self.step * n].reshape(n, self.step, -1)
        np.einsum("jk,jkl->jl", self.weight[:, :body], view[:, :body], out=out)
        for k, cells in enumerate(self.extra, start=self.step):
            out += self.weight[:, k, None] * x[cells]

    def columns(self, x: np.ndarray, out: np.ndarray) -> None:
        """``out`` (R, n_target) float64 = the weighted sums of the columns of ``x`` (R, n_src)."""
        n, width = self.weight.shape
        body = min(width, self.step)
        view = x[:, self.start:self.start + self.step * n].reshape(x.shape[0], n, self.step)
        np.einsum("jik,ik->ji", view[:, :, :body], self.weight[:, :body], out=out)
        for k, cells in enumerate(self.extra, start=self.step):
            out += self.weight[:, k] * x[:, cells]


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



def as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` (1-D, non-negative) as an equivalent slice when evenly spaced, else itself."""
    if index.size < 2:
        return index
    step = int(index[1] - index[0])
    if step == 0 or not (np.diff(index) == step).all():
        return index
    stop = int(index[-1]) + step
    return slice(int(index[0]), stop if stop >= 0 else None, step)
