"""Shared fixtures: small real NetCDF samples in both CDS layouts, CDO discovery."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _prepare_the_process() -> bool:
    """Settings read when numpy and torch load, so set first; a value the user set stays.
    Returns whether numpy was loaded before this conftest (then they came too late: zarr's
    pytest plugin, which loads numpy, is off in pyproject's addopts).

    - Under pytest-xdist, each worker's thread pools (OpenMP in torch, OpenBLAS in numpy)
      take its share of the cores: two workers each running two spinning threads on two
      cores made a torch test 100x slower.
    - numpy does not advise transparent huge pages for its large arrays, as in the
      command's process (:data:`era5cache.process.NUMPY_ENVIRON`): on this project's 2-core
      test machines that was a third of the quick loop.
    """
    from era5cache.process import set_numpy_environ  # loads no numpy

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, share)
    set_numpy_environ()
    return "numpy" in sys.modules


NUMPY_LOADED_BEFORE_CONFTEST = _prepare_the_process()

import numpy as np  # after _prepare_the_process
import pytest

from era5cache.config.sample import SampleSpec
from era5cache.grid import cdo_grid_description
from era5cache.sample.netcdf import write_sample

ROOT = Path(__file__).resolve().parents[1]
# Real CDS files live beside the project (../shared/realdata); ERA5CACHE_REALDATA overrides.
REALDATA = Path(os.environ.get("ERA5CACHE_REALDATA", ROOT.parent / "shared" / "realdata"))


def realdata_files() -> list[Path]:
    return sorted(REALDATA.glob("*.nc"))


def need_realdata() -> None:
    """Skip (or fail under ERA5CACHE_REQUIRE_REALDATA=1) when the real files are absent."""
    if realdata_files():
        return
    if os.environ.get("ERA5CACHE_REQUIRE_REALDATA"):
        pytest.fail(f"real ERA5 files required but {REALDATA} holds none")
    pytest.skip(f"no real ERA5 files in {REALDATA} (set ERA5CACHE_REALDATA)")


@pytest.fixture(scope="session")
def cdo():
    """Path of the cdo binary; skips (or fails under ERA5CACHE_REQUIRE_CDO=1) without it."""
    path = shutil.which("cdo")
    if path is None:
        if os.environ.get("ERA5CACHE_REQUIRE_CDO"):
            pytest.fail("cdo is required (ERA5CACHE_REQUIRE_CDO=1) but not installed")
        pytest.skip("cdo not installed (Debian package `cdo`)")
    return path


def run_cdo_remapcon(cdo: str, src: Path, dst: Path, tmp: Path, area_min: float | None,
                     var: str | None = None) -> None:
    grid = tmp / "target_grid.txt"
    grid.write_text(cdo_grid_description())
    env = dict(os.environ)
    if area_min is not None:
        env["REMAP_AREA_MIN"] = str(area_min)
    op = f"remapcon,{grid}"
    if var:
        op = f"{op} -selname,{var}"
    cmd = [cdo, "-s", "-f", "nc4", "-b", "F64", *op.split(" "), str(src), str(dst)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)


def assert_matches_cdo(got: np.ndarray, cdo: str, src: Path, tmp: Path, var: str,
                       area_min: float | None = 0.5, rtol: float = 1e-5) -> None:
    """``got`` (time, lat, lon) equals ``cdo remapcon`` of ``var`` in ``src``: NaN in the
    same cells, relative difference at most ``rtol`` elsewhere."""
    import netCDF4

    out = tmp / f"cdo-{src.stem}-{var}.nc"
    run_cdo_remapcon(cdo, src, out, tmp, area_min, var=var)
    with netCDF4.Dataset(out) as nc:
        ref = nc[var][:].filled(np.nan)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert (np.abs(got[ok] - ref[ok]) / np.abs(ref[ok])).max() <= rtol, (src, var)


def _write_any(out: Path, spec: SampleSpec) -> Path:
    """The sample's files into the folder ``out``, or its Zarr store (layouts ``arco``,
    ``wb2``) as ``out/store.zarr``; returns what ``--input`` takes."""
    if spec.layout in ("arco", "wb2"):
        from era5cache.sample.stores import write_store

        return write_store(out / "store.zarr", spec)
    write_sample(out, spec)
    return out


def shared_sample(tmp_path_factory, name: str, spec: SampleSpec) -> Path:
    """A sample written once per test run: under pytest-xdist the first worker to need it
    writes it into the run's shared temporary folder (under a file lock) and the others
    read it, instead of each writing its own. Tests only read it. Returns the folder of
    files, or the Zarr store."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process
        return _write_any(tmp_path_factory.mktemp(name), spec)
    from filelock import FileLock

    out = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{out}.lock"):
        if not (out / ".complete").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            _write_any(out, spec)
            (out / ".complete").touch()
    return out / "store.zarr" if spec.layout in ("arco", "wb2") else out


@pytest.fixture(scope="session")
def sample_new(tmp_path_factory) -> Path:
    """Two months (Jan-Feb 2019) of 6-hourly 1-degree data, 2024+ layout."""
    return shared_sample(tmp_path_factory, "sample_new", SampleSpec(
        start="2019-01-01T00", end="2019-02-28T18", resolution=1.0, layout="new",
        variables=("sst", "t2m", "z"), levels=(500, 850)))


@pytest.fixture(scope="session")
def sample_legacy(tmp_path_factory) -> Path:
    """The same period in the legacy layout, the last 8 steps preliminary (expver dimension)."""
    return shared_sample(tmp_path_factory, "sample_legacy", SampleSpec(
        start="2019-01-01T00", end="2019-02-28T18", resolution=1.0, layout="legacy",
        variables=("sst", "t2m", "z"), levels=(500, 850), preliminary_steps=8))


