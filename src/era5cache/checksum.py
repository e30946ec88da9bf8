"""SHA-256 checksums of files and of directory trees (a Zarr store)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 22


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def tree_sha256(root: str | Path) -> dict[str, str]:
    """{relative posix path: sha256} for every regular file under ``root``, sorted."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): file_sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class BackgroundHashes:
    """SHA-256 of files computed in a background thread, in the order given.

    The job starts it first thing, with the input files it can list: until its workers run,
    the main process is mostly importing and planning on one core, so the hashing (0.5 s per
    GB on the reference VM; hashlib releases the GIL) runs on the other. :meth:`add` queues
    more files (members extracted from ZIP archives); :meth:`result` waits for all;
    :meth:`cancel` stops within one 4 MiB block.
    """

    def __init__(self, paths: list[Path]):
        import queue
        import threading

        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._queued: set[Path] = set()
        self._stop = threading.Event()
        self._result: dict[Path, str] = {}
        self._error: BaseException | None = None
        self.add(paths)
        self._thread = threading.Thread(target=self._run, name="era5cache-hash-inputs",
                                        daemon=True)
        self._thread.start()

    def add(self, paths: list[Path]) -> None:
        for p in paths:
            if p not in self._queued:
                self._queued.add(p)
                self._queue.put(p)

    def _run(self) -> None:
        try:
            while (p := self._queue.get()) is not None:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while not self._stop.is_set() and (block := f.read(BLOCK)):
                        h.update(block)
                if self._stop.is_set():
                    return
                self._result[p] = h.hexdigest()
        except BaseException as exc:  # re-raised by result()
            self._error = exc

    def result(self) -> dict[Path, str]:
        """{path: sha256 hex digest} of every file added; re-raises what the thread raised."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join()
