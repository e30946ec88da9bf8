"""Lightning training of the RATransformer on ``CachedERA5Dataset``.

``run(cfg)`` builds the data (GPU-resident when the split fits the device, else a DataLoader
with workers), the model, the Lightning ``Trainer`` (precision by device, gradient clipping
in the framework, EMA of the weights through ``WeightAveraging``, checkpoints last + best,
CSV logs), trains, and reports latitude-weighted RMSE per channel against persistence and
climatology on the validation and test windows.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from lightning.pytorch.loggers import CSVLogger
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from .dataset import CachedERA5Dataset
from .model import ModelConfig, RATransformer, masked_mse
from .monitor import FeedMonitor
from .skill import SkillAccumulator
from .train_config import TrainConfig


def _device_kind(cfg: TrainConfig) -> str:
    return "cuda" if torch.cuda.is_available() and cfg.trainer.devices != "cpu" else "cpu"


class ERA5DataModule(L.LightningDataModule):
    """Train/val/test windows; resident on the device or through a DataLoader."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        kw = dict(channels=list(cfg.channels) if cfg.channels else None,
                  seq_len=cfg.model.seq_len, lead=cfg.lead, return_mask=True)
        self.splits = {s: CachedERA5Dataset(cfg.data, split=s, **kw)
                       for s in ("train", "val", "test")}
        self.train_ds = self.splits["train"]
        if len(self.train_ds) == 0:
            raise ValueError(f"{cfg.data}: no training windows (period too short?)")
        self.mode = self._choose_mode()
        self._iterables: dict[str, object] = {}

    def _choose_mode(self) -> str:
        mode = self.cfg.trainer.data_mode
        if mode != "auto":
            return mode
        ds = self.train_ds
        frames = int(ds.starts.max() - ds.starts.min()) + ds.seq_len + ds.lead
        need = frames * len(ds.channels) * ds._shape[2] * ds._shape[3] * 5  # data + mask
        if _device_kind(self.cfg) == "cuda":
            free, _ = torch.cuda.mem_get_info()
            return "resident" if need < 0.4 * free else "loader"
        import psutil

        return "resident" if need < 0.25 * psutil.virtual_memory().available else "loader"

    def climatology(self) -> torch.Tensor:
        """Per-point training-period mean, normalised, NaN -> 0: (C, H, W)."""
        ds = self.train_ds
        idx = np.unique(np.concatenate([ds.starts + k for k in range(ds.seq_len + ds.lead)]))
        s = np.zeros((len(ds.channels),) + ds._shape[2:])
        n = np.zeros_like(s)
        for a in range(0, idx.size, 256):
            block = np.asarray(ds.data[idx[a:a + 256]])[:, ds._ch].astype(np.float64)
            ok = ~np.isnan(block)
            s += np.where(ok, block, 0).sum(0)
            n += ok.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
        norm = (mean - ds.stats["mean"][:, None, None]) / ds.stats["std"][:, None, None]
        return torch.tensor(np.nan_to_num(norm), dtype=torch.float32)

    def _iterable(self, split: str, train: bool):
        ds = self.splits[split]
        if len(ds) == 0:
            return []
        t = self.cfg.trainer
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        if self.mode == "resident":
            device = self.trainer.strategy.root_device if self.trainer else "cpu"
            dtype = torch.bfloat16 if (str(device).startswith("cuda")
                                       and "bf16" in str(self.trainer.precision)) \
                else torch.float32
            key = f"{split}-{rank}"
            if key not in self._iterables:
                self._iterables[key] = ds.to_device(
                    device, dtype=dtype, batch_size=t.batch_size, shuffle=train,
                    drop_last=train, seed=t.seed, rank=rank, world_size=world)
            return self._iterables[key]
        workers = (min(8, os.cpu_count() or 1) if t.num_workers == "auto"
                   else int(t.num_workers))
        sampler = None
        if world > 1:
            sampler = torch.utils.data.DistributedSampler(ds, num_replicas=world, rank=rank,
                                                          shuffle=train, seed=t.seed)
        return DataLoader(
            ds, batch_size=t.batch_size, shuffle=train and sampler is None, sampler=sampler,
            drop_last=train, num_workers=workers, collate_fn=CachedERA5Dataset.collate,
            pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
            prefetch_factor=4 if workers else None,
            generator=torch.Generator().manual_seed(t.seed))

    def train_dataloader(self):
        return self._iterable("train", True)

    def val_dataloader(self):
        return self._iterable("val", False)

    def test_dataloader(self):
        return self._iterable("test", False)


