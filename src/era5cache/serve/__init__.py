"""Stage 4, serve: the HDF5 cache to PyTorch.

:mod:`.dataset` (:class:`~.dataset.CachedERA5Dataset`: memory-mapped windows, normalised),
:mod:`.batching` (how a batch is built: groups, threads, reused buffers) and
:mod:`.resident` (a split copied once to the device, batches built there by index).
Needs torch, h5py and numpy only.
"""
