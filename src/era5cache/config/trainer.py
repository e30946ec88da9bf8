"""The trainer's recipe (``pipeline/ratransformer.yaml``) as a typed, frozen model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from .loading import read_yaml_mapping, validate, with_changes
from .model import ModelConfig
from .sizes import checked_size

_FROZEN = ConfigDict(extra="forbid", frozen=True)
# Lightning's precision names (and "auto": bf16-mixed on CUDA, 32-true on CPU)
PRECISIONS = ("auto", "64-true", "64", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16",
              "16-true", "bf16-true", "transformer-engine", "transformer-engine-float16")


class OptimConfig(BaseModel):
    """AdamW with exponential learning-rate decay per epoch; ``lr_scaling: sqrt`` multiplies
    ``lr`` by sqrt(batch_size / base_batch_size); ``ema_decay`` 0 disables the EMA."""

    model_config = _FROZEN

    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    lr_decay: Annotated[float, Field(gt=0.0, le=1.0)] = 0.99
    lr_scaling: Literal["none", "sqrt"] = "none"
    base_batch_size: PositiveInt = 50
    grad_clip: NonNegativeFloat = 1.0
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.999


class TrainerConfig(BaseModel):
    """How to train. ``data_mode`` (see the README, "Feeding the trainer"): ``resident`` (the
    split on each device), ``resident_sharded`` (each DDP rank holds only its share of the
    split), ``loader`` (a DataLoader with workers, full shuffle), ``blocks`` (a DataLoader
    with :class:`era5cache.BlockShuffleSampler`, for caches bigger than memory) or ``auto``
    (the first that fits, in that order). ``block_bytes``/``pool_bytes``: the sampler's
    sizes (None: by the memory available). ``loss_scale``:
    ``increment`` weighs each channel's error by its one-step-difference std, ``std`` takes
    it as stored. ``max_time``: ``DD:HH:MM:SS``. ``compile``: ``torch.compile`` of the
    training step (model and loss), ``auto`` = on CUDA only; ``compile_mode`` its mode
    (``reduce-overhead`` captures the step in CUDA graphs). ``val_every_n_epochs``: validate
    (and save the checkpoints) every that many epochs: a 45-year cache at batch 4096 is
    ten steps an epoch. ``batch_size: auto``: the largest power of two whose step fits the
    GPU, with ``lr_scaling: sqrt`` (:mod:`era5cache.train.batchsize`)."""

    model_config = _FROZEN

    max_epochs: PositiveInt = 500
    batch_size: PositiveInt | Literal["auto"] = 50
    accumulate: PositiveInt = 1
    precision: str = "auto"
    compile: bool | Literal["auto"] = "auto"
    compile_mode: Literal["default", "reduce-overhead", "max-autotune",
                          "max-autotune-no-cudagraphs"] = "default"
    devices: PositiveInt | Literal["auto", "cpu"] = 1
    strategy: str = "auto"
    seed: int = 0
    data_mode: Literal["auto", "resident", "resident_sharded", "loader", "blocks"] = "auto"
    block_bytes: str | int | None = None
    pool_bytes: str | int | None = None
    num_workers: NonNegativeInt | Literal["auto"] = "auto"
    out: str = "runs/ratransformer"
    loss_scale: Literal["increment", "std"] = "increment"
    log_every_n_steps: PositiveInt = 10
    val_every_n_epochs: PositiveInt = 1
    max_time: str | None = None

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v):
        v = str(v)
        if v not in PRECISIONS:
            raise ValueError(f"precision {v!r} is not one of {', '.join(PRECISIONS)}")
        return v

    @field_validator("block_bytes", "pool_bytes")
    @classmethod
    def _size(cls, v):
        return v if v is None else checked_size(v, "16MiB")

    @field_validator("max_time")
    @classmethod
    def _max_time(cls, v):
        if v is not None and not re.fullmatch(r"\d+:\d\d:\d\d:\d\d", v):
            raise ValueError(f"max_time {v!r} is not DD:HH:MM:SS")
        return v


class TrainConfig(BaseModel):
    """The whole training recipe: the cache (``data``), the channels (None: all), the
    forecast ``lead`` in steps, and the model, optimiser and trainer sections."""

    model_config = _FROZEN

    data: str = "data/cache"
    channels: tuple[str, ...] | None = None
    lead: PositiveInt = 1
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


def load_train_config(path: str | Path | None) -> TrainConfig:
    if path is None:
        return TrainConfig()
    path = Path(path)
    return validate(TrainConfig, read_yaml_mapping(path), str(path))


def override(cfg: TrainConfig, section: str | None = None, **kw: Any) -> TrainConfig:
    """``cfg`` with the non-None values replaced at the top level or in a section, validated
    again (a bad value is a :class:`ConfigError` naming the command line)."""
    return with_changes(cfg, kw if section is None else {section: kw})
