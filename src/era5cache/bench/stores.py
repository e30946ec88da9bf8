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

* ceiling: a process per worker fetches and decodes each needed chunk of its share of the
  steps once with zarr (8 steps a request batch, fetched concurrently), keeping the level
  asked, as the job does; no regridding, no output;
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


def ceiling(url: str, times: np.ndarray, workers: int) -> int:
    """Fetch and decode each chunk the channels need once with zarr, in ``workers``
    processes (the job's workers), each a share of the steps; the bytes decoded."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares = np.array_split(times, workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return sum(pool.map(_read_share, [url] * workers, shares))


def _read_share(url: str, times: np.ndarray) -> int:
    """The channels at ``times``, 8 steps a request batch: each chunk (all levels of a
    variable) fetched and decoded once, the level asked kept; the bytes decoded."""
    import zarr

    group = zarr.open_group(url, mode="r")
    axis = (np.datetime64("1900-01-01T00", "s") + group["time"][:].astype(np.int64)
            * np.timedelta64(3600, "s"))
    pos = np.searchsorted(axis, times)
    levels = list(group["level"][:])
    total = 0
    for name, level in NAMES.values():
        arr = group[name]
        where = () if level is None else ([levels.index(level)],)
        for a in range(0, pos.size, 8):
            arr.oindex[(pos[a:a + 8],) + where + (slice(None),) * 2]
        total += pos.size * arr.dtype.itemsize * int(np.prod(arr.shape[1:]))
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


CEILING = "ceiling: zarr reads each chunk once (a process per core)"
XREGRID_PATH = "xr.open_zarr + xarray-regrid (LocalCluster)"
JOB_HTTP = "era5cache preprocess, over HTTP"
JOB_LOCAL = "era5cache preprocess, local folder"


def _paths(url: str, store: Path, spec: SampleSpec, tmp: Path, workers: int) -> dict:
    """{path: a function that runs it once} on one store (module docstring); the jobs
    first, so that no cluster of another path winds down meanwhile."""
    script = xarray_regrid_script(tmp)
    times = spec.times()
    return {
        JOB_LOCAL: lambda: run_measured(job_cmd(str(store), tmp / "local", spec, workers)),
        JOB_HTTP: lambda: run_measured(job_cmd(url, tmp / "http", spec, workers)),
        CEILING: lambda: ceiling(url, times, workers),
        XREGRID_PATH: lambda: run_measured([sys.executable, str(script), url,
                                            str(tmp / "xr.zarr"), spec.start, spec.end,
                                            str(workers)]),
    }


def measure(work: Path, quick: bool, workers: int, repeat: int) -> dict:
    """Every path (module docstring) on a small and a large store, ``repeat`` times,
    alternated; medians, the ratios the issue sets targets for (end to end on the large
    store, and in the steady state: the large store's extra megabytes over the extra
    seconds they take, where start-up costs cancel), and the agreement of our values with
    xarray-regrid's."""
    stores = [make_store(work, d) for d in ((2, 4) if quick else (4, 16))]
    tmp = Path(tempfile.mkdtemp(dir=work))
    seconds: dict[tuple[str, int], list[float]] = {}
    decoded = []
    try:
        with http_server(work) as base:
            runs = []
            for k, (store, spec) in enumerate(stores):
                (tmp / str(k)).mkdir()
                url = f"{base}/{store.name}"
                runs.append(_paths(url, store, spec, tmp / str(k), workers))
                decoded.append(ceiling(url, spec.times(), workers))  # warms the page cache
            for _ in range(repeat):
                for k, paths in enumerate(runs):
                    for name, fn in paths.items():
                        time.sleep(1.0)  # processes of the path before have exited
                        t0 = time.perf_counter()
                        fn()
                        seconds.setdefault((name, k), []).append(time.perf_counter() - t0)
        worst = agreement(tmp / "1" / "http" / "era5_2deg.zarr", tmp / "1" / "xr.zarr")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {key: float(np.median(v)) for key, v in seconds.items()}
    return summary(med, decoded, [s.times().size for _, s in stores], workers, worst)


def summary(med: dict, decoded: list[int], steps: list[int], workers: int,
            worst: dict) -> dict:
    """The large store's seconds and the steady-state seconds per MB, and the ratios."""
    large = {name: med[name, 1] for name, _ in med}
    extra_mb = (decoded[1] - decoded[0]) / 1e6
    # no steady state where the large store took no longer (noise: --quick's one round)
    steady = {name: extra_mb / (med[name, 1] - med[name, 0])
              if med[name, 1] - med[name, 0] > 0.05 else float("nan") for name, _ in med}

    def ratios(sec: dict, faster_is_less: bool) -> dict:
        t = (lambda n: sec[n]) if faster_is_less else (lambda n: 1.0 / sec[n])
        return {"vs_xarray_regrid": t(XREGRID_PATH) / t(JOB_HTTP),
                "vs_ceiling": t(CEILING) / t(JOB_HTTP),
                "http_over_local": t(JOB_HTTP) / t(JOB_LOCAL)}

    return {"seconds": large, "small_seconds": {n: med[n, 0] for n, _ in med},
            "decoded_mb": decoded[1] / 1e6, "small_decoded_mb": decoded[0] / 1e6,
            "steps": steps[1], "small_steps": steps[0], "workers": workers,
            "end_to_end": ratios(large, True), "steady_mb_per_s": steady,
            "steady": ratios(steady, False),
            "mb_per_s_per_worker": decoded[1] / 1e6 / large[JOB_HTTP] / workers,
            "steady_mb_per_s_per_worker": steady[JOB_HTTP] / workers,
            "difference_vs_xarray_regrid": worst}


def report(r: dict) -> None:
    print(f"Zarr store (ARCO-ERA5 layout, 1 degree, 37 levels, hourly axis): {r['steps']} "
          f"6-hourly steps read ({r['small_steps']} on the small store), "
          f"{r['decoded_mb']:.0f} MB of chunks decoded ({r['small_decoded_mb']:.0f}), "
          f"--variables {','.join(CHANNELS)} --step 6h; HTTP from a server process on "
          f"127.0.0.1 sharing the cores; {r['workers']} workers; medians")
    job = r["seconds"][JOB_HTTP]
    print(table([(k, f"{v:.2f}", f"{r['small_seconds'][k]:.2f}",
                  f"{r['decoded_mb'] / v:.0f}", f"{r['steady_mb_per_s'][k]:.0f}",
                  f"{v / job:.2f}") for k, v in r["seconds"].items()],
                ("path", "seconds", "small store s", "MB/s", "steady MB/s",
                 "x job over HTTP (time)")))
    for what in ("end_to_end", "steady"):
        q = r[what]
        print(f"{what.replace('_', ' ')}: job vs xarray-regrid {q['vs_xarray_regrid']:.2f}x "
              f"faster (target >= 2); vs the ceiling {q['vs_ceiling']:.2f} (target >= 0.7); "
              f"HTTP / local time {q['http_over_local']:.2f} (target <= 1.2)")
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
