"""``bench train --ablate``: the eager training step with one part taken out at a time.

For the gap between this project's eager step and an independent implementation of the same
model (1.5x faster on an H200 at batch 4096, issue 24), and for what the step's time is
made of (the model: ``docs/contracts.md`` section 8): each variant is path 4 of ``bench
train`` (one fixed batch, bf16 autocast on CUDA, fp32 on a CPU) with one thing changed, a
fresh model each, timed in ``rounds`` alternated rounds (this machine's speed drifts between
minutes); the median step and its difference from the full step's are that part's cost.
Variants change the model's configuration (dropout, recursion depth, the spherical-harmonic
degree, the residual output), the loss (no NaN mask) or the step (forward and backward
only: the rest is the optimizer's).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config.model import ModelConfig
from ..train.compiled import step_loss
from ..train.model import RATransformer
from .plainstep import plain_step

VARIANTS = (
    ("full step", {}, "step"),
    ("dropout 0", {"dropout": 0.0}, "step"),
    ("recursion depth 1", {"recursion_depth": 1}, "step"),
    ("spherical harmonics of degree 0 only", {"sh_degree": 0}, "step"),
    ("not residual", {"residual": False}, "step"),
    ("loss without the NaN mask", {}, "no mask"),
    ("forward and backward only (no optimizer step)", {}, "no optimizer"),
)


def _unmasked(model, x, y, mask, weight):
    return step_loss(model, x, y, None, weight)


def _forward_backward(model, amp):
    def step(batch):
        x, y, mask = batch[:3]
        with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
            loss = step_loss(model, x, y, mask, None)
        model.zero_grad(set_to_none=True)
        loss.backward()
    return step


def variant_steps(cfg: ModelConfig, device: torch.device, amp: torch.dtype | None
                  ) -> list[tuple[torch.nn.Module, object]]:
    """(model, step function of a batch) of each of :data:`VARIANTS`, a fresh model each
    (seed 0) on ``device``."""
    out = []
    for _, change, kind in VARIANTS:
        torch.manual_seed(0)
        model = RATransformer(dataclasses.replace(cfg, **change)).to(device)
        if kind == "no optimizer":
            out.append((model, _forward_backward(model, amp)))
        else:
            out.append((model, plain_step(model, device, amp,
                                          loss_fn=_unmasked if kind == "no mask" else None)))
    return out


def ablation(batch: tuple, cfg: ModelConfig, device: torch.device, amp: torch.dtype | None,
             timed, n_warm: int, n_steps: int, rounds: int = 3) -> list[dict]:
    """One row per variant: ``name``, ``step_ms`` (median over rounds of the rounds' median
    step) and ``delta_ms`` (against the full step). ``timed(step, batches, device, n_warm,
    n_steps)`` times a step function (``bench train``'s own timer). Each round starts one
    variant later than the last, so that a drift of the machine's speed (or the first
    round's fresh memory) does not follow the variants' order."""
    steps = [step for _, step in variant_steps(cfg, device, amp)]
    ms = np.full((rounds, len(VARIANTS)), np.nan)
    for r in range(rounds):
        for i in np.roll(np.arange(len(steps)), -r):
            ms[r, i] = timed(steps[i], [batch], device, n_warm, n_steps)["step_ms_median"]
    med = np.median(ms, axis=0)
    return [{"name": name, "step_ms": float(m), "delta_ms": float(m - med[0])}
            for (name, _, _), m in zip(VARIANTS, med, strict=True)]
