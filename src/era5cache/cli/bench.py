"""``era5cache bench``: the benchmarks (ratios measured in one run; see BENCHMARKS.md)."""

from __future__ import annotations


def add(sub) -> None:
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

def run(args) -> int:
    if args.what == "preprocess":
        from ..bench.preprocess import main as bench_main
    elif args.what == "synthetic-cache":
        from ..sample.synthetic import write_synthetic_cache

        out = write_synthetic_cache(args.out, args.cache_steps)
        print(f"wrote a synthetic cache of {args.cache_steps} steps to {out}")
        return 0
    elif args.what == "loader":
        from ..bench.loader import main as bench_main
    else:
        from ..bench.train import main as bench_main
    return bench_main(args)
