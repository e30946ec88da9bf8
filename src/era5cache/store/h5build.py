"""The HDF5 cache built by the job: streamed from the Zarr time chunks while the workers
regrid (:class:`H5Builder`), or from the finished store (:func:`build_h5`).

Each Dask task writes one time chunk of the Zarr store and reads it back to check it
(:func:`era5cache.store.zarrstore.store_chunk`); the block it read back comes to the job's
process, where :class:`H5Builder` runs :func:`era5cache.format.h5.write_h5` in a thread and
takes the chunks in time order as they arrive (:class:`ChunkFeed`). A chunk this run did not
compute (kept from an interrupted run, or from the published cache by an append) is read
from the Zarr store, as is one whose block arrived while more than ``max_bytes`` of blocks
were already waiting. The statistics are accumulated in the same order as when the cache is
built from the finished store (:func:`build_h5`), so the bytes are the same.

The feed also records the all-NaN steps of each channel
(:func:`era5cache.regrid.quality.all_nan_steps`), which decide whether the streamed file
stands: with every step kept it does; otherwise the job drops it and builds the cache from
the Zarr store without those steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..format.h5 import CacheSpec, CacheStats, write_h5
from ..grid import NLAT, NLON
from ..regrid.quality import all_nan_steps


class FeedClosed(RuntimeError):
    """The job stopped before the writer had every chunk."""


class ChunkFeed:
    """Time chunks ``k`` (steps ``k * chunk_steps`` up to the next chunk) of a Zarr store,
    handed over in order through :meth:`read_block`, as :meth:`put` announces them.

    Args:
        zarr_path: the store, read for chunks announced without a block.
        channels: the variables, in the order of the cache's channel axis.
        chunk_steps: time steps per Zarr chunk (the last may be shorter).
        n_time: time steps in the store.
        max_bytes: blocks waiting beyond this are dropped and re-read from the store.
        produce: ``produce(k)`` computes chunk ``k`` (writes it to the store and returns
            its block) when :meth:`read_block` needs it before it is announced: the
            in-process runner's way, the writer pulling the chunks in its own thread.
            None: the writer waits for :meth:`put`.
    """

    def __init__(self, zarr_path: Path, channels: list[str], chunk_steps: int, n_time: int,
                 max_bytes: int = 512 * 2**20,
                 produce: Callable[[int], np.ndarray] | None = None):
        self.zarr_path, self.channels = zarr_path, list(channels)
        self.produce = produce
        self.chunk_steps, self.n_time, self.max_bytes = chunk_steps, n_time, max_bytes
        n_chunks = -(-n_time // chunk_steps)
        self._ready = [False] * n_chunks
        self._blocks: dict[int, np.ndarray] = {}
        self._waiting = 0  # bytes in _blocks
        self._closed = False
        self._cond = threading.Condition()
        self._group = None
        self.all_nan = {c: np.zeros(n_time, dtype=bool) for c in self.channels}

    def put(self, k: int, block: np.ndarray | None = None) -> None:
        """Chunk ``k`` is in the store; ``block`` (steps, channel, lat, lon) float32 is its
        content, if at hand."""
        with self._cond:
            if block is not None and self._waiting + block.nbytes <= self.max_bytes:
                self._blocks[k] = block
                self._waiting += block.nbytes
            self._ready[k] = True
            self._cond.notify_all()

    @property
    def waiting(self) -> tuple[int, int]:
        """Blocks handed over and not yet taken by the writer: (count, bytes)."""
        with self._cond:
            return len(self._blocks), self._waiting

    def close(self) -> None:
        """No more chunks will come: a :meth:`read_block` waiting for one raises
        :class:`FeedClosed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read_block(self, a: int, b: int) -> np.ndarray:
        """Steps ``a:b`` (one whole chunk), shaped (b - a, channel, lat, lon) float32; waits
        until the chunk is announced. Records its all-NaN steps."""
        k, rem = divmod(a, self.chunk_steps)
        if rem or b != min(self.n_time, a + self.chunk_steps):
            raise ValueError(f"steps {a}:{b} are not time chunk {k} of {self.zarr_path}")
        if self.produce is not None and not self._ready[k]:
            self.put(k, self.produce(k))
        with self._cond:
            while not self._ready[k]:
                if self._closed:
                    raise FeedClosed(f"{self.zarr_path}: time chunk {k} never came")
                self._cond.wait()
            block = self._blocks.pop(k, None)
            if block is not None:
                self._waiting -= block.nbytes
        if block is None:
            block = self._read_store(a, b)
        for i, c in enumerate(self.channels):
            self.all_nan[c][a:b] = all_nan_steps(block[:, i])
        return block

    def _read_store(self, a: int, b: int) -> np.ndarray:
        if self._group is None:
            import zarr

            self._group = zarr.open_group(str(self.zarr_path), mode="r")
        return np.stack([self._group[c][a:b] for c in self.channels], axis=1)


class H5Builder:
    """:func:`era5cache.format.h5.write_h5` of every step of ``feed`` into ``h5_path``, in a
    thread; :meth:`result` waits for it and returns the statistics. ``spec.channels`` and
    ``spec.block_steps`` are the feed's."""

    def __init__(self, feed: ChunkFeed, spec: CacheSpec, h5_path: Path):
        self.feed = feed
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="era5cache-h5")
        self._future: Future = self._pool.submit(write_h5, feed.read_block, spec, h5_path)
        self._pool.shutdown(wait=False)

    def check(self) -> None:
        """Raise the writer's error now if it has failed (e.g. disk full)."""
        if self._future.done() and self._future.exception() is not None:
            raise self._future.exception()

    def result(self) -> CacheStats:
        return self._future.result()

    def abandon(self) -> None:
        """Stop the writer (its file is left incomplete) and wait for it to let go of it."""
        self.feed.close()
        try:
            self._future.result()
        except Exception:  # FeedClosed, or its own error: the job's error is reported
            pass


def build_h5(zarr_path: Path, h5_path: Path, spec: CacheSpec,
             keep: np.ndarray | None = None) -> CacheStats:
    """Write ``h5_path`` from the Zarr store, streaming ``spec.block_steps`` steps at a time.

    ``keep``: boolean per Zarr step, the steps that go into the cache (default: all);
    ``spec.times`` must be the kept steps' times (else ``ValueError``).
    """
    import zarr

    group = zarr.open_group(str(zarr_path), mode="r")
    arrays = [group[ch] for ch in spec.channels]
    times = zarr_times(group)
    rows = np.arange(times.size) if keep is None else np.flatnonzero(keep)
    if not np.array_equal(times[rows], spec.times.astype("datetime64[s]")):
        raise ValueError(f"{zarr_path}: its kept time steps are not the cache's")

    def read_block(a: int, b: int) -> np.ndarray:
        if b <= a:
            return np.zeros((0, len(arrays), NLAT, NLON), np.float32)
        lo, hi = int(rows[a]), int(rows[b - 1]) + 1
        block = np.stack([arr[lo:hi] for arr in arrays], axis=1)
        return block if hi - lo == b - a else block[rows[a:b] - lo]

    return write_h5(read_block, spec, h5_path)


def zarr_times(group) -> np.ndarray:
    """The ``time`` array of an era5cache Zarr group (a zarr Group), datetime64[s]."""
    t = group["time"]
    units = t.attrs.get("units", "")
    raw = t[:]
    if not units.startswith("seconds since 1970-01-01"):
        raise ValueError(f"unexpected time units {units!r} in Zarr store")
    return raw.astype(np.int64).astype("datetime64[s]")
