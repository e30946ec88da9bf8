"""What ERA5's known variables are: their units and the range of values they can physically
take. One table (:data:`KNOWN`) for the normaliser's units check and the regridding's value
check.

A value outside its variable's range is never ERA5 data: it is a fill value the file does not
declare (1e20, 1e30, 9.96921e36 netCDF's default, 3.4e38 GRIB's missing value, -32767 or 9999
left unscaled), or a field in other units than its attribute says (degrees Celsius under
``K``). The ranges are the extremes on record with a margin, in ERA5's units:

- temperatures (``t2m``, ``d2m``, ``skt``, ``stl1``-``stl4``, ``t`` on levels up to 1 hPa)
  150-360 K: the WMO archive of weather and climate extremes has -89.2 to 56.7 degrees C
  near the surface (184-330 K; land skin up to ~350 K), and ERA5's coldest polar
  stratosphere is above 170 K;
- ``sst`` 260-320 K: sea water freezes near 271 K (ERA5 sets 271.46 K under sea ice), the
  warmest seas stay below 310 K;
- ``z`` (geopotential, on levels or the surface) -2e4 to 6e5 m2 s-2: the 1000 hPa surface
  lies at most ~1 km below sea level in deep lows, 1 hPa at ~48 km (4.7e5);
- wind components (``u``, ``v``, ``u10``, ``v10``, ``u100``, ``v100``) -250 to 250 m s-1:
  the strongest jets (stratospheric polar night jet) stay below ~200 m s-1;
- ``msl`` 85,000-110,000 Pa (WMO extremes 870 and 1083.8 hPa), ``sp`` 30,000-110,000 Pa
  (ERA5's highest orography is below 6 km, ~480 hPa).

Units and names follow ECMWF's parameter database (the CDS's spellings and CF's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import xarray as xr

from ..errors import InputError
from .channels import parse_channel


@dataclass(frozen=True)
class Quantity:
    """``units``: the spellings accepted (the first is ERA5's); ``low``/``high``: the
    physical range, inclusive, in those units."""

    units: tuple[str, ...]
    low: float
    high: float


_KELVIN = ("K", "kelvin", "Kelvin")
_TEMPERATURE = Quantity(_KELVIN, 150.0, 360.0)
_WIND = Quantity(("m s**-1", "m s-1", "m/s"), -250.0, 250.0)

KNOWN: dict[str, Quantity] = MappingProxyType({
    **dict.fromkeys(("t2m", "d2m", "skt", "stl1", "stl2", "stl3", "stl4", "t"), _TEMPERATURE),
    "sst": Quantity(_KELVIN, 260.0, 320.0),
    "z": Quantity(("m**2 s**-2", "m2 s-2", "m^2/s^2", "m2/s2"), -2.0e4, 6.0e5),
    **dict.fromkeys(("u", "v", "u10", "v10", "u100", "v100"), _WIND),
    "msl": Quantity(("Pa",), 85_000.0, 110_000.0),
    "sp": Quantity(("Pa",), 30_000.0, 110_000.0),
})


def quantity(channel: str) -> Quantity | None:
    """The known quantity of a variable or channel ('t2m', 'z500' -> z's), None if unknown."""
    return KNOWN.get(channel) or KNOWN.get(parse_channel(channel)[0])


def check_units(ds: xr.Dataset, path: Path) -> None:
    """A known variable in other units than ERA5's (say degC for t2m), or without a
    ``units`` attribute, is an :class:`InputError` naming the file: not a silent offset of
    273.15 in the cache. Unknown variables pass."""
    for v in ds.data_vars:
        want = KNOWN.get(str(v))
        if want is None:
            continue
        units = ds[v].attrs.get("units")
        if units is None:
            raise InputError(f"{path}: variable {v!r} has no units attribute; ERA5 delivers "
                             f"it in {want.units[0]!r} (set the attribute if that is what the "
                             "file holds)")
        if str(units).strip() not in want.units:
            raise InputError(f"{path}: variable {v!r} is in {units!r}, ERA5 delivers it in "
                             f"{want.units[0]!r}; convert the file or drop the variable")
