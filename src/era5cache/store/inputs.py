"""The job's inputs: opened and checked, with read blocks sized to the workers' memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from ..config.recipe import PreprocessConfig
from ..config.sizes import memory_bytes
from ..errors import InputError
from ..read.blocks import TARGET_CHUNK_BYTES
from ..read.channels import all_channels, base_names, select_channels
from ..read.combine import Era5Inputs, open_era5
from ..read.filecache import DEFAULT_CHUNK_CACHE_BYTES as NETCDF_CHUNK_CACHE
from ..read.filecache import DEFAULT_OPEN_FILES as OPEN_FILES_PER_WORKER
from ..read.filecache import Files
from ..read.options import ReadOptions
from ..read.physical import quantity
from ..read.timeselect import ACCUMULATION_ATTR
from ..regrid.adapter import regrid_dataset
from ..regrid.conservative import ConservativeRegridder, CoverageError
from ..timeaxis import format_step

WORKER_BASE = 160 * 2**20  # a forked worker at rest plus what glibc keeps (read_block_ceiling)


def read_chunk_bytes(cfg: PreprocessConfig) -> int:
    """Bytes of decoded input per task: :data:`TARGET_CHUNK_BYTES`, less where the worker
    memory limit calls for it (:func:`read_block_ceiling`)."""
    ceiling = read_block_ceiling(cfg)
    return TARGET_CHUNK_BYTES if ceiling is None else min(TARGET_CHUNK_BYTES, ceiling)


def read_block_ceiling(cfg: PreprocessConfig) -> int | None:
    """The most decoded input one read block may hold under the worker memory limit: also
    what lets a block cover whole HDF5 chunks of a file chunked over many time steps
    (:func:`era5cache.read.blocks.block_steps`). None when the worker memory is not known (an
    existing cluster, or no limit).

    A forked worker idles at about 110 MB and glibc keeps up to a quarter of the limit of
    freed memory, so a block is at most (limit - 160 MiB) / 8 (with / 5 a worker came too
    close to Dask's kill threshold, 95%), and at least 4 MiB.
    """
    if not cfg.dask.memory_limit or cfg.dask.scheduler:
        return None
    return int(max(4 * 2**20, (memory_bytes(cfg.dask.memory_limit) - WORKER_BASE) // 8))


def read_settings(cfg: PreprocessConfig, inputs: Era5Inputs) -> tuple[int, int]:
    """Files each worker keeps open and the chunk cache per open file
    (:meth:`era5cache.read.filecache.FileCache.limit`): a cache of the largest input
    time slab (:func:`era5cache.read.blocks.disk_chunk_bytes`) when that exceeds netCDF's
    default, with as many open files as such caches fit in the worker memory limit beside
    what :func:`check_chunk_memory` counts (at least one)."""
    cache = inputs.chunk_cache[0]
    if cache <= NETCDF_CHUNK_CACHE:
        return OPEN_FILES_PER_WORKER, 0
    if not cfg.dask.memory_limit or cfg.dask.scheduler:
        return 1, cache
    room = (memory_bytes(cfg.dask.memory_limit) - _reserve(read_chunk_bytes(cfg))
            - cache)  # the chunk being inflated
    return int(max(1, min(OPEN_FILES_PER_WORKER, room // cache))), cache


def _reserve(block: int) -> int:
    """Worker memory beside the chunk caches: a worker at rest and eight read blocks of
    ``block`` bytes (netCDF4 scales packed values in float64)."""
    return WORKER_BASE + 8 * block


def chunk_memory_need(cache: int, block: int) -> int:
    """Worker memory limit, in bytes rounded up to a quarter GiB, that reads files whose
    chunks of one time slab take ``cache`` bytes decompressed, in read blocks of ``block``
    bytes: twice the slab (the kept chunks, and the compressed and inflated bytes while one
    inflates), a worker at rest and eight blocks (measured: a 744-step int16 chunk of 1545
    MB peaked a worker at 3225 MB through HDF5, 2755 MB through :mod:`era5cache.read.h5chunks`)."""
    need = 2 * cache + _reserve(block)
    return int(-(-need // 2**28) * 2**28)


def check_chunk_memory(cfg: PreprocessConfig, inputs: Era5Inputs) -> None:
    """:class:`InputError` naming the file when the compressed chunks of one time slab
    (:func:`era5cache.read.blocks.disk_chunk_bytes`), kept decompressed so that each is
    decompressed once, would not fit in a worker twice (the kept chunks, and the
    compressed and inflated copies while one inflates) beside eight read blocks (netCDF4
    scales packed values in float64); the message gives the memory limit that does."""
    cache, path = inputs.chunk_cache
    if cache <= NETCDF_CHUNK_CACHE or not cfg.dask.memory_limit or cfg.dask.scheduler:
        return
    need = chunk_memory_need(cache, read_chunk_bytes(cfg))
    if need > memory_bytes(cfg.dask.memory_limit):
        gib = need / 2**30
        raise InputError(
            f"{path}: the compressed chunks of one time slab hold {cache / 1e6:.0f} MB "
            "decompressed, which each worker keeps to decompress each chunk once (a read "
            f"block takes fewer steps than a chunk); the worker memory limit "
            f"{cfg.dask.memory_limit} is too small: set dask.memory_limit (--memory-limit) "
            f"to {gib:g}GiB or more (and fewer dask.workers if the machine's memory calls "
            "for it)")


def open_inputs(cfg: PreprocessConfig, extract_dir: Path | None = None,
                channels: tuple[str, ...] | None = None, files: Files | None = None
                ) -> tuple[Era5Inputs, xr.Dataset, ConservativeRegridder]:
    """Open and check the inputs (CDS archives unpacked into ``extract_dir``, files kept
    open by ``files``); return them, the selected channels (``channels``, else the
    recipe's, else all) and the regridder."""
    if not cfg.inputs:
        raise InputError(f"{cfg.source or 'command line'}: no inputs configured "
                         "(give --input or set `inputs` in the recipe)")
    channels = channels or cfg.variables
    options = ReadOptions(chunk_bytes=read_chunk_bytes(cfg), align_steps=cfg.chunk_steps,
                          max_block_bytes=read_block_ceiling(cfg), member=cfg.member,
                          extract_dir=extract_dir, files=files, time=cfg.time,
                          storage_options=cfg.storage_options)
    inputs = open_era5(list(cfg.inputs), base_names(channels), options)
    check_chunk_memory(cfg, inputs)
    channels = channels or tuple(all_channels(inputs.dataset))
    ds = select_channels(inputs.dataset, channels, where=inputs.first,
                         available=inputs.available)
    if inputs.axis.irregular:
        t = inputs.axis.irregular[0]
        i = int(np.searchsorted(inputs.dataset["time"].values.astype("datetime64[s]"), t))
        raise InputError(
            f"{inputs.source[i]}: irregular time steps: {t} is not a whole number of "
            f"{format_step(inputs.axis.step)} steps after the previous step")
    try:
        regridder = ConservativeRegridder.for_grid(inputs.grid)
    except CoverageError as exc:
        raise InputError(f"{inputs.first}: {exc}") from exc
    return inputs, ds, regridder



def regridded(ds: xr.Dataset, regridder: ConservativeRegridder,
              cfg: PreprocessConfig) -> xr.Dataset:
    """``ds`` regridded lazily, with the CF attributes the store carries; a known variable's
    values outside its physical range (:mod:`era5cache.read.physical`) fail the block."""
    channels = list(ds.data_vars)
    known = {c: quantity(c) for c in channels}
    bounds = {c: (q.low, q.high, q.units[0]) for c, q in known.items() if q is not None}
    out = regrid_dataset(ds, regridder, {c: cfg.threshold(c) for c in channels},
                         bounds=bounds)
    for c in channels:
        out[c].attrs = {k: v for k, v in ds[c].attrs.items()
                        if k in ("units", "long_name", "standard_name", ACCUMULATION_ATTR)}
    out.attrs = {
        "title": "ERA5 on a 2-degree grid (first-order conservative)",
        "source": "ERA5 reanalysis (Copernicus Climate Change Service)",
        "era5cache_version": __version__,
        "Conventions": "CF-1.8",
    }
    return out
