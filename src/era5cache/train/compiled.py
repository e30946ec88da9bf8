"""The training step's loss under ``torch.compile``, checked once before training.

``torch.compile`` compiles lazily: a missing C compiler or an unsupported operation shows up
at the first step, as a long traceback in the middle of ``fit``. :class:`StepLoss` compiles
the model and the masked loss together (one graph: the loss's elementwise work fused with
the output projection's epilogue), runs one forward and backward on a batch of zeros of
the training shape before training starts (the compilation, timed as ``compile_s``), and
falls back to eager with a one-line reason (``fallback``) if that fails. Validation stays
eager, so its last, smaller batch does not recompile.
"""

from __future__ import annotations

import contextlib
import time

import torch

from .model import masked_mse


def step_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              mask: torch.Tensor | None, weight: torch.Tensor | None) -> torch.Tensor:
    """The training loss of one batch: ``masked_mse(model(x), y, mask, weight)``."""
    return masked_mse(model(x), y, mask, weight)


class StepLoss:
    """``step_loss``, compiled with ``mode`` (None: eager)."""

    def __init__(self, mode: str | None):
        self.requested = self.mode = mode
        self.fn = step_loss if mode is None else torch.compile(step_loss, mode=mode)
        self.compile_s: float | None = None
        self.fallback: str | None = None

    def __call__(self, model, x, y, mask, weight) -> torch.Tensor:
        return self.fn(model, x, y, mask, weight)

    def record(self) -> dict:
        """What ``torch.compile`` did, for the summary: the mode asked and used, the seconds
        the first compilation took, the fallback's reason, and all that in words."""
        if self.requested is None:
            words = "eager (torch.compile off)"
        elif self.fallback:
            words = f"eager: torch.compile failed ({self.fallback})"
        else:
            words = f"torch.compile mode {self.requested} ({self.compile_s:.1f} s to compile)"
        return {"requested": self.requested, "mode": self.mode, "compile_s": self.compile_s,
                "fallback": self.fallback, "words": words}

    def check(self, model: torch.nn.Module, batch: tuple, weight: torch.Tensor | None,
              context=contextlib.nullcontext) -> None:
        """Compiles on ``batch`` (forward and backward inside ``context``, e.g. the
        precision's autocast), then clears the gradients; on failure falls back to eager
        and keeps the reason."""
        if self.mode is None:
            return
        x, y, mask = batch
        t0 = time.perf_counter()
        try:
            with context():
                loss = self.fn(model, x, y, mask, weight)
            loss.backward()
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
        except Exception as e:  # any compiler failure: train eager instead
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.fallback = f"{type(e).__name__}: {reason[:200]}"
            self.fn, self.mode = step_loss, None
        else:
            self.compile_s = time.perf_counter() - t0
        finally:
            model.zero_grad(set_to_none=True)
