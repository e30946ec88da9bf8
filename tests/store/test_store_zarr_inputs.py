"""The job on Zarr stores: a local folder, ``file://`` and a real HTTP server on 127.0.0.1
give the same cache; values equal CDO's ``remapcon``; each source chunk is fetched once for
all the levels asked of it; a missing chunk is refused naming the store and the step;
``--append`` of a new range equals one build; the manifest records the store."""

from __future__ import annotations

import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import h5py
import numpy as np
import pytest
import xarray as xr
from conftest import assert_matches_cdo, build_cache, cli_in_process, run_cli

from era5cache.errors import InputError
from era5cache.format.manifest import read_manifest

RANGE = dict(start="2020-01-01T06", end="2020-01-02T18", step="6h")
CHANNELS = ("t2m", "z500", "z850", "u850", "tp")
SETTINGS = dict(variables=CHANNELS, chunk_steps=4, hash_inputs=False, **RANGE)


class LoggingHandler(SimpleHTTPRequestHandler):
    """Serves a folder and records each request's path on its server (``server.paths``)."""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        self.server.paths.append(self.path)


@pytest.fixture
def http_root(tmp_path):
    """(folder, base URL, requested paths) of a threaded HTTP server on 127.0.0.1 serving
    a fresh folder, as fsspec meets a remote store."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(LoggingHandler, directory=root))
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", server.paths
    server.shutdown()
    server.server_close()


def cache_data(out):
    with h5py.File(out / "era5_2deg.h5") as f:
        return f["data"][:]


def test_http_file_url_and_folder_build_the_same_cache(arco_store, http_root, tmp_path):
    root, base, paths = http_root
    shutil.copytree(arco_store, root / "arco.zarr")
    build_cache(inputs=(str(arco_store),), output=str(tmp_path / "a"), **SETTINGS)
    build_cache(inputs=(arco_store.as_uri(),), output=str(tmp_path / "b"), **SETTINGS)
    r = build_cache(inputs=(f"{base}/arco.zarr",), output=str(tmp_path / "c"), **SETTINGS)
    a = cache_data(tmp_path / "a")
    assert a.shape == (7, len(CHANNELS), 80, 180) and r.n_time == 7
    np.testing.assert_array_equal(a, cache_data(tmp_path / "b"))
    np.testing.assert_array_equal(a, cache_data(tmp_path / "c"))
    # geopotential's chunks hold all 37 levels: one request per step for z500 and z850
    z = [p for p in paths if p.startswith("/arco.zarr/geopotential/") and "/." not in p]
    assert len(z) == 7 and len(set(z)) == 7
    tp = [p for p in paths if p.startswith("/arco.zarr/total_precipitation/") and "/." not in p]
    assert len(tp) == 7 * 6 == len(set(tp))  # six hours summed into each step, each once
    m = read_manifest(tmp_path / "c")
    assert m.inputs == ({"url": f"{base}/arco.zarr", "metadata_sha256": m.inputs[0][
        "metadata_sha256"], "selection": {"start": "2020-01-01T06:00:00",
                                          "end": "2020-01-02T18:00:00", "step": "21600s"}},)
    assert m.accumulations == {"tp": 6}
    assert m.settings["step"] == "21600s"
    assert m.time.preliminary == tuple(f"2020-01-02T{h:02d}:00:00" for h in (0, 6, 12, 18))
    zarr_tp = xr.open_zarr(tmp_path / "c" / "era5_2deg.zarr")["tp"]
    assert zarr_tp.attrs["accumulation_hours"] == 6


def test_cache_values_equal_cdo_remapcon(arco_store, tmp_path, cdo):
    """The 2-degree values equal CDO's remapcon of the same steps exported to NetCDF."""
    build_cache(inputs=(str(arco_store),), output=str(tmp_path / "c"), **SETTINGS)
    got = xr.open_zarr(tmp_path / "c" / "era5_2deg.zarr")
    times = got["time"].values
    raw = xr.open_zarr(arco_store, chunks=None)
    src = raw[["2m_temperature"]].sel(time=times).rename(
        latitude="lat", longitude="lon", **{"2m_temperature": "t2m"})
    src["z500"] = raw["geopotential"].sel(time=times, level=500).drop_vars("level").rename(
        latitude="lat", longitude="lon")
    for v in src.variables:
        src[v].encoding = {}
    src.to_netcdf(tmp_path / "src.nc")
    assert_matches_cdo(got["t2m"].values, cdo, tmp_path / "src.nc", tmp_path, "t2m")
    assert_matches_cdo(got["z500"].values, cdo, tmp_path / "src.nc", tmp_path, "z500")


