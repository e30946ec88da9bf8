"""The store plan: what a run's Zarr store will hold (the time axis, the lazy data, where each
step comes from), for a fresh build or for ``--append`` onto a published cache.

Append rules (ERA5 arrives as preliminary ERA5T, expver '0005', and is replaced by final
ERA5, '0001', two to three months later):

- a step only in the new files is added; a step only in the cache is kept;
- a step in both is taken from the new files (a final step replaces a preliminary one, a
  newer delivery replaces an older one), except that a preliminary step never replaces a
  final one (the cache keeps the final value);
- the result must keep the cache's time step; gaps are allowed and recorded.

Zarr time chunks of the new store that hold exactly the same steps, at the same positions,
as a chunk of the published store are hard-linked from it instead of being recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ConfigError, InputError
from ..format.manifest import Manifest
from ..read.combine import Era5Inputs
from ..read.expver import FINAL, PRELIMINARY
from ..timeaxis import Periods, TimeAxis, analyse, format_step


@dataclass(frozen=True)
class StorePlan:
    """``dataset``: one (time, lat, lon) float32 variable per channel, lazy, chunked
    ``chunk_steps`` along time. Per step: ``times`` (datetime64[s]), ``expver``, ``source``
    (input file, or the published Zarr store for kept steps) and ``new_index`` (position in
    the new inputs, -1 for kept steps). Per chunk: ``reuse`` (hard-link from the published
    store). ``blocks`` (a fresh build): per channel, the lazy array before its rechunk to
    ``chunk_steps``, whose read blocks a chunk made of whole blocks takes directly, with no
    merge task between them (:func:`era5cache.store.schedule.chunk_sources`; None: ``dataset``)."""

    dataset: xr.Dataset
    times: np.ndarray
    expver: np.ndarray
    source: np.ndarray
    new_index: np.ndarray
    reuse: np.ndarray
    axis: TimeAxis
    chunk_steps: int
    replaced: int = 0
    kept_final: int = 0
    blocks: dict[str, Any] | None = None

    @property
    def n_chunks(self) -> int:
        return -(-self.times.size // self.chunk_steps)

    def chunk_bounds(self, k: int) -> tuple[int, int]:
        a = k * self.chunk_steps
        return a, min(self.times.size, a + self.chunk_steps)

    @property
    def preliminary(self) -> np.ndarray:
        return self.times[self.expver != FINAL]


def _clean(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.drop_vars("expver", errors="ignore")
    for name in ds.variables:
        ds[name].encoding = {}
    return ds


def fresh(regridded: xr.Dataset, inputs: Era5Inputs, chunk_steps: int) -> StorePlan:
    """The store of a build from ``inputs`` alone."""
    times = inputs.dataset["time"].values.astype("datetime64[s]")
    n = times.size
    blocks = {c: regridded[c].data for c in regridded.data_vars
              if not isinstance(regridded[c].data, np.ndarray)}
    return StorePlan(
        dataset=_clean(regridded).assign_coords(time=times).chunk({"time": chunk_steps}),
        times=times, expver=inputs.dataset["expver"].values.astype("U4"),
        source=np.asarray(inputs.source, dtype=object), new_index=np.arange(n),
        reuse=np.zeros(-(-n // chunk_steps), dtype=bool), axis=inputs.axis,
        chunk_steps=chunk_steps, blocks=blocks or None)


def appended(regridded: xr.Dataset, inputs: Era5Inputs, base: Manifest, base_zarr: Path,
             chunk_steps: int) -> StorePlan:
    """The store of ``base`` (a published manifest and its Zarr store) extended by the new
    ``inputs`` (see the module docstring for the rules)."""
    old = xr.open_zarr(base_zarr, chunks={"time": chunk_steps})
    t_old = old["time"].values.astype("datetime64[s]")
    t_prelim = np.array(list(base.time.preliminary), dtype="datetime64[s]")
    prelim_old = np.isin(t_old, t_prelim)
    t_new = inputs.dataset["time"].values.astype("datetime64[s]")
    ev_new = inputs.dataset["expver"].values.astype("U4")
    in_old = np.isin(t_new, t_old)
    old_final = in_old & ~np.isin(t_new, t_prelim)
    drop_new = old_final & (ev_new != FINAL)
    keep_new = ~drop_new
    keep_old = ~np.isin(t_old, t_new[keep_new])
    times_all = np.concatenate([t_old[keep_old], t_new[keep_new]])
    order = np.argsort(times_all, kind="stable")
    times = times_all[order]
    source_all = np.concatenate([np.full(int(keep_old.sum()), str(base_zarr), dtype=object),
                                 np.asarray(inputs.source, dtype=object)[keep_new]])
    ev_all = np.concatenate([np.where(prelim_old[keep_old], PRELIMINARY, FINAL),
                             ev_new[keep_new]]).astype("U4")
    new_idx_all = np.concatenate([np.full(int(keep_old.sum()), -1),
                                  np.flatnonzero(keep_new)])
    old_idx_all = np.concatenate([np.flatnonzero(keep_old),
                                  np.full(int(keep_new.sum()), -1)])

    step = base.time.step
    if step and inputs.axis.step and inputs.axis.step != step:
        raise InputError(f"{inputs.first}: time step {format_step(inputs.axis.step)} "
                         f"differs from the cache's {format_step(step)}; --append needs the "
                         "same step")
    axis = analyse(times, step or None)
    if axis.irregular:
        t = axis.irregular[0]
        i = int(np.searchsorted(times, t))
        raise InputError(f"{source_all[order][i]}: irregular time steps: {t} is not a whole "
                         f"number of {format_step(axis.step)} steps after the cache's "
                         "previous step")
    data = xr.concat([_clean(old).isel(time=np.flatnonzero(keep_old)),
                      _clean(regridded).isel(time=np.flatnonzero(keep_new))],
                     dim="time", data_vars="all", coords="minimal", compat="override",
                     join="override", combine_attrs="override")
    # the new inputs' channel order (the cache's), not the published store's (sorted)
    data = data[list(regridded.data_vars)].isel(time=order).assign_coords(time=times)
    data.attrs = dict(old.attrs)
    for v in data.data_vars:
        data[v].attrs = dict(old[v].attrs)
    old_idx = old_idx_all[order]
    n = times.size
    reuse = np.zeros(-(-n // chunk_steps), dtype=bool)
    for k in range(reuse.size):
        a, b = k * chunk_steps, min(n, (k + 1) * chunk_steps)
        same_chunk = b == min(t_old.size, (k + 1) * chunk_steps)
        reuse[k] = same_chunk and np.array_equal(old_idx[a:b], np.arange(a, b))
    return StorePlan(
        dataset=data.chunk({"time": chunk_steps}), times=times, expver=ev_all[order],
        source=source_all[order], new_index=new_idx_all[order], reuse=reuse, axis=axis,
        chunk_steps=chunk_steps, replaced=int((in_old & keep_new).sum()),
        kept_final=int(drop_new.sum()))


def check_training_period(times: np.ndarray, periods: Periods, where: str) -> None:
    """:class:`ConfigError` naming the recipe (``where``) when the training period holds none
    of the cache's ``times``: its statistics, which every reader normalises with, would be
    undefined."""
    p = periods.train
    if p is None or periods.mask("train", times).any():  # no period: every step trains
        return
    span = f"{times[0]} .. {times[-1]}" if times.size else "none"
    raise ConfigError(f"{where}: periods.train [{p.start}, {p.end}] holds none of the "
                      f"cache's {times.size} time steps ({span}); the normalisation "
                      "statistics come from it: set it within the data")
