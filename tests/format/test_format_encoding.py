"""16-bit caches: rounding against torch's float16/bfloat16 conversions, the stated error bound
per channel in physical units, and the Dataset reading them like the float32 cache."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from era5cache import CachedERA5Dataset
from era5cache.format import encoding
from era5cache.sample.synthetic import write_synthetic_cache

TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_rounding_matches_torch_and_stays_within_the_bound(storage):
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.standard_normal(100_000) * 3, rng.uniform(-1e-5, 1e-5, 1000),
                        [0.0, -0.0, np.nan, 7.999, -300.0]]).astype(np.float32)
    stored = encoding.encode(z, storage)
    back = encoding.decode(stored, storage)
    ref = torch.from_numpy(z).to(TORCH[storage]).float().numpy()  # independent reference
    np.testing.assert_array_equal(back, ref)
    assert np.isnan(back[-3]) and np.isnan(ref[-3])
    ok = ~np.isnan(z)
    err = np.abs(back[ok].astype(np.float64) - z[ok])
    assert (err <= encoding.error_bound(z[ok], 1.0, storage)).all()
    # the bound is tight: some value is rounded by more than half of it
    assert (err > 0.5 * encoding.error_bound(z[ok], 1.0, storage)).any()


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_decode_without_torch_gives_the_same_bits(storage, monkeypatch):
    """decode_into widens through PyTorch; the numpy path (no PyTorch installed) gives the
    same bits, into strided views too (channel subsets write into x[:, :, j:j + n])."""
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.standard_normal(4 * 5 * 6 * 7 - 2), [np.nan, -0.0]])
    stored = encoding.encode(z.astype(np.float32).reshape(4, 5, 6, 7), storage)
    with_torch = np.full((4, 9, 6, 7), 7.0, np.float32)
    encoding.decode_into(with_torch[:, 2:7], stored, storage)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    without = np.full((4, 9, 6, 7), 7.0, np.float32)
    encoding.decode_into(without[:, 2:7], stored, storage)
    np.testing.assert_array_equal(with_torch.view(np.uint32), without.view(np.uint32))
    assert (with_torch[:, :2] == 7.0).all() and (with_torch[:, 7:] == 7.0).all()


def test_float16_overflow_is_refused():
    with pytest.raises(ValueError, match="float16"):
        encoding.encode(np.array([1e5], np.float32), "float16")
    assert encoding.decode(encoding.encode(np.array([1e5], np.float32), "bfloat16"),
                           "bfloat16")[0] == pytest.approx(1e5, rel=2**-8)


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enc")
    return {d: write_synthetic_cache(tmp / d, 80, channels=6, dtype=d)
            for d in ("float32", "float16", "bfloat16")}


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_cache_error_per_channel_in_physical_units(caches, storage):
    ref = CachedERA5Dataset(caches["float32"], split="all")
    ds = CachedERA5Dataset(caches[storage], split="all")
    assert ds.info.storage == storage and ds.step_bytes * 2 == ref.step_bytes
    assert ds.path.stat().st_size < 0.55 * ref.path.stat().st_size
    phys = ref.read_steps(slice(None), normalize=False).astype(np.float64)
    got = ds.read_steps(slice(None), normalize=False).astype(np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(phys))
    err = np.nanmax(np.abs(got - phys), axis=(0, 2, 3))
    # the stated bound per channel (rounding of z) plus float32's rounding of z * std + mean
    bound = ds.info.encoding_error + np.nanmax(np.abs(phys), axis=(0, 2, 3)) * 2.0**-23
    assert (err <= bound).all(), (err, bound)
    assert (err > 0.1 * ds.info.encoding_error).all()  # the bound is not loose by 10x
    half = encoding.HALF_ULP[storage]
    z = (phys - ds.info.mean[:, None, None]) / ds.info.std[:, None, None]
    want = np.nanmax(np.abs(z), axis=(0, 2, 3)) * half * ds.info.std
    np.testing.assert_allclose(ds.info.encoding_error, want, rtol=1e-6)


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_dataset_items_match_the_float32_cache(caches, storage):
    kw = dict(split="train", return_mask=True, channels=["z500", "sst", "t2m"])
    ref = CachedERA5Dataset(caches["float32"], **kw)
    ds = CachedERA5Dataset(caches[storage], **kw)
    idx = [0, 17, 5, 60]
    a, b = ref.__getitems__(idx).batched, ds.__getitems__(idx).batched
    tol = {"float16": 2.0**-11, "bfloat16": 2.0**-8}[storage]
    for ta, tb in zip(a[:2], b[:2], strict=True):  # normalised: |error| <= |z| * half ulp
        assert (tb - ta).abs().max() <= tol * ta.abs().max() + 1e-6
        assert not torch.equal(ta, tb)
    assert torch.equal(a[2], b[2])  # the mask
    full_ref = CachedERA5Dataset(caches["float32"], split="train")
    full = CachedERA5Dataset(caches[storage], split="train")
    xa, xb = full_ref[3][0], full[3][0]
    assert (xb - xa).abs().max() <= tol * xa.abs().max() + 1e-6


def test_a_constant_channel_cannot_be_normalised(tmp_path):
    """std 0 in the training period: a one-line input error naming the file, no 16-bit file."""
    from era5cache.errors import InputError
    from era5cache.format.h5 import CacheSpec, encode_cache, write_h5
    from era5cache.timeaxis import Period, Periods, analyse

    times = np.datetime64("2020-01-01T00") + np.arange(8) * np.timedelta64(6, "h")
    block = np.random.default_rng(0).standard_normal((8, 2, 80, 180)).astype(np.float32)
    block[:, 1] = 5.0
    src = tmp_path / "c.h5"
    spec = CacheSpec(times, analyse(times), ("a", "flat"), {},
                     Periods(train=Period(str(times[0]), str(times[-1]))), 4)
    write_h5(lambda a, b: block[a:b], spec, src)
    with pytest.raises(InputError, match=r"c\.h5: channel\(s\) \['flat'\] have no positive"):
        encode_cache(src, tmp_path / "c16.h5", "bfloat16")
    assert not (tmp_path / "c16.h5").exists()
