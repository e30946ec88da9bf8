"""CachedERA5Dataset on a real cache with a gap: values, windows, workers, resident mode."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import build_cache
from torch.utils.data import DataLoader

from era5cache import CachedERA5Dataset
from era5cache.config.sample import SampleSpec
from era5cache.errors import CacheError
from era5cache.sample.netcdf import write_sample

STEP = np.timedelta64(6, "h")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dscache")
    common = dict(resolution=2.0, variables=("sst", "t2m"))
    write_sample(tmp / "a", SampleSpec(start="2019-01-01", end="2019-01-10T18", **common))
    write_sample(tmp / "b", SampleSpec(start="2019-01-13", end="2019-01-31T18", **common))
    recipe = tmp / "recipe.yaml"
    recipe.write_text(
        f"inputs: [{tmp / 'a'}, {tmp / 'b'}]\noutput: {tmp / 'cache'}\n"
        "variables: [sst, t2m]\nchunk_steps: 16\nhash_inputs: false\n"
        "dask: {workers: 1, memory_limit: 1GiB}\n"
        "periods:\n  train: ['2019-01-01T00', '2019-01-20T18']\n"
        "  val: ['2019-01-21T00', '2019-01-25T18']\n  test: ['2019-01-26T00', '2019-01-31T18']\n")
    build_cache(recipe)
    return tmp / "cache"


@pytest.fixture(scope="module")
def reference(cache):
    """Independent float64 normalisation from the Zarr store."""
    z = xr.open_zarr(cache / "era5_2deg.zarr")
    raw = np.stack([z["sst"].values, z["t2m"].values], axis=1).astype(np.float64)
    times = z["time"].values.astype("datetime64[s]")
    train = times <= np.datetime64("2019-01-20T18")
    mean = np.array([np.nanmean(raw[train, c]) for c in range(2)])
    std = np.array([np.nanstd(raw[train, c]) for c in range(2)])
    norm = (raw - mean[None, :, None, None]) / std[None, :, None, None]
    return raw, np.nan_to_num(norm, nan=0.0), times


def test_shapes_dtypes_and_values(cache, reference):
    raw, norm, times = reference
    ds = CachedERA5Dataset(cache, split="train", seq_len=2, lead=1, return_mask=True,
                           return_time=True)
    assert ds.channels == ["sst", "t2m"]
    x, y, mask, t = ds[5]
    assert x.shape == (2, 2, 80, 180) and y.shape == (2, 80, 180)
    assert x.dtype == torch.float32 and y.dtype == torch.float32 and mask.dtype == torch.bool
    s = int(ds.starts[5])
    np.testing.assert_allclose(x.numpy(), norm[s:s + 2], atol=2e-5)
    np.testing.assert_allclose(y.numpy(), norm[s + 2], atol=2e-5)
    np.testing.assert_array_equal(mask.numpy(), ~np.isnan(raw[s + 2]))
    assert (~mask[0]).any() and mask[1].all()  # sst has land, t2m has none
    assert (y[0][~mask[0]] == 0).all()
    np.testing.assert_array_equal(t.numpy(), times[s:s + 3].astype(np.int64))
    phys = CachedERA5Dataset(cache, split="train", normalize=False, fill_value=float("nan"))
    np.testing.assert_array_equal(phys[5][1].numpy(), raw[s + 2].astype(np.float32))
    np.testing.assert_allclose(ds.stats["mean"], np.nanmean(raw[times <= np.datetime64(
        "2019-01-20T18")], axis=(0, 2, 3)), rtol=1e-6)


def test_nan_fill_only_where_the_cache_records_nan(cache, reference, tmp_path):
    """/has_nan marks the (step, channel) pairs holding NaN; the dataset fills only those
    channels, and gives exactly what a cache without the record (all filled) gives."""
    import h5py

    raw, _, _ = reference
    with h5py.File(cache / "era5_2deg.h5", "r") as f:
        np.testing.assert_array_equal(f["has_nan"][:].astype(bool),
                                      np.isnan(raw).any(axis=(2, 3)))
    old = tmp_path / "old"
    shutil.copytree(cache, old)
    with h5py.File(old / "era5_2deg.h5", "r+") as f:
        del f["has_nan"]
    for channels in (["sst", "t2m"], ["t2m", "sst"], ["t2m"]):
        new_ds = CachedERA5Dataset(cache, split="train", channels=channels, fill_value=-7.0)
        old_ds = CachedERA5Dataset(old, split="train", channels=channels, fill_value=-7.0)
        assert [new_ds.channels[c] for c in new_ds.nan_channels] == [
            c for c in channels if c == "sst"]
        idx = list(range(0, len(new_ds), 3))
        for a, b in zip(new_ds.__getitems__(idx).batched, old_ds.__getitems__(idx).batched,
                        strict=True):
            assert torch.equal(a, b)
        if "sst" in channels:
            assert (new_ds[0][1][channels.index("sst")] == -7.0).any()


def test_windows_never_cross_gap_or_split(cache):
    sets = {}
    for split in ("train", "val", "test"):
        ds = CachedERA5Dataset(cache, split=split, seq_len=2, lead=1)
        wins = [ds.window_times(i) for i in range(len(ds))]
        for w in wins:
            assert (np.diff(w) == STEP).all()  # consecutive, so never across the gap
        sets[split] = {t for w in wins for t in w}
    train = CachedERA5Dataset(cache, split="train", seq_len=2, lead=1)
    # Jan 1-10 (40 steps) and Jan 13-20 (32 steps): 38 + 30 windows of span 3.
    assert len(train) == 68
    assert not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    assert not (sets["train"] & sets["test"])
    lead3 = CachedERA5Dataset(cache, split="val", seq_len=1, lead=3)
    assert len(lead3) == 20 - 3
    explicit = CachedERA5Dataset(cache, time_range=("2019-01-09T00", "2019-01-14T00"))
    for i in range(len(explicit)):
        w = explicit.window_times(i)
        assert (np.diff(w) == STEP).all()


def test_getitems_and_collate(cache):
    ds = CachedERA5Dataset(cache, split="train", return_mask=True)
    batch = ds.__getitems__([3, 0, 7])
    x, y, m = CachedERA5Dataset.collate(batch)
    dx, dy, dm = torch.utils.data.default_collate(list(batch))
    assert torch.equal(x, dx) and torch.equal(y, dy) and torch.equal(m, dm)
    for k, i in enumerate([3, 0, 7]):
        assert torch.equal(x[k], ds[i][0]) and torch.equal(y[k], ds[i][1])
    # A DataLoader with the default collate gives the same batches as with ``collate``.
    plain = next(iter(DataLoader(ds, batch_size=8)))
    fast = next(iter(DataLoader(ds, batch_size=8, collate_fn=CachedERA5Dataset.collate)))
    assert all(torch.equal(u, v) for u, v in zip(plain, fast, strict=True))


def test_batch_buffers_reused_only_when_released(cache):
    """Batches come from a small pool of buffers in the main process: a batch the caller
    still holds (or holds a view of) is never overwritten; a dropped one is reused."""
    ds = CachedERA5Dataset(cache, split="train", normalize=False)
    raw = ds.data
    held = ds.__getitems__([0, 1, 2]).batched
    view = ds.__getitems__([3, 4, 5]).batched[1][1]  # only a view of y is kept
    kept = (held[0].clone(), held[1].clone(), view.clone())
    for k in range(6):  # later batches of the same size
        b = ds.__getitems__([6 + k, 7 + k, 8 + k]).batched
        s = ds.starts[[6 + k, 7 + k, 8 + k]]
        want = np.nan_to_num(raw[s + ds.seq_len], nan=0.0)
        np.testing.assert_array_equal(b[1].numpy(), want)
        del b
    for a, b in zip(kept, (held[0], held[1], view), strict=True):
        assert torch.equal(a, b)
    first = ds.__getitems__([0, 1, 2]).batched[0].data_ptr()
    assert ds.__getitems__([0, 1, 2]).batched[0].data_ptr() == first  # dropped: reused


def test_threads_share_a_dataset(cache):
    """Batches fetched from several threads at once are right, and torch's thread count is
    what it was (the fill runs on one thread and restores the setting)."""
    import threading

    ds = CachedERA5Dataset(cache, split="train", normalize=False)
    before = torch.get_num_threads()
    wrong: list[int] = []

    def work(k: int) -> None:
        for r in range(25):
            idx = [(k * 7 + r + j) % len(ds) for j in range(3)]
            y = ds.__getitems__(idx).batched[1]
            want = np.nan_to_num(ds.data[ds.starts[idx] + ds.seq_len], nan=0.0)
            if not np.array_equal(y.numpy(), want):
                wrong.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [] and torch.get_num_threads() == before


@pytest.mark.parametrize("kw", [{}, {"channels": ["t2m"]},
                                {"return_mask": True, "return_time": True, "fill_value": -9.0}])
def test_batch_built_on_several_threads_is_the_same(cache, kw):
    """The groups of a batch shared among threads give the batch one thread gives, which
    equals the items fetched one by one."""
    import threading

    one = CachedERA5Dataset(cache, split="train", threads=1, **kw)
    idx = np.random.default_rng(1).permutation(len(one))[:64].tolist()
    want = one.__getitems__(idx).batched
    for n in (2, 3, 8):
        got = CachedERA5Dataset(cache, split="train", threads=n, **kw).__getitems__(idx).batched
        assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    assert any(t.name.startswith("era5cache-load") for t in threading.enumerate())
    for k in (0, 31, 63):
        assert all(torch.equal(a[k], b) for a, b in zip(want, one[idx[k]], strict=True))


def _batches(ds, **kw):
    dl = DataLoader(ds, batch_size=8, shuffle=False, collate_fn=CachedERA5Dataset.collate, **kw)
    return [tuple(t.clone() for t in b) for b in dl]


@pytest.mark.parametrize("ctx", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_workers_give_same_batches(cache, ctx):
    ds = CachedERA5Dataset(cache, split="train")
    ds[0]  # open the map in the parent: children must not depend on it
    main = _batches(ds)
    par = _batches(ds, num_workers=2, multiprocessing_context=ctx, persistent_workers=True,
                   pin_memory=torch.cuda.is_available())
    assert len(main) == len(par) == 9
    for a, b in zip(main, par, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def _freeze_count(batch):
    import gc

    return gc.get_freeze_count()


def test_fork_workers_freeze_inherited_objects(cache):
    """With ``worker_init_fn=CachedERA5Dataset.worker_init_fn`` a DataLoader worker moves the
    objects it inherited to the permanent generation before its first batch (so collections
    do not copy the parent's heap); without it, and in the main process, nothing more is
    frozen than the test run froze after collection (``conftest.py``)."""
    import gc

    ds = CachedERA5Dataset(cache, split="train")
    main = DataLoader(ds, batch_size=4, collate_fn=_freeze_count)
    before = gc.get_freeze_count()
    assert next(iter(main)) <= before  # (frozen objects may die; none are added)
    kw = dict(batch_size=4, num_workers=1, multiprocessing_context="fork",
              collate_fn=_freeze_count)
    assert next(iter(DataLoader(ds, **kw))) <= before
    hooked = DataLoader(ds, worker_init_fn=CachedERA5Dataset.worker_init_fn, **kw)
    assert next(iter(hooked)) > before + 1000  # the inherited objects
    assert gc.get_freeze_count() <= before


def test_pickles_without_map(cache):
    ds = CachedERA5Dataset(cache)
    ds[0]
    assert ds.mapped
    clone = pickle.loads(pickle.dumps(ds))
    assert not clone.mapped and torch.equal(clone[4][0], ds[4][0])


def test_read_steps_of_a_channel_subset(cache, reference):
    """Whole time steps, any index along the cache's axis, the selected channels only:
    physical values exactly as stored, or normalised as the items are; NaN kept."""
    raw, norm, times = reference
    ds = CachedERA5Dataset(cache, split="val", channels=["t2m", "sst"])
    assert ds.frame_shape == (2, 80, 180) and np.array_equal(ds.info.times, times)
    got = ds.read_steps(slice(3, 7), normalize=False)
    np.testing.assert_array_equal(got, raw[3:7, ::-1].astype(np.float32))
    picked = ds.read_steps(np.array([0, 5, 9]))
    assert np.isnan(picked[:, 1]).any() and not np.isnan(picked[:, 0]).any()
    np.testing.assert_allclose(np.nan_to_num(picked), norm[[0, 5, 9], ::-1], atol=1e-4)
    assert ds.read_steps(4, normalize=False).shape == (1, 2, 80, 180)


def test_resident_mode_matches_loader(cache):
    ds = CachedERA5Dataset(cache, split="train", return_mask=True)
    main = _batches(ds)
    res = ds.to_device("cpu", batch_size=8, shuffle=False)
    got = list(res)
    assert len(got) == len(main)
    for a, b in zip(main, got, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    bf = ds.to_device("cpu", dtype=torch.bfloat16, batch_size=8, shuffle=False)
    xb = next(iter(bf))[0]
    assert xb.dtype == torch.bfloat16
    torch.testing.assert_close(xb.float(), main[0][0], atol=0.02, rtol=0.01)


def test_resident_shuffle_and_sharding(cache):
    ds = CachedERA5Dataset(cache, split="train")  # 68 windows
    one = ds.to_device("cpu", batch_size=10, shuffle=True, seed=1)
    first = torch.cat([b[1] for b in one])
    assert first.shape[0] == 68
    one.set_epoch(1)
    second = torch.cat([b[1] for b in one])
    assert not torch.equal(first, second)  # reshuffled each epoch...
    def windows(batch):  # each target by its t2m along the equator, order ignored
        return sorted(tuple(y[1, 40].tolist()) for y in batch)

    assert windows(first) == windows(second)  # ...over the same windows, each once
    assert len(set(windows(first))) == 68
    ranks = [ds.to_device("cpu", batch_size=10, shuffle=True, seed=1, rank=r, world_size=3,
                          drop_last=True) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == 2  # 23 each -> 2 full
    loose = [ds.to_device("cpu", batch_size=10, seed=1, rank=r, world_size=3) for r in range(3)]
    counts = [sum(b[0].shape[0] for b in r) for r in loose]
    assert counts == [23, 23, 23]  # padded: every rank the same number of samples
    ys = torch.cat([b[1] for r in loose for b in r])
    # All 68 distinct windows are present (one repeated for padding).
    uniq = {tuple(y[1, 40].tolist()) for y in ys}  # t2m along the equator
    assert len(uniq) == 68


def test_clear_errors(cache, tmp_path):
    with pytest.raises(CacheError, match="no such cache folder"):
        CachedERA5Dataset(tmp_path / "nope")
    bad = tmp_path / "c"
    shutil.copytree(cache, bad)
    m = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps(m | {"complete": False}))
    with pytest.raises(CacheError, match="incomplete"):
        CachedERA5Dataset(bad)
    (bad / "manifest.json").write_text(json.dumps(m | {"format_version": 99}))
    with pytest.raises(CacheError, match="format_version 99 is newer"):
        CachedERA5Dataset(bad)
    (bad / "manifest.json").write_text(json.dumps(m | {"shape": [5, 2, 80, 180]}))
    with pytest.raises(CacheError, match="unlike its manifest"):
        CachedERA5Dataset(bad)
    (bad / "manifest.json").write_bytes(bytes(range(128, 256)))
    with pytest.raises(CacheError, match="not an era5cache manifest"):
        CachedERA5Dataset(bad)
    (bad / "manifest.json").unlink()
    with pytest.raises(CacheError, match="manifest.json: missing"):
        CachedERA5Dataset(bad)
    with pytest.raises(ValueError, match=r"no channel selected \(channels=\[\]\)"):
        CachedERA5Dataset(cache, channels=[])
