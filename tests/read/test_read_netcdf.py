"""The reader against raw netCDF4 decodes, on both layouts and on real CDS files."""

from __future__ import annotations

import shutil
import zipfile

import netCDF4
import numpy as np
import pytest
import xarray as xr
from conftest import need_realdata, raw_decode, realdata_files

from era5cache.errors import InputError
from era5cache.read.channels import select_channels
from era5cache.read.combine import open_era5
from era5cache.read.normalise import open_file
from era5cache.read.options import ReadOptions


def _raw_sorted(path, var):
    """Raw decode re-ordered to lat ascending (file order is descending)."""
    with netCDF4.Dataset(path) as ds:
        latname = "latitude"
        lat = ds[latname][:]
    raw = raw_decode(path, var)
    return raw[..., np.argsort(lat), :]


def test_new_layout_values(sample_new):
    e = open_era5([sample_new])
    ds = e.dataset
    assert ds.sizes["time"] == 236 and e.axis.step == "21600s" and not e.axis.gaps
    assert (np.diff(ds["lat"].values) > 0).all()
    f = sample_new / "era5_pressure-levels_2019-02.nc"
    want = _raw_sorted(f, "z")[:, 0]  # level 500
    got = select_channels(ds, ["z500"])["z500"].sel(time=slice("2019-02", "2019-02")).values
    np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.mark.slow  # every value of the 2-month legacy sample (the quick loop: public)
def test_legacy_layout_values_decoded_per_file(sample_legacy):
    e = open_era5([sample_legacy])
    ds = e.dataset
    jan = sample_legacy / "era5_single-levels_2019-01.nc"
    feb = sample_legacy / "era5_single-levels_2019-02.nc"
    got = ds["t2m"].values
    want_jan = _raw_sorted(jan, "t2m")
    raw_feb = _raw_sorted(feb, "t2m")  # (time, expver, lat, lon)
    want_feb = np.where(np.isnan(raw_feb[:, 0]), raw_feb[:, 1], raw_feb[:, 0])
    want = np.concatenate([want_jan, want_feb])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # Preliminary steps recorded, and final data elsewhere.
    assert len(e.preliminary) == 8
    assert (ds["expver"].values[-8:] == "0005").all() and (ds["expver"].values[:-8] == "0001").all()


@pytest.mark.slow  # both 2-month samples
def test_both_layouts_agree(sample_new, sample_legacy):
    """The same fields written in both layouts read back equal up to int16 packing."""
    a = open_era5([sample_new]).dataset["sst"].values
    b = open_era5([sample_legacy]).dataset["sst"].values
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, atol=2e-3, equal_nan=True)


@pytest.mark.parametrize("path", realdata_files() or [None],
                         ids=lambda p: getattr(p, "name", "none"))
def test_realdata_against_raw_decode(path):
    need_realdata()
    e = open_era5([path])
    ds = e.dataset
    with netCDF4.Dataset(path) as nc:
        lat = np.asarray(nc["latitude"][:])
        lon = np.asarray(nc["longitude"][:])
        names = [v for v in nc.variables if nc[v].ndim >= 3]
    for var in names:
        raw = raw_decode(path, var)
        if raw.ndim == 4:  # legacy expver dimension: final slot wins where it holds data
            has_final = ~np.isnan(raw[:, 0]).all(axis=(1, 2))
            raw = np.where(has_final[:, None, None], raw[:, 0], raw[:, 1])
        raw = raw[:, np.argsort(lat)][:, :, np.argsort(np.mod(lon, 360))]
        np.testing.assert_allclose(ds[var].values, raw, rtol=1e-6, atol=1e-5, equal_nan=True,
                                   err_msg=var)
    assert (np.diff(ds["lon"].values) > 0).all() and ds["lon"].values.min() >= 0
    assert np.all(np.diff(ds["time"].values) > np.timedelta64(0))


def test_realdata_expver_and_steps():
    need_realdata()
    files = {p.name: p for p in realdata_files()}
    eric = open_era5([files["new_eric157_monthly_t2m_slt_mixed-expver_india.nc"]])
    assert eric.axis.step == "1M"
    assert [str(t)[:7] for t in eric.preliminary] == ["2024-12"]
    cg = open_era5([files["old_cgalsal_monthly_u100_v100_expverdim.nc"]])
    assert cg.dataset.sizes["time"] == 514
    assert [str(t)[:7] for t in cg.preliminary] == ["2021-09", "2021-10"]
    assert np.isfinite(cg.dataset["u100"].values).all()
    uach = open_era5([files["new_uach_sst_landnan_chile.nc"]])
    assert uach.axis.irregular  # 1st and 15th of each month is not a regular step
    sst = uach.dataset["sst"].values
    assert np.isnan(sst).sum(axis=(1, 2)).tolist() == [13] * 600


