"""``era5cache bench train``: training samples/s of four ways to feed the same model.

In one run, same cache, same RATransformer (default hyperparameters), a plain training step
(forward, NaN-masked loss, backward, AdamW step):

1. the original loop: fp32, batch 50, a per-sample DataLoader in the main process;
2. the report's quick fixes: 16-bit mixed precision (fp16 + GradScaler on CUDA; fp32 on a
   CPU, where autocast is slower), batch 150, 8 workers (at most the cores), pin_memory;
3. this project's default path: split resident on the device (bf16 on CUDA), batches built by
   index, batch ``--batch-size`` (default 4096 on CUDA, 50 on CPU);
4. the compute-only ceiling: the same model and batch as 3 fed one fixed batch.

Then the ``era5cache train`` loop's overhead per step over a bare loop, on a tiny model
(:mod:`.trainloop`): ``overhead_ms_per_step`` in the JSON.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config.model import ModelConfig
from ..serve.dataset import CachedERA5Dataset
from ..train.model import RATransformer, masked_mse
from .common import machine, table, write_json
from .loader import _PerSample


def _steps(model, opt, batches, device, amp_dtype, scaler, n_warm, n_steps):
    """Run warm-up then timed steps; returns samples/s."""
    model.train()
    it = iter(batches)
    done, t0 = 0, None
    for k in range(n_warm + n_steps):
        if k == n_warm:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        try:
            x, y, mask = next(it)[:3]
        except StopIteration:
            it = iter(batches)
            x, y, mask = next(it)[:3]
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        mask = mask.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = masked_mse(model(x), y, mask)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        if k >= n_warm:
            done += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def main(args) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    root = Path(args.data)
    ds = CachedERA5Dataset(root, split="train", seq_len=args.seq_len, return_mask=True)
    cfg = ModelConfig(channels=len(ds.channels))
    cuda = device.type == "cuda"
    big = args.batch_size or (4096 if cuda else 50)
    n_warm, n_steps = (5, 30) if cuda else (2, args.steps)
    results = {}

    def fresh():
        torch.manual_seed(0)
        m = RATransformer(cfg).to(device)
        return m, torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)

    m, opt = fresh()
    dl = DataLoader(_PerSample(ds), batch_size=50, shuffle=True)
    results["1 original: fp32, batch 50, per-sample loader, main process"] = _steps(
        m, opt, dl, device, None, None, n_warm, n_steps)
    m, opt = fresh()
    workers = min(8, os.cpu_count() or 1)
    dl = DataLoader(_PerSample(ds), batch_size=150, shuffle=True, num_workers=workers,
                    pin_memory=cuda, persistent_workers=True, prefetch_factor=2)
    amp = torch.float16 if cuda else None  # CPU autocast (bf16) is ~10x slower than fp32 here
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    results[f"2 quick fixes: {'16-mixed' if cuda else 'fp32 (CPU)'}, batch 150, "
            f"{workers} workers, pin_memory"] = _steps(
        m, opt, dl, device, amp, scaler, n_warm, n_steps)
    del dl
    m, opt = fresh()
    dtype = torch.bfloat16 if cuda else torch.float32
    res = ds.to_device(device, dtype=dtype, batch_size=big, shuffle=True, drop_last=True)
    amp = torch.bfloat16 if cuda else None
    results[f"3 default: resident, {'bf16' if cuda else 'fp32'}, batch {big}"] = _steps(
        m, opt, res, device, amp, None, n_warm, n_steps)
    fixed = next(iter(res))
    m, opt = fresh()
    results[f"4 ceiling: one fixed batch of {big}"] = _steps(
        m, opt, [fixed], device, amp, None, n_warm, n_steps)
    names = list(results)
    orig, ceil = results[names[0]], results[names[-1]]
    rows = [(k, f"{v:,.0f}", f"{v / orig:,.1f}", f"{100 * v / ceil:.0f}%")
            for k, v in results.items()]
    dev = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"device {dev}; model d_model {cfg.d_model}, {cfg.num_layers} layers; "
          f"{len(ds)} train windows; {n_steps} timed steps per path")
    print(table(rows, ("path", "samples/s", "x original", "of ceiling")))
    from .trainloop import overhead

    loop = overhead(str(root))
    print(f"the era5cache train loop's overhead on a tiny model (d_model 64, 1 layer, batch "
          f"{loop['batch_size']}): {loop['command_ms_per_step']:.1f} ms a step against a bare "
          f"loop's {loop['bare_ms_per_step']:.1f} ms: {loop['overhead_ms_per_step']:.1f} ms "
          "(target <= 1)")
    write_json(args.json, {"benchmark": "train", "machine": machine(), "device": dev,
                           "results": results, "steps": n_steps,
                           "default_vs_ceiling": results[names[2]] / ceil,
                           "default_vs_original": results[names[2]] / orig,
                           "overhead_ms_per_step": loop["overhead_ms_per_step"],
                           "train_loop": loop})
    return 0 if np.isfinite(orig) else 1
