"""The ``era5cache train`` loop's cost per step beyond the step itself.

The loop the command runs (Lightning with the EMA callback, gradient clipping, logging,
checkpoint callbacks and the feed monitor: :func:`era5cache.train.run.build`) against a bare
loop of the same steps (next batch, forward, masked loss, backward, clipping, fused AdamW,
the weights' moving average as one foreach lerp) on a copy of the same model and the same
resident batches, both on a tiny model (d_model 64, one layer) where the framework's cost
is not hidden by the model's.

The two loops run interleaved in one process: after every ``block`` steps of the command's
loop a callback runs ``block`` bare steps. These machines are shared, and two runs of the
same loop minutes apart differ by several ms a step, more than the target; interleaved
blocks see the same machine. Each step is timed from the previous step's end, so the host
work between steps counts; the first step of each block and the steps across an epoch's
end (validation, checkpoints) are left out, and the medians compared.

``overhead_ms_per_step``: the command's median step minus the bare loop's (issue 24:
<= 1 ms on a CPU).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from .common import cycle
from .plainstep import plain_step

TINY = {"d_model": 64, "num_heads": 4, "num_layers": 1, "dim_feedforward": 128,
        "recursion_depth": 2, "sh_degree": 2}


class BareLoop:
    """The training step without a framework (:func:`.plainstep.plain_step` with clipping
    and the moving average), on its own copy of ``model``."""

    def __init__(self, model, loss_weight, batches, clip: float = 1.0, decay: float = 0.999,
                 amp: torch.dtype | None = None):
        self.model = copy.deepcopy(model).train()
        self.device = next(self.model.parameters()).device
        self._step = plain_step(self.model, self.device, amp, weight=loss_weight, clip=clip,
                                ema_decay=decay)
        self.batches = cycle(batches)

    def step(self) -> None:
        self._step(next(self.batches))

    def timed(self, n: int) -> list[float]:
        """Seconds of each of ``n`` steps, each from the previous one's end."""
        out, last = [], time.perf_counter()
        for _ in range(n):
            self.step()
            _sync(self.device)
            now = time.perf_counter()
            out.append(now - last)
            last = now
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Interleaved(Callback):
    """Times the command's steps and, after every ``block`` of them, ``block`` bare steps.

    ``command`` and ``bare`` hold blocks of step seconds; a command step is timed from the
    previous step's end (or the bare block's end) to the end of this callback's
    ``on_train_batch_end`` (the last callback: the EMA and the others ran before it).
    ``pairs`` holds each bare block with the command block that ran just before it.
    """

    def __init__(self, make_bare, block: int, blocks: int):
        self.make_bare, self.block, self.blocks = make_bare, block, blocks
        self.command: list[list[float]] = [[]]
        self.bare: list[list[float]] = []
        self.pairs: list[tuple[list[float], list[float]]] = []
        self._bare: BareLoop | None = None
        self._last = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self.command.append([])  # a step across the epoch's start is not kept
        self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        _sync(pl_module.device)
        now = time.perf_counter()
        self.command[-1].append(now - self._last)
        if len(self.command[-1]) >= self.block:
            if self._bare is None:
                self._bare = self.make_bare(pl_module)
            self.bare.append(self._bare.timed(self.block))
            self.pairs.append((self.command[-1], self.bare[-1]))
            self.command.append([])
            if len(self.bare) >= self.blocks:
                trainer.should_stop = True
            now = time.perf_counter()
        self._last = now


def _interior_ms(blocks: list[list[float]], skip_blocks: int) -> np.ndarray:
    """Step times of the full blocks after ``skip_blocks``, each without its first step."""
    full = [b[1:] for b in blocks if len(b) > 1][skip_blocks:]
    return np.concatenate(full) * 1e3 if full else np.array([np.nan])


def overhead_interval_ms(pairs: list[tuple[list[float], list[float]]], draws: int = 1000,
                 seed: int = 0) -> list[float]:
    """The 2.5 and 97.5 percentiles of the overhead (median command step minus median bare
    step, each block without its first step) over ``draws`` resamplings of the block pairs
    with replacement: how far this machine's drift moves the figure."""
    rng = np.random.default_rng(seed)
    inner = [(np.asarray(c[1:]), np.asarray(b[1:])) for c, b in pairs]
    out = []
    for _ in range(draws):
        pick = rng.integers(0, len(inner), len(inner))
        c = np.concatenate([inner[i][0] for i in pick])
        b = np.concatenate([inner[i][1] for i in pick])
        out.append(np.median(c) - np.median(b))
    return [float(v) * 1e3 for v in np.percentile(out, [2.5, 97.5])]


def overhead(data: str, steps: int = 200, warm: int = 20, batch_size: int = 8,
             block: int = 10) -> dict:
    """The command's loop and the bare loop on ``data`` (a cache), interleaved: median ms a
    step of each over ``steps`` steps after ``warm``, their difference
    (``overhead_ms_per_step``) and its 95% interval over resampled block pairs
    (``overhead_ms_interval``)."""
    from ..config.trainer import TrainConfig
    from ..train.run import build

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig.model_validate({
            "data": data, "model": TINY,
            "trainer": {"batch_size": batch_size, "out": str(Path(tmp)), "num_workers": 0,
                        "data_mode": "resident", "devices": 1, "max_epochs": 10_000,
                        "compile": False}})  # both loops eager
        dm, module, trainer, _ = build(cfg)
        amp = torch.bfloat16 if str(trainer.precision).startswith("bf16") else None

        def make_bare(pl_module):
            return BareLoop(pl_module.model, pl_module.loss_weight, dm.train_dataloader(),
                            cfg.optim.grad_clip, cfg.optim.ema_decay, amp)

        skip = -(-warm // block)
        clock = Interleaved(make_bare, block, skip + -(-steps // block))
        trainer.callbacks.append(clock)
        trainer.fit(module, datamodule=dm)
    command, bare = (_interior_ms(b, skip) for b in (clock.command[1:], clock.bare))
    return {"command_ms_per_step": float(np.median(command)),
            "bare_ms_per_step": float(np.median(bare)),
            "overhead_ms_per_step": float(np.median(command) - np.median(bare)),
            "overhead_ms_interval": overhead_interval_ms(clock.pairs[skip:]),
            "steps": int(bare.size), "block": block, "batch_size": batch_size, "model": TINY}
