"""A job killed by SIGKILL at any point and started again finishes with outputs byte-identical
(by the manifest's checksums) to an uninterrupted run, keeping the chunks already written;
readers never open a half-published cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from catalogue import cli, job_args, write_good_sample

from era5cache.errors import CacheError

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """Two monthly files, 6-hourly, 1 degree: 20 chunks of 4 steps."""
    folder = tmp_path_factory.mktemp("resume_inputs")
    return [write_good_sample(folder, start="2019-01-25T00", end="2019-01-31T18"),
            write_good_sample(folder, start="2019-02-01T00", end="2019-02-13T18")]


def _args(inputs: list[Path], out: Path) -> list[str]:
    args = job_args(inputs, out)
    args[args.index("--chunk-steps") + 1] = "4"
    return args


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("resume_ref") / "cache"
    r = cli(*_args(inputs, out))
    assert r.returncode == 0, r.stderr
    return json.loads((out / "manifest.json").read_text())


def _run_killed(args: list[str], at: str | None = None) -> subprocess.Popen:
    """Start the CLI in its own process group (so that the whole job, Dask workers included,
    can be killed like a machine that dies); ``at``: the milestone where it kills itself
    (through the test-only entry point ``tests/killed_job.py``)."""
    cmd = ([sys.executable, str(TESTS / "killed_job.py"), at] if at
           else [sys.executable, "-m", "era5cache.cli"])
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=60)


def _same_outputs(manifest: dict, reference: dict) -> None:
    assert manifest["outputs"] == reference["outputs"]
    assert manifest["statistics"] == reference["statistics"]
    assert manifest["fingerprint"] == reference["fingerprint"]


def _chunks_done(out: Path) -> list[int]:
    try:
        return json.loads((out / ".staging" / "progress.json").read_text())["chunks_done"]
    except FileNotFoundError:
        return []


# Each run is killed at the next point; each resumes what the previous ones left.
# (point, chunks in the journal after the kill; None: no journal any more)
KILL_CHAIN = [
    ("planned", 0),  # staging folder made, no Zarr template yet
    ("template", 0),  # template written, no chunk yet
    ("chunks:5", 5),  # 5 of 20 chunks durable and journalled
    ("chunks:12", 12),  # resumed with 5, killed after 7 more
    ("h5-built", 20),  # every chunk written, HDF5 built, no manifest yet
    ("manifest-staged", 20),  # ready to publish
    ("publish:manifest-removed", 20),  # the next start publishes, killed after step 1
    ("publish:era5_2deg.zarr", 20),  # killed between the two renames
    ("publish:done", None),  # published, staging not yet removed
]


def test_killed_again_and_again_then_identical(inputs, reference, tmp_path):
    from era5cache import CachedERA5Dataset

    out = tmp_path / "cache"
    for point, chunks in KILL_CHAIN:
        p = _run_killed(_args(inputs, out), at=point)
        p.wait(timeout=300)
        assert p.returncode == -signal.SIGKILL, (point, p.stderr.read())
        _kill_group(p)
        if chunks is not None:
            assert len(_chunks_done(out)) == chunks, point
        if point.startswith("publish:") and point != "publish:done":
            # Half published: no manifest, so readers refuse the folder instead of reading it.
            with pytest.raises(CacheError, match="manifest.json: missing"):
                CachedERA5Dataset(out)
    r = cli(*_args(inputs, out))
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout  # the killed publication was complete
    m = json.loads((out / "manifest.json").read_text())
    _same_outputs(m, reference)
    assert m["chunks"]["resumed"] == 20  # the run that staged it wrote no chunk itself
    assert cli("verify", out).returncode == 0
    assert not (out / ".staging").exists()


def _wait_for_chunks(p: subprocess.Popen, out: Path, n: int) -> None:
    """Until the job has journalled ``n`` chunks (it must still be running then)."""
    progress = out / ".staging" / "progress.json"
    deadline = time.monotonic() + 120
    done: list[int] = []
    while time.monotonic() < deadline and p.poll() is None:
        try:
            done = json.loads(progress.read_text())["chunks_done"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            done = []
        if len(done) >= n:
            break
        time.sleep(0.02)
    assert p.poll() is None, "the job finished before it could be killed"


def test_killed_from_outside_while_writing_chunks(inputs, reference, tmp_path):
    """An external SIGKILL of the whole job while chunks are being written (the job held
    at its third chunk, so that it cannot finish first)."""
    out = tmp_path / "cache"
    p = _run_killed(_args(inputs, out), at="pause:chunks:3")
    _wait_for_chunks(p, out, 3)
    _kill_group(p)
    r = cli(*_args(inputs, out))
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["chunks"]["resumed"] >= 3
    _same_outputs(m, reference)


def test_ctrl_c_is_one_line_and_exit_130_then_the_rerun_resumes(inputs, reference, tmp_path):
    """Ctrl-C signals the terminal's whole foreground process group, Dask workers included:
    one line, exit 130, no worker left behind, and the rerun keeps the finished chunks (the
    job held at its third chunk, so that it cannot finish first)."""
    out = tmp_path / "cache"
    p = _run_killed(_args(inputs, out), at="pause:chunks:3")
    _wait_for_chunks(p, out, 3)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err.splitlines() == ["era5cache preprocess: interrupted"], err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the workers end with the job
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        _kill_group(p)
        raise AssertionError("processes of the interrupted job are still running")
    r = cli(*_args(inputs, out))
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["chunks"]["resumed"] >= 3
    _same_outputs(m, reference)


def test_resume_ignores_staging_of_another_job(inputs, reference, tmp_path):
    """A staging folder left by a job with other inputs is discarded, not mixed in."""
    out = tmp_path / "cache"
    p = _run_killed(_args(inputs[:1], out), at="chunks:3")
    p.wait(timeout=300)
    _kill_group(p)
    r = cli(*_args(inputs, out))
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["chunks"]["resumed"] == 0
    _same_outputs(m, reference)


def test_unchanged_inputs_are_up_to_date(inputs, reference, tmp_path):
    out = tmp_path / "cache"
    assert cli(*_args(inputs, out)).returncode == 0
    before = (out / "manifest.json").read_text()
    r = cli(*_args(inputs, out))
    assert r.returncode == 0 and "up to date" in r.stdout
    assert (out / "manifest.json").read_text() == before
    r = cli(*_args(inputs, out), "--force")
    assert r.returncode == 0 and r.stdout.startswith("built")
    _same_outputs(json.loads((out / "manifest.json").read_text()), reference)
