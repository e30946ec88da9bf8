"""``era5cache verify``: re-check a cache; exit 0 only if it is sound."""

from __future__ import annotations

import sys


def add(sub) -> None:
    v = sub.add_parser("verify", help="re-check a cache; exit 0 only if sound")
    v.add_argument("dir")
    v.add_argument("--quick", action="store_true", help="skip checksums")


def run(args) -> int:
    from ..format.verify import verify

    problems = verify(args.dir, checksums=not args.quick)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    print(f"{args.dir}: sound")
    return 0
