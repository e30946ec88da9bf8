"""What "the same cache" means in the tests: every dataset and attribute of the HDF5 file and
every array of the Zarr store equal, bit for bit (NaN where NaN); the manifest's timestamps
and run notes are not compared."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def h5_contents(path: Path) -> dict[str, object]:
    """Each dataset of the HDF5 file (as an array) and each attribute (``@name``)."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        for name, ds in f.items():
            out[name] = ds[()]
            out.update({f"{name}@{k}": v for k, v in ds.attrs.items()})
        out.update({f"@{k}": v for k, v in f.attrs.items()})
    return out


def zarr_contents(path: Path) -> dict[str, np.ndarray]:
    """Each array of the Zarr group (data variables and coordinates) and its attributes."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    out: dict[str, object] = {}
    for name, arr in group.arrays():
        out[name] = arr[...]
        out[f"{name}@attrs"] = dict(arr.attrs)
    return out


def assert_same_cache(got: Path, want: Path) -> None:
    """The cache folders ``got`` and ``want`` hold the same HDF5 and Zarr data."""
    for read, name in ((h5_contents, "era5_2deg.h5"), (zarr_contents, "era5_2deg.zarr")):
        a, b = read(Path(got) / name), read(Path(want) / name)
        assert sorted(a) == sorted(b), (name, sorted(set(a) ^ set(b)))
        for key in a:
            x, y = a[key], b[key]
            if isinstance(x, np.ndarray) and x.dtype.kind == "f":
                assert x.dtype == y.dtype and x.shape == y.shape, (name, key)
                assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), (name, key)
            elif isinstance(x, np.ndarray):
                assert np.array_equal(x, y), (name, key)
            else:
                assert x == y, (name, key)
