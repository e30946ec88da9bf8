"""Build the contiguous, memory-mappable HDF5 training cache from the Zarr store.

Layout (DESIGN.md section 6): ``/data`` (time, channel, lat, lon) float32, contiguous, no
filters, so ``numpy.memmap`` at ``/data``'s file offset reads it; ``/time`` int64 seconds since
1970-01-01 UTC; ``/channel`` UTF-8; ``/lat``, ``/lon``; ``/mean``, ``/std`` (training period,
NaN-aware) and ``/diff_std`` (std of one-step differences, training period, never across a
gap); ``/has_nan`` (time, channel) uint8, 1 where the step of the channel holds a NaN, so
that readers skip the NaN fill of channels that have none. Datasets are written without
timestamps so that equal inputs give equal bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .config import SPLITS, Periods
from .grid import TARGET_LAT, TARGET_LON
from .layout import FORMAT_VERSION
from .stats import Moments
from .timeaxis import TimeAxis

GRID_DESCRIPTION = (
    "regular lat-lon, 2 degree, 80 x 180 (lat x lon), cell centres lat -79..79 ascending, "
    "lon 1..359; bounds on even degrees covering 80S..80N; first-order conservative remap"
)


@dataclass(frozen=True)
class CacheStats:
    mean: np.ndarray
    std: np.ndarray
    diff_std: np.ndarray
    count: np.ndarray

    def to_json(self, channels: list[str]) -> dict:
        return {
            ch: {"mean": float(self.mean[i]), "std": float(self.std[i]),
                 "diff_std": float(self.diff_std[i]), "count": int(self.count[i])}
            for i, ch in enumerate(channels)
        }


def build_h5(zarr_path: Path, h5_path: Path, channels: list[str], axis: TimeAxis,
             periods: Periods, block_steps: int, channel_attrs: dict[str, dict],
             keep: np.ndarray | None = None) -> CacheStats:
    """Write ``h5_path`` from the Zarr store, streaming ``block_steps`` steps at a time.

    ``keep``: boolean per Zarr step, the steps that go into the cache (default: all); ``axis``
    describes the kept steps.
    """
    import zarr

    group = zarr.open_group(str(zarr_path), mode="r")
    arrays = [group[ch] for ch in channels]
    times = _zarr_times(group)
    rows = np.arange(times.size) if keep is None else np.flatnonzero(keep)

    def read_block(a: int, b: int) -> np.ndarray:
        if b <= a:
            return np.zeros((0, len(channels), TARGET_LAT.size, TARGET_LON.size), np.float32)
        lo, hi = int(rows[a]), int(rows[b - 1]) + 1
        block = np.stack([arr[lo:hi] for arr in arrays], axis=1)
        return block if hi - lo == b - a else block[rows[a:b] - lo]

    return write_h5(read_block, times[rows], h5_path, channels, axis, periods, block_steps,
                    channel_attrs)


def write_h5(read_block: Callable[[int, int], np.ndarray], times: np.ndarray, h5_path: Path,
             channels: list[str], axis: TimeAxis, periods: Periods, block_steps: int,
             channel_attrs: dict[str, dict]) -> CacheStats:
    """Write the cache from ``read_block(a, b)`` -> (b - a, channel, 80, 180) float32 blocks
    at ``times`` (datetime64[s]); statistics over ``periods.train``."""
    nt, nc = times.size, len(channels)
    masks = periods.masks(times)
    train = masks["train"]
    consecutive = np.zeros(nt, dtype=bool)  # consecutive[i]: step i follows step i-1
    consecutive[1:] = axis.consecutive(times) & train[1:] & train[:-1]
    moments, diffs = Moments(nc), Moments(nc)
    has_nan = np.zeros((nt, nc), dtype=np.uint8)
    with h5py.File(h5_path, "w", libver=("earliest", "v110")) as f:
        data = f.create_dataset("data", shape=(nt, nc, TARGET_LAT.size, TARGET_LON.size),
                                dtype=np.float32, chunks=None, track_times=False)
        prev = None
        for a in range(0, nt, block_steps):
            b = min(nt, a + block_steps)
            block = np.asarray(read_block(a, b), dtype=np.float32)  # (t, c, lat, lon)
            data[a:b] = block
            has_nan[a:b] = np.isnan(block).any(axis=(2, 3))
            moments.add(block[train[a:b]])
            ext, off = (block, 0) if prev is None else (np.concatenate([prev[None], block]), 1)
            idx = np.flatnonzero(consecutive[a:b]) + off  # position of step i in ext
            idx = idx[idx >= 1]
            if idx.size:
                diffs.add(ext[idx] - ext[idx - 1])
            prev = block[-1]
        f.create_dataset("time", data=times.astype("datetime64[s]").astype(np.int64),
                         track_times=False)
        f["time"].attrs["units"] = "seconds since 1970-01-01 00:00:00 UTC"
        f.create_dataset("channel", data=np.array(channels, dtype=object),
                         dtype=h5py.string_dtype("utf-8"), track_times=False)
        f.create_dataset("has_nan", data=has_nan, track_times=False)
        f.create_dataset("lat", data=TARGET_LAT, track_times=False)
        f.create_dataset("lon", data=TARGET_LON, track_times=False)
        stats = CacheStats(mean=moments.mean(), std=moments.std(), diff_std=diffs.std(),
                           count=moments.count)
        for name in ("mean", "std", "diff_std"):
            f.create_dataset(name, data=getattr(stats, name).astype(np.float32),
                             track_times=False)
        for key, val in (("units", "units"), ("long_name", "long_name")):
            f.create_dataset(key, data=np.array(
                [str(channel_attrs.get(ch, {}).get(val, "")) for ch in channels], dtype=object),
                dtype=h5py.string_dtype("utf-8"), track_times=False)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["grid"] = GRID_DESCRIPTION
        f.attrs["time_step"] = axis.step or ""
        for split in SPLITS:
            p = getattr(periods, split)
            f.attrs[f"{split}_period"] = "" if p is None else f"{p.start}/{p.end}"
        f.attrs["statistics_period"] = "train"
    return stats


def _zarr_times(group) -> np.ndarray:
    t = group["time"]
    units = t.attrs.get("units", "")
    raw = t[:]
    if not units.startswith("seconds since 1970-01-01"):
        raise ValueError(f"unexpected time units {units!r} in Zarr store")
    return raw.astype(np.int64).astype("datetime64[s]")


def data_offset(h5_path: str | Path) -> int:
    """File offset of ``/data`` (contiguous); ``numpy.memmap`` reads the array there."""
    with h5py.File(h5_path, "r") as f:
        off = f["data"].id.get_offset()
        if off is None:
            raise ValueError(f"{h5_path}: /data has no contiguous storage")
        return int(off)
