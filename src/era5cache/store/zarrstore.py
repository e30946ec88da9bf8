"""The staged Zarr store's files: the template, one whole time chunk per write, hard links.

Functions that run on Dask workers (:func:`write_template`, :func:`store_chunk`) live here,
away from the job's driver (:mod:`.job`), so that a worker process loads only Zarr, xarray
and numpy for them (see :mod:`.forkserver_preload`).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ..format.manifest import fsync_path

# How each channel's chunks are compressed: Blosc's LZ4 on byte-shuffled floats, faster to
# write and read than zarr's default Zstd and smaller on 2-degree fields (BENCHMARKS.md).
COMPRESSORS = ({"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                                                    "shuffle": "shuffle", "typesize": 4,
                                                    "blocksize": 0}},)


def stored_compressors(store: Path, channel: str) -> list[dict]:
    """The compressors (the codecs after the ``bytes`` serializer) of ``channel`` in a Zarr
    v3 ``store``, from its metadata: an append keeps those of the cache it extends, whose
    chunks it links."""
    codecs = json.loads((store / channel / "zarr.json").read_text())["codecs"]
    names = [c["name"] for c in codecs]
    return codecs[names.index("bytes") + 1:]


def template_of(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with each Dask-backed variable replaced by an uncomputed ``empty`` array of the
    same shape, chunks, dtype and attributes: what :func:`write_template` needs (it writes
    metadata only); shipped with the real graph, the template task would spend its time
    re-optimising every read and regrid task."""
    import dask.array as da

    out = ds.copy()
    for name, var in ds.variables.items():
        if isinstance(var.data, np.ndarray):
            continue
        out[name] = var.copy(data=da.empty(var.shape, chunks=var.data.chunks, dtype=var.dtype))
    return out


def write_template(ds: xr.Dataset, store: str, encoding: dict) -> None:
    """Create the Zarr store of ``ds`` (metadata and coordinates; no data). Runs on a Dask
    worker."""
    with warnings.catch_warnings():  # zarr: consolidated metadata is not in the v3 spec
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        ds.to_zarr(store, mode="w", compute=False, encoding=encoding, zarr_format=3,
                   consolidated=True)


def store_chunk(store: str, channels: list[str], a: int, b: int,
                *blocks: np.ndarray | list[np.ndarray], after=None) -> np.ndarray:
    """Write steps ``a:b`` (one whole Zarr chunk) of each channel and read them back: the
    bytes on disk must decode to the block (NaN where NaN). A channel's block may come as a
    list of consecutive pieces. Returns what was read back, shaped (b - a, channel, lat,
    lon), for the HDF5 writer (:mod:`.h5build`). Runs on a Dask worker; ``after``
    (ignored) is the template task it must follow."""
    import zarr

    group = zarr.open_group(store, mode="r+", use_consolidated=False)
    out = None
    for i, (ch, block) in enumerate(zip(channels, blocks, strict=True)):
        if isinstance(block, list):
            block = np.concatenate(block) if len(block) > 1 else block[0]
        arr = group[ch]
        arr[a:b] = block
        back = arr[a:b]
        if not np.array_equal(back, block, equal_nan=True):
            raise RuntimeError(
                f"{store}/{ch}: time steps {a}:{b} read back differently after writing "
                f"(block all-NaN: {bool(np.isnan(block).all())}, read back all-NaN: "
                f"{bool(np.isnan(back).all())})")
        if out is None:
            out = np.empty((b - a, len(channels), *back.shape[1:]), dtype=back.dtype)
        out[:, i] = back
    return out


def chunk_files(store: Path, channels: list[str], k: int) -> list[Path]:
    """The files of time chunk ``k`` (zarr v3 default chunk keys: ``<var>/c/<k>/0/0``)."""
    return [store / ch / "c" / str(k) / "0" / "0" for ch in channels]


def link_chunk(src: Path, dst: Path, channels: list[str], k: int) -> None:
    """Hard-link (or copy) chunk ``k`` of every channel from ``src`` into ``dst``. A chunk
    file missing from ``src`` held only fill values (NaN) and stays missing."""
    for s, d in zip(chunk_files(src, channels, k), chunk_files(dst, channels, k), strict=True):
        d.unlink(missing_ok=True)
        if not s.exists():
            continue
        d.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)


def fsync_chunk(store: Path, channels: list[str], k: int) -> None:
    for f in chunk_files(store, channels, k):
        if f.exists():  # else all fill values: zarr wrote no file
            fsync_path(f)
