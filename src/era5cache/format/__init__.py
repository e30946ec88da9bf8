"""The on-disk contract between the job that writes a cache and the readers that use it.

:mod:`.layout` (fixed names, format version), :mod:`.manifest` (the typed manifest),
:mod:`.h5` (the HDF5 cache's writer and :class:`~.h5.CacheInfo` for readers), :mod:`.stats`
(the statistics it stores), :mod:`.checksum`, :mod:`.verify` and :mod:`.inspect`. Needs
h5py and numpy only (no Zarr, Dask or netCDF4), so the GPU path can import it.
"""
