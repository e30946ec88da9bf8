"""Read blocks: how many time steps of one file a task decodes at a time.

Sized in decoded bytes (:data:`TARGET_CHUNK_BYTES`), aligned with the output's time chunks
and with the file's own HDF5 chunks along time, so that no block is read twice and no
compressed chunk is decompressed twice where whole chunks fit (:func:`block_steps`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

# Decoded bytes per read task: under glibc's 32 MiB ceiling for its mmap threshold, so that
# with the workers' malloc settings (era5cache.store.forkserver.worker_environ) blocks reuse
# heap pages instead of page-faulting a fresh mapping each time.
TARGET_CHUNK_BYTES = 30 * 2**20


def block_steps(step_bytes: int, chunk_bytes: int, align: int | None = None,
                depth: int | None = None, max_bytes: int | None = None) -> int:
    """Time steps per read block: as many as fit in ``chunk_bytes`` (at least one), rounded
    down to a divisor or a multiple of ``align`` (the output's time chunk) when given.

    A read block that straddles an output chunk boundary is read and regridded twice, once
    for each chunk (Dask fuses the read into both consumers). Aligned, a file that starts on
    a chunk boundary is read once; one that starts off it repeats a block at each boundary.

    ``depth``: time steps per HDF5 chunk of the file (compressed netCDF4 with the library's
    default chunking holds many steps per chunk: 32 for 96 hourly 0.25-degree steps, 124 for
    a month). HDF5 decompresses a whole chunk to read any step of it, so a block that ends
    inside a chunk makes the next block decompress it again. Where whole chunks fit in
    ``max_bytes`` (the hard bound; the block may exceed ``chunk_bytes`` to reach one chunk),
    the block is a multiple of ``depth``, also aligned with ``align`` when ``depth``
    divides it.
    """
    step_bytes = max(step_bytes, 1)
    whole_chunks = bool(depth and depth > 1
                        and depth * step_bytes <= max(max_bytes or 0, chunk_bytes))
    unit = depth if whole_chunks else 1  # blocks are multiples of this
    n = max(1, chunk_bytes // step_bytes // unit) * unit
    if not align or align % unit:
        return n
    if n >= align:
        return n // align * align
    return max(d for d in range(unit, n + 1, unit) if align % d == 0)


def time_chunk_depth(raw: xr.Dataset, tdim: str, names: list[str]) -> int | None:
    """Time steps per HDF5 chunk of the variables ``names`` (the largest), None when they
    are contiguous or the file is netCDF3."""
    depths = []
    for v in names:
        enc = raw[v].encoding
        sizes = enc.get("chunksizes")
        if sizes and not enc.get("contiguous") and tdim in raw[v].dims:
            depths.append(int(sizes[raw[v].dims.index(tdim)]))
    return max(depths) if depths else None


def disk_chunk_bytes(raw: xr.Dataset, names: list[str], tdim: str | None = None) -> int:
    """Bytes that the HDF5 chunks of one time slab of each of the variables ``names`` take
    decompressed (in the file's own dtype: int16 for packed files), summed: every chunk
    that holds one step, across all the other dimensions (a mirror's chunk spans the globe:
    one; netCDF's default chunks of a 744-step 0.25-degree file, (124, 121, 240): 36 of
    14.4 MB). What an open file keeps decompressed (:mod:`.h5chunks`, or HDF5's chunk
    cache) so that blocks shallower than the chunks decompress each chunk once. 0 when none
    is chunked (netCDF3, contiguous, GRIB). ``tdim``: the time dimension (None: one chunk
    per variable)."""
    total = 0
    for v in names:
        enc = raw[v].encoding
        sizes = enc.get("chunksizes")
        if sizes and not enc.get("contiguous"):
            itemsize = np.dtype(enc.get("dtype", raw[v].dtype)).itemsize
            across = [-(-n // c) for d, n, c in zip(raw[v].dims, raw[v].shape, sizes,
                                                    strict=True) if d != tdim]
            total += int(np.prod(sizes)) * itemsize * int(np.prod(across))
    return total