def test_duplicates_identical_dropped_conflicting_rejected(sample_new, tmp_path):
    src = sample_new / "era5_single-levels_2019-01.nc"
    copy = tmp_path / "copy.nc"
    shutil.copy(src, copy)
    e = open_era5([src, copy])
    assert e.dropped_duplicates == 124 and e.dataset.sizes["time"] == 124
    bad = tmp_path / "bad.nc"
    shutil.copy(src, bad)
    with netCDF4.Dataset(bad, "a") as ds:
        ds["t2m"][3] = ds["t2m"][3] + 1.0
    with pytest.raises(InputError, match=r"bad\.nc: time step 2019-01-01T18.*conflicts"):
        open_era5([src, bad])


def test_final_replaces_preliminary(tmp_path):
    from era5cache.config.sample import SampleSpec
    from era5cache.sample.netcdf import write_sample

    spec = dict(start="2019-01-01", end="2019-01-02T18", resolution=4.0, variables=("t2m",))
    prelim = write_sample(tmp_path / "p", SampleSpec(**spec, preliminary_steps=8, seed=1))[0]
    final = write_sample(tmp_path / "f", SampleSpec(**spec, seed=2))[0]
    e = open_era5([prelim, final])
    assert len(e.preliminary) == 0 and e.dataset.sizes["time"] == 8
    np.testing.assert_array_equal(e.dataset["t2m"].values,
                                  open_era5([final]).dataset["t2m"].values)


def test_zip_archive_with_instant_and_accum_members(sample_new, tmp_path):
    z = tmp_path / "download.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(sample_new / "era5_single-levels_2019-01.nc",
                 "data_stream-oper_stepType-instant.nc")
        zf.write(sample_new / "era5_pressure-levels_2019-01.nc",
                 "data_stream-oper_stepType-accum.nc")
    e = open_era5([z], options=ReadOptions(extract_dir=tmp_path / "x"))
    assert set(e.dataset.data_vars) == {"sst", "t2m", "z"}


def test_bad_inputs_one_line_errors(tmp_path):
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"this is not netcdf")
    with pytest.raises(InputError, match=r"junk\.nc: not a readable NetCDF file"):
        open_file(junk)
    with pytest.raises(InputError, match=r"nope\*\.nc: no such input file"):
        open_era5([tmp_path / "nope*.nc"])


def test_missing_channel_lists_available(sample_new):
    ds = open_era5([sample_new]).dataset
    with pytest.raises(InputError, match=r"'u10' is not in the inputs \(available: .*z500"):
        select_channels(ds, ["u10"])
    with pytest.raises(InputError, match="no level 700"):
        select_channels(ds, ["z700"])


def test_different_grids_rejected(sample_new, tmp_path):
    from era5cache.config.sample import SampleSpec
    from era5cache.sample.netcdf import write_sample

    other = write_sample(tmp_path, SampleSpec(start="2019-03-01", end="2019-03-01T18",
                                              resolution=2.0, variables=("t2m",)))[0]
    with pytest.raises(InputError, match="grid .* differs from"):
        open_era5([sample_new / "era5_single-levels_2019-01.nc", other])


def test_truncated_files_are_errors(sample_new, tmp_path):
    classic = tmp_path / "classic" / "era5_single-levels_2019-01.nc"  # netCDF3, as legacy
    classic.parent.mkdir()
    with xr.open_dataset(sample_new / "era5_single-levels_2019-01.nc") as ds:
        ds.isel(valid_time=slice(0, 8)).to_netcdf(classic, format="NETCDF3_64BIT")
    for src, expect in ((classic, "truncated netCDF3"),
                        (sample_new / "era5_single-levels_2019-01.nc",
                         "not a readable NetCDF file")):
        cut = tmp_path / src.name
        cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
        with pytest.raises(InputError, match=f"{cut.name}: {expect}"):
            open_file(cut)


def test_unexpected_units_are_an_error(sample_new, tmp_path):
    src = sample_new / "era5_single-levels_2019-01.nc"
    bad = tmp_path / "celsius.nc"
    shutil.copy(src, bad)
    with netCDF4.Dataset(bad, "a") as ds:
        ds["t2m"].units = "degC"
    with pytest.raises(InputError, match=r"celsius\.nc: variable 't2m' is in 'degC', ERA5 "
                                         r"delivers it in 'K'"):
        open_era5([bad])
    assert open_era5([bad], variables=["sst"]).dataset["sst"].attrs["units"] == "K"


def test_single_step_files_with_a_scalar_time(sample_new, tmp_path):
    """One field per file, time as a scalar coordinate and no time dimension (what cfgrib
    and xarray write for one step): each file is one step, and they combine into a series
    equal to the month file's first steps."""
    src = sample_new / "era5_single-levels_2019-01.nc"
    with xr.open_dataset(src) as ds:
        ds = ds.isel(valid_time=slice(0, 3)).load()
    files = []
    for i in (2, 0, 1):
        f = tmp_path / f"step{i}.nc"
        ds.isel(valid_time=i).to_netcdf(f)
        files.append(f)
    with xr.open_dataset(files[0]) as one:
        assert "valid_time" not in one.dims and one["valid_time"].ndim == 0
    with open_file(files[0]) as one:
        assert one.sizes["time"] == 1 and one["expver"].values.tolist() == ["0001"]
    got = open_era5(files).dataset
    with open_file(src) as whole:
        want = whole.isel(time=slice(0, 3))
        np.testing.assert_array_equal(got["time"].values, want["time"].values)
        np.testing.assert_array_equal(got["t2m"].values, want["t2m"].values)
        np.testing.assert_array_equal(got["sst"].values, want["sst"].values)


