"""The train loop's overhead figure comes with the interval this machine's drift allows."""

from __future__ import annotations

import numpy as np

from era5cache.bench.trainloop import overhead_interval_ms


def test_overhead_interval_holds_a_known_overhead_under_drift():
    rng = np.random.default_rng(3)
    pairs = []
    for drift in np.linspace(0.020, 0.040, 30):  # the machine slows from 20 to 40 ms a step
        bare = list(drift + rng.normal(0, 0.002, 10))
        command = list(drift + 0.0015 + rng.normal(0, 0.002, 10))  # 1.5 ms more a step
        pairs.append((command, bare))
    lo, hi = overhead_interval_ms(pairs)
    assert lo < 1.5 < hi
    assert hi - lo < 5  # drift within a pair cancels; across pairs it widens the interval
    exact = [(list(np.full(10, 0.03 + k * 1e-3 + 0.001)), list(np.full(10, 0.03 + k * 1e-3)))
             for k in range(5)]  # every command step exactly 1 ms longer than its pair's bare
    np.testing.assert_allclose(overhead_interval_ms(exact), [1.0, 1.0], atol=1e-9)
