"""The bad-input catalogue: every kind of bad input a user meets, run through the command line
against a published cache.

Each case writes its bad input, runs ``era5cache preprocess`` on it with the cache's output
folder, and expects a non-zero exit, exactly one line on stderr that names the offending file
and the problem, exit status 2, and the published cache untouched (manifest checksums
unchanged, ``era5cache verify`` sound). :data:`COMMAND_CASES` do the same for other
command-line mistakes (an output path that is a file, a damaged manifest, a training batch
bigger than the data, a truncated checkpoint, ...).

From the command line (``make catalogue``)::

    python tests/catalogue.py [WORKDIR]

prints one row per case and exits 1 if any case misbehaves. ``tests/test_bad_inputs.py``
runs the same cases under pytest.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from era5cache.config.sample import SampleSpec
from era5cache.sample.netcdf import write_sample

CHANNELS = "sst,t2m"
GOOD_NAME = "era5_single-levels_2019-01.nc"


def cli(*args: str | Path, preexec=None) -> subprocess.CompletedProcess:
    """Run ``era5cache`` in a fresh process; ``preexec`` runs in the child before it."""
    return subprocess.run([sys.executable, "-m", "era5cache.cli", *map(str, args)],
                          capture_output=True, text=True, preexec_fn=preexec)


def job_args(inputs: list[Path], out: Path, *extra: str) -> list[str]:
    args = ["preprocess", "--output", str(out), "--variables", CHANNELS, "--chunk-steps", "16",
            "--workers", "1", "--no-progress", *extra]
    for f in inputs:
        args += ["--input", str(f)]
    return args


def write_good_sample(folder: Path, start: str = "2019-01-01T00", end: str = "2019-01-10T18",
                      resolution: float = 1.0, layout: str = "new", seed: int = 0) -> Path:
    """One month file of 6-hourly sst and t2m (the CDS layout), returned as its path."""
    files = write_sample(folder, SampleSpec(start=start, end=end, step="6h",
                                            resolution=resolution, layout=layout,
                                            variables=("sst", "t2m"), levels=(), seed=seed))
    return files[0]


def _copy(good: Path, case: Path, name: str | None = None) -> Path:
    case.mkdir(parents=True, exist_ok=True)
    dst = case / (name or good.name)
    shutil.copy(good, dst)
    return dst


def _edit(path: Path, fn: Callable[[netCDF4.Dataset], None]) -> Path:
    with netCDF4.Dataset(path, "r+") as ds:
        fn(ds)
    return path


# Each maker: (good file, case folder) -> (input files, file the message must name; None:
# the output folder).
Maker = Callable[[Path, Path], tuple[list[Path], Path]]


def truncated_netcdf4(good: Path, case: Path):
    bad = _copy(good, case)
    bad.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    return [bad], bad


def truncated_netcdf3(good: Path, case: Path):
    legacy = write_good_sample(case / "legacy", layout="legacy")
    bad = case / legacy.name
    bad.write_bytes(legacy.read_bytes()[: legacy.stat().st_size * 2 // 3])
    shutil.rmtree(case / "legacy")
    return [bad], bad


def not_netcdf(good: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    bad = case / "era5_single-levels_2019-02.nc"
    bad.write_text("<html><body>Request failed: please log in</body></html>\n")
    return [good, bad], bad


def missing_variable(good: Path, case: Path):
    return [good], good  # the case adds --variables with a channel the file lacks


def different_grids(good: Path, case: Path):
    other = write_good_sample(case, start="2019-02-01T00", end="2019-02-05T18", resolution=2.0)
    return [good, other], other


def regional(good: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    bad = case / "era5_single-levels_2019-01_europe.nc"
    with xr.open_dataset(good) as ds:
        ds.sel(latitude=slice(72, 30), longitude=slice(0, 40)).load().to_netcdf(bad)
    return [bad], bad


def conflicting_duplicates(good: Path, case: Path):
    bad = _copy(good, case, "era5_single-levels_2019-01_again.nc")

    def change(ds):
        ds["t2m"][3] = ds["t2m"][3] + 0.5

    _edit(bad, change)
    return [good, bad], bad


def irregular_steps(good: Path, case: Path):
    bad = _copy(good, case)

    def shift(ds):
        t = ds["valid_time"][:]
        t[20:] = t[20:] + 1800  # half an hour off the 6-hourly grid
        ds["valid_time"][:] = t

    _edit(bad, shift)
    return [bad], bad


def all_nan_steps(good: Path, case: Path):
    bad = _copy(good, case)

    def blank(ds):
        ds["t2m"][5] = np.full(ds["t2m"].shape[1:], np.nan, np.float32)

    _edit(bad, blank)
    return [bad], bad


def infinite_values(good: Path, case: Path):
    bad = _copy(good, case)

    def poison(ds):
        row = ds["t2m"][7]
        row[20, 30] = np.inf
        ds["t2m"][7] = row

    _edit(bad, poison)
    return [bad], bad


def damaged_chunk(good: Path, case: Path):
    """Bytes in the middle of one compressed chunk of t2m overwritten (a bad download or
    disk): the file opens, the chunk does not inflate."""
    import h5py

    bad = _copy(good, case)
    with h5py.File(bad) as f:
        d = f["t2m"]
        info = d.id.get_chunk_info(d.id.get_num_chunks() // 2)
    with open(bad, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes(range(7, 255, 3)))
    return [bad], bad


def celsius(good: Path, case: Path):
    bad = _copy(good, case)

    def to_c(ds):
        ds["t2m"][:] = ds["t2m"][:] - 273.15
        ds["t2m"].units = "degC"

    _edit(bad, to_c)
    return [bad], bad


def _t2m_value(value: float):
    def make(good: Path, case: Path):
        bad = _copy(good, case)

        def poison(ds):
            field = ds["t2m"][9]
            field[10:12, 40:50] = value
            ds["t2m"][9] = field

        _edit(bad, poison)
        return [bad], bad
    return make


def celsius_without_units(good: Path, case: Path):
    bad = _copy(good, case)

    def to_c(ds):
        ds["t2m"][:] = ds["t2m"][:] - 273.15
        ds["t2m"].delncattr("units")

    _edit(bad, to_c)
    return [bad], bad


def time_without_units(good: Path, case: Path):
    return [bad := _edit(_copy(good, case), lambda ds: ds["valid_time"].delncattr("units"))], bad


def noleap_calendar(good: Path, case: Path):
    return [bad := _edit(_copy(good, case),
                         lambda ds: ds["valid_time"].setncattr("calendar", "noleap"))], bad


def nan_latitude(good: Path, case: Path):
    return [bad := _edit(_copy(good, case), lambda ds: ds["latitude"].__setitem__(7, np.nan))], bad


def empty_training_period(good: Path, case: Path):
    """A recipe whose training period holds none of the input's steps."""
    case.mkdir(parents=True, exist_ok=True)
    recipe = case / "recipe.yaml"
    recipe.write_text("periods:\n  train: ['2018-01-01', '2018-12-31T18']\n")
    return [good], recipe


