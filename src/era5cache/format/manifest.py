"""``manifest.json``: what a cache was built from and how, with checksums; written last.

:class:`Manifest` is the typed form both sides use: the job builds one and writes it
(:meth:`Manifest.to_json`), readers load it (:func:`read_manifest`, :func:`check_manifest`).
Keys this version does not know are kept (``extra``) and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CacheError
from .layout import FORMAT_VERSION, H5_NAME, MANIFEST_NAME, ZARR_NAME


@dataclass(frozen=True)
class TimeCoverage:
    """The cache's time axis: first and last step (ISO strings), ``count`` steps of ``step``
    (``'21600s'``, ``'1M'``; see :mod:`era5cache.timeaxis`), its ``gaps`` (``{after, before,
    missing}``), the duplicate steps dropped, the steps still preliminary ERA5T, the all-NaN
    steps skipped, and ``zarr_count``, the Zarr store's steps (it keeps skipped ones)."""

    start: str | None
    end: str | None
    count: int
    step: str | None
    gaps: tuple[dict, ...] = ()
    duplicates_dropped: int = 0
    preliminary: tuple[str, ...] = ()
    skipped_all_nan: tuple[dict, ...] = ()
    zarr_count: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A cache's manifest (docs/contracts.md section 6). ``outputs`` maps each output file to its
    record (``size``, ``sha256``, ``data_offset``, and ``storage`` and ``encoding_error`` when
    16-bit, for the HDF5 file; ``files``, the sha256 of
    each file of the Zarr store); ``statistics`` each channel to ``mean``, ``std``,
    ``diff_std`` and ``count``; ``periods`` each split to ``[start, end]`` or None;
    ``accumulations`` each accumulated channel (``tp``) to the hours each value sums over,
    ending at its step (None: no accumulated channel)."""

    format_version: int
    package_version: str | None
    channels: tuple[str, ...]
    shape: tuple[int, ...]
    time: TimeCoverage
    periods: dict[str, list[str] | None]
    statistics: dict[str, dict[str, float]]
    outputs: dict[str, dict[str, Any]]
    created: str | None = None
    fingerprint: str | None = None
    inputs: tuple[dict, ...] = ()
    config: dict | None = None
    settings: dict | None = None
    chunks: dict | None = None
    append: dict | None = None
    accumulations: dict[str, int] | None = None
    synthetic: bool = False
    complete: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def h5(self) -> dict[str, Any]:
        """The HDF5 file's record in ``outputs``."""
        return self.outputs.get(H5_NAME, {})

    @property
    def storage(self) -> str:
        """How the HDF5 file's ``/data`` holds values (``float32``, ``float16``,
        ``bfloat16``; see :mod:`.encoding`)."""
        return str(self.h5.get("storage", "float32"))

    @property
    def zarr_files(self) -> dict[str, str]:
        """{path inside the store: sha256} of the Zarr store's files."""
        return self.outputs.get(ZARR_NAME, {}).get("files", {})

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str) -> Manifest:
        """:class:`CacheError` naming ``path`` when a required key is missing or malformed."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        try:
            kw = {k: v for k, v in data.items() if k in names}
            kw["channels"] = tuple(data["channels"])
            kw["shape"] = tuple(int(n) for n in data["shape"])
            t = dict(data["time"])
            kw["time"] = TimeCoverage(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in t.items()})
            kw["inputs"] = tuple(data.get("inputs", ()))
            return cls(**kw, extra={k: v for k, v in data.items() if k not in names})
        except (KeyError, TypeError, ValueError) as exc:
            raise CacheError(f"{path}: not an era5cache manifest ({type(exc).__name__}: "
                             f"{exc})") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object, keys in a fixed order; optional keys left out when unset."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "extra":
                continue
            if f.name in ("created", "fingerprint", "config", "settings", "chunks", "append",
                          "accumulations") and v is None or f.name == "synthetic" and not v:
                continue
            if f.name == "time":
                v = {k: list(x) if isinstance(x, tuple) else x
                     for k, x in dataclasses.asdict(v).items()}
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        complete = out.pop("complete")
        return out | self.extra | {"complete": complete}  # ``complete`` last


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """Flush a file's data, or (for a folder) the renames inside it, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def input_record(path: Path, digest: str | None, algorithm: str) -> dict[str, Any]:
    """The manifest's record of one input file: path, size, mtime and its hash under the
    algorithm's name (``digest`` None: not hashed)."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime,
            algorithm: digest}


def read_manifest(root: str | Path) -> Manifest:
    """The manifest of a cache folder; :class:`CacheError` if missing or unreadable."""
    path = Path(root) / MANIFEST_NAME
    if not Path(root).is_dir():
        raise CacheError(f"{root}: no such cache folder")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CacheError(f"{path}: missing; the cache was never completed "
                         "(run `era5cache preprocess`)") from exc
    except json.JSONDecodeError as exc:
        raise CacheError(f"{path}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError:
        raise CacheError(f"{path}: not an era5cache manifest (binary, not JSON text); the "
                         "cache is damaged, rebuild it") from None
    except OSError as exc:
        raise CacheError(f"{path}: cannot read the manifest ({exc.strerror})") from exc
    if not isinstance(data, dict):
        raise CacheError(f"{path}: not an era5cache manifest (not a JSON object)")
    if data.get("complete") is not True:
        raise CacheError(f"{path}: cache is incomplete (complete is not true); "
                         "re-run `era5cache preprocess`")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CacheError(f"{path}: format_version {version!r} is newer than this era5cache "
                         f"understands ({FORMAT_VERSION}); upgrade era5cache")
    return Manifest.from_json(data, path)

