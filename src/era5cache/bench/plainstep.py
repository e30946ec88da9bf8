"""A training step without a framework, as the benchmarks run it.

Forward, NaN-masked loss (``loss_fn``: eager or compiled, :class:`..train.compiled.StepLoss`),
backward, optional gradient clipping by norm, fused AdamW (lr 1e-3, weight decay 0.01),
optional moving average of the weights as one ``torch._foreach_lerp_``; fp16 with a
``GradScaler`` when one is given. ``bench train`` runs it for its paths 1-5, and
:class:`.trainloop.BareLoop` as the bare loop the ``era5cache train`` loop is measured
against.
"""

from __future__ import annotations

import torch

from ..train.compiled import StepLoss
from ..train.module import fused_adamw


def plain_step(model: torch.nn.Module, device: torch.device, amp: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None, loss_fn: StepLoss | None = None,
               weight: torch.Tensor | None = None, clip: float | None = None,
               ema_decay: float | None = None):
    """A function of a batch ``(x, y, mask, ...)`` (moved to ``device``) that takes one
    optimizer step of ``model`` (autocast to ``amp`` where given; loss weights ``weight``
    (C, 1, 1))."""
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, fused=fused_adamw(device))
    loss_fn = loss_fn or StepLoss(None)
    average = [p.detach().clone() for p in params] if ema_decay else None

    def step(batch) -> None:
        x, y, mask = (t.to(device, non_blocking=True) for t in batch[:3])
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = loss_fn(model, x, y, mask, weight)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, clip)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
        if average is not None:
            with torch.no_grad():
                torch._foreach_lerp_(average, params, 1 - ema_decay)
    return step
