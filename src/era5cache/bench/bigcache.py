"""``era5cache bench loader --memory-limit BYTES``: feeding a cache bigger than memory.

The loader paths read a synthetic cache (:mod:`era5cache.sample.synthetic`) of ``--channels``
channels, sized to ``--size-factor`` (default 2.2) times the limit, from a process held to
``BYTES`` of memory in a memory cgroup (:mod:`.cgroup`), so at most half of it fits in the
page cache. Before each pass the file's pages are evicted (``POSIX_FADV_DONTNEED``), so every
pass starts cold. Each pass runs one epoch or ``--epoch-seconds``, whichever ends first, and
is reported in file bytes per second (windows/s times the bytes of one step: what an epoch
reads of the file, divided by its time) and as a share of the cold sequential ``read()`` of
the same file:

- cold sequential ``read()`` of the HDF5 file in 8 MiB pieces (the disk's rate);
- DataLoader (batch ``--batch-size``, ``--workers`` fork workers, ``collate_fn=
  CachedERA5Dataset.collate``) in time order (``shuffle=False``);
- the same with ``shuffle=True`` (a full shuffle);
- the same with :class:`~era5cache.BlockShuffleSampler` (and ``cold_after_read=True``);
- the last two on the same steps stored as bfloat16 (``dtype: bfloat16``: half the bytes).

``--read-bps RATE`` (e.g. ``400MB``) also throttles reads from the cache's disk in a block
I/O cgroup (:class:`.cgroup.ReadThrottle`): slower storage, such as a network file system,
on a machine whose disk outruns what its cores can cut into windows.

Then, without the limit and with the float32 file in the page cache, the full shuffle against
the sampler in windows/s: the sampler must cost nothing when the cache fits. The full
shuffle in memory is also the loader's ceiling on this CPU (column "x loader in memory"):
where the disk reads faster than the workers can cut windows, no order reaches the disk.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config.sizes import memory_bytes
from ..grid import NLAT, NLON
from ..sample.synthetic import write_synthetic_cache
from ..serve.dataset import CachedERA5Dataset
from ..serve.readahead import evict
from ..serve.sampler import BlockShuffleSampler
from .cgroup import MemoryCgroup, ReadThrottle
from .common import machine, table, write_json

PIECE = 8 << 20


def sequential_read(path: Path, seconds: float) -> tuple[int, float]:
    """Bytes read with ``read()`` from the start of ``path`` in 8 MiB pieces, and seconds."""
    buf = bytearray(PIECE)
    n, t0 = 0, time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while (k := f.readinto(buf)) and time.perf_counter() - t0 < seconds:
            n += k
    return n, time.perf_counter() - t0


def loader_epoch(ds, batch: int, workers: int, seconds: float, shuffle: bool = False,
                 sampler=None, epoch: int = 0) -> tuple[int, float]:
    """Windows that a DataLoader delivers in one epoch or ``seconds``, and seconds (worker
    start-up included: every epoch pays it in training too, unless workers persist)."""
    if sampler is not None:
        sampler.set_epoch(epoch)
    dl = DataLoader(ds, batch_size=batch, shuffle=shuffle if sampler is None else False,
                    sampler=sampler, num_workers=workers, collate_fn=CachedERA5Dataset.collate,
                    multiprocessing_context="fork" if workers else None,
                    worker_init_fn=CachedERA5Dataset.worker_init_fn if workers else None,
                    generator=torch.Generator().manual_seed(epoch))
    n, t0 = 0, time.perf_counter()
    for x, *_ in dl:
        n += x.shape[0]
        if time.perf_counter() - t0 > seconds:
            break
    secs = time.perf_counter() - t0
    del dl
    return n, secs


def _cache(work: Path, channels: int, steps: int, dtype: str) -> Path:
    out = work / f"bigcache-{channels}ch-{steps}-{dtype}"
    if not (out / "manifest.json").is_file():
        print(f"  writing a synthetic {dtype} cache of {steps} steps x {channels} channels "
              f"to {out}", flush=True)
        write_synthetic_cache(out, steps, channels=channels, dtype=dtype)
    return out


def main(args) -> int:
    import signal
    import sys
    import warnings

    warnings.filterwarnings("ignore", message="This DataLoader will create")
    # a terminated run leaves its cgroups: exit through the `with` blocks that remove them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    limit = memory_bytes(args.memory_limit)
    step_bytes = args.channels * NLAT * NLON * 4
    steps = math.ceil(args.size_factor * limit / step_bytes)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    paths = {d: _cache(work, args.channels, steps, d) for d in ("float32", "bfloat16")}
    dss = {d: CachedERA5Dataset(p, split="all", seq_len=args.seq_len, lead=1)
           for d, p in paths.items()}
    # the sampler's passes read with cold_after_read, as the trainer's blocks mode does
    streams = {d: CachedERA5Dataset(p, split="all", seq_len=args.seq_len, lead=1,
                                    cold_after_read=True) for d, p in paths.items()}
    f32 = dss["float32"]
    size = f32.path.stat().st_size
    B, W, secs = args.batch_size, args.workers, args.epoch_seconds
    print(f"cache {paths['float32']}: {size / 1e9:.2f} GB float32 ({steps} steps x "
          f"{args.channels} channels, {step_bytes / 1e3:.1f} kB a step), "
          f"{dss['bfloat16'].path.stat().st_size / 1e9:.2f} GB bfloat16; memory limit "
          f"{limit / 2**30:.2f} GiB; batch {B}, {W} workers, seq_len {args.seq_len}"
          + (f"; disk reads throttled to {memory_bytes(args.read_bps) / 1e6:.0f} MB/s"
             if args.read_bps else ""), flush=True)
    rows: dict[str, dict] = {}

    def record(name, windows, seconds, ds, windows_are_bytes=False):
        bps = windows / seconds if windows_are_bytes else windows * ds.step_bytes / seconds
        rows[name] = {"mb_per_s": bps / 1e6, "seconds": seconds,
                      "windows_per_s": None if windows_are_bytes else windows / seconds}
        print(f"  {name}: {bps / 1e6:,.0f} MB/s"
              + ("" if windows_are_bytes else f", {windows / seconds:,.0f} windows/s"),
              flush=True)

    def sampler_for(ds):  # made inside the cgroup: default sizes from its limit
        return BlockShuffleSampler(ds, seed=0, block_bytes=args.block_bytes,
                                   pool_bytes=args.pool_bytes)

    throttle = (ReadThrottle(f32.path, memory_bytes(args.read_bps)) if args.read_bps
                else contextlib.nullcontext())
    with MemoryCgroup(limit) as cg, throttle:
        for rnd in range(args.rounds):
            evict(f32.path)
            record(f"cold sequential read() [{rnd}]", *sequential_read(f32.path, secs), f32,
                   windows_are_bytes=True)
            evict(f32.path)
            record(f"DataLoader shuffle=False [{rnd}]",
                   *loader_epoch(f32, B, W, secs), f32)
            for d, ds in dss.items():
                evict(ds.path)
                record(f"DataLoader shuffle=True, {d} [{rnd}]",
                       *loader_epoch(ds, B, W, secs, shuffle=True, epoch=rnd), ds)
                evict(ds.path)
                st = streams[d]
                record(f"DataLoader + BlockShuffleSampler, {d} [{rnd}]",
                       *loader_epoch(st, B, W, secs, sampler=sampler_for(st), epoch=rnd), st)
        peak = cg.peak()
    # in memory: the float32 file fits this machine's page cache; warm it, then compare
    np.asarray(f32.data).sum()
    for rnd in range(args.rounds):
        record(f"in memory: DataLoader shuffle=True [{rnd}]",
               *loader_epoch(f32, B, W, secs, shuffle=True, epoch=rnd), f32)
        record(f"in memory: DataLoader + BlockShuffleSampler [{rnd}]",
               *loader_epoch(f32, B, W, secs, sampler=sampler_for(f32), epoch=rnd), f32)

    def med(prefix: str, key: str = "mb_per_s") -> float:
        return float(np.median([v[key] for k, v in rows.items() if k.startswith(prefix)]))

    seq = med("cold sequential")
    cpu = med("in memory: DataLoader shuffle=True")  # the loader's ceiling on this CPU
    names = ["cold sequential read()", "DataLoader shuffle=False",
             "DataLoader shuffle=True, float32", "DataLoader + BlockShuffleSampler, float32",
             "DataLoader shuffle=True, bfloat16", "DataLoader + BlockShuffleSampler, bfloat16",
             "in memory: DataLoader shuffle=True", "in memory: DataLoader + BlockShuffleSampler"]
    out_rows = [(n, f"{med(n):,.0f}", f"{med(n) / seq:.2f}", f"{med(n) / cpu:.2f}",
                 "-" if n.startswith("cold") else f"{med(n, 'windows_per_s'):,.0f}")
                for n in names]
    charged = f"{peak / 2**30:.2f} GiB" if peak else "unknown"
    throttled = f", reads throttled to {args.read_bps}" if args.read_bps else ""
    print(f"medians of {args.rounds} rounds, each pass cold, memory limit "
          f"{limit / 2**30:.2f} GiB (peak charged {charged}){throttled}")
    print(table(out_rows, ("path", "file MB/s", "x cold sequential read",
                           "x loader in memory", "windows/s")))
    ratios = {
        "sampler_vs_sequential": med("DataLoader + BlockShuffleSampler, float32") / seq,
        "sampler_vs_in_memory_loader": med("DataLoader + BlockShuffleSampler, float32") / cpu,
        "sampler_vs_shuffled_loader": (med("DataLoader + BlockShuffleSampler, float32")
                                       / med("DataLoader shuffle=True, float32")),
        "bf16_vs_f32_sampler_windows": (
            med("DataLoader + BlockShuffleSampler, bfloat16", "windows_per_s")
            / med("DataLoader + BlockShuffleSampler, float32", "windows_per_s")),
        "in_memory_sampler_vs_shuffle": (
            med("in memory: DataLoader + BlockShuffleSampler", "windows_per_s")
            / med("in memory: DataLoader shuffle=True", "windows_per_s")),
    }
    print("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    write_json(args.json, {"benchmark": "loader-bigger-than-memory", "machine": machine(),
                           "memory_limit": limit, "peak_charged": peak,
                           "read_bps": memory_bytes(args.read_bps) if args.read_bps else None,
                           "cache_bytes": size, "channels": args.channels, "steps": steps,
                           "batch_size": B, "workers": W, "results": rows,
                           "ratios": ratios})
    return 0
