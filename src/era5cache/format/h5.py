"""``era5_2deg.h5``, the contiguous, memory-mappable HDF5 training cache: its writer
(:func:`write_h5`) and what readers take from it (:class:`CacheInfo`).

Layout (docs/contracts.md section 6): ``/data`` (time, channel, lat, lon) float32, contiguous, no
filters, so ``numpy.memmap`` at ``/data``'s file offset reads it; ``/time`` int64 seconds since
1970-01-01 UTC; ``/channel`` UTF-8; ``/lat``, ``/lon``; ``/mean``, ``/std`` (training period,
NaN-aware) and ``/diff_std`` (std of one-step differences, training period, never across a
gap); ``/has_nan`` (time, channel) uint8, 1 where the step of the channel holds a NaN, so
that readers skip the NaN fill of channels that have none. Datasets are written without
timestamps so that equal inputs give equal bytes.

A 16-bit cache (:func:`encode_cache`) differs only in ``/data``: float16, or bfloat16 as
uint16 bit patterns, holding values normalised with ``/mean`` and ``/std`` (its attribute
``encoding`` names the storage; see :mod:`.encoding`), and ``/encoding_error``, the largest
rounding error per channel in physical units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import CacheError, InputError
from ..grid import TARGET_LAT, TARGET_LON
from ..timeaxis import Periods, TimeAxis
from . import encoding
from .layout import FORMAT_VERSION, GRID_DESCRIPTION
from .stats import Moments


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


@dataclass(frozen=True)
class CacheSpec:
    """What a cache file holds besides its values.

    Args:
        times: its time steps, datetime64[s] ascending; ``axis`` their analysis (step,
            gaps: :func:`era5cache.timeaxis.analyse`).
        channels: the channel axis, in order; ``channel_attrs`` each one's CF attributes
            (``units``, ``long_name``; missing ones stored as '').
        periods: the train/val/test periods; the statistics cover ``periods.train``.
        block_steps: time steps written (and read from the source) at a time.
    """

    times: np.ndarray
    axis: TimeAxis
    channels: tuple[str, ...]
    channel_attrs: dict[str, dict]
    periods: Periods
    block_steps: int


def write_h5(read_block: Callable[[int, int], np.ndarray], spec: CacheSpec,
             h5_path: Path) -> CacheStats:
    """Write the cache ``h5_path`` from ``read_block(a, b)`` -> (b - a, channel, 80, 180)
    float32 blocks of steps ``a:b`` of ``spec.times``, NaN where missing; returns the
    statistics (``/mean``, ``/std``: NaN-aware over ``spec.periods.train``)."""
    times, channels, periods, axis = spec.times, list(spec.channels), spec.periods, spec.axis
    nt, nc, block_steps = times.size, len(channels), spec.block_steps
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
                [str(spec.channel_attrs.get(ch, {}).get(val, "")) for ch in channels],
                dtype=object),
                dtype=h5py.string_dtype("utf-8"), track_times=False)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["grid"] = GRID_DESCRIPTION
        f.attrs["time_step"] = axis.step or ""
        for key, value in periods.to_attrs().items():
            f.attrs[key] = value
        f.attrs["statistics_period"] = "train"
    return stats


def encode_cache(src: Path, dst: Path, storage: str, block_steps: int = 256) -> np.ndarray:
    """Write ``dst``, the 16-bit form of the float32 cache ``src``: every dataset and attribute
    copied, ``/data`` normalised with ``/mean`` and ``/std`` and stored as ``storage``
    (:mod:`.encoding`), ``block_steps`` steps at a time. Returns the largest rounding error
    per channel in physical units (also stored as ``/encoding_error``)."""
    with h5py.File(src, "r") as f:
        mean = f["mean"][:].astype(np.float64)[:, None, None]
        std = f["std"][:].astype(np.float64)[:, None, None]
        bad = ~(np.isfinite(std) & (std > 0)).ravel()
        if bad.any():  # before dst exists
            names = [_names(f["channel"][:])[i] for i in np.flatnonzero(bad)]
            raise InputError(f"{src}: channel(s) {names} have no positive training std; a "
                             f"{storage} cache stores normalised values and needs one "
                             "(use dtype: float32)")
        with h5py.File(dst, "w", libver=("earliest", "v110")) as g:
            d = f["data"]
            nt, nc = d.shape[:2]
            out = g.create_dataset("data", shape=d.shape, dtype=encoding.NUMPY_DTYPE[storage],
                                   chunks=None, track_times=False)
            out.attrs["encoding"] = storage
            zmax = np.zeros(nc)
            for a in range(0, nt, block_steps):
                z = (d[a:a + block_steps].astype(np.float64) - mean) / std
                out[a:a + block_steps] = encoding.encode(z, storage)
                with np.errstate(invalid="ignore"):  # NaN: fmax takes the other
                    zmax = np.fmax(zmax, np.fmax.reduce(np.abs(z), axis=(0, 2, 3),
                                                        initial=0.0))
            for name in f:
                if name != "data":
                    f.copy(f[name], g, name=name)
            for key, value in f.attrs.items():
                g.attrs[key] = value
            err = encoding.error_bound(zmax, std.ravel(), storage)
            g.create_dataset("encoding_error", data=err, track_times=False)
    return err


def data_offset(h5_path: str | Path) -> int:
    """File offset of ``/data`` (contiguous); ``numpy.memmap`` reads the array there."""
    with h5py.File(h5_path, "r") as f:
        off = f["data"].id.get_offset()
        if off is None:
            raise ValueError(f"{h5_path}: /data has no contiguous storage")
        return int(off)


def _names(values) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


@dataclass(frozen=True)
class CacheInfo:
    """What a reader takes from ``era5_2deg.h5``, read once (:meth:`read`).

    ``shape`` (time, channel, lat, lon) of ``/data`` at file offset ``data_offset``, stored
    as ``storage`` (``float32``: physical units, numpy ``dtype`` float32; ``float16`` or
    ``bfloat16``: normalised values, :mod:`.encoding`); ``channels`` and ``times``
    (datetime64[s]) along its first two axes; ``mean``/``std``/``diff_std`` float64 per
    channel in physical units (``diff_std`` NaN in caches written before it existed);
    ``periods`` and ``step`` (see :mod:`era5cache.timeaxis`); ``lat``/``lon`` cell centres
    in degrees; ``has_nan`` bool (time, channel), None in caches written before it existed;
    ``encoding_error`` (16-bit caches) the largest rounding error per channel, physical.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    data_offset: int
    channels: tuple[str, ...]
    times: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    diff_std: np.ndarray
    periods: Periods
    step: str | None
    lat: np.ndarray
    lon: np.ndarray
    has_nan: np.ndarray | None = field(default=None, repr=False)
    storage: str = "float32"
    encoding_error: np.ndarray | None = field(default=None, repr=False)

    @property
    def normalised(self) -> bool:
        """``/data`` holds values normalised with ``mean``/``std`` (16-bit caches)."""
        return encoding.is_normalised(self.storage)

    @property
    def step_bytes(self) -> int:
        """Bytes of one time step (all channels) in the file."""
        return int(np.prod(self.shape[1:])) * self.dtype.itemsize

    def map_data(self, file=None) -> np.memmap:
        """``/data`` memory-mapped read-only, as stored (``dtype``, ``shape``), from ``file``
        (a path or an open binary file; default ``path``)."""
        return np.memmap(self.path if file is None else file, dtype=self.dtype, mode="r",
                         offset=self.data_offset, shape=self.shape)

    @classmethod
    def read(cls, h5_path: str | Path) -> CacheInfo:
        """:class:`CacheError` naming the file when it is unreadable, lacks a dataset, or
        ``/data`` is not contiguous (chunked, compressed: it cannot be memory-mapped)."""
        h5_path = Path(h5_path)
        try:
            with h5py.File(h5_path, "r") as f:
                d = f["data"]
                offset = d.id.get_offset()
                if d.chunks is not None or d.compression is not None or offset is None:
                    raise CacheError(f"{h5_path}: /data is chunked or compressed, not "
                                     "contiguous; rebuild the cache")
                mean = f["mean"][:].astype(np.float64)
                return cls(
                    path=h5_path, shape=tuple(d.shape), dtype=d.dtype,
                    data_offset=int(offset), channels=_names(f["channel"][:]),
                    times=f["time"][:].astype("datetime64[s]"), mean=mean,
                    std=f["std"][:].astype(np.float64),
                    diff_std=(f["diff_std"][:].astype(np.float64) if "diff_std" in f
                              else np.full(mean.shape, np.nan)),
                    periods=Periods.from_attrs(f.attrs),
                    step=str(f.attrs.get("time_step", "")) or None,
                    lat=f["lat"][:], lon=f["lon"][:],
                    has_nan=f["has_nan"][:].astype(bool) if "has_nan" in f else None,
                    storage=str(d.attrs.get("encoding", "float32")),
                    encoding_error=(f["encoding_error"][:] if "encoding_error" in f
                                    else None))
        except (OSError, KeyError, ValueError) as exc:
            raise CacheError(f"{h5_path}: unreadable cache ({exc})") from exc

    def problems(self, shape, channels, data_offset: int | None,
                 storage: str = "float32") -> list[str]:
        """How this file differs from what its manifest says (empty: it does not)."""
        out = []
        want = encoding.NUMPY_DTYPE.get(storage)
        if (self.shape != tuple(shape) or self.storage != storage or self.dtype != want):
            out.append(f"{self.path}: /data is {self.shape} {self.storage}, unlike its "
                       f"manifest ({tuple(shape)} {storage})")
        if data_offset is not None and self.data_offset != data_offset:
            out.append(f"{self.path}: /data offset differs from the manifest")
        if list(self.channels) != list(channels):
            out.append(f"{self.path}: channels {list(self.channels)} differ from manifest "
                       f"{list(channels)}")
        return out


def storage_record(h5_path: str | Path) -> dict:
    """The manifest's keys for the HDF5 file's storage: for a 16-bit cache ``storage`` and
    ``encoding_error`` (largest rounding error per channel, physical units); none for
    float32, so float32 manifests are as before."""
    info = CacheInfo.read(h5_path)
    if info.storage == "float32":
        return {}
    return {"storage": info.storage,
            "encoding_error": {c: float(e) for c, e in
                               zip(info.channels, info.encoding_error, strict=True)}}
