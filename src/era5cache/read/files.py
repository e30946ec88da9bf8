"""Input discovery: paths, folders and globs to files; CDS ZIP archives unpacked."""

from __future__ import annotations

import errno
import glob
import os
import zipfile
import zlib
from pathlib import Path

from ..errors import InputError
from .grib import GRIB_SUFFIXES

INPUT_SUFFIXES = (".nc", *GRIB_SUFFIXES)  # what a folder, or a ZIP archive, contributes


def list_inputs(patterns: list[str] | tuple[str, ...]) -> list[Path]:
    """The files that paths, directories (their NetCDF and GRIB files, :data:`INPUT_SUFFIXES`,
    and ZIP archives) and globs name, unique, in order; ZIP archives are listed, not opened;
    folders a glob matches are left out. :class:`InputError` when a pattern matches no file
    (an empty folder, a glob of folders, a broken link or a loop of links)."""
    files: list[Path] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir():
            matches = sorted(str(x) for x in p.iterdir()
                             if x.suffix.lower() in INPUT_SUFFIXES and x.is_file()) + sorted(
                str(x) for x in p.glob("*.zip") if x.is_file())
            if not matches:
                raise InputError(f"{pat}: folder holds no NetCDF, GRIB or ZIP file "
                                 f"({', '.join('*' + s for s in INPUT_SUFFIXES)}, *.zip)")
        else:
            found = sorted(glob.glob(str(pat))) or [str(p)]
            for m in found:
                _check_link(Path(m))
            matches = [m for m in found if Path(m).is_file()]
            if not matches and any(Path(m).is_dir() for m in found):
                raise InputError(f"{pat}: matches only folders, no input file")
        if not matches:
            raise InputError(f"{pat}: no such input file (nothing matches)")
        files.extend(Path(m) for m in matches)
    seen, unique = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _check_link(path: Path) -> None:
    """:class:`InputError` for a symbolic link that leads nowhere or round in a loop."""
    if not path.is_symlink() or path.exists():
        return
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symbolic links in a loop (it never reaches a "
                             "file)") from None
    raise InputError(f"{path}: broken symbolic link (to {os.readlink(path)}, which does "
                     "not exist)")


def expand_inputs(patterns: list[str] | tuple[str, ...], extract_dir: Path | None = None
                  ) -> list[Path]:
    """:func:`list_inputs`, with CDS ZIP archives unpacked: their NetCDF and GRIB members
    are extracted into ``extract_dir`` (default: a folder beside the archive)."""
    files: list[Path] = []
    for f in list_inputs(patterns):
        if zipfile.is_zipfile(f):
            files.extend(_extract_zip(f, extract_dir))
        elif f.suffix.lower() == ".zip":
            raise InputError(f"{f}: not a readable ZIP archive (damaged or incomplete "
                             "download?)")
        else:
            files.append(f)
    return files


def _extract_zip(path: Path, extract_dir: Path | None) -> list[Path]:
    dest = (extract_dir or path.parent / f".{path.name}.d") / path.stem
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return _extract_members(path, dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError,
            NotImplementedError) as exc:
        raise InputError(f"{path}: damaged ZIP archive ({exc})") from None


def _extract_members(path: Path, dest: Path) -> list[Path]:
    out = []
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.namelist() if Path(m).suffix.lower() in INPUT_SUFFIXES]
        if not members:
            raise InputError(f"{path}: ZIP archive holds no NetCDF or GRIB file")
        for m in members:
            target = dest / Path(m).name
            info = zf.getinfo(m)
            if not target.exists() or target.stat().st_size != info.file_size:
                tmp = target.with_name(target.name + ".tmp")
                with zf.open(m) as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 22):
                        dst.write(chunk)
                os.replace(tmp, target)
            out.append(target)
    return out

