"""A synthetic training cache written straight to HDF5 (h5py + numpy only).

For machines without netCDF4, Dask or Zarr (the lent GPU machines): the sample's fields
(:mod:`era5cache.sample`) evaluated at the 2-degree cell centres — point values, not the
conservative remap — in the same ``era5_2deg.h5`` layout, with a manifest that marks the
cache ``synthetic`` (there is no Zarr store, so ``era5cache verify`` does not apply). Good
for throughput benchmarks and GPU checks of the Dataset and the trainer, not for skill.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import __version__
from .config import Period, Periods
from .grid import TARGET_LAT, TARGET_LON
from .h5cache import data_offset, write_h5
from .layout import FORMAT_VERSION, H5_NAME, MANIFEST_NAME
from .manifest import atomic_write_json
from .sample import ATTRS, _Fields
from .timeaxis import analyse

CHANNELS = (("sst", None), ("t2m", None), ("z500", 500))


def write_synthetic_cache(out: str | Path, steps: int, step_hours: int = 6,
                          start: str = "2019-01-01T00", seed: int = 0) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times = np.datetime64(start, "s") + np.arange(steps) * np.timedelta64(step_hours * 3600, "s")
    fields = _Fields(TARGET_LAT, TARGET_LON, seed)
    names = [c for c, _ in CHANNELS]

    def read_block(a: int, b: int) -> np.ndarray:
        return np.stack([fields.evaluate(c.rstrip("0123456789"), lv, times[a:b])
                         for c, lv in CHANNELS], axis=1)

    n_train = int(steps * 0.8)
    periods = Periods(train=Period(str(times[0]), str(times[n_train - 1])),
                      val=Period(str(times[n_train]), str(times[-1])))
    axis = analyse(times)
    tmp = out / f".{H5_NAME}.tmp"
    attrs = {c: ATTRS[c.rstrip("0123456789")] for c in names}
    stats = write_h5(read_block, times, tmp, names, axis, periods, 256, attrs)
    tmp.replace(out / H5_NAME)
    atomic_write_json(out / MANIFEST_NAME, {
        "format_version": FORMAT_VERSION, "package_version": __version__, "synthetic": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "channels": names, "shape": [steps, len(names), TARGET_LAT.size, TARGET_LON.size],
        "time": {"start": str(times[0]), "end": str(times[-1]), "count": steps,
                 "step": axis.step, "gaps": []},
        "periods": periods.to_json(), "statistics": stats.to_json(names),
        "outputs": {H5_NAME: {"data_offset": data_offset(out / H5_NAME)}},
        "complete": True,
    })
    return out
