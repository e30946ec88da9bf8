"""What the built-in ERA5 sample holds: one definition, for ``era5cache sample``'s options and
a recipe's ``sample:`` section alike (a plain frozen dataclass; no pydantic needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..timeaxis import parse_step

SINGLE_LEVEL = ("sst", "t2m", "tp")
PRESSURE_LEVEL = ("z", "t", "u")
LAYOUTS = ("new", "legacy", "arco", "wb2")  # CDS NetCDF (2024+, before); Zarr stores


@dataclass(frozen=True)
class SampleSpec:
    """Times are ISO strings (UTC), ``step`` like '6h' or '1h'; ``resolution`` in degrees
    (must divide 360); ``levels`` in hPa for the pressure-level variables; the last
    ``preliminary_steps`` steps are marked ERA5T. ``layout``: CDS NetCDF files (``new``,
    ``legacy``) or one Zarr store laid out as ARCO-ERA5's (``arco``: hourly whatever
    ``step`` says, the 37 levels) or WeatherBench2's (``wb2``: ``step`` apart, 13 levels);
    see :mod:`era5cache.sample.stores`. ``out``: where ``era5cache sample
    --from-config`` writes it."""

    __pydantic_config__ = {"extra": "forbid"}  # read by pydantic

    start: str = "2019-01-01T00"
    end: str = "2019-12-31T18"
    step: str = "6h"
    resolution: float = 0.25
    layout: Literal["new", "legacy", "arco", "wb2"] = "new"
    variables: tuple[str, ...] = ("sst", "t2m", "z")
    levels: tuple[int, ...] = (500, 850)
    preliminary_steps: int = 0
    seed: int = 0
    compress: bool = True  # new layout: zlib level 1 + shuffle as the CDS; False for benches
    out: str = "data/sample"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not "
                             f"{self.layout!r}")
        if not self.resolution > 0 or abs(round(360.0 / self.resolution) * self.resolution
                                          - 360.0) > 1e-9:
            raise ValueError(f"resolution {self.resolution} does not divide 360 degrees")
        unknown = set(self.variables) - set(SINGLE_LEVEL) - set(PRESSURE_LEVEL)
        if unknown:
            raise ValueError(f"sample has no variable(s) {sorted(unknown)}; choose from "
                             f"{', '.join(SINGLE_LEVEL + PRESSURE_LEVEL)}")
        if self.preliminary_steps < 0:
            raise ValueError("preliminary_steps must be >= 0")
        parse_step(self.step)
        self.times()

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(latitude 90 .. -90, longitude 0 .. 360-resolution), degrees, float64: the CDS's
        orientation."""
        lat = np.linspace(90.0, -90.0, int(round(180.0 / self.resolution)) + 1)
        return lat, np.arange(int(round(360.0 / self.resolution))) * self.resolution

    def times(self) -> np.ndarray:
        """The steps, datetime64[s], from ``start`` to ``end`` inclusive."""
        step = parse_step(self.step)
        try:
            t0, t1 = np.datetime64(self.start, "s"), np.datetime64(self.end, "s")
        except ValueError as exc:
            raise ValueError(f"bad sample date ({exc})") from None
        if t1 < t0:
            raise ValueError(f"sample end {self.end} is before start {self.start}")
        return np.arange(t0, t1 + step, step)
