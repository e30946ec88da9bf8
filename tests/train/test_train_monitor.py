"""Throughput figures: FLOPs per sample against an analytic count, the cards' peaks, and the
sustained figures against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from era5cache.train.flops import flops_per_sample, peak_flops
from era5cache.train.throughput import sustained_figures


class _Linear(nn.Module):
    """(B, S, C, H, W) -> (B, C, H, W) through one linear map of the flattened window."""

    def __init__(self, seq_len, frame):
        super().__init__()
        self.frame = frame
        n = int(np.prod(frame))
        self.lin = nn.Linear(seq_len * n, n)

    def forward(self, x):
        return self.lin(x.flatten(1)).view(x.shape[0], *self.frame)


def test_flops_per_sample_is_the_analytic_count_and_leaves_the_model_alone():
    frame, seq = (2, 4, 6), 3
    m = _Linear(seq, frame)
    before = m.lin.weight.detach().clone()
    n_in, n_out = seq * 48, 48
    # forward 2 n_in n_out; backward: the weight's gradient only (the input needs none)
    assert flops_per_sample(m, seq, frame) == 4 * n_in * n_out
    assert m.lin.weight.grad is None and torch.equal(m.lin.weight, before)
    assert m.lin.weight.device.type == "cpu"


@pytest.mark.parametrize(("name", "tflops"), [
    ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989),
    ("NVIDIA GH200 480GB", 989), ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA A10", 125),
    ("NVIDIA L40S", 362), ("NVIDIA L4", 121), ("Some Future GPU", None)])
def test_peak_flops_by_card_name(name, tflops):
    assert peak_flops(name) == (None if tflops is None else tflops * 1e12)


def _epoch(step, gap, samples=8):
    return {"step_s": np.asarray(step, float), "gap_s": np.asarray([np.nan, *gap], float),
            "samples": samples, "gpu_util": [90.0, 100.0]}


def test_sustained_figures_leave_out_the_first_epoch_and_epoch_starts():
    first = _epoch([5.0, 5.0, 5.0], [1.0, 1.0])  # warm-up: left out
    e1 = _epoch([9.0, 0.1, 0.2, 0.3], [0.05, 0.05, 0.1])  # its first step left out
    e2 = _epoch([9.0, 0.1, 0.1], [0.1, 0.0])
    s = sustained_figures([first, e1, e2], world=2)
    period = np.array([0.15, 0.25, 0.4, 0.2, 0.1])
    assert s["steps"] == 5 and s["warmup"] == "the first epoch"
    assert s["samples_per_s"] == pytest.approx(5 * 8 * 2 / period.sum())
    assert s["step_ms_median"] == pytest.approx(200.0)
    assert s["step_ms_p95"] == pytest.approx(1e3 * np.percentile(period, 95))
    assert s["gap_share"] == pytest.approx(0.3 / period.sum())
    assert s["gpu_util"] == pytest.approx(95.0)


def test_sustained_figures_of_one_epoch_skip_its_first_fifth():
    e = _epoch([9.0] * 2 + [0.1] * 8, [0.0] * 9)
    s = sustained_figures([e])
    assert s["warmup"] == "the first 2 step(s)" and s["steps"] == 7
    assert s["step_ms_median"] == pytest.approx(100.0)
    assert sustained_figures([])["steps"] == 0

