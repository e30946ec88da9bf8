"""Re-check a cache folder against its manifest: completeness, shapes and checksums."""

from __future__ import annotations

from pathlib import Path

from ..errors import CacheError
from .checksum import file_sha256, tree_sha256
from .h5 import CacheInfo
from .layout import paths
from .manifest import read_manifest


def verify(root: str | Path, checksums: bool = True) -> list[str]:
    """Problems found (empty list: the cache is sound). Never raises for a bad cache."""
    root = Path(root)
    try:
        m = read_manifest(root)
    except CacheError as exc:
        return [str(exc)]
    zpath, hpath, _ = paths(root)
    problems: list[str] = []
    rec = m.h5
    if not hpath.is_file():
        problems.append(f"{hpath}: missing")
    else:
        if hpath.stat().st_size != rec.get("size"):
            problems.append(f"{hpath}: size {hpath.stat().st_size} differs from the manifest "
                            f"({rec.get('size')})")
        try:
            info = CacheInfo.read(hpath)
        except CacheError as exc:
            problems.append(str(exc))
        else:
            problems += info.problems(m.shape, m.channels, rec.get("data_offset"), m.storage)
        if checksums and not problems and file_sha256(hpath) != rec.get("sha256"):
            problems.append(f"{hpath}: checksum mismatch (contents changed or corrupted)")
    if not zpath.is_dir():
        problems.append(f"{zpath}: missing")
    else:
        want = m.zarr_files
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
