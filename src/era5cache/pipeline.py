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
import dataclasses
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from . import __version__
from .checksum import file_sha256, tree_sha256
from .config import PreprocessConfig
from .errors import InputError, ResourceError
from .grid import TARGET_LAT, TARGET_LON
from .h5cache import build_h5, data_offset
from .layout import FORMAT_VERSION, H5_NAME, MANIFEST_NAME, ZARR_NAME
from .manifest import atomic_write_json, input_record
from .reader import (
    TARGET_CHUNK_BYTES,
    Era5Inputs,
    all_channels,
    open_era5,
    select_channels,
)
from .regrid import ConservativeRegridder, CoverageError
from .regrid_xarray import regrid_dataset
from .timeaxis import format_step
from .writelock import exclusive_writer


@dataclass(frozen=True)
class JobResult:
    output: Path
    channels: tuple[str, ...]
    n_time: int
    input_bytes: int
    seconds: float
    stages: dict[str, float]


def _base_names(channels: tuple[str, ...] | None) -> list[str] | None:
    if channels is None:
        return None
    names = set()
    for ch in channels:
        names.add(ch)
        names.add(ch.rstrip("0123456789"))
    return sorted(names)


def read_chunk_bytes(cfg: PreprocessConfig) -> int:
    """Bytes of decoded input per task under the worker memory limit.

    Measured: a worker process idles at ~150 MiB and peaks at about four read blocks above
    that (the block, its re-ordered view's consumers, regridding temporaries, the next block
    read ahead); so a block is (limit - 160 MiB) / 5, between 4 and 30 MiB.
    """
    from dask.utils import parse_bytes

    if not cfg.dask.memory_limit or cfg.dask.scheduler:
        return TARGET_CHUNK_BYTES
    limit = parse_bytes(cfg.dask.memory_limit)
    return int(min(TARGET_CHUNK_BYTES, max(4 * 2**20, (limit - 160 * 2**20) // 5)))


def plan(cfg: PreprocessConfig, extract_dir: Path | None = None
         ) -> tuple[Era5Inputs, xr.Dataset, ConservativeRegridder]:
    """Open and check the inputs; return them, the selected channels and the regridder."""
    if not cfg.inputs:
        raise InputError(f"{cfg.source or 'command line'}: no inputs configured "
                         "(give --input or set `inputs` in the recipe)")
    inputs = open_era5(list(cfg.inputs), variables=_base_names(cfg.variables),
                       chunk_bytes=read_chunk_bytes(cfg), extract_dir=extract_dir)
    channels = cfg.variables or tuple(all_channels(inputs.dataset))
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
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ(cfg)}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                         memory_limit=cfg.dask.memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


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


def worker_environ(cfg: PreprocessConfig) -> dict[str, str]:
    """Environment of local worker processes: Dask's defaults, with glibc malloc keeping
    freed blocks (up to a quarter of the memory limit, at most 256 MiB) instead of returning
    them to the OS at once. Dask's default (MALLOC_TRIM_THRESHOLD_=64 KiB) also fixes the mmap
    threshold at 128 KiB, so every read block was a fresh mapping to page-fault."""
    from dask.utils import parse_bytes

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    limit = parse_bytes(cfg.dask.memory_limit) if cfg.dask.memory_limit else 2**31
    env["MALLOC_TRIM_THRESHOLD_"] = str(int(min(256 * 2**20, limit // 4)))
    env["MALLOC_MMAP_THRESHOLD_"] = str(32 * 2**20)
    return env


def run(cfg: PreprocessConfig, progress: bool = True) -> JobResult:
    """Run the whole job and publish the cache into ``cfg.output`` (one writer at a time)."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_writer(out):
        for old in out.glob(".staging-*"):  # left by a crashed run; safe under the lock
            shutil.rmtree(old, ignore_errors=True)
        return _run_locked(cfg, out, progress)


def _run_locked(cfg: PreprocessConfig, out: Path, progress: bool) -> JobResult:
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    staging = out / f".staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    inputs = None
    cluster = BackgroundClient(cfg)
    try:
        inputs, ds, regridder = plan(cfg, extract_dir=staging / "unzipped")
        channels = list(ds.data_vars)
        regridded = regrid_dataset(ds, regridder, {c: cfg.threshold(c) for c in channels})
        times = regridded["time"].values.astype("datetime64[s]")
        for c in channels:
            regridded[c].attrs = {k: v for k, v in ds[c].attrs.items()
                                  if k in ("units", "long_name", "standard_name")}
        regridded.attrs = {
            "title": "ERA5 on a 2-degree grid (first-order conservative)",
            "source": "ERA5 reanalysis (Copernicus Climate Change Service)",
            "era5cache_version": __version__,
            "Conventions": "CF-1.8",
        }
        regridded = regridded.assign_coords(time=times).chunk({"time": cfg.chunk_steps})
        zarr_tmp = staging / ZARR_NAME
        inputs.close()  # no netCDF handle in this process while the client runs
        stages["plan"] = time.perf_counter() - t0
        _write_zarr(regridded, zarr_tmp, cfg, progress, cluster.get())
        stages["regrid+zarr"] = time.perf_counter() - t0 - sum(stages.values())
        h5_tmp = staging / H5_NAME
        stats = build_h5(zarr_tmp, h5_tmp, channels, inputs.axis, cfg.periods,
                         cfg.chunk_steps, {c: regridded[c].attrs for c in channels})
        stages["hdf5+stats"] = time.perf_counter() - t0 - sum(stages.values())
        manifest = {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": [input_record(f, cfg.hash_inputs) for f in inputs.files],
            "config": cfg.to_json(),
            "channels": channels,
            "shape": [int(times.size), len(channels), TARGET_LAT.size, TARGET_LON.size],
            "time": {
                "start": str(times[0]), "end": str(times[-1]), "count": int(times.size),
                "step": inputs.axis.step, "gaps": [g.to_json() for g in inputs.axis.gaps],
                "duplicates_dropped": inputs.dropped_duplicates,
                "preliminary": [str(t) for t in inputs.preliminary.astype("datetime64[s]")],
            },
            "periods": cfg.periods.to_json(),
            "statistics": stats.to_json(channels),
            "chunks": {"steps": cfg.chunk_steps,
                       "count": -(-times.size // cfg.chunk_steps),
                       "complete": list(range(-(-times.size // cfg.chunk_steps)))},
            "outputs": {
                H5_NAME: {"size": h5_tmp.stat().st_size, "sha256": file_sha256(h5_tmp),
                          "data_offset": data_offset(h5_tmp)},
                ZARR_NAME: {"files": tree_sha256(zarr_tmp)},
            },
            "complete": True,
        }
        stages["checksums"] = time.perf_counter() - t0 - sum(stages.values())
        _publish(staging, out, manifest)
        input_bytes = sum(f.stat().st_size for f in inputs.files)
        return JobResult(out, tuple(channels), int(times.size), input_bytes,
                         time.perf_counter() - t0, stages)
    finally:
        if inputs is not None:
            inputs.close()
        cluster.close()
        _release_file_handles()
        shutil.rmtree(staging, ignore_errors=True)


def _release_file_handles() -> None:
    """Close netCDF/HDF5 handles now, in this thread.

    HDF5 is not thread-safe: left to the garbage collector, a handle may be closed from a
    Dask client thread while this thread opens another file.
    """
    import gc

    gc.collect()


def _write_zarr(ds: xr.Dataset, path: Path, cfg: PreprocessConfig, progress: bool,
                client) -> None:
    """Create the store from a template, then write each time chunk by region on Dask."""
    from dask.distributed import as_completed

    encoding = {c: {"chunks": (cfg.chunk_steps, TARGET_LAT.size, TARGET_LON.size)}
                for c in ds.data_vars}
    encoding["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64",
                        "calendar": "proleptic_gregorian"}
    ds = ds.drop_vars("expver", errors="ignore")
    with warnings.catch_warnings():  # zarr warns that consolidated metadata is not in v3 spec
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        ds.to_zarr(path, mode="w", compute=False, encoding=encoding, zarr_format=3,
                   consolidated=True)
    nt = ds.sizes["time"]
    bounds = [(a, min(nt, a + cfg.chunk_steps)) for a in range(0, nt, cfg.chunk_steps)]
    body = ds.drop_vars(["lat", "lon"])
    writes = [body.isel(time=slice(a, b)).to_zarr(path, region={"time": slice(a, b)},
                                                  compute=False, zarr_format=3)
              for a, b in bounds]
    from distributed import KilledWorker

    futures = client.compute(writes)
    bar = _progress_bar(len(futures), progress)
    try:
        for fut in as_completed(futures):
            fut.result()
            bar.update(1)
    except KilledWorker as exc:
        raise ResourceError(
            f"{path.parent.parent}: Dask workers died repeatedly (memory limit "
            f"{cfg.dask.memory_limit} per worker?); raise dask.memory_limit or "
            "--memory-limit") from exc
    finally:
        bar.close()


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="time chunks", unit="chunk", disable=not enabled)


def _publish(staging: Path, out: Path, manifest: dict) -> None:
    """Move the staged outputs into place; the manifest (complete: true) goes last.

    The old manifest is removed first, so that a reader never sees a complete manifest next to
    outputs it does not describe.
    """
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    trash = staging / "old"
    trash.mkdir()
    for name in (ZARR_NAME, H5_NAME):
        final = out / name
        if final.exists():
            os.replace(final, trash / name)
        os.replace(staging / name, final)
    atomic_write_json(out / MANIFEST_NAME, manifest)


def with_overrides(cfg: PreprocessConfig, **kw) -> PreprocessConfig:
    """``cfg`` with the non-None keyword values replaced (dask.* keys use a 'dask_' prefix)."""
    dask_kw = {k[5:]: v for k, v in kw.items() if k.startswith("dask_") and v is not None}
    top = {k: v for k, v in kw.items() if not k.startswith("dask_") and v is not None}
    if dask_kw:
        top["dask"] = dataclasses.replace(cfg.dask, **dask_kw)
    return dataclasses.replace(cfg, **top)
