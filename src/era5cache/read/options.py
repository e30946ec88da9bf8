"""How the readers read: one frozen settings object passed down from
:func:`era5cache.read.combine.open_era5` to each file's reader and normaliser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..timeaxis import TimeSelection
from .blocks import TARGET_CHUNK_BYTES
from .filecache import Files
from .members import Member


@dataclass(frozen=True)
class ReadOptions:
    """Settings of one read of ERA5 inputs.

    Args:
        chunk_bytes: decoded bytes per read block (one Dask chunk along time) to aim for.
        align_steps: read blocks divide or are multiples of this many steps (the output's
            time chunk); None: not aligned.
        max_block_bytes: the most decoded bytes a block may hold so as to cover whole HDF5
            chunks of a file chunked deep in time (:func:`.blocks.block_steps`); None: no
            block above ``chunk_bytes``.
        member: an ensemble's member (an index from 0, or ``"mean"``); None refuses
            ensembles (:mod:`.members`).
        extract_dir: where the members of CDS ZIP downloads are unpacked (None: a
            ``.<name>.d`` folder beside each archive).
        files: the cache that keeps input files open between reads (:mod:`.filecache`);
            None: each read opens and closes its file (netCDF4's through xarray's own
            cache).
        time: the steps to read (:class:`.timeselect.TimeSelection`); None: all.
        storage_options: fsspec options for remote Zarr stores (credentials, endpoints);
            None: anonymous access (:mod:`.zarrinput`).
    """

    chunk_bytes: int = TARGET_CHUNK_BYTES
    align_steps: int | None = None
    max_block_bytes: int | None = None
    member: Member = None
    extract_dir: Path | None = None
    files: Files | None = None
    time: TimeSelection | None = None
    storage_options: dict | None = None


DEFAULT_OPTIONS = ReadOptions()
