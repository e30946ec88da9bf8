"""Meaning checks of a published cache: the HDF5 file against the Zarr store it was built
from, for ``era5cache verify``. Checksums only say the files are those the job wrote; these
say the job wrote the right thing (an append that stacked channels in another order than
``/channel`` names passes every checksum).

- **Channels**: on a bounded sample of steps (:func:`sample_steps`: at most 8 Zarr chunks,
  8 steps each, so a cache of any size costs at most 8 chunk reads a channel), each HDF5
  channel equals the Zarr variable of its name: bit for bit in a float32 cache, within the
  stored ``/encoding_error`` in a 16-bit one; NaN where NaN. Every HDF5 time step is a step
  of the store (the store keeps the steps that ``all_nan_steps: skip`` leaves out of the
  cache).
- **Statistics**: ``/mean`` and ``/std`` against the training period's data in ``/data``,
  recomputed in float64 (:class:`era5cache.format.stats.Moments`) when the training period
  holds at most ``stats_bytes`` bytes, within float32 accumulation error (relative 1e-5 of
  the channel's std for the mean, 1e-4 for the std). A bigger training period is checked on
  the sampled steps: the mean within six standard errors of the sampled steps' means (plus
  1e-5 std), the std within 25 %; enough to tell one variable's statistics from another's.
  In a 16-bit cache both tolerances grow by the channel's ``/encoding_error``.

Reads the store with zarr, so it lives here, not in :mod:`era5cache.format` (which readers
on machines without zarr import).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..format.encoding import decode
from ..format.h5 import CacheInfo
from ..format.layout import paths
from ..format.stats import Moments
from .h5build import zarr_times

SAMPLE_CHUNKS = 8  # Zarr chunks read per channel
SAMPLE_STEPS = 8  # steps compared per chunk
STATS_BYTES = 4 * 2**30  # training-period bytes recomputed exactly
MEAN_RTOL, STD_RTOL = 1e-5, 1e-4  # float32 accumulation error, relative to std


def meaning_problems(root: str | Path, stats_bytes: int = STATS_BYTES) -> list[str]:
    """Problems found (empty: the HDF5 cache holds what the Zarr store holds, with its
    statistics). Assumes the structural checks (:func:`era5cache.format.verify.verify`)
    passed. Never raises for a bad cache: a store that cannot be read is a problem too."""
    zpath, hpath, _ = paths(root)
    try:
        return _problems(zpath, hpath, stats_bytes)
    except Exception as exc:  # zarr, h5py and numpy raise many kinds on damaged files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [f"{zpath}: cannot be read to cross-check {hpath.name} ({reason})"]


def _problems(zpath: Path, hpath: Path, stats_bytes: int) -> list[str]:
    import zarr

    info = CacheInfo.read(hpath)
    group = zarr.open_group(str(zpath), mode="r")
    missing = [c for c in info.channels if c not in group]
    if missing:
        return [f"{zpath}: no variable(s) {missing} for the HDF5 channels"]
    ztimes = zarr_times(group)
    zidx = np.searchsorted(ztimes, info.times)
    zidx = np.minimum(zidx, ztimes.size - 1)
    absent = ztimes[zidx] != info.times
    if absent.any():
        return [f"{hpath}: time step {info.times[np.argmax(absent)]} is not in {zpath}"]
    data = info.map_data()
    problems = []
    for i, name in enumerate(info.channels):
        arr = group[name]
        steps = sample_steps(zidx, arr.chunks[0])
        problems += _channel_problems(info, data, i, arr, steps, zidx, hpath)
    return problems + _stats_problems(info, data, hpath, stats_bytes)


def sample_steps(zidx: np.ndarray, chunk_steps: int, chunks: int = SAMPLE_CHUNKS,
                 per_chunk: int = SAMPLE_STEPS) -> np.ndarray:
    """Positions (ascending) in the HDF5 time axis to compare: at most ``chunks`` Zarr
    chunks spread evenly over the store (first and last included), at most ``per_chunk``
    steps spread evenly over each. ``zidx``: each HDF5 step's position in the store."""
    if zidx.size == 0:
        return np.zeros(0, np.int64)
    chunk = zidx // chunk_steps
    present = np.unique(chunk)
    picked = present[np.unique(np.linspace(0, present.size - 1, chunks).round().astype(int))]
    out = []
    for k in picked:
        where = np.flatnonzero(chunk == k)
        out.append(where[np.unique(np.linspace(0, where.size - 1, per_chunk).round()
                                   .astype(int))])
    return np.concatenate(out)


