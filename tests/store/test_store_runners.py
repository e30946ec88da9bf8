"""The job's two runners agree: the in-process runner (one thread, Dask's synchronous
scheduler, the HDF5 cache written between chunks) and the Dask runner (worker processes,
the HDF5 cache written by a thread as chunks arrive) publish the same bytes: every HDF5
dataset and attribute and every Zarr array, on deflated NetCDF (read by
:mod:`era5cache.read.h5chunks`), GRIB and packed legacy NetCDF (read by netCDF4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cachebytes import assert_same_cache

from era5cache.config.recipe import PreprocessConfig, with_overrides
from era5cache.config.sample import SampleSpec
from era5cache.format.verify import verify
from era5cache.sample.grib import grib_from_netcdf
from era5cache.sample.netcdf import write_sample
from era5cache.store import job
from era5cache.store.runners import InProcessRunner
from era5cache.timeaxis import Period, Periods


@pytest.fixture(scope="module")
def scheduler():
    """A local Dask cluster of two worker processes; its address."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        yield cluster.scheduler_address


def _inputs(folder: Path, layout: str) -> Path:
    """Six days of the sample at 1 degree; in the CDS layout the pressure levels as GRIB."""
    write_sample(folder, SampleSpec(start="2019-01-01T00", end="2019-01-06T18",
                                    resolution=1.0, layout=layout, seed=3))
    if layout == "new":
        (plev,) = folder.glob("*pressure*")
        grib_from_netcdf(plev, folder / "pressure-levels.grib")
        plev.unlink()
    return folder


@pytest.mark.slow  # worker processes (the quick loop runs the job in-process)
@pytest.mark.parametrize("layout", ["new", "legacy"])
def test_in_process_and_dask_runners_publish_the_same_bytes(layout, scheduler, tmp_path):
    inputs = _inputs(tmp_path / "in", layout)
    cfg = with_overrides(
        PreprocessConfig(periods=Periods(train=Period("2019-01-01", "2019-01-04T18"))),
        inputs=(str(inputs),), variables=("sst", "t2m", "z500", "z850"), chunk_steps=7,
        hash_inputs=False)
    local = job.run(with_overrides(cfg, output=str(tmp_path / "local")), progress=False,
                    runner=InProcessRunner())
    dask = job.run(with_overrides(cfg, output=str(tmp_path / "dask"),
                                  dask_scheduler=scheduler), progress=False)
    assert local.n_time == dask.n_time == 24 and local.channels == dask.channels
    assert_same_cache(tmp_path / "local", tmp_path / "dask")
    assert verify(tmp_path / "local") == []
    from dask.distributed import Client

    with Client(scheduler) as client:  # the job's file caches went with it
        left = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert not any(n.startswith("era5cache-files") for names in left.values() for n in names)
    assert list(local.stages) == list(dask.stages) == ["plan", "regrid+zarr", "hdf5+stats",
                                                       "checksums"]
