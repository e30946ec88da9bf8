"""The job's 16-bit cache (``dtype: bfloat16`` / ``float16``): normalised values within the
stated bound of the float32 Zarr store, recorded in the manifest, verified, appended."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import JOB_RECIPE, cli_in_process, run_cli

from era5cache import CachedERA5Dataset
from era5cache.format.encoding import HALF_ULP


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_16bit_cache_from_the_job(sample_new, tmp_path, dtype):
    out = tmp_path / "cache"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(JOB_RECIPE.format(inputs=sample_new, output=out) + f"dtype: {dtype}\n")
    run_cli("preprocess", recipe, "--no-progress")
    assert "sound" in run_cli("verify", out).stdout
    shown = run_cli("inspect", out).stdout
    assert f"storage     {dtype}, normalised" in shown
    m = json.loads((out / "manifest.json").read_text())
    rec = m["outputs"]["era5_2deg.h5"]
    assert rec["storage"] == dtype and m["settings"]["dtype"] == dtype
    ds = CachedERA5Dataset(out, split="all")
    assert ds.info.storage == dtype and ds.data.dtype.itemsize == 2
    # against the float32 Zarr store, computed independently in float64
    z = xr.open_zarr(out / "era5_2deg.zarr")
    phys = np.stack([z[c].values for c in ds.channels], axis=1).astype(np.float64)
    got = ds.read_steps(slice(None), normalize=False).astype(np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(phys))
    err = np.nanmax(np.abs(got - phys), axis=(0, 2, 3))
    zmax = np.nanmax(np.abs((phys - ds.info.mean[:, None, None])
                            / ds.info.std[:, None, None]), axis=(0, 2, 3))
    bound = zmax * HALF_ULP[dtype] * ds.info.std
    np.testing.assert_allclose([rec["encoding_error"][c] for c in ds.channels], bound,
                               rtol=1e-5)
    assert (err <= bound + np.nanmax(np.abs(phys), axis=(0, 2, 3)) * 2.0**-23).all()
    # a recipe asking for float32 is another job: the cache is rebuilt, not reused
    recipe.write_text(JOB_RECIPE.format(inputs=sample_new, output=out))
    r = run_cli("preprocess", recipe, "--no-progress")
    assert "up to date" not in r.stdout
    assert CachedERA5Dataset(out, split="all").info.storage == "float32"


def test_bad_dtype_is_one_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inputs: [x]\ndtype: int8\n")
    r = cli_in_process("preprocess", recipe)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert f"{recipe}: dtype: Input should be 'float32', 'float16' or 'bfloat16'" in r.stderr
