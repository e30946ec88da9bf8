"""``era5cache bench loader``: samples/s and GB/s of the ways to feed the same windows.

All paths produce the same normalised windows (x: seq_len frames, y: the target) of the
same cache, batch size ``--batch-size``, in one run:

(a) the original way: per-sample xarray reads of a NetCDF copy of the 2-degree data, in the
    main process (DataLoader, num_workers=0);
(b) xbatcher over the Zarr store; (c) per-sample Zarr reads;
(d) ``CachedERA5Dataset`` per sample (``__getitem__``), 0 and 2 workers;
(e) batched ``__getitems__`` in the main process, on ``torch.get_num_threads()`` threads
    (the Dataset's default); (f) GPU-resident batches (on CUDA when present, else CPU);
(g) the ceiling: ``numpy.copyto`` of the same number of bytes, on one thread and on as many
    threads as (e) uses.
(e) and (g) are measured alternately, three rounds each, and their medians reported, so that
the machine's drift does not bias their ratio; (a), the slowest, before and after them. First,
the private memory of 4 fork DataLoader workers: anonymous (beyond the page cache) and
batches in shared memory.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import CacheError
from ..serve.dataset import CachedERA5Dataset
from .common import machine, table, write_json


class _PerSample(Dataset):
    """Hides ``__getitems__`` so the DataLoader fetches one window at a time."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


class _RawWindows(Dataset):
    """Windows of ``ref`` read by ``_read(start, count)`` in physical units (time, C, H, W),
    normalised per sample in numpy, as the original code did."""

    def __init__(self, ref: CachedERA5Dataset):
        self.ref = ref
        self.mean = ref.stats["mean"].astype(np.float32)[:, None, None]
        self.std = ref.stats["std"].astype(np.float32)[:, None, None]

    def __len__(self):
        return len(self.ref)

    def __getitem__(self, i):
        n, lead = self.ref.seq_len, self.ref.lead
        arr = self._read(int(self.ref.starts[i]), n + lead)
        x = np.nan_to_num((arr[:n] - self.mean) / self.std)
        y = np.nan_to_num((arr[n - 1 + lead] - self.mean) / self.std)
        return torch.from_numpy(x), torch.from_numpy(y)


class _XarrayNetCDF(_RawWindows):
    """The original way: every sample re-read from the NetCDF file through xarray."""

    def __init__(self, path, ref: CachedERA5Dataset):
        super().__init__(ref)
        self.path = path

    def _read(self, start, count):
        import xarray as xr

        with xr.open_dataset(self.path) as ds:
            win = ds.isel(time=slice(start, start + count))
            return np.stack([win[c].values for c in self.ref.channels], axis=1)


class _ZarrPerSample(_RawWindows):
    """Per-sample reads of the Zarr store (one read per channel)."""

    def __init__(self, path, ref: CachedERA5Dataset):
        import zarr

        super().__init__(ref)
        g = zarr.open_group(str(path), mode="r")
        self.arrays = [g[c] for c in ref.channels]

    def _read(self, start, count):
        return np.stack([a[start:start + count] for a in self.arrays], axis=1)


def _timed(batches, budget_s: float, max_batches: int, warmup_s: float = 1.0
           ) -> tuple[int, float]:
    """Consume batches for about ``budget_s`` after a warm-up (at least one batch, up to
    ``warmup_s``: first allocations, worker start, buffer pools); returns (samples, seconds).
    """
    it = _forever(batches)
    t0 = time.perf_counter()
    for _ in it:
        if time.perf_counter() - t0 > warmup_s:
            break
    n, t0 = 0, time.perf_counter()
    for k, b in enumerate(it):
        n += b[0].shape[0]
        if time.perf_counter() - t0 > budget_s or k + 1 >= max_batches:
            break
    return n, time.perf_counter() - t0


def _forever(batches):
    """Epoch after epoch of a DataLoader; other iterables as they are."""
    if isinstance(batches, DataLoader):
        while True:
            yield from batches
    yield from batches


def _loader(ds, batch, workers=0, collate=None, ctx=None):
    kw = dict(num_workers=workers, persistent_workers=bool(workers), pin_memory=False)
    if workers:
        kw["multiprocessing_context"] = ctx or "fork"
        kw["prefetch_factor"] = 4
        kw["worker_init_fn"] = CachedERA5Dataset.worker_init_fn
    return DataLoader(ds, batch_size=batch, shuffle=True, collate_fn=collate,
                      generator=torch.Generator().manual_seed(0), **kw)


