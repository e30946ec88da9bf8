"""``era5cache train``: the RATransformer on a cache (Lightning)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def add(sub) -> None:
    t = sub.add_parser("train", help="train the RATransformer on a cache")
    t.add_argument("config", nargs="?", help="trainer YAML (default: built-in defaults)")
    t.add_argument("--data", help="cache folder")
    t.add_argument("--max-epochs", type=int)
    t.add_argument("--batch-size", help="samples a step, or auto (the largest that fits the "
                   "GPU, with the square-root learning-rate rule)")
    t.add_argument("--lr", type=float)
    t.add_argument("--lr-scaling", choices=("none", "sqrt"))
    t.add_argument("--accumulate", type=int, help="gradient accumulation steps")
    t.add_argument("--precision", help="e.g. bf16-mixed, 16-mixed, 32-true (default: auto)")
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step (default: on CUDA only)")
    t.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune",
                                               "max-autotune-no-cudagraphs"))
    t.add_argument("--devices", help="number of devices (DDP when > 1)")
    t.add_argument("--strategy", help="e.g. ddp")
    t.add_argument("--data-mode",
                   choices=("auto", "resident", "resident_sharded", "loader", "blocks"))
    t.add_argument("--num-workers", help="DataLoader workers (loader mode)")
    t.add_argument("--seed", type=int)
    t.add_argument("--out", help="run folder (checkpoints, logs, plots)")
    t.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint ('last' "
                   "= OUT/checkpoints/last.ckpt)")
    t.add_argument("--ema-decay", type=float)


def run(args) -> int:
    from ..config.trainer import load_train_config, override

    cfg = load_train_config(args.config)
    cfg = override(cfg, data=args.data)
    devices = args.devices
    if devices is not None and devices.isdigit():
        devices = int(devices)
    batch = args.batch_size
    if batch is not None and batch.isdigit():
        batch = int(batch)
    workers = args.num_workers
    if workers is not None and workers.isdigit():
        workers = int(workers)
    cfg = override(cfg, "trainer", max_epochs=args.max_epochs, batch_size=batch,
                   accumulate=args.accumulate, precision=args.precision, compile=args.compile,
                   compile_mode=args.compile_mode,
                   devices=devices, strategy=args.strategy, data_mode=args.data_mode,
                   num_workers=workers, seed=args.seed, out=args.out)
    cfg = override(cfg, "optim", lr=args.lr, lr_scaling=args.lr_scaling,
                   ema_decay=args.ema_decay)
    from ..format.manifest import read_manifest

    read_manifest(cfg.data)  # a missing or damaged cache fails before torch is imported
    resume = args.resume
    if resume == "last":
        resume = str(Path(cfg.trainer.out) / "checkpoints" / "last.ckpt")
    if resume and not Path(resume).is_file():
        raise ConfigError(f"{resume}: no such checkpoint")
    from lightning.pytorch.utilities import rank_zero_only

    from ..train.run import format_skill, train

    summary = train(cfg, resume=resume)
    if rank_zero_only.rank == 0:  # the other DDP ranks print nothing
        print(f"trained {summary['epochs']} epochs ({summary['global_step']} steps), data "
              f"{summary['data_mode']} ({summary['data_mode_reason']}), precision "
              f"{summary['precision']}, {summary['compile']['words']}")
        print(summary["throughput_summary"])
        print(format_skill(summary["skill"]))
        print(f"run folder: {cfg.trainer.out} (checkpoints/, logs/metrics.csv, loss.png, "
              "prediction.png, summary.json)")
    return 0
