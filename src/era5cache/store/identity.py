"""A job's identity and the published cache it meets: its fingerprint (inputs, settings,
versions), whether the published cache is its very output, and the cache an append extends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import __version__
from ..config.recipe import PreprocessConfig
from ..errors import CacheError, ConfigError
from ..format.layout import FORMAT_VERSION, MANIFEST_NAME
from ..format.manifest import Manifest, read_manifest
from ..format.verify import verify
from ..read.files import list_inputs
from ..read.zarrinput import StoreInput


def job_fingerprint(cfg: PreprocessConfig, base: Manifest | None,
                    stores: tuple[StoreInput, ...] = ()) -> str:
    """Identity of a job: its input files (path, size, mtime) or Zarr ``stores`` (URL,
    metadata hash, selected range), the time selection, the output settings, the package
    and format version, and for an append the published cache it extends."""
    files = [] if stores else [
        {"path": str(f.resolve()), "size": f.stat().st_size, "mtime": f.stat().st_mtime}
        for f in list_inputs(cfg.inputs)]
    ident = {"format_version": FORMAT_VERSION, "package_version": __version__,
             "inputs": files + [s.to_json() for s in stores], "settings": cfg.output_settings(),
             "base": None if base is None else base.h5["sha256"]}
    if cfg.time is not None:  # absent otherwise: caches made before it stay current
        ident["time"] = cfg.time.to_json()
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def up_to_date(out: Path, fingerprint: str) -> Manifest | None:
    """The published manifest if it was made by this very job and its files are in place."""
    try:
        m = read_manifest(out)
    except CacheError:
        return None
    if m.fingerprint != fingerprint or verify(out, checksums=False):
        return None
    return m


def published_base(out: Path, cfg: PreprocessConfig) -> Manifest | None:
    """The manifest of the cache that ``--append`` extends (None: there is none yet);
    :class:`ConfigError` when the recipe's output settings differ from the cache's."""
    try:
        m = read_manifest(out)
    except CacheError:
        if (out / MANIFEST_NAME).exists():
            raise
        return None
    have = m.settings or {}
    want = cfg.output_settings()
    if cfg.variables is None:
        want["variables"] = have.get("variables")
    for key in want:
        if key in have and have[key] != want[key]:
            raise ConfigError(f"{cfg.source or 'command line'}: --append: {key} is "
                              f"{want[key]!r} here but {have[key]!r} in the cache {out}; "
                              "run without --append to rebuild it")
    return m

