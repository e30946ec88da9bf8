"""Property: appending parts of a period one by one, in any order, with the channels in any
order, gives the same cache as one build from all parts (every HDF5 dataset and every Zarr
array, bit for bit).

The job runs in this process and thread (:class:`era5cache.store.runners.InProcessRunner`,
which gives the Dask runner's bytes: ``test_store_runners.py``), so an example costs a
second, not a process start; the recipe's training period is the part built first, so no
run is refused for a training period without data."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from cachebytes import assert_same_cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from era5cache.config.recipe import PreprocessConfig, with_overrides
from era5cache.config.sample import SampleSpec
from era5cache.sample.netcdf import write_sample
from era5cache.store import job
from era5cache.store.crosscheck import meaning_problems
from era5cache.store.runners import InProcessRunner
from era5cache.timeaxis import Period, Periods

START = np.datetime64("2020-01-30T00", "s")
STEP = np.timedelta64(6, "h")
LEVELS = (500, 850)
CHANNELS = ("sst", "t2m", *(f"{v}{p}" for v, p in itertools.product(("z", "t"), LEVELS)))


@st.composite
def append_cases(draw):
    """(channels in recipe order, parts as (first step, last step) in append order,
    chunk_steps)."""
    channels = draw(st.permutations(CHANNELS).flatmap(
        lambda p: st.integers(1, len(p)).map(lambda n: tuple(p[:n]))))
    n_steps = draw(st.integers(4, 16))
    cuts = sorted(draw(st.sets(st.integers(1, n_steps - 1), min_size=1, max_size=3)))
    bounds = list(zip([0, *cuts], [*cuts, n_steps], strict=True))
    parts = draw(st.permutations(bounds))
    return channels, [(a, b - 1) for a, b in parts], draw(st.integers(2, 9))


def _when(i: int) -> str:
    return str(START + i * STEP)


def _write_part(folder: Path, first: int, last: int, channels: tuple[str, ...]) -> Path:
    variables = tuple(sorted({c.rstrip("0123456789") for c in channels}))
    write_sample(folder, SampleSpec(
        start=_when(first), end=_when(last), resolution=2.0, variables=variables,
        levels=LEVELS if {"z", "t"} & set(variables) else (), seed=first))
    return folder  # its single-level and pressure-level files


def _check(case, tmp_path_factory) -> None:
    channels, parts, chunk_steps = case
    tmp = tmp_path_factory.mktemp("append")
    files = [_write_part(tmp / f"part{i}", a, b, channels) for i, (a, b) in enumerate(parts)]
    first = parts[0]
    cfg = with_overrides(
        PreprocessConfig(periods=Periods(train=Period(_when(first[0]), _when(first[1])))),
        variables=channels, chunk_steps=chunk_steps, hash_inputs=False)

    appended = tmp / "appended"
    for i, f in enumerate(files):
        r = job.run(with_overrides(cfg, inputs=(str(f),), output=str(appended)),
                    progress=False, append=i > 0, runner=InProcessRunner())
        assert r.channels == channels
    whole = tmp / "whole"
    r = job.run(with_overrides(cfg, inputs=tuple(map(str, files)), output=str(whole)),
                progress=False, runner=InProcessRunner())
    assert r.n_time == sum(b - a + 1 for a, b in parts)
    assert_same_cache(appended, whole)
    assert meaning_problems(whole) == []  # each channel is its Zarr variable, stats right


_SETTINGS = dict(deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=3, **_SETTINGS)
@given(case=append_cases())
def test_appending_parts_in_any_order_equals_one_build(case, tmp_path_factory):
    """Three examples in the quick loop."""
    _check(case, tmp_path_factory)


@pytest.mark.slow
@settings(max_examples=12, **_SETTINGS)
@given(case=append_cases())
def test_appending_parts_in_any_order_equals_one_build_thoroughly(case, tmp_path_factory):
    """Twelve examples, in ``make test`` and CI."""
    _check(case, tmp_path_factory)
