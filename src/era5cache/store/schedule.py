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
        whole = dict(zip(self.channels, joint_sources(
            [ds[c].data for c in self.channels],
            [(plan.blocks or {}).get(c) for c in self.channels]), strict=True))
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
    ``a:b``, as the Delayed objects of the blocks themselves (``blocks``, one per block;
    default: :func:`joint_blocks` of ``arr`` alone) when ``a:b`` is made of whole blocks
    (read blocks are aligned with the chunks: :func:`era5cache.read.blocks.block_steps`),
    else what ``fallback`` gives for ``a:b``, else the slice. A slice per chunk adds a
    merge and a finalize task per chunk and channel and a copy of the array's graph; the
    blocks are the graph's own tasks."""

    def __init__(self, arr, blocks: list | None = None, fallback: WholeBlocks | None = None):
        self.arr, self.fallback = arr, fallback
        self.blocks = joint_blocks([arr])[0] if blocks is None else blocks
        self.edges = np.concatenate([[0], np.cumsum(arr.chunks[0])])

    def get(self, a: int, b: int):
        i, j = np.searchsorted(self.edges, [a, b])
        if (not self.blocks or j >= self.edges.size or self.edges[i] != a
                or self.edges[j] != b):
            return self.fallback.get(a, b) if self.fallback is not None else self.arr[a:b]
        return list(self.blocks[i:j])


def joint_sources(chunked: list, read_blocks: list) -> list[WholeBlocks]:
    """Where each Zarr chunk task takes each channel's data from: the regridded read
    blocks themselves (``read_blocks``, a fresh build; None for a channel without) for a
    chunk made of whole blocks, else the array rechunked to the Zarr chunks (``chunked``),
    whose merge task per chunk shares a read block that straddles two chunks (a slice of
    the read blocks there would make Dask fuse the read and regrid into each of the two
    chunk tasks: read twice).

    The graphs of all channels are optimized together, once (:func:`joint_blocks`): each
    channel optimized on its own would fuse a read that several channels share (a Zarr
    store's chunk holds every level of a variable: z500 and z850) into each channel's
    tasks, read once per channel."""
    given = [b for b in read_blocks if b is not None]
    delayed = joint_blocks(list(chunked) + given)
    rest = iter(zip(given, delayed[len(chunked):], strict=True))
    out = []
    for arr, blocks, read in zip(chunked, delayed[:len(chunked)], read_blocks, strict=True):
        rechunked = WholeBlocks(arr, blocks)
        out.append(rechunked if read is None else WholeBlocks(*next(rest), rechunked))
    return out


def chunk_sources(chunked, read_blocks=None) -> WholeBlocks:
    """:func:`joint_sources` of one channel."""
    return joint_sources([chunked], [read_blocks])[0]


def joint_blocks(arrays: list) -> list:
    """The blocks of each Dask array (chunked along the first axis only; else none for it)
    as Delayed objects of one graph: the arrays' graphs merged and optimized together, as
    ``dask.compute`` of them all would."""
    from dask.base import tokenize
    from dask.core import flatten
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    if not arrays:
        return []
    keys = [list(flatten(a.__dask_keys__())) if all(n == 1 for n in a.numblocks[1:])
            else [] for a in arrays]
    merged = HighLevelGraph.merge(*[a.__dask_graph__() for a in arrays])
    graph = arrays[0].__dask_optimize__(merged, [k for ks in keys for k in ks])
    layer = f"joint-blocks-{tokenize(*[a.name for a in arrays])}"
    graph = HighLevelGraph.from_collections(layer, graph, dependencies=())
    return [[Delayed(k, graph, layer=layer) for k in ks] for ks in keys]


def progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="time chunks", unit="chunk",
                disable=not enabled)
