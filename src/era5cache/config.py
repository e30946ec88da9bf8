"""Typed, frozen configuration objects and their YAML loading.

A recipe (``pipeline/era5_2deg.yaml``) maps onto :class:`PreprocessConfig`; unknown keys are
an error that names the file and the key. Command-line options override recipe values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import ConfigError

if TYPE_CHECKING:  # numpy is imported where used: the CLI reads the recipe before heavy imports
    import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Period:
    """Inclusive time range; ``start``/``end`` are ISO strings (UTC)."""

    start: str
    end: str

    def bounds(self) -> tuple[np.datetime64, np.datetime64]:
        import numpy as np

        return np.datetime64(self.start, "s"), np.datetime64(self.end, "s")

    def mask(self, times: np.ndarray) -> np.ndarray:
        import numpy as np

        lo, hi = self.bounds()
        t = np.asarray(times).astype("datetime64[s]")
        return (t >= lo) & (t <= hi)


@dataclass(frozen=True)
class Periods:
    """Train/val/test periods. ``train=None`` means every step (val/test then empty)."""

    train: Period | None = None
    val: Period | None = None
    test: Period | None = None

    def masks(self, times: np.ndarray) -> dict[str, np.ndarray]:
        import numpy as np

        n = np.asarray(times).size
        out = {}
        for name in SPLITS:
            p = getattr(self, name)
            if p is None:
                out[name] = np.ones(n, bool) if name == "train" else np.zeros(n, bool)
            else:
                out[name] = p.mask(times)
        return out

    def to_json(self) -> dict:
        return {k: (None if getattr(self, k) is None else [getattr(self, k).start,
                                                           getattr(self, k).end])
                for k in SPLITS}


@dataclass(frozen=True)
class DaskSettings:
    """``scheduler``: address of a running scheduler, or None for a LocalCluster."""

    scheduler: str | None = None
    workers: int | None = None  # None: one worker process per core
    memory_limit: str = "2GiB"  # per worker


@dataclass(frozen=True)
class SampleSettings:
    """The built-in sample that ``make preprocess`` writes when no input is configured."""

    out: str = "data/sample"
    start: str = "2019-01-01T00"
    end: str = "2020-12-31T18"
    step: str = "6h"
    resolution: float = 1.0
    layout: str = "new"
    variables: tuple[str, ...] = ("sst", "t2m", "z")
    levels: tuple[int, ...] = (500, 850)
    seed: int = 0


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything the preprocessing job needs.

    ``variables``: channel names ('sst', 't2m', 'z500'); None keeps every variable of the
    inputs, one channel per pressure level. ``valid_share``: per-channel minimum valid share of
    a target cell's area (see README), ``default`` for the rest. ``chunk_steps``: time steps
    per Zarr chunk (and per unit of work).
    """

    inputs: tuple[str, ...] = ()
    output: str = "data/cache"
    variables: tuple[str, ...] | None = None
    valid_share: tuple[tuple[str, float], ...] = (("default", 0.5),)
    chunk_steps: int = 120
    periods: Periods = field(default_factory=Periods)
    dask: DaskSettings = field(default_factory=DaskSettings)
    hash_inputs: bool = True
    all_nan_steps: str = "fail"  # or "skip": see era5cache.quality
    sample: SampleSettings | None = None
    source: str | None = None  # the recipe file, for messages

    def output_settings(self) -> dict:
        """The settings that decide the bytes of the outputs (not where or how fast)."""
        return {"variables": None if self.variables is None else list(self.variables),
                "valid_share": dict(self.valid_share), "chunk_steps": self.chunk_steps,
                "periods": self.periods.to_json(), "all_nan_steps": self.all_nan_steps}

    def threshold(self, channel: str) -> float:
        table = dict(self.valid_share)
        return float(table.get(channel, table.get("default", 0.5)))

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["periods"] = self.periods.to_json()
        d["valid_share"] = dict(self.valid_share)
        return d


def _build(cls, data: dict[str, Any], where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(names)}")
    kwargs = {}
    for k, v in data.items():
        if isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _period(value, where: str) -> Period | None:
    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ConfigError(f"{where}: a period is [start, end], got {value!r}")
    try:
        p = Period(str(value[0]), str(value[1]))
        lo, hi = p.bounds()
    except ValueError as exc:
        raise ConfigError(f"{where}: bad date in period {value!r} ({exc})") from exc
    if hi < lo:
        raise ConfigError(f"{where}: period {value!r} ends before it starts")
    return p


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; :class:`ConfigError` naming the file otherwise."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return dict(data)


def load_preprocess_config(path: str | Path | None) -> PreprocessConfig:
    """Read a recipe; ``None`` gives the built-in defaults."""
    if path is None:
        return PreprocessConfig()
    path = Path(path)
    data = read_yaml_mapping(path)
    where = str(path)
    if "inputs" in data:
        inp = data["inputs"]
        data["inputs"] = tuple([inp] if isinstance(inp, str) else (inp or []))
    if "valid_share" in data:
        vs = data["valid_share"]
        if isinstance(vs, (int, float)):
            vs = {"default": vs}
        if not isinstance(vs, dict) or not all(
            isinstance(x, (int, float)) and 0 <= x <= 1 for x in vs.values()
        ):
            raise ConfigError(f"{where}: valid_share maps channels to numbers in [0, 1]")
        data["valid_share"] = tuple((str(k), float(v)) for k, v in vs.items())
    if "periods" in data:
        pd = data["periods"] or {}
        unknown = set(pd) - set(SPLITS)
        if unknown:
            raise ConfigError(f"{where}: unknown period(s) {sorted(unknown)}; use {SPLITS}")
        data["periods"] = Periods(**{k: _period(pd.get(k), f"{where}: periods.{k}")
                                     for k in SPLITS})
    if "dask" in data:
        data["dask"] = _build(DaskSettings, data["dask"] or {}, f"{where}: dask")
    if data.get("sample") is not None:
        data["sample"] = _build(SampleSettings, data["sample"], f"{where}: sample")
    cfg = _build(PreprocessConfig, data, where)
    check(cfg, where)
    return dataclasses.replace(cfg, source=str(path))


def check(cfg: PreprocessConfig, where: str) -> None:
    """:class:`ConfigError` for values no run can use."""
    from .quality import ALL_NAN_POLICIES

    if cfg.chunk_steps < 1:
        raise ConfigError(f"{where}: chunk_steps must be >= 1")
    if cfg.all_nan_steps not in ALL_NAN_POLICIES:
        raise ConfigError(f"{where}: all_nan_steps is {cfg.all_nan_steps!r}; use one of "
                          f"{', '.join(ALL_NAN_POLICIES)}")


def with_overrides(cfg: PreprocessConfig, **kw) -> PreprocessConfig:
    """``cfg`` with the non-None keyword values replaced (dask.* keys use a 'dask_' prefix)."""
    dask_kw = {k[5:]: v for k, v in kw.items() if k.startswith("dask_") and v is not None}
    top = {k: v for k, v in kw.items() if not k.startswith("dask_") and v is not None}
    if dask_kw:
        top["dask"] = dataclasses.replace(cfg.dask, **dask_kw)
    return dataclasses.replace(cfg, **top)
