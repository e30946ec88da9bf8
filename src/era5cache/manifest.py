"""``manifest.json``: what a cache was built from and how, with checksums; written last."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import CacheError
from .layout import MANIFEST_NAME


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """Flush a file's data, or (for a folder) the renames inside it, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def input_record(path: Path, digest: str | None, algorithm: str) -> dict[str, Any]:
    """The manifest's record of one input file: path, size, mtime and its hash under the
    algorithm's name (``digest`` None: not hashed)."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime,
            algorithm: digest}


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a cache folder; :class:`CacheError` if missing or unreadable."""
    path = Path(root) / MANIFEST_NAME
    if not Path(root).is_dir():
        raise CacheError(f"{root}: no such cache folder")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CacheError(f"{path}: missing; the cache was never completed "
                         "(run `era5cache preprocess`)") from exc
    except json.JSONDecodeError as exc:
        raise CacheError(f"{path}: not valid JSON ({exc})") from exc
    return data
