"""The Zarr store's time chunks scheduled on Dask: one task per chunk writes it (and reads it
back), finished chunks are made durable, journalled and handed to the HDF5 writer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..config.recipe import PreprocessConfig
from ..errors import InputError, ResourceError
from ..grid import NLAT, NLON
from ..read.combine import Era5Inputs
from ..regrid.quality import BadValueError
from .cluster import BackgroundClient
from .forkserver import limit_open_files
from .h5build import ChunkFeed, H5Builder
from .inputs import read_settings
from .milestones import milestone
from .plan import StorePlan
from .staging import Staging
from .zarrstore import (
    COMPRESSORS,
    fsync_chunk,
    link_chunk,
    store_chunk,
    stored_compressors,
    template_of,
    write_template,
)


def write_zarr(plan: StorePlan, staging: Staging, cfg: PreprocessConfig, progress: bool,
                cluster: BackgroundClient, inputs: Era5Inputs, base_zarr: Path,
                feed: ChunkFeed, builder: H5Builder) -> None:
    """Create the store from a template (unless resuming), hard-link the chunks an append
    keeps, then write each remaining time chunk on Dask (:func:`store_chunk`). Each finished
    chunk is fsync'ed, recorded in the staging journal and handed to the HDF5 writer
    (``feed``, with the block the worker read back; ``builder`` is checked for errors).

    The template is written by a worker (:func:`write_template`), whose Zarr and xarray are
    loaded already, while the other worker starts regridding (this process never imports
    Zarr on a fresh build). The chunk writes wait for it.

    Chunks are written with zarr directly rather than by xarray region writes, which left a
    chunk unwritten now and then under CPU contention.

    Every block is stacked in the order of ``feed.channels`` (the cache's channel axis),
    whatever the order of ``plan.dataset``'s variables (a Zarr store lists them sorted).
    """
    import dask
    from distributed import KilledWorker

    path = staging.zarr
    ds = plan.dataset
    channels = feed.channels  # the cache's channel order: each block is stacked in it
    client = cluster.get()
    # worker memory must not grow with the number of inputs; deep chunks decompressed once
    client.run(limit_open_files, *read_settings(cfg, inputs))
    template = None
    if not staging.resumed:
        compressors = (stored_compressors(base_zarr, channels[0]) if plan.reuse.any()
                       else COMPRESSORS)  # linked chunks stay readable
        encoding = {c: {"chunks": (cfg.chunk_steps, NLAT, NLON),
                        "compressors": list(compressors)} for c in channels}
        encoding["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64",
                            "calendar": "proleptic_gregorian", "chunks": (plan.times.size,)}
        template = client.submit(write_template, template_of(ds), str(path), encoding,
                                 pure=False, key="zarr-template")
    else:  # a killed writer may have left zarr's temporary files behind
        for junk in path.rglob("*.partial"):
            junk.unlink(missing_ok=True)
        for k in staging.done:  # written by the interrupted run
            feed.put(k)
    todo = [k for k in range(plan.n_chunks) if k not in staging.done]
    linked = [k for k in todo if plan.reuse[k]]
    todo = [k for k in todo if not plan.reuse[k]]
    writes = []
    whole = {c: chunk_sources(ds[c].data, (plan.blocks or {}).get(c)) for c in channels}
    for k in todo:
        a, b = plan.chunk_bounds(k)
        blocks = [whole[c].get(a, b) for c in channels]
        writes.append(dask.delayed(store_chunk, pure=False)(
            str(path), channels, a, b, *blocks, after=template,
            dask_key_name=f"store-chunk-{k}"))
    bar = _progress_bar(plan.n_chunks, progress, initial=plan.n_chunks - len(todo))
    try:
        futures = client.compute(writes) if writes else []
        chunk_of = {f.key: k for f, k in zip(futures, todo, strict=True)}
        done = released_as_completed(futures + ([template] if template is not None else []))
        if template is None:
            _link_chunks(base_zarr, path, channels, linked, staging, feed)
        for fut, block in done:
            if fut is template:
                staging.save()
                milestone("template")
                _link_chunks(base_zarr, path, channels, linked, staging, feed)
                continue
            k = chunk_of[fut.key]
            fsync_chunk(path, channels, k)
            staging.record([k])
            feed.put(k, block)
            del block
            builder.check()
            bar.update(1)
            milestone(f"chunks:{len(staging.done)}")
    except BadValueError as exc:
        i = int(exc.first)
        when = inputs.dataset["time"].values[i].astype("datetime64[s]")
        raise InputError(f"{inputs.source[i]}: {exc.variable!r} {exc.problem} at {when}"
                         f"{exc.hint}") from exc
    except KilledWorker as exc:
        raise ResourceError(
            f"{staging.out}: Dask workers died repeatedly (memory limit "
            f"{cfg.dask.memory_limit} per worker?); raise dask.memory_limit or "
            "--memory-limit") from exc
    finally:
        bar.close()
        staging.save()


def released_as_completed(futures: list) -> Iterator[tuple]:
    """(future, result) in the order the tasks finish; each future is released as its
    result is handed over, so the worker may drop the result (held to the end of the job,
    every chunk's block would stay on its worker). Released is released: other references
    the caller keeps to the futures do not hold the results."""
    from dask.distributed import as_completed

    for fut in as_completed(futures):
        result = fut.result()
        fut.release()
        yield fut, result


class WholeBlocks:
    """The blocks of a Dask array (chunked along its first axis only) that make up rows
    ``a:b``, as the Delayed objects of the blocks themselves when ``a:b`` is made of whole
    blocks (read blocks are aligned with the chunks: :func:`era5cache.read.blocks.block_steps`),
    else what ``fallback`` gives for ``a:b``, else the slice. A slice per chunk adds a merge
    and a finalize task per chunk and channel and a copy of the array's graph; the blocks
    are the graph's own tasks."""

    def __init__(self, arr, fallback: WholeBlocks | None = None):
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


def chunk_sources(chunked, read_blocks=None) -> WholeBlocks:
    """Where each Zarr chunk task takes a channel's data from: the regridded read blocks
    themselves (``read_blocks``, a fresh build) for a chunk made of whole blocks, else the
    array rechunked to the Zarr chunks (``chunked``), whose merge task per chunk shares a
    read block that straddles two chunks (a slice of the read blocks there would make Dask
    fuse the read and regrid into each of the two chunk tasks: read twice)."""
    rechunked = WholeBlocks(chunked)
    return rechunked if read_blocks is None else WholeBlocks(read_blocks, fallback=rechunked)


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
