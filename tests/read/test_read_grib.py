"""GRIB inputs (editions 1 and 2): decoded values against CDO's decoding of the same file and
against the NetCDF they were encoded from; mixed files, bitmaps, ensembles, ERA5T, ZIP
archives, index files; and the bad files, each one line naming the file."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REALDATA, need_realdata

from era5cache.config.sample import SampleSpec
from era5cache.errors import InputError
from era5cache.read.combine import open_era5
from era5cache.read.files import expand_inputs
from era5cache.read.normalise import open_file, open_parts
from era5cache.read.options import ReadOptions
from era5cache.sample.grib import Field, grib_from_netcdf, write_grib
from era5cache.sample.netcdf import write_sample

REAL_GRIB = REALDATA / "era5-2mt-2019-03-uk.grib"


def _quantum(x: np.ndarray, bits: int = 16) -> float:
    """Largest rounding error of simple packing with ``bits`` bits over the range of ``x``."""
    return float(np.nanmax(x) - np.nanmin(x)) / (2**bits - 1)


@pytest.fixture(scope="module")
def gribs(tmp_path_factory):
    """Ten days of the sample (1 degree, CDS layout) as GRIB 1 (single levels) and GRIB 2
    (pressure levels), and both in one file, as MARS writes a mixed request."""
    tmp = tmp_path_factory.mktemp("grib")
    write_sample(tmp / "nc", SampleSpec(start="2019-01-01T00", end="2019-01-10T18",
                                        resolution=1.0))
    sl = tmp / "nc" / "era5_single-levels_2019-01.nc"
    pl = tmp / "nc" / "era5_pressure-levels_2019-01.nc"
    g1 = grib_from_netcdf(sl, tmp / "sl.grib1", edition=1)
    g2 = grib_from_netcdf(pl, tmp / "pl.grib2", edition=2)
    mixed = tmp / "mixed.grib"
    mixed.write_bytes(g2.read_bytes() + g1.read_bytes())
    return {"sl": sl, "pl": pl, "g1": g1, "g2": g2, "mixed": mixed, "tmp": tmp}


@pytest.mark.slow  # CDO decodes a real CDS GRIB file
def test_real_cds_grib_equals_cdo_decoding(cdo, tmp_path):
    need_realdata()
    nc = tmp_path / "uk.nc"
    subprocess.run([cdo, "-s", "-f", "nc4", "copy", str(REAL_GRIB), str(nc)], check=True)
    grib2 = _to_edition_2(REAL_GRIB, tmp_path / "uk.grib2")  # as `grib_set -s edition=2`
    with open_file(nc) as ref:  # CDO keeps GRIB's name 2t: read as t2m
        want = ref["t2m"].values
        times = ref["time"].values
    for path in (REAL_GRIB, grib2):
        with open_file(path) as got:
            assert list(got.data_vars) == ["t2m"] and got["t2m"].attrs["units"] == "K"
            assert got.sizes == {"time": 744, "lat": 33, "lon": 49}
            np.testing.assert_array_equal(got["time"].values, times)
            assert (got["expver"].values == "0001").all()
            np.testing.assert_array_equal(got["lat"].values, np.arange(50, 58.01, 0.25))
            np.testing.assert_array_equal(got["t2m"].values, want)


def _to_edition_2(src: Path, dst: Path) -> Path:
    import eccodes

    with open(src, "rb") as f, open(dst, "wb") as out:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            eccodes.codes_set(h, "edition", 2)
            eccodes.codes_write(h, out)
            eccodes.codes_release(h)
    return dst


@pytest.mark.slow  # CDO converts a file
def test_cdo_grib2_of_ecmwf_parameters_is_an_unknown_parameter(cdo, tmp_path):
    """CDO 2.1 writes ECMWF's GRIB 1 parameters into GRIB 2 as local discipline 255, which no
    table defines: named as such, not read as an unnamed field."""
    need_realdata()
    grib2 = tmp_path / "cdo.grib2"
    subprocess.run([cdo, "-s", "-f", "grb2", "copy", str(REAL_GRIB), str(grib2)], check=True)
    with pytest.raises(InputError, match=r"cdo.grib2: message 1 holds a parameter eccodes "
                                         r"does not know \(paramId 0"):
        open_file(grib2)


@pytest.mark.parametrize("key", ["g1", *(pytest.param(k, marks=pytest.mark.slow)
                                         for k in ("g2", "mixed"))])
def test_sample_grib_equals_its_netcdf(gribs, key):
    with open_file(gribs["sl"]) as sl, open_file(gribs["pl"]) as pl:
        want = {"t2m": sl["t2m"].values, "sst": sl["sst"].values, "z": pl["z"].values}
        times = sl["time"].values
    names = {"g1": ["sst", "t2m"], "g2": ["z"], "mixed": ["z", "sst", "t2m"]}[key]
    parts = [p.dataset for p in open_parts(gribs[key])]
    assert [list(p.data_vars) for p in parts] == [[n] for n in names]  # one part a variable
    for p in parts:
        (v,) = p.data_vars
        np.testing.assert_array_equal(p["time"].values, times)
        got = p[v].values
        assert got.dtype == np.float32 and got.shape == want[v].shape
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want[v]))  # bitmap: sst land
        assert np.nanmax(np.abs(got - want[v])) <= _quantum(want[v]) * 0.51 + 1e-3
        if v == "z":
            np.testing.assert_array_equal(p["level"].values, [500.0, 850.0])
        p.close()


def test_one_message_is_one_step(gribs):
    with open_file(gribs["sl"]) as sl:
        f = sl["t2m"].isel(time=3)
        lat, lon, t, values = sl["lat"].values[::-1], sl["lon"].values, f["time"].values, \
            f.values[::-1]
    one = write_grib([Field("t2m", None, t, values)], lat, lon, gribs["tmp"] / "one.grib")
    with open_file(one) as got:
        assert got.sizes["time"] == 1 and got["time"].values[0] == t
        assert np.abs(got["t2m"].values[0] - f.values).max() <= _quantum(values)


def _first_steps(path: Path, n: int):
    """Grid (north to south, as GRIB is written), times and ``t2m`` fields (north to south)
    of the first ``n`` steps of a NetCDF file."""
    with open_file(path) as sl:
        lat, lon = sl["lat"].values[::-1], sl["lon"].values
        return lat, lon, sl["time"].values[:n], [sl["t2m"].isel(time=i).values[::-1]
                                                 for i in range(n)]


def test_era5t_and_final_in_one_file_final_wins(gribs):
    lat, lon, times, fields = _first_steps(gribs["sl"], 6)
    path = gribs["tmp"] / "era5t.grib"
    # final for steps 0-3; ERA5T (+1 K) for steps 2-5, as a download spanning the switch
    msgs = [Field("t2m", None, times[i], fields[i]) for i in range(4)]
    msgs += [Field("t2m", None, times[i], fields[i] + 1.0, "0005") for i in range(2, 6)]
    write_grib(msgs, lat, lon, path)
    inputs = open_era5([path])
    ds = inputs.dataset
    np.testing.assert_array_equal(ds["time"].values, times)
    assert list(ds["expver"].values) == ["0001"] * 4 + ["0005"] * 2
    got = ds["t2m"].values
    for i in range(6):
        want = fields[i][::-1] + (1.0 if i >= 4 else 0.0)
        assert np.abs(got[i] - want).max() <= _quantum(fields[i]) + 1e-4, i
    assert inputs.dropped_duplicates == 2
    inputs.close()


def test_ensemble_grib_needs_a_member(gribs):
    lat, lon, t, base = _first_steps(gribs["sl"], 2)
    path = gribs["tmp"] / "eda.grib"
    write_grib([Field("t2m", None, t[i], base[i] + k, number=k) for i in range(2)
                for k in range(3)], lat, lon, path)
    with pytest.raises(InputError, match=r"eda.grib: holds 3 ensemble members .*member:"):
        open_file(path)
    with open_file(path, options=ReadOptions(member=2)) as got:
        for i in range(2):
            assert np.abs(got["t2m"].values[i] - (base[i][::-1] + 2)).max() <= 0.01
    with open_file(path, options=ReadOptions(member="mean")) as got:
        assert np.abs(got["t2m"].values[0] - (base[0][::-1] + 1)).max() <= 0.01


@pytest.mark.slow  # zips and reads the 2-month GRIB sample twice
def test_grib_in_a_cds_zip_and_in_a_folder(gribs, tmp_path):
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(gribs["g1"], "data_stream-oper_stepType-instant.grib")
    files = expand_inputs([str(archive)], tmp_path / "unzipped")
    assert [f.name for f in files] == ["data_stream-oper_stepType-instant.grib"]
    with open_file(files[0]) as got, open_file(gribs["g1"]) as want:
        np.testing.assert_array_equal(got["t2m"].values, want["t2m"].values)
    folder = expand_inputs([str(gribs["tmp"])])
    assert {f.name for f in folder} >= {"sl.grib1", "pl.grib2", "mixed.grib"}


def test_no_index_files_beside_the_input_nor_anywhere(gribs):
    """The inputs may be read-only: reading writes nothing beside them (cfgrib would write
    an index file there), nor in the working folder."""
    before = set(gribs["tmp"].iterdir())
    cwd = set(Path.cwd().iterdir())
    with open_file(gribs["mixed"]) as ds:
        assert ds["t2m"].isel(time=0).values.shape == (181, 360)
    assert set(gribs["tmp"].iterdir()) == before and set(Path.cwd().iterdir()) == cwd


def test_identical_duplicate_messages_are_one_field(gribs, tmp_path):
    twice = tmp_path / "twice.grib"
    twice.write_bytes(gribs["g1"].read_bytes() * 2)
    with open_file(twice) as got, open_file(gribs["g1"]) as want:
        np.testing.assert_array_equal(got["sst"].values, want["sst"].values)


# --- bad files: one line naming the file and the problem ---

def _one_line(exc: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


def test_truncated_grib(gribs, tmp_path):
    data = gribs["g1"].read_bytes()
    cut = tmp_path / "cut.grib"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(InputError) as exc:
        open_file(cut)
    assert "truncated or damaged GRIB file: message 80 " in _one_line(exc, cut)  # the last
    empty = tmp_path / "empty.grib"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="holds no GRIB message"):
        open_file(empty)


def test_unknown_parameter(gribs, tmp_path):
    import eccodes

    path = tmp_path / "unknown.grib2"
    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    for key, value in (("discipline", 0), ("parameterCategory", 0), ("parameterNumber", 250)):
        eccodes.codes_set(h, key, value)
    with open(path, "wb") as f:
        eccodes.codes_write(h, f)
    eccodes.codes_release(h)
    with pytest.raises(InputError) as exc:
        open_file(path)
    assert "message 1 holds a parameter eccodes does not know" in _one_line(exc, path)


@pytest.mark.parametrize("sample,grid", [("reduced_gg_pl_32_grib2", "reduced_gg"),
                                         ("sh_ml_grib2", "sh")])
def test_grids_that_are_not_regular_lat_lon(tmp_path, sample, grid):
    import eccodes

    path = tmp_path / f"{grid}.grib2"
    h = eccodes.codes_grib_new_from_samples(sample)
    with open(path, "wb") as f:
        eccodes.codes_write(h, f)
    eccodes.codes_release(h)
    with pytest.raises(InputError) as exc:
        open_file(path)
    assert f"is on a {grid} grid (GRIB gridType); era5cache regrids regular " \
           "latitude-longitude grids only" in _one_line(exc, path)


def test_two_grids_in_one_file_and_across_files(gribs, tmp_path):
    with open_file(gribs["sl"]) as sl:
        coarse = sl["t2m"].isel(time=0, lat=slice(None, None, 2), lon=slice(None, None, 2))
        lat, lon = coarse["lat"].values[::-1], coarse["lon"].values
        one = write_grib([Field("t2m", None, coarse["time"].values, coarse.values[::-1])],
                         lat, lon, tmp_path / "coarse.grib")
    both = tmp_path / "both.grib"
    both.write_bytes(gribs["g2"].read_bytes() + one.read_bytes())
    with pytest.raises(InputError) as exc:
        open_file(both)
    assert "is on another grid than message 1 (91x180" in _one_line(exc, both)
    with pytest.raises(InputError, match=r"coarse.grib: grid 91x180 .* differs from"):
        open_era5([gribs["g2"], one])


def test_conflicting_duplicate_messages(gribs, tmp_path):
    with open_file(gribs["sl"]) as sl:
        f = sl["t2m"].isel(time=0)
        lat, lon = sl["lat"].values[::-1], sl["lon"].values
        t, v = f["time"].values, f.values[::-1]
    path = write_grib([Field("t2m", None, t, v), Field("t2m", None, t, v + 3.0)], lat, lon,
                      tmp_path / "dup.grib")
    with pytest.raises(InputError) as exc:
        open_file(path)
    assert "two different messages for 't2m'" in _one_line(exc, path)


def test_a_field_missing_from_the_hypercube(gribs, tmp_path):
    """z on 500 and 850 hPa at two steps, but 850 hPa missing at the second: a one-line
    error naming the file, not a field of fill values."""
    lat, lon, times, fields = _first_steps(gribs["sl"], 2)
    msgs = [Field("z", 500.0, times[0], fields[0] * 100), Field("z", 850.0, times[0],
                                                                  fields[0] * 50),
            Field("z", 500.0, times[1], fields[1] * 100)]
    path = write_grib(msgs, lat, lon, tmp_path / "holey.grib")
    with pytest.raises(InputError) as exc:
        open_file(path)
    assert ("GRIB messages of 'z' (isobaricInhPa) do not form one field per step and level: "
            "1 of 4 (step, member, level) fields are missing") in _one_line(exc, path)
    with open_file(write_grib(msgs[:2], lat, lon, tmp_path / "one.grib")) as ds:
        np.testing.assert_array_equal(ds["level"].values, [500.0, 850.0])
        assert np.abs(ds["z"].values[0, 1] - fields[0][::-1] * 50).max() <= \
            _quantum(fields[0] * 50)


def test_variables_on_different_levels_keep_their_own(tmp_path):
    """u on five levels and v on three in one file (xarray cannot align them on one level
    axis): each keeps its own levels as channels, with the values a file per variable
    gives."""
    from era5cache.read.channels import select_channels

    lat, lon = np.arange(90.0, -90.1, -2.0), np.arange(0.0, 360.0, 2.0)
    times = np.datetime64("2020-01-01T00", "s") + np.arange(3) * np.timedelta64(6, "h")
    rng = np.random.default_rng(1)
    levels = {"u": (1000, 850, 700, 500, 250), "v": (850, 700, 500)}
    fields = {name: [Field(name, lev, t, rng.normal(0, 10, (lat.size, lon.size)))
                     for t in times for lev in levs] for name, levs in levels.items()}
    both = write_grib(fields["u"] + fields["v"], lat, lon, tmp_path / "uv.grib", edition=1)
    single = {n: write_grib(f, lat, lon, tmp_path / f"{n}.grib", edition=1)
              for n, f in fields.items()}
    inputs = open_era5([both])
    assert sorted(inputs.available) == sorted(
        f"{n}{lev}" for n, levs in levels.items() for lev in levs)
    got = select_channels(inputs.dataset, ["v700", "u250", "u850"])
    for ch, name, lev in (("v700", "v", 700), ("u250", "u", 250), ("u850", "u", 850)):
        want = open_era5([single[name]]).dataset[name].sel(level=lev).values
        np.testing.assert_array_equal(got[ch].values, want)
        assert got[ch].attrs["units"] == "m s**-1"
    with pytest.raises(InputError, match="requested variable 'v250' is not in the inputs"):
        select_channels(inputs.dataset, ["v250"], available=inputs.available)


def _relevel(src: Path, dst: Path, level_type: str, level: int, at: int = 1) -> Path:
    """``src`` with its messages at level ``at`` (hPa) moved to ``level`` of ``level_type``."""
    import eccodes

    with open(src, "rb") as f, open(dst, "wb") as out:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            if eccodes.codes_get(h, "level") == at:
                eccodes.codes_set(h, "typeOfLevel", level_type)
                eccodes.codes_set(h, "level", level)
            eccodes.codes_write(h, out)
            eccodes.codes_release(h)
    return dst


def test_levels_in_pa_and_on_two_kinds_of_level(tmp_path):
    """GRIB 2 writes pressures in Pa (``isobaricInPa``): whole hPa join the hPa axis, a
    level below 1 hPa is refused; a variable on pressure and model levels is refused."""
    lat, lon = np.arange(90.0, -90.1, -2.0), np.arange(0.0, 360.0, 2.0)
    t0 = np.datetime64("2020-01-01T00", "s")
    rng = np.random.default_rng(2)
    fields = [Field("t", lev, t0 + k * np.timedelta64(6, "h"),
                    rng.normal(250, 10, (lat.size, lon.size)))
              for k in range(2) for lev in (500, 1)]
    src = write_grib(fields, lat, lon, tmp_path / "t.grib2", edition=2)
    whole = _relevel(src, tmp_path / "pa.grib2", "isobaricInPa", 30000)  # 1 hPa -> 300 hPa
    ds = open_era5([whole]).dataset
    assert ds["level"].values.tolist() == [300.0, 500.0]
    np.testing.assert_array_equal(ds["t"].sel(level=300.0).values,
                                  open_era5([src]).dataset["t"].sel(level=1.0).values)
    below = _relevel(src, tmp_path / "below.grib2", "isobaricInPa", 50)
    with pytest.raises(InputError, match=r"below\.grib2: pressure level 0\.5 hPa is not a "
                                         r"whole number of hPa"):
        open_era5([below])
    two = _relevel(src, tmp_path / "two.grib2", "hybrid", 60)
    with pytest.raises(InputError, match=r"two\.grib2: variable 't' comes on 2 kinds of "
                                         r"level \(hybrid, isobaricInhPa\)"):
        open_era5([two])