def symlink_loop(good: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    a, b = case / "era5_a.nc", case / "era5_b.nc"
    a.symlink_to(b.name)
    b.symlink_to(a.name)
    return [good, a], a


def empty_folder(good: Path, case: Path):
    folder = case / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return [folder], folder


def glob_of_folders(good: Path, case: Path):
    (case / "era5_2019-01.nc").mkdir(parents=True, exist_ok=True)  # a folder named like a file
    pattern = case / "*.nc"
    return [pattern], pattern


def damaged_zip(good: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    bad = case / "download.zip"
    bad.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    return [bad], bad


def all_nan_channel(good: Path, case: Path):
    bad = _copy(good, case)

    def blank(ds):
        ds["sst"][:] = np.full(ds["sst"].shape, np.nan, np.float32)

    _edit(bad, blank)
    return [bad], bad


def _t_on_levels(case: Path, name: str, relevel: dict) -> Path:
    """``t`` at 500 and 1 hPa as GRIB 2, the 1 hPa messages given other level keys."""
    import eccodes

    from era5cache.sample.grib import Field, write_grib

    case.mkdir(parents=True, exist_ok=True)
    lat, lon = np.arange(90.0, -90.1, -2.0), np.arange(0.0, 360.0, 2.0)
    t0 = np.datetime64("2019-01-01T00", "s")
    fields = [Field("t", lev, t0 + k * np.timedelta64(6, "h"), np.full((lat.size, lon.size),
                                                                      250.0))
              for k in range(2) for lev in (500, 1)]
    src = write_grib(fields, lat, lon, case / "src.grib2", edition=2)
    dst = case / name
    with open(src, "rb") as f, open(dst, "wb") as out:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            if eccodes.codes_get(h, "level") == 1:
                for k, v in relevel.items():
                    eccodes.codes_set(h, k, v)
            eccodes.codes_write(h, out)
            eccodes.codes_release(h)
    src.unlink()
    return dst


def grib_levels_below_1hpa(good: Path, case: Path):
    bad = _t_on_levels(case, "era5_t_pa.grib2", {"typeOfLevel": "isobaricInPa", "level": 50})
    return [bad], bad


def grib_two_kinds_of_level(good: Path, case: Path):
    bad = _t_on_levels(case, "era5_t_two.grib2", {"typeOfLevel": "hybrid", "level": 60})
    return [bad], bad


def other_month(good: Path, case: Path):
    """A good file of another period (so the run has work to do), for the disk-full cases;
    the message names the output folder (None)."""
    return [write_good_sample(case, start="2019-03-01T00", end="2019-03-10T18")], None


def ensemble(good: Path, case: Path):
    """Three members on a ``number`` dimension (ERA5's EDA) and no ``member:`` set."""
    case.mkdir(parents=True, exist_ok=True)
    bad = case / good.name
    with xr.open_dataset(good) as ds:
        ds = ds.load().drop_vars("number")
    xr.concat([ds, ds + 1, ds + 2], dim="number").assign_coords(number=[0, 1, 2]).to_netcdf(bad)
    return [bad], bad


def bad_recipe(good: Path, case: Path):
    """A recipe whose ``chunk_steps`` is not a number (given as the job's CONFIG)."""
    case.mkdir(parents=True, exist_ok=True)
    recipe = case / "recipe.yaml"
    recipe.write_text(f"inputs: [{good}]\nchunk_steps: abc\n")
    return [good], recipe


def _grib_of(good: Path, case: Path, name: str = "era5_single-levels_2019-01.grib") -> Path:
    from era5cache.sample.grib import grib_from_netcdf

    case.mkdir(parents=True, exist_ok=True)
    return grib_from_netcdf(good, case / name, edition=1)


def _grib_sample_message(path: Path, sample: str, **keys) -> Path:
    """One message from an eccodes sample (``keys`` set on it), written to ``path``."""
    import eccodes

    h = eccodes.codes_grib_new_from_samples(sample)
    for k, v in keys.items():
        eccodes.codes_set(h, k, v)
    with open(path, "wb") as f:
        eccodes.codes_write(h, f)
    eccodes.codes_release(h)
    return path


def truncated_grib(good: Path, case: Path):
    bad = _grib_of(good, case)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size * 2 // 3])
    return [bad], bad


def unknown_grib_parameter(good: Path, case: Path):
    """The good month as GRIB plus one message of a parameter no table defines."""
    bad = _grib_of(good, case)
    extra = _grib_sample_message(case / "extra.grib2", "regular_ll_sfc_grib2", discipline=0,
                                 parameterCategory=0, parameterNumber=250)
    bad.write_bytes(bad.read_bytes() + extra.read_bytes())
    extra.unlink()
    return [bad], bad


def grib_different_grids(good: Path, case: Path):
    other = write_good_sample(case / "coarse", start="2019-02-01T00", end="2019-02-05T18",
                              resolution=2.0)
    first = _grib_of(good, case)
    second = _grib_of(other, case, "era5_single-levels_2019-02.grib")
    shutil.rmtree(case / "coarse")
    return [first, second], second


def reduced_gaussian(good: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    bad = _grib_sample_message(case / "era5_t2m_N32.grib2", "reduced_gg_sfc_grib2")
    return [bad], bad


def isentropic_levels(good: Path, case: Path):
    """Fields on a vertical coordinate in K (isentropic levels), not pressure."""
    case.mkdir(parents=True, exist_ok=True)
    bad = case / "era5_isentropic-levels_2019-01.nc"
    with xr.open_dataset(good) as ds:
        t = ds[["t2m"]].load().expand_dims(level=[300.0, 330.0])
    t["level"].attrs = {"units": "K", "long_name": "potential temperature"}
    t.to_netcdf(bad)
    return [bad], bad


def file_size_limit(nbytes: int) -> Callable[[], None]:
    """For a child process: files may not grow beyond ``nbytes`` (writes then fail with
    EFBIG, as on a full disk: Python ignores SIGXFSZ)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


@dataclass(frozen=True)
class Case:
    name: str
    make: Maker
    expect: str  # in the one-line message, after the file name
    extra: tuple[str, ...] = ()
    preexec: Callable[[], None] | None = None


CASES = (
    Case("truncated netCDF4/HDF5", truncated_netcdf4, "not a readable NetCDF file"),
    Case("truncated netCDF3", truncated_netcdf3, "truncated netCDF3"),
    Case("not NetCDF", not_netcdf, "not a readable NetCDF file"),
    Case("variable missing", missing_variable, "requested variable 'tp' is not in the inputs "
         "(available: sst, t2m)", extra=("--variables", "sst,t2m,tp")),
    Case("different grids", different_grids, "differs from"),
    Case("regional coverage", regional, "does not cover the 2-degree target"),
    Case("conflicting duplicate steps", conflicting_duplicates, "conflicts with the same step"),
    Case("irregular time steps", irregular_steps, "irregular time steps"),
    Case("all-NaN time steps", all_nan_steps, "all-NaN time step"),
    Case("infinite values", infinite_values, "infinite values"),
    Case("damaged compressed chunk", damaged_chunk, "cannot be read"),
    Case("unexpected units", celsius, "units"),
    Case("undeclared fill value 1e30", _t2m_value(1e30),
         "'t2m' holds 1e+30 K at 2019-01-03T06:00:00, outside ERA5's physical range"),
    Case("GRIB's missing value 3.4e38 left in", _t2m_value(3.4e38),
         "'t2m' holds 3.4e+38 K at 2019-01-03T06:00:00, outside ERA5's physical range"),
    Case("degrees Celsius without units", celsius_without_units,
         "variable 't2m' has no units attribute"),
    Case("time without units", time_without_units,
         "time coordinate 'valid_time' has no units attribute"),
    Case("noleap calendar", noleap_calendar, "ERA5 uses the proleptic Gregorian calendar"),
    Case("NaN in the latitudes", nan_latitude, "latitude coordinate 'latitude' holds nan"),
    Case("symbolic links in a loop", symlink_loop, "symbolic links in a loop"),
    Case("empty folder", empty_folder, "folder holds no NetCDF, GRIB or ZIP file"),
    Case("glob matching only folders", glob_of_folders, "matches only folders"),
    Case("damaged ZIP archive", damaged_zip, "not a readable ZIP archive"),
    Case("a channel all NaN", all_nan_channel, "channel(s) sst hold no valid value"),
    Case("GRIB level below 1 hPa (in Pa)", grib_levels_below_1hpa,
         "pressure level 0.5 hPa is not a whole number of hPa", extra=("--variables", "t500")),
    Case("GRIB variable on two kinds of level", grib_two_kinds_of_level,
         "variable 't' comes on 2 kinds of level", extra=("--variables", "t500")),
    Case("training period without data", empty_training_period,
         "periods.train [2018-01-01, 2018-12-31T18] holds none of the cache's 40 time steps"),
    Case("ensemble without member:", ensemble, "holds 3 ensemble members"),
    Case("levels that are not pressure", isentropic_levels, "not a pressure"),
    Case("truncated GRIB", truncated_grib, "truncated or damaged GRIB file"),
    Case("GRIB message of an unknown parameter", unknown_grib_parameter,
         "holds a parameter eccodes does not know"),
    Case("GRIB files on different grids", grib_different_grids, "differs from"),
    Case("reduced Gaussian GRIB", reduced_gaussian, "is on a reduced_gg grid"),
    Case("recipe value of the wrong type", bad_recipe, "chunk_steps: Input should be a valid "
         "integer"),
    # A Zarr chunk of this input is ~0.6 MB, the HDF5 file 4.6 MB.
    Case("disk full (Zarr chunk)", other_month, "out of disk space",
         preexec=file_size_limit(300_000)),
    Case("disk full (HDF5 file)", other_month, "out of disk space",
         preexec=file_size_limit(2_000_000)),
)


@dataclass(frozen=True)
class Outcome:
    case: Case
    returncode: int
    stderr: str
    named: Path
    checksums_unchanged: bool
    verify_ok: bool

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    def problems(self) -> list[str]:
        out = []
        if self.returncode == 0:
            out.append("exit status 0")
        if len(self.lines) != 1:
            out.append(f"{len(self.lines)} lines on stderr")
        line = self.lines[0] if self.lines else ""
        if self.returncode != 2:
            out.append(f"exit status {self.returncode}, not 2")
        if str(self.named) not in line and self.named.name not in line:
            out.append(f"message does not name {self.named}")
        if self.case.expect not in line:
            out.append(f"message lacks {self.case.expect!r}")
        if not self.checksums_unchanged:
            out.append("published cache changed")
        if not self.verify_ok:
            out.append("verify fails")
        return out


# Command-line cases beside bad inputs: each maker gets (good input, published cache, case
# folder) and gives the arguments and what the one-line message must name.
CommandMaker = Callable[[Path, Path, Path], tuple[list[str], str]]


def output_is_a_file(good: Path, cache: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    (case / "cache").write_text("not a folder\n")
    return job_args([good], case / "cache"), str(case / "cache")


def no_variables(good: Path, cache: Path, case: Path):
    args = job_args([good], cache)
    args[args.index("--variables") + 1] = ""
    return args, "command line"


def _damaged_copy(cache: Path, case: Path, damage: Callable[[Path], None]) -> Path:
    copy = case / "cache"
    if not copy.exists():
        shutil.copytree(cache, copy)
        damage(copy)
    return copy


def _binary_manifest(copy: Path) -> None:
    (copy / "manifest.json").write_bytes(bytes(range(200, 256)) * 8)


def binary_manifest(command: str) -> CommandMaker:
    def make(good: Path, cache: Path, case: Path):
        copy = _damaged_copy(cache, case, _binary_manifest)
        extra = ["--out", str(case / "run")] if command == "train" else []
        return ([command, str(copy)] if command != "train"
                else ["train", "--data", str(copy), *extra]), str(copy / "manifest.json")
    return make


def missing_hdf5(good: Path, cache: Path, case: Path):
    copy = _damaged_copy(cache, case, lambda c: (c / "era5_2deg.h5").unlink())
    return ["inspect", str(copy)], str(copy / "era5_2deg.h5")


def batch_bigger_than_the_split(good: Path, cache: Path, case: Path):
    return ["train", "--data", str(cache), "--batch-size", "100000", "--out",
            str(case / "run")], str(cache)


def cache_too_short_for_a_window(good: Path, cache: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    recipe = case / "train.yaml"
    recipe.write_text(f"data: {cache}\nmodel: {{seq_len: 60}}\ntrainer: {{out: {case / 'run'}}}\n")
    return ["train", str(recipe)], str(cache)


def truncated_checkpoint(good: Path, cache: Path, case: Path):
    case.mkdir(parents=True, exist_ok=True)
    ckpt = case / "last.ckpt"
    ckpt.write_bytes(b"PK\x03\x04" + b"\0" * 100)  # the start of a ZIP archive, cut short
    return ["train", "--data", str(cache), "--batch-size", "8", "--resume", str(ckpt),
            "--out", str(case / "run")], str(ckpt)


def _arco_store(case: Path) -> Path:
    """A small ARCO-ERA5-layout store (two days of hourly t2m and sst at 5 degrees)."""
    from era5cache.sample.stores import write_store

    store = case / "arco.zarr"
    if not store.exists():
        write_store(store, SampleSpec(start="2020-01-01T00", end="2020-01-02T18", step="1h",
                                      resolution=5.0, layout="arco",
                                      variables=("sst", "t2m")))
    return store


def store_without_range(good: Path, cache: Path, case: Path):
    store = _arco_store(case)
    return job_args([store], cache), str(store)


def store_outside_valid_days(good: Path, cache: Path, case: Path):
    store = _arco_store(case)
    return job_args([store], cache, "--start", "2020-01-02", "--end", "2020-01-03T06"), str(
        store)


def store_missing_chunk(good: Path, cache: Path, case: Path):
    store = _arco_store(case)
    time = xr.open_zarr(store, chunks=None)["time"].values
    k = int(np.searchsorted(time, np.datetime64("2020-01-01T12")))
    (store / "2m_temperature" / f"{k}.0.0").unlink(missing_ok=True)
    return job_args([store], cache, "--start", "2020-01-01", "--end", "2020-01-01T18",
                    "--step", "6h"), str(store)


def not_a_zarr_store(good: Path, cache: Path, case: Path):
    (case / "empty.zarr").mkdir(parents=True, exist_ok=True)
    url = (case / "empty.zarr").as_uri()
    return job_args([url], cache, "--start", "2020-01-01", "--end", "2020-01-02"), url


@dataclass(frozen=True)
class CommandCase:
    name: str
    make: CommandMaker
    expect: str  # in the one-line message, after what it names


COMMAND_CASES = (
    CommandCase("output path is a file", output_is_a_file, "the output path is a file"),
    CommandCase("--variables ''", no_variables, "variables: no channel named"),
    CommandCase("binary manifest (verify)", binary_manifest("verify"), "not an era5cache "
                "manifest"),
    CommandCase("binary manifest (inspect)", binary_manifest("inspect"), "not an era5cache "
                "manifest"),
    CommandCase("binary manifest (train)", binary_manifest("train"), "not an era5cache "
                "manifest"),
    CommandCase("inspect without the HDF5 file", missing_hdf5, "missing, though the manifest "
                "lists it"),
    CommandCase("train batch bigger than the split", batch_bigger_than_the_split,
                "no training step would run; use --batch-size 38 or less"),
    CommandCase("train on a cache too short for a window", cache_too_short_for_a_window,
                "the training period holds no window of 61 consecutive steps"),
    CommandCase("train --resume a truncated checkpoint", truncated_checkpoint,
                "not a readable PyTorch checkpoint"),
    CommandCase("Zarr store without --start/--end", store_without_range,
                "give --start and --end"),
    CommandCase("Zarr store read past its valid days", store_outside_valid_days,
                "2020-01-03T00:00:00 is outside the store's valid data"),
    CommandCase("Zarr store missing a chunk", store_missing_chunk,
                "1 all-NaN time step(s) (first 2020-01-01T12:00:00 in t2m"),
    CommandCase("URL of a folder that is not a Zarr store", not_a_zarr_store,
                "not a readable Zarr store"),
)


def run_command_case(case: CommandCase, good: Path, cache: Path, work: Path) -> Outcome:
    """Like :func:`run_case`; the outcome's ``named`` is what the message must name."""
    before = snapshot(cache)
    folder = work / ("cmd_" + "".join(c if c.isalnum() else "_" for c in case.name))
    args, named = case.make(good, cache, folder)
    r = cli(*args)
    # only preprocess writes: the other commands leave the cache alone if its manifest is
    sound = cli("verify", cache).returncode == 0 if args[0] == "preprocess" else True
    return Outcome(Case(case.name, missing_variable, case.expect), r.returncode, r.stderr,
                   Path(named), snapshot(cache) == before, sound)


def publish_good_cache(work: Path) -> tuple[Path, Path]:
    """(good input file, published cache folder)."""
    good = write_good_sample(work / "good")
    cache = work / "cache"
    r = cli(*job_args([good], cache))
    if r.returncode != 0:
        raise RuntimeError(f"building the good cache failed: {r.stderr}")
    return good, cache


def snapshot(cache: Path) -> dict:
    m = json.loads((cache / "manifest.json").read_text())
    return {"outputs": m["outputs"], "fingerprint": m.get("fingerprint")}


def run_case(case: Case, good: Path, cache: Path, work: Path) -> Outcome:
    before = snapshot(cache)
    folder = work / case.name.replace(" ", "_").replace("/", "_")
    inputs, named = case.make(good, folder)
    named = named or cache
    extra = list(case.extra)
    args = job_args(inputs, cache)
    if extra:
        i = args.index("--variables")
        del args[i:i + 2]
        args += extra
    if named.suffix == ".yaml":  # a recipe: the job's CONFIG
        args.insert(1, str(named))
    r = cli(*args, preexec=case.preexec)
    v = cli("verify", cache)
    return Outcome(case, r.returncode, r.stderr, named, snapshot(cache) == before,
                   v.returncode == 0)


def main(argv: list[str]) -> int:
    work = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="era5cache-catalogue-"))
    work.mkdir(parents=True, exist_ok=True)
    good, cache = publish_good_cache(work)
    print(f"published cache: {cache}\n")
    failed = 0
    outcomes = ([(case, lambda c=case: run_case(c, good, cache, work)) for case in CASES]
                + [(case, lambda c=case: run_command_case(c, good, cache, work))
                   for case in COMMAND_CASES])
    for case, run in outcomes:
        o = run()
        bad = o.problems()
        failed += bool(bad)
        line = o.lines[0] if o.lines else "(no message)"
        print(f"{'FAIL' if bad else 'ok  '} {case.name:28s} exit {o.returncode}  "
              f"cache unchanged: {o.checksums_unchanged}  verify: "
              f"{'sound' if o.verify_ok else 'FAILS'}\n     {line}")
        for p in bad:
            print(f"     -> {p}")
    print(f"\n{len(outcomes) - failed} of {len(outcomes)} cases behave; work folder {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
