"""``era5cache.regrid_2deg``: the job's conservative 2-degree regridding for any xarray data on
a regular latitude-longitude grid (docs/contracts.md section 5)."""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr

from ..grid import SourceGrid
from .adapter import regrid_dataarray
from .conservative import ConservativeRegridder

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "longitude")


def regrid_2deg(data: xr.Dataset | xr.DataArray,
                valid_share: float | Mapping[str, float] = 0.5) -> xr.Dataset | xr.DataArray:
    """Regrid ``data`` conservatively to the 2-degree target grid: 80 latitudes (-79..79,
    ascending) x 180 longitudes (1..359), area-weighted means on the sphere.

    Args:
        data: a Dataset or DataArray on a regular lat-lon grid covering 80S..80N and every
            longitude, with dimensions named ``lat``/``latitude`` and ``lon``/``longitude``
            (any order, latitude either way, longitudes 0..360 or -180..180), in any units;
            numpy-backed, or Dask-backed (lazy: one task per chunk, each chunk holding the
            whole horizontal grid). Variables without both horizontal dimensions are left out.
        valid_share: the share (0..1) of a target cell's area that must hold valid (non-NaN)
            source values for the cell to be valid: one number, or one per variable with
            ``"default"`` for the rest. 0.5 is CDO's ``remapcon`` with ``REMAP_AREA_MIN=0.5``;
            0 keeps a cell with any valid source.

    Returns:
        The same kind of object with ``lat`` (80) and ``lon`` (180) dimensions in place of
        the source's horizontal ones (the last two), float32, attributes kept. NaN where the
        valid share is below the threshold; a target value is the mean over the valid part
        of its cell. Infinite source values raise ``ValueError``.

    Raises:
        ValueError: no latitude/longitude dimensions, or a grid that does not cover the
            target (:class:`era5cache.regrid.conservative.CoverageError`).
    """
    if isinstance(data, xr.DataArray):
        name = data.name if data.name is not None else "data"
        out = regrid_2deg(data.to_dataset(name=name), valid_share)[name]
        return out.rename(data.name)
    lat = next((n for n in LAT_NAMES if n in data.dims), None)
    lon = next((n for n in LON_NAMES if n in data.dims), None)
    if lat is None or lon is None:
        raise ValueError(f"no latitude/longitude dimensions among {list(data.dims)} (names: "
                         f"{', '.join(LAT_NAMES + LON_NAMES)})")
    regridder = ConservativeRegridder.for_grid(SourceGrid(data[lat].values, data[lon].values))
    shares = valid_share if isinstance(valid_share, Mapping) else {"default": valid_share}
    out = {}
    for v in data.data_vars:
        da = data[v]
        if not {lat, lon} <= set(da.dims):
            continue
        da = da.drop_vars([c for c in (lat, lon) if c in da.coords]).rename({lat: "lat",
                                                                            lon: "lon"})
        share = float(shares.get(str(v), shares.get("default", 0.5)))
        out[v] = regrid_dataarray(da, regridder, share)
    return xr.Dataset(out, attrs=data.attrs)
