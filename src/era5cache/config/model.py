"""The RATransformer's shape (docs/contracts.md section 8): a plain frozen dataclass, so that the
model loads without pydantic; the trainer's recipe validates it (:mod:`.trainer`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """``channels``, ``height`` and ``width`` come from the cache; the rest from the recipe."""

    __pydantic_config__ = {"extra": "forbid"}  # read by pydantic

    channels: int = 3
    height: int = 80
    width: int = 180
    seq_len: int = 2
    d_model: int = 512
    num_heads: int = 8
    num_layers: int = 3
    dim_feedforward: int = 1024
    dropout: float = 0.1
    recursion_depth: int = 2
    sh_degree: int = 4
    residual: bool = True

    def __post_init__(self) -> None:
        for name in ("channels", "height", "width", "seq_len", "d_model", "num_heads",
                     "num_layers", "dim_feedforward", "recursion_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.sh_degree < 0:
            raise ValueError(f"sh_degree must be >= 0, not {self.sh_degree}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of num_heads "
                             f"{self.num_heads}")
