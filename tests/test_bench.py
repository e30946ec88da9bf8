"""The benchmark helpers measure what they claim: memory of a process tree, steady-state rates."""

from __future__ import annotations

import sys

from era5cache.bench.common import run_measured
from era5cache.bench.preprocess import _marginal

# A child that starts a grandchild holding 300 MB (touched) for a moment, then frees it.
_TREE = f"""
import subprocess, sys
subprocess.run([{sys.executable!r}, "-c",
                "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
                "time.sleep(0.6); del b; time.sleep(0.6)"], check=True)
"""


def test_tree_memory_reports_the_peak_of_a_descendant():
    wall, mem = run_measured([sys.executable, "-c", _TREE])
    assert 1.2 <= wall < 30
    # the grandchild's high-water mark: 300 MiB plus an interpreter, even though it had
    # freed the buffer before its last sample
    assert 300 * 2**20 <= mem.peak_max < 300 * 2**20 + 100e6
    assert mem.peak_total >= mem.peak_max


def test_marginal_rate_cancels_fixed_costs():
    # job: 2 s fixed + 1 s per 500 MB; cdo: 1 s fixed + 1 s per 250 MB
    results = {"era5cache preprocess (2 workers)": {"seconds": 2 + 700 / 500},
               "cdo -P 2 remapcon": {"seconds": 1 + 700 / 250}}
    memory = {"input_mb": 2700.0, "seconds": 2 + 2700 / 500, "cdo_p2_seconds": 1 + 2700 / 250}
    m = _marginal(results, memory, 700.0, 2)
    assert m["extra_mb"] == 2000.0
    assert abs(m["era5cache"] - 500) < 1e-9
    assert abs(m["cdo_p2"] - 250) < 1e-9
