"""A human-readable summary of a cache folder (``era5cache inspect``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CacheError
from ..timeaxis import format_step
from .layout import H5_NAME, ZARR_NAME
from .manifest import read_manifest


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return str(n)


def inspect_cache(root: str | Path) -> str:
    """The summary; :class:`CacheError` when the manifest is unreadable or an output it
    lists is missing."""
    root = Path(root)
    m = read_manifest(root)
    for name in (H5_NAME, ZARR_NAME):
        if not (root / name).exists():
            raise CacheError(f"{root / name}: missing, though the manifest lists it; the cache "
                             "is damaged (era5cache verify; rebuild it)")
    t = m.time
    lines = [
        f"cache       {root}",
        f"format      {m.format_version} (era5cache {m.package_version})",
        f"shape       {' x '.join(map(str, m.shape))} (time, channel, lat, lon)",
        f"time        {t.start} .. {t.end}, {t.count} steps of "
        f"{format_step(t.step)}",
        f"gaps        {len(t.gaps)}"
        + "".join(f"\n              after {g['after']}: {g['missing']} missing"
                  for g in t.gaps[:10]),
        f"preliminary {len(t.preliminary)} steps (ERA5T)",
        f"duplicates  {t.duplicates_dropped} dropped",
        "periods     " + ", ".join(f"{k} {'/'.join(v) if v else 'all' if k == 'train' else '-'}"
                                   for k, v in m.periods.items()),
        "channels    mean / std / one-step-difference std (training period)",
    ]
    for ch, s in m.statistics.items():
        lines.append(f"  {ch:<9} {s['mean']:14.6g} {s['std']:12.6g} {s['diff_std']:12.6g}")
    if m.storage != "float32":
        err = m.h5.get("encoding_error", {})
        lines.append(f"storage     {m.storage}, normalised; largest rounding error per channel "
                     "(physical units):")
        lines += [f"  {ch:<9} {e:14.3g}" for ch, e in err.items()]
    else:
        lines.append("storage     float32, physical units")
    files = [i for i in m.inputs if "path" in i]
    stores = [i for i in m.inputs if "url" in i]
    lines += [
        f"inputs      {len(files)} files, {_human(sum(i['size'] for i in files))}"
        + "".join(f"; store {s['url']} {_selected(s.get('selection', {}))}" for s in stores),
        f"sizes       {H5_NAME} {_human(_size(root / H5_NAME))}, "
        f"{ZARR_NAME} {_human(_size(root / ZARR_NAME))}",
    ]
    return "\n".join(lines)


def _selected(selection: dict) -> str:
    """A store's selected range as the manifest records it: 'start .. end every step'."""
    if not selection:
        return "(every step)"
    step = selection.get("step")
    return (f"({selection.get('start') or 'first'} .. {selection.get('end') or 'last'}"
            + (f" every {int(step[:-1]) / 3600:g}h)" if step else ")"))
