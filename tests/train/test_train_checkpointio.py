"""Checkpoints written in the background: the same file as a direct save, the tensors as they
were at the call, removals after the write, errors raised, no temporary file left."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from era5cache.train.checkpointio import BackgroundCheckpointIO


def _checkpoint():
    torch.manual_seed(0)
    return {"state_dict": {"w": torch.randn(512, 1024), "b": torch.randn(1024)},
            "epoch": 3, "optimizer_states": [{"state": {0: {"exp_avg": torch.randn(64)}}}]}


def test_background_save_equals_a_direct_save_at_the_time_of_the_call(tmp_path):
    ck = _checkpoint()
    want = {k: v.clone() for k, v in ck["state_dict"].items()}
    TorchCheckpointIO().save_checkpoint(ck, tmp_path / "direct.ckpt")
    io = BackgroundCheckpointIO()
    io.save_checkpoint(ck, tmp_path / "sub" / "bg.ckpt")
    assert (tmp_path / "sub").is_dir()  # made at the call: a link to the file may follow
    ck["state_dict"]["w"].add_(1.0)  # training goes on while the file is written
    loaded = io.load_checkpoint(tmp_path / "sub" / "bg.ckpt")  # waits for the write
    direct = torch.load(tmp_path / "direct.ckpt", weights_only=False)
    for k, v in want.items():
        assert torch.equal(loaded["state_dict"][k], v)
        assert torch.equal(direct["state_dict"][k], v)
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["optimizer_states"][0]["state"][0]["exp_avg"],
                       direct["optimizer_states"][0]["state"][0]["exp_avg"])
    io.teardown()
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["bg.ckpt"]  # no .tmp


def test_removal_waits_for_the_write_before_it(tmp_path):
    old = tmp_path / "best-epoch=000.ckpt"
    old.write_bytes(b"old best")
    io = BackgroundCheckpointIO()
    io.save_checkpoint(_checkpoint(), tmp_path / "best-epoch=001.ckpt")
    io.remove_checkpoint(old)
    io.teardown()
    assert not old.exists()
    assert torch.load(tmp_path / "best-epoch=001.ckpt", weights_only=False)["epoch"] == 3


def test_a_failed_background_write_is_raised_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"previous")
    (tmp_path / "last.ckpt.tmp").mkdir()  # the writer cannot open its temporary file
    io = BackgroundCheckpointIO()
    io.save_checkpoint(_checkpoint(), path)  # returns at once
    with pytest.raises(OSError):
        io.teardown()
    assert path.read_bytes() == b"previous"
