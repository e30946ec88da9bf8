"""Mergeable, NaN-aware per-channel statistics (pure numpy, float64 accumulation).

Accumulators keep count, shifted sum and shifted sum of squares per channel; the shift (a
rough mean taken from the first batch) keeps the variance free of catastrophic cancellation.
Two accumulators over disjoint data merge exactly (:meth:`Moments.merge`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class Moments:
    """Per-channel moments of values shaped (time, channel, ...); NaN values are skipped."""

    n_channels: int
    shift: np.ndarray | None = None
    count: np.ndarray | None = None
    s1: np.ndarray | None = None
    s2: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.count is None:
            self.count = np.zeros(self.n_channels)
            self.s1 = np.zeros(self.n_channels)
            self.s2 = np.zeros(self.n_channels)

    def add(self, x: np.ndarray) -> None:
        """Accumulate ``x`` (time, channel, ...), any float dtype; NaN values are skipped.

        One channel at a time: the shifted values in float64 (one pass), NaN zeroed where
        there are any, then a sum and a dot product (BLAS) over the contiguous values: much
        faster than reductions over the (time, lat, lon) axes of the whole block.
        """
        x = np.asarray(x)
        if x.shape[0] == 0:
            return
        if self.shift is None:
            axes = (0,) + tuple(range(2, x.ndim))
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a channel of NaN only
                shift = (np.nanmean(x, axis=axes, dtype=np.float64) if np.isfinite(x).any()
                         else np.zeros(x.shape[1]))
            self.shift = np.nan_to_num(shift)
        for c in range(x.shape[1]):
            d = np.subtract(x[:, c], self.shift[c], dtype=np.float64).reshape(-1)
            nan = np.isnan(d)
            n_nan = int(np.count_nonzero(nan))
            if n_nan:
                np.copyto(d, 0.0, where=nan)
            self.count[c] += d.size - n_nan
            self.s1[c] += d.sum()
            self.s2[c] += np.dot(d, d)

    def merge(self, other: Moments) -> Moments:
        if other.shift is None:
            return self
        if self.shift is None:
            return other
        delta = other.shift - self.shift  # re-centre other's sums on self.shift
        s1 = other.s1 + other.count * delta
        s2 = other.s2 + 2 * delta * other.s1 + other.count * delta**2
        return Moments(self.n_channels, self.shift, self.count + other.count, self.s1 + s1,
                       self.s2 + s2)

    def mean(self) -> np.ndarray:
        """NaN-aware mean per channel; NaN for channels without data."""
        if self.shift is None:
            return np.full(self.n_channels, np.nan)
        with np.errstate(all="ignore"):
            return self.shift + self.s1 / self.count

    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0); NaN for channels without data."""
        if self.shift is None:
            return np.full(self.n_channels, np.nan)
        with np.errstate(all="ignore"):
            m = self.s1 / self.count
            return np.sqrt(np.maximum(self.s2 / self.count - m * m, 0.0))
