"""``batch_size: auto``: the largest power of two that fits, the square-root rule; on CUDA
see tests/serve/test_serve_gpu.py."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("fixed", "per", "budget", "limit", "want"), [
    (100, 10, 1100, 10**6, 64),   # room for 100 samples: 64
    (100, 10, 1380, 10**6, 128),  # exactly 128
    (100, 10, 1379, 10**6, 64),
    (100, 10, 10**9, 3000, 2048),  # at most the windows
    (100, 10, 105, 10**6, 0),  # not one sample
])
def test_largest_power_of_two_batch(fixed, per, budget, limit, want):
    from era5cache.train.batchsize import largest_power_of_two

    assert largest_power_of_two(fixed, per, budget, limit) == want


def test_batch_size_auto_on_a_cpu_is_the_base_batch_with_the_sqrt_rule():
    from era5cache.config.trainer import TrainConfig
    from era5cache.train.batchsize import resolve_batch_size

    cfg = TrainConfig.model_validate({"trainer": {"batch_size": "auto"},
                                      "optim": {"base_batch_size": 32}})
    got, why = resolve_batch_size(cfg, on_cuda=False)
    assert got.trainer.batch_size == 32 and got.optim.lr_scaling == "sqrt"
    assert why == "batch size auto: 32 (CPU)"
    fixed = TrainConfig.model_validate({"trainer": {"batch_size": 8}})
    assert resolve_batch_size(fixed, on_cuda=False) == (fixed, "")
