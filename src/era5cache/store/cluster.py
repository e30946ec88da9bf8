"""The Dask cluster a job runs on: the configured scheduler, or a LocalCluster of worker
processes forked from the preloaded fork server (:mod:`.forkserver`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import dask

from ..config.recipe import PreprocessConfig
from ..errors import InputError
from .forkserver import START_METHOD, start_fork_server, worker_environ


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
    from .workerenv import MallocSettings

    n = cfg.dask.workers or max(1, os.cpu_count() or 1)
    env = worker_environ(cfg.dask.memory_limit)
    start_fork_server()  # the CLI started it already: a no-op then
    with dask.config.set({"distributed.worker.multiprocessing-method": START_METHOD,
                          # the statistical profiler samples every thread each 10 ms
                          "distributed.worker.profile.enabled": False,
                          # memory is bounded by the read block size (read_chunk_bytes);
                          # a paused worker only stalls the job (both paused: for ever)
                          "distributed.worker.memory.pause": False,
                          # no root-task queuing: with it a worker idles for a scheduler
                          # round trip between read tasks; read tasks are fused with the
                          # regridding, so what runs ahead holds 80x180 fields, not inputs
                          "distributed.scheduler.worker-saturation": float("inf"),
                          "distributed.nanny.pre-spawn-environ": env}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                         memory_limit=cfg.dask.memory_limit,
                         dashboard_address=cfg.dask.dashboard,
                         # without a dashboard the scheduler still serves HTTP (health,
                         # metrics), on 8787 unless told: a free local port, no warning
                         scheduler_kwargs=(None if cfg.dask.dashboard else
                                           {"dashboard_address": "127.0.0.1:0"}),
                         silence_logs=_worker_log_level(),
                         # the workers' os.environ (Dask's pre-spawn values yield to any
                         # the process's os.environ holds, such as those an earlier
                         # LocalCluster of the process left there); malloc takes it from
                         # the plugin below
                         env=env) as cluster, \
            Client(cluster) as client:
        client.register_plugin(MallocSettings(env))
        yield client


def _worker_log_level() -> int:
    """Worker log level: task failures reach the user as one line from the job itself, so
    the workers' own tracebacks are silenced unless ``ERA5CACHE_DEBUG`` is set."""
    import logging

    return logging.WARNING if os.environ.get("ERA5CACHE_DEBUG") else logging.CRITICAL


class BackgroundClient:
    """Starts :func:`dask_client` in a thread, so the cluster boots while the job's modules
    are imported and the inputs opened and checked (the preprocess command starts it as
    soon as the recipe is read); ``get()`` waits for it."""

    def __init__(self, cfg: PreprocessConfig):
        from concurrent.futures import ThreadPoolExecutor

        self._cm = dask_client(cfg)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="era5cache-dask-start")
        self._started = self._pool.submit(self._cm.__enter__)
        self._closed = False

    def get(self):
        return self._started.result()

    def close(self) -> None:
        """Close the client and the cluster; once (later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._started.result()
        except BaseException:  # it never started: nothing to close
            pass
        else:  # leave the context in the thread that entered it (Client uses a ContextVar)
            self._pool.submit(self._cm.__exit__, None, None, None).result()
        finally:
            self._pool.shutdown()

