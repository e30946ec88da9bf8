"""The GPU machines have torch, lightning, h5py, numpy and xarray but no zarr, dask,
distributed, netCDF4 or pydantic: the Dataset, the model and ``era5cache bench train`` must
import and load batches without them (DEVELOPERS brief, the device; the trainer's recipe
needs pydantic, which tools/gpu-check.sh carries as wheels)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("zarr", "dask", "distributed", "netCDF4", "pydantic"):
            raise ImportError("not on the device: " + name)
sys.meta_path.insert(0, Block())
from era5cache import CachedERA5Dataset
import era5cache.train.model, era5cache.bench.train
ds = CachedERA5Dataset(sys.argv[1], split="train")
x, y = ds.__getitems__(list(range(min(40, len(ds))))).batched
assert x.shape[0] == y.shape[0] > 0
print("loaded", tuple(x.shape))
"""


@pytest.mark.slow  # a fresh interpreter importing torch and Lightning: ~8 s
def test_device_path_imports_without_zarr_dask_netcdf4(tmp_path):
    from era5cache.sample.synthetic import write_synthetic_cache

    cache = tmp_path / "cache"
    write_synthetic_cache(cache, 64)
    src = Path(__file__).resolve().parents[2] / "src"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(cache)], capture_output=True,
                       text=True, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("loaded (40, ")
