"""What the job's phases (:mod:`.phases`) hand each other: one typed state per boundary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.recipe import PreprocessConfig
from ..format.checksum import BackgroundHashes
from ..format.h5 import CacheSpec, CacheStats
from ..format.layout import H5_NAME
from ..format.manifest import Manifest
from ..read.combine import Era5Inputs
from ..read.filecache import FileCache
from ..timeaxis import TimeAxis, analyse
from .plan import StorePlan
from .staging import Staging


@dataclass(frozen=True)
class Planned:
    """After the plan phase: the inputs opened and checked (their files closed again in
    this process), the store planned (``plan``: every step of the Zarr store, lazy), the
    staging folder begun (``resumed``: chunks a killed run finished). ``channels``: the
    cache's channel axis, in order (the recipe's, or the cache an append extends: every
    block is stacked in it, whatever order a store lists its variables in). ``base``: the
    published cache an append extends; ``files``: the readers' file cache, its limits set
    for the workers; ``hashes``: the inputs' checksums, computing in the background."""

    cfg: PreprocessConfig
    out: Path
    channels: tuple[str, ...]
    base: Manifest | None
    inputs: Era5Inputs
    plan: StorePlan
    fingerprint: str
    staging: Staging
    resumed: int
    input_bytes: int
    files: FileCache
    hashes: BackgroundHashes | None

    @property
    def part(self) -> Path:
        """The HDF5 cache while it is written."""
        return self.staging.path / f"{H5_NAME}.part"

    def spec(self, times: np.ndarray | None = None, axis: TimeAxis | None = None) -> CacheSpec:
        """The HDF5 cache's :class:`CacheSpec`: every step of the store, or ``times``
        (described by ``axis``; by default analysed with the store's step)."""
        times = self.plan.times if times is None else times
        axis = axis if axis is not None else analyse(times, self.plan.axis.step)
        attrs = {c: dict(self.plan.dataset[c].attrs) for c in self.channels}
        return CacheSpec(times, axis, self.channels, attrs, self.cfg.periods,
                         self.cfg.chunk_steps)


@dataclass(frozen=True)
class UpToDate:
    """The plan phase found the published cache built from the same inputs and settings."""

    channels: tuple[str, ...]
    n_time: int
    input_bytes: int


@dataclass(frozen=True)
class Stored:
    """After the store phase: every Zarr chunk written and journalled, the HDF5 cache of all
    the store's steps streamed into :attr:`Planned.part` (``stats``), and each channel's
    all-NaN steps (``all_nan``, per store step)."""

    stats: CacheStats
    all_nan: dict[str, np.ndarray]


@dataclass(frozen=True)
class Built:
    """After the build phase: the cache file staged; ``times`` and ``axis`` its steps (the
    store's less the ``skipped`` all-NaN ones), ``stats`` its statistics."""

    times: np.ndarray
    axis: TimeAxis
    stats: CacheStats
    skipped: list[dict]
