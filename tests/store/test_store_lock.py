"""One writer per output folder; a killed writer does not leave the lock stuck."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli

from era5cache.store.lock import LockedError, exclusive_writer


@pytest.mark.slow
def test_second_writer_refused_with_one_line(tmp_path, sample_new):
    out = tmp_path / "cache"
    out.mkdir()
    with exclusive_writer(out):
        r = run_cli("preprocess", "--input", sample_new, "--output", out, "--no-progress",
                    check=False)
        with pytest.raises(LockedError, match="another era5cache preprocess"):
            with exclusive_writer(out):
                pass
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "another era5cache preprocess is writing here" in lines[0]
    assert str(out) in lines[0] and not (out / "manifest.json").exists()


def test_killed_writer_releases_the_lock(tmp_path):
    code = ("import sys, time; from pathlib import Path; "
            "from era5cache.store.lock import exclusive_writer\n"
            "with exclusive_writer(Path(sys.argv[1])):\n"
            "    print('locked', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "locked"
    with pytest.raises(LockedError):
        with exclusive_writer(tmp_path):
            pass
    p.send_signal(signal.SIGKILL)
    p.wait()
    time.sleep(0.1)
    with exclusive_writer(tmp_path):  # free again
        pass