def private_memory(pid: int) -> dict[str, int]:
    """Bytes a process holds on its own (Private_Clean + Private_Dirty of /proc/PID/smaps),
    by kind of mapping: ``anonymous`` (heap, stacks: memory beyond the page cache),
    ``shared_memory`` (/dev/shm and memfd files: page cache, here batches built for another
    process that has not mapped them yet) and ``file`` (file pages only it maps)."""
    out = {"anonymous": 0, "shared_memory": 0, "file": 0}
    kind = "anonymous"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head[0].endswith(":"):  # a mapping: addr perms offset dev inode [path]
                path = head[5] if len(head) > 5 else ""
                kind = ("shared_memory" if path.startswith(("/dev/shm", "/memfd:"))
                        else "file" if path.startswith("/") else "anonymous")
            elif head[0] in ("Private_Clean:", "Private_Dirty:"):
                out[kind] += int(head[1]) * 1024
    return out


def worker_memory(ds, batch: int, batches: int = 20) -> list[dict[str, float]]:
    """Private memory (MB, :func:`private_memory`) of each of 4 fork workers after
    ``batches`` batches, with PyTorch's default prefetch_factor (2). The memory map's pages
    are page cache shared by all; ``shared_memory`` is the batches a worker has built and
    not yet handed over (prefetched)."""
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=4,
                    multiprocessing_context="fork", collate_fn=CachedERA5Dataset.collate,
                    worker_init_fn=CachedERA5Dataset.worker_init_fn)
    it = iter(dl)
    for _ in zip(range(batches), it, strict=False):
        pass
    out = [{k: v / 1e6 for k, v in private_memory(w.pid).items()} for w in it._workers]
    del it
    return out


