"""A Lightning profiler that does nothing, at no cost a call.

Lightning wraps every hook it calls in ``trainer.profiler.profile(name)``: about 50 calls a
training step with this project's callbacks. The default ``PassThroughProfiler`` does
nothing but still builds a generator-based context manager at each call; with the batch
transfer below (:meth:`.module.ForecastModule.transfer_batch_to_device`) that was ~0.2 ms
of the ~1.2 ms a step Lightning's loop costs over a bare loop on a 2-core CPU (the
framework-only harness: a two-parameter model, command/bare step ratio 2.08 -> 1.91,
four interleaved pairs). :class:`NoProfiler` returns one shared ``nullcontext``.
"""

from __future__ import annotations

import contextlib

from lightning.pytorch.profilers import PassThroughProfiler


class NoProfiler(PassThroughProfiler):
    """``PassThroughProfiler`` whose ``profile`` is one shared, reentrant ``nullcontext``."""

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:
        return self._nothing
