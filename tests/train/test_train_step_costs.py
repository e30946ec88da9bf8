"""What the training loop no longer does every step: move resident batches, build a
profiler context per hook call (see ``train/noprofiler.py``)."""

from __future__ import annotations

import pytest
import torch
from conftest import train_yaml

from era5cache.config.trainer import load_train_config
from era5cache.train.noprofiler import NoProfiler
from era5cache.train.run import build


@pytest.mark.parametrize("mode", ["resident", "loader"])
def test_resident_batches_reach_the_step_as_they_are(small_cache, tmp_path, mode):
    cfg = load_train_config(train_yaml(tmp_path, small_cache,
                                       trainer=f", data_mode: {mode}"))
    dm, _, trainer, _ = build(cfg)
    assert isinstance(trainer.profiler, NoProfiler)
    batch = next(iter(dm.train_dataloader()))
    moved = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert (moved is batch) == (mode == "resident")
    assert len(moved) == len(batch)
    for a, b in zip(moved, batch, strict=True):
        assert torch.equal(a, b)


def test_no_profiler_hands_out_one_reentrant_context():
    p = NoProfiler()
    with p.profile("[Callback]EMA.on_train_batch_end"), p.profile("inner"):
        pass
    assert p.profile("a") is p.profile("b")
