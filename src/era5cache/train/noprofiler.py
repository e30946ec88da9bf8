"""A Lightning profiler that does nothing, at no cost a call.

Lightning wraps every hook it calls in ``trainer.profiler.profile(name)``: about 50 calls a
training step with this project's callbacks. The default ``PassThroughProfiler`` does
nothing but still builds a generator-based context manager at each call. Together with
resident batches left where they are (``ERA5DataModule.transfer_batch_to_device``) that
was ~0.18 ms a step on a 2-core CPU, of the ~1.5 ms Lightning's loop costs over a bare
loop (BENCHMARKS.md, 2026-12-08: with a two-parameter model the command/bare step ratio
went 2.08 -> 1.91, four alternated pairs). :class:`NoProfiler` returns one shared
``nullcontext``.
"""

from __future__ import annotations

import contextlib

from lightning.pytorch.profilers import PassThroughProfiler


class NoProfiler(PassThroughProfiler):
    """``PassThroughProfiler`` whose ``profile`` is one shared, reentrant ``nullcontext``."""

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:
        return self._nothing
