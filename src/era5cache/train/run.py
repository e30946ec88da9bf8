"""Lightning training of the RATransformer on ``CachedERA5Dataset``.

``train(cfg)`` builds the data (GPU-resident when the split fits the device, else a DataLoader
with workers), the model, the Lightning ``Trainer`` (precision by device, gradient clipping
in the framework, EMA of the weights (:class:`.ema.EMA`), checkpoints last + best, CSV
logs), trains, and reports latitude-weighted RMSE per channel against persistence and
climatology on the validation and test windows.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from ..config.trainer import TrainConfig
from .batchsize import resolve_batch_size
from .checkpoint import check_resume
from .checkpointio import BackgroundCheckpointIO
from .datamodule import ERA5DataModule, device_kind
from .ema import EMA
from .module import ForecastModule
from .monitor import FeedMonitor
from .noprofiler import NoProfiler
from .progress import TimedProgressBar


def _precision(cfg: TrainConfig) -> str:
    p = cfg.trainer.precision
    if p != "auto":
        return p
    return "bf16-mixed" if device_kind(cfg) == "cuda" else "32-true"


def compile_mode(cfg: TrainConfig) -> str | None:
    """``torch.compile``'s mode for the training step, None for eager (``compile: auto``:
    compiled on CUDA only)."""
    c = cfg.trainer.compile
    on = c is True or (c == "auto" and device_kind(cfg) == "cuda")
    return cfg.trainer.compile_mode if on else None


def build(cfg: TrainConfig, resume: str | None = None):
    """(datamodule, module, trainer, monitor) for ``cfg``; ``resume``: a checkpoint to
    continue from, checked against the module before the trainer exists
    (:func:`.checkpoint.check_resume`)."""
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    cfg, why = resolve_batch_size(cfg, device_kind(cfg) == "cuda")
    if why and rank_zero_only.rank == 0:
        print(why, flush=True)
    dm = ERA5DataModule(cfg)
    ds = dm.train_ds
    raw_stats = {k: v.tolist() for k, v in ds.stats.items()}
    channels, height, width = ds.frame_shape
    mcfg = asdict(cfg.model) | {"channels": channels, "height": height, "width": width}
    module = ForecastModule(mcfg, cfg.optim.model_dump(), cfg.trainer.loss_scale, raw_stats,
                            ds.channels, ds.lat.tolist(), cfg.trainer.batch_size,
                            compile_mode(cfg))
    # The model sees anomalies from the training climatology, which is also the
    # climatology baseline of the skill table (ForecastModule.climatology).
    module.model.input_offset.copy_(dm.climatology())
    if resume:
        check_resume(resume, module)
    if rank_zero_only.rank == 0:
        print(f"data: {dm.mode} ({dm.mode_reason})", flush=True)
    out = Path(cfg.trainer.out)
    has_val = len(dm.splits["val"]) > 0
    monitor = FeedMonitor()
    local = "://" not in str(out)
    # A checkpoint of the default model is 840 MB: last.ckpt is a link to the best one when
    # both are of the same epoch, and files are written in the background (checkpointio.py)
    callbacks = [TimedProgressBar(), ModelCheckpoint(
        dirpath=out / "checkpoints", filename="best-{epoch:03d}",
        save_last="link" if local else True, enable_version_counter=False,
        monitor="val_loss" if has_val else "train_loss_epoch", mode="min", save_top_k=1)]
    if cfg.optim.ema_decay > 0:
        callbacks.append(EMA(cfg.optim.ema_decay))
    callbacks.append(monitor)  # last: a step's time includes the other callbacks' work
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs, max_time=cfg.trainer.max_time,
        accelerator="gpu" if device_kind(cfg) == "cuda" else "cpu",
        devices=cfg.trainer.devices if cfg.trainer.devices != "cpu" else 1,
        strategy=cfg.trainer.strategy, precision=_precision(cfg),
        gradient_clip_val=cfg.optim.grad_clip or None,
        accumulate_grad_batches=cfg.trainer.accumulate, callbacks=callbacks,
        logger=CSVLogger(out, name="logs", version=""),
        log_every_n_steps=cfg.trainer.log_every_n_steps, num_sanity_val_steps=0,
        check_val_every_n_epoch=cfg.trainer.val_every_n_epochs,
        deterministic=False, enable_model_summary=False, default_root_dir=out,
        profiler=NoProfiler(),
        use_distributed_sampler=False,  # the datamodule shares the data out itself
        plugins=[BackgroundCheckpointIO()] if local else None)
    return dm, module, trainer, monitor


def train(cfg: TrainConfig, resume: str | None = None) -> dict:
    """Train, evaluate, write plots and ``summary.json``; returns the summary."""
    dm, module, trainer, monitor = build(cfg, resume)
    trainer.fit(module, datamodule=dm, ckpt_path=resume)
    if len(dm.splits["val"]):
        trainer.validate(module, datamodule=dm, verbose=False)
    if len(dm.splits["test"]):
        trainer.test(module, datamodule=dm, verbose=False)
    summary = {"config": dm.cfg.to_json(), "data_mode": dm.mode,
               "data_mode_reason": dm.mode_reason, "precision": _precision(cfg),
               "global_step": trainer.global_step, "epochs": trainer.current_epoch,
               "skill": module.results, "throughput": monitor.history,
               "throughput_summary": monitor.summary(),
               "throughput_sustained": monitor.sustained(),
               "compile": module.step_loss.record()}
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

