"""``era5cache bench preprocess``'s Zarr row (``era5cache bench zarr`` alone): the job on an
ARCO-ERA5-layout store served over HTTP, against what a user would do instead and against a
plain read.

The store (:mod:`era5cache.sample.stores`, ``arco`` layout): 1-degree grid (ARCO's is 0.25),
37 levels, an hourly time axis; ``t2m`` and ``z``, ``t``, ``u`` on levels, one chunk per step
and variable holding all levels (29 MB decoded per step). Only the 00/06/12/18 steps that
``--step 6h`` reads are written (the other hours are chunks missing from the store: every
path reads the same chunks). A threaded HTTP server on 127.0.0.1 (``python -m http.server``,
a process of its own) serves it; it shares the machine's cores with the paths measured.

Paths, each over HTTP unless said, ``--variables t2m,z500,t850,u850 --step 6h``, alternated
round after round, medians:

* ceiling: one process fetches and decodes each needed chunk once with zarr (a block of
  steps per request batch; zarr fetches them concurrently and decodes in threads); no
  regridding, no output;
* ``xr.open_zarr`` + xarray-regrid's conservative regridder on a Dask LocalCluster of the
  same workers, written to Zarr (a user's script, a fresh process like the job);
* ``era5cache preprocess`` end to end over HTTP, and the same over the local folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..config.sample import SampleSpec
from .common import run_measured, table

CHANNELS = ("t2m", "z500", "t850", "u850")
NAMES = {"t2m": ("2m_temperature", None), "z500": ("geopotential", 500),
         "t850": ("temperature", 850), "u850": ("u_component_of_wind", 850)}


def make_store(work: Path, days: int) -> tuple[Path, SampleSpec]:
    """The benchmark's store (module docstring), written once into ``work``."""
    from ..sample.stores import write_store

    spec = SampleSpec(start="2021-07-01T00", end=str(np.datetime64("2021-07-01T18")
                                                     + np.timedelta64(days - 1, "D")),
                      step="6h", resolution=1.0, layout="arco",
                      variables=("t2m", "z", "t", "u"))
    path = work / f"arco_{days}d.zarr"
    if not (work / f"arco_{days}d.complete").exists():
        write_store(path, spec, only_every=6)
        (work / f"arco_{days}d.complete").touch()
    return path, spec


@contextmanager
def http_server(root: Path):
    """Serve ``root`` over HTTP on 127.0.0.1 from a process of its own; yields the base
    URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "era5cache.bench.serve", str(root),
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def ceiling(url: str, times: np.ndarray) -> int:
    """Fetch and decode each chunk the channels need once (zarr, one process); the bytes
    decoded."""
    import zarr

    group = zarr.open_group(url, mode="r")
    axis = (np.datetime64("1900-01-01T00", "s") + group["time"][:].astype(np.int64)
            * np.timedelta64(3600, "s"))
    pos = np.searchsorted(axis, times)
    total = 0
    for name in dict(NAMES.values()):
        arr = group[name]
        for a in range(0, pos.size, 8):
            block = arr.oindex[(pos[a:a + 8],) + (slice(None),) * (arr.ndim - 1)]
            total += block.nbytes
    return total


XREGRID = textwrap.dedent('''
    import sys
    import numpy as np
    import xarray as xr
    import xarray_regrid  # noqa: F401  (the .regrid accessor)
    from dask.distributed import Client, LocalCluster

    url, out, start, end, workers = sys.argv[1:6]
    if __name__ == "__main__":
        with LocalCluster(n_workers=int(workers), threads_per_worker=1,
                          memory_limit="2GiB") as cluster, Client(cluster):
            ds = xr.open_zarr(url, chunks={{}})
            times = ds.time.sel(time=slice(start, end))
            times = times[times.dt.hour % 6 == 0]
            ds = ds.sel(time=times)
            out_ds = xr.Dataset({{
    {channels}
            }}).sortby("latitude")
            target = xr.Dataset(coords={{"latitude": np.arange(-79.0, 80.0, 2.0),
                                        "longitude": np.arange(1.0, 360.0, 2.0)}})
            result = out_ds.regrid.conservative(target)
            for v in result.variables:  # the source's Zarr 2 codecs do not fit Zarr 3
                result[v].encoding = {{}}
            result.to_zarr(out, mode="w")
''')


def xarray_regrid_script(tmp: Path) -> Path:
    """The user's script: open the store with xarray, select, regrid with xarray-regrid,
    write Zarr."""
    lines = [f'            "{c}": ds["{n}"]' + (f".sel(level={lev}, drop=True)," if lev else ",")
             for c, (n, lev) in NAMES.items()]
    path = tmp / "xarray_regrid_job.py"
    path.write_text(XREGRID.format(channels="\n".join(lines)))
    return path


def job_cmd(src: str, out: Path, spec: SampleSpec, workers: int) -> list[str]:
    return [sys.executable, "-m", "era5cache.cli", "preprocess", "--input", src, "--output",
            str(out), "--variables", ",".join(CHANNELS), "--start", spec.start, "--end",
            spec.end, "--step", "6h", "--workers", str(workers), "--no-progress",
            "--chunk-steps", "8", "--force"]


def agreement(ours: Path, theirs: Path) -> dict[str, dict[str, float]]:
    """Per channel, the largest difference between our cache's Zarr store and
    xarray-regrid's (physical units) over all cells and between 60S and 60N, and the
    channel's standard deviation."""
    import xarray as xr

    a, b = xr.open_zarr(ours), xr.open_zarr(theirs)
    out = {}
    for c in CHANNELS:
        x, y = a[c].values, b[c].transpose("time", "latitude", "longitude").values
        mid = np.abs(a["lat"].values) < 60
        out[c] = {"max_abs": float(np.nanmax(np.abs(x - y))),
                  "max_abs_60s_60n": float(np.nanmax(np.abs(x - y)[:, mid])),
                  "std": float(np.nanstd(x))}
    return out


