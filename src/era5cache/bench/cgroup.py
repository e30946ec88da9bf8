"""Cgroups for benchmarks that must see a machine smaller or slower than this one.

:class:`MemoryCgroup` makes a child of the process's own memory cgroup (v1:
``/sys/fs/cgroup/memory/...`` with ``memory.limit_in_bytes``; v2: ``memory.max``), moves this
process into it (its children, DataLoader workers included, inherit it), and on exit moves it
back and removes the folder. Page cache that a process in the group reads is charged to the
group, so a file bigger than the limit cannot stay cached: the kernel evicts its pages as the
group reads more.

:class:`ReadThrottle` does the same with the block I/O controller (v1
``blkio.throttle.read_bps_device``; v2 ``io.max``): reads from the disk that holds a file,
read-ahead included, go no faster than a given rate. It stands in for slower storage (a
network file system, a SATA disk) on a machine whose disk outruns its cores.

Both need root (or a delegated cgroup): a one-line :class:`ResourceError` otherwise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import ResourceError
from ..serve.memory import own_cgroup, own_memory_cgroup


class _ChildCgroup:
    """A child cgroup with ``settings`` (file name -> value) that this process joins for the
    ``with`` block."""

    def __init__(self, parent: Path, settings: dict[str, str], what: str):
        self.parent, self.settings, self.what = parent, settings, what
        self.path = parent / f"era5cache-bench-{os.getpid()}"

    def __enter__(self):
        try:
            self.path.mkdir()
            for name, value in self.settings.items():
                (self.path / name).write_text(value)
            (self.path / "cgroup.procs").write_text(str(os.getpid()))
        except OSError as exc:
            self._remove()
            raise ResourceError(f"{self.path}: cannot make a {self.what} cgroup "
                                f"({exc.strerror}); run as root") from exc
        return self

    def __exit__(self, *exc) -> None:
        try:
            (self.parent / "cgroup.procs").write_text(str(os.getpid()))
        finally:
            self._remove()

    def _remove(self) -> None:
        """Remove the folder once its processes have left (exited workers may linger a
        moment)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


class MemoryCgroup(_ChildCgroup):
    """``with MemoryCgroup(limit_bytes):`` runs the block (and the processes it starts) with
    at most ``limit_bytes`` of memory, page cache included."""

    def __init__(self, limit_bytes: int):
        found = own_memory_cgroup()
        if found is None:
            raise ResourceError("no memory cgroup found in /proc/self/cgroup; run without "
                                "--memory-limit")
        parent, limit_file = found
        self.limit = int(limit_bytes)
        super().__init__(parent, {limit_file: str(self.limit)}, "memory")

    def peak(self) -> int | None:
        """Largest charge so far, where the kernel keeps it."""
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            p = self.path / name
            if p.exists():
                return int(p.read_text())
        return None


def disk_of(path: str | os.PathLike) -> str:
    """``MAJ:MIN`` of the whole disk that holds ``path`` (a partition's parent)."""
    dev = os.stat(path).st_dev
    node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if (node / "partition").exists():
        return (node.resolve().parent / "dev").read_text().strip()
    return f"{os.major(dev)}:{os.minor(dev)}"


class ReadThrottle(_ChildCgroup):
    """``with ReadThrottle(path, bps):`` reads from the disk holding ``path`` at most ``bps``
    bytes a second, in this process and those it starts."""

    def __init__(self, path: str | os.PathLike, bps: int):
        found = own_cgroup("blkio")
        if found is None:
            raise ResourceError("no block I/O cgroup found in /proc/self/cgroup; run "
                                "without --read-bps")
        parent, v2 = found
        disk = disk_of(path)
        setting = ({"io.max": f"{disk} rbps={int(bps)}"} if v2
                   else {"blkio.throttle.read_bps_device": f"{disk} {int(bps)}"})
        super().__init__(parent, setting, "block I/O")