class ForecastModule(L.LightningModule):
    def __init__(self, model_cfg: dict, optim_cfg: dict, loss_scale: str, stats: dict,
                 channels: list[str], lat: list[float], batch_size: int,
                 compile: bool = False):
        super().__init__()
        self.save_hyperparameters()
        std = np.asarray(stats["std"])
        diff = np.asarray(stats["diff_std"])
        incr = torch.tensor(np.where(np.isfinite(diff) & (diff > 0), diff / std, 1.0),
                            dtype=torch.float32)
        self.model = RATransformer(ModelConfig(**model_cfg), increment_scale=incr)
        self.step_model = torch.compile(self.model) if compile else self.model
        self.register_buffer("loss_weight", (1.0 / incr if loss_scale == "increment"
                                             else torch.ones_like(incr)).view(-1, 1, 1))
        self.std = std
        self.channels = channels
        self.lat = np.asarray(lat)
        self._skill: SkillAccumulator | None = None
        self.results: dict[str, dict] = {}

    @property
    def climatology(self) -> torch.Tensor:
        """Per-point training-period mean, normalised (C, H, W): the model's input offset."""
        return self.model.input_offset

    def forward(self, x):
        return self.step_model(x)

    def training_step(self, batch, batch_idx):
        x, y, mask = batch[:3]
        loss = masked_mse(self(x), y, mask, self.loss_weight)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=x.shape[0], sync_dist=True)
        return loss

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
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=o["weight_decay"])
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=o["lr_decay"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _precision(cfg: TrainConfig) -> str:
    p = cfg.trainer.precision
    if p != "auto":
        return p
    return "bf16-mixed" if _device_kind(cfg) == "cuda" else "32-true"


def build(cfg: TrainConfig):
    """(datamodule, module, trainer, monitor) for ``cfg``."""
    L.seed_everything(cfg.trainer.seed, workers=True)
    dm = ERA5DataModule(cfg)
    ds = dm.train_ds
    raw_stats = {k: v.tolist() for k, v in ds.stats.items()}
    mcfg = asdict(cfg.model) | {"channels": len(ds.channels), "height": ds._shape[2],
                                "width": ds._shape[3]}
    module = ForecastModule(mcfg, asdict(cfg.optim), cfg.trainer.loss_scale, raw_stats,
                            ds.channels, ds.lat.tolist(), cfg.trainer.batch_size,
                            cfg.trainer.compile)
    # The model sees anomalies from the training climatology, which is also the
    # climatology baseline of the skill table (ForecastModule.climatology).
    module.model.input_offset.copy_(dm.climatology())
    out = Path(cfg.trainer.out)
    has_val = len(dm.splits["val"]) > 0
    monitor = FeedMonitor()
    callbacks = [monitor, ModelCheckpoint(
        dirpath=out / "checkpoints", filename="best-{epoch:03d}", save_last=True,
        monitor="val_loss" if has_val else "train_loss_epoch", mode="min", save_top_k=1)]
    if cfg.optim.ema_decay > 0:
        callbacks.append(WeightAveraging(multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay)))
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs, max_time=cfg.trainer.max_time,
        accelerator="gpu" if _device_kind(cfg) == "cuda" else "cpu",
        devices=cfg.trainer.devices if cfg.trainer.devices != "cpu" else 1,
        strategy=cfg.trainer.strategy, precision=_precision(cfg),
        gradient_clip_val=cfg.optim.grad_clip or None,
        accumulate_grad_batches=cfg.trainer.accumulate, callbacks=callbacks,
        logger=CSVLogger(out, name="logs", version=""),
        log_every_n_steps=cfg.trainer.log_every_n_steps, num_sanity_val_steps=0,
        deterministic=False, enable_model_summary=False, default_root_dir=out)
    return dm, module, trainer, monitor


def run(cfg: TrainConfig, resume: str | None = None) -> dict:
    """Train, evaluate, write plots and ``summary.json``; returns the summary."""
    dm, module, trainer, monitor = build(cfg)
    trainer.fit(module, datamodule=dm, ckpt_path=resume)
    if len(dm.splits["val"]):
        trainer.validate(module, datamodule=dm, verbose=False)
    if len(dm.splits["test"]):
        trainer.test(module, datamodule=dm, verbose=False)
    summary = {"config": cfg.to_json(), "data_mode": dm.mode, "precision": _precision(cfg),
               "global_step": trainer.global_step, "epochs": trainer.current_epoch,
               "skill": module.results, "throughput": monitor.history,
               "throughput_summary": monitor.summary()}
    if trainer.is_global_zero:
        out = Path(cfg.trainer.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
        try:
            from .plots import plot_run

            plot_run(out, module, dm)
        except ImportError:
            pass
    return summary


def format_skill(results: dict) -> str:
    lines = []
    for stage, table in results.items():
        chans = list(table["model"])
        lines.append(f"{stage}: latitude-weighted RMSE (physical units)")
        lines.append(f"  {'channel':<9} {'model':>12} {'persistence':>12} {'climatology':>12}"
                     f" {'vs persistence':>15}")
        for ch in chans:
            m, p, c = (table[k][ch] for k in ("model", "persistence", "climatology"))
            lines.append(f"  {ch:<9} {m:12.4g} {p:12.4g} {c:12.4g} {100 * (1 - m / p):+14.1f}%")
    return "\n".join(lines)
