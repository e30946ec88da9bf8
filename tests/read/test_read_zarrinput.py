"""Zarr stores as inputs (ARCO-ERA5 and WeatherBench2 layouts): values, time selection,
accumulation sums, validity, and the one-line errors, against the store's raw values read
with zarr/xarray and sums computed in float64."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

from era5cache.errors import InputError
from era5cache.read.channels import base_names, select_channels
from era5cache.read.combine import open_era5
from era5cache.read.longnames import short_names
from era5cache.read.options import ReadOptions
from era5cache.read.zarrinput import is_store
from era5cache.timeaxis import TimeSelection

CHANNELS = ["t2m", "z500", "u850", "tp"]
HOUR = np.timedelta64(1, "h")


def read(url, start=None, end=None, step=None, channels=CHANNELS):
    """The store's channels as the job reads them, and the inputs."""
    sel = TimeSelection.parse(start, end, step)
    inputs = open_era5([str(url)], base_names(channels), ReadOptions(time=sel))
    return select_channels(inputs.dataset, channels).compute(), inputs


def raw_at(store, name, times, level=None):
    """The store's own values of ``name`` at ``times`` (and ``level``), latitude ascending."""
    raw = xr.open_zarr(store, chunks=None)[name]
    if level is not None:
        raw = raw.sel(level=level)
    return raw.sel(time=times).values[:, ::-1, :]


def test_arco_store_values_selected_and_summed(arco_store):
    got, inputs = read(arco_store, "2020-01-01T06", "2020-01-02T18", "6h")
    times = np.arange(np.datetime64("2020-01-01T06"), np.datetime64("2020-01-02T19"), 6 * HOUR)
    np.testing.assert_array_equal(got["time"].values.astype("datetime64[h]"), times)
    np.testing.assert_array_equal(got["t2m"].values, raw_at(arco_store, "2m_temperature",
                                                            times))
    np.testing.assert_array_equal(got["z500"].values, raw_at(arco_store, "geopotential",
                                                             times, 500))
    np.testing.assert_array_equal(got["u850"].values, raw_at(
        arco_store, "u_component_of_wind", times, 850))
    hourly = np.stack([raw_at(arco_store, "total_precipitation", times - k * HOUR)
                       for k in range(6)]).astype(np.float64)
    np.testing.assert_allclose(got["tp"].values, hourly.sum(axis=0), rtol=1e-6)
    assert got["tp"].attrs["accumulation_hours"] == 6
    assert "accumulation_hours" not in got["t2m"].attrs
    # the second day is ERA5T (valid_time_stop is the first day)
    assert list(got["expver"].values) == ["0001"] * 3 + ["0005"] * 4
    assert inputs.stores[0].url == str(arco_store)
    assert inputs.stores[0].selection == {"start": "2020-01-01T06:00:00",
                                          "end": "2020-01-02T18:00:00", "step": "21600s"}


def test_hourly_tp_is_era5s_value_without_subsampling(arco_store):
    got, _ = read(arco_store, "2020-01-01T00", "2020-01-01T05", channels=["tp"])
    times = np.arange(np.datetime64("2020-01-01T00"), np.datetime64("2020-01-01T06"), HOUR)
    np.testing.assert_array_equal(got["tp"].values, raw_at(arco_store, "total_precipitation",
                                                           times))
    assert got["tp"].attrs["accumulation_hours"] == 1


