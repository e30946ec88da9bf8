"""The job's named milestones ("planned", "chunks:3", "publish:era5_2deg.zarr", ...), raised as
Python audit events (:func:`sys.audit`, event :data:`AUDIT_EVENT`, argument the name).

Nothing listens in a normal run (an audit event without hooks costs nothing measurable). The
crash tests listen: their entry point (``tests/killed_job.py``) installs an audit hook that
kills the process by SIGKILL at one milestone (between two renames of the publication, say),
where an external ``kill`` could not aim. No environment variable or module state is read.
"""

from __future__ import annotations

import sys

AUDIT_EVENT = "era5cache.milestone"


def milestone(name: str) -> None:
    """Announce that the job reached ``name`` (an audit event)."""
    sys.audit(AUDIT_EVENT, name)
