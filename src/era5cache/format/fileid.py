"""Which file a path named when a reader opened it: device, inode, size and modification
time. A publication replaces the cache's files by renaming new ones over them (new inodes),
so a reader that maps the file later can tell whether it still is the file it was created on
(:func:`open_same`) instead of reading a new file under an old index."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import CacheError


@dataclass(frozen=True)
class FileId:
    """``device``/``inode`` (which file), ``size`` in bytes, ``mtime_ns`` (a rewrite in
    place changes it)."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileId:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    @classmethod
    def at(cls, path: str | os.PathLike) -> FileId:
        """The file at ``path`` now; :class:`CacheError` if there is none."""
        try:
            return cls.of(os.stat(path))
        except OSError as exc:
            raise CacheError(f"{path}: cannot read the cache file ({exc.strerror})") from exc


def replaced(path: str | os.PathLike) -> CacheError:
    """The error of a reader whose cache file was replaced since it was opened."""
    return CacheError(f"{path}: the cache was replaced since this dataset was opened (a new "
                      "publication); create the dataset again to read the new cache")


def open_same(path: str | os.PathLike, want: FileId) -> BinaryIO:
    """``path`` opened for reading, if it is still the file ``want`` describes; else
    :class:`CacheError` (:func:`replaced`). The check is made on the open descriptor, so
    a replacement right after it cannot slip in."""
    try:
        f = open(Path(path), "rb")  # returned to the caller
    except FileNotFoundError:
        raise replaced(path) from None
    if FileId.of(os.fstat(f.fileno())) != want:
        f.close()
        raise replaced(path)
    return f