def wb2_copy(arco_store, path):
    """The ARCO store's 6-hourly steps laid out as a WeatherBench2 store: (time, longitude,
    latitude) with latitude ascending, 13 levels without units, no validity attributes,
    ``total_precipitation_6hr`` summed in float64 from the hourly values."""
    raw = xr.open_zarr(arco_store, chunks=None)
    times = np.arange(np.datetime64("2020-01-01T06"), np.datetime64("2020-01-02T19"), 6 * HOUR)
    ds = raw[["2m_temperature", "geopotential"]].sel(time=times, level=[500, 850, 1000])
    tp = sum(raw["total_precipitation"].sel(time=times - k * HOUR).values.astype(np.float64)
             for k in range(6))
    ds["total_precipitation_6hr"] = (("time", "latitude", "longitude"), tp.astype(np.float32),
                                     {"units": "m"})
    ds = ds.isel(latitude=slice(None, None, -1)).transpose("time", "level", "longitude",
                                                           "latitude")
    ds.attrs = {}
    ds["level"].attrs = {}
    for v in ds.variables:
        ds[v].encoding = {}
    ds.to_zarr(path, zarr_format=2, consolidated=True)
    return path


def test_wb2_layout_transposed_ascending_equals_arco(arco_store, tmp_path):
    wb2 = wb2_copy(arco_store, tmp_path / "wb2.zarr")
    channels = ["t2m", "z500", "tp"]
    a, _ = read(arco_store, "2020-01-01T06", "2020-01-02T18", "6h", channels)
    b, inputs = read(wb2, channels=channels)
    for ch in ("t2m", "z500"):
        np.testing.assert_array_equal(a[ch].values, b[ch].values)
    np.testing.assert_allclose(a["tp"].values, b["tp"].values, rtol=1e-6)
    assert b["tp"].attrs["accumulation_hours"] == 6  # WeatherBench2's own 6-hour sum
    assert set(b["expver"].values) == {"0001"}  # no validity attributes: all final
    assert inputs.stores[0].selection == {}


def test_store_needs_start_and_end(arco_store):
    with pytest.raises(InputError, match=r"store\.zarr: .*give --start and --end"):
        read(arco_store)


@pytest.mark.parametrize(("start", "end", "step", "said"), [
    ("2020-01-02T00", "2020-01-03", None, "2020-01-03T00:00:00 is outside the store.s valid"),
    ("2019-12-31T18", "2020-01-01T06", None, "2019-12-31T18:00:00 is outside"),
    # the 6-hour sum at 00 needs 19-23 of the day before, outside the valid data
    ("2020-01-01T00", "2020-01-01T12", "6h", "2019-12-31T19:00:00 .*summed into"),
    ("2020-01-01T00", "2020-01-01T12", "90min", "not a multiple|neither divides"),
])
def test_time_outside_valid_range_is_one_line_error(arco_store, start, end, step, said):
    with pytest.raises((InputError, ValueError), match=said) as err:
        read(arco_store, start, end, step)
    assert "\n" not in str(err.value)


