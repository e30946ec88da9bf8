"""The job's pieces in-process on tiny data (no cluster): the all-NaN policy, the manifest
record, the staging journal and publication, the job's fingerprint."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr

from era5cache.config.recipe import PreprocessConfig
from era5cache.errors import InputError
from era5cache.format.layout import H5_NAME, MANIFEST_NAME, ZARR_NAME
from era5cache.store.identity import job_fingerprint
from era5cache.store.plan import StorePlan
from era5cache.store.record import all_nan_policy
from era5cache.store.staging import STAGING_NAME, Staging, discard, publish
from era5cache.timeaxis import analyse


def _plan(n: int = 6) -> StorePlan:
    times = np.datetime64("2019-01-01T00", "s") + np.arange(n) * np.timedelta64(6, "h")
    return StorePlan(dataset=xr.Dataset(), times=times, expver=np.full(n, "0001"),
                     source=np.array([f"f{i // 3}.nc" for i in range(n)], dtype=object),
                     new_index=np.arange(n), reuse=np.zeros(2, bool), axis=analyse(times),
                     chunk_steps=3)


def test_all_nan_policy_fails_naming_the_file_or_skips_and_records():
    plan = _plan()
    flags = {"sst": np.array([0, 0, 1, 0, 1, 0], bool), "t2m": np.array([0, 0, 1, 0, 0, 0], bool)}
    with pytest.raises(InputError) as exc:
        all_nan_policy(plan, flags, ["sst", "t2m"], PreprocessConfig())
    msg = str(exc.value)
    assert msg.startswith("f0.nc: 2 all-NaN time step(s) (first 2019-01-01T12:00:00 in sst, t2m")
    assert "also in 1 other file(s)" in msg
    keep, records = all_nan_policy(plan, flags, ["sst", "t2m"],
                                   PreprocessConfig(all_nan_steps="skip"))
    assert keep.tolist() == [True, True, False, True, False, True]
    assert records == [
        {"time": "2019-01-01T12:00:00", "source": "f0.nc", "channels": ["sst", "t2m"]},
        {"time": "2019-01-02T00:00:00", "source": "f1.nc", "channels": ["sst"]}]
    keep, records = all_nan_policy(plan, {"sst": np.zeros(6, bool)}, ["sst"],
                                   PreprocessConfig())
    assert keep.all() and records == []


def test_staging_resumes_only_the_same_job(tmp_path):
    st = Staging.begin(tmp_path, "job-a")
    assert not st.resumed and st.done == set()
    st.zarr.mkdir()
    (st.zarr / "zarr.json").write_text("{}")
    st.record([0, 2])
    again = Staging.begin(tmp_path, "job-a")
    assert again.resumed and again.done == {0, 2}
    other = Staging.begin(tmp_path, "job-b")  # another job: the staged chunks are dropped
    assert not other.resumed and other.done == set() and not other.zarr.exists()


def test_publish_moves_outputs_manifest_last_and_is_idempotent(tmp_path):
    out = tmp_path
    (out / H5_NAME).write_text("old h5")
    (out / ZARR_NAME).mkdir()
    (out / ZARR_NAME / "old").write_text("old chunk")
    (out / MANIFEST_NAME).write_text('{"old": true}')
    st = Staging.begin(out, "job")
    assert publish(out) is False  # nothing ready: no staged manifest
    st.zarr.mkdir()
    (st.zarr / "new").write_text("new chunk")
    st.h5.write_text("new h5")
    st.manifest.write_text('{"new": true}')
    assert publish(out) is True
    assert (out / H5_NAME).read_text() == "new h5"
    assert (out / ZARR_NAME / "new").read_text() == "new chunk"
    assert json.loads((out / MANIFEST_NAME).read_text()) == {"new": True}
    assert (out / ".retired" / ZARR_NAME / "old").read_text() == "old chunk"
    assert not (out / STAGING_NAME).exists()
    assert publish(out) is False and (out / H5_NAME).read_text() == "new h5"
    discard(out)  # nothing staged: a no-op
    assert (out / MANIFEST_NAME).exists()


def test_fingerprint_follows_inputs_and_output_settings(tmp_path):
    f = tmp_path / "a.nc"
    f.write_bytes(b"x" * 10)
    cfg = PreprocessConfig(inputs=(str(f),))
    fp = job_fingerprint(cfg, None)
    assert fp == job_fingerprint(cfg, None)
    assert job_fingerprint(cfg.model_copy(update={"chunk_steps": 7}), None) != fp
    assert job_fingerprint(cfg.model_copy(update={"output": "elsewhere"}), None) == fp
    os.utime(f, (1, 1))
    assert job_fingerprint(cfg, None) != fp


def test_a_training_period_without_data_is_refused_naming_the_recipe():
    from era5cache.errors import ConfigError
    from era5cache.store.plan import check_training_period
    from era5cache.timeaxis import Period, Periods

    times = _plan().times
    inside = Periods(train=Period("2019-01-01T06", "2019-01-01T06"))
    check_training_period(times, inside, "r.yaml")
    check_training_period(times, Periods(), "r.yaml")  # no period: every step trains
    with pytest.raises(ConfigError) as info:
        check_training_period(times, Periods(train=Period("2018-01-01", "2018-12-31")),
                              "r.yaml")
    assert str(info.value).startswith("r.yaml: periods.train [2018-01-01, 2018-12-31] holds "
                                      "none of the cache's 6 time steps (2019-01-01T00:00:00")
