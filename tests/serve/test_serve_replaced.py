"""A dataset reads the cache it was created on, or refuses: after a new publication of the
cache, a dataset created before it (in this process, pickled, or in fork or spawn DataLoader
workers) never reads the new file under its old time index."""

from __future__ import annotations

import pickle
import shutil
import traceback

import numpy as np
import pytest
from conftest import build_cache
from torch.utils.data import DataLoader

from era5cache import CachedERA5Dataset
from era5cache.config.sample import SampleSpec
from era5cache.errors import CacheError
from era5cache.format.layout import H5_NAME, MANIFEST_NAME, ZARR_NAME
from era5cache.sample.netcdf import write_sample
from era5cache.store.staging import STAGING_NAME, publish

REPLACED = "replaced since this dataset was opened"


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """Two caches of the same channels: January 2020 and February 2020."""
    tmp = tmp_path_factory.mktemp("replaced")
    out = {}
    for name, start, end in (("jan", "2020-01-01", "2020-01-05T18"),
                             ("feb", "2020-02-01", "2020-02-05T18")):
        write_sample(tmp / f"in_{name}", SampleSpec(start=start, end=end, resolution=2.0,
                                                    variables=("sst", "t2m"), seed=len(out)))
        build_cache(inputs=(str(tmp / f"in_{name}"),), output=str(tmp / name),
                    variables=("t2m", "sst"))
        out[name] = tmp / name
    return out


@pytest.fixture
def live(caches, tmp_path):
    """A copy of the January cache, and a function that publishes February over it the way
    the job does (staged outputs renamed over the published ones, manifest last)."""
    root = tmp_path / "live"
    shutil.copytree(caches["jan"], root)

    def republish():
        stage = root / STAGING_NAME
        stage.mkdir()
        for name in (ZARR_NAME, H5_NAME, MANIFEST_NAME):
            copy = shutil.copytree if name == ZARR_NAME else shutil.copy2
            copy(caches["feb"] / name, stage / name)
        assert publish(root)

    return root, republish


def _loader(ds, context: str) -> DataLoader:
    return DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=context,
                      persistent_workers=False)


def test_dataset_first_read_after_a_publication_refuses(live, caches):
    root, republish = live
    ds = CachedERA5Dataset(root, split="all")
    copy = pickle.dumps(ds)
    assert str(ds.window_times(0)[0]) == "2020-01-01T00:00:00"
    republish()
    with pytest.raises(CacheError, match=REPLACED):
        ds[0]
    with pytest.raises(CacheError, match=REPLACED):
        pickle.loads(copy).read_steps(0)
    fresh = CachedERA5Dataset(root, split="all")  # a new dataset reads the new cache
    assert str(fresh.window_times(0)[0]) == "2020-02-01T00:00:00"
    feb = CachedERA5Dataset(caches["feb"], split="all")
    np.testing.assert_array_equal(fresh.read_steps(0, normalize=False),
                                  feb.read_steps(0, normalize=False))


def test_dataset_mapped_before_a_publication_keeps_reading_its_own_file(live, caches):
    root, republish = live
    ds = CachedERA5Dataset(root, split="all", normalize=False)
    before = ds.read_steps(slice(0, 3))
    republish()
    np.testing.assert_array_equal(ds.read_steps(slice(0, 3)), before)
    jan = CachedERA5Dataset(caches["jan"], split="all", normalize=False)
    np.testing.assert_array_equal(before, jan.read_steps(slice(0, 3)))


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_workers_started_after_a_publication_refuse(live, context):
    """Non-persistent workers (those of a new epoch) open their map at their first batch:
    after the publication they refuse; a dataset made after it reads February in its
    (forked) workers."""
    root, republish = live
    ds = CachedERA5Dataset(root, split="all")
    republish()
    with pytest.raises(CacheError, match=REPLACED) as refused:
        next(iter(_loader(ds, context)))
    # The loader's iterator lives on in the traceback's frames, in a cycle with the
    # re-raised error: left to the garbage collector, its queues close before it tells
    # its workers to stop, and it waits 5 s for each. Freed now, they stop at once.
    traceback.clear_frames(refused.tb)
    if context == "spawn":  # spawned workers read what forked ones do (3-6 s a start)
        return
    fresh = CachedERA5Dataset(root, split="all", normalize=False, return_time=True)
    x, _, t = next(iter(_loader(fresh, context)))
    assert str(t[0, 0].numpy().astype("datetime64[s]")) == "2020-02-01T00:00:00"
    want = fresh.read_steps(np.add.outer(fresh.starts[:4], np.arange(2)).ravel())
    np.testing.assert_array_equal(x.numpy(), np.nan_to_num(want).reshape(x.shape))