def test_not_a_zarr_store_is_named(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    url = (tmp_path / "empty.zarr").as_uri()
    assert is_store(url)
    with pytest.raises(InputError, match=r"empty\.zarr: not a readable Zarr store"):
        read(url, "2020-01-01", "2020-01-02")


def test_file_url_and_folder_read_the_same(arco_store, tmp_path):
    a, _ = read(arco_store, "2020-01-01T03", "2020-01-01T09")
    b, _ = read(arco_store.as_uri(), "2020-01-01T03", "2020-01-01T09")
    xr.testing.assert_identical(a, b)


def test_files_take_the_same_time_selection(sample_new):
    """--start/--end/--step on NetCDF files: the steps of the full read, no more."""
    channels = ["sst", "t2m", "z500"]
    full = select_channels(open_era5([sample_new], base_names(channels)).dataset, channels)
    got, inputs = read(sample_new, "2019-01-10T06", "2019-02-03", "12h", channels)
    want = full.sel(time=slice("2019-01-10T06", "2019-02-03")).isel(time=slice(1, None, 2))
    assert want["time"].values[0] == np.datetime64("2019-01-10T12")
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    for ch in channels:
        np.testing.assert_array_equal(got[ch].values, want[ch].values)
    assert inputs.axis.step == "43200s"


def test_long_names_prefer_the_period_of_the_step():
    names = ["total_precipitation", "total_precipitation_6hr", "2m_temperature", "level"]
    assert short_names(names, 6.0) == {"total_precipitation_6hr": "tp", "2m_temperature": "t2m"}
    assert short_names(names, 1.0) == {"total_precipitation": "tp", "2m_temperature": "t2m"}
    assert short_names(names, 12.0)["total_precipitation"] == "tp"  # the shortest sums up


def test_a_store_and_files_in_one_run_are_refused(arco_store, sample_new):
    with pytest.raises(InputError, match="a Zarr store and files in one run"):
        open_era5([str(arco_store), str(sample_new)], ["t2m"])


def test_store_copy_without_consolidated_metadata_still_opens(arco_store, tmp_path):
    copy = tmp_path / "plain.zarr"
    shutil.copytree(arco_store, copy)
    (copy / ".zmetadata").unlink()
    a, ia = read(arco_store, "2020-01-01T03", "2020-01-01T04", channels=["t2m"])
    b, ib = read(copy, "2020-01-01T03", "2020-01-01T04", channels=["t2m"])
    np.testing.assert_array_equal(a["t2m"].values, b["t2m"].values)
    assert ia.stores[0].metadata_sha256 != ib.stores[0].metadata_sha256


def test_opening_builds_no_graph_over_the_unselected_axis(arco_store):
    """Two steps of a 96-step axis: one read task each variable, whatever the axis holds
    (ARCO's million chunks a variable would otherwise be a million tasks)."""
    _, inputs = read(arco_store, "2020-01-01T06", "2020-01-01T07", channels=["t2m", "z500"])
    reads = [k for k in inputs.dataset["t2m"].data.__dask_graph__()
             if "store-read" in str(k)]
    assert len(reads) == 1
    assert xr.open_zarr(arco_store, chunks=None)["time"].size == 96


def test_public_open_era5_takes_stores_and_a_time_selection(arco_store):
    import era5cache

    got = era5cache.open_era5(arco_store, ["t2m", "tp"], start="2020-01-01T06",
                              end="2020-01-02", step="6h")
    want, _ = read(arco_store, "2020-01-01T06", "2020-01-02", "6h", ["t2m", "tp"])
    xr.testing.assert_identical(got.compute().drop_attrs(deep=False),
                                want.drop_attrs(deep=False))
    assert got.attrs["time_step"] == "21600s" and got["tp"].attrs["accumulation_hours"] == 6
    with pytest.raises(InputError, match=r"store\.zarr: step 7h neither divides a day"):
        era5cache.open_era5(arco_store, ["t2m"], step="7h")


def test_a_store_variable_in_other_units_is_refused(arco_store, tmp_path):
    copy = tmp_path / "mm.zarr"
    shutil.copytree(arco_store, copy)
    meta = (copy / ".zmetadata").read_text()
    (copy / ".zmetadata").write_text(meta.replace('"units": "m"', '"units": "mm"'))
    with pytest.raises(InputError, match=r"mm\.zarr: variable 'total_precipitation' is in "
                                         r"'mm'; ERA5 delivers it in 'm'"):
        read(copy, "2020-01-01T06", "2020-01-01T12", channels=["tp"])


def test_a_validity_attribute_that_is_no_date_is_named(arco_store, tmp_path):
    copy = tmp_path / "odd.zarr"
    shutil.copytree(arco_store, copy)
    for name in (".zmetadata", ".zattrs"):  # zarr reads the group's own .zattrs
        meta = (copy / name).read_text()
        (copy / name).write_text(meta.replace('"valid_time_stop": "2020-01-01"',
                                              '"valid_time_stop": "soon"'))
    with pytest.raises(InputError, match=r"odd\.zarr: attribute valid_time_stop 'soon' is not "
                                         "an ISO date"):
        read(copy, "2020-01-01T06", "2020-01-01T12", channels=["t2m"])
