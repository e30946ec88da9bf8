"""Each Dask worker's file cache for one job (:class:`era5cache.read.filecache.FileCache`),
owned by a ``WorkerPlugin``: set up with the worker (also one that joins later), closed when
the job ends and unregisters it, so that a worker serving many jobs (an existing cluster's)
holds no job's files past it."""

from __future__ import annotations

from distributed import WorkerPlugin

from ..read.filecache import FileCache


class FileCachePlugin(WorkerPlugin):
    """A worker's :class:`FileCache` named ``name`` (the job's cache's name: the read
    tasks find it by that), at most ``max_open`` files, ``chunk_cache_bytes`` each."""

    def __init__(self, name: str, max_open: int, chunk_cache_bytes: int):
        self.name, self.max_open, self.chunk_cache_bytes = name, max_open, chunk_cache_bytes
        self.cache: FileCache | None = None

    def setup(self, worker) -> None:
        self.cache = FileCache(self.max_open, self.chunk_cache_bytes, name=self.name)

    def teardown(self, worker) -> None:
        if self.cache is not None:
            self.cache.close()

    @classmethod
    def like(cls, files: FileCache) -> FileCachePlugin:
        """The plugin whose workers' caches have the name and limits of ``files``."""
        return cls(files.name, files.max_open, files.chunk_cache_bytes)
