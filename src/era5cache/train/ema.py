"""Exponential moving average of the weights, without a host synchronisation per step.

Lightning's ``WeightAveraging`` keeps the average in torch's ``AveragedModel``, whose
``update_parameters`` reads its ``n_averaged`` counter (a device tensor) twice a step to
decide between copying and averaging (two host synchronisations on a GPU), walks the
parameters and buffers and groups them by device again every step (~1 ms of Python on a
CPU). :class:`EMA` is that callback with the update replaced: the averaged and current
tensors are paired once per fit, the counter is read once per fit, and each optimizer step
is one ``torch._foreach_lerp_`` (through torch's ``get_ema_multi_avg_fn``) plus an
in-place increment of ``n_averaged``. Everything else is ``WeightAveraging``'s: the average
is swapped in for validation, saved as the checkpoint's ``state_dict`` (the raw weights
under ``current_model_state``, ``n_averaged`` under ``averaging_state``), and copied into
the model when training ends.

The recurrence, per parameter and buffer: ``avg_0 = w_1`` after the first optimizer step,
``avg_k = decay * avg_{k-1} + (1 - decay) * w_k``.
"""

from __future__ import annotations

import itertools

import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach() for t in itertools.chain(module.parameters(), module.buffers())]


def _grouped(averaged: list[torch.Tensor], current: list[torch.Tensor]
             ) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """The pairs grouped by (device, dtype), as the foreach kernels want them."""
    groups: dict[tuple, tuple[list, list]] = {}
    for a, c in zip(averaged, current, strict=True):
        g = groups.setdefault((a.device, a.dtype), ([], []))
        g[0].append(a)
        g[1].append(c)
    return list(groups.values())


class EMA(WeightAveraging):
    """``WeightAveraging`` with an exponential average (``decay`` in [0, 1)) updated after
    every optimizer step without reading device memory."""

    def __init__(self, decay: float):
        self.decay = decay
        self._lerp = get_ema_multi_avg_fn(decay)
        super().__init__(use_buffers=True, multi_avg_fn=self._lerp)
        self._groups: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
        self._averaged = False

    def on_train_start(self, trainer, pl_module):
        """Pairs the averaged and current tensors (after the module has moved to its device
        and any checkpoint was restored) and reads ``n_averaged`` once."""
        model = self._average_model
        if model is None:
            return
        self._groups = _grouped(_tensors(model.module), _tensors(pl_module))
        self._averaged = bool(model.n_averaged > 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step <= self._latest_update_step:  # accumulating gradients
            return
        self._update()
        self._latest_update_step = trainer.global_step

    @torch.no_grad()
    def _update(self) -> None:
        for averaged, current in self._groups:
            if self._averaged:
                self._lerp(averaged, current, None)
            else:
                for a, c in zip(averaged, current, strict=True):
                    a.copy_(c)
        self._averaged = True
        self._average_model.n_averaged += 1

    def on_train_end(self, trainer, pl_module):
        super().on_train_end(trainer, pl_module)
        self._groups = []