def main(args) -> int:
    import warnings

    warnings.filterwarnings("ignore", message="This DataLoader will create")  # 4 on 2 cores
    root = Path(args.data)
    try:
        ds = CachedERA5Dataset(root, split="train", seq_len=args.seq_len, lead=1)
    except CacheError as exc:
        raise CacheError(
            f"{exc} (the loader benchmark reads the cache of `make preprocess`)") from exc
    B, budget = args.batch_size, args.seconds
    sample_bytes = (ds.seq_len + 1) * len(ds.channels) * 80 * 180 * 4
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    nc = work / "era5_2deg_copy.nc"
    if not nc.exists():
        import xarray as xr

        with xr.open_zarr(root / "era5_2deg.zarr") as z:
            z.load().to_netcdf(nc.with_suffix(".tmp"))
        os.replace(nc.with_suffix(".tmp"), nc)
    results: dict[str, dict] = {}

    def record(name, n, secs):
        results[name] = {"samples_per_s": n / secs, "gb_per_s": n * sample_bytes / secs / 1e9}
        print(f"  {name}: {n / secs:,.0f} samples/s", flush=True)

    np.asarray(ds.data).sum()  # warm the page cache for every path
    anon = worker_memory(ds, 50)  # first, while this process is still small
    # (a) in batches of 32 (its rate does not depend on the batch; a batch of 256 takes it
    # ~3 s, too coarse for the time budget), measured now and again after (e), averaged
    original = _XarrayNetCDF(nc, ds)
    a_runs = [_timed(_loader(original, min(B, 32)), budget, 10**9)]
    try:
        import xarray as xr
        import xbatcher

        z = xr.open_zarr(root / "era5_2deg.zarr")[ds.channels].to_array("channel")
        z = z.transpose("time", "channel", "lat", "lon")
        gen = xbatcher.BatchGenerator(z, input_dims={"time": ds.seq_len + 1},
                                      input_overlap={"time": ds.seq_len})

        def xb():
            batch = []
            for w in gen:
                batch.append(np.nan_to_num(w.values))
                if len(batch) == B:
                    yield (np.stack(batch),)
                    batch = []

        record("(b) xbatcher over Zarr", *_timed(xb(), budget, 10**9))
    except ImportError:
        print("  (b) skipped: xbatcher not installed")
    record("(c) Zarr per sample", *_timed(_loader(_ZarrPerSample(root / "era5_2deg.zarr", ds),
                                                  B), budget, 10**9))
    record("(d) CachedERA5Dataset per sample, 0 workers",
           *_timed(_loader(_PerSample(ds), B), budget, 10**9))
    record("(d) CachedERA5Dataset per sample, 2 workers",
           *_timed(_loader(_PerSample(ds), B, workers=2), budget, 10**9))
    src = np.asarray(ds.data).reshape(-1)
    dst = np.empty(B * sample_bytes // 4, dtype=np.float32)
    src = src[: (src.size // dst.size) * dst.size].reshape(-1, dst.size)

    threads = torch.get_num_threads()  # what (e) uses in this process
    pool = ThreadPoolExecutor(max(1, threads - 1))

    def copies(parts: int = 1):
        k = 0
        cuts = np.linspace(0, dst.size, parts + 1).astype(int)
        while True:
            row = src[k % src.shape[0]]
            done = [pool.submit(np.copyto, dst[a:b], row[a:b])
                    for a, b in zip(cuts[1:-1], cuts[2:], strict=True)]
            np.copyto(dst[:cuts[1]], row[:cuts[1]])
            for f in done:
                f.result()
            k += 1
            yield (np.empty((B,)),)

    # (e) against its ceiling (g), on one thread and on as many as (e) uses: alternated, 3
    # rounds each, medians (the machine's speed drifts between seconds)
    rates: dict[str, list[float]] = {"e": [], "g": [], "gN": []}
    for _ in range(3):
        n, t = _timed(_loader(ds, B, collate=CachedERA5Dataset.collate), budget / 2, 10**9)
        rates["e"].append(n / t)
        n, t = _timed(copies(), budget / 2, 10**9)
        rates["g"].append(n / t)
        if threads > 1:
            n, t = _timed(copies(threads), budget / 2, 10**9)
            rates["gN"].append(n / t)
    pool.shutdown()
    a_runs.append(_timed(_loader(original, min(B, 32)), budget, 10**9))
    record("(a) original: xarray NetCDF per sample, main process",
           sum(n for n, _ in a_runs), sum(t for _, t in a_runs))
    e_rate, g_rate = float(np.median(rates["e"])), float(np.median(rates["g"]))
    record(f"(e) CachedERA5Dataset batched __getitems__ ({threads} threads)", e_rate, 1.0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    res = ds.to_device(device, batch_size=B, shuffle=True)

    def resident():
        for _ in range(10**6):
            for b in res:
                if device == "cuda":
                    torch.cuda.synchronize()
                yield b

    record(f"(f) GPU-resident batches ({device})", *_timed(resident(), budget, 10**9))
    record("(g) ceiling: numpy.copyto of the same bytes", g_rate, 1.0)
    if rates["gN"]:
        record(f"(g) numpy.copyto of the same bytes on {threads} threads",
               float(np.median(rates["gN"])), 1.0)
    results = dict(sorted(results.items()))  # (a) was measured last
    ceiling = results["(g) ceiling: numpy.copyto of the same bytes"]["samples_per_s"]
    orig = results["(a) original: xarray NetCDF per sample, main process"]["samples_per_s"]
    xbr = results.get("(b) xbatcher over Zarr", {}).get("samples_per_s")
    rows = [(k, f"{v['samples_per_s']:,.0f}", f"{v['gb_per_s']:.2f}",
             f"{v['samples_per_s'] / orig:,.1f}",
             f"{v['samples_per_s'] / xbr:,.1f}" if xbr else "-",
             f"{100 * v['samples_per_s'] / ceiling:.0f}%") for k, v in results.items()]
    print(f"cache {root}: {len(ds)} train windows, seq_len {ds.seq_len}, "
          f"{len(ds.channels)} channels, {sample_bytes / 1e3:.0f} kB per sample, batch {B}")
    print(table(rows, ("path", "samples/s", "GB/s", "x original", "x xbatcher",
                       "of memcpy (1 thread)")))
    batch_mb = 50 * sample_bytes / 1e6
    heap = ", ".join(f"{m['anonymous']:.0f}" for m in anon)
    shm = ", ".join(f"{m['shared_memory']:.0f}" for m in anon)
    print(f"4 fork DataLoader workers (prefetch_factor 2) after 20 batches of 50 "
          f"({batch_mb:.0f} MB each), private memory of each: beyond the page cache "
          f"(anonymous) {heap} MB; prefetched batches in shared memory {shm} MB")
    write_json(args.json, {"benchmark": "loader", "machine": machine(), "batch_size": B,
                           "sample_bytes": sample_bytes, "results": results,
                           "worker_memory_mb": anon,
                           "cuda": torch.cuda.get_device_name() if device == "cuda" else None})
    return 0
