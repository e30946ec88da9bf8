"""``era5cache verify``: re-check a cache; exit 0 only if it is sound, 2 if not.

First the structure against the manifest (files, shapes, channels, checksums:
:mod:`era5cache.format.verify`), then, if that holds, the meaning: the HDF5 channels against
the Zarr variables of their names on sampled steps, and the statistics against the training
period (:mod:`era5cache.store.crosscheck`)."""

from __future__ import annotations

import sys


def add(sub) -> None:
    v = sub.add_parser("verify", help="re-check a cache; exit 0 only if sound")
    v.add_argument("dir")
    v.add_argument("--quick", action="store_true",
                   help="skip checksums (the sampled meaning checks still run)")


def run(args) -> int:
    from ..format.verify import verify

    problems = verify(args.dir, checksums=not args.quick)
    if not problems:
        from ..store.crosscheck import meaning_problems

        problems = meaning_problems(args.dir)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 2
    print(f"{args.dir}: sound")
    return 0
