"""The EMA callback against Lightning's WeightAveraging (the reference it replaces), and the
training loss's running means against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

from era5cache.config.trainer import load_train_config
from era5cache.train.ema import EMA
from era5cache.train.run import build
from era5cache.train.running import RunningLoss


def _fit(cfg, reference: bool):
    """(the averaged weights, the raw weights, n_averaged) after fitting ``cfg``, with the
    project's EMA or, with ``reference``, Lightning's WeightAveraging in its place."""
    dm, module, trainer, _ = build(cfg)
    ema = next(c for c in trainer.callbacks if isinstance(c, EMA))
    if reference:
        i = trainer.callbacks.index(ema)
        ema = WeightAveraging(multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay))
        trainer.callbacks[i] = ema
    trainer.fit(module, datamodule=dm)
    ck = torch.load(trainer.checkpoint_callback.last_model_path, map_location="cpu",
                    weights_only=False)
    return ck["state_dict"], ck["current_model_state"], ck["averaging_state"]["n_averaged"]


@pytest.mark.slow
def test_ema_equals_lightning_weight_averaging(small_cache, tmp_path):
    runs = []
    for reference in (False, True):
        (tmp_path / str(reference)).mkdir()
        cfg = load_train_config(train_yaml(tmp_path / str(reference), small_cache,
                                           epochs=2, ema=0.8))
        runs.append(_fit(cfg, reference))
    (avg, raw, n), (ref_avg, ref_raw, ref_n) = runs
    assert int(n) == int(ref_n) == 2 * ((14 * 4 - 2) // 8)  # one update per optimizer step
    for k in ref_avg:
        torch.testing.assert_close(raw[k], ref_raw[k], rtol=0, atol=0)  # same training
        torch.testing.assert_close(avg[k], ref_avg[k], rtol=1e-6, atol=1e-7)
    head = "model.head.weight"  # zero at the start: the average lags the raw weights
    assert 0 < avg[head].norm() < raw[head].norm()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e3, width=32), st.integers(1, 64)), min_size=1,
                max_size=30), st.integers(1, 7))
def test_running_loss_means_equal_weighted_means(steps, every):
    run = RunningLoss()
    loss, n = (np.array(v, dtype=np.float64) for v in zip(*steps, strict=True))
    windows = []
    for i, (value, samples) in enumerate(steps):
        run.add(torch.tensor(value), samples)
        if (i + 1) % every == 0:
            windows.append(float(run.window()))
    epoch = float(run.epoch())
    np.testing.assert_allclose(epoch, (loss * n).sum() / n.sum(), rtol=1e-5)
    for j, got in enumerate(windows):
        part = slice(j * every, (j + 1) * every)
        want = (loss[part] * n[part]).sum() / n[part].sum()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-30)
    assert float(run.epoch()) == 0.0  # epoch() reset both sums
    assert RunningLoss().epoch() == 0.0 == RunningLoss().window()  # no step at all
