"""Shared helpers for the benchmarks: timing, process-tree memory sampling, tables."""

from __future__ import annotations

import json
import platform
import subprocess
import threading
import time
from pathlib import Path

import psutil


def cycle(batches):
    """The batches of an iterable (a DataLoader, resident batches) again and again, each
    pass a new iteration (a new shuffle)."""
    while True:
        yield from batches


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


class TreeMemory:
    """Memory of a process and its descendants: ``peak_max``, the largest peak RSS of any
    descendant (the kernel's high-water mark ``VmHWM``, so a peak between two samples
    counts), and ``peak_total``, the largest sum of the RSS of all of them at one sample.

    Sampled every ``interval`` seconds; the high-water mark makes a coarse interval enough.
    """

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.peak_total = 0
        self.peak_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while True:
            tree = _descendants(self.pid)
            status = [s for s in map(_status_kb, tree) if s]
            if status:
                self.peak_total = max(self.peak_total,
                                      1024 * sum(s.get("VmRSS", 0) for s in status))
                self.peak_max = max(self.peak_max,
                                    max((1024 * s.get("VmHWM", 0) for s in status[1:]),
                                        default=0))
            if self._stop.wait(self.interval):
                return


def _descendants(pid: int) -> list[int]:
    """``pid`` then its descendants (none once it has exited)."""
    try:
        root = psutil.Process(pid)
        return [pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def _status_kb(pid: int) -> dict[str, int]:
    """The kB fields of ``/proc/PID/status`` (VmRSS, VmHWM, ...); empty once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value.endswith("kB"):
            fields[key] = int(value.split()[0])
    return fields


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, TreeMemory]:
    """Run a command; wall seconds and the memory of its process tree. Raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)
    with TreeMemory(proc.pid) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return wall, mem


def table(rows: list[tuple], headers: tuple) -> str:
    cols = list(zip(headers, *rows, strict=False))
    widths = [max(len(str(c)) for c in col) for col in cols]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


def write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
