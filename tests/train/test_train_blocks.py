"""The trainer's data modes: what ``auto`` chooses and says, and training with the
BlockShuffleSampler reaching the full shuffle's validation skill on the sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli, train_yaml

from era5cache import CachedERA5Dataset


def test_auto_choice_follows_memory(small_cache, monkeypatch):
    from era5cache.train import datamodule  # Lightning: imported where used (6 s)
    from era5cache.train.datamodule import choose_data_mode

    ds = CachedERA5Dataset(small_cache, split="train", return_mask=True)
    frames = int(ds.starts.max() - ds.starts.min()) + ds.seq_len + ds.lead
    need = frames * (2 * 80 * 180 * 4 + 1 * 80 * 180)  # float32 frames + sst's mask
    on_disk = frames * ds.step_bytes

    def with_memory(n):
        monkeypatch.setattr(datamodule, "available_memory", lambda: int(n))
        return choose_data_mode(ds, "cpu", 1, torch.float32)

    mode, why = with_memory(4 * need + 1)
    assert mode == "resident" and "fits 25% of the" in why
    mode, why = with_memory(4 * need - 1)
    assert mode == "loader" and "full shuffle" in why
    mode, why = with_memory(2 * on_disk - 1)
    assert mode == "blocks" and "BlockShuffleSampler" in why
    # two CPU ranks: the whole split twice does not fit, the two halves do
    monkeypatch.setattr(datamodule, "available_memory", lambda: int(4 * need * 1.5))
    assert choose_data_mode(ds, "cpu", 2, torch.float32)[0] == "resident_sharded"
    # 16-bit frames take half: fits where float32 did not
    monkeypatch.setattr(datamodule, "available_memory", lambda: int(4 * need * 0.7))
    assert choose_data_mode(ds, "cpu", 1, torch.float32)[0] == "loader"
    assert choose_data_mode(ds, "cpu", 1, torch.bfloat16)[0] == "resident"


@pytest.mark.slow
def test_blocks_reach_the_full_shuffle_skill(small_cache, tmp_path):
    """The sample's train split (54 windows of 115 kB steps) in blocks of 4 steps and pools
    of 16: 14 blocks, 4 to a pool. The same model, seed and steps as a full shuffle."""
    skill = {}
    for mode in ("loader", "blocks"):
        (tmp_path / mode).mkdir()
        cfg = train_yaml(tmp_path / mode, small_cache, epochs=8, ema=0,
                         trainer=", block_bytes: 460800, pool_bytes: 1843200")
        r = run_cli("train", cfg, "--data-mode", mode)
        s = json.loads((tmp_path / mode / "run" / "summary.json").read_text())
        assert s["data_mode"] == mode and f"data: {mode} (set in the recipe)" in r.stdout
        assert s["global_step"] == 8 * (54 // 8)
        skill[mode] = s["skill"]["val"]
    print(json.dumps(skill))
    # t2m (diurnal cycle, travelling waves) is learnt: both halve persistence's error; sst
    # hardly moves in 6 h, where persistence is hard to beat in 48 steps
    t2m = skill["loader"]["persistence"]["t2m"]
    assert skill["loader"]["model"]["t2m"] < 0.6 * t2m
    for ch in ("sst", "t2m"):
        full, blocks = skill["loader"]["model"][ch], skill["blocks"]["model"][ch]
        persistence = skill["loader"]["persistence"][ch]
        # within 5% of the full shuffle's error, measured against persistence's
        assert abs(blocks - full) <= 0.05 * persistence, (ch, skill)
    np.testing.assert_allclose(skill["blocks"]["persistence"]["t2m"],
                               skill["loader"]["persistence"]["t2m"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["resident", "blocks"])
def test_training_on_a_bfloat16_cache_on_the_cpu(tmp_path, mode):
    """Resident frames stay bfloat16 (half the memory) while the float32 model gets float32
    batches; the loader path decodes the same values."""
    from era5cache.sample.synthetic import write_synthetic_cache

    cache = write_synthetic_cache(tmp_path / "c", 120, dtype="bfloat16")
    cfg = train_yaml(tmp_path, cache, epochs=1, ema=0)
    r = run_cli("train", cfg, "--data-mode", mode)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["data_mode"] == mode and s["precision"] == "32-true"
    assert s["global_step"] == (int(120 * 0.8) - 2) // 8
    assert "val: latitude-weighted RMSE" in r.stdout