def test_missing_chunk_is_refused_naming_store_and_step(arco_store, tmp_path):
    copy = tmp_path / "holed.zarr"
    shutil.copytree(arco_store, copy)
    raw = xr.open_zarr(copy, chunks=None)
    k = int(np.searchsorted(raw["time"].values, np.datetime64("2020-01-01T12")))
    (copy / "2m_temperature" / f"{k}.0.0").unlink()
    with pytest.raises(InputError, match=r"holed\.zarr: 1 all-NaN time step\(s\) \(first "
                                         r"2020-01-01T12:00:00 in t2m"):
        build_cache(inputs=(str(copy),), output=str(tmp_path / "c"), **SETTINGS)
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_append_of_a_new_range_equals_one_build(arco_store, tmp_path):
    settings = dict(SETTINGS, start=None, end=None)
    build_cache(inputs=(str(arco_store),), output=str(tmp_path / "one"), **SETTINGS)
    out = str(tmp_path / "two")
    build_cache(inputs=(str(arco_store),), output=out, start="2020-01-01T06",
                end="2020-01-01T18", **{k: v for k, v in settings.items()
                                        if k not in ("start", "end")})
    r = build_cache_append(out, arco_store, "2020-01-02", "2020-01-02T18", settings)
    assert r.status != "up to date"
    np.testing.assert_array_equal(cache_data(tmp_path / "one"), cache_data(tmp_path / "two"))
    one, two = read_manifest(tmp_path / "one"), read_manifest(tmp_path / "two")
    assert [i["selection"]["start"] for i in two.inputs] == ["2020-01-01T06:00:00",
                                                             "2020-01-02T00:00:00"]
    assert one.time.preliminary == two.time.preliminary
    for ch in CHANNELS:
        for key in ("mean", "std"):
            assert np.isclose(one.statistics[ch][key], two.statistics[ch][key], rtol=1e-6)


def build_cache_append(out, store, start, end, settings):
    """``--append`` of ``store``'s steps ``start``..``end`` to the cache ``out``, in
    process."""
    from era5cache.config.recipe import PreprocessConfig, with_overrides
    from era5cache.store import job
    from era5cache.store.runners import InProcessRunner

    cfg = with_overrides(PreprocessConfig(), inputs=(str(store),), output=out, start=start,
                         end=end, **{k: v for k, v in settings.items()
                                     if k not in ("start", "end")})
    return job.run(cfg, progress=False, append=True, runner=InProcessRunner())


def test_same_store_and_range_is_up_to_date_until_its_metadata_changes(arco_store, tmp_path):
    copy = tmp_path / "store.zarr"
    shutil.copytree(arco_store, copy)
    out = str(tmp_path / "c")
    build_cache(inputs=(str(copy),), output=out, **SETTINGS)
    assert build_cache(inputs=(str(copy),), output=out, **SETTINGS).status == "up to date"
    assert build_cache(inputs=(str(copy),), output=out,
                       **dict(SETTINGS, end="2020-01-02T12")).status != "up to date"
    zattrs = copy / ".zmetadata"
    zattrs.write_text(zattrs.read_text().replace("2020-01-03T23:00:00", "2020-01-04T23:00:00"))
    r = build_cache(inputs=(str(copy),), output=out, **dict(SETTINGS, end="2020-01-02T12"))
    assert r.status != "up to date"  # the store was updated (last_updated)


@pytest.mark.slow
def test_dask_workers_read_the_store_over_http(arco_store, http_root, tmp_path):
    """The command itself, on Dask workers that fetch the store's chunks themselves."""
    root, base, paths = http_root
    shutil.copytree(arco_store, root / "arco.zarr")
    build_cache(inputs=(str(arco_store),), output=str(tmp_path / "a"), **SETTINGS)
    run_cli("preprocess", "--input", f"{base}/arco.zarr", "--output", tmp_path / "b",
            "--variables", ",".join(CHANNELS), "--chunk-steps", "4", "--start", RANGE["start"],
            "--end", RANGE["end"], "--step", "6h", "--workers", "2", "--no-progress")
    np.testing.assert_array_equal(cache_data(tmp_path / "a"), cache_data(tmp_path / "b"))
    z = [p for p in paths if p.startswith("/arco.zarr/geopotential/") and "/." not in p]
    assert len(z) == 7


def test_store_errors_are_one_line_through_the_command(arco_store, tmp_path):
    r = cli_in_process("preprocess", "--input", arco_store, "--output", tmp_path / "c",
                       "--variables", "t2m", "--in-process", "--no-progress")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "give --start and --end" in lines[0] and str(arco_store) in \
        lines[0]
