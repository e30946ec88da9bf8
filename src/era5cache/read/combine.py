"""Many decoded files into one dataset: concatenated along time per product, duplicate steps
resolved (final ERA5 over ERA5T; identical duplicates dropped, conflicting ones refused),
products merged, one grid for all."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from ..grid import SourceGrid
from ..timeaxis import TimeAxis, TimeSelection, analyse, native_step
from .blocks import TARGET_CHUNK_BYTES
from .channels import all_channels, levels_as_variables
from .expver import FINAL, PRELIMINARY
from .files import expand_inputs
from .longnames import HOURLY_ACCUMULATIONS
from .normalise import open_parts
from .options import DEFAULT_OPTIONS, ReadOptions
from .physical import check_units
from .timeselect import (
    ACCUMULATION_ATTR,
    select_variable,
    sum_count,
    windows,
)
from .zarrinput import StoreInput, is_store, open_store


@dataclass(frozen=True)
class Era5Inputs:
    """The combined inputs: the dataset plus what was learned while combining them.

    ``source`` holds, for each time step of ``dataset``, the file it was read from.
    """

    dataset: xr.Dataset
    files: tuple[Path, ...]
    source: np.ndarray
    axis: TimeAxis
    dropped_duplicates: int
    closers: tuple = ()
    chunk_cache: tuple[int, Path | None] = (0, None)  # largest disk_chunk_bytes, its file
    available: tuple[str, ...] = ()  # every channel the files hold, requested or not
    stores: tuple[StoreInput, ...] = ()  # the Zarr stores read (then ``files`` is empty)

    def close(self) -> None:
        """Close every file handle held in this process (lazy reads re-open on demand).

        HDF5 is not thread-safe: call this before handing the graph to a Dask client, so
        that no handle is left for another thread to close while this one reads.
        """
        for close in self.closers:
            close()

    @property
    def first(self) -> str:
        """The first input, file or store, for messages."""
        return str(self.files[0]) if self.files else self.stores[0].url

    @property
    def grid(self) -> SourceGrid:
        return SourceGrid(self.dataset["lat"].values, self.dataset["lon"].values)

    @property
    def preliminary(self) -> np.ndarray:
        """Times still preliminary (ERA5T) after final data replaced what it could."""
        ev = self.dataset["expver"].values
        return self.dataset["time"].values[ev != FINAL]



def open_era5(paths: list[str | os.PathLike] | tuple, variables: list[str] | None = None,
              options: ReadOptions = DEFAULT_OPTIONS) -> Era5Inputs:
    """Open and combine ERA5 files, or Zarr stores, into one normalised dataset.

    Rules: files are decoded one by one and then concatenated along time per product (files
    holding the same variables); duplicate steps are resolved with final ERA5 winning over
    ERA5T; duplicates with the same expver must be identical (else :class:`InputError`
    naming both files); all files must share one grid; every variable must cover every step.
    ``variables`` restricts the ERA5 short names kept. The time axis is analysed (step, gaps,
    irregular steps) but not enforced here: callers decide. ``options``: the read blocks,
    the ensemble member, the file cache, the time selection (:class:`.options.ReadOptions`).
    A GRIB file gives one part per variable (:func:`.grib.open_grib`), a Zarr store one per
    variable (:mod:`.zarrinput`), combined like files of one variable each. Stores and
    files are not mixed in one read.
    """
    patterns = [str(p) for p in paths]
    stores = [p for p in patterns if is_store(p)]
    if stores and len(stores) != len(patterns):
        raise InputError(f"{stores[0]}: a Zarr store and files in one run; build the cache "
                         "from one kind and --append the other")
    files = [] if stores else expand_inputs(patterns, options.extract_dir)
    opened, available, per_file, records = _open_each(files, stores, variables, options)
    closers = tuple(ds.close for _, ds in opened)
    biggest = max(per_file, key=per_file.get) if per_file else None
    if not opened:
        raise InputError(f"{(files or stores or paths)[0]}: none of the inputs holds "
                         f"the requested variables {', '.join(variables)} (they hold: "
                         f"{', '.join(available) or 'nothing'})")
    merged, first_src, dropped = _combined(opened)
    if options.time is not None and not stores:  # a store's steps are selected as it opens
        merged, first_src = selected(merged, first_src, options.time, str(files[0]))
    return Era5Inputs(
        dataset=merged,
        files=tuple(files),
        source=first_src,
        axis=analyse(merged["time"].values.astype("datetime64[s]")),
        dropped_duplicates=dropped,
        closers=closers,
        chunk_cache=(per_file[biggest], biggest) if biggest is not None else (0, None),
        available=tuple(available),
        stores=tuple(records),
    )


def selected(ds: xr.Dataset, source: np.ndarray, sel: TimeSelection, where: str
             ) -> tuple[xr.Dataset, np.ndarray]:
    """The combined files' steps that ``sel`` selects, accumulated variables (ERA5's hourly
    sums, :data:`.longnames.HOURLY_ACCUMULATIONS`) summed over the selected step
    (:mod:`.timeselect`); and the file of each kept step. A sum is final ERA5 only where
    every step it sums is."""
    times = ds["time"].values.astype("datetime64[s]")
    picked = sel.indices(times, where)
    native = native_step(times)
    out, longest = {}, 1
    for v in ds.data_vars:
        period = 1 if v in HOURLY_ACCUMULATIONS else None
        da = ds[v] if period is None else ds[v].assign_attrs({ACCUMULATION_ATTR: period})
        count = sum_count(period, native, sel.step)
        longest = max(longest, count)
        out[v] = select_variable(da, times, picked, count, where)
    final = (ds["expver"].values == FINAL)[windows(times, picked, longest, where)]
    ev = np.where(final.reshape(picked.size, longest).all(axis=1), FINAL, PRELIMINARY)
    new = xr.Dataset(out, attrs=ds.attrs).assign_coords(expver=("time", ev.astype("U4")))
    return new, np.asarray(source)[picked]


def _combined(opened: list[tuple[Path, xr.Dataset]]
              ) -> tuple[xr.Dataset, np.ndarray, int]:
    """The opened parts as one dataset: concatenated along time per product (parts of the
    same variables), duplicates resolved (:func:`_concat_dedup`), products merged, a step
    final only where every product has it final; with the file of each step of the first
    product, and the number of duplicate steps dropped."""
    groups: dict[tuple[str, ...], list[tuple[Path, xr.Dataset]]] = {}
    for f, ds in opened:
        groups.setdefault(tuple(sorted(ds.data_vars)), []).append((f, ds))
    parts, dropped = [], 0
    sources: dict[str, np.ndarray] = {}
    for _names, members in groups.items():
        combined, src, n_dropped = _concat_dedup(members)
        dropped += n_dropped
        parts.append(combined)
        for v in combined.data_vars:
            if v in sources:
                raise InputError(f"{src[0]}: variable {v!r} also arrives in a file with other "
                                 "variables; give each variable in one product only")
            sources[v] = src
    times = np.unique(np.concatenate([p["time"].values for p in parts]))
    for p in parts:
        if p.sizes["time"] != times.size:
            missing = np.setdiff1d(times, p["time"].values)
            names = ", ".join(p.data_vars)
            raise InputError(
                f"{sources[next(iter(p.data_vars))][0]}: variables {names} lack "
                f"{missing.size} time steps that other inputs have (first {missing[0]})")
    base = parts[0]
    expver = np.stack([p["expver"].values for p in parts])
    # A step is final only when every product has it final.
    ev = np.where((expver == FINAL).all(axis=0), FINAL, PRELIMINARY)
    if len({tuple(p["level"].values) for p in parts if "level" in p.dims}) > 1:
        parts = [levels_as_variables(p) for p in parts]
    merged = xr.merge([p.drop_vars("expver") for p in parts], join="exact",
                      combine_attrs="drop_conflicts")
    merged = merged.assign_coords(expver=("time", ev))
    merged.attrs = dict(base.attrs)
    return merged, sources[next(iter(base.data_vars))], dropped


def _open_each(files: list[Path], stores: list[str], variables: list[str] | None,
               options: ReadOptions):
    """Each file's parts (:func:`.normalise.open_parts`) and each store's
    (:func:`.zarrinput.open_store`) holding any of ``variables``, units checked, on one
    grid; every channel the inputs hold (an ordered set); each file's slab bytes
    (:attr:`.normalise.Part.slab_bytes`); the stores' records."""
    opened: list[tuple[Path | str, xr.Dataset]] = []
    grid: tuple[Path | str, SourceGrid] | None = None
    available: dict[str, None] = {}
    per_file: dict[Path, int] = {}
    records = []
    sources = [(f, lambda f=f: open_parts(f, options)) for f in files]
    for url in stores:
        store = open_store(url, variables, options)
        records.append(store.record)
        available.update(dict.fromkeys(store.available))
        sources.append((url, lambda store=store: store.parts))
    for f, parts in sources:
        for part in parts():
            ds = part.dataset
            available.update(dict.fromkeys(all_channels(ds)))
            if variables is not None:
                keep = [v for v in ds.data_vars if v in variables]
                if not keep:
                    ds.close()
                    continue
                ds = ds[keep]
            check_units(ds, f)
            g = SourceGrid(ds["lat"].values, ds["lon"].values)
            if grid is None:
                grid = (f, g)
            elif not grid[1].same_as(g):
                raise InputError(f"{f}: grid {g.describe()} differs from {grid[0]} "
                                 f"({grid[1].describe()}); regrid them in separate runs")
            opened.append((f, ds))
            per_file[f] = per_file.get(f, 0) + part.slab_bytes
    return opened, available, per_file, records


