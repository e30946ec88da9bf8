"""``era5cache bench``: the benchmarks (ratios measured in one run; see BENCHMARKS.md)."""

from __future__ import annotations


def add(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks (ratios measured in one run)")
    b.add_argument("what", choices=("preprocess", "zarr", "loader", "train", "synthetic-cache"))
    b.add_argument("--out", default="bench-results/synthetic-cache",
                   help="synthetic-cache: where to write it")
    b.add_argument("--cache-steps", type=int, default=20000,
                   help="synthetic-cache: number of 6-hourly steps")
    b.add_argument("--workdir", default="bench-results/work")
    b.add_argument("--data", default="data/cache", help="cache folder (loader)")
    b.add_argument("--batch-size", type=int, default=None,
                   help="loader batch size (default 256; 64 with --memory-limit)")
    b.add_argument("--channels", type=int, default=3,
                   help="synthetic-cache, loader --memory-limit: channels of the cache")
    b.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                   help="synthetic-cache: how /data stores values")
    b.add_argument("--memory-limit", default=None,
                   help="loader: read a cache bigger than this (e.g. 2GiB) from a memory "
                        "cgroup of this size (needs root); see bench/bigcache.py")
    b.add_argument("--read-bps", default=None,
                   help="loader --memory-limit: also throttle disk reads to this rate "
                        "(e.g. 400MB; a block I/O cgroup)")
    b.add_argument("--size-factor", type=float, default=2.2,
                   help="loader --memory-limit: cache size over the limit")
    b.add_argument("--workers", type=int, default=2, help="loader --memory-limit: workers")
    b.add_argument("--epoch-seconds", type=float, default=20.0,
                   help="loader --memory-limit: longest pass")
    b.add_argument("--rounds", type=int, default=2, help="loader --memory-limit: rounds")
    b.add_argument("--block-bytes", type=int, default=None,
                   help="loader --memory-limit: BlockShuffleSampler block (default: by memory)")
    b.add_argument("--pool-bytes", type=int, default=None,
                   help="loader --memory-limit: BlockShuffleSampler pool (default: by memory)")
    b.add_argument("--seq-len", type=int, default=2)
    b.add_argument("--seconds", type=float, default=4.0, help="time budget per loader path")
    b.add_argument("--steps", type=int, default=10, help="timed training steps per path (CPU)")
    b.add_argument("--train-steps", type=int, default=None,
                   help="train: sustained steps of the era5cache train loop (default 300 on "
                        "CUDA, 3 x --steps on a CPU)")
    b.add_argument("--profile", default=None,
                   help="train: write the operators of 5 eager ceiling steps to this file")
    b.add_argument("--ablate", action="store_true",
                   help="train: time the eager step with one part of the model or step taken "
                        "out at a time (bench/ablation.py)")
    b.add_argument("--compile-modes", default=None,
                   help="train: torch.compile modes of the compiled ceiling, comma-separated "
                        "(default on CUDA: default,reduce-overhead; on a CPU: none)")
    b.add_argument("--json", default=None, help="write results here")
    b.add_argument("--quick", action="store_true", help="smaller inputs")

def run(args) -> int:
    if args.what == "preprocess":
        from ..bench.preprocess import main as bench_main
    elif args.what == "zarr":
        from ..bench.stores import main as bench_main
    elif args.what == "synthetic-cache":
        from ..sample.synthetic import write_synthetic_cache

        out = write_synthetic_cache(args.out, args.cache_steps, channels=args.channels,
                                    dtype=args.dtype)
        print(f"wrote a synthetic {args.dtype} cache of {args.cache_steps} steps x "
              f"{args.channels} channels to {out}")
        return 0
    elif args.what == "loader" and args.memory_limit:
        from ..bench.bigcache import main as bench_main

        args.batch_size = args.batch_size or 64
    elif args.what == "loader":
        from ..bench.loader import main as bench_main

        args.batch_size = args.batch_size or 256
    else:
        from ..bench.train import main as bench_main
    return bench_main(args)
