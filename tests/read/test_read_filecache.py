"""The readers' file cache: at most ``max_open`` files open, least recently used closed
first; pickled, it becomes the running Dask worker's cache of its name, else one of its own."""

from __future__ import annotations

import gc
import pickle

import pytest

from era5cache.read.filecache import DEFAULT_CHUNK_CACHE_BYTES, FileCache, WorkerFiles


class _File:
    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def close(self) -> None:
        self.log.append(self.name)


def test_least_recently_used_files_close_first():
    closed: list[str] = []
    files = FileCache(2)
    a = files.get("a", lambda: _File("a", closed))
    files.get("b", lambda: _File("b", closed))
    assert files.get("a", lambda: pytest.fail("opened twice")) is a  # a: most recent
    files.get("c", lambda: _File("c", closed))
    assert closed == ["b"] and files.keys() == ["a", "c"]
    files.limit(1)
    assert closed == ["b", "a"] and files.keys() == ["c"]
    assert files.discard("c") and not files.discard("c")
    assert closed == ["b", "a", "c"] and files.counts["opened"] == 3
    files.get("d", lambda: _File("d", closed))
    assert files.close() == 1 and closed[-1] == "d" and len(files) == 0


def test_chunk_cache_is_at_least_netcdfs_default():
    assert FileCache(1, 2**20).chunk_cache_bytes == DEFAULT_CHUNK_CACHE_BYTES
    assert FileCache(1, 2**30).chunk_cache_bytes == 2**30
    assert FileCache(0).max_open == 1


def test_pickled_outside_a_worker_it_keeps_its_own_files():
    """Unpickled where no Dask worker has a cache of its name, a cache is a
    :class:`WorkerFiles` with files of its own, closed when it is freed; it pickles by
    name again."""
    files = FileCache(3, name="era5cache-files-test")
    copy = pickle.loads(pickle.dumps(files))
    assert isinstance(copy, WorkerFiles) and copy.name == files.name
    closed: list[str] = []
    copy.get("a", lambda: _File("a", closed))
    assert copy.counts["opened"] == 1 and len(files) == 0  # not the original's
    again = pickle.loads(pickle.dumps(copy))
    assert isinstance(again, WorkerFiles) and again.name == files.name
    del copy
    gc.collect()
    assert closed == ["a"]