CEILING = "ceiling: zarr reads each chunk once (1 process)"
XREGRID_PATH = "xr.open_zarr + xarray-regrid (LocalCluster)"
JOB_HTTP = "era5cache preprocess, over HTTP"
JOB_LOCAL = "era5cache preprocess, local folder"


def measure(work: Path, quick: bool, workers: int, repeat: int) -> dict:
    """Every path (module docstring) ``repeat`` times, alternated; medians, the ratios the
    issue sets targets for, and the agreement of our values with xarray-regrid's."""
    store, spec = make_store(work, 4 if quick else 16)
    times = spec.times()
    tmp = Path(tempfile.mkdtemp(dir=work))
    script = xarray_regrid_script(tmp)
    seconds: dict[str, list[float]] = {}
    try:
        with http_server(store.parent) as base:
            url = f"{base}/{store.name}"
            paths = {  # the two jobs first: no cluster of the other path winds down then
                JOB_LOCAL: lambda: run_measured(job_cmd(str(store), tmp / "local", spec,
                                                        workers)),
                JOB_HTTP: lambda: run_measured(job_cmd(url, tmp / "http", spec, workers)),
                CEILING: lambda: ceiling(url, times),
                XREGRID_PATH: lambda: run_measured([sys.executable, str(script), url,
                                                    str(tmp / "xr.zarr"), spec.start,
                                                    spec.end, str(workers)]),
            }
            decoded = ceiling(url, times)  # also warms the page cache
            for _ in range(repeat):
                for name, fn in paths.items():
                    time.sleep(1.0)  # processes of the path before have exited
                    t0 = time.perf_counter()
                    fn()
                    seconds.setdefault(name, []).append(time.perf_counter() - t0)
        worst = agreement(tmp / "http" / "era5_2deg.zarr", tmp / "xr.zarr")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary({k: float(np.median(v)) for k, v in seconds.items()}, decoded, times.size,
                   workers, worst)


def summary(sec: dict[str, float], decoded: int, steps: int, workers: int,
            worst: dict) -> dict:
    job = sec[JOB_HTTP]
    return {"seconds": sec, "decoded_mb": decoded / 1e6, "steps": steps, "workers": workers,
            "vs_xarray_regrid": sec[XREGRID_PATH] / job, "vs_ceiling": sec[CEILING] / job,
            "http_over_local": job / sec[JOB_LOCAL],
            "mb_per_s_per_worker": decoded / 1e6 / job / workers,
            "difference_vs_xarray_regrid": worst}


def report(r: dict) -> None:
    print(f"Zarr store (ARCO-ERA5 layout, 1 degree, 37 levels, hourly axis): {r['steps']} "
          f"6-hourly steps read, {r['decoded_mb']:.0f} MB of chunks decoded, "
          f"--variables {','.join(CHANNELS)} --step 6h; HTTP from a server process on "
          f"127.0.0.1 sharing the cores; {r['workers']} workers; medians")
    job = r["seconds"][JOB_HTTP]
    print(table([(k, f"{v:.2f}", f"{r['decoded_mb'] / v:.0f}", f"{v / job:.2f}")
                 for k, v in r["seconds"].items()],
                ("path", "seconds", "MB/s", "x job over HTTP (time)")))
    print(f"job vs xarray-regrid {r['vs_xarray_regrid']:.2f}x faster (target >= 2); vs the "
          f"ceiling {r['vs_ceiling']:.2f} (target >= 0.7); HTTP / local "
          f"{r['http_over_local']:.2f} (target <= 1.2)")
    print("values vs xarray-regrid, largest |difference| (all cells; 60S-60N) / std: " + "; ".join(
        f"{c} {d['max_abs']:.3g} ({d['max_abs_60s_60n']:.3g}) / {d['std']:.3g}"
        for c, d in r["difference_vs_xarray_regrid"].items()))


def main(args) -> int:
    from .common import machine, write_json

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    r = measure(work, args.quick, os.cpu_count() or 2, 1 if args.quick else 3)
    report(r)
    write_json(args.json, {"benchmark": "zarr", "machine": machine(),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **r})
    return 0
