"""Test-only entry point: ``python tests/killed_job.py MILESTONE ARGS...`` runs ``era5cache
ARGS...`` and kills itself by SIGKILL when the job reaches ``MILESTONE`` (an audit event of
:mod:`era5cache.store.milestones`), as a machine that dies there would. ``pause:MILESTONE``
instead holds the job's process there (up to a minute), so that a test can interrupt or kill
it from outside at that point, however fast the rest of the job would run."""

from __future__ import annotations

import os
import signal
import sys
import time


def main(argv: list[str]) -> None:
    from era5cache.cli import entry
    from era5cache.store.milestones import AUDIT_EVENT

    # Python's Ctrl-C handler, as in a terminal: a process started from one that ignores
    # SIGINT (a pytest-xdist worker) inherits the ignoring, and would never be interrupted
    signal.signal(signal.SIGINT, signal.default_int_handler)
    target, args = argv[0], argv[1:]
    pause = target.startswith("pause:")
    target = target.removeprefix("pause:")

    def die_at(event: str, payload: tuple) -> None:
        if event == AUDIT_EVENT and payload[0] == target:
            if pause:
                time.sleep(60)  # Ctrl-C (SIGINT) interrupts the sleep, as it would the job
            else:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(die_at)
    sys.argv = ["era5cache", *args]
    entry()


if __name__ == "__main__":
    main(sys.argv[1:])
