"""The preprocessing job: ERA5 NetCDF -> conservative 2-degree Zarr + contiguous HDF5 cache.

Runs on a Dask ``LocalCluster`` of worker *processes* (netCDF4/HDF5 are not thread-safe) or
on an existing cluster given by address. The graph streams over time: each task reads at most
``reader.TARGET_CHUNK_BYTES`` of one file and regrids it, and each Zarr time chunk is written
by region as its own unit of work. Everything is built in a staging folder inside the output
folder and renamed into place at the end; ``manifest.json`` is written last with
``complete: true``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from . import __version__
from .checksum import INPUT_HASH, BackgroundHashes, file_sha256, tree_sha256
from .config import PreprocessConfig
from .errors import CacheError, ConfigError, InputError, ResourceError
from .faults import kill_point
from .grid import TARGET_LAT, TARGET_LON
from .h5cache import build_h5, data_offset
from .h5stream import ChunkFeed, H5Builder
from .layout import FORMAT_VERSION, H5_NAME, MANIFEST_NAME, ZARR_NAME
from .manifest import atomic_write_json, fsync_path, input_record
from .quality import NonFiniteValueError
from .reader import (
    TARGET_CHUNK_BYTES,
    Era5Inputs,
    all_channels,
    list_inputs,
    open_era5,
    select_channels,
)
from .regrid import ConservativeRegridder, CoverageError
from .regrid_xarray import regrid_dataset
from .staging import STAGING_NAME, Staging, discard, publish
from .target import Target, appended, fresh
from .timeaxis import analyse, format_step
from .workers import (
    START_METHOD,
    limit_open_files,
    memory_bytes,
    start_fork_server,
    worker_environ,
)
from .writelock import exclusive_writer
from .zarr_store import (
    COMPRESSORS,
    fsync_chunk,
    link_chunk,
    store_chunk,
    stored_compressors,
    template_of,
    write_template,
)

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


def _base_names(channels: tuple[str, ...] | None) -> list[str] | None:
    if channels is None:
        return None
    names = set()
    for ch in channels:
        names.add(ch)
        names.add(ch.rstrip("0123456789"))
    return sorted(names)


def read_chunk_bytes(cfg: PreprocessConfig) -> int:
    """Bytes of decoded input per task: :data:`TARGET_CHUNK_BYTES`, less where the worker
    memory limit calls for it (:func:`read_block_ceiling`)."""
    ceiling = read_block_ceiling(cfg)
    return TARGET_CHUNK_BYTES if ceiling is None else min(TARGET_CHUNK_BYTES, ceiling)


def read_block_ceiling(cfg: PreprocessConfig) -> int | None:
    """The most decoded input one read block may hold under the worker memory limit: also
    what lets a block cover whole HDF5 chunks of a file chunked over many time steps
    (:func:`era5cache.reader.block_steps`). None when the worker memory is not known (an
    existing cluster, or no limit).

    Measured: a worker forked from the fork server idles at ~110 MB RSS and, with glibc
    keeping up to a quarter of the limit of freed memory, peaked at 291 MB under a 315 MB
    limit with (limit - 160 MiB) / 5 blocks, too close to Dask's kill threshold (95%); so a
    block is at most (limit - 160 MiB) / 8, and at least 4 MiB (limits from ~400 MiB get
    the 30 MiB target).
    """
    if not cfg.dask.memory_limit or cfg.dask.scheduler:
        return None
    return int(max(4 * 2**20, (memory_bytes(cfg.dask.memory_limit) - 160 * 2**20) // 8))


def plan(cfg: PreprocessConfig, extract_dir: Path | None = None,
         channels: tuple[str, ...] | None = None
         ) -> tuple[Era5Inputs, xr.Dataset, ConservativeRegridder]:
    """Open and check the inputs; return them, the selected channels (``channels``, else
    the recipe's, else all) and the regridder."""
    if not cfg.inputs:
        raise InputError(f"{cfg.source or 'command line'}: no inputs configured "
                         "(give --input or set `inputs` in the recipe)")
    channels = channels or cfg.variables
    inputs = open_era5(list(cfg.inputs), variables=_base_names(channels),
                       chunk_bytes=read_chunk_bytes(cfg), extract_dir=extract_dir,
                       align_steps=cfg.chunk_steps, max_block_bytes=read_block_ceiling(cfg))
    channels = channels or tuple(all_channels(inputs.dataset))
    ds = select_channels(inputs.dataset, channels, where=str(inputs.files[0]))
    if inputs.axis.irregular:
        t = inputs.axis.irregular[0]
        i = int(np.searchsorted(inputs.dataset["time"].values.astype("datetime64[s]"), t))
        raise InputError(
            f"{inputs.source[i]}: irregular time steps: {t} is not a whole number of "
            f"{format_step(inputs.axis.step)} steps after the previous step")
    try:
        regridder = ConservativeRegridder.for_grid(inputs.grid)
    except CoverageError as exc:
        raise InputError(f"{inputs.files[0]}: {exc}") from exc
    return inputs, ds, regridder


@contextlib.contextmanager
def dask_client(cfg: PreprocessConfig) -> Iterator:
    """A distributed Client: the configured scheduler, else a LocalCluster of processes."""
    from dask.distributed import Client, LocalCluster

    if cfg.dask.scheduler:
        try:
            client = Client(cfg.dask.scheduler, timeout="20s")
        except OSError as exc:
            raise InputError(f"{cfg.dask.scheduler}: cannot reach the Dask scheduler "
                             f"({exc})") from exc
        with client:
            yield client
        return
    n = cfg.dask.workers or max(1, os.cpu_count() or 1)
    start_fork_server(cfg.dask.memory_limit)  # the CLI started it already: a no-op then
    with dask.config.set({"distributed.worker.multiprocessing-method": START_METHOD,
                          # the statistical profiler samples every thread each 10 ms
                          "distributed.worker.profile.enabled": False,
                          # memory is bounded by the read block size (read_chunk_bytes);
                          # a paused worker only stalls the job (both paused: for ever)
                          "distributed.worker.memory.pause": False,
                          # no root-task queuing: a worker idled for a scheduler round trip
                          # between read tasks (15-19% of its time on the 2-core VM, 9-11%
                          # without); read tasks are fused with the regridding, so what
                          # runs ahead holds 80x180 fields, not input blocks
                          "distributed.scheduler.worker-saturation": float("inf"),
                          "distributed.nanny.pre-spawn-environ":
                              worker_environ(cfg.dask.memory_limit)}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                         memory_limit=cfg.dask.memory_limit, dashboard_address=None,
                         silence_logs=_worker_log_level()) as cluster, \
            Client(cluster) as client:
        yield client


def _worker_log_level() -> int:
    """Worker log level: task failures reach the user as one line from the job itself, so
    the workers' own tracebacks are silenced unless ``ERA5CACHE_DEBUG`` is set."""
    import logging

    return logging.WARNING if os.environ.get("ERA5CACHE_DEBUG") else logging.CRITICAL


class BackgroundClient:
    """Starts :func:`dask_client` in a thread, so the cluster boots while the inputs are
    opened and checked (about a second saved per run); ``get()`` waits for it."""

    def __init__(self, cfg: PreprocessConfig):
        from concurrent.futures import ThreadPoolExecutor

        self._cm = dask_client(cfg)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="era5cache-dask-start")
        self._started = self._pool.submit(self._cm.__enter__)

    def get(self):
        return self._started.result()

    def close(self) -> None:
        try:
            self._started.result()
        except BaseException:  # it never started: nothing to close
            pass
        else:  # leave the context in the thread that entered it (Client uses a ContextVar)
            self._pool.submit(self._cm.__exit__, None, None, None).result()
        finally:
            self._pool.shutdown()


