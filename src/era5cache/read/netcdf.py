"""One ERA5 NetCDF file (either CDS layout, or converted by CDO/NCO) opened raw, for the
normaliser (:mod:`.normalise`): unreadable and truncated files are :class:`InputError` naming
the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from .h5chunks import DirectStore, direct_layouts
from .keepopen import manager_of
from .packed import packed_names

KEEP_OPEN = "era5cache_keep_open"  # key of the file's pin in the dataset's encoding


def open_netcdf(path: Path) -> xr.Dataset:
    """The file as xarray opens it (lazy, not chunked, CF decoding on, timedeltas raw), but
    for packed 8- and 16-bit variables (:func:`.packed.packed_names`), left raw for the
    normaliser to decode by table (:func:`.packed.decode_packed`), and with deflated
    variables read by :mod:`.h5chunks` rather than netCDF4; ``path`` exists
    (:func:`.normalise.open_parts` checks). ``encoding[KEEP_OPEN]`` holds the file's
    :class:`.keepopen.KeepOpen` for the normaliser's read tasks."""
    try:
        store = xr.backends.NetCDF4DataStore.open(path, mode="r")
    except Exception as exc:  # netCDF4/HDF5 raise a variety of OSError/ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable NetCDF file ({reason})") from exc
    try:
        raw = _decoded(store, True)
        packed = packed_names(raw)
        layouts = direct_layouts(path, [str(v) for v in raw.data_vars if raw[v].ndim > 1])
        if packed or layouts:  # the same open file, decoded again
            raw = _decoded(DirectStore(store, path, layouts) if layouts else store,
                           {name: False for name in packed} if packed else True)
        check_classic_size(path, raw)
    except BaseException:
        store.close()
        raise
    raw.encoding[KEEP_OPEN] = manager_of(store)
    return raw


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
