"""``batch_size: auto``: the largest batch that fits the card, with the square-root rule.

On CUDA the memory of one training step is measured at two small batches (peak allocated
bytes of forward and backward under the run's autocast, the batch itself included), which
gives a fixed part and a part per sample; the optimizer's two moments and the EMA's copy
(three times the parameters' bytes) are added to the fixed part. The batch is the largest
power of two whose step fits 85% of the free memory left once the resident splits are
loaded, at most the training windows a rank has. ``optim.lr_scaling`` becomes ``sqrt``:
the learning rate grows with the square root of batch / ``base_batch_size``. On a CPU,
``auto`` is ``base_batch_size``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from ..config.trainer import TrainConfig, override
from ..errors import ConfigError
from ..serve.dataset import CachedERA5Dataset
from ..serve.resident import resident_bytes
from .model import RATransformer, masked_mse

MARGIN = 0.85


def largest_power_of_two(fixed: float, per_sample: float, budget: float, limit: int) -> int:
    """The largest power of two ``b <= limit`` with ``fixed + per_sample * b <= budget``;
    0 when not even a batch of 1 fits."""
    room = (budget - fixed) / max(per_sample, 1.0)
    if room < 1 or limit < 1:
        return 0
    return 1 << int(np.floor(np.log2(min(room, limit))))


def step_memory(model: torch.nn.Module, seq_len: int, frame: tuple[int, int, int],
                device: torch.device, sizes: tuple[int, int] = (16, 48)) -> tuple[float, float]:
    """(fixed bytes, bytes a sample) of one bf16-autocast training step's peak memory on
    ``device`` (CUDA), from two batch sizes; the model's gradients are cleared after."""
    peaks = []
    for b in sizes:
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        x = torch.zeros(b, seq_len, *frame, dtype=torch.bfloat16, device=device)
        y = torch.zeros(b, *frame, dtype=torch.bfloat16, device=device)
        mask = torch.ones(b, *frame, dtype=torch.bool, device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = masked_mse(model(x), y, mask)
        loss.backward()
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        model.zero_grad(set_to_none=True)
        del x, y, mask, loss
    per_sample = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    return peaks[0] - per_sample * sizes[0], per_sample


def resolve_batch_size(cfg: TrainConfig, on_cuda: bool) -> tuple[TrainConfig, str]:
    """``cfg`` with ``batch_size: auto`` replaced by a number (see the module's doc) and
    the square-root learning-rate rule, and why, in words; other configs unchanged."""
    if cfg.trainer.batch_size != "auto":
        return cfg, ""
    cfg = override(cfg, "optim", lr_scaling="sqrt")
    if not on_cuda:
        b = cfg.optim.base_batch_size
        return override(cfg, "trainer", batch_size=b), f"batch size auto: {b} (CPU)"
    kw = dict(channels=list(cfg.channels) if cfg.channels else None,
              seq_len=cfg.model.seq_len, lead=cfg.lead, return_mask=True)
    splits = [CachedERA5Dataset(cfg.data, split=s, **kw) for s in ("train", "val", "test")]
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    free = torch.cuda.mem_get_info(device)[0]
    data = sum(resident_bytes(ds, dtype=torch.bfloat16) for ds in splits if len(ds))
    data = min(data, 0.4 * free) if cfg.trainer.data_mode in ("auto", "resident") else 0
    c, h, w = splits[0].frame_shape
    mcfg = dataclasses.replace(cfg.model, channels=c, height=h, width=w)
    model = RATransformer(mcfg).to(device)
    fixed, per_sample = step_memory(model, cfg.model.seq_len, (c, h, w), device)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    del model
    torch.cuda.empty_cache()
    budget = MARGIN * (free - data)
    b = largest_power_of_two(fixed + 3 * params, per_sample, budget,
                             min(len(splits[0]), 65536))
    if b == 0:
        raise ConfigError(f"{cfg.data}: batch size auto: not even one sample's training step "
                          f"fits the GPU's {free / 2**30:.1f} GiB free")
    why = (f"batch size auto: {b} ({per_sample / 2**20:.1f} MiB a sample, "
           f"{(fixed + 3 * params) / 2**30:.2f} GiB fixed, {budget / 2**30:.1f} GiB usable "
           f"of {free / 2**30:.1f} GiB free after {data / 2**30:.1f} GiB of resident data)")
    return override(cfg, "trainer", batch_size=b), why