def run(cfg: PreprocessConfig, progress: bool = True, append: bool = False,
        force: bool = False) -> JobResult:
    """Run the job and publish the cache into ``cfg.output`` (one writer at a time).

    ``append``: extend the published cache with the inputs (see :mod:`era5cache.target`).
    A run with the same inputs and settings as the published cache does nothing unless
    ``force``. A run killed earlier resumes from its staging folder (:mod:`.staging`).
    """
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_writer(out):
        publish(out)  # a publication that a crash interrupted is finished first
        try:
            return _run_locked(cfg, out, progress, append, force)
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


_DISK_FULL = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
              errno.EFBIG: "File too large"}


def _disk_full(exc: Exception) -> bool:
    """The error is the file system refusing more data (also when HDF5 or a Dask worker
    passed it on as text)."""
    return getattr(exc, "errno", None) in _DISK_FULL or _disk_full_reason(str(exc)) != ""


def _disk_full_reason(text: str) -> str:
    return next((r for r in _DISK_FULL.values() if r in text), "")


def job_fingerprint(cfg: PreprocessConfig, base: dict | None) -> str:
    """Identity of a job: its input files (path, size, mtime), the output settings, the
    package and format version, and for an append the published cache it extends."""
    files = [{"path": str(f.resolve()), "size": f.stat().st_size, "mtime": f.stat().st_mtime}
             for f in list_inputs(cfg.inputs)]
    ident = {"format_version": FORMAT_VERSION, "package_version": __version__,
             "inputs": files, "settings": cfg.output_settings(),
             "base": None if base is None else base["outputs"][H5_NAME]["sha256"]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _up_to_date(out: Path, fingerprint: str) -> dict | None:
    """The published manifest if it was made by this very job and its files are in place."""
    from .verify import check_manifest, verify

    try:
        m = check_manifest(out)
    except CacheError:
        return None
    if m.get("fingerprint") != fingerprint or verify(out, checksums=False):
        return None
    return m


def published_base(out: Path, cfg: PreprocessConfig) -> dict | None:
    """The manifest of the cache that ``--append`` extends (None: there is none yet);
    :class:`ConfigError` when the recipe's output settings differ from the cache's."""
    from .verify import check_manifest

    try:
        m = check_manifest(out)
    except CacheError:
        if (out / MANIFEST_NAME).exists():
            raise
        return None
    have = m.get("settings") or {}
    want = cfg.output_settings()
    if cfg.variables is None:
        want["variables"] = have.get("variables")
    for key in want:
        if key in have and have[key] != want[key]:
            raise ConfigError(f"{cfg.source or 'command line'}: --append: {key} is "
                              f"{want[key]!r} here but {have[key]!r} in the cache {out}; "
                              "run without --append to rebuild it")
    return m


def _run_locked(cfg: PreprocessConfig, out: Path, progress: bool, append: bool,
                force: bool) -> JobResult:
    t0 = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(name: str) -> None:
        stages[name] = time.perf_counter() - t0 - sum(stages.values())

    base = published_base(out, cfg) if append else None
    inputs = hashes = None
    cluster = BackgroundClient(cfg)
    try:
        inputs, ds, regridder = plan(cfg, extract_dir=out / UNZIP_NAME,
                                     channels=tuple(base["channels"]) if base else None)
        input_bytes = sum(f.stat().st_size for f in inputs.files)
        channels = list(ds.data_vars)
        fingerprint = job_fingerprint(cfg, base)
        if base is None and not force:
            current = _up_to_date(out, fingerprint)
            if current is not None:
                discard(out)
                return JobResult(out, tuple(channels), int(current["shape"][0]), input_bytes,
                                 time.perf_counter() - t0, stages, status="up to date")
        hashes = BackgroundHashes(list(inputs.files)) if cfg.hash_inputs else None
        regridded = regrid_dataset(ds, regridder, {c: cfg.threshold(c) for c in channels})
        for c in channels:
            regridded[c].attrs = {k: v for k, v in ds[c].attrs.items()
                                  if k in ("units", "long_name", "standard_name")}
        regridded.attrs = {
            "title": "ERA5 on a 2-degree grid (first-order conservative)",
            "source": "ERA5 reanalysis (Copernicus Climate Change Service)",
            "era5cache_version": __version__,
            "Conventions": "CF-1.8",
        }
        target = (appended(regridded, inputs, base, out / ZARR_NAME, cfg.chunk_steps)
                  if base else fresh(regridded, inputs, cfg.chunk_steps))
        inputs.close()  # no netCDF handle in this process while the client runs
        staging = Staging.begin(out, fingerprint)
        resumed = len(staging.done)
        lap("plan")
        kill_point("planned")
        part = staging.path / f"{H5_NAME}.part"
        attrs = {c: target.dataset[c].attrs for c in channels}
        feed = ChunkFeed(staging.zarr, channels, cfg.chunk_steps, target.times.size)
        builder = H5Builder(feed, part, target.times, analyse(target.times, target.axis.step),
                            cfg.periods, attrs)
        try:
            _write_zarr(target, staging, cfg, progress, cluster, inputs, out / ZARR_NAME,
                        feed, builder)
        except BaseException:
            builder.abandon()
            raise
        lap("regrid+zarr")
        stats = builder.result()
        keep, skipped = _all_nan_policy(target, feed.all_nan, channels, cfg)
        times = target.times[keep]
        axis = analyse(times, target.axis.step)
        if not keep.all():  # the streamed file holds every step: build it again without
            stats = build_h5(staging.zarr, part, channels, axis, cfg.periods, cfg.chunk_steps,
                             attrs, keep=keep)
        fsync_path(part)  # durable before it is named as built
        os.replace(part, staging.h5)
        lap("hdf5+stats")
        kill_point("h5-built")
        manifest = _manifest(cfg, inputs, base, target, staging, channels, times, axis,
                             stats, skipped, resumed, fingerprint,
                             hashes.result() if hashes else {})
        atomic_write_json(staging.manifest, manifest)
        lap("checksums")
        kill_point("manifest-staged")
        publish(out)
        return JobResult(out, tuple(channels), int(times.size), input_bytes,
                         time.perf_counter() - t0, stages,
                         status="appended" if base else "built", resumed_chunks=resumed,
                         reused_chunks=int(target.reuse.sum()), skipped_steps=len(skipped),
                         replaced_steps=target.replaced,
                         preliminary_steps=int(target.preliminary.size))
    finally:
        if hashes is not None:
            hashes.cancel()
        if inputs is not None:
            inputs.close()
        cluster.close()
        _release_file_handles()
        shutil.rmtree(out / UNZIP_NAME, ignore_errors=True)


def _all_nan_policy(target: Target, flags: dict[str, np.ndarray], channels: list[str],
                    cfg: PreprocessConfig) -> tuple[np.ndarray, list[dict]]:
    """(keep mask per Zarr step, records of skipped steps) from the all-NaN ``flags`` of
    each channel; :class:`InputError` under the default policy when any step of any channel
    is all NaN."""
    bad = np.zeros(target.times.size, dtype=bool)
    for f in flags.values():
        bad |= f
    records = [{"time": str(target.times[i]), "source": str(target.source[i]),
                "channels": [c for c in channels if flags[c][i]]}
               for i in np.flatnonzero(bad)]
    if records and cfg.all_nan_steps == "fail":
        first = records[0]
        files = sorted({r["source"] for r in records})
        raise InputError(
            f"{first['source']}: {len(records)} all-NaN time step(s) (first {first['time']} "
            f"in {', '.join(first['channels'])}"
            + (f"; also in {len(files) - 1} other file(s)" if len(files) > 1 else "")
            + "); set all_nan_steps: skip (or --all-nan-steps skip) to record and skip them")
    return ~bad, records


def _manifest(cfg: PreprocessConfig, inputs: Era5Inputs, base: dict | None, target: Target,
              staging: Staging, channels: list[str], times: np.ndarray, axis,
              stats, skipped: list[dict], resumed: int, fingerprint: str,
              digests: dict[Path, str]) -> dict:
    records = [input_record(f, digests.get(f), INPUT_HASH) for f in inputs.files]
    if base is not None:
        new_paths = {r["path"] for r in records}
        records = [r for r in base["inputs"] if r["path"] not in new_paths] + records
    n_chunks = target.n_chunks
    m = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": fingerprint,
        "inputs": records,
        "config": cfg.to_json(),
        "settings": {**cfg.output_settings(), "variables": channels},
        "channels": channels,
        "shape": [int(times.size), len(channels), TARGET_LAT.size, TARGET_LON.size],
        "time": {
            "start": str(times[0]) if times.size else None,
            "end": str(times[-1]) if times.size else None,
            "count": int(times.size),
            "step": axis.step, "gaps": [g.to_json() for g in axis.gaps],
            "duplicates_dropped": inputs.dropped_duplicates + (
                base["time"].get("duplicates_dropped", 0) if base else 0),
            "preliminary": [str(t) for t in target.preliminary],
            "skipped_all_nan": skipped,
            "zarr_count": int(target.times.size),
        },
        "periods": cfg.periods.to_json(),
        "statistics": stats.to_json(channels),
        "chunks": {"steps": cfg.chunk_steps, "count": n_chunks,
                   "complete": list(range(n_chunks)), "resumed": resumed,
                   "reused": int(target.reuse.sum())},
        "outputs": {
            H5_NAME: {"size": staging.h5.stat().st_size, "sha256": file_sha256(staging.h5),
                      "data_offset": data_offset(staging.h5)},
            ZARR_NAME: {"files": tree_sha256(staging.zarr)},
        },
    }
    if base is not None:
        m["append"] = {"previous_sha256": base["outputs"][H5_NAME]["sha256"],
                       "replaced_steps": target.replaced,
                       "kept_final_steps": target.kept_final,
                       "new_steps": int((target.new_index >= 0).sum() - target.replaced)}
    m["complete"] = True
    return m


