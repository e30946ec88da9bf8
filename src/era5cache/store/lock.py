"""One writer per output folder: an advisory ``flock`` held for the whole job.

The kernel drops the lock when the process dies, so a crashed or killed run never leaves it
stuck. (``flock`` is not reliable on some network file systems.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import Era5CacheError

LOCK_NAME = ".era5cache.lock"


class LockedError(Era5CacheError):
    """Another run holds the output folder."""


@contextlib.contextmanager
def exclusive_writer(folder: Path) -> Iterator[None]:
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(f"{folder}: another era5cache preprocess is writing here "
                              f"({holder}); wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
