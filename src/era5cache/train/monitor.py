"""Training throughput: every step timed, per-epoch figures and the sustained ones.

Each step is timed from its ``on_train_batch_start`` to the end of its
``on_train_batch_end`` (forward, backward, clipping, optimizer, EMA: the monitor is the last
callback), and the gap between steps from the previous step's end to its start (fetching the
batch and the framework's bookkeeping; with resident data there is no loader to wait for).
On CUDA the marks are CUDA events on the current stream, so steps and gaps are the GPU's:
a gap is time the GPU had nothing of the step to do. On a CPU they are host clock readings.

The sustained figures (:meth:`FeedMonitor.sustained`) leave out the first epoch (start-up,
``torch.compile``, warm-up) when there are later ones, else the first fifth of the steps,
and every epoch boundary (timed apart: ``validation_s``, and ``epoch_ends_s`` for the rest,
checkpoints mostly). Model FLOP utilisation (MFU) = samples/s per device x FLOPs per sample
(:func:`.flops.flops_per_sample`) / the card's dense bf16 peak (:func:`.flops.peak_flops`).
The clocks and the figures of timed steps, free of Lightning, are in :mod:`.throughput`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from .flops import flops_per_sample, peak_flops
from .throughput import CudaClock, HostClock, clock_for, gpu_utilisation, sustained_figures


class FeedMonitor(Callback):
    """Times every training step (see the module's docstring); ``history`` holds the
    per-epoch figures, :meth:`sustained` the run's."""

    def __init__(self, util_every_s: float = 1.0):
        self.history: list[dict] = []
        self.util_every_s = util_every_s
        self._epochs: list[dict] = []
        self._marks: list = []
        self._clock = HostClock()
        self._flops: float | None = None
        self._peak: float | None = None
        self._validation_s = 0.0
        self._epoch_ends_s = 0.0
        self._last_end: tuple[float, float] | None = None  # (host time, validation_s then)
        self._world = 1

    def on_fit_start(self, trainer, pl_module):
        cuda = pl_module.device.type == "cuda"
        self._clock = clock_for(pl_module.device)
        self._peak = peak_flops(torch.cuda.get_device_name(pl_module.device)) if cuda else None
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "train_ds"):
            ds = dm.train_ds
            self._flops = flops_per_sample(pl_module.model, ds.seq_len, ds.frame_shape,
                                           pl_module.loss_weight)
        self._world = trainer.world_size

    def on_train_epoch_start(self, trainer, pl_module):
        self._marks = []
        self._util: list[float] = []
        self._util_t = time.perf_counter()
        self._samples = 0
        self._epoch_t0 = time.perf_counter()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0 and self._last_end is not None:  # the time between epochs
            t, val = self._last_end
            self._epoch_ends_s += time.perf_counter() - t - (self._validation_s - val)
        self._marks.append(self._clock.mark())
        self._samples = int(batch[0].shape[0])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._marks.append(self._clock.mark())
        now = time.perf_counter()
        self._last_end = (now, self._validation_s)
        if isinstance(self._clock, CudaClock) and now - self._util_t >= self.util_every_s:
            self._util_t = now
            u = gpu_utilisation()
            if u is not None:
                self._util.append(u)

    def on_validation_start(self, trainer, pl_module):
        self._val_t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._validation_s += time.perf_counter() - self._val_t0

    def on_train_epoch_end(self, trainer, pl_module):
        if len(self._marks) < 2:
            return
        t = self._clock.seconds(self._marks)
        starts, ends = t[0::2], t[1::2]
        gap = np.concatenate([[np.nan], starts[1:] - ends[:-1]])
        epoch = {"step_s": ends - starts, "gap_s": gap, "samples": self._samples,
                 "gpu_util": self._util}
        self._epochs.append(epoch)
        wall = time.perf_counter() - self._epoch_t0
        stats = {"samples_per_s": self._samples * len(starts) * self._world / max(wall, 1e-9),
                 "step_ms": 1e3 * wall / len(starts),
                 "data_wait_share": float(np.nansum(gap) / max(t[-1] - t[0], 1e-9))}
        if torch.cuda.is_available():
            stats["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            if self._util:
                stats["gpu_util"] = float(np.mean(self._util))
        self.history.append(stats | {"epoch": trainer.current_epoch})
        for k, v in stats.items():
            pl_module.log(f"perf/{k}", v, prog_bar=k in ("samples_per_s", "data_wait_share"),
                          on_epoch=True, sync_dist=False)

    def sustained(self) -> dict:
        """The sustained figures (:func:`sustained_figures`) with FLOPs per sample, MFU
        (None where the card's peak is unknown), peak GPU memory (GB), the seconds spent
        in validation and the other seconds between epochs (``epoch_ends_s``: checkpoints,
        the next epoch's permutation)."""
        out = sustained_figures(self._epochs, self._world)
        out["flops_per_sample"] = self._flops
        sps = out.get("samples_per_s")
        out["mfu"] = (sps / self._world * self._flops / self._peak
                      if sps and self._flops and self._peak else None)
        if torch.cuda.is_available() and self.history:
            out["gpu_mem_gb"] = max(h.get("gpu_mem_gb", 0.0) for h in self.history)
        out["validation_s"] = self._validation_s
        out["epoch_ends_s"] = self._epoch_ends_s
        return out

    def summary(self) -> str:
        """The sustained figures in one line."""
        s = self.sustained()
        if not s.get("steps"):
            return "no training steps timed"
        out = (f"sustained: {s['samples_per_s']:,.0f} samples/s, step "
               f"{s['step_ms_median']:.1f} ms median, {s['step_ms_p95']:.1f} ms p95, "
               f"{100 * s['gap_share']:.1f}% of the time between steps")
        if s["mfu"] is not None:
            out += f", MFU {100 * s['mfu']:.1f}%"
        if s.get("gpu_util") is not None:
            out += f", GPU utilisation {s['gpu_util']:.0f}%"
        if s.get("gpu_mem_gb") is not None:
            out += f", GPU memory {s['gpu_mem_gb']:.1f} GB"
        return out + (f" ({s['steps']} steps after {s['warmup']}; apart: validation "
                      f"{s['validation_s']:.1f} s, other work between epochs "
                      f"{s['epoch_ends_s']:.1f} s)")