def _release_file_handles() -> None:
    """Close netCDF/HDF5 handles now, in this thread.

    HDF5 is not thread-safe: left to the garbage collector, a handle may be closed from a
    Dask client thread while this thread opens another file.
    """
    import gc

    gc.collect()


def _write_zarr(target: Target, staging: Staging, cfg: PreprocessConfig, progress: bool,
                cluster: BackgroundClient, inputs: Era5Inputs, base_zarr: Path,
                feed: ChunkFeed, builder: H5Builder) -> None:
    """Create the store from a template (unless resuming), hard-link the chunks an append
    keeps, then write each remaining time chunk on Dask (:func:`store_chunk`). Each finished
    chunk is fsync'ed, recorded in the staging journal and handed to the HDF5 writer
    (``feed``, with the block the worker read back; ``builder`` is checked for errors).

    The template is written by a worker (:func:`write_template`), whose Zarr and xarray are
    loaded already, while the other worker starts regridding: in this process, importing
    Zarr would delay the whole job (0.5 s on the reference VM). The chunk writes wait for it.

    Chunks are written with zarr directly rather than by xarray region writes: those left a
    chunk unwritten now and then under CPU contention (measured: 1 run in ~5 of a 20-chunk
    job on a loaded 2-core machine; the chunk read back as NaN).
    """
    import dask
    from distributed import KilledWorker

    path = staging.zarr
    ds = target.dataset
    channels = list(ds.data_vars)
    client = cluster.get()
    client.run(limit_open_files)  # worker memory must not grow with the number of inputs
    template = None
    if not staging.resumed:
        compressors = (stored_compressors(base_zarr, channels[0]) if target.reuse.any()
                       else COMPRESSORS)  # linked chunks stay readable
        encoding = {c: {"chunks": (cfg.chunk_steps, TARGET_LAT.size, TARGET_LON.size),
                        "compressors": list(compressors)} for c in channels}
        encoding["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64",
                            "calendar": "proleptic_gregorian", "chunks": (target.times.size,)}
        template = client.submit(write_template, template_of(ds), str(path), encoding,
                                 pure=False, key="zarr-template")
    else:  # a killed writer may have left zarr's temporary files behind
        for junk in path.rglob("*.partial"):
            junk.unlink(missing_ok=True)
        for k in staging.done:  # written by the interrupted run
            feed.put(k)
    todo = [k for k in range(target.n_chunks) if k not in staging.done]
    linked = [k for k in todo if target.reuse[k]]
    todo = [k for k in todo if not target.reuse[k]]
    writes = []
    whole = {c: _chunk_sources(ds[c].data, (target.blocks or {}).get(c)) for c in channels}
    for k in todo:
        a, b = target.chunk_bounds(k)
        blocks = [whole[c].get(a, b) for c in channels]
        writes.append(dask.delayed(store_chunk, pure=False)(
            str(path), channels, a, b, *blocks, after=template,
            dask_key_name=f"store-chunk-{k}"))
    bar = _progress_bar(target.n_chunks, progress, initial=target.n_chunks - len(todo))
    try:
        futures = client.compute(writes) if writes else []
        chunk_of = {f.key: k for f, k in zip(futures, todo, strict=True)}
        done = _released_as_completed(futures + ([template] if template is not None else []))
        if template is None:
            _link_chunks(base_zarr, path, channels, linked, staging, feed)
        for fut, block in done:
            if fut is template:
                staging.save()
                kill_point("template")
                _link_chunks(base_zarr, path, channels, linked, staging, feed)
                continue
            k = chunk_of[fut.key]
            fsync_chunk(path, channels, k)
            staging.record([k])
            feed.put(k, block)
            del block
            builder.check()
            bar.update(1)
            kill_point(f"chunks:{len(staging.done)}")
    except NonFiniteValueError as exc:
        i = int(exc.first)
        when = inputs.dataset["time"].values[i].astype("datetime64[s]")
        raise InputError(f"{inputs.source[i]}: {exc.variable!r} holds infinite values at "
                         f"{when} (ERA5 marks missing values with NaN; the file is "
                         "corrupt)") from exc
    except KilledWorker as exc:
        raise ResourceError(
            f"{staging.out}: Dask workers died repeatedly (memory limit "
            f"{cfg.dask.memory_limit} per worker?); raise dask.memory_limit or "
            "--memory-limit") from exc
    finally:
        bar.close()
        staging.save()


