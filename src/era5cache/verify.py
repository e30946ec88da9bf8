"""Re-check a cache folder against its manifest: completeness, shapes and checksums."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .checksum import file_sha256, tree_sha256
from .errors import CacheError
from .layout import FORMAT_VERSION, H5_NAME, ZARR_NAME, paths
from .manifest import read_manifest


def check_manifest(root: str | Path) -> dict:
    """The manifest if it says the cache is complete and readable by this version."""
    m = read_manifest(root)
    _, _, mpath = paths(root)
    if m.get("complete") is not True:
        raise CacheError(f"{mpath}: cache is incomplete (complete is not true); "
                         "re-run `era5cache preprocess`")
    version = m.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CacheError(f"{mpath}: format_version {version!r} is newer than this era5cache "
                         f"understands ({FORMAT_VERSION}); upgrade era5cache")
    return m


def verify(root: str | Path, checksums: bool = True) -> list[str]:
    """Problems found (empty list: the cache is sound). Never raises for a bad cache."""
    root = Path(root)
    try:
        m = check_manifest(root)
    except CacheError as exc:
        return [str(exc)]
    zpath, hpath, _ = paths(root)
    problems: list[str] = []
    shape = tuple(m.get("shape", ()))
    channels = list(m.get("channels", []))
    out = m.get("outputs", {})
    if not hpath.is_file():
        problems.append(f"{hpath}: missing")
    else:
        rec = out.get(H5_NAME, {})
        if hpath.stat().st_size != rec.get("size"):
            problems.append(f"{hpath}: size {hpath.stat().st_size} differs from the manifest "
                            f"({rec.get('size')})")
        try:
            with h5py.File(hpath, "r") as f:
                d = f["data"]
                if d.shape != shape or d.dtype != np.float32:
                    problems.append(f"{hpath}: /data is {d.shape} {d.dtype}, manifest says "
                                    f"{shape} float32")
                if d.chunks is not None or d.compression is not None:
                    problems.append(f"{hpath}: /data is chunked or compressed, not contiguous")
                if d.id.get_offset() != rec.get("data_offset"):
                    problems.append(f"{hpath}: /data offset differs from the manifest")
                names = [c.decode() if isinstance(c, bytes) else c for c in f["channel"][:]]
                if names != channels:
                    problems.append(f"{hpath}: channels {names} differ from manifest {channels}")
        except (OSError, KeyError) as exc:
            problems.append(f"{hpath}: unreadable HDF5 ({exc})")
        if checksums and not problems and file_sha256(hpath) != rec.get("sha256"):
            problems.append(f"{hpath}: checksum mismatch (contents changed or corrupted)")
    if not zpath.is_dir():
        problems.append(f"{zpath}: missing")
    else:
        want = out.get(ZARR_NAME, {}).get("files", {})
        got = tree_sha256(zpath) if checksums else {k: None for k in _files(zpath)}
        for name in sorted(set(want) - set(got)):
            problems.append(f"{zpath / name}: missing")
        for name in sorted(set(got) - set(want)):
            problems.append(f"{zpath / name}: not listed in the manifest")
        if checksums:
            for name in sorted(set(want) & set(got)):
                if want[name] != got[name]:
                    problems.append(f"{zpath / name}: checksum mismatch")
    return problems


def _files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
