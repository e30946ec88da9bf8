"""``era5cache bench preprocess``: input MB/s of the job vs CDO remapcon and a raw decode.

Two inputs: the reference (docs/contracts.md section 5: hourly 0.25-degree ``t2m`` in the 2024+ CDS
layout, uncompressed, 168 steps, 698 MB) and a large one at least 4x one worker's memory
limit (624 steps, 2.6 GB). Paths, on the same files, warm page cache:

* raw decode: every value read with netCDF4 in one process (no regridding, no output);
* ``cdo remapcon`` single-threaded (reference input only) and ``cdo -P 2 remapcon``;
* ``era5cache preprocess`` end to end (CLI wall time: start-up, cluster, regrid, Zarr, HDF5,
  statistics, checksums, manifest) with one worker process per core, under the 2 GiB
  default limit on the reference input and the 600 MiB limit on the large one, where the
  peak RSS of every process is recorded.

Also timed each round: the import floor, an interpreter that only imports what the job's
process needs before it can plan (xarray, dask.array, distributed, h5py; with no garbage
collection meanwhile, as the job imports): no job that uses these libraries finishes
sooner, whatever its input.

Last, the Zarr row (:mod:`.stores`): the job on an ARCO-ERA5-layout store over HTTP against
xarray-regrid, a plain zarr read and the same job on the local folder.

Every path runs on both inputs round after round (``--quick``: one round, else three), and
each time is the median of its rounds, so that the VM's drifting speed hits all paths alike.
Reported: MB/s per input, and the steady-state rate, the extra megabytes of the large input
over the extra seconds they take, where start-up costs (interpreters, cluster, CDO's
weights) cancel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np

from ..config.sample import SampleSpec
from ..grid import cdo_grid_description
from ..sample.netcdf import write_sample
from .common import machine, run_measured, table, write_json


def _make_input(folder: Path, hours: int) -> list[Path]:
    if (folder / ".complete").exists():
        return sorted(folder.glob("*.nc"))
    shutil.rmtree(folder, ignore_errors=True)
    start = np.datetime64("2021-07-01T00")
    end = start + np.timedelta64(hours - 1, "h")
    files = write_sample(folder, SampleSpec(start=str(start), end=str(end), step="1h",
                                            resolution=0.25, variables=("t2m",),
                                            compress=False))
    (folder / ".complete").touch()
    return files


def _raw_decode(files: list[Path]) -> None:
    for f in files:
        with netCDF4.Dataset(f) as ds:
            for v in ds.variables.values():
                if v.ndim >= 3:
                    for a in range(0, v.shape[0], 24):
                        np.asarray(v[a:a + 24])


def _decoded_bytes(files: list[Path]) -> int:
    total = 0
    for f in files:
        with netCDF4.Dataset(f) as ds:
            total += sum(int(np.prod(v.shape)) * 4 for v in ds.variables.values() if v.ndim >= 3)
    return total


def _job_cmd(files: list[Path], out: Path, workers: int, memory_limit: str) -> list[str]:
    return [sys.executable, "-m", "era5cache.cli", "preprocess", "--input", str(files[0].parent),
            "--output", str(out), "--workers", str(workers), "--memory-limit", memory_limit,
            "--no-progress", "--chunk-steps", "24"]


RAW, CDO, CDO_P2 = "raw decode (netCDF4, 1 process)", "cdo remapcon", "cdo -P 2 remapcon"
FLOOR_CMD = [sys.executable, "-c", "import gc; gc.disable(); "  # as the job imports
             "import era5cache.store.job, dask.array, distributed, h5py"]


def main(args) -> int:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    hours = 48 if args.quick else 168
    repeat = 1 if args.quick else 3
    workers = os.cpu_count() or 2
    job = f"era5cache preprocess ({workers} workers)"
    limit_mb = 300 if args.quick else 600  # the large input is >= 4x this worker limit
    big_hours = int(np.ceil(4 * limit_mb * 2**20 / (721 * 1440 * 4) / 24) * 24)
    inputs = {"reference": _make_input(work / f"input_{hours}h", hours),
              "large": _make_input(work / f"input_{big_hours}h", big_hours)}
    mb = {k: _decoded_bytes(f) / 1e6 for k, f in inputs.items()}
    cdo = shutil.which("cdo")
    tmp = Path(tempfile.mkdtemp(dir=work))
    grid = tmp / "grid.txt"
    grid.write_text(cdo_grid_description())
    env = dict(os.environ, REMAP_AREA_MIN="0.5")

    def run_cdo(files: list[Path], extra: list[str]) -> None:
        for i, f in enumerate(files):
            subprocess.run([cdo, "-s", *extra, f"remapcon,{grid}", str(f),
                            str(tmp / f"cdo_{i}.nc")], check=True, env=env, capture_output=True)

    def run_job(size: str) -> float:
        limit = "2GiB" if size == "reference" else f"{limit_mb}MiB"
        out = tmp / f"job_{size}"
        wall, mem = run_measured(_job_cmd(inputs[size], out, workers, limit))
        shutil.rmtree(out, ignore_errors=True)
        if size == "large":
            peaks.append((mem.peak_max, mem.peak_total))
        return wall

    # Every path on both sizes (single-threaded CDO on the reference input only: 20 s on the
    # large one), round after round, so that the VM's drifting speed hits all alike.
    paths = {RAW: lambda size: _raw_decode(inputs[size])}
    if cdo:
        paths[CDO] = lambda size: run_cdo(inputs[size], [])
        paths[CDO_P2] = lambda size: run_cdo(inputs[size], ["-P", "2"])
    paths[job] = run_job
    times: dict[tuple[str, str], list[float]] = {}
    peaks: list[tuple[int, int]] = []
    floor: list[float] = []
    try:
        for files in inputs.values():
            _raw_decode(files)  # warm the page cache
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(FLOOR_CMD, check=True)
            floor.append(time.perf_counter() - t0)
            for size in inputs:
                for name, fn in paths.items():
                    if name == CDO and size == "large":
                        continue
                    t0 = time.perf_counter()
                    fn(size)
                    times.setdefault((name, size), []).append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sec = {k: float(np.median(v)) for k, v in times.items()}
    results = {name: {"seconds": sec[name, "reference"],
                      "mb_per_s": mb["reference"] / sec[name, "reference"]} for name in paths}
    large = {name: {"seconds": sec[name, "large"], "mb_per_s": mb["large"] / sec[name, "large"]}
             for name in paths if (name, "large") in sec}
    extra = mb["large"] - mb["reference"]
    steady = {name: {"mb_per_s": extra / max(sec[name, "large"] - sec[name, "reference"], 1e-9)}
              for name in large}
    floor_s = float(np.median(floor))
    memory = {"input_mb": mb["large"], "worker_limit_mb": limit_mb * 2**20 / 1e6,
              "ratio": mb["large"] * 1e6 / (limit_mb * 2**20),
              "peak_worker_rss_mb": max(p[0] for p in peaks) / 1e6,
              "peak_total_rss_mb": max(p[1] for p in peaks) / 1e6}

    def rows(res: dict, with_seconds: bool = True) -> list[tuple]:
        raw, p2 = res[RAW]["mb_per_s"], res.get(CDO_P2, {}).get("mb_per_s")
        return [((k,) + ((f"{v['seconds']:.2f}",) if with_seconds else ())
                 + (f"{v['mb_per_s']:.0f}", f"{v['mb_per_s'] / raw:.2f}",
                    f"{v['mb_per_s'] / p2:.2f}" if p2 else "-")) for k, v in res.items()]

    head = ("path", "seconds", "MB/s", "x raw decode", "x cdo -P 2")
    print(f"reference input: {len(inputs['reference'])} file(s), {hours} hourly 0.25-degree "
          f"steps, {mb['reference']:.0f} MB decoded (uncompressed NetCDF4); medians of "
          f"{repeat} alternated rounds, end to end")
    print(table(rows(results), head))
    raw_s = results[RAW]["seconds"]
    print(f"import floor: an interpreter importing the job's libraries takes {floor_s:.2f} s "
          f"= {floor_s / raw_s:.1f}x the raw decode of the reference input ({raw_s:.2f} s)")
    print(f"large input: {big_hours} steps, {mb['large']:.0f} MB = {memory['ratio']:.1f}x the "
          f"{memory['worker_limit_mb']:.0f} MB worker limit of the job")
    print(table(rows(large), head))
    print(f"steady state: the {extra:.0f} MB the large input adds over the extra seconds it "
          "takes (start-up costs cancel)")
    print(table(rows(steady, with_seconds=False), head[:1] + head[2:]))
    print(f"memory, large input: peak worker RSS {memory['peak_worker_rss_mb']:.0f} MB (limit "
          f"{memory['worker_limit_mb']:.0f} MB), all processes {memory['peak_total_rss_mb']:.0f} "
          "MB")
    layout_rows = _layouts(work, args.quick, cdo, env, workers)
    from .stores import measure, report

    zarr_row = measure(work, args.quick, workers, repeat)
    report(zarr_row)
    write_json(args.json, {"benchmark": "preprocess", "machine": machine(),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "repeat": repeat,
                           "input_mb": mb["reference"], "hours": hours, "results": results,
                           "large": large, "steady_state": steady, "memory": memory,
                           "import_floor_s": floor_s, "layouts": layout_rows,
                           "zarr": zarr_row})
    return 0


def _layouts(work: Path, quick: bool, cdo: str | None, env: dict, workers: int) -> list[dict]:
    """The compressed layouts and GRIB (:mod:`.layouts`), one run each, warm page cache:
    the plain pass (each chunk or message decoded once, one process), ``cdo -P 2
    remapcon`` and the job, with the worker memory limit each file needs
    (:func:`era5cache.store.inputs.chunk_memory_need`, at least the 2 GiB default) and the
    peak worker RSS."""
    from ..read.blocks import TARGET_CHUNK_BYTES
    from ..read.combine import open_era5
    from ..store.inputs import chunk_memory_need
    from .layouts import decode_grib_once, make_inputs, read_each_chunk_once

    steps = (48,) if quick else (168, 744)
    inputs = make_inputs(work, steps)
    tmp = Path(tempfile.mkdtemp(dir=work))
    grid = tmp / "grid.txt"
    grid.write_text(cdo_grid_description())
    rows = []
    try:
        for (kind, n), path in inputs.items():
            t0 = time.perf_counter()
            nbytes = decode_grib_once(path) if kind == "grib" else read_each_chunk_once(path)
            plain = time.perf_counter() - t0
            inputs_read = open_era5([path])  # the default read blocks
            cache = inputs_read.chunk_cache[0]  # what the job holds per worker
            inputs_read.close()
            limit = max(2 * 2**30, chunk_memory_need(cache, TARGET_CHUNK_BYTES))
            cdo_s = None
            if cdo:
                t0 = time.perf_counter()
                subprocess.run([cdo, "-s", "-f", "nc", "-P", "2", f"remapcon,{grid}",
                                str(path), str(tmp / "cdo.nc")], check=True, env=env,
                               capture_output=True)
                cdo_s = time.perf_counter() - t0
            cmd = [sys.executable, "-m", "era5cache.cli", "preprocess", "--input", str(path),
                   "--output", str(tmp / "job"), "--workers", str(workers), "--memory-limit",
                   str(limit), "--no-progress", "--chunk-steps", "24"]
            job_s, mem = run_measured(cmd)
            shutil.rmtree(tmp / "job", ignore_errors=True)
            rows.append({"layout": kind, "steps": n, "mb": nbytes / 1e6, "plain_s": plain,
                         "cdo_p2_s": cdo_s, "job_s": job_s, "worker_limit_mb": limit / 1e6,
                         "peak_worker_rss_mb": mem.peak_max / 1e6})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("input layouts (one run each, warm page cache; x cdo -P 2 = cdo time / job time, "
          "x plain = job time / plain pass):")
    print(table([(r["layout"], r["steps"], f"{r['mb']:.0f}", f"{r['plain_s']:.2f}",
                  f"{r['cdo_p2_s']:.2f}" if r["cdo_p2_s"] else "-", f"{r['job_s']:.2f}",
                  f"{r['cdo_p2_s'] / r['job_s']:.2f}" if r["cdo_p2_s"] else "-",
                  f"{r['job_s'] / r['plain_s']:.2f}", f"{r['worker_limit_mb']:.0f}",
                  f"{r['peak_worker_rss_mb']:.0f}") for r in rows],
                ("layout", "steps", "MB decoded", "plain pass s", "cdo -P 2 s", "job s",
                 "x cdo -P 2", "x plain", "worker limit MB", "peak worker MB")))
    return rows
