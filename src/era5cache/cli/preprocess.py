"""``era5cache preprocess``: the Dask job, ERA5 files -> Zarr store + HDF5 training cache."""

from __future__ import annotations

from ..process import imports_frozen
from . import csv_list


def add(sub) -> None:
    pp = sub.add_parser("preprocess", help="run the Dask job: NetCDF -> Zarr + HDF5 cache")
    pp.add_argument("config", nargs="?", help="recipe YAML (default: built-in defaults)")
    pp.add_argument("--input", action="extend", nargs="+", metavar="PATH",
                    help="input paths, folders or globs: any number after one --input "
                         "(a shell glob), and --input may repeat; or Zarr stores, a "
                         "folder or a URL (gs://, s3://, https://, file://)")
    pp.add_argument("--output")
    pp.add_argument("--variables", type=csv_list, help="channels, e.g. sst,t2m,z500")
    pp.add_argument("--scheduler", help="address of a running Dask scheduler")
    pp.add_argument("--workers", type=int, help="worker processes of the local cluster")
    pp.add_argument("--memory-limit", help="memory limit per local worker, e.g. 2GiB")
    pp.add_argument("--dashboard", nargs="?", const="127.0.0.1:8787", metavar="ADDRESS",
                    help="serve Dask's dashboard of the local cluster (default address "
                         "127.0.0.1:8787; needs bokeh)")
    pp.add_argument("--chunk-steps", type=int)
    pp.add_argument("--start", help="first time step to read (ISO date or time, e.g. "
                    "2020-01-01 or 2020-01-01T06); needed for ARCO-ERA5")
    pp.add_argument("--end", help="last time step to read, inclusive (a date alone: the "
                    "whole day)")
    pp.add_argument("--step", help="keep every STEP from midnight, e.g. 6h (00/06/12/18 of "
                    "hourly data); accumulations (tp) are summed over it")
    pp.add_argument("--append", action="store_true",
                    help="extend the published cache with these inputs (new months; final "
                         "ERA5 replaces preliminary ERA5T)")
    pp.add_argument("--force", action="store_true",
                    help="rebuild even if the cache was made from the same inputs")
    pp.add_argument("--all-nan-steps", choices=("fail", "skip"),
                    help="time steps with no valid value: fail (default) or record and skip")
    pp.add_argument("--in-process", action="store_true",
                    help="run in this process and thread, without a Dask cluster (small "
                         "jobs, debugging: the same bytes, one core)")
    pp.add_argument("--no-progress", action="store_true")


def _start_workers_early(args) -> None:
    """Start the local workers' fork server first thing: it imports the workers' modules on
    one core while this process imports pydantic and the job's modules on the other. It
    depends on nothing the recipe says (:mod:`era5cache.store.forkserver`); with
    ``--scheduler`` or ``--in-process`` it is not needed (a recipe's scheduler leaves it
    unused)."""
    if args.scheduler or args.in_process:
        return
    from ..store.forkserver import start_fork_server

    start_fork_server()


def run(args) -> int:
    _start_workers_early(args)
    from ..config.recipe import load_preprocess_config, with_overrides

    cfg = load_preprocess_config(args.config)
    cfg = with_overrides(
        cfg, inputs=tuple(args.input) if args.input else None, output=args.output,
        variables=args.variables, chunk_steps=args.chunk_steps, start=args.start,
        end=args.end, step=args.step,
        all_nan_steps=args.all_nan_steps, dask_scheduler=args.scheduler,
        dask_workers=args.workers, dask_memory_limit=args.memory_limit,
        dask_dashboard=args.dashboard)
    from ..store.cluster import BackgroundClient
    from ..store.runners import DaskRunner, InProcessRunner

    runner = InProcessRunner() if args.in_process else DaskRunner(
        BackgroundClient(cfg), cfg.dask.memory_limit)  # boots while the job's modules load
    try:
        with imports_frozen():
            from ..store import job
    except BaseException:
        runner.close()
        raise
    r = job.run(cfg, progress=not args.no_progress, append=args.append, force=args.force,
                runner=runner)
    if r.status == "up to date":
        print(f"{r.output}: up to date ({r.n_time} steps made from the same inputs and "
              "settings); --force rebuilds it")
        return 0
    notes = []
    if r.resumed_chunks:
        notes.append(f"resumed: {r.resumed_chunks} time chunks kept from the interrupted run")
    if r.reused_chunks:
        notes.append(f"{r.reused_chunks} time chunks kept from the previous cache")
    if r.replaced_steps:
        notes.append(f"{r.replaced_steps} steps replaced")
    if r.skipped_steps:
        notes.append(f"{r.skipped_steps} all-NaN steps skipped (listed in the manifest)")
    if r.preliminary_steps:
        notes.append(f"{r.preliminary_steps} steps still preliminary ERA5T")
    print(f"{r.status} {r.output}: {r.n_time} steps x {len(r.channels)} channels "
          f"({', '.join(r.channels)}) from {r.input_bytes / 1e6:.1f} MB of input "
          f"in {r.seconds:.1f} s ("
          + ", ".join(f"{k} {v:.1f} s" for k, v in r.stages.items()) + ")"
          + "".join(f"; {n}" for n in notes))
    return 0
