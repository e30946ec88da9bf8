"""Test-only entry point: ``python tests/killed_job.py MILESTONE ARGS...`` runs ``era5cache
ARGS...`` and kills itself by SIGKILL when the job reaches ``MILESTONE`` (an audit event of
:mod:`era5cache.store.milestones`), as a machine that dies there would."""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> None:
    from era5cache.cli import entry
    from era5cache.store.milestones import AUDIT_EVENT

    target, args = argv[0], argv[1:]

    def die_at(event: str, payload: tuple) -> None:
        if event == AUDIT_EVENT and payload[0] == target:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(die_at)
    sys.argv = ["era5cache", *args]
    entry()


if __name__ == "__main__":
    main(sys.argv[1:])
