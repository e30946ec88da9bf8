"""The test run itself: under pytest-xdist each worker's thread pools take its share of the
cores (``conftest._share_the_cores_among_workers``), which holds only while no plugin loads
torch or numpy before the conftest."""

from __future__ import annotations

import os

import pytest


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER_COUNT"), reason="pytest-xdist only")
def test_each_worker_takes_its_share_of_the_cores():
    import torch

    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    share = max(1, (os.cpu_count() or 1) // workers)
    assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == str(share)
    assert torch.get_num_threads() == share
