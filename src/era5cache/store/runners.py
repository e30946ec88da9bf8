"""The two runners of the job's store phase (:func:`era5cache.store.phases.store`): the same
chunk tasks (:class:`era5cache.store.schedule.ChunkWork`) and the same HDF5 writer
(:func:`era5cache.format.h5.write_h5`), so the same bytes (a test compares them).

* :class:`InProcessRunner`: one thread. The HDF5 writer pulls each chunk as it needs it,
  and that chunk's task runs then, on Dask's synchronous scheduler (reads, regridding, the
  Zarr write), between two of the writer's blocks: netCDF4 and HDF5, which are not
  thread-safe, are only ever used from this thread. For tests, debugging and small jobs.
* :class:`DaskRunner`: the chunk tasks on a Dask cluster's worker processes, the HDF5
  writer in a thread of this process taking the chunks as they finish
  (:class:`era5cache.store.h5build.H5Builder`); each worker's input files are kept open by a
  file cache its :class:`era5cache.store.workerfiles.FileCachePlugin` owns for the job.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import ResourceError
from ..format.h5 import CacheSpec, write_h5
from ..read.filecache import FileCache
from .cluster import BackgroundClient
from .h5build import ChunkFeed, H5Builder
from .schedule import ChunkWork, progress_bar, released_as_completed
from .state import Stored


def _feed(work: ChunkWork, produce=None) -> ChunkFeed:
    plan = work.plan
    return ChunkFeed(work.path, work.channels, plan.chunk_steps, plan.times.size,
                     produce=produce)


class InProcessRunner:
    """Runs the store phase in the calling thread (module docstring); ``files`` is used
    as is (nothing is pickled) and closed when the phase ends."""

    def store(self, work: ChunkWork, spec: CacheSpec, part: Path, files: FileCache,
              progress: bool) -> Stored:
        import dask

        template = work.template()
        if template is not None:
            write, args = template
            write(*args)
            work.template_written()
        work.link()
        tasks = work.tasks()
        bar = progress_bar(work.plan.n_chunks, progress, initial=len(work.staging.done))

        def produce(k: int):
            with dask.config.set(scheduler="synchronous"):
                block = tasks.pop(k).compute()
            work.finished(k)
            bar.update(1)
            return block

        feed = _feed(work, produce)
        for k in sorted(work.staging.done):  # in the store already: read from it
            feed.put(k)
        try:
            return Stored(write_h5(feed.read_block, spec, part), feed.all_nan)
        finally:
            bar.close()
            files.close()

    def close(self) -> None:
        """Nothing to release."""


class DaskRunner:
    """Runs the store phase on the Dask cluster of ``cluster`` (module docstring), which
    :meth:`close` closes; ``memory_limit``: its workers' (for the message when they die)."""

    def __init__(self, cluster: BackgroundClient, memory_limit: str | None = None):
        self.cluster, self.memory_limit = cluster, memory_limit

    def store(self, work: ChunkWork, spec: CacheSpec, part: Path, files: FileCache,
              progress: bool) -> Stored:
        from distributed import KilledWorker

        from .workerfiles import FileCachePlugin

        client = self.cluster.get()
        client.register_plugin(FileCachePlugin.like(files), name=files.name)
        feed = _feed(work)
        builder = H5Builder(feed, spec, part)
        try:
            self._compute(client, work, feed, builder, progress)
        except BaseException as exc:
            builder.abandon()
            if isinstance(exc, KilledWorker):
                raise ResourceError(
                    f"{work.staging.out}: Dask workers died repeatedly (memory limit "
                    f"{self.memory_limit} per worker?); raise dask.memory_limit or "
                    "--memory-limit") from exc
            raise
        finally:  # the workers close this job's files
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(files.name)
        return Stored(builder.result(), feed.all_nan)

    @staticmethod
    def _compute(client, work: ChunkWork, feed: ChunkFeed, builder: H5Builder,
                 progress: bool) -> None:
        """Submit the template (on a worker, whose Zarr and xarray are loaded already,
        while the other workers start regridding) and the chunk tasks after it; hand each
        finished chunk to the HDF5 writer."""
        template = work.template()
        if template is not None:
            write, args = template
            template = client.submit(write, *args, pure=False, key="zarr-template")
        else:
            for k in work.staging.done:  # written by the interrupted run
                feed.put(k)
        tasks = work.tasks(after=template)
        bar = progress_bar(work.plan.n_chunks, progress,
                           initial=work.plan.n_chunks - len(tasks))
        try:
            futures = client.compute(list(tasks.values())) if tasks else []
            chunk_of = {f.key: k for f, k in zip(futures, tasks, strict=True)}
            done = released_as_completed(futures + ([template] if template else []))
            if template is None:
                _linked(work, feed)
            for fut, block in done:
                if fut is template:
                    work.template_written()
                    _linked(work, feed)
                    continue
                work.finished(chunk_of[fut.key])
                feed.put(chunk_of[fut.key], block)
                del block
                builder.check()
                bar.update(1)
        finally:
            bar.close()
            work.staging.save()

    def close(self) -> None:
        self.cluster.close()


def _linked(work: ChunkWork, feed: ChunkFeed) -> None:
    for k in work.link():
        feed.put(k)
