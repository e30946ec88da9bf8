"""The benchmark helpers measure what they claim: the memory of a process tree."""

from __future__ import annotations

import sys

from era5cache.bench.common import run_measured

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
