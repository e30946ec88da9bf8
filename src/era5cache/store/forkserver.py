"""Local Dask worker processes: forked from a fork server that has the job's modules loaded.

A worker started the default way (``spawn``) is a fresh interpreter that imports distributed,
then on its first task numpy, pandas, xarray, dask.array, netCDF4 and zarr, which costs more
CPU than a small job's regridding. Instead the preprocess command starts
:mod:`multiprocessing`'s fork server first thing, with those modules preloaded
(:mod:`.forkserver_preload`); it imports them on one core while the main process imports its
own on the other, and every worker is then a ``fork()`` of it, ready at once.

The fork server opens no file: forking it is safe for HDF5/netCDF4, which are not fork-safe
with files open. It is started with the worker environment (:func:`worker_environ`):
variables that only act when a process starts (the malloc settings, BLAS thread counts) are
those the server and so every worker start with. One fork server serves a Python process for
its lifetime, so a second job in the same process keeps the first job's settings.

The CLI starts the server before it imports anything heavy (this module needs only ``os``,
:mod:`multiprocessing` and :mod:`era5cache.config.sizes`).
"""

from __future__ import annotations

import os

from ..config.sizes import memory_bytes

PRELOAD = ("era5cache.store.forkserver_preload",)
START_METHOD = "forkserver"

# Dask's defaults for distributed.nanny.pre-spawn-environ (a worker is one thread per task).
_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def worker_environ(memory_limit: str | int | None) -> dict[str, str]:
    """Environment of local worker processes: one BLAS/OpenMP thread (Dask's defaults), and
    glibc malloc keeping freed blocks (up to a quarter of the memory limit, at most 256 MiB)
    instead of returning them to the OS at once. Dask's default (``MALLOC_TRIM_THRESHOLD_``
    64 KiB) also fixes the mmap threshold at 128 KiB, so every read block would be a fresh
    mapping to page-fault.

    Dask's ``distributed.nanny.pre-spawn-environ`` setting does not reach forked workers (it
    is applied to the parent when a worker starts); ``distributed.nanny.environ`` does.
    """
    limit = memory_bytes(memory_limit) if memory_limit else 2**31
    env = dict(_THREADS)
    env["MALLOC_TRIM_THRESHOLD_"] = str(int(min(256 * 2**20, limit // 4)))
    env["MALLOC_MMAP_THRESHOLD_"] = str(32 * 2**20)
    return env


_server_environ: dict[str, str] | None = None


def server_environ() -> dict[str, str] | None:
    """The worker environment the fork server of this process was first started with."""
    return _server_environ


def start_fork_server(memory_limit: str | int | None) -> None:
    """Start the fork server now (a no-op when it runs already), with :data:`PRELOAD`
    imported in it and :func:`worker_environ` as its environment; returns at once (the
    server imports in the background; the first worker start waits for it)."""
    import multiprocessing
    from multiprocessing import forkserver

    global _server_environ
    multiprocessing.get_context(START_METHOD).set_forkserver_preload(list(PRELOAD))
    env = worker_environ(memory_limit)
    if _server_environ is None:
        _server_environ = env
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the server inherits this process's environment
    try:
        forkserver.ensure_running()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
