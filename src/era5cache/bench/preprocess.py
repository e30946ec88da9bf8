"""``era5cache bench preprocess``: input MB/s of the job vs CDO remapcon and a raw decode.

Input (the DESIGN.md section 5 reference): hourly 0.25-degree ``t2m`` in the 2024+ CDS
layout, uncompressed, 168 steps (698 MB). In one run, on the same files, median of
``--repeat`` runs each, warm page cache:

* raw decode: every value read with netCDF4 in one process (no regridding, no output);
* ``cdo remapcon`` single-threaded and ``cdo -P 2 remapcon`` (float32 output, as CDO does);
* ``era5cache preprocess`` end to end (cluster start, regrid, Zarr, HDF5, statistics,
  checksums, manifest) with one worker process per core.

Then the memory test: an input at least 4x one worker's memory limit goes through the job
with that limit; the peak RSS of every worker process is reported. The same large input
also goes through ``cdo -P 2`` once: the job's start-up (two Python processes importing
xarray, Dask and distributed, about 1.4 s on the 2-core VM) weighs less there. From the two
sizes, the steady-state rate: the extra megabytes of the large input over the extra seconds
they take, for the job and for ``cdo -P 2`` (start-up costs cancel).
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

from ..grid import cdo_grid_description
from ..sample import SampleSpec, write_sample
from .common import machine, median_time, run_measured, table, write_json


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


def _marginal(results: dict, memory: dict, mb: float, workers: int) -> dict[str, float]:
    """MB/s of the input the large run adds over the reference run, for the job and for
    ``cdo -P 2``: the rate once start-up (interpreters, cluster, weights) is paid."""
    extra = memory["input_mb"] - mb
    job = results[f"era5cache preprocess ({workers} workers)"]["seconds"]
    cdo_p2 = results["cdo -P 2 remapcon"]["seconds"]
    return {"extra_mb": extra, "era5cache": extra / max(memory["seconds"] - job, 1e-9),
            "cdo_p2": extra / max(memory["cdo_p2_seconds"] - cdo_p2, 1e-9)}


def _job_cmd(files: list[Path], out: Path, workers: int, memory_limit: str) -> list[str]:
    return [sys.executable, "-m", "era5cache.cli", "preprocess", "--input", str(files[0].parent),
            "--output", str(out), "--workers", str(workers), "--memory-limit", memory_limit,
            "--no-progress", "--chunk-steps", "24"]


def main(args) -> int:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    hours = 48 if args.quick else 168
    repeat = 1 if args.quick else 3
    workers = os.cpu_count() or 2
    files = _make_input(work / f"input_{hours}h", hours)
    nbytes = _decoded_bytes(files)
    mb = nbytes / 1e6
    results: dict[str, dict] = {}
    _raw_decode(files)  # warm the page cache
    t = median_time(lambda: _raw_decode(files), repeat)
    results["raw decode (netCDF4, 1 process)"] = {"seconds": t, "mb_per_s": mb / t}
    cdo = shutil.which("cdo")
    tmp = Path(tempfile.mkdtemp(dir=work))
    try:
        if cdo:
            grid = tmp / "grid.txt"
            grid.write_text(cdo_grid_description())
            env = dict(os.environ, REMAP_AREA_MIN="0.5")
            for label, extra in (("cdo remapcon", []), ("cdo -P 2 remapcon", ["-P", "2"])):
                def run_cdo(extra=extra):
                    for i, f in enumerate(files):
                        subprocess.run([cdo, "-s", *extra, f"remapcon,{grid}", str(f),
                                        str(tmp / f"cdo_{i}.nc")], check=True, env=env,
                                       capture_output=True)
                t = median_time(run_cdo, repeat)
                results[label] = {"seconds": t, "mb_per_s": mb / t}
        times, peaks = [], []
        for k in range(repeat):
            wall, mem = run_measured(_job_cmd(files, tmp / f"job{k}", workers, "2GiB"))
            times.append(wall)
            peaks.append(mem.peak_max)
        t = float(np.median(times))
        results[f"era5cache preprocess ({workers} workers)"] = {
            "seconds": t, "mb_per_s": mb / t, "peak_worker_rss_mb": max(peaks) / 1e6}
        # Memory: input >= 4x one worker's memory limit.
        limit_mb = 300 if args.quick else 600
        big_hours = int(np.ceil(4 * limit_mb * 2**20 / (721 * 1440 * 4) / 24) * 24)
        big = _make_input(work / f"input_{big_hours}h", big_hours)
        big_bytes = _decoded_bytes(big)
        wall, mem = run_measured(_job_cmd(big, tmp / "big", workers, f"{limit_mb}MiB"))
        memory = {"input_mb": big_bytes / 1e6, "worker_limit_mb": limit_mb * 2**20 / 1e6,
                  "ratio": big_bytes / (limit_mb * 2**20), "seconds": wall,
                  "peak_worker_rss_mb": mem.peak_max / 1e6,
                  "peak_total_rss_mb": mem.peak_total / 1e6}
        if cdo:  # the same large input through cdo -P 2: throughput once start-up is amortised
            t0 = time.perf_counter()
            for i, f in enumerate(big):
                subprocess.run([cdo, "-s", "-P", "2", f"remapcon,{grid}", str(f),
                                str(tmp / f"cdo_big_{i}.nc")], check=True, env=env,
                               capture_output=True)
            memory["cdo_p2_seconds"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw = results["raw decode (netCDF4, 1 process)"]["mb_per_s"]
    cdo_p2 = results.get("cdo -P 2 remapcon", {}).get("mb_per_s")
    rows = [(k, f"{v['seconds']:.2f}", f"{v['mb_per_s']:.0f}", f"{v['mb_per_s'] / raw:.2f}",
             f"{v['mb_per_s'] / cdo_p2:.2f}" if cdo_p2 else "-") for k, v in results.items()]
    print(f"input: {len(files)} file(s), {hours} hourly 0.25-degree steps, {mb:.0f} MB decoded "
          f"(uncompressed NetCDF4), median of {repeat}")
    print(table(rows, ("path", "seconds", "MB/s", "x raw decode", "x cdo -P 2")))
    print(f"memory: {memory['input_mb']:.0f} MB input = {memory['ratio']:.1f}x the "
          f"{memory['worker_limit_mb']:.0f} MB worker limit: done in {memory['seconds']:.1f} s, "
          f"peak worker RSS {memory['peak_worker_rss_mb']:.0f} MB, all processes "
          f"{memory['peak_total_rss_mb']:.0f} MB")
    if "cdo_p2_seconds" in memory:
        big_mb = memory["input_mb"]
        print(f"large input, one run: era5cache {big_mb / memory['seconds']:.0f} MB/s "
              f"(with the {memory['worker_limit_mb']:.0f} MB worker limit), cdo -P 2 "
              f"{big_mb / memory['cdo_p2_seconds']:.0f} MB/s: "
              f"{memory['cdo_p2_seconds'] / memory['seconds']:.2f}x cdo -P 2")
        memory["marginal"] = _marginal(results, memory, mb, workers)
        m = memory["marginal"]
        print(f"steady state (the {m['extra_mb']:.0f} MB the large input adds over the "
              f"extra seconds it takes; fixed costs cancel): era5cache {m['era5cache']:.0f} "
              f"MB/s, cdo -P 2 {m['cdo_p2']:.0f} MB/s, raw decode {raw:.0f} MB/s: "
              f"{m['era5cache'] / m['cdo_p2']:.2f}x cdo -P 2, "
              f"{m['era5cache'] / raw:.2f}x raw decode")
    write_json(args.json, {"benchmark": "preprocess", "machine": machine(),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "input_mb": mb,
                           "hours": hours, "repeat": repeat, "results": results,
                           "memory": memory})
    return 0
