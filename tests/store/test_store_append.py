"""``preprocess --append``: new months extend the cache, final ERA5 replaces preliminary ERA5T,
statistics stay those of the training period, readers of the old cache keep working, and the
result equals a build from all files at once, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from catalogue import cli

from era5cache import CachedERA5Dataset
from era5cache.config.sample import SampleSpec
from era5cache.sample.netcdf import write_sample

pytestmark = pytest.mark.slow

RECIPE = """
output: {output}
variables: [sst, t2m]
chunk_steps: {chunk_steps}
periods:
  train: ["2019-01-01T00", "2019-01-31T18"]
  val: ["2019-02-01T00", "2019-02-28T18"]
dask: {{workers: 1, memory_limit: 1GiB}}
"""


def _month(folder: Path, start: str, end: str, preliminary: int = 0, seed: int = 0) -> Path:
    return write_sample(folder, SampleSpec(start=start, end=end, resolution=1.0,
                                           variables=("sst", "t2m"), levels=(),
                                           preliminary_steps=preliminary, seed=seed))[0]


@pytest.fixture(scope="module")
def months(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("append_inputs")
    return {
        "jan": _month(tmp / "jan", "2019-01-20T00", "2019-01-31T18"),
        "feb": _month(tmp / "feb", "2019-02-01T00", "2019-02-06T18"),
        # The same February steps delivered earlier as ERA5T, with other values.
        "feb_t": _month(tmp / "feb_t", "2019-02-01T00", "2019-02-06T18", preliminary=24,
                        seed=7),
        "hourly": write_sample(tmp / "hourly", SampleSpec(
            start="2019-02-07T00", end="2019-02-07T23", step="1h", resolution=1.0,
            variables=("sst", "t2m"), levels=()))[0],
    }


def _recipe(tmp: Path, out: Path, chunk_steps: int = 10) -> Path:
    p = tmp / f"recipe_{out.name}_{chunk_steps}.yaml"
    p.write_text(RECIPE.format(output=out, chunk_steps=chunk_steps))
    return p


def _run(recipe: Path, *files: Path, append: bool = False, check: bool = True):
    args = ["preprocess", str(recipe), "--no-progress"]
    for f in files:
        args += ["--input", str(f)]
    if append:
        args.append("--append")
    r = cli(*args)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_append_replace_and_equal_to_one_build(months, tmp_path):
    out = tmp_path / "cache"
    recipe = _recipe(tmp_path, out)
    _run(recipe, months["jan"])
    jan = _manifest(out)
    assert jan["shape"][0] == 48 and jan["time"]["preliminary"] == []

    old = CachedERA5Dataset(out, split="all", seq_len=1, normalize=False)
    x_before = old[40][0].clone()  # maps the old HDF5 file

    # 1. February arrives as preliminary ERA5T.
    r = _run(recipe, months["feb_t"], append=True)
    assert "appended" in r.stdout and "24 steps still preliminary" in r.stdout
    m = _manifest(out)
    assert m["shape"][0] == 72 and m["time"]["end"] == "2019-02-06T18:00:00"
    assert len(m["time"]["preliminary"]) == 24
    assert m["time"]["preliminary"][0] == "2019-02-01T00:00:00"
    # Statistics are those of the training period (January), which did not change.
    assert m["statistics"] == jan["statistics"]
    # The four full January chunks were kept, not recomputed: same files, same inodes.
    assert m["chunks"]["reused"] == 4
    zarr = out / "era5_2deg.zarr"
    retired = out / ".retired" / "era5_2deg.zarr"
    for k in range(4):
        a, b = zarr / "t2m" / "c" / str(k) / "0" / "0", retired / "t2m" / "c" / str(k) / "0" / "0"
        assert a.stat().st_ino == b.stat().st_ino
    # The reader opened before the append still reads the old cache.
    assert len(old) == 47
    np.testing.assert_array_equal(old[40][0].numpy(), x_before.numpy())
    new = CachedERA5Dataset(out, split="all", seq_len=1, normalize=False)
    assert len(new) == 71
    np.testing.assert_array_equal(new[40][0].numpy(), x_before.numpy())
    feb_t_value = new[60][1].clone()

    # 2. The final ERA5 data for February replace the preliminary steps.
    r = _run(recipe, months["feb"], append=True)
    assert "24 steps replaced" in r.stdout
    m = _manifest(out)
    assert m["time"]["preliminary"] == [] and m["append"]["replaced_steps"] == 24
    final = CachedERA5Dataset(out, split="all", seq_len=1, normalize=False)
    assert not np.array_equal(final[60][1].numpy(), feb_t_value.numpy())

    # 3. Byte-identical to one build from both final files.
    ref = tmp_path / "ref"
    _run(_recipe(tmp_path, ref), months["jan"], months["feb"])
    want = _manifest(ref)
    assert m["outputs"] == want["outputs"] and m["statistics"] == want["statistics"]

    # 4. Late preliminary data never replace final steps.
    r = _run(recipe, months["feb_t"], append=True)
    m2 = _manifest(out)
    assert m2["append"]["kept_final_steps"] == 24, (m2["append"], r.stdout)
    assert m2["time"]["preliminary"] == []
    assert m2["outputs"] == want["outputs"]
    assert cli("verify", out).returncode == 0


def test_append_refuses_other_settings_and_steps(months, tmp_path):
    out = tmp_path / "cache"
    _run(_recipe(tmp_path, out), months["jan"])
    before = _manifest(out)["outputs"]
    r = _run(_recipe(tmp_path, out, chunk_steps=12), months["feb"], append=True, check=False)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "chunk_steps is 12 here but 10 in the cache" in lines[0]
    r = _run(_recipe(tmp_path, out), months["hourly"], append=True, check=False)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1
    assert months["hourly"].name in lines[0] and "time step 1h differs from the cache's 6h" \
        in lines[0]
    assert _manifest(out)["outputs"] == before
    assert cli("verify", out).returncode == 0


def test_append_without_a_cache_builds_one(months, tmp_path):
    out = tmp_path / "cache"
    r = _run(_recipe(tmp_path, out), months["jan"], append=True)
    assert r.stdout.startswith("built") and _manifest(out)["shape"][0] == 48


def test_append_keeps_the_codec_of_the_cache_it_extends(months, tmp_path):
    """A cache whose Zarr chunks use another codec (Zstd, as era5cache wrote them before it
    used Blosc) is extended by linking those chunks: the new store must keep that codec, or
    the linked chunks would not decode."""
    import shutil

    import xarray as xr

    from era5cache.store.zarrstore import stored_compressors

    out = tmp_path / "zstd_cache"
    recipe = _recipe(tmp_path, out)
    _run(recipe, months["jan"])
    store = out / "era5_2deg.zarr"
    assert stored_compressors(store, "t2m")[0]["name"] == "blosc"
    ds = xr.open_zarr(store).load()
    zstd = [{"name": "zstd", "configuration": {"level": 0, "checksum": False}}]
    enc = {c: {"chunks": (10, 80, 180), "compressors": zstd} for c in ("sst", "t2m")}
    enc["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64",
                   "chunks": (ds.sizes["time"],)}
    ds.to_zarr(tmp_path / "zstd.zarr", encoding=enc, zarr_format=3, consolidated=True)
    shutil.rmtree(store)
    shutil.move(tmp_path / "zstd.zarr", store)

    _run(recipe, months["feb"], append=True)
    assert stored_compressors(store, "t2m") == zstd
    both = tmp_path / "both"
    _run(_recipe(tmp_path, both), months["jan"], months["feb"])
    with xr.open_zarr(store) as a, xr.open_zarr(both / "era5_2deg.zarr") as b:
        for c in ("sst", "t2m"):
            np.testing.assert_array_equal(a[c].values, b[c].values)
    assert cli("verify", str(out)).returncode == 0
