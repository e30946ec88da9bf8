"""A memory cgroup for benchmarks that must see a machine smaller than this one.

:class:`MemoryCgroup` makes a child of the process's own memory cgroup (v1:
``/sys/fs/cgroup/memory/...`` with ``memory.limit_in_bytes``; v2: ``memory.max``), moves this
process into it (its children, DataLoader workers included, inherit it), and on exit moves it
back and removes the folder. Page cache that a process in the group reads is charged to the
group, so a file bigger than the limit cannot stay cached: the kernel evicts its pages as the
group reads more. Needs root (or a delegated cgroup); a one-line :class:`ResourceError`
otherwise.
"""

from __future__ import annotations

import os

from ..errors import ResourceError
from ..serve.memory import own_memory_cgroup


class MemoryCgroup:
    """``with MemoryCgroup(limit_bytes):`` runs the block (and the processes it starts) with
    at most ``limit_bytes`` of memory, page cache included."""

    def __init__(self, limit_bytes: int, name: str | None = None):
        self.limit = int(limit_bytes)
        found = own_memory_cgroup()
        if found is None:
            raise ResourceError("no memory cgroup found in /proc/self/cgroup; run without "
                                "--memory-limit")
        parent, self._limit_file = found
        self.parent = parent
        self.path = parent / (name or f"era5cache-bench-{os.getpid()}")

    def __enter__(self) -> MemoryCgroup:
        try:
            self.path.mkdir()
            (self.path / self._limit_file).write_text(str(self.limit))
            (self.path / "cgroup.procs").write_text(str(os.getpid()))
        except OSError as exc:
            self._remove()
            raise ResourceError(f"{self.path}: cannot make a memory cgroup ({exc.strerror}); "
                                "run as root, or without --memory-limit") from exc
        return self

    def usage(self) -> int:
        """Bytes charged to the group now (page cache included)."""
        name = ("memory.usage_in_bytes" if self._limit_file == "memory.limit_in_bytes"
                else "memory.current")
        return int((self.path / name).read_text())

    def peak(self) -> int | None:
        """Largest charge so far, where the kernel keeps it."""
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            p = self.path / name
            if p.exists():
                return int(p.read_text())
        return None

    def __exit__(self, *exc) -> None:
        try:
            (self.parent / "cgroup.procs").write_text(str(os.getpid()))
        finally:
            self._remove()

    def _remove(self) -> None:
        """Remove the folder once its processes have left (exited workers may linger a
        moment)."""
        import time

        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
