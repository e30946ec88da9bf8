"""ERA5's ``expver``: final ERA5 ('0001') and preliminary ERA5T ('0005'), as a per-step
coordinate (2024+ layout) or as the legacy layout's ``expver`` dimension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

FINAL, PRELIMINARY = "0001", "0005"


def expver_str(value) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return f"{int(str(value).strip()):04d}"
    except ValueError:
        return str(value).strip()


def collapse_expver_dim(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Legacy ``expver`` dimension -> one series; per step the final slot wins when it holds data.

    Each step is valid in one slot (the other is fill). A step whose final ('0001') slot holds
    any value takes that slot; otherwise the first other slot that holds any value.
    """
    labels = [expver_str(e) for e in ds["expver"].values]
    order = sorted(range(len(labels)), key=lambda i: (labels[i] != FINAL, labels[i]))
    first = next(iter(ds.data_vars))
    spatial = [d for d in ds[first].dims if d not in ("time", "expver")]
    has = ds[first].notnull().any(spatial).compute().values  # (time, expver)
    if has.shape[1] != len(labels):
        has = has.T
    chosen = np.full(ds.sizes["time"], -1)
    for i in reversed(order):
        chosen = np.where(has[:, i], i, chosen)
    chosen = np.where(chosen < 0, order[0], chosen)
    pick = xr.DataArray(chosen, dims="time")
    out = xr.Dataset({v: ds[v].isel(expver=order[0]) for v in ds.data_vars})
    for i in order[1:]:
        for v in ds.data_vars:
            out[v] = xr.where(pick == i, ds[v].isel(expver=i), out[v], keep_attrs=True)
    out = out.drop_vars("expver", errors="ignore")
    return out.assign_coords(expver=("time", np.array([labels[c] for c in chosen], dtype="U4")))

