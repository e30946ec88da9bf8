"""``era5cache bench train``: training samples/s of the ways to feed and step the same model.

In one run, same cache, same RATransformer (default hyperparameters):

1. the original loop: fp32, batch 50, a per-sample DataLoader in the main process;
2. the report's quick fixes: 16-bit mixed precision (fp16 + GradScaler on CUDA; fp32 on a
   CPU, where autocast is slower), batch 150, 8 workers (at most the cores), pin_memory;
3. this project's feeding: split resident on the device (bf16 on CUDA), batches built by
   index, batch ``--batch-size`` (default 4096 on CUDA, 50 on CPU), a plain eager step;
4. the eager ceiling: the same model and batch as 3 fed one fixed batch;
5. the compiled ceilings: 4 with the step (model and loss) under ``torch.compile``, one row
   per mode of ``--compile-modes`` (default on CUDA: default and reduce-overhead; none on
   a CPU, where compiling the full model takes minutes);
6. the ``era5cache train`` command's loop itself (Lightning, EMA, clipping, logging,
   checkpoints, the monitor; compiled on CUDA) on the same resident data and batch,
   sustained over ``--train-steps`` optimizer steps after a warm-up epoch, validation
   every ~100 steps and timed apart.

Per path: samples/s, MFU (CUDA), median and p95 step time, the share of time between steps,
GPU utilisation and memory. A plain step here is forward, NaN-masked loss, backward, fused
AdamW (:mod:`.plainstep`). Then the ``era5cache train`` loop's overhead per step over a bare
loop on a tiny model (:mod:`.trainloop`): ``overhead_ms_per_step`` in the JSON. With
``--ablate``, the eager step with one part of the model or step taken out at a time
(:mod:`.ablation`), and with ``--profile F`` its operators by device time in ``F``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config.model import ModelConfig
from ..serve.dataset import CachedERA5Dataset
from ..train.compiled import StepLoss
from ..train.flops import flops_per_sample, peak_flops
from ..train.model import RATransformer
from ..train.throughput import clock_for, gpu_utilisation, step_figures
from .common import cycle, machine, table, write_json
from .loader import _PerSample
from .plainstep import plain_step


def timed_steps(step, batches, device, n_warm: int, n_steps: int) -> dict:
    """:func:`step_figures` of ``n_steps`` steps after ``n_warm``; the fetch of the next
    batch counts as the gap before a step. Adds peak GPU memory (GB)."""
    it = cycle(batches)
    for _ in range(n_warm):
        step(next(it))
    clock, marks, util, t_util = clock_for(device), [], [], time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    marks.append(clock.mark())
    for _ in range(n_steps):
        batch = next(it)
        marks.append(clock.mark())
        step(batch)
        marks.append(clock.mark())
        if device.type == "cuda" and time.perf_counter() - t_util > 0.5:
            t_util = time.perf_counter()
            util.extend(u for u in [gpu_utilisation()] if u is not None)
    t = clock.seconds(marks)
    starts, ends = t[1::2], t[2::2]
    gaps = starts - np.concatenate([[t[0]], ends[:-1]])
    out = step_figures(ends - starts, gaps, int(batch[0].shape[0]), util=util)
    if device.type == "cuda":
        out["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _command(root: Path, batch: int, steps: int) -> dict:
    """The ``era5cache train`` loop on ``root``: sustained figures over ``steps`` steps
    after the first epoch, validation about every 100 steps."""
    from ..config.trainer import TrainConfig
    from ..train.run import build

    n = len(CachedERA5Dataset(root, split="train", seq_len=2))
    per_epoch = max(1, n // batch)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig.model_validate({"data": str(root), "trainer": {
            "batch_size": batch, "data_mode": "resident", "out": tmp, "num_workers": 0,
            "max_epochs": 1 + math.ceil(steps / per_epoch),
            "val_every_n_epochs": max(1, round(100 / per_epoch))}})
        dm, module, trainer, monitor = build(cfg)
        trainer.fit(module, datamodule=dm)
        out = monitor.sustained()
        out["compile"] = module.step_loss.record()
    return out


class _Results(dict):
    """Path name -> figures, each printed in a line as it arrives (a run cut short by a
    timeout keeps what it measured)."""

    def __setitem__(self, name, figures):
        super().__setitem__(name, figures)
        print(f"{name}: {figures.get('samples_per_s', float('nan')):,.0f} samples/s, step "
              f"{figures.get('step_ms_median', float('nan')):.1f} ms median", flush=True)


def _paths(ds, device, big: int, n_warm: int, n_steps: int, modes: list[str]) -> dict:
    """Paths 1-5: name -> figures."""
    cuda = device.type == "cuda"
    cfg = ModelConfig(channels=len(ds.channels))
    results = _Results()

    def fresh():
        torch.manual_seed(0)
        return RATransformer(cfg).to(device)

    dl = DataLoader(_PerSample(ds), batch_size=50, shuffle=True)
    results["1 original: fp32, batch 50, per-sample loader, main process"] = timed_steps(
        plain_step(fresh(), device, None, None), dl, device, n_warm, n_steps)
    workers = min(8, os.cpu_count() or 1)
    dl = DataLoader(_PerSample(ds), batch_size=150, shuffle=True, num_workers=workers,
                    pin_memory=cuda, persistent_workers=True, prefetch_factor=2)
    amp = torch.float16 if cuda else None  # CPU autocast (bf16) is ~10x slower than fp32 here
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    results[f"2 quick fixes: {'16-mixed' if cuda else 'fp32 (CPU)'}, batch 150, "
            f"{workers} workers, pin_memory"] = timed_steps(
        plain_step(fresh(), device, amp, scaler), dl, device, n_warm, n_steps)
    del dl
    dtype = torch.bfloat16 if cuda else torch.float32
    res = ds.to_device(device, dtype=dtype, batch_size=big, shuffle=True, drop_last=True)
    amp = torch.bfloat16 if cuda else None
    results[f"3 resident, {'bf16' if cuda else 'fp32'}, batch {big}"] = timed_steps(
        plain_step(fresh(), device, amp, None), res, device, n_warm, n_steps)
    fixed = [next(iter(res))]
    results[f"4 eager ceiling: one fixed batch of {big}"] = timed_steps(
        plain_step(fresh(), device, amp, None), fixed, device, n_warm, n_steps)
    for mode in modes:
        model, loss = fresh(), StepLoss(mode)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss.check(model, fixed[0][:3], None)
        r = timed_steps(plain_step(model, device, amp, None, loss), fixed, device, n_warm,
                        n_steps)
        results[f"5 compiled ceiling ({mode})"] = r | {"compile_s": loss.compile_s,
                                                       "fallback": loss.fallback}
    return dict(results)


def _fixed_batch(ds, device, big: int) -> tuple:
    """The first ``big`` windows of the split resident on ``device`` (bf16 on CUDA, fp32 on
    a CPU), unshuffled: path 4's kind of batch, gathered once for the optional parts (the
    split is freed with its loader)."""
    cuda = device.type == "cuda"
    res = ds.to_device(device, dtype=torch.bfloat16 if cuda else torch.float32,
                       batch_size=big, shuffle=False, drop_last=True)
    return next(iter(res))


def _profile(batch: tuple, cfg: ModelConfig, device, path: str) -> None:
    """Writes to ``path`` the operators of 5 eager steps of path 4 (one fixed batch), by
    device time: where the step's time goes; then the same by operator and input shapes
    (a matrix product of awkward shape, e.g. a size that is not a multiple of 8,
    shows there)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    torch.manual_seed(0)
    step = plain_step(RATransformer(cfg).to(device), device,
                      torch.bfloat16 if cuda else None, None)
    for _ in range(3):
        step(batch)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(5):
            step(batch)
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    by_op = prof.key_averages().table(sort_by=key, row_limit=40)
    by_shape = prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=40,
                                                                   max_name_column_width=40)
    Path(path).write_text(f"5 steps, batch {batch[0].shape[0]}: by operator\n{by_op}\n"
                          f"by operator and input shapes\n{by_shape}\n")


