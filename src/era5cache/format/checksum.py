"""Checksums: SHA-256 of the outputs (files, a Zarr store's tree) and a fast hash of inputs.

Inputs are identified by xxHash's XXH3-128 (:data:`INPUT_HASH`): a change-detecting, not a
cryptographic, hash, several times faster than SHA-256, whose cost on the inputs showed in the
job's time where the CPUs are the limit (BENCHMARKS.md).
"""

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


INPUT_HASH = "xxh3_128"


class BackgroundHashes:
    """:data:`INPUT_HASH` digests of files computed in a background thread, started at once.

    The job starts it when planning is done: from then on the main process mostly waits (for
    its workers, then for their chunks), and the hash releases the GIL, so the hashing
    overlaps the regrid (started earlier, it competes with the main process's imports and
    planning). :meth:`result` waits for it;
    :meth:`cancel` stops it within one 4 MiB block.
    """

    def __init__(self, paths: list[Path]):
        import threading

        self._stop = threading.Event()
        self._result: dict[Path, str] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(list(paths),),
                                        name="era5cache-hash-inputs", daemon=True)
        self._thread.start()

    def _run(self, paths: list[Path]) -> None:
        try:
            import xxhash

            for p in paths:
                h = xxhash.xxh3_128()
                with open(p, "rb") as f:
                    while not self._stop.is_set() and (block := f.read(BLOCK)):
                        h.update(block)
                if self._stop.is_set():
                    return
                self._result[p] = h.hexdigest()
        except BaseException as exc:  # re-raised by result()
            self._error = exc

    def result(self) -> dict[Path, str]:
        """{path: hex digest}; re-raises what the thread raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()
