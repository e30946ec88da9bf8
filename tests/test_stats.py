"""Mergeable NaN-aware moments against a float64 numpy reference."""

import numpy as np

from era5cache.stats import Moments
from era5cache.timeaxis import analyse


def test_moments_match_numpy_and_merge():
    rng = np.random.default_rng(0)
    x = rng.normal(5e4, 3.0, (50, 2, 4, 5))  # large offset: cancellation would show
    x[3, 0, 1, 1] = np.nan
    a, b = Moments(2), Moments(2)
    a.add(x[:20])
    b.add(x[20:])
    m = a.merge(b)
    for c in range(2):
        assert np.isclose(m.mean()[c], np.nanmean(x[:, c]), rtol=1e-12)
        assert np.isclose(m.std()[c], np.nanstd(x[:, c]), rtol=1e-9)
    assert m.count.tolist() == [999, 1000]


def test_empty_moments_are_nan():
    m = Moments(3)
    assert np.isnan(m.mean()).all() and np.isnan(m.std()).all()


def test_time_axis_step_gaps_monthly_irregular():
    t = np.arange(np.datetime64("2020-01-01T00"), np.datetime64("2020-01-03T00"),
                  np.timedelta64(6, "h")).astype("datetime64[s]")
    t = np.delete(t, [3, 4])
    ax = analyse(t)
    assert ax.step == "21600s" and len(ax.gaps) == 1 and ax.gaps[0].missing == 2
    assert ax.consecutive(t).tolist() == [True, True, False, True, True]
    months = np.array(["2020-01-01T12", "2020-02-01T12", "2020-03-01T12"], dtype="datetime64[s]")
    assert analyse(months).step == "1M" and not analyse(months).gaps
    odd = np.array(["2020-01-01", "2020-01-02", "2020-01-03T05"], dtype="datetime64[s]")
    assert analyse(odd).irregular
