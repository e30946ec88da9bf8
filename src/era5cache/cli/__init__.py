"""The ``era5cache`` command line, one module per command. Errors end as one line on stderr
and a non-zero status: 2 for bad input, configuration or cache, 3 for anything unexpected."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from ..process import exit_when_done, set_numpy_environ

COMMANDS = ("sample", "preprocess", "verify", "inspect", "train", "bench")
# Commands whose library warnings are held until they succeed (dropped if they fail, so that
# stderr holds the one-line error alone); train and bench show theirs as they come.
HOLD_WARNINGS = ("sample", "preprocess", "verify", "inspect")


def csv_list(text: str) -> tuple[str, ...]:
    """``"sst, t2m"`` -> ``("sst", "t2m")``."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _command(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="era5cache", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        _command(name).add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    set_numpy_environ()  # before the parser loads numpy
    args = parser().parse_args(argv)
    if args.debug:
        os.environ["ERA5CACHE_DEBUG"] = "1"  # Dask workers log their tracebacks too
    else:
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
    from ..errors import Era5CacheError

    held: list[warnings.WarningMessage] = []
    try:
        if args.command in HOLD_WARNINGS and not args.debug:
            with warnings.catch_warnings(record=True) as held:
                status = _command(args.command).run(args)
        else:
            status = _command(args.command).run(args)
        for w in held:  # a success: the warnings it held are shown now
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        return status
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
    """The ``era5cache`` command: :func:`main`, then a quick process exit
    (:func:`era5cache.process.exit_when_done`)."""
    exit_when_done(main())