def _channel_problems(info: CacheInfo, data: np.ndarray, i: int, arr, steps: np.ndarray,
                      zidx: np.ndarray, hpath: Path) -> list[str]:
    name = info.channels[i]
    want = arr.get_orthogonal_selection((zidx[steps], slice(None), slice(None)))
    got = _physical(data[steps, i], info, i)
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    if not np.array_equal(nan_got, nan_want):
        bad = steps[np.argmax((nan_got != nan_want).any(axis=(1, 2)))]
        return [f"{hpath}: channel {name!r} at {info.times[bad]} has NaN where the Zarr "
                "variable of that name has none, or the reverse (channels out of order?)"]
    ok = ~nan_want
    tol = 0.0 if info.storage == "float32" else float(info.encoding_error[i]) * (1 + 1e-3)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64), where=ok,
                  out=np.zeros(got.shape))
    if diff.max(initial=0.0) > tol:
        bad = steps[np.argmax(diff.max(axis=(1, 2)))]
        return [f"{hpath}: channel {name!r} at {info.times[bad]} differs from the Zarr "
                f"variable of that name by up to {diff.max():.6g} (allowed {tol:.3g}; "
                "channels out of order?)"]
    return []


def _physical(stored: np.ndarray, info: CacheInfo, channel: int | None = None) -> np.ndarray:
    """Values read from ``/data`` in physical units: ``stored`` shaped (steps, channel, lat,
    lon), or (steps, lat, lon) of ``channel``; a 16-bit cache's normalised values decoded
    and scaled back with ``/mean`` and ``/std`` in float32."""
    stored = np.asarray(stored)
    if info.storage == "float32":
        return stored
    pick = slice(None) if channel is None else channel
    std, mean = info.std[pick].astype(np.float32), info.mean[pick].astype(np.float32)
    if channel is None:  # per channel along axis 1
        std, mean = std[:, None, None], mean[:, None, None]
    return decode(stored, info.storage) * std + mean


def _stats_problems(info: CacheInfo, data: np.ndarray, hpath: Path,
                    stats_bytes: int) -> list[str]:
    train = np.flatnonzero(info.periods.mask("train", info.times))
    if train.size == 0:
        return [f"{hpath}: the training period holds no step (statistics undefined)"]
    exact = train.size * info.step_bytes <= stats_bytes
    rows = train if exact else sample_steps(train, max(1, train.size // SAMPLE_CHUNKS))
    moments, step_means = Moments(len(info.channels)), []
    for a in range(0, rows.size, 64):
        block = _physical(data[rows[a:a + 64]], info)
        moments.add(block)
        if not exact:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN step
                step_means.append(np.nanmean(block, axis=(2, 3), dtype=np.float64))
    mean, std = moments.mean(), moments.std()
    if exact:
        mean_tol = MEAN_RTOL * np.maximum(std, np.abs(mean) * 1e-2)
        std_tol = STD_RTOL * std + 1e-6 * np.abs(mean)
    else:
        m = np.concatenate(step_means)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            se = np.nanstd(m, axis=0) / np.sqrt(np.isfinite(m).sum(axis=0))
        mean_tol, std_tol = 6 * se + MEAN_RTOL * std, 0.25 * std
    if info.storage != "float32":  # recomputed from values rounded to 16 bits
        mean_tol, std_tol = mean_tol + info.encoding_error, std_tol + info.encoding_error
    how = "recomputed" if exact else f"estimated from {rows.size} sampled steps"
    out = []
    for i, name in enumerate(info.channels):
        for what, stored, value, tol in (("mean", info.mean[i], mean[i], mean_tol[i]),
                                         ("std", info.std[i], std[i], std_tol[i])):
            if not abs(stored - value) <= tol:  # NaN fails
                out.append(f"{hpath}: /{what} of channel {name!r} is {stored:.6g}, the "
                           f"training period's data give {value:.6g} ({how})")
    return out

