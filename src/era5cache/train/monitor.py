"""Training throughput monitor: samples/s, step time, share of wall time waiting for data,
GPU utilisation and memory, logged every epoch and summarised at the end."""

from __future__ import annotations

import time

import torch
from lightning.pytorch.callbacks import Callback


class FeedMonitor(Callback):
    """Host-side timing of the training loop.

    The wait for data is the time from the end of one ``training_step`` (after backward and
    the optimizer step) to the start of the next: fetching, collating and moving the batch.
    """

    def __init__(self):
        self.history: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_t0 = time.perf_counter()
        self._last_end = self._epoch_t0
        self._wait = 0.0
        self._samples = 0
        self._steps = 0
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._wait += time.perf_counter() - self._last_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += int(batch[0].shape[0])
        self._steps += 1
        self._last_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - self._epoch_t0
        stats = {
            "samples_per_s": self._samples * trainer.world_size / max(wall, 1e-9),
            "step_ms": 1000 * wall / max(self._steps, 1),
            "data_wait_share": self._wait / max(wall, 1e-9),
        }
        if torch.cuda.is_available():
            stats["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            try:
                stats["gpu_util"] = float(torch.cuda.utilization())
            except Exception:  # pynvml missing: utilisation unavailable
                pass
        self.history.append(stats | {"epoch": trainer.current_epoch})
        for k, v in stats.items():
            pl_module.log(f"perf/{k}", v, prog_bar=k in ("samples_per_s", "data_wait_share"),
                          on_epoch=True, sync_dist=False)

    def summary(self) -> str:
        if not self.history:
            return "no training epochs ran"
        h = self.history[1:] or self.history  # the first epoch includes warm-up
        sps = sum(x["samples_per_s"] for x in h) / len(h)
        wait = sum(x["data_wait_share"] for x in h) / len(h)
        step = sum(x["step_ms"] for x in h) / len(h)
        out = (f"throughput {sps:,.0f} samples/s, step {step:.1f} ms, "
               f"waiting for data {100 * wait:.1f}% of wall time")
        if "gpu_mem_gb" in h[-1]:
            out += f", GPU memory {h[-1]['gpu_mem_gb']:.1f} GB"
        if "gpu_util" in h[-1]:
            out += f", GPU utilisation {h[-1]['gpu_util']:.0f}%"
        return out + f" (mean over {len(h)} epoch(s) after the first)"
