"""Time selection and accumulation sums against a float64 loop over the steps, for any
series, selection and chunking (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from era5cache.errors import InputError
from era5cache.read.timeselect import select_variable, sum_count, windows
from era5cache.timeaxis import TimeSelection

HOUR = np.timedelta64(3600, "s")
T0 = np.datetime64("2020-03-01T00:00:00", "s")


@st.composite
def series(draw):
    """An hourly series (offset from midnight, some NaN), a selection and a chunking."""
    n = draw(st.integers(4, 60))
    offset = draw(st.integers(0, 23))
    times = T0 + (offset + np.arange(n)) * HOUR
    values = np.asarray(draw(st.lists(st.floats(0, 2.0**-7, width=32), min_size=n, max_size=n)),
                        dtype=np.float32)
    nan = draw(st.lists(st.integers(0, n - 1), max_size=3))
    values[nan] = np.nan
    step = draw(st.sampled_from([1, 2, 3, 4, 6, 12, 24]))
    a = draw(st.integers(0, n - 1))
    b = draw(st.integers(a, n - 1))
    chunk = draw(st.integers(1, n))
    return times, values, step, times[a], times[b], chunk


def reference(times, values, step, start, end, accumulated):
    """{selected time: value} by a loop: every ``step`` hours from midnight in
    [start, end]; an accumulation the float64 sum of the ``step`` hours ending there
    (NaN if any is); None when an hour it needs is missing."""
    out = {}
    index = {t: i for i, t in enumerate(times)}
    for t in times:
        if not start <= t <= end or (t - np.datetime64("1970-01-01", "s")) % (step * HOUR):
            continue
        if not accumulated:
            out[t] = float(values[index[t]])
            continue
        hours = [t - k * HOUR for k in range(step)]
        if any(h not in index for h in hours):
            return None
        out[t] = float(np.sum([np.float64(values[index[h]]) for h in hours]))
    return out


@given(series(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_selection_and_sums_equal_a_loop(case, accumulated):
    times, values, step, start, end, chunk = case
    sel = TimeSelection.parse(str(start), str(end), f"{step}h")
    want = reference(times, values, step, start, end, accumulated)
    da = xr.DataArray(values, dims="time", coords={"time": times}).chunk({"time": chunk})
    try:
        picked = sel.indices(times, "series")
    except InputError:
        assert want == {}  # nothing selected
        return
    count = sum_count(1 if accumulated else None, HOUR, sel.step)
    try:
        got = select_variable(da.assign_attrs(accumulation_hours=1) if accumulated else da,
                              times, picked, count, "series")
    except InputError as exc:
        assert want is None and "which the inputs lack" in str(exc)
        return
    assert want is not None
    np.testing.assert_array_equal(got["time"].values, np.array(list(want), dtype=times.dtype))
    np.testing.assert_allclose(got.values, np.array(list(want.values())), rtol=1e-6,
                               atol=1e-12, equal_nan=True)
    if accumulated:
        assert got.attrs["accumulation_hours"] == step


def test_sum_only_when_each_value_covers_the_inputs_step():
    six = 6 * HOUR
    assert sum_count(1, HOUR, six) == 6
    assert sum_count(6, six, 12 * HOUR) == 2  # WeatherBench2's 6-hour sums to 12 hours
    assert sum_count(1, six, 12 * HOUR) == 1  # hourly values 6 h apart cannot be summed
    assert sum_count(None, HOUR, six) == 1  # instantaneous
    assert sum_count(1, HOUR, None) == 1  # no subsampling: ERA5's hourly value


def test_a_window_across_a_gap_is_refused():
    times = T0 + np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11], dtype="timedelta64[h]")
    with pytest.raises(InputError, match="needs the step 2020-03-01T05:00:00"):
        windows(times.astype("datetime64[s]"), np.array([9]), 6, "gap.nc")


@pytest.mark.parametrize(("start", "end", "step", "said"), [
    ("2020-02-30", None, None, "start '2020-02-30' is not an ISO date"),
    ("2020-01-02", "2020-01-01", None, "end 2020-01-01 is before start 2020-01-02"),
    (None, None, "5h", "step 5h neither divides a day nor is whole days"),
    (None, None, "0h", "neither divides"),
])
def test_bad_selections_are_one_line(start, end, step, said):
    with pytest.raises(ValueError, match=said):
        TimeSelection.parse(start, end, step)


def test_an_end_date_keeps_the_whole_day():
    sel = TimeSelection.parse("2020-01-01", "2020-01-02", None)
    assert sel.end == np.datetime64("2020-01-02T23:59:59")
    assert TimeSelection.parse(None, "2020-01", None).end == np.datetime64("2020-01-31T23:59:59")
    assert TimeSelection.parse(None, None, None) is None
