"""The job on GRIB inputs, end to end: the sample's two months as MARS would deliver them
(GRIB 1 single levels, GRIB 2 pressure levels, and both in one file), checked against CDO
remapcon of the same GRIB files; the real CDS GRIB (regional) stops with a coverage error."""

from __future__ import annotations

import subprocess
import sys

import netCDF4
import numpy as np
import pytest
import xarray as xr
from conftest import JOB_RECIPE, REALDATA, assert_matches_cdo, need_realdata, run_cli

from era5cache.sample.grib import grib_from_netcdf


@pytest.fixture(scope="module")
def gribs(sample_new, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grib_job")
    inputs = tmp / "inputs"
    inputs.mkdir()
    files = {}
    for month in ("01", "02"):
        sl = grib_from_netcdf(sample_new / f"era5_single-levels_2019-{month}.nc",
                              tmp / f"sl-{month}.grib", edition=1)
        pl = grib_from_netcdf(sample_new / f"era5_pressure-levels_2019-{month}.nc",
                              tmp / f"pl-{month}.grib2", edition=2)
        files[month] = (sl, pl)
    # January in one mixed file (pressure levels first), February as two files
    (inputs / "era5-2019-01.grib").write_bytes(files["01"][1].read_bytes()
                                               + files["01"][0].read_bytes())
    for f in files["02"]:
        (inputs / f.name).write_bytes(f.read_bytes())
    out = tmp / "cache"
    recipe = tmp / "recipe.yaml"
    recipe.write_text(JOB_RECIPE.format(inputs=inputs, output=out))
    run_cli("preprocess", recipe, "--no-progress")
    return out, files, inputs


@pytest.mark.cdo
@pytest.mark.slow
def test_grib_job_equals_cdo_remapcon_of_the_grib(gribs, cdo, tmp_path):
    out, files, inputs = gribs
    ds = xr.open_zarr(out / "era5_2deg.zarr")
    assert ds.sizes["time"] == 236 and sorted(ds.data_vars) == ["sst", "t2m", "z500"]
    assert ds["t2m"].attrs["units"] == "K"
    for month, (sl, pl) in files.items():
        got = ds.sel(time=f"2019-{month}")
        for var, cdo_name in (("t2m", "2t"), ("sst", "sst")):
            assert_matches_cdo(got[var].values, cdo, sl, tmp_path, cdo_name, rtol=1e-6)
        ref_file = tmp_path / f"z-{month}.nc"
        grid = tmp_path / "target_grid.txt"
        subprocess.run([cdo, "-s", "-f", "nc4", "-b", "F64", f"remapcon,{grid}",
                        "-sellevel,50000", str(pl), str(ref_file)], check=True,
                       capture_output=True)
        with netCDF4.Dataset(ref_file) as nc:
            ref = nc["z"][:, 0].filled(np.nan)
        assert (np.abs(got["z500"].values - ref) / np.abs(ref)).max() <= 1e-6, month
    # the index files went into the job's scratch folder, removed with it
    assert not list(inputs.glob("*.idx")) and not list(out.rglob("*.idx"))
    r = run_cli("verify", out)
    assert "sound" in r.stdout


@pytest.mark.slow
def test_real_regional_grib_stops_with_coverage_error(tmp_path):
    need_realdata()
    r = subprocess.run([sys.executable, "-m", "era5cache.cli", "preprocess", "--input",
                        str(REALDATA / "era5-2mt-2019-03-uk.grib"), "--output",
                        str(tmp_path / "o"), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "era5-2mt-2019-03-uk.grib" in lines[0] and "does not cover" in lines[0]
    assert not (tmp_path / "o" / "manifest.json").exists()
