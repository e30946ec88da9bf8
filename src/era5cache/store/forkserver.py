"""Local Dask worker processes: forked from a fork server that has the job's modules loaded.

A worker started the default way (``spawn``) is a fresh interpreter that imports distributed,
then on its first task numpy, pandas, xarray, dask.array, netCDF4 and zarr, which costs more
CPU than a small job's regridding. Instead the preprocess command starts
:mod:`multiprocessing`'s fork server first thing, with those modules preloaded
(:mod:`.forkserver_preload`); it imports them on one core while the main process imports its
own on the other, and every worker is then a ``fork()`` of it, ready at once.

The fork server opens no file: forking it is safe for HDF5/netCDF4, which are not fork-safe
with files open. It is started with the worker environment (:func:`worker_environ`) of the
default memory limit: the BLAS thread counts act when a process starts, and are the same for
every job. One fork server serves a Python process for its lifetime, so what depends on the
job, the malloc thresholds, is set in each worker when it starts, by the cluster's
:class:`MallocSettings` plugin (``mallopt``), and stated in its environment.

The CLI starts the server first thing, before it reads the recipe or imports anything heavy
(this module needs only ``os``, :mod:`multiprocessing`, :mod:`era5cache.config.sizes` and
:mod:`era5cache.process`).
"""

from __future__ import annotations

import os
from types import MappingProxyType

from ..config.sizes import DEFAULT_MEMORY_LIMIT, memory_bytes
from ..process import NUMPY_ENVIRON

PRELOAD = ("era5cache.store.forkserver_preload",)
START_METHOD = "forkserver"

# Dask's defaults for distributed.nanny.pre-spawn-environ (a worker is one thread per task),
# and numpy without transparent-huge-page advice (process.NUMPY_ENVIRON).
_STATIC = MappingProxyType({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                            "OPENBLAS_NUM_THREADS": "1"} | dict(NUMPY_ENVIRON))


def worker_environ(memory_limit: str | int | None) -> dict[str, str]:
    """Environment of local worker processes: one BLAS/OpenMP thread (Dask's defaults), and
    glibc malloc keeping freed blocks (up to a quarter of the memory limit, at most 256 MiB)
    instead of returning them to the OS at once. Dask's default (``MALLOC_TRIM_THRESHOLD_``
    64 KiB) also fixes the mmap threshold at 128 KiB, so every read block would be a fresh
    mapping to page-fault. numpy gives the kernel no transparent-huge-page advice for its
    arrays (:data:`era5cache.process.NUMPY_ENVIRON`, as in the command's process).

    Dask's ``distributed.nanny.pre-spawn-environ`` setting does not reach forked workers (it
    is applied to the parent when a worker starts); ``distributed.nanny.environ`` does.
    """
    limit = memory_bytes(memory_limit) if memory_limit else 2**31
    env = dict(_STATIC)
    env["MALLOC_TRIM_THRESHOLD_"] = str(int(min(256 * 2**20, limit // 4)))
    env["MALLOC_MMAP_THRESHOLD_"] = str(32 * 2**20)
    return env


def start_fork_server() -> None:
    """Start the fork server now (a no-op when it runs already), with :data:`PRELOAD`
    imported in it and the environment of :func:`worker_environ` for the default memory
    limit; returns at once (the server imports in the background; the first worker start
    waits for it). The server takes the environment of this process, so it is set for the
    call and restored after. Nothing here depends on a job: each job's workers get their
    own malloc settings (:class:`MallocSettings`)."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context(START_METHOD).set_forkserver_preload(list(PRELOAD))
    env = worker_environ(DEFAULT_MEMORY_LIMIT)
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


# glibc's mallopt parameters for what MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_ set
_MALLOPT = MappingProxyType({"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3})


def apply_malloc_environ(env: dict[str, str]) -> bool:
    """Give this process's glibc malloc the thresholds of ``env`` (:func:`worker_environ`)
    now, as if it had started with them (``mallopt``); False where malloc is not glibc's or
    refuses them. A worker forked from the fork server starts with the server's."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, int(env[name])) == 1 for name, param in _MALLOPT.items()
               if name in env)