def _ablate(batch: tuple, cfg: ModelConfig, device, n_warm: int, n_steps: int) -> list[dict]:
    """:func:`.ablation.ablation` on path 4's fixed batch, printed as a table."""
    from .ablation import ablation

    amp = torch.bfloat16 if device.type == "cuda" else None
    rows = ablation(batch, cfg, device, amp, timed_steps, n_warm, n_steps)
    print(f"the eager step (one fixed batch of {batch[0].shape[0]}) with one part taken out, "
          "medians of alternated rounds")
    print(table([(r["name"], f"{r['step_ms']:.1f}", f"{r['delta_ms']:+.1f}") for r in rows],
                ("variant", "step ms", "vs full step")))
    return rows


def _rows(results: dict, flops: float, peak: float | None) -> list[tuple]:
    orig = results[next(iter(results))]["samples_per_s"]
    best = max(r["samples_per_s"] for k, r in results.items() if "ceiling" in k)
    rows = []
    for k, r in results.items():
        sps = r.get("samples_per_s", float("nan"))
        r["mfu"] = sps * flops / peak if peak else None
        rows.append((k, f"{sps:,.0f}", f"{sps / orig:,.1f}", f"{100 * sps / best:.0f}%",
                     "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
                     f"{r.get('step_ms_median', float('nan')):.1f}",
                     f"{r.get('step_ms_p95', float('nan')):.1f}",
                     f"{100 * r.get('gap_share', float('nan')):.1f}%",
                     "-" if r.get("gpu_util") is None else f"{r['gpu_util']:.0f}%",
                     "-" if r.get("gpu_mem_gb") is None else f"{r['gpu_mem_gb']:.1f}"))
    return rows


