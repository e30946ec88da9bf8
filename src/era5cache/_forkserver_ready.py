"""Imported last in the fork server of local Dask workers (see
:data:`era5cache.workers.PRELOAD`): the preloaded modules' objects are frozen out of the
garbage collector's sight (:func:`gc.freeze`) and collection is turned back on, so each
forked worker starts with them frozen: its full collections skip ~1M objects that live as
long as it does, and do not write to (and so copy) the pages it shares with the server."""

import gc

gc.freeze()
gc.enable()
