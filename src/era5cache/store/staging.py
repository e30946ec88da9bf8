"""The staging folder of a run, its progress journal (for resuming) and publication.

Everything a run writes goes to ``OUT/.staging/`` first::

    progress.json    {"fingerprint": ..., "chunks_done": [...]}: which Zarr time chunks are
                     on disk (their files fsync'ed) for the job with this fingerprint
    era5_2deg.zarr   the store, written chunk by chunk
    era5_2deg.h5     the training cache, built from the store
    manifest.json    the complete manifest; its presence means "ready to publish"

A run started again after a crash finds the journal; if its fingerprint (inputs, their sizes
and mtimes, the output-relevant configuration) equals the new run's, the chunks listed are
kept and only the rest are computed. Publication moves the outputs into ``OUT/`` and the
manifest last; it is idempotent, so a publication interrupted between two renames is
finished by the next run (:func:`publish` at start-up). Readers see either the old manifest
with the old outputs, no manifest (the cache is being replaced: they refuse to open), or the
new manifest with the new outputs. A replaced Zarr store is kept in ``OUT/.retired/`` until
the next publication, for readers that still hold it open; a replaced HDF5 file lives on for
the processes that have it mapped (its inode stays until they close it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..format.layout import H5_NAME, MANIFEST_NAME, ZARR_NAME
from ..format.manifest import atomic_write_json, fsync_path
from .milestones import milestone

STAGING_NAME = ".staging"
RETIRED_NAME = ".retired"
PROGRESS_NAME = "progress.json"


class Staging:
    """``OUT/.staging`` for the job identified by ``fingerprint``; see the module docstring."""

    def __init__(self, out: Path, fingerprint: str, done: set[int], resumed: bool):
        self.out = Path(out)
        self.path = self.out / STAGING_NAME
        self.fingerprint = fingerprint
        self.done = done
        self.resumed = resumed

    @property
    def zarr(self) -> Path:
        return self.path / ZARR_NAME

    @property
    def h5(self) -> Path:
        return self.path / H5_NAME

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST_NAME

    @classmethod
    def begin(cls, out: Path, fingerprint: str) -> Staging:
        """Resume the staged run of the same job, or start a clean staging folder."""
        path = Path(out) / STAGING_NAME
        prog = _read_progress(path / PROGRESS_NAME)
        if prog.get("fingerprint") == fingerprint and (path / ZARR_NAME / "zarr.json").is_file():
            done = {int(k) for k in prog.get("chunks_done", [])}
            return cls(out, fingerprint, done, resumed=True)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        st = cls(out, fingerprint, set(), resumed=False)
        st.save()
        return st

    def record(self, chunks: Iterable[int]) -> None:
        """Add chunks whose files are durable and save the journal (an fsync'ed rename: a
        few ms, against seconds of work per chunk)."""
        self.done.update(int(k) for k in chunks)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path / PROGRESS_NAME,
                          {"fingerprint": self.fingerprint, "chunks_done": sorted(self.done)})


def _read_progress(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def publish(out: Path) -> bool:
    """Move a ready staging folder's outputs into ``out``; False if none is ready.

    Safe to call again after it was interrupted at any point.
    """
    out = Path(out)
    stage = out / STAGING_NAME
    ready = stage / MANIFEST_NAME
    if not ready.is_file():
        return False
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    fsync_path(out)
    milestone("publish:manifest-removed")
    old = stage / "replaced"
    old.mkdir(exist_ok=True)
    for name in (ZARR_NAME, H5_NAME):
        if (stage / name).exists():
            if (out / name).exists():
                os.replace(out / name, old / name)
            os.replace(stage / name, out / name)
            milestone(f"publish:{name}")
    os.replace(ready, out / MANIFEST_NAME)
    fsync_path(out)
    (stage / PROGRESS_NAME).unlink(missing_ok=True)  # the staging folder is spent
    milestone("publish:done")
    retired = out / RETIRED_NAME
    if (old / ZARR_NAME).exists():
        shutil.rmtree(retired, ignore_errors=True)
        retired.mkdir()
        os.replace(old / ZARR_NAME, retired / ZARR_NAME)
    shutil.rmtree(stage, ignore_errors=True)
    return True


def discard(out: Path) -> None:
    """Remove a staging folder that holds nothing to resume or publish."""
    stage = Path(out) / STAGING_NAME
    if stage.exists() and not (stage / MANIFEST_NAME).is_file():
        shutil.rmtree(stage, ignore_errors=True)
