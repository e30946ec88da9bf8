"""The job's worker environment applied in each local worker as it starts (a Dask
``WorkerPlugin``): the malloc thresholds of :func:`era5cache.store.forkserver.worker_environ`,
which a worker forked from the fork server would otherwise take from the server."""

from __future__ import annotations

from distributed import WorkerPlugin

from .forkserver import apply_malloc_environ


class MallocSettings(WorkerPlugin):
    """Applies ``env``'s malloc thresholds in each worker (``applied``: whether glibc took
    them)."""

    name = "era5cache-malloc"

    def __init__(self, env: dict[str, str]):
        self.env = dict(env)
        self.applied = False

    def setup(self, worker) -> None:
        self.applied = apply_malloc_environ(self.env)
