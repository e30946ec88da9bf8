"""The preprocessing job end to end: real NetCDF in, Zarr + HDF5 + manifest out, checked
against CDO remapcon, a float64 recomputation of the statistics and raw memory maps."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr
import xxhash
from conftest import (
    JOB_RECIPE,
    REALDATA,
    assert_matches_cdo,
    need_realdata,
    run_cli,
)

from era5cache.cli import main as cli
from era5cache.format.verify import verify
from era5cache.regrid.conservative import ConservativeRegridder


def _recipe(tmp: Path, inputs: Path, output: Path) -> Path:
    p = tmp / "recipe.yaml"
    p.write_text(JOB_RECIPE.format(inputs=inputs, output=output))
    return p


@pytest.fixture(scope="module")
def cache(sample_new, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("job")
    out = tmp / "cache"
    run_cli("preprocess", _recipe(tmp, sample_new, out), "--no-progress")
    return out


@pytest.mark.slow
def test_zarr_contract(cache):
    ds = xr.open_zarr(cache / "era5_2deg.zarr")
    assert sorted(ds.data_vars) == ["sst", "t2m", "z500"]
    for v in ds.data_vars.values():
        assert v.dims == ("time", "lat", "lon") and v.dtype == np.float32
        assert v.encoding["chunks"] == (50, 80, 180)
        assert v.encoding.get("compressors")  # compressed
    np.testing.assert_array_equal(ds["lat"].values, np.arange(-79, 80, 2))
    np.testing.assert_array_equal(ds["lon"].values, np.arange(1, 360, 2))
    assert ds["t2m"].attrs["units"] == "K" and ds["z500"].attrs["long_name"] == "Geopotential"
    assert ds.sizes["time"] == 236
    assert ds["time"].values[0] == np.datetime64("2019-01-01T00")


@pytest.mark.cdo
@pytest.mark.slow
def test_values_match_cdo(cache, sample_new, cdo, tmp_path):
    ds = xr.open_zarr(cache / "era5_2deg.zarr").sel(time=slice("2019-02", "2019-02"))
    single = sample_new / "era5_single-levels_2019-02.nc"
    for var in ("t2m", "sst"):
        assert_matches_cdo(ds[var].values, cdo, single, tmp_path, var)
    out = tmp_path / "z.nc"
    subprocess.run([cdo, "-s", "-b", "F64", f"remapcon,{tmp_path / 'target_grid.txt'}",
                    "-sellevel,500", "-selname,z",
                    str(sample_new / "era5_pressure-levels_2019-02.nc"), str(out)],
                   check=True, capture_output=True)
    with netCDF4.Dataset(out) as nc:
        ref = nc["z"][:, 0].filled(np.nan)
    assert (np.abs(ds["z500"].values - ref) / np.abs(ref)).max() <= 1e-5


@pytest.mark.slow
def test_h5_memmap_equals_zarr_and_stats(cache):
    ds = xr.open_zarr(cache / "era5_2deg.zarr")
    with h5py.File(cache / "era5_2deg.h5", "r") as f:
        d = f["data"]
        assert d.chunks is None and d.compression is None and d.dtype == np.float32
        shape, offset = d.shape, d.id.get_offset()
        channels = [c.decode() for c in f["channel"][:]]
        times = f["time"][:]
        mean, std, dstd = f["mean"][:], f["std"][:], f["diff_std"][:]
        assert f.attrs["format_version"] == 1
        assert f.attrs["train_period"] == "2019-01-01T00/2019-01-31T18"
    assert channels == ["sst", "t2m", "z500"]
    mm = np.memmap(cache / "era5_2deg.h5", dtype=np.float32, mode="r", offset=offset,
                   shape=shape)
    ref = np.stack([ds[c].values for c in channels], axis=1)
    np.testing.assert_array_equal(mm, ref)
    np.testing.assert_array_equal(times, ds["time"].values.astype("datetime64[s]").astype(np.int64))
    train = ref[:124].astype(np.float64)  # January: 31 days x 4
    for c in range(3):
        x = train[:, c]
        assert mean[c] == pytest.approx(np.nanmean(x), rel=1e-6)
        assert std[c] == pytest.approx(np.nanstd(x), rel=1e-5)
        assert dstd[c] == pytest.approx(np.nanstd(np.diff(x, axis=0)), rel=1e-5)
    assert np.isnan(ref[:, 0]).any() and not np.isnan(ref[:, 1]).any()


@pytest.mark.slow
def test_manifest_and_verify(cache, tmp_path):
    m = json.loads((cache / "manifest.json").read_text())
    assert m["complete"] is True and m["channels"] == ["sst", "t2m", "z500"]
    assert m["time"]["step"] == "21600s" and m["time"]["gaps"] == []
    assert len(m["inputs"]) == 4
    for rec in m["inputs"]:  # hashed in a thread during the job; here in one pass
        assert rec["xxh3_128"] == xxhash.xxh3_128(Path(rec["path"]).read_bytes()).hexdigest()
    assert m["chunks"]["count"] == 5
    assert verify(cache) == []
    assert not (cache / ".staging").exists() and not (cache / ".unzipped").exists()
    # A single flipped byte in the HDF5 data is detected.
    bad = tmp_path / "bad"
    shutil.copytree(cache, bad)
    h5 = bad / "era5_2deg.h5"
    with open(h5, "r+b") as f:
        f.seek(m["outputs"]["era5_2deg.h5"]["data_offset"] + 1000)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    assert any("checksum mismatch" in p for p in verify(bad))
    # A truncated Zarr chunk is detected.
    bad2 = tmp_path / "bad2"
    shutil.copytree(cache, bad2)
    chunk = next(p for p in (bad2 / "era5_2deg.zarr" / "t2m").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:-10])
    assert any("checksum mismatch" in p for p in verify(bad2))


@pytest.mark.slow
def test_inspect_and_verify_cli(cache, capsys):
    assert cli(["inspect", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "236 steps of 6h" in out and "z500" in out
    assert cli(["verify", str(cache)]) == 0


@pytest.mark.slow
def test_regional_file_fails_with_one_line(tmp_path):
    need_realdata()
    regional = REALDATA / "new_uach_sst_landnan_chile.nc"
    r = subprocess.run([sys.executable, "-m", "era5cache.cli", "preprocess", "--input",
                        str(REALDATA / "new_eric157_monthly_t2m_slt_mixed-expver_india.nc"),
                        "--output", str(tmp_path / "o"), "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "india.nc" in lines[0] and "does not cover" in lines[0]
    assert not (tmp_path / "o" / "manifest.json").exists()
    assert regional.exists()


@pytest.mark.slow
def test_global_realdata_file_runs(tmp_path):
    """The real 20-degree global legacy file covers the target: a one-step cache."""
    need_realdata()
    out = tmp_path / "o"
    run_cli("preprocess", "--input", REALDATA / "old_earthkit_global20deg_t2m.nc",
            "--output", out, "--workers", "1", "--no-progress")
    ds = xr.open_zarr(out / "era5_2deg.zarr")
    assert ds["t2m"].shape == (1, 80, 180)
    # A 2-degree cell inside one 20-degree source cell takes that cell's value.
    with xr.open_dataset(REALDATA / "old_earthkit_global20deg_t2m.nc") as src:
        want = float(src["t2m"].sel(latitude=40.0, longitude=60.0).values[0])
    assert float(ds["t2m"].sel(lat=41, lon=61).values[0]) == pytest.approx(want, rel=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_external_scheduler_gives_identical_output(cache, sample_new, tmp_path):
    bindir = Path(sys.executable).parent
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", addr, "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard", "--memory-limit", "1GiB"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(addr, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        out = tmp_path / "remote"
        recipe = _recipe(tmp_path, sample_new, out)
        run_cli("preprocess", recipe, "--scheduler", addr, "--no-progress")
        def job_files(dask_worker) -> list[str]:  # (pickled by value: workers run it)
            """The job's file-cache plugins a worker still has, and the NetCDF files it
            holds open."""
            fds = Path("/proc/self/fd")
            held = [os.path.realpath(fds / fd) for fd in os.listdir(fds)]
            return ([n for n in dask_worker.plugins if n.startswith("era5cache-files")]
                    + [f for f in held if f.endswith(".nc")])

        with Client(addr, timeout="30s") as c:  # the workers outlive the job: files let go
            kept = c.run(job_files)
        assert list(kept.values()) == [[], []]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    a = json.loads((cache / "manifest.json").read_text())["outputs"]
    b = json.loads((out / "manifest.json").read_text())["outputs"]
    assert a["era5_2deg.h5"]["sha256"] == b["era5_2deg.h5"]["sha256"]
    assert a["era5_2deg.zarr"]["files"] == b["era5_2deg.zarr"]["files"]


def test_chunk_tasks_take_whole_read_blocks():
    """A Zarr chunk made of whole blocks of the regridded array is fed the blocks' own tasks
    (no slice, no merge task); any other range falls back to the slice. Same values."""
    import dask
    import dask.array as da

    from era5cache.store.schedule import WholeBlocks

    x = np.arange(26 * 4 * 3, dtype=np.float32).reshape(26, 4, 3)
    w = WholeBlocks(da.from_array(x, chunks=(6, 4, 3)))
    whole = w.get(6, 18)
    assert isinstance(whole, list) and len(whole) == 2
    np.testing.assert_array_equal(np.concatenate(dask.compute(*whole)), x[6:18])
    np.testing.assert_array_equal(np.concatenate(dask.compute(*w.get(24, 26))), x[24:26])
    for a, b in ((3, 9), (0, 26), (20, 26)):
        got = w.get(a, b)
        if isinstance(got, list):
            got = np.concatenate(dask.compute(*got))
        np.testing.assert_array_equal(np.asarray(got), x[a:b])
    assert not isinstance(w.get(3, 9), list)
    split = WholeBlocks(da.from_array(x, chunks=(6, 2, 3)))  # blocks along lat too
    assert not isinstance(split.get(0, 6), list)


def _block(i: int) -> np.ndarray:
    return np.full(2**20, i, dtype=np.float64)  # 8 MiB, like a chunk's block


def _tasks_held(dask_scheduler) -> int:
    return len(dask_scheduler.tasks)


@pytest.mark.slow  # Dask worker processes
def test_chunk_results_are_released_as_they_are_consumed():
    """The job hands each chunk task's result over and releases it at once: the scheduler
    then forgets the task and its worker drops the block (held to the end, every block
    stayed on its worker: 1.5 GB peaks on the ``make preprocess`` sample)."""
    from era5cache.config.recipe import PreprocessConfig, with_overrides
    from era5cache.store.cluster import dask_client
    from era5cache.store.schedule import released_as_completed

    cfg = with_overrides(PreprocessConfig(), dask_workers=2, dask_memory_limit="1GiB")
    with dask_client(cfg) as client:
        futures = [client.submit(_block, i, pure=False) for i in range(6)]
        client.gather(futures)  # all done: the results sit on the workers now
        assert client.run_on_scheduler(_tasks_held) == 6
        seen = [int(block[0]) for _, block in released_as_completed(futures)]
        deadline = time.monotonic() + 10
        while client.run_on_scheduler(_tasks_held) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.run_on_scheduler(_tasks_held) == 0
    assert sorted(seen) == list(range(6))


class _CountingRegridder(ConservativeRegridder):
    """Records the steps it regrids (a module-level class: Dask may pickle the graph)."""

    steps = []

    def __call__(self, field, threshold=0.5):
        _CountingRegridder.steps.append(field.shape[0])
        return super().__call__(field, threshold)


def test_fresh_plan_hands_chunk_tasks_the_read_blocks(sample_new):
    """On a fresh build a Zarr chunk made of whole read blocks takes the regridded blocks
    themselves (no rechunk-merge task between them); a chunk across a file boundary, where
    a read block straddles two chunks, takes the rechunked array's block. Every step is
    read and regridded once over all chunk tasks (a slice of the read blocks there made
    Dask fuse the straddling block's read into both chunk tasks), and the chunks hold the
    target's values."""
    from dataclasses import fields

    import dask

    from era5cache.config.recipe import DaskSettings, PreprocessConfig
    from era5cache.regrid.adapter import regrid_dataset
    from era5cache.store.inputs import open_inputs
    from era5cache.store.plan import fresh
    from era5cache.store.schedule import chunk_sources

    # read blocks of 4 MiB at most: several per 20-step chunk; January's 124 steps end
    # inside a chunk, so February's blocks straddle chunk boundaries
    cfg = PreprocessConfig(inputs=(str(sample_new),), variables=("t2m",), chunk_steps=20,
                           dask=DaskSettings(memory_limit="100MiB"))
    inputs, ds, regridder = open_inputs(cfg)
    try:
        counting = _CountingRegridder(**{f.name: getattr(regridder, f.name)
                                         for f in fields(regridder)})
        _CountingRegridder.steps.clear()
        plan = fresh(regrid_dataset(ds, counting), inputs, cfg.chunk_steps)
        assert plan.dataset["t2m"].data.chunks[0][0] == 20
        source = chunk_sources(plan.dataset["t2m"].data, plan.blocks["t2m"])
        parts = [source.get(*plan.chunk_bounds(k)) for k in range(plan.n_chunks)]
        whole = [p for p in parts if len(p) > 1]
        assert len(whole) >= 5 and all(isinstance(p, list) for p in parts)
        merged = [p for p in parts if len(p) == 1]  # across January's end, and the last
        assert merged
        chunks = dask.compute(*[dask.delayed(np.concatenate)(p) for p in parts],
                              scheduler="sync")
        assert sum(_CountingRegridder.steps) == plan.times.size
        np.testing.assert_array_equal(np.concatenate(chunks), plan.dataset["t2m"].values)
    finally:
        inputs.close()
