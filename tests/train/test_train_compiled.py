"""The compiled training step equals the eager one; a compiler failure trains eager and
says why in one line."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import TINY, run_cli, train_yaml

from era5cache.config.model import ModelConfig
from era5cache.train.compiled import StepLoss
from era5cache.train.model import RATransformer


@pytest.mark.slow
def test_compiled_step_loss_and_gradients_equal_eager():
    torch.manual_seed(0)
    model = RATransformer(ModelConfig(channels=2, **TINY, dropout=0.0))
    torch.nn.init.normal_(model.head.weight, std=1e-3)  # not persistence: gradients flow
    x, y = torch.randn(4, 2, 2, 80, 180), torch.randn(4, 2, 80, 180)
    mask = torch.rand(4, 2, 80, 180) > 0.1
    weight = torch.tensor([2.0, 0.5]).view(-1, 1, 1)
    results = []
    for mode in (None, "default"):
        step = StepLoss(mode)
        step.check(model, (torch.zeros_like(x), torch.zeros_like(y), mask), weight)
        assert step.fallback is None and step.mode == mode
        assert (step.compile_s is None) == (mode is None)
        assert all(p.grad is None for p in model.parameters())  # the check left none
        loss = step(model, x, y, mask, weight)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        model.zero_grad(set_to_none=True)
    (eager, g_eager), (compiled, g_compiled) = results
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-7)
    for a, b in zip(g_compiled, g_eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_compiler_failure_trains_eager_with_a_one_line_reason(small_cache, tmp_path):
    cfg = train_yaml(tmp_path, small_cache, epochs=1, ema=0, trainer=", compile: true")
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler")}
    r = run_cli("train", cfg, env=env)
    lines = [ln for ln in r.stdout.splitlines() if "torch.compile failed" in ln]
    assert lines and "no-such-compiler" in lines[0] and lines[0].endswith("training eager")
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["compile"]["requested"] == "default" and s["compile"]["mode"] is None
    assert "InvalidCxxCompiler" in s["compile"]["fallback"]
    assert s["global_step"] == (14 * 4 - 2) // 8  # and it trained
