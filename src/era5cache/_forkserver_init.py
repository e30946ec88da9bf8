"""Imported first, and only, in the fork server of local Dask workers (see
:data:`era5cache.workers.PRELOAD`): when the job's process exits, the server ends with
:func:`os._exit` after its exit handlers instead of tearing down an interpreter full of
xarray/pandas/dask modules (0.5 s on the reference VM, during which the server still holds
the job's stdout and stderr open). Its forked workers exit through ``os._exit`` anyway."""

import atexit
import os

atexit.register(os._exit, 0)  # registered first, so it runs after every other handler
