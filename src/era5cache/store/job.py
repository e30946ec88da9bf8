"""The preprocessing job: ERA5 files -> conservative 2-degree Zarr + contiguous HDF5 cache.

The job is its named phases (:mod:`.phases`: plan, store, build, record, publish) run in
order under the output folder's lock. The store phase runs on a runner (:mod:`.runners`):
by default a Dask ``LocalCluster`` of worker *processes* (netCDF4/HDF5 are not thread-safe)
or an existing cluster given by address (:mod:`.cluster`); or in this process and thread.
The graph streams over time: each task reads one block of one file
(:mod:`era5cache.read.blocks`) and regrids it; each Zarr time chunk is then written and read
back as its own task (:mod:`.schedule`), and the HDF5 cache is written from those chunks as
they arrive (:mod:`.h5build`). Everything is built in a staging folder inside the output
folder and published at the end (:mod:`.staging`); ``manifest.json`` is written last with
``complete: true``.
"""

from __future__ import annotations

import errno
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..config.recipe import PreprocessConfig
from ..errors import ConfigError, ResourceError
from ..read.filecache import FileCache
from . import phases
from .cluster import BackgroundClient
from .identity import published_base
from .lock import exclusive_writer
from .phases import UNZIP_NAME
from .runners import DaskRunner, InProcessRunner
from .staging import STAGING_NAME, publish
from .state import Built, Planned, UpToDate

Runner = DaskRunner | InProcessRunner


@dataclass(frozen=True)
class JobResult:
    output: Path
    channels: tuple[str, ...]
    n_time: int
    input_bytes: int
    seconds: float
    stages: dict[str, float]
    status: str = "built"  # "built", "appended" or "up to date"
    resumed_chunks: int = 0  # time chunks found finished by a killed run
    reused_chunks: int = 0  # time chunks hard-linked from the published store (append)
    skipped_steps: int = 0  # all-NaN steps left out (policy "skip")
    replaced_steps: int = 0  # steps of the cache replaced by the new inputs (append)
    preliminary_steps: int = 0  # steps still ERA5T


def run(cfg: PreprocessConfig, progress: bool = True, append: bool = False,
        force: bool = False, runner: Runner | None = None) -> JobResult:
    """Run the job and publish the cache into ``cfg.output`` (one writer at a time).

    ``append``: extend the published cache with the inputs (see :mod:`.plan`).
    A run with the same inputs and settings as the published cache does nothing unless
    ``force``. A run killed earlier resumes from its staging folder (:mod:`.staging`).
    ``runner``: where the store phase runs (:mod:`.runners`), closed by the job; by default
    a :class:`DaskRunner` on the cluster :func:`era5cache.store.cluster.dask_client` starts.
    """
    if runner is None:
        runner = DaskRunner(BackgroundClient(cfg), cfg.dask.memory_limit)
    try:
        return _run_exclusive(cfg, progress, append, force, runner)
    finally:
        runner.close()  # a no-op where the job got as far as closing it


def _run_exclusive(cfg: PreprocessConfig, progress: bool, append: bool, force: bool,
                   runner: Runner) -> JobResult:
    out = _output_folder(Path(cfg.output))
    with exclusive_writer(out):
        publish(out)  # a publication that a crash interrupted is finished first
        try:
            return _run_phases(cfg, out, progress, append, force, runner)
        except (OSError, RuntimeError) as exc:  # h5py reports some write errors as RuntimeError
            if not _disk_full(exc):
                raise
            for part in (out / STAGING_NAME).glob("*.part"):
                part.unlink(missing_ok=True)
            reason = getattr(exc, "strerror", None) or _disk_full_reason(str(exc))
            where = getattr(exc, "filename", None) or out
            raise ResourceError(
                f"{where}: out of disk space while writing the new cache ({reason}); the "
                "published cache is unchanged; free space and run again (finished time "
                "chunks are kept)") from exc


def _output_folder(out: Path) -> Path:
    """``out``, created if missing; :class:`ConfigError` when it is a file or cannot be
    created."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: the output path is a file, not a folder (the cache is a "
                          "folder; it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the output folder ({exc.strerror})") from exc
    return out


_DISK_FULL = MappingProxyType({errno.ENOSPC: "No space left on device",
                               errno.EDQUOT: "Disk quota exceeded",
                               errno.EFBIG: "File too large"})


def _disk_full(exc: Exception) -> bool:
    """The error is the file system refusing more data (also when HDF5 or a Dask worker
    passed it on as text)."""
    return getattr(exc, "errno", None) in _DISK_FULL or _disk_full_reason(str(exc)) != ""


def _disk_full_reason(text: str) -> str:
    return next((r for r in _DISK_FULL.values() if r in text), "")


def _run_phases(cfg: PreprocessConfig, out: Path, progress: bool, append: bool,
                force: bool, runner: Runner) -> JobResult:
    """The phases (:mod:`.phases`) in order, each timed; the inputs' files, the runner,
    the background hashing and unpacked archives released whatever happens."""
    laps = _Laps()
    base = published_base(out, cfg) if append else None
    files = FileCache()
    planned = None
    try:
        planned = phases.plan_job(cfg, out, base, force, files)
        laps.lap("plan")
        if isinstance(planned, UpToDate):
            return JobResult(out, planned.channels, planned.n_time, planned.input_bytes,
                             laps.total(), laps.stages, status="up to date")
        stored = phases.store(planned, runner, progress)
        laps.lap("regrid+zarr")
        built = phases.build_cache(planned, stored)
        laps.lap("hdf5+stats")
        phases.record(planned, built)
        laps.lap("checksums")
        publish(out)
        return _result(planned, built, laps)
    finally:
        if isinstance(planned, Planned) and planned.hashes is not None:
            planned.hashes.cancel()
        files.close()
        runner.close()
        _release_file_handles()
        shutil.rmtree(out / UNZIP_NAME, ignore_errors=True)


class _Laps:
    """Seconds spent in each phase, as they end."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, name: str) -> None:
        self.stages[name] = self.total() - sum(self.stages.values())

    def total(self) -> float:
        return time.perf_counter() - self.t0


def _result(planned: Planned, built: Built, laps: _Laps) -> JobResult:
    plan = planned.plan
    return JobResult(planned.out, tuple(planned.channels), int(built.times.size),
                     planned.input_bytes, laps.total(), laps.stages,
                     status="appended" if planned.base else "built",
                     resumed_chunks=planned.resumed, reused_chunks=int(plan.reuse.sum()),
                     skipped_steps=len(built.skipped), replaced_steps=plan.replaced,
                     preliminary_steps=int(plan.preliminary.size))


def _release_file_handles() -> None:
    """Close netCDF/HDF5 handles now, in this thread.

    HDF5 is not thread-safe: left to the garbage collector, a handle may be closed from a
    Dask client thread while this thread opens another file.
    """
    import gc

    gc.collect()
