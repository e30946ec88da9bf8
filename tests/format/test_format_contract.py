"""The on-disk contract: the typed manifest round-trips and refuses what it cannot read;
``CacheInfo`` reads a cache and tells how it differs from its manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from era5cache.errors import CacheError
from era5cache.format.h5 import CacheInfo
from era5cache.format.layout import H5_NAME, MANIFEST_NAME
from era5cache.format.manifest import Manifest, TimeCoverage, read_manifest
from era5cache.sample.synthetic import write_synthetic_cache
from era5cache.timeaxis import Period


def _manifest(**kw) -> Manifest:
    base = dict(format_version=1, package_version="0.1.0", channels=("sst", "t2m"),
                shape=(4, 2, 80, 180),
                time=TimeCoverage(start="2019-01-01T00:00:00", end="2019-01-01T18:00:00",
                                  count=4, step="21600s", preliminary=("2019-01-01T18:00:00",)),
                periods={"train": None, "val": None, "test": None},
                statistics={"sst": {"mean": 1.0, "std": 2.0}},
                outputs={H5_NAME: {"sha256": "ab", "data_offset": 2048}}, complete=True)
    return Manifest(**(base | kw))


def test_manifest_round_trips_and_keeps_unknown_keys(tmp_path):
    m = _manifest()
    data = m.to_json()
    assert list(data)[-1] == "complete" and "created" not in data and "synthetic" not in data
    assert data["time"]["preliminary"] == ["2019-01-01T18:00:00"]
    assert Manifest.from_json(data, "x") == m
    data["from_a_newer_tool"] = {"a": 1}
    again = Manifest.from_json(data, "x")
    assert again.extra == {"from_a_newer_tool": {"a": 1}}
    assert again.to_json() == data and again.h5["data_offset"] == 2048


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.pop("shape"), "not an era5cache manifest (KeyError: 'shape')"),
    (lambda d: d.update(complete=False), "cache is incomplete"),
    (lambda d: d.update(format_version=99), "format_version 99 is newer"),
    (lambda d: d["time"].update(bogus=1), "not an era5cache manifest (TypeError"),
])
def test_read_manifest_refuses_with_the_file_named(tmp_path, edit, message):
    data = _manifest().to_json()
    edit(data)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(CacheError) as exc:
        read_manifest(tmp_path)
    assert str(exc.value).startswith(str(tmp_path / MANIFEST_NAME)) and message in str(exc.value)


def test_cache_info_reads_the_cache_and_compares_with_its_manifest(tmp_path):
    cache = write_synthetic_cache(tmp_path / "c", steps=40)
    m = read_manifest(cache)
    info = CacheInfo.read(cache / H5_NAME)
    assert info.shape == (40, 3, 80, 180) and info.channels == ("sst", "t2m", "z500")
    assert info.times[1] - info.times[0] == np.timedelta64(6, "h") and info.step == "21600s"
    assert info.periods.train == Period("2019-01-01T00:00:00", "2019-01-08T18:00:00")
    assert info.problems(m.shape, m.channels, m.h5["data_offset"]) == []
    with open(cache / H5_NAME, "rb") as f:
        f.seek(info.data_offset)
        first = np.frombuffer(f.read(4 * 80 * 180), np.float32).reshape(80, 180)
    assert np.array_equal(first, info_first_field(cache), equal_nan=True)
    bad = info.problems((41, 3, 80, 180), ("sst", "t2m"), info.data_offset + 8)
    assert [p.split(": ", 1)[1].split(" ")[0] for p in bad] == ["/data", "/data", "channels"]


def info_first_field(cache):
    import h5py

    with h5py.File(cache / H5_NAME) as f:
        return f["data"][0, 0]


def test_cache_info_refuses_a_chunked_file(tmp_path):
    import h5py

    path = tmp_path / H5_NAME
    with h5py.File(path, "w") as f:
        f.create_dataset("data", shape=(2, 1, 80, 180), dtype="f4", chunks=(1, 1, 80, 180))
    with pytest.raises(CacheError, match="not contiguous"):
        CacheInfo.read(path)
    path.write_bytes(b"not hdf5")
    with pytest.raises(CacheError, match=f"{path}: unreadable cache"):
        CacheInfo.read(path)
