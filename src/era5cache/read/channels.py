"""Channel names: an ERA5 short name, plus the pressure level in hPa for variables on
levels ('sst', 't2m', 'z500')."""

from __future__ import annotations

import re

import xarray as xr

from ..errors import InputError

_CHANNEL = re.compile(r"(?P<var>.*?[^0-9])(?P<level>[0-9]+)?")


def parse_channel(name: str) -> tuple[str, int | None]:
    """The variable and pressure level (hPa) of a channel: ('z', 500) for 'z500', ('sst',
    None) for 'sst'. Trailing digits are read as a level, so 't2m' is ('t2m', None) but
    'u100' is ('u', 100): :func:`select_channels` takes a name that is a variable of the
    inputs as it is before it looks for a level."""
    m = _CHANNEL.fullmatch(name)
    if m is None:
        return name, None
    level = m.group("level")
    return m.group("var"), None if level is None else int(level)


def base_names(channels) -> list[str] | None:
    """The variable names to read for ``channels``: each name as it is and its variable
    without a level (None: all)."""
    if channels is None:
        return None
    names = set()
    for ch in channels:
        names.add(ch)
        names.add(parse_channel(ch)[0])
    return sorted(names)


def channel_name(var: str, level: float) -> str:
    """The channel of ``var`` at pressure ``level`` (hPa): 'z', 500 -> 'z500'."""
    return f"{var}{int(level)}"


def at_level(ds: xr.Dataset, var: str, level: float) -> xr.DataArray:
    """``var`` at pressure ``level`` (hPa) as a (time, lat, lon) variable, its attributes
    kept."""
    da = ds[var].sel(level=float(level)).drop_vars("level")
    da.attrs = dict(ds[var].attrs)
    return da


def all_channels(ds: xr.Dataset) -> list[str]:
    """Every channel of a normalised dataset: variables, one per pressure level ('z500')."""
    out = []
    for v in ds.data_vars:
        if "level" in ds[v].dims:
            out += [channel_name(v, x) for x in ds["level"].values]
        else:
            out.append(v)
    return out


def levels_as_variables(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with each variable on pressure levels split into one variable per level, named
    as its channel ('u850'), attributes kept: for products whose variables sit on different
    levels (u on five, v on three), which cannot share one ``level`` dimension."""
    if "level" not in ds.dims:
        return ds
    out = {}
    for v in ds.data_vars:
        if "level" not in ds[v].dims:
            out[v] = ds[v]
            continue
        for lev in ds["level"].values:
            out[channel_name(v, lev)] = at_level(ds, v, lev)
    return xr.Dataset(out, attrs=ds.attrs)


def select_channels(ds: xr.Dataset, channels: list[str] | tuple[str, ...], where: str = "inputs",
                    available: tuple[str, ...] | list[str] = ()) -> xr.Dataset:
    """One (time, lat, lon) variable per channel: 'sst' or variable + level in hPa ('z500').
    A channel ``ds`` lacks is an :class:`InputError` naming ``where`` and listing
    ``available`` (what the files hold; default: ``ds``'s channels)."""
    out = {}
    for ch in channels:
        if ch in ds.data_vars and "level" not in ds[ch].dims:
            out[ch] = ds[ch]
            continue
        base, lev = parse_channel(ch)
        if base in ds.data_vars and "level" in ds[base].dims and lev is not None:
            levels = ds["level"].values
            if float(lev) not in levels:
                raise InputError(f"{where}: variable {base!r} has no level {lev} hPa "
                                 f"(levels: {', '.join(f'{x:g}' for x in levels)})")
            out[ch] = at_level(ds, base, lev)
            continue
        raise InputError(f"{where}: requested variable {ch!r} is not in the inputs "
                         f"(available: {', '.join(available or all_channels(ds))})")
    return xr.Dataset(out, attrs=ds.attrs)
