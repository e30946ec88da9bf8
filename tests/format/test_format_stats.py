"""Mergeable NaN-aware moments against a float64 numpy reference."""

import numpy as np

from era5cache.format.stats import Moments


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


def test_a_channel_of_nan_only_warns_nothing():
    """Once a numpy RuntimeWarning on the job's stderr ("Mean of empty slice")."""
    import warnings

    x = np.full((4, 2, 3, 3), np.nan)
    x[:, 1] = 7.0
    m = Moments(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.add(x)
        mean, std = m.mean(), m.std()
    assert np.isnan(mean[0]) and mean[1] == 7.0 and std[1] == 0.0
