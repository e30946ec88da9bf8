"""era5cache: ERA5 NetCDF -> conservative 2-degree Zarr + memory-mappable HDF5 cache for PyTorch.

``from era5cache import CachedERA5Dataset`` (or ``BlockShuffleSampler``) imports torch; the
preprocessing modules do not.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["BlockShuffleSampler", "CachedERA5Dataset", "__version__"]


def __getattr__(name: str):
    if name == "CachedERA5Dataset":
        from .serve.dataset import CachedERA5Dataset

        return CachedERA5Dataset
    if name == "BlockShuffleSampler":
        from .serve.sampler import BlockShuffleSampler

        return BlockShuffleSampler
    raise AttributeError(f"module 'era5cache' has no attribute {name!r}")
