"""Fault injection for the crash tests: die by SIGKILL at a named point of the job.

Production runs never set ``ERA5CACHE_KILL_AT``; the resume tests set it to one of the names
passed to :func:`kill_point` to kill the job exactly there (between two renames of the
publication, say), where an external ``kill`` could not aim.
"""

from __future__ import annotations

import os
import signal

ENV = "ERA5CACHE_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if ``$ERA5CACHE_KILL_AT`` equals ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
