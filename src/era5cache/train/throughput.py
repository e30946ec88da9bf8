"""Step timing without Lightning: the clock that times steps (host readings, or CUDA
events on a GPU), NVML's utilisation, and the figures of timed steps (samples/s, median
and p95 step, the share between steps) over the epochs a run keeps. Used by the training
command's monitor (:mod:`.monitor`) and by ``era5cache bench train``.
"""

from __future__ import annotations

import time

import numpy as np
import torch


class HostClock:
    """Host clock readings (s)."""

    def mark(self) -> float:
        return time.perf_counter()

    def seconds(self, marks: list) -> np.ndarray:
        return np.asarray(marks, dtype=np.float64)


class CudaClock:
    """CUDA events on the current stream; ``seconds`` synchronises once."""

    def mark(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, marks: list) -> np.ndarray:
        torch.cuda.synchronize()
        return np.array([marks[0].elapsed_time(e) for e in marks]) / 1e3


def clock_for(device: torch.device) -> HostClock | CudaClock:
    """The clock that times steps on ``device``: CUDA events on a GPU, else the host's."""
    return CudaClock() if device.type == "cuda" else HostClock()


def gpu_utilisation() -> float | None:
    """NVML's utilisation of the current GPU (%), None without CUDA or pynvml."""
    try:
        return float(torch.cuda.utilization())
    except Exception:  # no pynvml / NVML: not measured
        return None


def step_figures(step_s: np.ndarray, gap_s: np.ndarray, samples: int, world: int = 1,
                 util: list[float] | None = None) -> dict:
    """Figures of timed steps: ``step_s`` each step's seconds, ``gap_s`` the seconds before
    it, ``samples`` per step and rank. Samples/s (all ranks), median and p95 step period
    (gap + step) in ms, the share of time in gaps, mean GPU utilisation (%)."""
    if step_s.size == 0:
        return {"steps": 0}
    period = step_s + gap_s
    return {"steps": int(step_s.size),
            "samples_per_s": samples * step_s.size * world / period.sum(),
            "step_ms_median": 1e3 * float(np.median(period)),
            "step_ms_p95": 1e3 * float(np.percentile(period, 95)),
            "gap_share": float(gap_s.sum() / period.sum()),
            "gpu_util": float(np.mean(util)) if util else None}


def sustained_figures(epochs: list[dict], world: int = 1) -> dict:
    """:func:`step_figures` of ``epochs`` (each with ``step_s`` and ``gap_s`` arrays, the
    gap before each step, the first NaN; ``samples`` per step; ``gpu_util`` samples) over
    the epochs after the first (or the last four fifths of a single one), each epoch's
    first step left out."""
    if len(epochs) > 1:
        kept, warmup = epochs[1:], "the first epoch"
    else:
        n = len(epochs[0]["step_s"]) if epochs else 0
        skip = max(1, n // 5)
        kept = [{k: (v[skip:] if isinstance(v, np.ndarray) else v) for k, v in e.items()}
                for e in epochs]
        warmup = f"the first {skip} step(s)"
    step = np.concatenate([e["step_s"][1:] for e in kept]) if kept else np.array([])
    gap = np.concatenate([e["gap_s"][1:] for e in kept]) if kept else np.array([])
    samples = kept[0]["samples"] if kept else 0
    util = [u for e in kept for u in e.get("gpu_util", [])]
    return step_figures(step, gap, samples, world, util) | {"warmup": warmup}
