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
from ..format.h5 import data_offset, write_h5
from ..format.layout import FORMAT_VERSION, H5_NAME, MANIFEST_NAME
from ..format.manifest import Manifest, TimeCoverage, atomic_write_json
from ..grid import TARGET_LAT, TARGET_LON
from ..timeaxis import Period, Periods, analyse
from .fields import ATTRS, Fields

CHANNELS = (("sst", "sst", None), ("t2m", "t2m", None), ("z500", "z", 500))


def write_synthetic_cache(out: str | Path, steps: int, step_hours: int = 6,
                          start: str = "2019-01-01T00", seed: int = 0) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times = np.datetime64(start, "s") + np.arange(steps) * np.timedelta64(step_hours * 3600, "s")
    fields = Fields(TARGET_LAT, TARGET_LON, seed)
    names = [c for c, _, _ in CHANNELS]

    def read_block(a: int, b: int) -> np.ndarray:
        return np.stack([fields.evaluate(var, lv, times[a:b]) for _, var, lv in CHANNELS],
                        axis=1)

    n_train = int(steps * 0.8)
    periods = Periods(train=Period(str(times[0]), str(times[n_train - 1])),
                      val=Period(str(times[n_train]), str(times[-1])))
    axis = analyse(times)
    tmp = out / f".{H5_NAME}.tmp"
    attrs = {c: ATTRS[var] for c, var, _ in CHANNELS}
    stats = write_h5(read_block, times, tmp, names, axis, periods, 256, attrs)
    tmp.replace(out / H5_NAME)
    manifest = Manifest(
        format_version=FORMAT_VERSION, package_version=__version__, synthetic=True,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        channels=tuple(names), shape=(steps, len(names), TARGET_LAT.size, TARGET_LON.size),
        time=TimeCoverage(start=str(times[0]), end=str(times[-1]), count=steps,
                          step=axis.step),
        periods=periods.to_json(), statistics=stats.to_json(names),
        outputs={H5_NAME: {"data_offset": data_offset(out / H5_NAME)}}, complete=True)
    atomic_write_json(out / MANIFEST_NAME, manifest.to_json())
    return out
