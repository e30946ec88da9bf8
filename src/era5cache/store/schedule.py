"""The Zarr store's time chunks as tasks: one task per chunk writes it (and reads it back);
finished chunks are made durable and journalled. The runners (:mod:`.runners`) execute
them and hand each chunk to the HDF5 writer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..grid import NLAT, NLON
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


class ChunkWork:
    """The Zarr store's time chunks of one job, as both runners (:mod:`.runners`) write
    them: the template (unless resuming), the chunks an append hard-links, one task per
    remaining chunk (:func:`store_chunk`, lazy: a ``dask.delayed``), and what follows each
    finished chunk (fsync, the staging journal, a milestone).

    Every block is stacked in the order of ``channels`` (the cache's channel axis), whatever
    the order of ``plan.dataset``'s variables (a Zarr store lists them sorted). Chunks are
    written with zarr directly rather than by xarray region writes, which left a chunk
    unwritten now and then under CPU contention.
    """

    def __init__(self, plan: StorePlan, staging: Staging, channels: list[str],
                 base_zarr: Path):
        self.plan, self.staging, self.channels = plan, staging, list(channels)
        self.base_zarr, self.path = base_zarr, staging.zarr
        todo = [k for k in range(plan.n_chunks) if k not in staging.done]
        self.linked = [k for k in todo if plan.reuse[k]]  # hard-linked from base_zarr
        self.computed = [k for k in todo if not plan.reuse[k]]

    def template(self) -> tuple | None:
        """(:func:`write_template`, its arguments) for a fresh staging folder; None when
        resuming (zarr's temporary files a killed writer left are removed then)."""
        if self.staging.resumed:
            for junk in self.path.rglob("*.partial"):
                junk.unlink(missing_ok=True)
            return None
        compressors = (stored_compressors(self.base_zarr, self.channels[0])
                       if self.plan.reuse.any() else COMPRESSORS)  # linked chunks stay readable
        encoding = {c: {"chunks": (self.plan.chunk_steps, NLAT, NLON),
                        "compressors": list(compressors)} for c in self.channels}
        encoding["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64",
                            "calendar": "proleptic_gregorian",
                            "chunks": (self.plan.times.size,)}
        return write_template, (template_of(self.plan.dataset), str(self.path), encoding)

    def template_written(self) -> None:
        """The template is in the store: the journal says so (a rerun then resumes)."""
        self.staging.save()
        milestone("template")

    def tasks(self, after=None) -> dict[int, object]:
        """{chunk: the lazy :func:`store_chunk` of it} for the chunks to compute; ``after``:
        the template task they follow (Dask), if any."""
        import dask

        ds, plan = self.plan.dataset, self.plan
        whole = {c: chunk_sources(ds[c].data, (plan.blocks or {}).get(c))
                 for c in self.channels}
        out = {}
        for k in self.computed:
            a, b = plan.chunk_bounds(k)
            blocks = [whole[c].get(a, b) for c in self.channels]
            out[k] = dask.delayed(store_chunk, pure=False)(
                str(self.path), self.channels, a, b, *blocks, after=after,
                dask_key_name=f"store-chunk-{k}")
        return out

    def link(self) -> list[int]:
        """Hard-link the chunks an append keeps (after the template exists) and record
        them; those chunks."""
        for k in self.linked:
            link_chunk(self.base_zarr, self.path, self.channels, k)
        self.staging.record(self.linked)
        return self.linked

    def finished(self, k: int) -> None:
        """Chunk ``k`` is written: make it durable and record it."""
        fsync_chunk(self.path, self.channels, k)
        self.staging.record([k])
        milestone(f"chunks:{len(self.staging.done)}")


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


def progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="time chunks", unit="chunk",
                disable=not enabled)
