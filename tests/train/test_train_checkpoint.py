"""``era5cache train --resume`` refuses, in one line and before Lightning starts, a checkpoint
it cannot continue from: missing, empty, truncated, not a checkpoint, not Lightning's, or of
another model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import run_cli, train_yaml

from era5cache.config.trainer import load_train_config
from era5cache.errors import ConfigError
from era5cache.train.checkpoint import check_resume

pytestmark = pytest.mark.slow  # one real training epoch through the command line


@pytest.fixture(scope="module")
def trained(small_cache, tmp_path_factory):
    """(recipe, its last checkpoint) after one epoch."""
    tmp = tmp_path_factory.mktemp("ckpt")
    recipe = train_yaml(tmp, small_cache, epochs=1)
    run_cli("train", recipe)
    return recipe, tmp / "run" / "checkpoints" / "last.ckpt"


def _module(recipe, **model):
    from era5cache.train.run import build  # Lightning: imported where used (6 s)

    cfg = load_train_config(recipe)
    if model:
        cfg = cfg.model_copy(update={"model": dataclasses.replace(cfg.model, **model)})
    return build(cfg)[1]


def test_bad_checkpoints_are_refused_in_one_line(trained, tmp_path):
    recipe, good = trained
    module = _module(recipe)
    check_resume(good, module)  # its own checkpoint passes
    data = good.read_bytes()
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(3)}, plain)
    cases = {
        tmp_path / "missing.ckpt": "no such checkpoint",
        tmp_path / "empty.ckpt": "not a readable PyTorch checkpoint",
        tmp_path / "truncated.ckpt": "not a readable PyTorch checkpoint",
        tmp_path / "text.ckpt": "not a readable PyTorch checkpoint",
        plain: "not a checkpoint of era5cache train",
    }
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.ckpt").write_text("epoch=3\n")
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            check_resume(path, module)
    with pytest.raises(ConfigError, match=r"a checkpoint of another model \(model\..* is "):
        check_resume(good, _module(recipe, d_model=16))
    # through the command line: tests/catalogue.py (COMMAND_CASES)
