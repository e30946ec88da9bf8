"""One ERA5 NetCDF file (either CDS layout, or converted by CDO/NCO) opened raw, for the
normaliser (:mod:`.normalise`): unreadable and truncated files are :class:`InputError` naming
the file."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from .filecache import DEFAULT_CHUNK_CACHE_BYTES, Files
from .h5chunks import DirectStore, direct_layouts
from .packed import packed_names


def open_netcdf(path: Path, files: Files | None = None) -> xr.Dataset:
    """The file as xarray opens it (lazy, not chunked, CF decoding on, timedeltas raw), but
    for packed 8- and 16-bit variables (:func:`.packed.packed_names`), left raw for the
    normaliser to decode by table (:func:`.packed.decode_packed`), and with deflated
    variables read by :mod:`.h5chunks` rather than netCDF4; ``path`` exists
    (:func:`.normalise.open_parts` checks). ``files``: the cache that keeps the file open
    between reads (:mod:`.filecache`); None: xarray's own."""
    try:
        store = xr.backends.NetCDF4DataStore(netcdf_manager(str(path), files))
    except Exception as exc:  # netCDF4/HDF5 raise a variety of OSError/ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable NetCDF file ({reason})") from exc
    try:
        raw = _decoded(store, True)
        packed = packed_names(raw)
        layouts = direct_layouts(path, [str(v) for v in raw.data_vars if raw[v].ndim > 1])
        if packed or layouts:  # the same open file, decoded again
            raw = _decoded(DirectStore(store, path, layouts, files) if layouts else store,
                           {name: False for name in packed} if packed else True)
        check_classic_size(path, raw)
    except BaseException:
        store.close()
        raise
    return raw


def netcdf_manager(path: str, files: Files | None):
    """An xarray file manager of ``path`` read-only by netCDF4: through ``files``
    (:class:`CachedNetCDF`), else xarray's ``CachingFileManager``."""
    if files is None:
        import netCDF4

        return xr.backends.CachingFileManager(netCDF4.Dataset, path, mode="r")
    return CachedNetCDF(path, files)


class CachedNetCDF(xr.backends.FileManager):
    """xarray's file manager interface over a :class:`.filecache.FileCache`: the
    ``netCDF4.Dataset`` of ``path``, opened read-only when first acquired and kept open by
    the cache (not closed when the last task that refers to it is freed, as xarray's
    manager closes it, dropping HDF5's chunk cache); ``close()`` closes it. Each variable of
    the file gets an HDF5 chunk cache of ``files.chunk_cache_bytes`` where that exceeds
    netCDF-C's default, so that a chunk deeper in time than a read block is decompressed
    once. Pickled into a Dask worker it uses that worker's cache, or xarray's manager where
    the worker has none."""

    def __init__(self, path: str, files: Files):
        self.path, self.files = path, files

    def acquire(self, needs_lock: bool = True):
        return self.files.get(("netCDF4", self.path), self._open)

    @contextlib.contextmanager
    def acquire_context(self, needs_lock: bool = True):
        yield self.acquire(needs_lock)

    def close(self, needs_lock: bool = True) -> None:
        self.files.discard(("netCDF4", self.path))

    def _open(self):
        import netCDF4

        nc = netCDF4.Dataset(self.path, mode="r")
        size = self.files.chunk_cache_bytes
        if size > DEFAULT_CHUNK_CACHE_BYTES and nc.data_model.startswith("NETCDF4"):
            for var in nc.variables.values():  # HDF5 passes a chunk the size of the
                with contextlib.suppress(RuntimeError):  # cache by it: give it room
                    var.set_var_chunk_cache(int(size * 1.05) + 2**20, 1009, 0.75)
        return nc

    def __reduce__(self):
        return (netcdf_manager, (self.path, self.files))


def _decoded(store, mask_and_scale: bool | dict[str, bool]) -> xr.Dataset:
    return xr.open_dataset(store, chunks=None, decode_timedelta=False, cache=False,
                           mask_and_scale=mask_and_scale)


def check_classic_size(path: Path, raw: xr.Dataset) -> None:
    """A truncated netCDF3 file opens and reads fill/garbage silently: compare its size with
    the bytes its variables need (classic files store them unpadded, uncompressed).
    ``raw`` is the file as xarray opened it; the on-disk dtypes are in the encodings."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:3] != b"CDF":
        return
    need = sum(int(np.prod(v.shape)) * np.dtype(v.encoding.get("dtype", v.dtype)).itemsize
               for v in raw.variables.values())
    have = path.stat().st_size
    if have < need:
        raise InputError(f"{path}: truncated netCDF3 file ({have} bytes, its variables need "
                         f"at least {need}); download it again")
