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

import numpy as np
import xarray as xr

from ..errors import InputError
from ..timeaxis import format_hours, native_step

ACCUMULATION_ATTR = "accumulation_hours"  # hours each value sums over, ending at its step


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
        raise InputError(f"{where}: the sum over {format_hours(count * native)} at "
                         f"{times[picked][np.argmin(ok) // count]} needs the step {missing}, "
                         "which the inputs lack (start later, or give the earlier data too)")
    return pos


def summed(da: xr.DataArray, count: int, times: np.ndarray) -> xr.DataArray:
    """``da`` (time first, ``count`` consecutive steps per output step, chunked along time
    in multiples of ``count``) summed over each run of ``count`` steps, labelled ``times``:
    summed in float64, returned in ``da``'s dtype; NaN where any summed value is NaN."""
    if count == 1:
        return da.assign_coords(time=times)
    windows_ = da.coarsen(time=count, boundary="exact").construct(time=("time", "summed"))
    out = windows_.sum("summed", skipna=False, dtype=np.float64).astype(da.dtype)
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
