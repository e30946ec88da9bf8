"""Ensemble members: ERA5's EDA and other ensembles arrive with a ``number`` dimension, or,
converted by CDO, as one variable per member (``z``, ``z_2`` ... ``z_10``). The cache holds
one field per channel: the recipe's ``member`` picks one (an index from 0, in file order) or
their mean; without it such a file is refused, never read as unrelated variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import xarray as xr

from ..errors import InputError

Member = int | Literal["mean"] | None
_CDO_MEMBER = re.compile(r"(?P<base>.+)_(?P<n>[0-9]+)")


def cdo_members(ds: xr.Dataset) -> dict[str, list[str]]:
    """{variable: [its member variables in order]} for CDO's ``name``, ``name_2``, ...
    (only where ``name`` and ``name_2`` are both there)."""
    found: dict[str, dict[int, str]] = {}
    for v in ds.data_vars:
        m = _CDO_MEMBER.fullmatch(str(v))
        if m and m["base"] in ds.data_vars and int(m["n"]) >= 2:
            found.setdefault(m["base"], {})[int(m["n"])] = str(v)
    return {base: [base] + [extra[k] for k in sorted(extra)]
            for base, extra in found.items() if 2 in extra}


def _refuse(path: Path, what: str, n: int, member: Member) -> None:
    if member is None:
        raise InputError(f"{path}: holds {n} ensemble members ({what}); set member: in the "
                         f"recipe (an index 0..{n - 1}, or mean)")
    if member != "mean" and not 0 <= member < n:
        raise InputError(f"{path}: member {member} asked for, the file holds {n} ensemble "
                         f"members ({what}): 0..{n - 1}")


def pick_member(ds: xr.Dataset, path: Path, member: Member) -> xr.Dataset:
    """``ds`` with one member per variable where ``member`` is an index; with ``"mean"``
    the members stay, for :func:`mean_of_members` after chunking (lazily). A single
    ``number`` is dropped. :class:`InputError` naming the file for an ensemble without
    ``member`` or an index it does not hold."""
    if "number" in ds.dims and ds.sizes["number"] > 1:
        _refuse(path, "dimension 'number'", ds.sizes["number"], member)
        if member != "mean":
            ds = ds.isel(number=member, drop=True)
    elif "number" in ds.variables:
        ds = ds.drop_vars("number").squeeze([d for d in ("number",) if d in ds.dims], drop=True)
    for base, names in cdo_members(ds).items():
        _refuse(path, f"variables {names[0]}, {names[1]} .. {names[-1]}, as CDO writes them",
                len(names), member)
        if member != "mean":
            ds = ds.drop_vars([n for n in names if n != names[member]])
            if names[member] != base:
                ds = ds.rename({names[member]: base})
    return ds


def mean_of_members(ds: xr.Dataset) -> xr.Dataset:
    """The members' mean per variable (NaN where any member is NaN), lazily on chunked data;
    the ``number`` coordinate and CDO's member variables are gone."""
    if "number" in ds.dims:
        ds = ds.mean("number", skipna=False, keep_attrs=True)
        ds = ds.drop_vars("number", errors="ignore")
    for base, names in cdo_members(ds).items():
        mean = xr.concat([ds[n] for n in names], dim="member", coords="minimal",
                         compat="override").mean("member", skipna=False, keep_attrs=True)
        ds = ds.drop_vars(names).assign({base: mean})
    return ds