ARCO_SPEC = SampleSpec(start="2020-01-01T00", end="2020-01-02T18", step="1h", resolution=5.0,
                       layout="arco", variables=("t2m", "tp", "z", "u"), preliminary_steps=6)
"""Two days of hourly data in ARCO-ERA5's layout at 5 degrees, 37 levels; the second day
preliminary ERA5T; the time axis a day longer at each end, unwritten."""


@pytest.fixture(scope="session")
def arco_store(tmp_path_factory) -> Path:
    """The store of :data:`ARCO_SPEC` (read only)."""
    return shared_sample(tmp_path_factory, "arco_store", ARCO_SPEC)


def raw_decode(path: Path, var: str) -> np.ndarray:
    """Independent decode with netCDF4 in raw mode: int16 * scale + offset, fill -> NaN."""
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        v = ds[var]
        v.set_auto_maskandscale(False)
        raw = v[:]
        raw = np.asarray(raw)
        fill = getattr(v, "_FillValue", None)
        miss = getattr(v, "missing_value", None)
        bad = np.zeros(raw.shape, bool)
        for f in (fill, miss):
            if f is not None:
                bad |= raw == f if not np.isnan(f) else np.isnan(raw)
        out = raw.astype(np.float64)
        if hasattr(v, "scale_factor"):
            out = out * float(v.scale_factor)
        if hasattr(v, "add_offset"):
            out = out + float(v.add_offset)
        out[bad] = np.nan
        return out


# The sample job's recipe: its two months, a month each for training and validation.
JOB_RECIPE = """
inputs: [{inputs}]
output: {output}
variables: [sst, t2m, z500]
chunk_steps: 50
periods:
  train: ["2019-01-01T00", "2019-01-31T18"]
  val: ["2019-02-01T00", "2019-02-28T18"]
dask: {{workers: 2, memory_limit: 1GiB}}
"""


def build_cache(recipe: Path | None = None, **overrides):
    """Run the job in this process and thread (its in-process runner: no Dask workers, no
    HDF5 from two threads) on ``recipe`` with ``overrides``
    (:func:`era5cache.config.recipe.with_overrides` keys); a fixture's quick way to a cache.
    The command line's own path is tested by the tests that run it."""
    from era5cache.config.recipe import load_preprocess_config, with_overrides
    from era5cache.store import job
    from era5cache.store.runners import InProcessRunner

    cfg = with_overrides(load_preprocess_config(recipe), **overrides)
    return job.run(cfg, progress=False, runner=InProcessRunner())


def cli_in_process(*args: str):
    """``era5cache ARGS`` run in this process (for commands that start no Dask workers and
    write nothing: verify, inspect, and commands refused before they start any, such as a
    bad recipe): its exit status, stdout and stderr, as :func:`run_cli` gives them."""
    import contextlib
    import io
    from types import SimpleNamespace

    from era5cache.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def lazy_variable(array):
    """A backend array (an xarray ``BackendArray``) as the lazy variable xarray makes of
    it: read where indexed, with xarray's own indexing."""
    import xarray as xr
    from xarray.core.indexing import LazilyIndexedArray

    return xr.Variable(tuple(f"d{i}" for i in range(len(array.shape))),
                       LazilyIndexedArray(array))


def run_cli(*args: str, check: bool = True, env: dict | None = None):
    """Run ``era5cache`` in a fresh process, as users do (keeps Dask/HDF5 threads out of the
    test process: HDF5 is not thread-safe); ``env``: its environment (default: ours)."""
    r = subprocess.run([sys.executable, "-m", "era5cache.cli", *map(str, args)],
                       capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"era5cache {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


# --- the trainer's tests: a small real cache and a trainer recipe for it ---------------
TINY = dict(d_model=32, num_heads=4, num_layers=1, dim_feedforward=64, recursion_depth=2,
            sh_degree=2)


@pytest.fixture(scope="session")
def small_cache(tmp_path_factory):
    """Twenty days of 6-hourly sst and t2m at 2 degrees through the job: train 14 days, val 6."""
    tmp = tmp_path_factory.mktemp("traincache")
    write_sample(tmp / "in", SampleSpec(start="2019-01-01", end="2019-01-20T18",
                                        resolution=2.0, variables=("sst", "t2m")))
    recipe = tmp / "r.yaml"
    recipe.write_text(
        f"inputs: [{tmp / 'in'}]\noutput: {tmp / 'cache'}\nvariables: [sst, t2m]\n"
        "hash_inputs: false\ndask: {workers: 1, memory_limit: 1GiB}\n"
        "periods:\n  train: ['2019-01-01', '2019-01-14T18']\n"
        "  val: ['2019-01-15', '2019-01-20T18']\n")
    build_cache(recipe)
    return tmp / "cache"


def train_yaml(tmp, cache, epochs=2, ema=0.9, trainer: str = ""):
    p = tmp / "train.yaml"
    p.write_text(
        f"data: {cache}\nmodel: {json.dumps(TINY)}\n"
        f"optim: {{lr: 1.0e-3, ema_decay: {ema}}}\n"
        f"trainer: {{max_epochs: {epochs}, batch_size: 8, out: {tmp / 'run'}, "
        f"log_every_n_steps: 1, num_workers: 0{trainer}}}\n")
    return p


def pytest_collection_finish(session):
    """The modules, classes and test items that collection loaded are moved out of the
    garbage collector's sight (:func:`gc.freeze`, as the job's workers do: see
    :mod:`era5cache.process`), so that each full collection a test triggers (the job
    closes its files with one) walks what the tests made, not torch's and xarray's
    millions of objects: 0.1 s a collection otherwise."""
    import gc

    gc.freeze()
