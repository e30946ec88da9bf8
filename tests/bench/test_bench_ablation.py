"""``bench train --ablate`` times what it names: each variant is the model or step it says,
and each of its steps trains (or, without the optimizer, only computes gradients)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from conftest import TINY

from era5cache.bench.ablation import VARIANTS, ablation, variant_steps
from era5cache.bench.train import timed_steps
from era5cache.config.model import ModelConfig


def test_each_variant_changes_one_thing_and_the_rows_follow_the_full_step():
    base = ModelConfig(channels=2, **TINY)
    for name, change, kind in VARIANTS:
        cfg = dataclasses.replace(base, **change)
        differs = {f.name for f in dataclasses.fields(base)
                   if getattr(cfg, f.name) != getattr(base, f.name)}
        assert differs == set(change), name
        assert (kind == "step") == bool(change) or name == "full step", name
    torch.manual_seed(0)
    x, y = torch.randn(2, 2, 2, 80, 180), torch.randn(2, 2, 80, 180)
    mask = torch.rand(2, 2, 80, 180) > 0.1
    rows = ablation((x, y, mask), base, torch.device("cpu"), None, timed_steps, 0, 2, rounds=2)
    assert [r["name"] for r in rows] == [v[0] for v in VARIANTS]
    assert rows[0]["delta_ms"] == 0.0
    for r in rows:
        assert np.isfinite(r["step_ms"]) and r["step_ms"] > 0
        assert r["delta_ms"] == r["step_ms"] - rows[0]["step_ms"]


def test_each_variant_step_trains_or_only_computes_gradients():
    torch.manual_seed(1)
    x, y = torch.randn(2, 2, 2, 80, 180), torch.randn(2, 2, 80, 180)
    mask = torch.rand(2, 2, 80, 180) > 0.1
    base = ModelConfig(channels=2, **TINY)
    for (name, _, kind), (model, step) in zip(VARIANTS, variant_steps(base, torch.device("cpu"),
                                                                      None), strict=True):
        torch.nn.init.normal_(model.head.weight, std=1e-3)  # not persistence: gradients flow
        before = [p.detach().clone() for p in model.parameters()]
        step((x, y, mask))
        moved = any(not torch.equal(a, p) for a, p in zip(before, model.parameters(),
                                                           strict=True))
        assert moved == (kind != "no optimizer"), name
        assert all(p.grad is not None for p in model.head.parameters()), name
