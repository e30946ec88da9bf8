"""How much memory this process can still fill: the machine's, or its memory cgroup's where
one limits it (containers, batch schedulers such as SLURM, ``bench loader --memory-limit``).

Page cache counts as free (the kernel drops clean pages when a process needs them);
anonymous memory and shared memory (``/dev/shm``, DataLoader batches) do not.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED = 1 << 60


def own_cgroup(controller: str) -> tuple[Path, bool] | None:
    """(folder of this process's cgroup for ``controller``, whether it is cgroup v2: one
    unified hierarchy), or None where there is none."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return CGROUP_ROOT / controller / path.lstrip("/"), False
    for line in lines:  # v2: "0::/path"
        if line.startswith("0::") and (CGROUP_ROOT / "cgroup.controllers").exists():
            return CGROUP_ROOT / line[3:].lstrip("/"), True
    return None


def own_memory_cgroup() -> tuple[Path, str] | None:
    """(folder of this process's memory cgroup, its limit file: ``memory.limit_in_bytes`` on
    cgroup v1, ``memory.max`` on v2), or None where there is none."""
    found = own_cgroup("memory")
    if found is None:
        return None
    folder, v2 = found
    return folder, "memory.max" if v2 else "memory.limit_in_bytes"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return _UNLIMITED if text == "max" else int(text)


def _stat(path: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (ln.split() for ln in path.read_text().splitlines())}
    except (OSError, ValueError):
        return {}


def cgroup_available() -> int | None:
    """Bytes left under this process's cgroup limit (the tightest of it and its parents on
    v1's ``hierarchical_memory_limit``), less its anonymous and shared memory; None without
    a limit."""
    found = own_memory_cgroup()
    if found is None:
        return None
    folder, limit_file = found
    limit = _read_int(folder / limit_file)
    stat = _stat(folder / "memory.stat")
    if limit_file == "memory.limit_in_bytes":  # v1
        limits = [x for x in (limit, stat.get("hierarchical_memory_limit")) if x is not None]
        limit = min(limits) if limits else None
        used = stat.get("total_rss", 0) + stat.get("total_shmem", 0)
    else:
        used = stat.get("anon", 0) + stat.get("shmem", 0)
    if limit is None or limit >= _UNLIMITED // 2:
        return None
    return max(0, limit - used)


def available_memory() -> int:
    """Bytes this process can still fill: the machine's available memory, or what its
    memory cgroup leaves where that is less."""
    try:
        import psutil

        machine = int(psutil.virtual_memory().available)
    except ImportError:
        machine = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    group = cgroup_available()
    return machine if group is None else min(machine, group)
