"""``era5cache verify`` checks meaning, not only checksums: a cache whose HDF5 channels or
statistics do not match the Zarr store (what the append of stop 20 published: channels
stacked in the store's order under the recipe's names, checksums of its own bytes) exits 2,
naming the file and the channel."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from conftest import build_cache, cli_in_process

from era5cache.config.sample import SampleSpec
from era5cache.format.checksum import file_sha256
from era5cache.sample.netcdf import write_sample
from era5cache.store.crosscheck import meaning_problems, sample_steps


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crosscheck")
    write_sample(tmp / "in", SampleSpec(start="2020-01-01", end="2020-01-10T18", resolution=2.0,
                                        variables=("sst", "t2m", "z"), levels=(500,)))
    build_cache(inputs=(str(tmp / "in"),), output=str(tmp / "cache"),
                variables=("t2m", "sst", "z500"), chunk_steps=8)
    return tmp / "cache"


def _tampered(cache, tmp_path, change) -> object:
    """A copy of ``cache`` whose HDF5 file ``change(f)`` altered, with the manifest's size
    and checksum of the HDF5 file written anew (so only meaning can tell)."""
    out = tmp_path / "tampered"
    shutil.copytree(cache, out)
    with h5py.File(out / "era5_2deg.h5", "r+") as f:
        change(f)
    m = json.loads((out / "manifest.json").read_text())
    rec = m["outputs"]["era5_2deg.h5"]
    rec["size"] = (out / "era5_2deg.h5").stat().st_size
    rec["sha256"] = file_sha256(out / "era5_2deg.h5")
    (out / "manifest.json").write_text(json.dumps(m))
    return out


def _swap(order):
    def change(f):
        for name in ("data", "mean", "std"):
            d = f[name]
            d[...] = d[()][:, order] if name == "data" else d[()][order]
    return change


def test_a_sound_cache_verifies(cache):
    assert meaning_problems(cache) == []
    r = cli_in_process("verify", cache)
    assert r.returncode == 0 and r.stdout.strip().endswith("sound")


def test_channels_in_the_stores_order_fail_verify(cache, tmp_path):
    """/data and the statistics in the Zarr store's (sorted) order, /channel in the
    recipe's: the broken append exactly."""
    bad = _tampered(cache, tmp_path, _swap([1, 0, 2]))  # t2m,sst,z500 -> sst,t2m,z500
    r = cli_in_process("verify", bad)  # the command a user runs, its exit status
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert "channel 't2m'" in lines[0] and "era5_2deg.h5" in lines[0]
    assert "channels out of order" in lines[0]


def test_statistics_of_another_channel_fail_verify(cache, tmp_path):
    def swap_stats(f):
        for name in ("mean", "std"):
            f[name][...] = f[name][()][[2, 1, 0]]

    bad = _tampered(cache, tmp_path, swap_stats)
    problems = meaning_problems(bad)
    assert problems and all("/mean" in p or "/std" in p for p in problems)
    assert any("/mean of channel 't2m'" in p for p in problems)
    # the sampled estimate (a training period too big to recompute) tells them apart too
    sampled = meaning_problems(bad, stats_bytes=0)
    assert any("/mean of channel 't2m'" in p and "sampled" in p for p in sampled)
    assert meaning_problems(cache, stats_bytes=0) == []
    assert cli_in_process("verify", bad).returncode == 2


def test_one_changed_value_on_a_sampled_step_fails(cache, tmp_path):
    def nudge(f):
        f["data"][0, 2, 40, 90] = np.nextafter(f["data"][0, 2, 40, 90], np.float32(1e9))

    problems = meaning_problems(_tampered(cache, tmp_path, nudge))
    assert len(problems) == 1 and "channel 'z500'" in problems[0] and "2020-01-01" in problems[0]


def test_sample_is_bounded_and_spread():
    zidx = np.arange(10_000)
    steps = sample_steps(zidx, chunk_steps=120)
    chunks = np.unique(zidx[steps] // 120)
    assert steps.size == 64 and chunks.size == 8
    assert chunks[0] == 0 and chunks[-1] == 83 and steps[0] == 0 and steps[-1] == 9_999
    # steps left out of the cache (all-NaN, skipped) leave fewer to sample, never others
    kept = np.array([0, 1, 2, 130, 131, 500])
    np.testing.assert_array_equal(sample_steps(kept, 120), np.arange(6))
