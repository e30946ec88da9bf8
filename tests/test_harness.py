"""The test run itself: the settings numpy and torch read when they load are in place before
they load (``conftest._prepare_the_process``), which holds only while no pytest plugin loads
numpy before the conftest."""

from __future__ import annotations

import os

import pytest
from conftest import NUMPY_LOADED_BEFORE_CONFTEST


def test_numpy_loads_after_the_process_is_prepared():
    assert not NUMPY_LOADED_BEFORE_CONFTEST
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] in ("0", "1")  # ours, or the user's


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER_COUNT"), reason="pytest-xdist only")
def test_each_worker_takes_its_share_of_the_cores():
    import torch

    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    share = max(1, (os.cpu_count() or 1) // workers)
    assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == str(share)
    assert torch.get_num_threads() == share
