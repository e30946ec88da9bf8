"""One cache of open input files for every reader: netCDF4 files (:mod:`.netcdf`), h5py
files whose deflated chunks are read directly (:mod:`.h5chunks`), GRIB files
(:mod:`.gribfields`).

The job's workers keep their input files open from one read task to the next, so that a
compressed chunk deeper in time than a read block (a mirror's month in one chunk: 1.5 GB
inflated, 4-5 s to inflate) is inflated once per worker, not once per block: measured on the
744-step mirror file with 2 workers, a worker that closed the file between tasks opened it 1-3
times and the job took 10.6-33.5 s. At most ``max_open`` files stay open (each keeps its
chunk caches), the least recently used closed first, as xarray's ``backends.lru_cache``.

A :class:`FileCache` is an object the caller owns and passes to the readers
(:class:`era5cache.read.options.ReadOptions`); nothing is kept in module state. The lazy
arrays that read a file hold it. In the process that made it (the in-process runner, Dask's
synchronous scheduler) the cache itself is used. Pickled (into a Dask worker: each read task
is), it becomes a :class:`WorkerFiles` of the same name, which at each read looks up the
running worker's cache of that name, set up with the worker by the job's
:class:`era5cache.store.workerfiles.FileCachePlugin` and closed when the job ends (a task's
arguments are unpickled before the task runs, outside it, so the lookup waits for the
read); where there is none, a cache of its own that closes its files when it is freed.

A file handed out stays open until ``max_open`` other files are opened after it: use a
cache from one thread at a time, as the job's single-threaded workers and the in-process
runner do.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar

DEFAULT_OPEN_FILES = 4
DEFAULT_CHUNK_CACHE_BYTES = 64 * 2**20  # per open file, as netCDF-C's default chunk cache


class Closable(Protocol):
    def close(self) -> None: ...


F = TypeVar("F", bound=Closable)


class FileCache:
    """Open files by key, least recently used closed first beyond ``max_open``.

    Args:
        max_open: files kept open at most (at least 1).
        chunk_cache_bytes: bytes of decompressed chunks each open file may keep (HDF5's
            chunk cache of each netCDF4 variable, the chunks :mod:`.h5chunks` keeps
            inflated); at least :data:`DEFAULT_CHUNK_CACHE_BYTES`.
        name: what a Dask worker's cache of the job is registered as (unique by default).

    ``counts`` tallies what the readers did (``"opened"`` files, ``"inflated"`` chunks) for
    diagnostics and tests.
    """

    def __init__(self, max_open: int = DEFAULT_OPEN_FILES,
                 chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES, name: str | None = None):
        self.name = name or f"era5cache-files-{uuid.uuid4().hex}"
        self.max_open = max(1, max_open)
        self.chunk_cache_bytes = max(chunk_cache_bytes, DEFAULT_CHUNK_CACHE_BYTES)
        self.counts: Counter[str] = Counter()
        self._open: OrderedDict[Hashable, Closable] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, opener: Callable[[], F]) -> F:
        """The open file of ``key``, opened by ``opener()`` when not open; it becomes the
        most recently used, and the least recently used beyond ``max_open`` are closed."""
        with self._lock:
            f = self._open.get(key)
            if f is None:
                f = self._open[key] = opener()
                self.counts["opened"] += 1
                self._trim()
            self._open.move_to_end(key)
            return f  # type: ignore[return-value]

    def discard(self, key: Hashable) -> bool:
        """Close the file of ``key`` if open; whether it was."""
        with self._lock:
            f = self._open.pop(key, None)
        if f is not None:
            f.close()
        return f is not None

    def limit(self, max_open: int, chunk_cache_bytes: int = 0) -> None:
        """New limits (as the constructor's), for files opened from now on; files beyond
        ``max_open`` are closed now."""
        with self._lock:
            self.max_open = max(1, max_open)
            self.chunk_cache_bytes = max(chunk_cache_bytes, DEFAULT_CHUNK_CACHE_BYTES)
            self._trim()

    def close(self) -> int:
        """Close every open file; how many."""
        with self._lock:
            files = list(self._open.values())
            self._open.clear()
        for f in files:
            f.close()
        return len(files)

    def keys(self) -> list[Hashable]:
        """Keys of the open files, least recently used first."""
        with self._lock:
            return list(self._open)

    def _trim(self) -> None:
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()

    def __len__(self) -> int:
        return len(self._open)

    def __reduce__(self):  # into a Dask worker: that worker's cache of this name
        return (WorkerFiles, (self.name,))

    def __dask_tokenize__(self) -> tuple:
        return (FileCache.__name__, self.name)

    def __copy__(self) -> FileCache:
        return self

    def __deepcopy__(self, memo: dict) -> FileCache:
        return self


class Files(Protocol):
    """What the readers use of a file cache: :class:`FileCache` or :class:`WorkerFiles`."""

    name: str

    def get(self, key: Hashable, opener: Callable[[], F]) -> F: ...

    def discard(self, key: Hashable) -> bool: ...

    @property
    def chunk_cache_bytes(self) -> int: ...

    @property
    def counts(self) -> Counter[str]: ...


class WorkerFiles:
    """A :class:`FileCache` by name, as unpickled: at each use the cache of that name of
    the Dask worker running the task (:func:`worker_cache`), else a cache of its own, whose
    files close when this object is freed (as xarray's file manager closes a file when its
    last reference goes)."""

    def __init__(self, name: str):
        self.name = name
        self._own: FileCache | None = None

    def _cache(self) -> FileCache:
        found = worker_cache(self.name)
        if found is not None:
            return found
        if self._own is None:
            self._own = FileCache(name=self.name)
        return self._own

    def get(self, key: Hashable, opener: Callable[[], F]) -> F:
        return self._cache().get(key, opener)

    def discard(self, key: Hashable) -> bool:
        return self._cache().discard(key)

    @property
    def chunk_cache_bytes(self) -> int:
        return self._cache().chunk_cache_bytes

    @property
    def counts(self) -> Counter[str]:
        return self._cache().counts

    def __reduce__(self):
        return (WorkerFiles, (self.name,))

    def __dask_tokenize__(self) -> tuple:
        return (FileCache.__name__, self.name)

    def __del__(self) -> None:
        if self._own is not None:
            self._own.close()


def worker_cache(name: str) -> FileCache | None:
    """The cache named ``name`` of the Dask worker this runs in (its plugin of that name
    holds it as ``cache``); None outside a worker or where the worker has none."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return getattr(worker.plugins.get(name), "cache", None)
