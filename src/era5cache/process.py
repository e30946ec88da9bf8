"""Process-wide settings, in one place: garbage collection around imports and forks, state
that must not cross a ``fork``, and the command's quick exit.

- :func:`imports_frozen`: heavy imports with the collector off, then :func:`gc.freeze`, so
  full collections stop walking the ~1M objects of modules that live as long as the process.
- :func:`freeze_inherited`: a DataLoader ``worker_init_fn`` that freezes what a forked worker
  inherited, so its collections do not write to (and so copy) pages shared with the parent.
- :class:`PerProcess`: a value made again in a process that was forked from the one that
  made it (a lock held by another thread at the fork, a thread pool whose threads the child
  does not have).
- :func:`exit_when_done`: end the interpreter with :func:`os._exit` once the exit handlers
  have run, instead of tearing down every module one by one.
- :data:`NUMPY_ENVIRON` and :func:`set_numpy_environ`: numpy without transparent-huge-page
  advice, in the command's process and the Dask workers.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Generic, TypeVar

T = TypeVar("T")

NUMPY_ENVIRON = MappingProxyType({"NUMPY_MADVISE_HUGEPAGE": "0"})
"""Read by numpy when it loads: no transparent-huge-page advice for its large arrays. On
virtual machines that hand freed memory back to the host (free page reporting) a huge page
fault is far slower than the 4 KiB ones it replaces: a fresh 512 MiB array took 1.9-7.8 s
to touch against 0.3-0.4 s, and the ``make preprocess`` job 30-31 s against 24-25 s with
this in the command's process and the workers, on the 2-core test machine. Elsewhere the
job's read blocks are too small for huge pages to matter."""


def set_numpy_environ() -> None:
    """:data:`NUMPY_ENVIRON` in this process's environment, where the user set no value;
    acts on numpy only if it is not loaded yet."""
    for name, value in NUMPY_ENVIRON.items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
    """Import inside: no garbage collection meanwhile; afterwards every object that exists is
    moved out of the collector's sight (:func:`gc.freeze`)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def freeze_inherited(worker_id: int | None = None) -> None:
    """``worker_init_fn`` for DataLoader workers: freeze the objects inherited from the parent
    (:func:`gc.freeze`, as Python's documentation advises after a fork). Objects the worker
    makes itself are collected as usual."""
    gc.freeze()


class PerProcess(Generic[T]):
    """``factory()``'s value, made once per process: a forked child makes its own on first
    use instead of using the parent's."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._pid: int | None = None
        self._value: T | None = None

    def get(self) -> T:
        if self._pid != os.getpid():
            self._value = self._factory()
            self._pid = os.getpid()
        return self._value  # type: ignore[return-value]

    def set(self, value: T) -> None:
        self._value, self._pid = value, os.getpid()


def exit_when_done(code: int) -> None:
    """Exit with ``code`` through the exit handlers (registered by logging, multiprocessing,
    Dask ...), then :func:`os._exit`: the interpreter's teardown of xarray, pandas and Dask
    modules is skipped. Every command has closed (and fsync'ed where it matters) what it
    wrote before this runs."""

    def hard_exit() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    _last_handlers.append(hard_exit)
    sys.exit(code)


_last_handlers: list[Callable[[], None]] = []


def _run_last_handlers() -> None:
    for handler in _last_handlers:
        handler()


# Exit handlers run last-registered first: registered when this module is imported (by the
# command, before xarray, Dask and the rest register theirs), this one runs after them all.
atexit.register(_run_last_handlers)
