"""The ``era5cache train`` loop's cost per step beyond the step itself: the loop the command
runs (Lightning with the EMA callback, gradient clipping, logging, checkpoint callbacks and
the feed monitor: :func:`era5cache.train.run.build`) against a bare loop of the same steps
(forward, masked loss, backward, clipping, AdamW) on the same module and batches, both on a
tiny model (d_model 64, one layer) where the framework's cost is not hidden by the model's.

``overhead_ms_per_step``: the median step of the command's loop minus the bare loop's
(issue 24: target <= 1 ms on a CPU). Steps are timed end to end (from one step's end to the
next's), so the host work between steps counts; medians leave out the epoch boundaries
(validation, checkpoints), timed separately by the command's own monitor.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

TINY = {"d_model": 64, "num_heads": 4, "num_layers": 1, "dim_feedforward": 128,
        "recursion_depth": 2, "sh_degree": 2}


class StepClock(Callback):
    """The time at the end of every training step."""

    def __init__(self):
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.ends.append(time.perf_counter())


def _median_ms(ends: list[float], warm: int) -> float:
    return float(np.median(np.diff(ends[warm:]))) * 1e3


def command_loop(data: str, steps: int, warm: int, batch_size: int, out: Path):
    """(median ms a step of the command's loop, its module, its datamodule)."""
    from ..config.trainer import TrainConfig
    from ..train.run import build

    cfg = TrainConfig.model_validate({
        "data": data, "model": TINY,
        "trainer": {"batch_size": batch_size, "out": str(out), "num_workers": 0,
                    "data_mode": "resident", "devices": 1, "max_epochs": 1}})
    dm, module, trainer, _ = build(cfg)
    per_epoch = len(dm.splits["train"]) // batch_size
    trainer.fit_loop.max_epochs = max(1, -(-(steps + warm) // max(per_epoch, 1)))
    clock = StepClock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=dm)
    return _median_ms(clock.ends, warm), module, dm


def bare_loop(module, dm, steps: int, warm: int, clip: float) -> float:
    """Median ms a step of the same steps without the framework."""
    from ..train.model import masked_mse

    model = module.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loader = dm.train_dataloader()
    ends, it = [], iter(loader)
    for _ in range(steps + warm):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        x, y, mask = batch[:3]
        loss = masked_mse(model(x), y, mask, module.loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        ends.append(time.perf_counter())
    return _median_ms(ends, warm)


def overhead(data: str, steps: int = 200, warm: int = 20, batch_size: int = 8) -> dict:
    """The command's loop and the bare loop on ``data`` (a cache), ms a step, and their
    difference (``overhead_ms_per_step``)."""
    with tempfile.TemporaryDirectory() as tmp:
        command, module, dm = command_loop(data, steps, warm, batch_size, Path(tmp))
        bare = bare_loop(module, dm, steps, warm, clip=1.0)
    return {"command_ms_per_step": command, "bare_ms_per_step": bare,
            "overhead_ms_per_step": command - bare, "steps": steps, "batch_size": batch_size,
            "model": TINY}
