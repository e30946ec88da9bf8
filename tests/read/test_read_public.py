"""``era5cache.open_era5``: the normalised Dataset against netCDF4's raw decoding (NetCDF, both
CDS layouts) and eccodes' (GRIB), channels selected by name."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
from conftest import raw_decode

import era5cache
from era5cache.errors import InputError
from era5cache.sample.grib import grib_from_netcdf


def _ascending(path, var) -> np.ndarray:
    """netCDF4's raw decode of ``var``, latitude made ascending (files store it descending)."""
    with netCDF4.Dataset(path) as nc:
        lat = nc["latitude"][:] if "latitude" in nc.variables else nc["lat"][:]
    return raw_decode(path, var)[..., np.argsort(lat), :]


@pytest.mark.parametrize("layout", ["new", pytest.param("legacy", marks=pytest.mark.slow)])
def test_channels_equal_netcdf4s_decoding(request, layout):
    folder = request.getfixturevalue(f"sample_{layout}")
    ds = era5cache.open_era5(folder, channels=["z500", "t2m"])
    try:
        assert list(ds.data_vars) == ["z500", "t2m"] and ds.attrs["time_step"] == "21600s"
        assert ds.sizes == {"time": 236, "lat": 181, "lon": 360}
        assert (np.diff(ds["lat"].values) > 0).all() and ds["t2m"].dtype == np.float32
        jan = ds.sel(time=slice("2019-01", "2019-01"))
        single = folder / "era5_single-levels_2019-01.nc"
        pressure = folder / "era5_pressure-levels_2019-01.nc"
        want_t2m = _ascending(single, "t2m").astype(np.float32)
        want_z = _ascending(pressure, "z")[:, 0].astype(np.float32)  # level 500 first
        np.testing.assert_array_equal(jan["t2m"].values, want_t2m)
        np.testing.assert_array_equal(jan["z500"].values, want_z)
        if layout == "legacy":  # the last 8 steps arrive preliminary
            assert (ds["expver"].values[-8:] == "0005").all()
    finally:
        ds.close()


def test_grib_equals_eccodes_decoding(sample_new, tmp_path):
    import eccodes

    grib = grib_from_netcdf(sample_new / "era5_single-levels_2019-01.nc", tmp_path / "sl.grib",
                            edition=1)
    ds = era5cache.open_era5([grib], channels=["t2m"])
    with open(grib, "rb") as f:
        fields = []
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            if eccodes.codes_get(h, "shortName") == "2t":
                nj, ni = eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni")
                fields.append(eccodes.codes_get_values(h).reshape(nj, ni)[::-1])
            eccodes.codes_release(h)
    np.testing.assert_array_equal(ds["t2m"].values, np.array(fields, np.float32))
    ds.close()


def test_errors_name_the_file(sample_new):
    with pytest.raises(InputError, match="requested variable 'tp' is not in the inputs "
                                         r"\(available: .*t2m"):
        era5cache.open_era5(sample_new, channels=["t2m", "tp"])
