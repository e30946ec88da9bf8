"""Local Dask workers: forked from the preloaded fork server, with the worker environment."""

from __future__ import annotations

import os

import pytest

from era5cache.config.recipe import PreprocessConfig, with_overrides
from era5cache.config.sizes import memory_bytes
from era5cache.store.cluster import dask_client
from era5cache.store.forkserver import worker_environ


@pytest.mark.parametrize("limit", ["2GiB", "600MiB", "600 MB", "4GB", "1.5GiB", "100kB",
                                   "5e9", "123", 2**31, "1 TiB", "4g", "2Gi", "1PB", "MB",
                                   "lots", "2 GiBs"])
def test_memory_bytes_reads_sizes_as_dask_does(limit):
    from dask.utils import parse_bytes

    try:
        want = parse_bytes(limit)
    except ValueError:
        with pytest.raises(ValueError, match="not a memory size"):
            memory_bytes(limit)
    else:
        assert memory_bytes(limit) == want


def test_worker_environ_scales_malloc_trim_with_the_limit():
    small, big = worker_environ("600MiB"), worker_environ("8GiB")
    assert small["MALLOC_TRIM_THRESHOLD_"] == str(150 * 2**20)
    assert big["MALLOC_TRIM_THRESHOLD_"] == str(256 * 2**20)
    assert small["OMP_NUM_THREADS"] == small["OPENBLAS_NUM_THREADS"] == "1"
    assert small["NUMPY_MADVISE_HUGEPAGE"] == "0"


def _probe():
    import sys

    return {"pid": os.getpid(), "ppid": os.getppid(),
            "preloaded": all(m in sys.modules for m in ("xarray", "netCDF4", "zarr",
                                                        "era5cache.regrid.adapter")),
            "gc": __import__("gc").isenabled(),
            "frozen": __import__("gc").get_freeze_count(),
            "threads": os.environ.get("OPENBLAS_NUM_THREADS")}


@pytest.mark.slow  # Dask worker processes
def test_local_workers_fork_from_the_preloaded_server():
    """Before any task ran, each worker already holds the job's modules (imported once in the
    fork server, whose children they are, not the job's), frozen out of the garbage
    collector's sight with collection on, and the worker environment."""
    cfg = with_overrides(PreprocessConfig(), dask_workers=2, dask_memory_limit="1GiB")
    with dask_client(cfg) as client:
        info = list(client.run(_probe).values())
    assert len(info) == 2
    parents = {i["ppid"] for i in info}
    assert len(parents) == 1 and os.getpid() not in parents  # the fork server's children
    for i in info:
        assert i["preloaded"]
        assert i["gc"] and i["frozen"] > 100_000  # xarray, pandas, dask, zarr: ~1M objects
        assert i["threads"] == "1"


@pytest.mark.slow  # Dask worker processes
@pytest.mark.parametrize("limit", ["1GiB", "600MiB"])
def test_each_cluster_gets_its_own_malloc_settings(limit):
    """The fork server outlives a job; each cluster's workers state the malloc thresholds
    of their own memory limit in their environment, and glibc takes them (``mallopt``)."""
    cfg = with_overrides(PreprocessConfig(), dask_workers=1, dask_memory_limit=limit)
    with dask_client(cfg) as client:
        info = list(client.run(_malloc).values())
    want = worker_environ(limit)
    assert info == [{"trim": want["MALLOC_TRIM_THRESHOLD_"],
                     "mmap": want["MALLOC_MMAP_THRESHOLD_"], "applied": True}]


def _malloc(dask_worker) -> dict:
    return {"trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            "mmap": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            "applied": dask_worker.plugins["era5cache-malloc"].applied}


def test_imports_frozen_pauses_collection_then_freezes():
    import gc

    from era5cache.process import imports_frozen

    before = gc.get_freeze_count()
    try:
        with imports_frozen():
            assert not gc.isenabled()
            kept = [[i] for i in range(1000)]  # objects made inside are frozen afterwards
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + 1000
        assert kept
        gc.disable()
        with imports_frozen():  # collection stays as it was found
            pass
        assert not gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.slow
def test_low_memory_limit_completes_instead_of_pausing(tmp_path):
    """A 300 MiB worker limit on 0.25-degree input: Dask's default pauses a worker at 80% of
    its limit, which stalled this job for ever (both workers paused with nothing to spill).
    The job bounds memory by its read block size instead, so it must finish."""
    import subprocess
    import sys

    from era5cache.config.sample import SampleSpec
    from era5cache.sample.netcdf import write_sample

    write_sample(tmp_path / "in", SampleSpec(start="2021-07-01T00", end="2021-07-02T23",
                                             step="1h", resolution=0.25, variables=("t2m",)))
    out = tmp_path / "cache"
    r = subprocess.run([sys.executable, "-m", "era5cache.cli", "preprocess", "--input",
                        str(tmp_path / "in"), "--output", str(out), "--workers", "2",
                        "--memory-limit", "300MiB", "--no-progress", "--chunk-steps", "24"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert "built" in r.stdout and "48 steps" in r.stdout
    v = subprocess.run([sys.executable, "-m", "era5cache.cli", "verify", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.slow  # Dask worker processes
def test_no_http_server_on_8787_and_no_warning_when_it_is_taken():
    """A notebook's cluster holds 8787: the job's scheduler serves its HTTP endpoints on a
    free local port instead, without distributed's four-line warning; ``dask.dashboard``
    asks for the dashboard where the user wants it."""
    import socket
    import warnings

    holder = socket.socket()
    try:
        holder.bind(("", 8787))
        holder.listen()
    except OSError:  # something holds it already: the case under test
        pass
    try:
        cfg = with_overrides(PreprocessConfig(), dask_workers=1, dask_memory_limit="1GiB")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with dask_client(cfg) as client:
                port = client.cluster.scheduler.http_server.port
                assert client.submit(sum, [1, 2]).result() == 3
        assert port != 8787
        assert not [w for w in caught if "8787" in str(w.message)]
    finally:
        holder.close()
