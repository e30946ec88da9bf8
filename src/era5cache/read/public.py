"""``era5cache.open_era5``: ERA5 files or Zarr stores as the normalised, lazy xarray Dataset
the job reads."""

from __future__ import annotations

import os
from collections.abc import Sequence

import xarray as xr

from ..errors import InputError
from ..timeaxis import TimeSelection
from .channels import base_names, select_channels
from .combine import open_era5 as combine_inputs
from .members import Member
from .options import ReadOptions


def open_era5(paths: str | os.PathLike | Sequence[str | os.PathLike],
              channels: Sequence[str] | None = None, member: Member = None,
              start: str | None = None, end: str | None = None, step: str | None = None,
              storage_options: dict | None = None) -> xr.Dataset:
    """ERA5 as the job reads it, one lazy (Dask) Dataset from any number of files, or from
    Zarr stores.

    Args:
        paths: what ``era5cache preprocess --input`` takes: files (NetCDF in either CDS
            layout or converted by CDO/NCO, GRIB 1 or 2), folders, globs, CDS ``.zip``
            downloads (unpacked into a ``.<name>.d`` folder beside each archive); or Zarr
            stores (ARCO-ERA5, WeatherBench2, ...: a folder or an fsspec URL), not mixed
            with files.
        channels: channel names (``"t2m"``, ``"z500"``: variable + pressure level in hPa),
            each returned as a (time, lat, lon) variable in this order; None: every variable,
            those on pressure levels with a ``level`` dimension (hPa, ascending).
        member: an ensemble's member (an index from 0, or ``"mean"``); None refuses
            ensembles.
        start, end: the first and last step to read (ISO dates or times, inclusive; an end
            given as a date is the whole day); required for a store with a valid range.
        step: keep every ``step`` from midnight (``"6h"``); accumulated variables (``tp``)
            are summed over it (their attribute ``accumulation_hours``).
        storage_options: fsspec options for remote stores (None: anonymous access).

    Returns:
        float32 variables in physical units (each file decoded with its own packing), NaN
        where missing; ``time`` ascending and unique (final ERA5 over preliminary ERA5T,
        identical duplicates dropped), ``lat`` ascending (degrees north), ``lon`` in
        [0, 360) ascending (degrees east); per step, ``expver`` ('0001' final, '0005'
        preliminary); the attribute
        ``time_step`` ('21600s'; '1M' for monthly means; '' if irregular). Closing the
        Dataset closes the files.

    Raises:
        era5cache.errors.InputError: a file that cannot be ERA5 (unreadable, other units,
            impossible coordinates, conflicting duplicates, different grids, ...), one line
            naming it.
    """
    patterns = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    try:
        selection = TimeSelection.parse(start, end, step)
    except ValueError as exc:
        raise InputError(f"{patterns[0]}: {exc}") from None
    inputs = combine_inputs([str(p) for p in patterns],
                            base_names(list(channels) if channels else None),
                            ReadOptions(member=member, time=selection,
                                        storage_options=storage_options))
    ds = inputs.dataset
    if channels:
        ds = select_channels(ds, list(channels), where=inputs.first,
                             available=inputs.available)
    ds.attrs["time_step"] = inputs.axis.step or ""
    ds.set_close(inputs.close)
    return ds
