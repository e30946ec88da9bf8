"""The bad-input catalogue (tests/catalogue.py) through the command line: one-line errors
naming the file, non-zero exit, and the published cache unchanged and sound; plus the
all-NaN "skip" policy and running out of disk space on a real (tmpfs) file system."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from catalogue import (
    CASES,
    COMMAND_CASES,
    all_nan_steps,
    cli,
    file_size_limit,
    job_args,
    other_month,
    publish_good_cache,
    run_case,
    run_command_case,
    write_good_sample,
)

from era5cache import CachedERA5Dataset

pytestmark = pytest.mark.slow  # each case runs the job through the command line

@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("catalogue")
    good, cache = publish_good_cache(work)
    return good, cache, work


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_and_cache_kept(case, published):
    good, cache, work = published
    outcome = run_case(case, good, cache, work)
    assert outcome.problems() == [], outcome.stderr


@pytest.mark.parametrize("case", COMMAND_CASES, ids=[c.name for c in COMMAND_CASES])
def test_command_line_mistake_is_one_line_exit_2(case, published):
    good, cache, work = published
    outcome = run_command_case(case, good, cache, work)
    assert outcome.problems() == [], outcome.stderr


def test_all_nan_steps_recorded_and_skipped_on_request(published, tmp_path):
    good, _, _ = published
    (bad,), _ = all_nan_steps(good, tmp_path / "in")
    out = tmp_path / "cache"
    r = cli(*job_args([bad], out, "--all-nan-steps", "skip"))
    assert r.returncode == 0, r.stderr
    assert "1 all-NaN steps skipped" in r.stdout
    m = json.loads((out / "manifest.json").read_text())
    skipped = np.datetime64("2019-01-02T06:00:00")
    assert m["time"]["skipped_all_nan"] == [
        {"time": str(skipped), "source": str(bad), "channels": ["t2m"]}]
    assert m["shape"][0] == 39 and m["time"]["zarr_count"] == 40
    assert m["time"]["gaps"] == [{"after": "2019-01-02T00:00:00",
                                  "before": "2019-01-02T12:00:00", "missing": 1}]
    # The Zarr store keeps the step as NaN; the training cache leaves it out.
    z = xr.open_zarr(out / "era5_2deg.zarr")
    assert bool(np.isnan(z["t2m"].sel(time=skipped).values).all())
    with h5py.File(out / "era5_2deg.h5", "r") as f:
        times = f["time"][:].astype("datetime64[s]")
        mean = f["mean"][:]
    assert skipped not in times and times.size == 39
    kept = z["t2m"].values[z["time"].values.astype("datetime64[s]") != skipped]
    assert mean[1] == pytest.approx(np.mean(kept.astype(np.float64)), rel=1e-6)
    # No training window spans the skipped step.
    ds = CachedERA5Dataset(out, split="all", seq_len=2, return_time=True)
    for i in range(len(ds)):
        t = ds[i][-1].numpy().astype("datetime64[s]")
        assert np.all(np.diff(t) == np.timedelta64(6, "h"))
    assert cli("verify", out).returncode == 0


def test_disk_full_then_resume_after_freeing_space(published, tmp_path):
    good, cache, _ = published
    before = json.loads((cache / "manifest.json").read_text())["outputs"]
    inputs, _ = other_month(good, tmp_path / "in")
    args = job_args(inputs, cache)
    r = cli(*args, preexec=file_size_limit(2_000_000))
    assert r.returncode == 2 and "out of disk space" in r.stderr
    assert json.loads((cache / "manifest.json").read_text())["outputs"] == before
    # Space is back: the run resumes with every Zarr chunk already written.
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    m = json.loads((cache / "manifest.json").read_text())
    assert m["chunks"]["resumed"] == m["chunks"]["count"] == 3
    assert m["time"]["start"] == "2019-03-01T00:00:00"
    assert cli("verify", cache).returncode == 0
    # Put the catalogue's cache back as it was for the other tests of this module.
    r = cli(*job_args([good], cache))
    assert r.returncode == 0 and json.loads(
        (cache / "manifest.json").read_text())["outputs"] == before


@pytest.fixture
def small_filesystem(tmp_path):
    """A 9 MiB tmpfs (needs permission to mount; skipped where there is none)."""
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=9m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_no_space_left_on_a_real_small_filesystem(small_filesystem, tmp_path):
    good = write_good_sample(tmp_path / "good")  # 40 steps: a 4.6 MB HDF5 file
    cache = small_filesystem / "cache"
    r = cli(*job_args([good], cache))
    assert r.returncode == 0, r.stderr
    before = json.loads((cache / "manifest.json").read_text())["outputs"]
    big = write_good_sample(tmp_path / "big", start="2019-02-01T00", end="2019-02-28T18")
    r = cli(*job_args([big], cache))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "No space left on device" in lines[0] and "published cache is unchanged" in lines[0]
    assert json.loads((cache / "manifest.json").read_text())["outputs"] == before
    assert cli("verify", cache).returncode == 0
    shutil.rmtree(cache / ".staging", ignore_errors=True)
