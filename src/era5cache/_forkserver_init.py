"""Imported first, and only, in the fork server of local Dask workers (see
:data:`era5cache.workers.PRELOAD`): when the job's process exits, the server ends with
:func:`os._exit` after its exit handlers instead of tearing down an interpreter full of
xarray/pandas/dask modules (0.5 s on the reference VM, during which the server still holds
the job's stdout and stderr open). Its forked workers exit through ``os._exit`` anyway.

Also: no garbage collection while the server imports (:mod:`era5cache._forkserver_ready`,
imported last, freezes what the imports made and turns it back on; see
:func:`era5cache.workers.imports_frozen`).
"""

import atexit
import gc
import os

atexit.register(os._exit, 0)  # registered first, so it runs after every other handler
gc.disable()
