"""Values ERA5 never holds are refused in the source block, naming the variable and the step:
finite values outside the variable's physical range (undeclared fill values, other units),
and infinite values; NaN is missing data, never an error."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr

from era5cache.grid import SourceGrid
from era5cache.read.physical import KNOWN, quantity
from era5cache.regrid.adapter import regrid_dataarray
from era5cache.regrid.conservative import ConservativeRegridder
from era5cache.regrid.quality import NonFiniteValueError, OutOfRangeError, outside_steps

T2M = (KNOWN["t2m"].low, KNOWN["t2m"].high, "K")


def _grid() -> SourceGrid:
    return SourceGrid(np.arange(90.0, -90.5, -2.0), np.arange(0.0, 360.0, 2.0))


def _field(n: int = 10) -> xr.DataArray:
    g = _grid()
    rng = np.random.default_rng(0)
    data = (rng.normal(280, 15, (n, *g.shape))).astype(np.float32)
    data[:, 40:50, 20:40] = np.nan  # missing: fine
    return xr.DataArray(data, dims=("time", "lat", "lon"), name="t2m",
                        coords={"lat": g.lat, "lon": g.lon})


def _regrid(da: xr.DataArray, bounds=T2M) -> np.ndarray:
    return regrid_dataarray(da.chunk({"time": 4}), ConservativeRegridder.for_grid(_grid()),
                            bounds=bounds).values


@pytest.mark.parametrize("value", [1e30, 3.4e38, 9.96921e36, -32767.0, 9999.0, 15.0, 400.0])
def test_a_value_outside_the_physical_range_names_its_step(value):
    """A fill value the file does not declare, or degrees Celsius under 'K', anywhere in the
    field (the pole rows too, which the regridding never reads), is refused with the step's
    index along the whole array (step 6 is in the second Dask block)."""
    da = _field()
    da[6, 0, 17] = value  # the 90N row
    with pytest.raises(OutOfRangeError) as info:
        _regrid(da)
    err = info.value
    assert (err.variable, err.first, err.value) == ("t2m", 6, np.float32(value))
    assert f"[{T2M[0]:g}, {T2M[1]:g}] K" in err.hint
    again = pickle.loads(pickle.dumps(err))  # raised on a Dask worker
    assert (again.first, again.value, again.hint) == (err.first, err.value, err.hint)


def test_values_at_the_range_edges_and_nan_pass_and_regrid_as_without_the_check():
    da = _field()
    da[2, 30, 30], da[3, 31, 31] = T2M[0], T2M[1]
    np.testing.assert_array_equal(_regrid(da), _regrid(da, bounds=None))


def test_infinite_values_stay_infinite_value_errors():
    da = _field()
    da[5, 0, 3] = -np.inf  # poleward of the target: the range check finds it
    with pytest.raises(NonFiniteValueError) as info:
        _regrid(da)
    assert info.value.first == 5 and "infinite" in info.value.problem


def test_outside_steps_is_none_unless_a_step_is_outside():
    block = np.full((3, 4, 4), 280.0, np.float32)
    block[1] = np.nan
    assert outside_steps(block, *T2M[:2]) is None
    assert outside_steps(np.full((2, 3), np.nan, np.float32), *T2M[:2]) is None
    block[2, 1, 1] = 1e20
    np.testing.assert_array_equal(outside_steps(block, *T2M[:2]), [False, False, True])
    np.testing.assert_array_equal(outside_steps(block.transpose(1, 0, 2), *T2M[:2], 1),
                                  [False, False, True])


def test_known_quantities_of_channels():
    assert quantity("z500") is KNOWN["z"] and quantity("t850") is KNOWN["t"]
    assert quantity("t2m") is KNOWN["t2m"] and quantity("u100") is KNOWN["u100"]
    assert quantity("swvl1") is None and quantity("tp") is None
    for q in KNOWN.values():
        assert q.low < q.high and q.units
