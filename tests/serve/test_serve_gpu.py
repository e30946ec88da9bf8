"""Checks that need CUDA (skipped elsewhere; run by tools/gpu-check.sh on a lent GPU).

Needs only torch, lightning, h5py and numpy: the cache is the synthetic one.
"""

from __future__ import annotations

import json
import time
import warnings

import pytest
import torch
from conftest import run_cli
from lightning.pytorch.callbacks import Callback

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
    # compile: auto compiles the step on CUDA (or says in one line why it trains eager)
    assert s["compile"]["requested"] == "default"
    assert s["compile"]["mode"] == "default" or s["compile"]["fallback"]
    assert s["throughput_sustained"]["mfu"] is None or 0 < s["throughput_sustained"]["mfu"] < 1


class _SyncCounter(Callback):
    """Counts the host synchronisations torch reports (``set_sync_debug_mode("warn")``)
    over training steps ``first`` to ``last``."""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last
        self.messages: list[str] = []
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.first:
            self.catcher = warnings.catch_warnings(record=True)
            self.caught = self.catcher.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.last:
            torch.cuda.set_sync_debug_mode("default")
            self.seconds = time.perf_counter() - self.t0
            self.catcher.__exit__(None, None, None)
            self.messages = [str(w.message) for w in self.caught
                             if "synchroniz" in str(w.message)]
            trainer.should_stop = True


def test_training_step_does_not_synchronise(cache, tmp_path):
    """Over 40 steps of the command's loop (EMA, clipping, fused AdamW, loss logging) inside
    one epoch (59 steps of 8), the host waits for the GPU only to log (every 50 steps: none
    here) and when the progress bar redraws (at most every 0.5 s)."""
    from era5cache.config.trainer import TrainConfig
    from era5cache.train.run import build

    cfg = TrainConfig.model_validate({"data": str(cache), "trainer": {
        "batch_size": 8, "out": str(tmp_path), "max_epochs": 1, "compile": False,
        "log_every_n_steps": 50, "num_workers": 0}})
    dm, module, trainer, _ = build(cfg)
    counter = _SyncCounter(5, 45)
    trainer.callbacks.append(counter)
    trainer.fit(module, datamodule=dm)
    allowed = 1 + counter.seconds / 0.5
    assert len(counter.messages) <= allowed, counter.messages[:3]


def test_batch_size_auto_fits_the_card(cache, tmp_path):
    """On an H100/H200 the step of the default model fits far more than the 478 training
    windows of this cache: auto takes the largest power of two under them, and trains."""
    from era5cache.config.trainer import TrainConfig
    from era5cache.train.run import build

    cfg = TrainConfig.model_validate({"data": str(cache), "trainer": {
        "batch_size": "auto", "out": str(tmp_path), "max_epochs": 1, "compile": False}})
    dm, module, trainer, _ = build(cfg)
    assert dm.cfg.trainer.batch_size == 256 and dm.cfg.optim.lr_scaling == "sqrt"
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 478 // 256
