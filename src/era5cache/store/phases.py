"""The job's named phases, each a function of the state the one before hands it
(:mod:`.state`), each ending at a boundary the staging folder makes resumable
(:mod:`.staging`):

1. :func:`plan_job`: open and check the inputs, plan the store, begin (or resume) staging;
2. :func:`store`: regrid every remaining time chunk into the staged Zarr store and stream
   the HDF5 cache from the chunks, on a runner (:mod:`.runners`: in this process, or on
   Dask); a run killed here resumes with the chunks it journalled;
3. :func:`build_cache`: the all-NaN policy, the cache without skipped steps, 16-bit
   encoding; the cache file staged;
4. :func:`record`: the manifest staged, which marks the staging folder ready;
5. :func:`era5cache.store.staging.publish`: the outputs renamed into place.

:func:`era5cache.store.job.run` runs them in order under the output folder's lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config.recipe import PreprocessConfig
from ..errors import InputError
from ..format.checksum import BackgroundHashes
from ..format.h5 import encode_cache
from ..format.layout import H5_NAME, ZARR_NAME
from ..format.manifest import Manifest, atomic_write_json, fsync_path
from ..read.filecache import FileCache
from ..regrid.quality import BadValueError
from ..timeaxis import analyse
from .h5build import build_h5
from .identity import job_fingerprint, up_to_date
from .inputs import open_inputs, read_settings, regridded
from .milestones import milestone
from .plan import appended, check_training_period, fresh
from .record import all_nan_policy, build_manifest
from .schedule import ChunkWork
from .staging import Staging, discard
from .state import Built, Planned, Stored, UpToDate

UNZIP_NAME = ".unzipped"  # members of CDS ZIP archives, removed after a successful run


def plan_job(cfg: PreprocessConfig, out: Path, base: Manifest | None, force: bool,
             files: FileCache) -> Planned | UpToDate:
    """Open and check the inputs (read through ``files``), plan the store (extending
    ``base`` for an append) and begin staging; :class:`UpToDate` instead when the published
    cache has the same inputs and settings (unless ``force``). The inputs' files are closed
    in this process when it returns: the runner's reads open them again."""
    inputs, ds, regridder = open_inputs(cfg, out / UNZIP_NAME,
                                        base.channels if base else None, files)
    hashes = None
    try:
        input_bytes = sum(f.stat().st_size for f in inputs.files) + sum(
            s.decoded_bytes for s in inputs.stores)
        fingerprint = job_fingerprint(cfg, base, inputs.stores)
        current = up_to_date(out, fingerprint) if base is None and not force else None
        if current is not None:
            discard(out)
            return UpToDate(tuple(ds.data_vars), current.shape[0], input_bytes)
        hashes = BackgroundHashes(list(inputs.files)) if cfg.hash_inputs else None
        lazy = regridded(ds, regridder, cfg)
        plan = (appended(lazy, inputs, base, out / ZARR_NAME, cfg.chunk_steps)
                if base else fresh(lazy, inputs, cfg.chunk_steps))
        check_training_period(plan.times, cfg.periods, cfg.source or "command line")
        files.limit(*read_settings(cfg, inputs))
    except BaseException:
        if hashes is not None:
            hashes.cancel()
        raise
    finally:
        inputs.close()  # no file handle in this process while the runner reads
    staging = Staging.begin(out, fingerprint)
    milestone("planned")
    return Planned(cfg, out, tuple(ds.data_vars), base, inputs, plan, fingerprint, staging,
                   len(staging.done), input_bytes, files, hashes)


def store(planned: Planned, runner, progress: bool) -> Stored:
    """Write the staged Zarr store's remaining time chunks and stream the HDF5 cache from
    them on ``runner`` (:mod:`.runners`); a value outside a variable's physical range is an
    :class:`InputError` naming the input file and the step."""
    work = ChunkWork(planned.plan, planned.staging, list(planned.channels),
                     planned.out / ZARR_NAME)
    try:
        return runner.store(work, planned.spec(), planned.part, planned.files, progress)
    except BadValueError as exc:
        inputs, i = planned.inputs, int(exc.first)
        when = inputs.dataset["time"].values[i].astype("datetime64[s]")
        raise InputError(f"{inputs.source[i]}: {exc.variable!r} {exc.problem} at {when}"
                         f"{exc.hint}") from exc


def build_cache(planned: Planned, stored: Stored) -> Built:
    """Apply the all-NaN policy (:func:`era5cache.store.record.all_nan_policy`), rebuild
    the cache without the skipped steps if any, encode it in 16 bits if asked, and stage it
    (made durable first)."""
    cfg, plan, part = planned.cfg, planned.plan, planned.part
    keep, skipped = all_nan_policy(plan, stored.all_nan, list(planned.channels), cfg)
    times = plan.times[keep]
    if skipped:  # the training period may have lost its steps
        check_training_period(times, cfg.periods, cfg.source or "command line")
    axis = analyse(times, plan.axis.step)
    stats = stored.stats
    if not keep.all():  # the streamed file holds every step: build it again without
        stats = build_h5(planned.staging.zarr, part, planned.spec(times, axis), keep=keep)
    if cfg.dtype != "float32":  # normalised 16-bit values, from the float32 file
        encoded = part.with_name(f"{H5_NAME}.{cfg.dtype}.part")
        encode_cache(part, encoded, cfg.dtype)
        os.replace(encoded, part)
    fsync_path(part)  # durable before it is named as built
    os.replace(part, planned.staging.h5)
    milestone("h5-built")
    return Built(times, axis, stats, skipped)


def record(planned: Planned, built: Built) -> Manifest:
    """Stage the manifest (the inputs' checksums waited for): the staging folder is then
    ready to publish."""
    digests = planned.hashes.result() if planned.hashes else {}
    manifest = build_manifest(planned, built, digests)
    atomic_write_json(planned.staging.manifest, manifest.to_json())
    milestone("manifest-staged")
    return manifest

