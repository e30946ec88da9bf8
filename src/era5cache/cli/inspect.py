"""``era5cache inspect``: channels, time range, step, gaps, statistics, sizes."""

from __future__ import annotations


def add(sub) -> None:
    i = sub.add_parser("inspect", help="channels, time range, gaps, statistics, sizes")
    i.add_argument("dir")


def run(args) -> int:
    from ..format.inspect import inspect_cache

    print(inspect_cache(args.dir))
    return 0