def _with_levels(src, path, name: str, values, units: str):
    with xr.open_dataset(src) as ds:
        ds = ds.isel(valid_time=slice(0, 4)).load()
    ds = ds.rename({"pressure_level": name})
    ds = ds.assign_coords({name: (name, np.asarray(values, dtype=np.float64),
                                  {"units": units})})
    ds.to_netcdf(path)
    return path


def test_pressure_levels_in_pa_whatever_the_name(sample_new, tmp_path):
    """CDO's conversions name the vertical coordinate ``plev`` and give it in Pa: the
    levels are read in hPa from their units, so ``z500`` is found and equal to the CDS
    file's; a vertical coordinate that is not a pressure is refused, naming the file."""
    src = sample_new / "era5_pressure-levels_2019-01.nc"
    plev = _with_levels(src, tmp_path / "cdo.nc", "plev", [50000.0, 85000.0], "Pa")
    with open_file(plev) as got, open_file(src) as want:
        assert got["level"].values.tolist() == [500.0, 850.0]
        z = select_channels(got, ["z500"])["z500"].values
        np.testing.assert_array_equal(z, want["z"].sel(level=500.0).values[:4])
    mbar = _with_levels(src, tmp_path / "mbar.nc", "isobaricInhPa", [500, 850], "millibars")
    with open_file(mbar) as got:
        assert got["level"].values.tolist() == [500.0, 850.0]
    theta = _with_levels(src, tmp_path / "theta.nc", "level", [320.0, 350.0], "K")
    with pytest.raises(InputError, match=r"theta.nc: vertical coordinate 'level' is in 'K', "
                                         r"not a pressure"):
        open_file(theta)


def _edited(src, dst, change):
    shutil.copy(src, dst)
    with netCDF4.Dataset(dst, "a") as ds:
        change(ds)
    return dst


@pytest.mark.parametrize("name, change, message", [
    ("no_time_units", lambda ds: ds["valid_time"].delncattr("units"),
     "time coordinate 'valid_time' has no units attribute, not a time since a date"),
    ("noleap", lambda ds: ds["valid_time"].setncattr("calendar", "noleap"),
     "uses the 'noleap' calendar; ERA5 uses the proleptic Gregorian calendar"),
    ("day360", lambda ds: ds["valid_time"].setncattr("calendar", "360_day"),
     "uses the '360_day' calendar"),
    ("nan_latitude", lambda ds: ds["latitude"].__setitem__(3, np.nan),
     "latitude coordinate 'latitude' holds nan at index 3"),
    ("lat_beyond_pole", lambda ds: ds["latitude"].__setitem__(0, 91.0),
     "latitude coordinate 'latitude' holds 91, beyond the poles"),
    ("nan_longitude", lambda ds: ds["longitude"].__setitem__(5, np.nan),
     "longitude coordinate 'longitude' holds nan at index 5"),
    ("no_units", lambda ds: ds["t2m"].delncattr("units"),
     "variable 't2m' has no units attribute; ERA5 delivers it in 'K'"),
])
def test_coordinates_and_units_era5_never_has_are_errors(sample_new, tmp_path, name, change,
                                                          message):
    """Each of these once became a cache silently: a time axis of 1970-01-13 with a 6 s step,
    two latitude rows changed, 273 K missing."""
    bad = _edited(sample_new / "era5_single-levels_2019-01.nc", tmp_path / f"{name}.nc",
                  change)
    with pytest.raises(InputError) as info:
        open_era5([bad], variables=["t2m"])
    assert str(info.value).startswith(f"{bad}: ") and message in str(info.value)


@pytest.mark.slow  # CDO's cyclic column on a 2-month file
def test_a_cyclic_longitude_column_is_dropped(sample_new, tmp_path):
    """CDO and NCL write global grids with both 0 and 360 (the first column repeated): the
    repeat is dropped, the values are those of the file without it; any other repeated
    longitude is an error."""
    src = sample_new / "era5_single-levels_2019-01.nc"
    with xr.open_dataset(src) as ds:
        ds = ds.load()
    cyclic = xr.concat([ds, ds.isel(longitude=[0]).assign_coords(longitude=[360.0])],
                       dim="longitude")
    cyclic.to_netcdf(tmp_path / "cyclic.nc")
    got = open_era5([tmp_path / "cyclic.nc"]).dataset
    want = open_era5([src]).dataset
    np.testing.assert_array_equal(got["lon"].values, want["lon"].values)
    np.testing.assert_array_equal(got["t2m"].values, want["t2m"].values)
    twice = xr.concat([ds, ds.isel(longitude=[5])], dim="longitude")
    twice.to_netcdf(tmp_path / "twice.nc")
    with pytest.raises(InputError, match=r"twice\.nc: longitude 5 appears twice"):
        open_era5([tmp_path / "twice.nc"])
