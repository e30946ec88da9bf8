"""The staged Zarr store's template."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from era5cache.store.zarrstore import COMPRESSORS, template_of, write_template


def _dataset() -> xr.Dataset:
    rng = np.random.default_rng(3)
    data = da.from_array(rng.random((30, 4, 5), dtype=np.float32), chunks=(6, 4, 5))
    data = data.map_blocks(lambda b: b * 2, dtype=np.float32)  # a graph with real tasks
    ds = xr.Dataset({"t2m": (("time", "lat", "lon"), data, {"units": "K"})},
                    coords={"time": pd.date_range("2021-07-01", periods=30, freq="h"),
                            "lat": np.arange(4.0), "lon": np.arange(5.0)},
                    attrs={"title": "t"})
    return ds.chunk({"time": 10})


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_template_of_writes_the_same_store_without_the_graph(tmp_path):
    """The placeholder dataset writes byte-identical metadata and coordinates, and carries
    none of the real graph's tasks."""
    ds = _dataset()
    light = template_of(ds)
    assert light["t2m"].shape == ds["t2m"].shape
    assert light["t2m"].data.chunks == ds["t2m"].data.chunks
    assert light["t2m"].attrs == ds["t2m"].attrs and light.attrs == ds.attrs
    real_tasks = set(dict(ds["t2m"].data.__dask_graph__()))
    assert not real_tasks & set(dict(light["t2m"].data.__dask_graph__()))
    enc = {"t2m": {"chunks": (10, 4, 5), "compressors": list(COMPRESSORS)},
           "time": {"units": "seconds since 1970-01-01", "dtype": "int64",
                    "calendar": "proleptic_gregorian", "chunks": (30,)}}
    write_template(ds, str(tmp_path / "real.zarr"), enc)
    write_template(light, str(tmp_path / "light.zarr"), enc)
    real, placeholder = _files(tmp_path / "real.zarr"), _files(tmp_path / "light.zarr")
    assert real == placeholder
    assert not [k for k in real if "/c/" in k and k.startswith("t2m")]  # no data chunk
    back = xr.open_zarr(tmp_path / "light.zarr")
    np.testing.assert_array_equal(back["time"].values, ds["time"].values)
    assert back["t2m"].attrs["units"] == "K"
