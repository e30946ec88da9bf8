"""Checks that need CUDA (skipped elsewhere; run by tools/gpu-check.sh on a lent GPU).

Needs only torch, lightning, h5py and numpy: the cache is the synthetic one.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from era5cache import CachedERA5Dataset
from era5cache.sample.synthetic import write_synthetic_cache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_synthetic_cache(tmp_path_factory.mktemp("syn"), steps=600)


def test_resident_cuda_equals_cpu_loader(cache):
    ds = CachedERA5Dataset(cache, return_mask=True)
    cpu = ds.to_device("cpu", batch_size=64, shuffle=False)
    gpu = ds.to_device("cuda", batch_size=64, shuffle=False)
    for a, b in zip(cpu, gpu, strict=True):
        assert all(torch.equal(u, v.cpu()) for u, v in zip(a, b, strict=True))
    bf = ds.to_device("cuda", dtype=torch.bfloat16, batch_size=64, shuffle=True, seed=3)
    x = next(iter(bf))[0]
    assert x.dtype == torch.bfloat16 and x.is_cuda


def test_train_on_cuda_bf16(cache, tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"data: {cache}\ntrainer: {{max_epochs: 2, batch_size: 256, "
                   f"out: {tmp_path / 'run'}}}\n")
    r = run_cli("train", cfg)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["precision"] == "bf16-mixed" and s["data_mode"] == "resident"
    assert "GPU memory" in s["throughput_summary"]
    assert "val: latitude-weighted RMSE" in r.stdout