def main(args) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    root = Path(args.data)
    ds = CachedERA5Dataset(root, split="train", seq_len=args.seq_len, return_mask=True)
    big = args.batch_size or (4096 if cuda else 50)
    n_warm, n_steps = (5, 30) if cuda else (2, args.steps)
    modes = ([m for m in args.compile_modes.split(",") if m] if args.compile_modes is not None
             else (["default", "reduce-overhead"] if cuda else []))
    results = _paths(ds, device, big, n_warm, n_steps, modes)
    train_steps = args.train_steps or (300 if cuda else 3 * args.steps)
    results = _Results(results)
    results[f"6 era5cache train: batch {big}, sustained"] = _command(root, big, train_steps)
    model = RATransformer(ModelConfig(channels=len(ds.channels)))
    flops = flops_per_sample(model, args.seq_len, ds.frame_shape)
    dev = torch.cuda.get_device_name() if cuda else "CPU"
    peak = peak_flops(dev) if cuda else None
    rows = _rows(results, flops, peak)
    print(f"device {dev}; model d_model {model.cfg.d_model}, {model.cfg.num_layers} layers, "
          f"{flops / 1e9:.3f} GFLOP a sample (forward + backward); {len(ds)} train windows; "
          f"{n_steps} timed steps per path 1-5, {train_steps} for 6")
    print(table(rows, ("path", "samples/s", "x original", "of best ceiling", "MFU",
                       "step ms", "p95 ms", "between steps", "GPU util", "GPU GB")))
    from .trainloop import overhead

    loop = overhead(str(root))
    lo, hi = loop["overhead_ms_interval"]
    print(f"the era5cache train loop's overhead on a tiny model (d_model 64, 1 layer, batch "
          f"{loop['batch_size']}): {loop['command_ms_per_step']:.1f} ms a step against a bare "
          f"loop's {loop['bare_ms_per_step']:.1f} ms: {loop['overhead_ms_per_step']:.1f} ms "
          f"(95% of resampled block pairs: {lo:.1f} to {hi:.1f} ms; target <= 1)")
    record = _record(results, dev, n_steps, flops, peak, loop)
    write_json(args.json, record)  # before the optional parts: a timeout keeps the main ones
    if args.ablate or args.profile:
        batch, cfg = _fixed_batch(ds, device, big), model.cfg
    if args.ablate:
        record["ablation"] = _ablate(batch, cfg, device, n_warm, n_steps)
        write_json(args.json, record)
    if args.profile:
        _profile(batch, cfg, device, args.profile)
    return 0 if all(np.isfinite(r.get("samples_per_s", np.nan)) for r in results.values()) \
        else 1


def _record(results: dict, dev: str, n_steps: int, flops: float, peak, loop: dict) -> dict:
    names = list(results)
    sps = {k: r.get("samples_per_s", float("nan")) for k, r in results.items()}
    command, eager = names[-1], names[3]
    compiled = [k for k in names if k.startswith("5 ") and not results[k].get("fallback")]
    out = {"benchmark": "train", "machine": machine(), "device": dev, "results": results,
           "samples_per_s": sps, "steps": n_steps, "flops_per_sample": flops,
           "peak_flops": peak, "default_vs_ceiling": sps[names[2]] / sps[eager],
           "default_vs_original": sps[names[2]] / sps[names[0]],
           "train_vs_original": sps[command] / sps[names[0]],
           "overhead_ms_per_step": loop["overhead_ms_per_step"], "train_loop": loop}
    if dev != "CPU":
        best = max((sps[k] for k in compiled), default=sps[eager])
        out |= {"train_samples_per_s": sps[command], "train_mfu": results[command].get("mfu"),
                "train_vs_compiled_ceiling": sps[command] / best,
                "train_vs_eager_ceiling": sps[command] / sps[eager]}
    return out
