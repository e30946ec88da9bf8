"""Input files kept open in the job's worker processes for the whole job, so that each
compressed HDF5 chunk is inflated once per worker.

xarray reads a file through a file manager that travels inside every read task; a worker
unpickles one per task, and when the last of them is freed (its queue of this file's tasks
ran dry for a moment) xarray closes the file, dropping the HDF5 chunk cache with it. A file
whose chunks span many read blocks (a mirror's month-deep chunk: 1.5 GB decompressed, 4-5 s
to inflate) is then inflated again for the next block: measured on the 744-step mirror file
with 2 workers, a worker opened it 1-3 times and the job took 10.6-33.5 s. A
:class:`KeepOpen` in each read task holds the first manager a worker unpickles for as long
as the worker lives, so the file closes only when xarray's cache of open files
(``file_cache_maxsize``, set from the worker memory by
:func:`era5cache.store.forkserver.limit_open_files`) evicts it for another file, or at exit.
In the process that opened the file (and with Dask's in-process schedulers) it holds
nothing beyond the dataset's own manager, and closing the dataset closes the file. Workers
that outlive the job (an external cluster's) are told to :func:`release` what they keep
when the job ends (:class:`era5cache.store.cluster.BackgroundClient`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from functools import partial

import numpy as np
import xarray as xr

# (opening process, pickled manager state) -> the manager this process keeps
_KEPT: dict[tuple[int, bytes], object] = {}


class KeepOpen:
    """A reference to a file manager (an ``xarray.backends.CachingFileManager``) that, once
    unpickled in another process, keeps the first equal manager of that process alive."""

    def __init__(self, manager: object, owner: int | None = None):
        self.manager = manager
        self.owner = os.getpid() if owner is None else owner  # the process that opened it

    def __reduce__(self):  # pickling only: the copies that xarray makes share the pin
        return (_kept, (self.manager, self.owner))

    def __dask_tokenize__(self) -> tuple:  # else Dask pickles and unpickles it to hash it
        return (KeepOpen.__name__, repr(self.manager), id(self.manager))

    def __copy__(self) -> KeepOpen:
        return self

    def __deepcopy__(self, memo: dict) -> KeepOpen:
        return self


def _kept(manager: object, owner: int) -> KeepOpen:
    if os.getpid() != owner:  # a worker: keep the first equal manager for its lifetime
        manager = _KEPT.setdefault((owner, pickle.dumps(manager)), manager)
    return KeepOpen(manager, owner)


def release(owner: int | None = None) -> int:
    """Close and forget the files this process keeps open for the job whose process is
    ``owner`` (None: all), those :mod:`.h5chunks` reads included; how many. Run on the
    workers when a job ends, so that a worker serving many jobs does not hold every file
    (and its chunk cache) it ever read, nor close those of another job still running."""
    from . import h5chunks

    kept = [k for k in _KEPT if owner is None or k[0] == owner]
    kept = [_KEPT.pop(k) for k in kept]
    for manager in kept:
        with contextlib.suppress(Exception):  # already closed, or its file gone
            manager.close()
    return len(kept) + h5chunks.release(owner)


def _through(block: np.ndarray, pin: KeepOpen) -> np.ndarray:
    return block


def keep_open(da: xr.DataArray, pin: KeepOpen | None) -> xr.DataArray:
    """``da`` (lazy Dask) whose read tasks carry ``pin``; Dask fuses the extra layer into
    the reads. In memory or without a pin, ``da`` as is."""
    if pin is None or not hasattr(da.data, "map_blocks"):
        return da
    return da.copy(data=da.data.map_blocks(partial(_through, pin=pin), dtype=da.dtype))


def manager_of(store: object) -> KeepOpen | None:
    """The pin of an xarray data store's file manager (``NetCDF4DataStore._manager``); None
    where the store has none (another backend, another xarray)."""
    manager = getattr(store, "_manager", None)
    return KeepOpen(manager) if manager is not None else None
