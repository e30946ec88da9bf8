"""Value checks on the data: infinite or physically impossible input values, and all-NaN
time steps.

Pure numpy (:func:`infinite_steps`, :func:`outside_steps`, :func:`all_nan_steps`).

- Infinite values (``+-inf``) are never valid ERA5 data (the CDS marks missing values with
  NaN or a fill value); they come from a broken conversion upstream and are always an error.
  They are detected in the source block before regridding, where they would otherwise spread
  over every target cell they touch.
- A finite value outside its variable's physical range
  (:data:`era5cache.read.physical.KNOWN`) is a fill value the file does not declare, or a
  field in other units than it says; also always an error, found in the source block (the
  whole field, poles included) with one minimum and one maximum per block.
- An all-NaN time step is a step of one channel with no valid value after regridding (e.g. a
  step the CDS delivered empty). Policy ``fail`` (default) refuses the input; ``skip`` leaves
  the step out of the HDF5 training cache (it becomes a gap, so no training window spans it)
  and records it in the manifest; the Zarr store keeps it, as NaN.
"""

from __future__ import annotations

import numpy as np


class BadValueError(ValueError):
    """Values ERA5 never holds in a source block of ``variable``. ``first`` is the index of
    the first such step along the regridded array's time axis; the message is
    "<file>: '<variable>' <problem> at <time><hint>". Raised on Dask workers; pickles with
    its fields."""

    def __init__(self, variable: str, first: int, problem: str, hint: str = ""):
        super().__init__(variable, first, problem, hint)
        self.variable, self.first, self.problem, self.hint = variable, first, problem, hint

    def __str__(self) -> str:
        return f"{self.variable!r} {self.problem} at index {self.first}{self.hint}"


class NonFiniteValueError(BadValueError):
    """Infinite values (``count`` steps of the block)."""

    def __init__(self, variable: str, first: int, count: int):
        BadValueError.__init__(self, variable, first, "holds infinite values",
                               " (ERA5 marks missing values with NaN; the file is corrupt)")
        self.args = (variable, first, count)
        self.count = count


class OutOfRangeError(BadValueError):
    """A finite ``value`` outside ``[low, high]`` (in ``units``)."""

    def __init__(self, variable: str, first: int, value: float, low: float, high: float,
                 units: str):
        BadValueError.__init__(
            self, variable, first, f"holds {value:.6g} {units}",
            f", outside ERA5's physical range [{low:g}, {high:g}] {units} (a fill value the "
            "file does not declare, or other units than it says)")
        self.args = (variable, first, value, low, high, units)
        self.value = value


def infinite_steps(block: np.ndarray, time_axis: int = 0) -> np.ndarray:
    """Boolean per step along ``time_axis``: the step holds +-inf somewhere. NaN is fine."""
    if block.dtype.kind != "f":
        return np.zeros(block.shape[time_axis], dtype=bool)
    other = tuple(i for i in range(block.ndim) if i != time_axis)
    return np.isinf(block).any(axis=other)


def outside_steps(block: np.ndarray, low: float, high: float,
                  time_axis: int = 0) -> np.ndarray | None:
    """Boolean per step along ``time_axis``: the step holds a finite value outside
    ``[low, high]``; None (the common case, one minimum and one maximum over the block) when
    no step does. NaN is fine; +-inf counts as outside."""
    if block.dtype.kind != "f" or block.size == 0:
        return None
    lo, hi = np.fmin.reduce(block, axis=None), np.fmax.reduce(block, axis=None)
    if not (lo < low or hi > high):  # NaN (all-NaN block) compares False
        return None
    other = tuple(i for i in range(block.ndim) if i != time_axis)
    with np.errstate(invalid="ignore"):
        return ((block < low) | (block > high)).any(axis=other)


def all_nan_steps(block: np.ndarray) -> np.ndarray:
    """Boolean (t,) for a (t, ...) block: the step holds no valid (non-NaN) value."""
    return np.isnan(block).reshape(block.shape[0], -1).all(axis=1)
