"""The fork server's preload (:data:`era5cache.store.forkserver.PRELOAD`): what every local
Dask worker, forked from the server, starts with.

In order: the server ends with :func:`os._exit` after its exit handlers when the job's process
exits, instead of tearing down an interpreter full of xarray/pandas/Dask modules while it
still holds the job's stdout and stderr (registered first, so it runs last; forked workers
exit through ``os._exit`` anyway); the modules the workers' tasks need are imported with
garbage collection off, then everything they made is frozen out of the collector's sight
and collection turned back on (:func:`era5cache.process.imports_frozen`), so each
worker's full collections skip objects that live as long as it does, and do not write to
(and so copy) the pages it shares with the server. The server opens no file, so forking it
is safe for HDF5/netCDF4.

Workers ignore SIGINT: Ctrl-C in a terminal signals the whole foreground process group, the
workers too, and each would print its own KeyboardInterrupt tracebacks. The job's process
takes the interrupt alone and closes the cluster, which ends the workers. (The fork server
restores, in each child, the handlers it found when its preload was done: this one.)
"""

import atexit
import os
import signal

from era5cache.process import imports_frozen

atexit.register(os._exit, 0)
signal.signal(signal.SIGINT, signal.SIG_IGN)
with imports_frozen():
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
    import h5py  # noqa: F401
    import netCDF4  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import era5cache.read.h5chunks  # noqa: F401
    import era5cache.regrid.adapter  # noqa: F401
    import era5cache.store.zarrstore  # noqa: F401
