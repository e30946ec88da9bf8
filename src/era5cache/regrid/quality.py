"""Value checks on the data: infinite input values and all-NaN time steps.

Pure numpy (:func:`infinite_steps`, :func:`all_nan_steps`).

- Infinite values (``+-inf``) are never valid ERA5 data (the CDS marks missing values with
  NaN or a fill value); they come from a broken conversion upstream and are always an error.
  They are detected in the source block before regridding, where they would otherwise spread
  over every target cell they touch.
- An all-NaN time step is a step of one channel with no valid value after regridding (e.g. a
  step the CDS delivered empty). Policy ``fail`` (default) refuses the input; ``skip`` leaves
  the step out of the HDF5 training cache (it becomes a gap, so no training window spans it)
  and records it in the manifest; the Zarr store keeps it, as NaN.
"""

from __future__ import annotations

import numpy as np


class NonFiniteValueError(ValueError):
    """Infinite values in a source block. ``first`` is the index of the first such step along
    the regridded array's time axis; ``count`` the number of such steps in the block.
    Raised on Dask workers; pickles with its fields."""

    def __init__(self, variable: str, first: int, count: int):
        super().__init__(variable, first, count)
        self.variable, self.first, self.count = variable, first, count

    def __str__(self) -> str:
        return (f"{self.count} time step(s) of {self.variable!r} hold infinite values "
                f"(first at index {self.first})")


def infinite_steps(block: np.ndarray, time_axis: int = 0) -> np.ndarray:
    """Boolean per step along ``time_axis``: the step holds +-inf somewhere. NaN is fine."""
    if block.dtype.kind != "f":
        return np.zeros(block.shape[time_axis], dtype=bool)
    other = tuple(i for i in range(block.ndim) if i != time_axis)
    return np.isinf(block).any(axis=other)


def all_nan_steps(block: np.ndarray) -> np.ndarray:
    """Boolean (t,) for a (t, ...) block: the step holds no valid (non-NaN) value."""
    return np.isnan(block).reshape(block.shape[0], -1).all(axis=1)
