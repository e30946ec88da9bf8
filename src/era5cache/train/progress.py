"""The training progress bar, refreshed by time rather than every step.

Lightning's ``TQDMProgressBar`` redraws the bar and converts the logged metrics to Python
numbers every ``refresh_rate`` steps (default 1): on a CPU that cost 5 ms a step of a tiny
model (43 ms), on a GPU each conversion is a host synchronisation. This bar redraws the
training bar at most every ``interval`` seconds (and at an epoch's last step).
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import TQDMProgressBar


class TimedProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` whose training bar refreshes at most every ``interval`` s."""

    def __init__(self, interval: float = 0.5):
        super().__init__()
        self.interval = interval
        self._last = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.monotonic()
        last_step = batch_idx + 1 >= self.total_train_batches
        if last_step or now - self._last >= self.interval:
            self._last = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