def _released_as_completed(futures: list) -> Iterator[tuple]:
    """(future, result) in the order the tasks finish; each future is released as its
    result is handed over, so the worker may drop the result. Held to the end of the job,
    every chunk's block stayed on its worker: each worker grew by its share of the whole
    output (1.5 GB peaks under the 2 GiB limit on the ``make preprocess`` sample). Released
    is released: other references the caller keeps to the futures do not hold the results."""
    from dask.distributed import as_completed

    for fut in as_completed(futures):
        result = fut.result()
        fut.release()
        yield fut, result


class _WholeBlocks:
    """The blocks of a Dask array (chunked along its first axis only) that make up rows
    ``a:b``, as the Delayed objects of the blocks themselves when ``a:b`` is made of whole
    blocks (read blocks are aligned with the chunks: :func:`era5cache.reader.block_steps`),
    else what ``fallback`` gives for ``a:b``, else the slice. A slice per chunk adds a merge
    and a finalize task per chunk and channel and a copy of the array's graph; the blocks
    are the graph's own tasks."""

    def __init__(self, arr, fallback: _WholeBlocks | None = None):
        self.arr = arr
        self.fallback = fallback
        self.edges = np.concatenate([[0], np.cumsum(arr.chunks[0])])
        self.blocks = (arr.to_delayed().reshape(-1) if all(n == 1 for n in arr.numblocks[1:])
                       else None)

    def get(self, a: int, b: int):
        i, j = np.searchsorted(self.edges, [a, b])
        if (self.blocks is None or j >= self.edges.size or self.edges[i] != a
                or self.edges[j] != b):
            return self.fallback.get(a, b) if self.fallback is not None else self.arr[a:b]
        return list(self.blocks[i:j])


def _chunk_sources(chunked, read_blocks=None) -> _WholeBlocks:
    """Where each Zarr chunk task takes a channel's data from: the regridded read blocks
    themselves (``read_blocks``, a fresh build) for a chunk made of whole blocks, else the
    array rechunked to the Zarr chunks (``chunked``), whose merge task per chunk shares a
    read block that straddles two chunks. A slice of the read blocks there instead made
    Dask fuse the read and regrid into each of the two chunk tasks: read twice (the
    ``make preprocess`` sample, monthly files across 120-step chunks: 21 -> 26 s)."""
    rechunked = _WholeBlocks(chunked)
    return rechunked if read_blocks is None else _WholeBlocks(read_blocks, fallback=rechunked)


def _link_chunks(src: Path, dst: Path, channels: list[str], chunks: list[int],
                 staging: Staging, feed: ChunkFeed) -> None:
    """Hard-link the time chunks an append keeps (after the template exists), record them
    and hand them to the HDF5 writer."""
    for k in chunks:
        link_chunk(src, dst, channels, k)
    staging.record(chunks)
    for k in chunks:
        feed.put(k)


def _progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="time chunks", unit="chunk",
                disable=not enabled)
