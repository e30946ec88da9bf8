"""Stage 3, store: the Dask job that writes the Zarr store and the HDF5 training cache.

:mod:`.job` runs it: :mod:`.inputs` opens and checks the inputs, :mod:`.identity` tells the
job's fingerprint and what is published, :mod:`.plan` says what the store will hold (fresh
or appended), :mod:`.cluster` and :mod:`.forkserver` start the workers, :mod:`.schedule`
writes the time chunks through :mod:`.zarrstore` while :mod:`.h5build` streams them into
the HDF5 cache, :mod:`.record` builds the manifest, :mod:`.staging` journals and publishes,
:mod:`.lock` keeps one writer per folder and :mod:`.milestones` names the points where the
crash tests kill the job.
"""
