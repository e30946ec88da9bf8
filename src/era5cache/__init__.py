"""era5cache: ERA5 NetCDF -> conservative 2-degree Zarr + memory-mappable HDF5 cache for PyTorch.

``from era5cache import CachedERA5Dataset`` (or ``BlockShuffleSampler``) imports torch; the
preprocessing modules do not. Also public: :func:`open_era5` (ERA5 files as the normalised,
lazy xarray Dataset the job reads) and :func:`regrid_2deg` (the job's conservative 2-degree
regridding of any xarray data).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["BlockShuffleSampler", "CachedERA5Dataset", "__version__", "open_era5",
           "regrid_2deg"]


def __getattr__(name: str):
    if name == "CachedERA5Dataset":
        from .serve.dataset import CachedERA5Dataset

        return CachedERA5Dataset
    if name == "BlockShuffleSampler":
        from .serve.sampler import BlockShuffleSampler

        return BlockShuffleSampler
    if name == "regrid_2deg":
        from .regrid.public import regrid_2deg

        return regrid_2deg
    if name == "open_era5":
        from .read.public import open_era5

        return open_era5
    raise AttributeError(f"module 'era5cache' has no attribute {name!r}")
