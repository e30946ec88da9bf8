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
