"""The preprocessing recipe (``pipeline/era5_2deg.yaml``) as a typed, frozen model.

Unknown keys, wrong types and values no run can use are one-line :class:`ConfigError`\\ s
naming the file and the key; command-line options override recipe values and are checked
the same way (:func:`with_overrides`).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from ..errors import ConfigError
from ..timeaxis import Periods, TimeSelection
from .loading import read_yaml_mapping, validate, with_changes
from .sample import SampleSpec
from .sizes import DEFAULT_MEMORY_LIMIT, checked_size

Share = Annotated[float, Field(ge=0.0, le=1.0)]
# a Zarr time chunk of one channel is chunk_steps x 80 x 180 float32: at most 2 GiB
MAX_CHUNK_STEPS = 2**31 // (80 * 180 * 4)
_FROZEN = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class DaskSettings(BaseModel):
    """``scheduler``: address of a running scheduler, or None for a LocalCluster of
    ``workers`` processes (None: one per core) with ``memory_limit`` each. ``dashboard``:
    where the local cluster serves Dask's dashboard (``host:port``); None serves none (its
    scheduler's HTTP endpoints then take a free port on 127.0.0.1)."""

    model_config = _FROZEN

    scheduler: str | None = None
    workers: PositiveInt | None = None
    memory_limit: str | int = DEFAULT_MEMORY_LIMIT
    dashboard: str | None = None

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, v):
        return checked_size(v, "2GiB")


class PreprocessConfig(BaseModel):
    """Everything the preprocessing job needs.

    ``variables``: channel names ('sst', 't2m', 'z500'); None keeps every variable of the
    inputs, one channel per pressure level. ``valid_share``: per-channel minimum valid share of
    a target cell's area (see README), ``default`` for the rest. ``chunk_steps``: time steps
    per Zarr chunk (and per unit of work), at most :data:`MAX_CHUNK_STEPS` (a 2 GiB chunk).
    ``member``: which member of an ensemble input (an index from 0, or ``mean``; None
    refuses ensembles). ``dtype``: how the HDF5 cache stores
    values (``float32`` physical; ``float16``/``bfloat16`` normalised, half the bytes; see
    :mod:`era5cache.format.encoding`). ``source``: the recipe file.
    """

    model_config = _FROZEN

    inputs: tuple[str, ...] = ()
    output: str = "data/cache"
    variables: tuple[str, ...] | None = None
    valid_share: dict[str, Share] = Field(default_factory=lambda: {"default": 0.5})
    chunk_steps: Annotated[int, Field(gt=0, le=MAX_CHUNK_STEPS)] = 120
    periods: Periods = Field(default_factory=Periods)
    dask: DaskSettings = Field(default_factory=DaskSettings)
    hash_inputs: bool = True
    all_nan_steps: Literal["fail", "skip"] = "fail"
    member: NonNegativeInt | Literal["mean"] | None = None
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    sample: SampleSpec | None = None
    start: str | None = None
    end: str | None = None
    step: str | None = None
    storage_options: dict[str, Any] | None = None
    source: str | None = None

    @field_validator("variables")
    @classmethod
    def _some(cls, v):
        if v is not None and not v:
            raise ValueError("no channel named; give some (e.g. sst,t2m,z500) or leave it out "
                             "for every variable of the inputs")
        return v

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return (v,) if isinstance(v, str) else (v or ())

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso(cls, v):
        """YAML reads ``2020-01-01`` as a date: its ISO string."""
        return v.isoformat() if isinstance(v, date | datetime) else v

    @field_validator("valid_share", mode="before")
    @classmethod
    def _share_or_table(cls, v):
        return {"default": v} if isinstance(v, int | float) and not isinstance(v, bool) else v

    @field_validator("periods", mode="before")
    @classmethod
    def _periods(cls, v):
        return Periods.from_json(v)

    @model_validator(mode="after")
    def _time_selection(self):
        TimeSelection.parse(self.start, self.end, self.step)  # ValueError names the key
        return self

    @property
    def time(self) -> TimeSelection | None:
        """The time selection (:class:`era5cache.read.timeselect.TimeSelection`)."""
        return TimeSelection.parse(self.start, self.end, self.step)

    @model_validator(mode="after")
    def _shares_name_channels(self):
        if self.variables is not None:
            unknown = set(self.valid_share) - set(self.variables) - {"default"}
            if unknown:
                raise ValueError(f"valid_share names {sorted(unknown)}, which are not among "
                                 f"the variables {list(self.variables)}")
        return self

    def output_settings(self) -> dict:
        """The settings that decide the bytes of the outputs (not where or how fast)."""
        out = {"variables": None if self.variables is None else list(self.variables),
               "valid_share": dict(self.valid_share), "chunk_steps": self.chunk_steps,
               "periods": self.periods.to_json(), "all_nan_steps": self.all_nan_steps}
        if self.member is not None:  # absent otherwise: caches made before it stay current
            out["member"] = self.member
        if self.dtype != "float32":  # likewise
            out["dtype"] = self.dtype
        if self.step is not None:  # likewise; start and end select inputs (job_fingerprint)
            out["step"] = self.time.to_json()["step"]
        return out

    def threshold(self, channel: str) -> float:
        table = self.valid_share
        return float(table.get(channel, table.get("default", 0.5)))

    def to_json(self) -> dict:
        d = self.model_dump(mode="json")
        d["periods"] = self.periods.to_json()
        return d


def load_preprocess_config(path: str | Path | None) -> PreprocessConfig:
    """Read a recipe; ``None`` gives the built-in defaults."""
    if path is None:
        return PreprocessConfig()
    path = Path(path)
    data = read_yaml_mapping(path)
    if "source" in data:
        raise ConfigError(f"{path}: source: unknown key")
    return validate(PreprocessConfig, data | {"source": str(path)}, str(path))


def with_overrides(cfg: PreprocessConfig, **kw: Any) -> PreprocessConfig:
    """``cfg`` with the non-None keyword values replaced (``dask_*`` keys go to ``dask``),
    validated again: a bad value is a :class:`ConfigError` naming the command line."""
    dask = {k[5:]: v for k, v in kw.items() if k.startswith("dask_")}
    top = {k: v for k, v in kw.items() if not k.startswith("dask_")}
    return with_changes(cfg, top | {"dask": dask})
