"""Compressed ERA5 NetCDF layouts of one field, as real archives hold them, for benchmarks.

* ``cds``: float32, deflate 1 + shuffle, netCDF's default chunking: what the 2024+ CDS
  writes ((42, 181, 360) for 168 hourly 0.25-degree steps, (124, 121, 240) for a month of
  744: chunks deeper in time than a read block, split in latitude and longitude);
* ``mirror``: int16 with ``scale_factor``/``add_offset``, deflate 5 + shuffle, one chunk over
  every step (n, 721, 1440): the layout of a large national ERA5 mirror, whose monthly files
  are chunked (720, 721, 1440).

Written from a normalised source (:func:`era5cache.read.normalise.open_file`) a chunk's depth
of steps at a time, with an HDF5 chunk cache that holds a whole chunk, so that no chunk is
compressed twice. Plus :func:`read_each_chunk_once`, the plain pass the job is measured
against: h5py reads the file chunk by chunk, each compressed chunk decompressed once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LAYOUTS = ("cds", "mirror")


def write_layout(src: str | os.PathLike, dst: str | os.PathLike, layout: str,
                 var: str = "t2m") -> Path:
    """Rewrite ``var`` of ``src`` into ``dst`` in ``layout`` (:data:`LAYOUTS`), CDS 2024+
    names (``valid_time``, ``latitude`` descending, ``longitude``); atomic."""
    import netCDF4

    from ..read.normalise import open_file

    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    with open_file(src) as ds:
        da = ds[var]
        nt, nlat, nlon = da.shape
        times = ds["time"].values.astype("datetime64[s]").astype(np.int64)
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("valid_time", nt)
            nc.createDimension("latitude", nlat)
            nc.createDimension("longitude", nlon)
            t = nc.createVariable("valid_time", "i8", ("valid_time",))
            t.units, t.calendar = "seconds since 1970-01-01", "proleptic_gregorian"
            t[:] = times
            la = nc.createVariable("latitude", "f8", ("latitude",))
            la.units = "degrees_north"
            la[:] = ds["lat"].values[::-1]
            lo = nc.createVariable("longitude", "f8", ("longitude",))
            lo.units = "degrees_east"
            lo[:] = ds["lon"].values
            if layout == "cds":  # netCDF's default chunks
                v = nc.createVariable(var, "f4", ("valid_time", "latitude", "longitude"),
                                      zlib=True, complevel=1, shuffle=True,
                                      fill_value=np.float32(np.nan))
                chunks = tuple(v.chunking())
            elif layout == "mirror":
                chunks = (nt, nlat, nlon)
                v = nc.createVariable(var, "i2", ("valid_time", "latitude", "longitude"),
                                      zlib=True, complevel=5, shuffle=True, chunksizes=chunks,
                                      fill_value=np.int16(-32767))
                lo_v, hi_v = float(da.min().values), float(da.max().values)
                v.scale_factor = (hi_v - lo_v) / 65532.0
                v.add_offset = (hi_v + lo_v) / 2.0
            else:
                raise ValueError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
            v.units = da.attrs.get("units", "")
            v.long_name = da.attrs.get("long_name", var)
            v.set_var_chunk_cache(size=int(np.prod(chunks)) * v.dtype.itemsize + 2**20,
                                  nelems=1009, preemption=0.75)
            depth = chunks[0]
            for a in range(0, nt, depth):
                v[a:a + depth] = da.isel(time=slice(a, a + depth)).values[:, ::-1]
    os.replace(tmp, dst)
    return dst


def read_each_chunk_once(path: str | os.PathLike, var: str = "t2m") -> int:
    """Read every value of ``var`` with h5py one HDF5 chunk at a time (each compressed chunk
    decompressed once, no regridding, no output), decoded to float32 as the job decodes
    it; returns the decoded bytes."""
    import h5py

    total = 0
    with h5py.File(path, "r") as f:
        d = f[var]
        scale = float(np.ravel(d.attrs.get("scale_factor", 1.0))[0])
        offset = float(np.ravel(d.attrs.get("add_offset", 0.0))[0])
        chunks = d.chunks or d.shape
        for a in range(0, d.shape[0], chunks[0]):
            for b in range(0, d.shape[1], chunks[1]):
                block = d[a:a + chunks[0], b:b + chunks[1], :]
                if d.dtype != np.float32:
                    block = block.astype(np.float32) * np.float32(scale) + np.float32(offset)
                total += block.size * 4
    return total


def decode_grib_once(path: str | os.PathLike) -> int:
    """Decode every message of a GRIB file once with eccodes (the GRIB plain pass); returns
    the decoded float32 bytes."""
    import eccodes

    total = 0
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                total += eccodes.codes_get_values(h).astype(np.float32).nbytes
            finally:
                eccodes.codes_release(h)
    return total


def make_inputs(work: Path, steps: tuple[int, ...]) -> dict[tuple[str, int], Path]:
    """The benchmark's inputs, made once under ``work``: for each number of hourly
    0.25-degree ``t2m`` steps, the ``cds`` and ``mirror`` layouts, and GRIB 1 (16-bit
    simple packing, as the CDS encodes ERA5)."""
    from ..config.sample import SampleSpec
    from ..sample.grib import grib_from_netcdf
    from ..sample.netcdf import write_sample

    out: dict[tuple[str, int], Path] = {}
    for n in steps:
        folder = work / f"layouts_{n}h"
        kinds = LAYOUTS + ("grib",)
        paths = {k: folder / k / ("t2m.grib" if k == "grib" else "t2m.nc") for k in kinds}
        done = folder / ".complete-v2"  # v2: the cds layout in netCDF's default chunks
        if not done.exists():
            start = np.datetime64("2021-07-01T00")
            src = write_sample(folder / "source", SampleSpec(
                start=str(start), end=str(start + np.timedelta64(n - 1, "h")), step="1h",
                resolution=0.25, variables=("t2m",), compress=False))[0]
            for k, p in paths.items():
                p.parent.mkdir(parents=True, exist_ok=True)
                if k == "grib":
                    grib_from_netcdf(src, p, edition=1)
                else:
                    write_layout(src, p, k)
            src.unlink()
            done.touch()
        out.update({(k, n): p for k, p in paths.items()})
    return out
