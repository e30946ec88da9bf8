"""The preprocessing job: ERA5 files -> conservative 2-degree Zarr + contiguous HDF5 cache.

Runs on a Dask ``LocalCluster`` of worker *processes* (netCDF4/HDF5 are not thread-safe) or
on an existing cluster given by address (:mod:`.cluster`). The graph streams over time: each
task reads one block of one file (:mod:`era5cache.read.blocks`) and regrids it; each Zarr
time chunk is then written and read back as its own task (:mod:`.schedule`), and the HDF5
cache is written from those chunks as they arrive (:mod:`.h5build`). Everything is built in
a staging folder inside the output folder and published at the end (:mod:`.staging`);
``manifest.json`` is written last with ``complete: true``.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from .. import __version__
from ..config.recipe import PreprocessConfig
from ..errors import ConfigError, ResourceError
from ..format.checksum import BackgroundHashes
from ..format.h5 import encode_cache
from ..format.layout import H5_NAME, ZARR_NAME
from ..format.manifest import atomic_write_json, fsync_path
from ..read.physical import quantity
from ..regrid.adapter import regrid_dataset
from ..timeaxis import analyse
from .cluster import BackgroundClient
from .h5build import ChunkFeed, H5Builder, build_h5
from .identity import job_fingerprint, published_base, up_to_date
from .inputs import open_inputs
from .lock import exclusive_writer
from .milestones import milestone
from .plan import appended, check_training_period, fresh
from .record import all_nan_policy, build_manifest
from .schedule import write_zarr
from .staging import STAGING_NAME, Staging, discard, publish

UNZIP_NAME = ".unzipped"  # members of CDS ZIP archives, removed after a successful run


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
        force: bool = False, cluster: BackgroundClient | None = None) -> JobResult:
    """Run the job and publish the cache into ``cfg.output`` (one writer at a time).

    ``append``: extend the published cache with the inputs (see :mod:`.plan`).
    A run with the same inputs and settings as the published cache does nothing unless
    ``force``. A run killed earlier resumes from its staging folder (:mod:`.staging`).
    ``cluster``: the job's Dask cluster, started by the caller for ``cfg`` (the job closes
    it); by default the job starts one.
    """
    cluster = cluster if cluster is not None else BackgroundClient(cfg)
    try:
        return _run_exclusive(cfg, progress, append, force, cluster)
    finally:
        cluster.close()  # a no-op where the job got as far as closing it


def _run_exclusive(cfg: PreprocessConfig, progress: bool, append: bool, force: bool,
                   cluster: BackgroundClient) -> JobResult:
    out = _output_folder(Path(cfg.output))
    with exclusive_writer(out):
        publish(out)  # a publication that a crash interrupted is finished first
        try:
            return _run_locked(cfg, out, progress, append, force, cluster)
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


_DISK_FULL = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
              errno.EFBIG: "File too large"}


def _disk_full(exc: Exception) -> bool:
    """The error is the file system refusing more data (also when HDF5 or a Dask worker
    passed it on as text)."""
    return getattr(exc, "errno", None) in _DISK_FULL or _disk_full_reason(str(exc)) != ""


def _disk_full_reason(text: str) -> str:
    return next((r for r in _DISK_FULL.values() if r in text), "")


def _run_locked(cfg: PreprocessConfig, out: Path, progress: bool, append: bool,
                force: bool, cluster: BackgroundClient) -> JobResult:
    t0 = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(name: str) -> None:
        stages[name] = time.perf_counter() - t0 - sum(stages.values())

    base = published_base(out, cfg) if append else None
    where = cfg.source or "command line"  # what errors about the recipe's keys name
    inputs = hashes = None
    try:
        inputs, ds, regridder = open_inputs(cfg, extract_dir=out / UNZIP_NAME,
                                            channels=base.channels if base else None)
        input_bytes = sum(f.stat().st_size for f in inputs.files)
        channels = list(ds.data_vars)
        fingerprint = job_fingerprint(cfg, base)
        if base is None and not force:
            current = up_to_date(out, fingerprint)
            if current is not None:
                discard(out)
                return JobResult(out, tuple(channels), current.shape[0], input_bytes,
                                 time.perf_counter() - t0, stages, status="up to date")
        hashes = BackgroundHashes(list(inputs.files)) if cfg.hash_inputs else None
        regridded = _regridded(ds, regridder, cfg)
        plan = (appended(regridded, inputs, base, out / ZARR_NAME, cfg.chunk_steps)
                  if base else fresh(regridded, inputs, cfg.chunk_steps))
        check_training_period(plan.times, cfg.periods, where)
        inputs.close()  # no netCDF handle in this process while the client runs
        staging = Staging.begin(out, fingerprint)
        resumed = len(staging.done)
        lap("plan")
        milestone("planned")
        part = staging.path / f"{H5_NAME}.part"
        attrs = {c: plan.dataset[c].attrs for c in channels}
        feed = ChunkFeed(staging.zarr, channels, cfg.chunk_steps, plan.times.size)
        builder = H5Builder(feed, part, plan.times, analyse(plan.times, plan.axis.step),
                            cfg.periods, attrs)
        try:
            write_zarr(plan, staging, cfg, progress, cluster, inputs, out / ZARR_NAME,
                        feed, builder)
        except BaseException:
            builder.abandon()
            raise
        lap("regrid+zarr")
        stats = builder.result()
        keep, skipped = all_nan_policy(plan, feed.all_nan, channels, cfg)
        times = plan.times[keep]
        if skipped:  # the training period may have lost its steps
            check_training_period(times, cfg.periods, where)
        axis = analyse(times, plan.axis.step)
        if not keep.all():  # the streamed file holds every step: build it again without
            stats = build_h5(staging.zarr, part, channels, axis, cfg.periods, cfg.chunk_steps,
                             attrs, keep=keep)
        if cfg.dtype != "float32":  # normalised 16-bit values, from the float32 file
            encoded = part.with_name(f"{H5_NAME}.{cfg.dtype}.part")
            encode_cache(part, encoded, cfg.dtype)
            os.replace(encoded, part)
        fsync_path(part)  # durable before it is named as built
        os.replace(part, staging.h5)
        lap("hdf5+stats")
        milestone("h5-built")
        manifest = build_manifest(cfg, inputs, base, plan, staging, channels, times, axis,
                             stats, skipped, resumed, fingerprint,
                             hashes.result() if hashes else {})
        atomic_write_json(staging.manifest, manifest.to_json())
        lap("checksums")
        milestone("manifest-staged")
        publish(out)
        return JobResult(out, tuple(channels), int(times.size), input_bytes,
                         time.perf_counter() - t0, stages,
                         status="appended" if base else "built", resumed_chunks=resumed,
                         reused_chunks=int(plan.reuse.sum()), skipped_steps=len(skipped),
                         replaced_steps=plan.replaced,
                         preliminary_steps=int(plan.preliminary.size))
    finally:
        if hashes is not None:
            hashes.cancel()
        if inputs is not None:
            inputs.close()
        cluster.close()
        _release_file_handles()
        shutil.rmtree(out / UNZIP_NAME, ignore_errors=True)


def _regridded(ds: xr.Dataset, regridder, cfg: PreprocessConfig) -> xr.Dataset:
    """``ds`` regridded lazily, with the CF attributes the store carries; a known variable's
    values outside its physical range (:mod:`era5cache.read.physical`) fail the block."""
    channels = list(ds.data_vars)
    known = {c: quantity(c) for c in channels}
    bounds = {c: (q.low, q.high, q.units[0]) for c, q in known.items() if q is not None}
    regridded = regrid_dataset(ds, regridder, {c: cfg.threshold(c) for c in channels},
                               bounds=bounds)
    for c in channels:
        regridded[c].attrs = {k: v for k, v in ds[c].attrs.items()
                              if k in ("units", "long_name", "standard_name")}
    regridded.attrs = {
        "title": "ERA5 on a 2-degree grid (first-order conservative)",
        "source": "ERA5 reanalysis (Copernicus Climate Change Service)",
        "era5cache_version": __version__,
        "Conventions": "CF-1.8",
    }
    return regridded


def _release_file_handles() -> None:
    """Close netCDF/HDF5 handles now, in this thread.

    HDF5 is not thread-safe: left to the garbage collector, a handle may be closed from a
    Dask client thread while this thread opens another file.
    """
    import gc

    gc.collect()

