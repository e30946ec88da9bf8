"""ERA5 variables by their long names, as the Zarr stores ML groups read name them
(Google's ARCO-ERA5, WeatherBench2: ``2m_temperature``, ``geopotential``,
``total_precipitation_6hr``), mapped to ERA5's short names, the channel names era5cache uses
(``t2m``, ``z``, ``tp``): one table, :data:`LONG_NAMES`.

Each entry gives the short name, the units the stores deliver it in (ERA5's, as in
:mod:`.physical`), and for accumulated variables the period each value sums over: ARCO-ERA5
holds ERA5's hourly accumulations (``total_precipitation``: metres of water in the hour
ending at the step), WeatherBench2 adds sums over 6, 12 and 24 hours under their own names.
A store variable not in the table keeps its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np


@dataclass(frozen=True)
class LongName:
    """``short``: ERA5's short name; ``units``: what the store gives (checked against
    :mod:`.physical` for the variables it knows); ``period``: for an accumulated variable, the
    hours each value sums over (ending at its time step); None for an instantaneous one."""

    short: str
    units: str
    period: int | None = None


def _accumulated(short: str, long: str, units: str) -> dict[str, LongName]:
    """An accumulated variable's hourly ERA5 name and WeatherBench2's 6/12/24-hour sums."""
    return {long: LongName(short, units, 1)} | {
        f"{long}_{h}hr": LongName(short, units, h) for h in (6, 12, 24)}


LONG_NAMES = MappingProxyType({
    "2m_temperature": LongName("t2m", "K"),
    "2m_dewpoint_temperature": LongName("d2m", "K"),
    "skin_temperature": LongName("skt", "K"),
    "sea_surface_temperature": LongName("sst", "K"),
    "10m_u_component_of_wind": LongName("u10", "m s**-1"),
    "10m_v_component_of_wind": LongName("v10", "m s**-1"),
    "100m_u_component_of_wind": LongName("u100", "m s**-1"),
    "100m_v_component_of_wind": LongName("v100", "m s**-1"),
    "10m_wind_speed": LongName("si10", "m s**-1"),
    "mean_sea_level_pressure": LongName("msl", "Pa"),
    "surface_pressure": LongName("sp", "Pa"),
    "total_column_water_vapour": LongName("tcwv", "kg m**-2"),
    "total_cloud_cover": LongName("tcc", "(0 - 1)"),
    "land_sea_mask": LongName("lsm", "(0 - 1)"),
    "sea_ice_cover": LongName("siconc", "(0 - 1)"),
    "geopotential": LongName("z", "m**2 s**-2"),
    "temperature": LongName("t", "K"),
    "u_component_of_wind": LongName("u", "m s**-1"),
    "v_component_of_wind": LongName("v", "m s**-1"),
    "vertical_velocity": LongName("w", "Pa s**-1"),
    "specific_humidity": LongName("q", "kg kg**-1"),
    "relative_humidity": LongName("r", "%"),
    **_accumulated("tp", "total_precipitation", "m"),
    **_accumulated("cp", "convective_precipitation", "m"),
    **_accumulated("lsp", "large_scale_precipitation", "m"),
    **_accumulated("sf", "snowfall", "m of water equivalent"),
    **_accumulated("e", "evaporation", "m of water equivalent"),
    **_accumulated("ro", "runoff", "m"),
    **_accumulated("tisr", "toa_incident_solar_radiation", "J m**-2"),
    **_accumulated("ssrd", "surface_solar_radiation_downwards", "J m**-2"),
    **_accumulated("ssr", "surface_net_solar_radiation", "J m**-2"),
    **_accumulated("strd", "surface_thermal_radiation_downwards", "J m**-2"),
    **_accumulated("str", "surface_net_thermal_radiation", "J m**-2"),
    **_accumulated("ttr", "top_net_thermal_radiation", "J m**-2"),
})


HOURLY_ACCUMULATIONS = frozenset(e.short for e in LONG_NAMES.values() if e.period == 1)
"""Short names of ERA5's accumulated variables: in hourly ERA5 (CDS files, ARCO-ERA5) each
value sums over the hour ending at its step."""


def short_names(names: list[str], step_hours: float | None) -> dict[str, str]:
    """{store name: short name} for the store variables ``names`` the table knows. Where
    several name one short name (``total_precipitation`` and ``total_precipitation_6hr``),
    the one whose period is the selected output step (``step_hours``) wins, else the
    shortest period (which sums to any longer step)."""
    chosen: dict[str, tuple[float, str]] = {}
    for name in names:
        entry = LONG_NAMES.get(name)
        if entry is None:
            continue
        period = entry.period or 0
        rank = -1.0 if step_hours is not None and period == step_hours else float(period)
        if entry.short not in chosen or rank < chosen[entry.short][0]:
            chosen[entry.short] = (rank, name)
    return {name: short for short, (_, name) in chosen.items()}


def accumulation_hours(name: str) -> int | None:
    """The accumulation period in hours of a store variable (None: instantaneous or
    unknown)."""
    entry = LONG_NAMES.get(name)
    return None if entry is None else entry.period


def hours(step: np.timedelta64) -> float:
    """A time step in hours."""
    return float(step / np.timedelta64(1, "h"))
