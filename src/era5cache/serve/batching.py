"""How ``CachedERA5Dataset`` builds a batch: groups of windows that stay in the CPU cache,
shared among threads, written into buffers that are reused once nothing uses a batch.

Pure numpy/torch helpers; the Dataset (:mod:`.dataset`) decides what goes into them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..process import PerProcess

# One load at a time per process (it changes torch's thread setting and uses the pool), and
# the threads sharing a batch's groups: made anew in a forked child (a lock held by another
# thread at the fork would stay held there; the parent's threads do not exist there).
LOAD_LOCK: PerProcess[threading.Lock] = PerProcess(threading.Lock)
_HELPERS: PerProcess[tuple[ThreadPoolExecutor, int] | None] = PerProcess(lambda: None)


class Batch(Sequence):
    """The batched tensors (taken whole by ``collate``), seen as a sequence of per-sample
    views for the default collate; the views are made only when asked for."""

    def __init__(self, batched: tuple):
        self.batched = batched

    def __len__(self) -> int:
        return int(self.batched[0].shape[0])

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        return tuple(t[k] for t in self.batched)


def each_group(work, groups: list[tuple[int, int]], threads: int) -> None:
    """``work(a, b)`` for every group, on up to ``threads`` threads (this one included).

    Threads take the next group as they become free, so a thread that the OS runs less
    (another process busy on its core) takes fewer groups and the batch waits at most for
    the group it is on. numpy and torch release the GIL in the per-window kernels. The
    helpers run in the caller's inference mode (thread-local in torch): tensors made by a
    caller under ``torch.inference_mode`` (Lightning's validation) are inference tensors,
    which only code in that mode may change in place.
    """
    threads = min(threads, len(groups))
    if threads <= 1:
        for g in groups:
            work(*g)
        return
    helpers = _HELPERS.get()
    if helpers is None or helpers[1] < threads - 1:
        if helpers is not None:
            helpers[0].shutdown(wait=False)
        helpers = (ThreadPoolExecutor(threads - 1, thread_name_prefix="era5cache-load"),
                   threads - 1)
        _HELPERS.set(helpers)
    pool = helpers[0]
    todo, lock = iter(groups), threading.Lock()
    inference = torch.is_inference_mode_enabled()

    def helper() -> None:
        with torch.inference_mode(inference):
            drain()

    def drain() -> None:
        while True:
            with lock:
                g = next(todo, None)
            if g is None:
                return
            work(*g)

    running = [pool.submit(helper) for _ in range(threads - 1)]
    try:
        drain()
    finally:
        for h in running:
            h.result()


def groups_of(n: int, window_bytes: int, group_bytes: int = 2 << 20):
    """(a, b) ranges of ``n`` windows, ~``group_bytes`` each: what stays in the CPU cache
    between the passes over a group."""
    step = max(1, group_bytes // window_bytes)
    for a in range(0, n, step):
        yield a, min(n, a + step)


def shared_empty(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised float32 tensor in shared memory (no copy, unlike ``share_memory_``)."""
    storage = torch.UntypedStorage._new_shared(4 * int(np.prod(shape)))
    return torch.empty(0, dtype=torch.float32).set_(storage, 0, shape)


class BufferPool:
    """Batch buffers of one process, reused once the batch built in them is dropped.

    :meth:`take` hands out fresh views of pooled arrays and keeps weak references to the
    views: a tensor made from a view (``torch.from_numpy``), and every tensor or view made
    from that one, keeps the view alive; once all are gone the view is freed and its buffer
    can be taken again. A batch kept by the caller, or any part of it, is never overwritten.
    Reuse saves the page faults of a fresh allocation, most of the cost of a large batch.
    """

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._entries: list[list] = []  # [x, y, weakref to x's view, weakref to y's view]

    def take(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...]
             ) -> tuple[np.ndarray, np.ndarray]:
        """Two float32 arrays shaped ``x_shape`` and ``y_shape``, uninitialised."""
        for entry in self._entries:
            x, y, wx, wy = entry
            if x.shape == x_shape and y.shape == y_shape and wx() is None and wy() is None:
                break
        else:
            x, y = np.empty(x_shape, np.float32), np.empty(y_shape, np.float32)
            entry = [x, y, None, None]
            self._entries = self._entries[-(self.keep - 1):] + [entry]  # any sizes
        vx, vy = x.view(), y.view()
        entry[2], entry[3] = weakref.ref(vx), weakref.ref(vy)
        return vx, vy

