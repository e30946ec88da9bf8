"""Typed, frozen configuration of the trainer and its YAML loading."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .config import _build, read_yaml_mapping
from .model import ModelConfig


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    lr_decay: float = 0.99  # exponential, per epoch
    lr_scaling: str = "none"  # "sqrt": lr * sqrt(batch_size / base_batch_size)
    base_batch_size: int = 50
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # 0 disables the EMA of the weights


@dataclass(frozen=True)
class TrainerConfig:
    max_epochs: int = 500
    batch_size: int = 50
    accumulate: int = 1
    precision: str = "auto"  # auto: bf16-mixed on CUDA, 32-true on CPU
    compile: bool = False
    devices: int | str = 1
    strategy: str = "auto"
    seed: int = 0
    data_mode: str = "auto"  # auto | resident | loader
    num_workers: int | str = "auto"
    out: str = "runs/ratransformer"
    loss_scale: str = "increment"  # increment: errors / one-step-difference std; std: as stored
    log_every_n_steps: int = 10
    max_time: str | None = None  # "DD:HH:MM:SS"


@dataclass(frozen=True)
class TrainConfig:
    data: str = "data/cache"
    channels: tuple[str, ...] | None = None
    lead: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def load_train_config(path: str | Path | None) -> TrainConfig:
    if path is None:
        return TrainConfig()
    path = Path(path)
    data = read_yaml_mapping(path)
    for key, cls in (("model", ModelConfig), ("optim", OptimConfig), ("trainer", TrainerConfig)):
        if key in data:
            data[key] = _build(cls, data[key] or {}, f"{path}: {key}")
    return _build(TrainConfig, data, str(path))


def override(cfg: TrainConfig, section: str | None = None, **kw) -> TrainConfig:
    """Replace non-None values at the top level or in a section."""
    kw = {k: v for k, v in kw.items() if v is not None}
    if not kw:
        return cfg
    if section is None:
        return dataclasses.replace(cfg, **kw)
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **kw)})
