"""The benchmark cgroups do what they claim: a memory limit that holds page cache, a read
throttle, the folder gone afterwards; and the Dataset's view of the memory it may fill."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from era5cache.bench.cgroup import MemoryCgroup, ReadThrottle
from era5cache.serve.memory import available_memory, own_memory_cgroup
from era5cache.serve.readahead import evict

pytestmark = [pytest.mark.skipif(
    os.geteuid() != 0 or own_memory_cgroup() is None or not os.path.isdir(
        "/sys/fs/cgroup/memory"), reason="needs root and cgroup v1 controllers"),
    pytest.mark.slow]  # a 300 MB file read cold and through cgroups


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cg") / "f.bin"
    np.random.default_rng(0).integers(0, 255, 300 << 20, dtype=np.uint8).tofile(path)
    return path


def _read(path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


def test_memory_cgroup_limits_page_cache(big_file):
    limit = 128 << 20
    with MemoryCgroup(limit) as cg:
        assert available_memory() <= limit
        evict(big_file)
        _read(big_file)  # 300 MiB through a 128 MiB group: the kernel must evict
        assert cg.peak() <= limit
        path = cg.path
    assert not path.exists()
    assert available_memory() > limit


def test_read_throttle_slows_cold_reads(big_file):
    with ReadThrottle(big_file, 100_000_000) as th:
        evict(big_file)
        secs = _read(big_file)
        path = th.path
    assert secs >= 0.8 * (300 << 20) / 100e6  # ~3.1 s at 100 MB/s
    assert not path.exists()
