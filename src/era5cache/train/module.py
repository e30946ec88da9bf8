"""The LightningModule: the RATransformer's training, validation and test steps, its
optimiser, and the skill table (latitude-weighted RMSE against persistence and climatology)."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch

from ..config.model import ModelConfig
from .compiled import StepLoss
from .model import RATransformer, masked_mse
from .running import RunningLoss
from .skill import SkillAccumulator


def fused_adamw(device: torch.device) -> bool:
    """Whether AdamW's fused kernel runs on ``device``: one kernel for all parameters on
    CUDA and, since torch 2.4, on the CPU (17 -> 3.5 ms a step for the 5.5 M parameters of a
    d_model-64 model on 2 cores); the per-parameter loop elsewhere."""
    return device.type in ("cuda", "cpu")


class ForecastModule(L.LightningModule):
    def __init__(self, model_cfg: dict, optim_cfg: dict, loss_scale: str, stats: dict,
                 channels: list[str], lat: list[float], batch_size: int,
                 compile_mode: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        std = np.asarray(stats["std"])
        diff = np.asarray(stats["diff_std"])
        incr = torch.tensor(np.where(np.isfinite(diff) & (diff > 0), diff / std, 1.0),
                            dtype=torch.float32)
        self.model = RATransformer(ModelConfig(**model_cfg), increment_scale=incr)
        self.step_loss = StepLoss(compile_mode)
        self.register_buffer("loss_weight", (1.0 / incr if loss_scale == "increment"
                                             else torch.ones_like(incr)).view(-1, 1, 1))
        self.std = std
        self.channels = channels
        self.lat = np.asarray(lat)
        self._skill: SkillAccumulator | None = None
        self._train_loss = RunningLoss()
        self.results: dict[str, dict] = {}

    @property
    def climatology(self) -> torch.Tensor:
        """Per-point training-period mean, normalised (C, H, W): the model's input offset."""
        return self.model.input_offset

    def forward(self, x):
        return self.model(x)

    def on_fit_start(self):
        """Compiles the training step (when asked) on a batch of zeros of the training
        shape, under the run's precision; a failure falls back to eager, in one line."""
        if self.step_loss.mode is None:
            return
        batch = next(iter(self.trainer.datamodule.train_dataloader()))[:3]
        x, y, mask = (torch.zeros_like(t, device=self.device) for t in batch)
        self.step_loss.check(self.model, (x, y, mask), self.loss_weight,
                             self.trainer.precision_plugin.train_step_context)
        if self.step_loss.fallback and self.trainer.is_global_zero:
            print(f"torch.compile failed ({self.step_loss.fallback}); training eager",
                  flush=True)

    def training_step(self, batch, batch_idx):
        x, y, mask = batch[:3]
        loss = self.step_loss(self.model, x, y, mask, self.loss_weight)
        self._train_loss.add(loss, x.shape[0])
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train_loss_step", self._train_loss.window(), prog_bar=True)
        return loss

    def on_train_epoch_end(self):
        """The epoch's mean training loss (``train_loss_epoch``), averaged over ranks."""
        self.log("train_loss_epoch", self._train_loss.epoch(), sync_dist=True)

    def _eval_step(self, batch, stage):
        x, y, mask = batch[:3]
        pred = self(x)
        loss = masked_mse(pred, y, mask, self.loss_weight)
        self.log(f"{stage}_loss", loss, on_epoch=True, prog_bar=stage == "val",
                 batch_size=x.shape[0], sync_dist=True)
        if self._skill is None:
            self._skill = SkillAccumulator(self.lat, self.std, device=self.device)
        clim = self.climatology.expand_as(y)
        self._skill.update({"model": pred, "persistence": x[:, -1], "climatology": clim},
                           y, mask)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_end(self, stage):
        if self._skill is None:
            return
        if self.trainer.world_size > 1:  # sum the accumulators over ranks
            for t in (*self._skill.err.values(), self._skill.den):
                t.copy_(self.trainer.strategy.reduce(t, reduce_op="sum"))
        rmse = self._skill.compute()
        self._skill = None
        self.results[stage] = {k: dict(zip(self.channels, map(float, v), strict=True))
                               for k, v in rmse.items()}
        for i, ch in enumerate(self.channels):
            self.log(f"{stage}_rmse/{ch}", float(rmse["model"][i]), sync_dist=False)
            self.log(f"{stage}_persistence/{ch}", float(rmse["persistence"][i]),
                     sync_dist=False)

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def on_test_epoch_end(self):
        self._eval_end("test")

    def on_train_epoch_start(self):
        dm = self.trainer.datamodule
        if dm is not None and dm.mode == "resident":  # DataLoaders: Lightning sets the epoch
            dm.train_dataloader().set_epoch(self.current_epoch)

    def configure_optimizers(self):
        o = self.hparams.optim_cfg
        lr = o["lr"]
        if o["lr_scaling"] == "sqrt":
            lr *= math.sqrt(self.hparams.batch_size / o["base_batch_size"])
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=o["weight_decay"],
                                fused=fused_adamw(self.device))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=o["lr_decay"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

