"""Read-ahead of file byte ranges in a background thread, so the disk works while the
consumer is busy elsewhere.

``posix_fadvise(POSIX_FADV_WILLNEED)`` asks the kernel to read a range into the page cache
without copying it anywhere; the thread issues it in pieces of ``piece_bytes`` (the kernel
starts the I/O and returns before it is done), one request list at a time, in the order
they were submitted. Where ``posix_fadvise`` does not exist (not Linux), nothing is read
ahead and the reader reads on demand as before.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable

PIECE_BYTES = 8 << 20


class ReadAhead:
    """A daemon thread that reads ahead the ranges handed to :meth:`submit`; :meth:`close`
    stops it (ranges still queued are dropped)."""

    def __init__(self, path: str | os.PathLike, piece_bytes: int = PIECE_BYTES):
        self.path, self.piece_bytes = os.fspath(path), int(piece_bytes)
        self.enabled = hasattr(os, "posix_fadvise")
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.requested_bytes = 0

    def submit(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Read ``(offset, length)`` ranges ahead, after those submitted before."""
        if not self.enabled:
            return
        ranges = list(ranges)
        self.requested_bytes += sum(n for _, n in ranges)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="era5cache-readahead")
            self._thread.start()
        self._queue.put(ranges)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while not self._stop.is_set():
                ranges = self._queue.get()
                if ranges is None:
                    return
                for offset, length in ranges:
                    end = offset + length
                    while offset < end and not self._stop.is_set():
                        n = min(self.piece_bytes, end - offset)
                        os.posix_fadvise(fd, offset, n, os.POSIX_FADV_WILLNEED)
                        offset += n
        finally:
            os.close(fd)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def evict(path: str | os.PathLike) -> None:
    """Write ``path``'s dirty pages back, then drop its pages from the page cache
    (``POSIX_FADV_DONTNEED``), so that the next read comes from the disk: the benchmarks'
    cold start."""
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
