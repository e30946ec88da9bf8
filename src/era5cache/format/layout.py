"""Fixed names and version of the on-disk cache (docs/contracts.md section 6)."""

from __future__ import annotations

from pathlib import Path

FORMAT_VERSION = 1
ZARR_NAME = "era5_2deg.zarr"
H5_NAME = "era5_2deg.h5"
MANIFEST_NAME = "manifest.json"
GRID_DESCRIPTION = (
    "regular lat-lon, 2 degree, 80 x 180 (lat x lon), cell centres lat -79..79 ascending, "
    "lon 1..359; bounds on even degrees covering 80S..80N; first-order conservative remap"
)


def paths(root: str | Path) -> tuple[Path, Path, Path]:
    """(zarr, h5, manifest) paths inside a cache folder."""
    root = Path(root)
    return root / ZARR_NAME, root / H5_NAME, root / MANIFEST_NAME
