"""The RATransformer and its trainer: loss mask, EMA, skill metric, resume, DDP on 2 CPUs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY, run_cli, train_yaml

from era5cache.config.model import ModelConfig
from era5cache.train.model import RATransformer, masked_mse, real_spherical_harmonics
from era5cache.train.skill import SkillAccumulator


def test_masked_mse_ignores_invalid_points():
    pred = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    assert masked_mse(pred, target, mask).item() == pytest.approx((1 + 4 + 9) / 3)
    w = torch.tensor([[2.0], [1.0]])  # channel weights (C, 1) broadcast
    assert masked_mse(pred, target, mask, w).item() == pytest.approx((4 + 16 + 9) / 3)
    assert masked_mse(pred, target, torch.zeros_like(mask)).item() == 0.0


def test_spherical_harmonics_are_orthonormal():
    lat = np.linspace(-89.5, 89.5, 180)
    lon = np.arange(360) + 0.5
    y = real_spherical_harmonics(lat, lon, 3)
    area = np.cos(np.deg2rad(lat))[:, None] * np.deg2rad(1.0) ** 2
    gram = np.einsum("khw,jhw,hw->kj", y, y, np.broadcast_to(area, y.shape[1:]))
    np.testing.assert_allclose(gram, np.eye(16), atol=2e-3)


def test_untrained_residual_model_is_persistence_and_shapes():
    cfg = ModelConfig(channels=2, **TINY)
    m = RATransformer(cfg, increment_scale=torch.tensor([0.1, 0.5])).eval()
    x = torch.randn(3, 2, 2, 80, 180)
    out = m(x)
    assert out.shape == (3, 2, 80, 180)
    assert torch.equal(out, x[:, -1])
    m2 = RATransformer(ModelConfig(channels=2, residual=False, **TINY)).eval()
    assert not torch.equal(m2(x), x[:, -1])


def test_lat_weighted_rmse_by_hand():
    lat = np.array([-60.0, 0.0, 60.0])
    std = np.array([2.0])
    acc = SkillAccumulator(lat, std)
    target = torch.zeros(1, 1, 3, 2)
    pred = torch.tensor([[[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]]])
    mask = torch.tensor([[[[True, True], [True, True], [True, False]]]])
    acc.update({"model": pred, "persistence": target, "climatology": target}, target, mask)
    r = acc.compute()
    w = np.cos(np.deg2rad(lat))
    w = w / w.mean()  # 0.5, 1, 0.5 -> normalised
    num = 2 * w[0] * 1 + 2 * w[1] * 4 + 1 * w[2] * 9
    den = 2 * w[0] + 2 * w[1] + 1 * w[2]
    assert r["model"][0] == pytest.approx(np.sqrt(num / den) * 2.0)
    assert r["persistence"][0] == 0.0


@pytest.mark.slow
def test_train_resume_and_ema(small_cache, tmp_path):
    import lightning  # noqa: F401  (the checkpoint holds Lightning state)

    cfg = train_yaml(tmp_path, small_cache, epochs=1)
    r = run_cli("train", cfg)
    assert "val: latitude-weighted RMSE" in r.stdout and "persistence" in r.stdout
    run = tmp_path / "run"
    for name in ("loss.png", "prediction.png", "summary.json", "logs/metrics.csv",
                 "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    s1 = json.loads((run / "summary.json").read_text())
    steps1 = s1["global_step"]
    assert steps1 == (14 * 4 - 2) // 8  # 54 windows, drop_last
    ck1 = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    # EMA (Lightning WeightAveraging): the checkpoint's state_dict holds the averaged weights,
    # current_model_state the raw ones. The head starts at zero; with decay 0.9 over 6 steps
    # the average lags the raw weights: smaller, non-zero, and different.
    raw = ck1["current_model_state"]["model.head.weight"]
    avg = ck1["state_dict"]["model.head.weight"]
    assert ck1["averaging_state"]["n_averaged"] == steps1
    assert not torch.equal(raw, avg) and avg.abs().sum() > 0
    assert avg.norm() < raw.norm()
    # Resume for one more epoch: the step count continues and optimizer state is restored.
    r2 = run_cli("train", cfg, "--max-epochs", "2", "--resume", "last")
    s2 = json.loads((run / "summary.json").read_text())
    assert s2["global_step"] == 2 * steps1
    ck2 = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    st1 = ck1["optimizer_states"][0]["state"]
    st2 = ck2["optimizer_states"][0]["state"]
    assert int(st2[0]["step"]) == int(st1[0]["step"]) + steps1
    assert "trained 2 epochs" in r2.stdout


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["resident", "resident_sharded", "blocks"])
def test_ddp_two_cpu_processes(small_cache, tmp_path, mode):
    cfg = train_yaml(tmp_path, small_cache, epochs=1, ema=0)
    r = run_cli("train", cfg, "--devices", "2", "--strategy", "ddp", "--data-mode", mode)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    # 54 windows over 2 ranks: 27 each -> 3 full batches of 8 per rank.
    assert s["global_step"] == 3 and s["data_mode"] == mode
    assert "val: latitude-weighted RMSE" in r.stdout


@pytest.mark.parametrize("batch, message", [
    (100000, "batch size 100000 is more than the training split's 54 windows, so no "
             "training step would run; use --batch-size 54"),
    (54, None),
])
def test_a_batch_bigger_than_the_split_is_refused(small_cache, tmp_path, batch, message):
    """Once exit 0 with no step taken, persistence reported as the model's skill."""
    from era5cache.config.trainer import load_train_config
    from era5cache.errors import ConfigError
    from era5cache.train.datamodule import ERA5DataModule

    cfg = load_train_config(train_yaml(tmp_path, small_cache))
    cfg = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(
        update={"batch_size": batch})})
    if message is None:
        assert len(ERA5DataModule(cfg).train_ds) == 54
        return
    with pytest.raises(ConfigError) as info:
        ERA5DataModule(cfg)
    assert str(info.value).startswith(f"{small_cache}: {message}")
    # through the command line: tests/catalogue.py (COMMAND_CASES)
