"""The ``era5cache`` command line. Errors end as one line on stderr and a non-zero status."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="era5cache", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="write a synthetic ERA5 sample in CDS layout")
    s.add_argument("--out", help="output folder (default: the recipe's sample.out)")
    s.add_argument("--layout", choices=("new", "legacy"), default="new")
    s.add_argument("--start", default="2019-01-01T00")
    s.add_argument("--end", default="2019-12-31T18")
    s.add_argument("--step", default="6h")
    s.add_argument("--resolution", type=float, default=0.25)
    s.add_argument("--variables", type=_csv, default=("sst", "t2m", "z"))
    s.add_argument("--levels", type=lambda t: tuple(int(x) for x in _csv(t)), default=(500, 850))
    s.add_argument("--preliminary-steps", type=int, default=0,
                   help="mark the last N steps as preliminary ERA5T (expver 0005)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--from-config", metavar="CONFIG",
                   help="take the sample settings from a recipe's `sample:` section")

    pp = sub.add_parser("preprocess", help="run the Dask job: NetCDF -> Zarr + HDF5 cache")
    pp.add_argument("config", nargs="?", help="recipe YAML (default: built-in defaults)")
    pp.add_argument("--input", action="append", help="input path, folder or glob (repeatable)")
    pp.add_argument("--output")
    pp.add_argument("--variables", type=_csv, help="channels, e.g. sst,t2m,z500")
    pp.add_argument("--scheduler", help="address of a running Dask scheduler")
    pp.add_argument("--workers", type=int, help="worker processes of the local cluster")
    pp.add_argument("--memory-limit", help="memory limit per local worker, e.g. 2GiB")
    pp.add_argument("--chunk-steps", type=int)
    pp.add_argument("--append", action="store_true",
                    help="extend the published cache with these inputs (new months; final "
                         "ERA5 replaces preliminary ERA5T)")
    pp.add_argument("--force", action="store_true",
                    help="rebuild even if the cache was made from the same inputs")
    pp.add_argument("--all-nan-steps", choices=("fail", "skip"),
                    help="time steps with no valid value: fail (default) or record and skip")
    pp.add_argument("--no-progress", action="store_true")

    v = sub.add_parser("verify", help="re-check a cache; exit 0 only if sound")
    v.add_argument("dir")
    v.add_argument("--quick", action="store_true", help="skip checksums")

    i = sub.add_parser("inspect", help="channels, time range, gaps, statistics, sizes")
    i.add_argument("dir")

    t = sub.add_parser("train", help="train the RATransformer on a cache")
    t.add_argument("config", nargs="?", help="trainer YAML (default: built-in defaults)")
    t.add_argument("--data", help="cache folder")
    t.add_argument("--max-epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--lr-scaling", choices=("none", "sqrt"))
    t.add_argument("--accumulate", type=int, help="gradient accumulation steps")
    t.add_argument("--precision", help="e.g. bf16-mixed, 16-mixed, 32-true (default: auto)")
    t.add_argument("--compile", action="store_true", default=None, help="torch.compile")
    t.add_argument("--devices", help="number of devices (DDP when > 1)")
    t.add_argument("--strategy", help="e.g. ddp")
    t.add_argument("--data-mode", choices=("auto", "resident", "loader"))
    t.add_argument("--num-workers", help="DataLoader workers (loader mode)")
    t.add_argument("--seed", type=int)
    t.add_argument("--out", help="run folder (checkpoints, logs, plots)")
    t.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint ('last' "
                   "= OUT/checkpoints/last.ckpt)")
    t.add_argument("--ema-decay", type=float)

    b = sub.add_parser("bench", help="benchmarks (ratios measured in one run)")
    b.add_argument("what", choices=("preprocess", "loader", "train", "synthetic-cache"))
    b.add_argument("--out", default="bench-results/synthetic-cache",
                   help="synthetic-cache: where to write it")
    b.add_argument("--cache-steps", type=int, default=20000,
                   help="synthetic-cache: number of 6-hourly steps")
    b.add_argument("--workdir", default="bench-results/work")
    b.add_argument("--data", default="data/cache", help="cache folder (loader)")
    b.add_argument("--batch-size", type=int, default=256, help="loader batch size")
    b.add_argument("--seq-len", type=int, default=2)
    b.add_argument("--seconds", type=float, default=4.0, help="time budget per loader path")
    b.add_argument("--steps", type=int, default=10, help="timed training steps per path (CPU)")
    b.add_argument("--json", default=None, help="write results here")
    b.add_argument("--quick", action="store_true", help="smaller inputs")
    return p


def _cmd_sample(args) -> int:
    from .sample import SampleSpec, write_sample

    if args.from_config:
        from .config import load_preprocess_config

        cfg = load_preprocess_config(args.from_config)
        if cfg.sample is None:
            from .errors import ConfigError

            raise ConfigError(f"{args.from_config}: has no `sample:` section")
        s = cfg.sample
        spec = SampleSpec(start=s.start, end=s.end, step=s.step, resolution=s.resolution,
                          layout=s.layout, variables=s.variables, levels=s.levels, seed=s.seed)
        out = args.out or s.out
    else:
        if not args.out:
            from .errors import ConfigError

            raise ConfigError("sample: --out is required (or give --from-config)")
        spec = SampleSpec(start=args.start, end=args.end, step=args.step,
                          resolution=args.resolution, layout=args.layout,
                          variables=args.variables, levels=args.levels,
                          preliminary_steps=args.preliminary_steps, seed=args.seed)
        out = args.out
    files = write_sample(out, spec)
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files ({total / 1e6:.1f} MB) to {out}")
    return 0


def _cmd_preprocess(args) -> int:
    from .config import check, load_preprocess_config, with_overrides
    from .workers import imports_frozen

    cfg = load_preprocess_config(args.config)
    cfg = with_overrides(
        cfg, inputs=tuple(args.input) if args.input else None, output=args.output,
        variables=args.variables, chunk_steps=args.chunk_steps,
        all_nan_steps=args.all_nan_steps, dask_scheduler=args.scheduler,
        dask_workers=args.workers, dask_memory_limit=args.memory_limit)
    check(cfg, "command line")
    if not cfg.dask.scheduler:  # workers forked from a server that imports while we do
        from .workers import start_fork_server

        start_fork_server(cfg.dask.memory_limit)
    with imports_frozen():
        from . import pipeline

    r = pipeline.run(cfg, progress=not args.no_progress, append=args.append, force=args.force)
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


def _cmd_verify(args) -> int:
    from .verify import verify

    problems = verify(args.dir, checksums=not args.quick)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    print(f"{args.dir}: sound")
    return 0


def _cmd_inspect(args) -> int:
    from .report import inspect_cache

    print(inspect_cache(args.dir))
    return 0


def _cmd_train(args) -> int:
    from .train_config import load_train_config, override

    cfg = load_train_config(args.config)
    cfg = override(cfg, data=args.data)
    devices = args.devices
    if devices is not None and devices.isdigit():
        devices = int(devices)
    workers = args.num_workers
    if workers is not None and workers.isdigit():
        workers = int(workers)
    cfg = override(cfg, "trainer", max_epochs=args.max_epochs, batch_size=args.batch_size,
                   accumulate=args.accumulate, precision=args.precision, compile=args.compile,
                   devices=devices, strategy=args.strategy, data_mode=args.data_mode,
                   num_workers=workers, seed=args.seed, out=args.out)
    cfg = override(cfg, "optim", lr=args.lr, lr_scaling=args.lr_scaling,
                   ema_decay=args.ema_decay)
    resume = args.resume
    if resume == "last":
        resume = str(Path(cfg.trainer.out) / "checkpoints" / "last.ckpt")
    if resume and not Path(resume).is_file():
        from .errors import ConfigError

        raise ConfigError(f"{resume}: no such checkpoint")
    from .train import format_skill, run

    summary = run(cfg, resume=resume)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0:
        print(f"trained {summary['epochs']} epochs ({summary['global_step']} steps), data "
              f"{summary['data_mode']}, precision {summary['precision']}")
        print(summary["throughput_summary"])
        print(format_skill(summary["skill"]))
        print(f"run folder: {cfg.trainer.out} (checkpoints/, logs/metrics.csv, loss.png, "
              "prediction.png, summary.json)")
    return 0


def _cmd_bench(args) -> int:
    if args.what == "preprocess":
        from .bench.preprocess import main as bench_main
    elif args.what == "synthetic-cache":
        from .synthetic import write_synthetic_cache

        out = write_synthetic_cache(args.out, args.cache_steps)
        print(f"wrote a synthetic cache of {args.cache_steps} steps to {out}")
        return 0
    elif args.what == "loader":
        from .bench.loader import main as bench_main
    else:
        from .bench.train import main as bench_main
    return bench_main(args)


COMMANDS = {"sample": _cmd_sample, "preprocess": _cmd_preprocess, "verify": _cmd_verify,
            "inspect": _cmd_inspect, "train": _cmd_train, "bench": _cmd_bench}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.debug:
        os.environ["ERA5CACHE_DEBUG"] = "1"  # Dask workers log their tracebacks too
    else:
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
    from .errors import Era5CacheError

    try:
        return COMMANDS[args.command](args)
    except Era5CacheError as exc:
        if args.debug:
            raise
        print(f"era5cache {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"era5cache {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: still one line, with a hint
        if args.debug or os.environ.get("ERA5CACHE_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"era5cache {args.command}: unexpected {type(exc).__name__}: {msg} "
              "(re-run with --debug for the traceback)", file=sys.stderr)
        return 3


def entry() -> None:
    """The ``era5cache`` command: :func:`main`, then a quick process exit.

    Tearing down an interpreter that imported xarray, pandas, dask and distributed takes
    0.3-0.8 s on the 2-core reference VM (every module's objects freed one by one), a sixth
    of a preprocessing run. Every command has closed (and fsync'ed where it matters) what it
    wrote before :func:`main` returns, and its own threads have ended; so once the exit
    handlers have run (atexit: logging, multiprocessing, Dask) and stdout/stderr are
    flushed, the process ends with :func:`os._exit`, which also drops idle pool threads
    (Dask's local thread pool) instead of joining them.
    """
    code = main()
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
