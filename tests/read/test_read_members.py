"""Ensemble inputs: a ``number`` dimension, or CDO's one variable per member (``t2m``,
``t2m_2``, ...): refused without ``member``, one member by index, or their mean; values
against the members as written."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from era5cache.errors import InputError
from era5cache.read.combine import open_era5
from era5cache.read.normalise import open_file
from era5cache.read.options import ReadOptions

OFFSETS = (0.0, 1.5, -4.0)  # member k = the CDS field + OFFSETS[k]


@pytest.fixture(scope="module")
def base(sample_new, tmp_path_factory):
    src = sample_new / "era5_single-levels_2019-01.nc"
    with xr.open_dataset(src) as ds:
        ds = ds.isel(valid_time=slice(0, 6)).load()
    tmp = tmp_path_factory.mktemp("members")
    plain = tmp / "plain.nc"
    ds.to_netcdf(plain)
    eda = ds.drop_vars("number")
    eda = xr.concat([eda + k for k in OFFSETS], dim="number").assign_coords(
        number=("number", [0, 1, 2]))
    for v in ("t2m", "sst"):
        eda[v].attrs = ds[v].attrs
    eda.to_netcdf(tmp / "eda.nc")
    cdo = ds.drop_vars("number")
    for i, k in enumerate(OFFSETS[1:], start=2):  # as `cdo -f nc4 copy` of an ensemble GRIB
        for v in ("t2m", "sst"):
            cdo[f"{v}_{i}"] = (ds[v] + k).assign_attrs(ds[v].attrs)
    cdo.to_netcdf(tmp / "cdo.nc")
    with open_file(plain) as want:
        fields = {v: want[v].values for v in ("t2m", "sst")}
    return tmp, fields


@pytest.mark.parametrize("name", ["eda.nc", "cdo.nc"])
def test_ensembles_are_refused_without_member(base, name):
    tmp, _ = base
    with pytest.raises(InputError, match=rf"{name}: holds 3 ensemble members .*set member: in "
                                         r"the recipe \(an index 0..2, or mean\)"):
        open_file(tmp / name)
    with pytest.raises(InputError, match=rf"{name}: member 3 asked for, the file holds 3"):
        open_file(tmp / name, options=ReadOptions(member=3))


@pytest.mark.parametrize("name", ["eda.nc", "cdo.nc"])
def test_one_member_or_the_mean(base, name):
    tmp, fields = base
    for k in (0, 2):
        with open_file(tmp / name, options=ReadOptions(member=k)) as got:
            assert sorted(got.data_vars) == ["sst", "t2m"] and "number" not in got.coords
            for v, field in fields.items():
                np.testing.assert_allclose(got[v].values, field + OFFSETS[k], rtol=1e-6)
            assert got["t2m"].attrs["units"] == "K"
    got = open_era5([tmp / name], options=ReadOptions(member="mean")).dataset
    assert sorted(got.data_vars) == ["sst", "t2m"]
    for v, field in fields.items():
        np.testing.assert_allclose(got[v].values, field + np.mean(OFFSETS), rtol=1e-6)
    assert np.array_equal(np.isnan(got["sst"].values), np.isnan(fields["sst"]))