def _listed(values) -> str:
    return "none" if values is None else ", ".join(f"{v:g}" for v in values)


def _concat_dedup(members: list[tuple[Path, xr.Dataset]]):
    src = np.concatenate([np.full(ds.sizes["time"], str(f), dtype=object) for f, ds in members])
    first_file, first = members[0]
    for f, other in members[1:]:
        for dim in ("level", "number"):
            a = first[dim].values if dim in first.dims else None
            b = other[dim].values if dim in other.dims else None
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                raise InputError(f"{f}: {dim}s {_listed(b)} differ from {first_file}'s "
                                 f"({_listed(a)}) for {', '.join(map(str, other.data_vars))}; "
                                 "give every file the same ones")
    ds = members[0][1] if len(members) == 1 else xr.concat(
        [m[1] for m in members], dim="time", data_vars="minimal", coords="minimal",
        compat="override", join="override", combine_attrs="override")
    t = ds["time"].values
    rank = (ds["expver"].values != FINAL).astype(int)
    order = np.lexsort((rank, t))
    t_sorted, r_sorted = t[order], rank[order]
    keep = np.ones(t.size, dtype=bool)
    keep[1:] = t_sorted[1:] != t_sorted[:-1]
    # Same-expver duplicates must hold identical values; compared in batches of steps.
    pairs = []
    for pos in np.flatnonzero(~keep):
        first = pos
        while not keep[first]:
            first -= 1
        if r_sorted[pos] == r_sorted[first]:
            pairs.append((order[first], order[pos], pos))
    step_bytes = sum(ds[v].nbytes // max(ds.sizes["time"], 1) for v in ds.data_vars)
    batch = max(1, TARGET_CHUNK_BYTES // max(step_bytes, 1))
    for k in range(0, len(pairs), batch):
        part = pairs[k:k + batch]
        ii = [p[0] for p in part]
        jj = [p[1] for p in part]
        for v in ds.data_vars:
            a_all, b_all = ds[v].isel(time=ii).values, ds[v].isel(time=jj).values
            for n, (i, j, pos) in enumerate(part):
                a, b = a_all[n], b_all[n]
                if not np.array_equal(a, b, equal_nan=True):
                    diff = np.nanmax(np.abs(a - b))
                    raise InputError(
                        f"{src[j]}: time step {t_sorted[pos].astype('datetime64[s]')} of "
                        f"{v!r} conflicts with the same step in {src[i]} (max difference "
                        f"{diff:.6g}); remove one of the two files")
    sel = order[keep]
    if sel.size != t.size or np.any(np.diff(sel) < 0):
        ds = ds.isel(time=sel)
    return ds, src[sel], int((~keep).sum())

