"""Time selection of any input: ``--start``, ``--end`` (inclusive) and ``--step`` (keep
00/06/12/18 of hourly data with ``6h``), and the sums that subsampling makes of accumulated
variables.

An accumulated variable (ERA5's ``tp``: metres of water in the hour ending at the step) whose
values each cover the inputs' own step is summed over the selected step when subsampling: with
``--step 6h`` on hourly data, ``tp`` at 06 is the sum of the six hourly values ending at 06
(WeatherBench2's ``total_precipitation_6hr``). The hours before ``--start`` that the first sum
needs are read too. A sum holds NaN where any of its values is NaN. Values that cover less
than the inputs' step (hourly ``tp`` in 6-hourly files) are kept as they are: they cannot be
summed to the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import InputError

ACCUMULATION_ATTR = "accumulation_hours"  # hours each value sums over, ending at its step
EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


def _time(text: str | None, what: str, last: bool = False) -> np.datetime64 | None:
    """An ISO date or time in seconds; with ``last``, a year, month or day alone is its last
    second (``--end 2020-12-31`` keeps the whole day, as xarray's slices do)."""
    if text is None:
        return None
    try:
        value = np.datetime64(str(text).strip().replace(" ", "T"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO date or time (e.g. 2020-01-01 or "
                         "2020-01-01T06)") from None
    coarse = np.datetime_data(value.dtype)[0] in ("Y", "M", "D")
    if last and coarse:
        return (value + 1).astype("datetime64[s]") - np.timedelta64(1, "s")
    return value.astype("datetime64[s]")


@dataclass(frozen=True)
class TimeSelection:
    """The steps to keep: from ``start`` to ``end`` inclusive (None: unbounded; an end given
    as a date is the whole day), every
    ``step`` counted from midnight (None: every step of the inputs). datetime64[s] and
    timedelta64[s]."""

    start: np.datetime64 | None = None
    end: np.datetime64 | None = None
    step: np.timedelta64 | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None, step: str | None
              ) -> TimeSelection | None:
        """From ISO strings and a step like '6h' (:func:`era5cache.config.sample.parse_step`);
        None when nothing is selected; ValueError for an unreadable value, an end before the
        start, or a step that does not divide a day or is not whole days."""
        from ..config.sample import parse_step

        sel = cls(_time(start, "start"), _time(end, "end", last=True),
                  None if step is None else parse_step(step))
        if sel.start is not None and sel.end is not None and sel.end < sel.start:
            raise ValueError(f"end {end} is before start {start}")
        day = np.timedelta64(86400, "s")
        if sel.step is not None and (sel.step <= np.timedelta64(0, "s") or (
                day % sel.step and sel.step % day)):
            raise ValueError(f"step {step} neither divides a day nor is whole days")
        return None if sel == cls() else sel

    def to_json(self) -> dict[str, str | None]:
        return {"start": None if self.start is None else str(self.start),
                "end": None if self.end is None else str(self.end),
                "step": None if self.step is None else f"{int(self.step.astype(int))}s"}

    def indices(self, times: np.ndarray, where: str) -> np.ndarray:
        """Positions in ``times`` (datetime64, ascending) of the selected steps;
        :class:`InputError` naming ``where`` when none is selected or the step is not a
        multiple of the inputs' step."""
        times = times.astype("datetime64[s]")
        keep = np.ones(times.size, dtype=bool)
        if self.start is not None:
            keep &= times >= self.start
        if self.end is not None:
            keep &= times <= self.end
        if self.step is not None:
            native = native_step(times)
            if native is not None and self.step % native:
                raise InputError(f"{where}: step {_hours(self.step)} is not a multiple of the "
                                 f"inputs' step {_hours(native)}")
            keep &= (times - EPOCH) % self.step == np.timedelta64(0, "s")
        if not keep.any():
            span = f"{times[0]} .. {times[-1]}" if times.size else "no steps"
            raise InputError(f"{where}: no time step selected by {self.describe()} (the "
                             f"inputs hold {span})")
        return np.flatnonzero(keep)

    def describe(self) -> str:
        parts = [f"start {self.start}" if self.start is not None else "",
                 f"end {self.end}" if self.end is not None else "",
                 f"step {_hours(self.step)}" if self.step is not None else ""]
        return ", ".join(p for p in parts if p) or "no selection"


def _hours(step: np.timedelta64) -> str:
    h = step / np.timedelta64(1, "h")
    return f"{h:g}h"


def native_step(times: np.ndarray) -> np.timedelta64 | None:
    """The smallest step between consecutive ``times`` (datetime64[s]); None for one step."""
    if times.size < 2:
        return None
    return np.diff(times.astype("datetime64[s]")).min()


def sum_count(period_hours: int | None, native: np.timedelta64 | None,
              step: np.timedelta64 | None) -> int:
    """How many consecutive values an accumulated variable sums into one selected step: the
    selected step over the inputs' when each value covers the inputs' step (``period_hours``
    equals it) and the selection subsamples; else 1 (kept as it is)."""
    if period_hours is None or native is None or step is None or step <= native:
        return 1
    if np.timedelta64(period_hours, "h") != native:
        return 1
    return int(step // native)


def windows(times: np.ndarray, picked: np.ndarray, count: int, where: str) -> np.ndarray:
    """Positions in ``times`` of the ``count`` consecutive steps that end at each of the
    ``picked`` positions, flattened (``count`` per picked step, oldest first);
    :class:`InputError` naming ``where`` when the inputs lack one (before their first step,
    or a gap)."""
    if count == 1:
        return picked
    times = times.astype("datetime64[s]")
    native = native_step(times)
    back = np.arange(-count + 1, 1)
    pos = (picked[:, None] + back[None, :]).ravel()
    want = (times[picked][:, None] + back[None, :] * native).ravel()
    ok = (pos >= 0) & (times[np.clip(pos, 0, times.size - 1)] == want)
    if not ok.all():
        missing = want[np.argmin(ok)]
        raise InputError(f"{where}: the sum over {_hours(count * native)} at "
                         f"{times[picked][np.argmin(ok) // count]} needs the step {missing}, "
                         "which the inputs lack (start later, or give the earlier data too)")
    return pos


def summed(da: xr.DataArray, count: int, times: np.ndarray) -> xr.DataArray:
    """``da`` (time first, ``count`` consecutive steps per output step, chunked along time
    in multiples of ``count``) summed over each run of ``count`` steps, labelled ``times``;
    NaN where any summed value is NaN."""
    if count == 1:
        return da.assign_coords(time=times)
    windows_ = da.coarsen(time=count, boundary="exact").construct(time=("time", "summed"))
    out = windows_.sum("summed", skipna=False)
    return out.assign_coords(time=times)


def select_variable(da: xr.DataArray, times: np.ndarray, picked: np.ndarray, count: int,
                    where: str) -> xr.DataArray:
    """One variable of a normalised, Dask-chunked dataset at the ``picked`` steps, summed
    over ``count`` steps (:func:`sum_count`), its :data:`ACCUMULATION_ATTR` attribute (an int)
    multiplied by ``count``."""
    pos = windows(times, picked, count, where)
    out = da.isel(time=pos)
    if count > 1:
        size = max(1, out.chunks[0][0] // count) * count if out.chunks else count
        out = out.chunk({"time": size})
    out = summed(out, count, times[picked])
    out.attrs = dict(da.attrs)
    if count > 1:
        out.attrs[ACCUMULATION_ATTR] = int(da.attrs.get(ACCUMULATION_ATTR, 1)) * count
    return out
