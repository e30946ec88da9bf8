"""A synthetic training cache written straight to HDF5 (h5py + numpy only).

For machines without netCDF4, Dask or Zarr (the lent GPU machines): the sample's fields
(:mod:`.fields`) evaluated at the 2-degree cell centres — point values, not the
conservative remap — in the same ``era5_2deg.h5`` layout, with a manifest that marks the
cache ``synthetic`` (there is no Zarr store, so ``era5cache verify`` does not apply). Good
for throughput benchmarks and GPU checks of the Dataset and the trainer, not for skill.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..format.h5 import CacheSpec, data_offset, encode_cache, storage_record, write_h5
from ..format.layout import FORMAT_VERSION, H5_NAME, MANIFEST_NAME
from ..format.manifest import Manifest, TimeCoverage, atomic_write_json
from ..grid import TARGET_LAT, TARGET_LON
from ..timeaxis import Period, Periods, analyse
from .fields import ATTRS, Fields

CHANNELS = (("sst", "sst", None), ("t2m", "t2m", None), ("z500", "z", 500))
# WeatherBench2's 13 pressure levels (hPa)
LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)


def synthetic_channels(n: int) -> list[tuple[str, str, int | None, int]]:
    """``n`` channels as (name, variable, level, seed offset): ``sst``, ``t2m``, ``z500``,
    then ``z`` and ``t`` on the other WeatherBench2 levels (28 distinct fields), then those
    again with other waves and noise (``z50_r1`` ...: seed offset ``r``)."""
    if n < 1:
        raise ValueError(f"channels must be >= 1, not {n}")
    distinct = [(c, v, lv) for c, v, lv in CHANNELS]
    distinct += [(f"z{lv}", "z", lv) for lv in LEVELS if lv != 500]
    distinct += [(f"t{lv}", "t", lv) for lv in LEVELS]
    out = []
    for k in range(n):
        r, (name, var, lv) = divmod(k, len(distinct))[0], distinct[k % len(distinct)]
        out.append((name if r == 0 else f"{name}_r{r}", var, lv, r))
    return out


def write_synthetic_cache(out: str | Path, steps: int, step_hours: int = 6,
                          start: str = "2019-01-01T00", seed: int = 0, channels: int = 3,
                          dtype: str = "float32") -> Path:
    """``steps`` steps of ``channels`` channels (:func:`synthetic_channels`) into
    ``out/era5_2deg.h5`` and its manifest; ``dtype`` float16/bfloat16 writes the 16-bit,
    normalised form (:func:`era5cache.format.h5.encode_cache`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times = np.datetime64(start, "s") + np.arange(steps) * np.timedelta64(step_hours * 3600, "s")
    chans = synthetic_channels(channels)
    fields = {r: Fields(TARGET_LAT, TARGET_LON, seed + r) for r in {c[3] for c in chans}}
    names = [c[0] for c in chans]

    def read_block(a: int, b: int) -> np.ndarray:
        return np.stack([fields[r].evaluate(var, lv, times[a:b]) for _, var, lv, r in chans],
                        axis=1)

    n_train = int(steps * 0.8)
    periods = Periods(train=Period(str(times[0]), str(times[n_train - 1])),
                      val=Period(str(times[n_train]), str(times[-1])))
    axis = analyse(times)
    tmp = out / f".{H5_NAME}.tmp"
    attrs = {c: ATTRS[var] for c, var, _, _ in chans}
    stats = write_h5(read_block, CacheSpec(times, axis, tuple(names), attrs, periods, 64), tmp)
    if dtype != "float32":
        encoded = out / f".{H5_NAME}.{dtype}.tmp"
        encode_cache(tmp, encoded, dtype)
        encoded.replace(tmp)
    tmp.replace(out / H5_NAME)
    manifest = Manifest(
        format_version=FORMAT_VERSION, package_version=__version__, synthetic=True,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        channels=tuple(names), shape=(steps, len(names), TARGET_LAT.size, TARGET_LON.size),
        time=TimeCoverage(start=str(times[0]), end=str(times[-1]), count=steps,
                          step=axis.step),
        periods=periods.to_json(), statistics=stats.to_json(names),
        outputs={H5_NAME: {"data_offset": data_offset(out / H5_NAME)}
                 | storage_record(out / H5_NAME)}, complete=True)
    atomic_write_json(out / MANIFEST_NAME, manifest.to_json())
    return out
