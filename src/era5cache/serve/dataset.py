"""``CachedERA5Dataset``: windows of the memory-mapped HDF5 cache as PyTorch tensors.

Item ``i`` is ``(x, y)`` with ``x`` shaped ``(seq_len, channel, lat, lon)`` (consecutive time
steps) and ``y`` shaped ``(channel, lat, lon)``, ``lead`` steps after the last input; both
float32, normalised with the cache's training-period mean/std (``normalize=False`` keeps
physical units), NaN (land in ``sst``) replaced by ``fill_value`` after normalisation. With
``return_mask=True`` a boolean ``mask`` (True = valid) of ``y`` follows, with
``return_time=True`` the int64 timestamps (seconds since 1970) of the ``seq_len + 1`` steps.

A 16-bit cache (``dtype: float16``/``bfloat16`` at preprocessing) stores normalised values;
they are decoded to float32 on the way (and scaled back for ``normalize=False``), within the
rounding error the cache states (``info.encoding_error``, physical units). ``channels=``
reads only those channels' bytes.

Windows never cross a gap in time nor the edge of their split. The array is read through
``numpy.memmap`` at ``/data``'s file offset, opened lazily in each process (the object
pickles without its map, so ``fork`` and ``spawn`` workers each open their own). Every map
is of the file the dataset was created on (its device, inode, size and mtime,
``file_id``): after a new publication of the cache, a dataset created before it (or its
copy in a worker) either still reads the old file, which it mapped before, or raises
:class:`~era5cache.errors.CacheError` saying the cache was replaced; never the new file
under the old time index.
``__getitems__`` copies a whole batch out of the map in one call, normalising on the way
(scale while copying, offset and NaN fill while a few windows are in the CPU cache; the fill
only on channels whose split holds NaN, from ``/has_nan``), a few windows at a time shared
among ``threads`` threads, into buffers reused once the caller drops a batch; pass
``collate_fn=CachedERA5Dataset.collate`` to a DataLoader to take that batch without a
further copy (the default collate also works, with one extra copy), and
``worker_init_fn=CachedERA5Dataset.worker_init_fn`` so that forked workers do not copy the
parent's memory when they collect garbage.
"""

from __future__ import annotations

import contextlib
import mmap
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..errors import CacheError
from ..format.encoding import decode, decode_into
from ..format.fileid import FileId, open_same
from ..format.h5 import CacheInfo
from ..format.layout import paths
from ..format.manifest import read_manifest
from ..process import freeze_inherited
from ..timeaxis import Period, steps_between
from .batching import LOAD_LOCK, Batch, BufferPool, each_group, groups_of, shared_empty


class CachedERA5Dataset(torch.utils.data.Dataset):
    """See the module docstring.

    Args:
        root: cache folder (holding ``era5_2deg.h5`` and ``manifest.json``).
        split: ``"train"``, ``"val"``, ``"test"`` (periods stored in the cache) or ``"all"``.
        channels: subset/order of channel names; default all.
        seq_len, lead: window length and target lead, in time steps.
        time_range: ``(start, end)`` inclusive ISO strings; overrides ``split``'s period.
        threads: threads that build a batch (``__getitems__``); default
            ``torch.get_num_threads()`` at the call, which PyTorch sets to 1 in DataLoader
            workers.
        cold_after_read: reads through the memory map do not count as uses of its pages
            (``madvise(MADV_SEQUENTIAL)`` on the map), so that the kernel reclaims pages
            already read before those read ahead and not yet read. For caches bigger than
            memory read with :class:`~era5cache.BlockShuffleSampler`: a step is read by
            ``seq_len + lead`` windows, which otherwise makes the kernel keep consumed steps
            and evict the next pool's pages before use, then read them again. A fault on a
            page not in memory also reads ahead forwards only, not around it. Settable
            after opening.
    """

    def __init__(self, root: str | Path, split: str = "train", channels: list[str] | None = None,
                 seq_len: int = 2, lead: int = 1, normalize: bool = True,
                 fill_value: float = 0.0, return_mask: bool = False, return_time: bool = False,
                 time_range: tuple[str, str] | None = None, threads: int | None = None,
                 cold_after_read: bool = False):
        if seq_len < 1 or lead < 1:
            raise ValueError("seq_len and lead must be >= 1")
        self.root = Path(root)
        manifest = read_manifest(self.root)
        _, self.path, _ = paths(self.root)
        self.file_id = FileId.at(self.path)  # the file every later read must be
        self.info = info = CacheInfo.read(self.path)
        if FileId.at(self.path) != self.file_id:  # published between the two
            raise CacheError(f"{self.path}: the cache was replaced while it was being "
                             "opened; open it again")
        problems = info.problems(manifest.shape, manifest.channels,
                                 manifest.h5.get("data_offset"), manifest.storage)
        if problems:
            raise CacheError(f"{problems[0]}; the cache is inconsistent, rebuild it")
        all_channels = list(info.channels)
        self.lat, self.lon = info.lat, info.lon
        channels = list(channels) if channels is not None else all_channels
        if not channels:
            raise ValueError(f"{self.path}: no channel selected (channels=[]); give some of "
                             f"{all_channels}, or None for all")
        missing = [c for c in channels if c not in all_channels]
        if missing:
            raise ValueError(f"{self.path}: no channel(s) {missing}; has {all_channels}")
        self.channels = channels
        self._ch = np.array([all_channels.index(c) for c in channels])
        self._ch_all = self._ch.tolist() == list(range(len(all_channels)))
        self.stats = {"mean": info.mean[self._ch], "std": info.std[self._ch],
                      "diff_std": info.diff_std[self._ch]}
        self.seq_len, self.lead = seq_len, lead
        self.normalize, self.fill_value = normalize, float(fill_value)
        self.return_mask, self.return_time = return_mask, return_time
        self.threads = threads
        self._mm: np.memmap | None = None
        self.cold_after_read = cold_after_read
        self.split = split
        in_split = self._split_mask(split, time_range)
        self.starts = self._window_starts(in_split, info.step)
        self.times = info.times[in_split]
        # Channels whose split steps hold a NaN: only these need the fill (a cache without
        # /has_nan, from before it existed: all of them).
        nan_any = (np.ones(len(all_channels), bool) if info.has_nan is None
                   else info.has_nan[in_split].any(axis=0))
        self._nan_channels = np.flatnonzero(nan_any[self._ch])
        # stored -> wanted values: x * scale + shift per channel (None: as stored)
        self._affine = self._transform(normalize)
        self._runs = channel_runs(self._ch)
        self._pool = BufferPool()

    # --- construction helpers -------------------------------------------------------------
    def _transform(self, normalize: bool):
        """(scale, shift) float32 (channel, 1, 1) that turn stored values of the selected
        channels into normalised (``normalize``) or physical ones; None when stored values
        are already what is wanted."""
        if normalize == self.info.normalised:
            return None
        mean, std = self.stats["mean"], self.stats["std"]
        scale, shift = (1.0 / std, -mean / std) if normalize else (std, mean)
        return (scale.astype(np.float32)[:, None, None],
                shift.astype(np.float32)[:, None, None])

    def _split_mask(self, split: str, time_range: tuple[str, str] | None) -> np.ndarray:
        t = self.info.times
        if time_range is not None:
            return Period(*map(str, time_range)).mask(t)
        if split == "all":
            return np.ones(t.size, bool)
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val, test or all, not {split!r}")
        return self.info.periods.mask(split, t)

    def _window_starts(self, in_split: np.ndarray, step: str | None) -> np.ndarray:
        """Start indices s such that steps s .. s+seq_len-1+lead are in the split and
        consecutive (no gap)."""
        n = self.info.times.size
        span = self.seq_len + self.lead  # steps from first input to target, inclusive
        if n < span:
            return np.zeros(0, dtype=np.int64)
        ok = np.zeros(n, bool)  # ok[i]: step i+1 directly follows step i
        if step is not None:
            ok[:-1] = steps_between(self.info.times, step) == 1
        bad_link = np.concatenate([[0], np.cumsum(~ok[:-1])])  # links broken before i
        bad_in = np.concatenate([[0], np.cumsum(~in_split)])
        s = np.arange(n - span + 1)
        links_ok = bad_link[s + span - 1] - bad_link[s] == 0
        inside = bad_in[s + span] - bad_in[s] == 0
        return s[links_ok & inside].astype(np.int64)

    # --- memory map -----------------------------------------------------------------------
    @property
    def data(self) -> np.memmap:
        """The whole ``/data`` array (time, channel, lat, lon), memory-mapped read-only, as
        stored (``info.storage``: float32, float16, or bfloat16 bits as uint16)."""
        if self._mm is None:
            with open_same(self.path, self.file_id) as f:  # never a newer file
                self._mm = self.info.map_data(f)
            self._advise()
        return self._mm

    @property
    def mapped(self) -> bool:
        """Whether this object holds the memory map now (made on first read, dropped when
        pickled: each DataLoader worker maps the file itself)."""
        return self._mm is not None

    @property
    def cold_after_read(self) -> bool:
        """See the class docstring."""
        return self._cold_after_read

    @cold_after_read.setter
    def cold_after_read(self, on: bool) -> None:
        self._cold_after_read = bool(on)
        if self._mm is not None:
            self._advise()

    def _advise(self) -> None:
        """Tell the kernel how this process reads the map: ``MADV_SEQUENTIAL`` with
        ``cold_after_read`` (see the class docstring), else ``MADV_NORMAL``. A hint: where
        the platform has no ``madvise``, nothing changes."""
        mm = getattr(self._mm, "_mmap", None)  # numpy.memmap's mmap.mmap
        if mm is None or not hasattr(mm, "madvise"):
            return
        with contextlib.suppress(OSError):
            mm.madvise(mmap.MADV_SEQUENTIAL if self._cold_after_read else mmap.MADV_NORMAL)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mm"], state["_pool"] = None, BufferPool()
        return state

    # --- items ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.starts.size)

    def window_times(self, i: int) -> np.ndarray:
        """Timestamps (datetime64[s]) of item i: the seq_len inputs, then the target."""
        s = int(self.starts[i])
        idx = np.r_[np.arange(s, s + self.seq_len), s + self.seq_len - 1 + self.lead]
        return self.info.times[idx]

    def _load(self, starts: np.ndarray, batched: bool = True):
        """Windows starting at ``starts`` as tensors (x, y[, mask][, times]), batched.

        Reads and prepares a few samples (~2 MiB) at a time, so that the in-place passes
        (offset, NaN fill; the fill with torch, much faster than ``numpy.nan_to_num``) run
        on data still in the CPU cache rather than on the whole batch in memory. The groups
        are shared among ``threads`` threads (default ``torch.get_num_threads()``: 1 in a
        DataLoader worker, where PyTorch sets it so).
        """
        with LOAD_LOCK.get():  # one load at a time per process: the thread setting and the pool
            threads = torch.get_num_threads()
            if threads > 1:  # see _load_groups
                torch.set_num_threads(1)
            try:
                return self._load_groups(starts, batched, self.threads or threads)
            finally:
                if threads > 1:
                    torch.set_num_threads(threads)

    def _load_groups(self, starts: np.ndarray, batched: bool, threads: int):
        """:meth:`_load` with torch on one intra-op thread: the per-group kernels are small,
        and with intra-op threads each waits for its slowest thread, badly so when another
        process is busy on a core. Parallelism comes from whole groups instead
        (:func:`.batching.each_group`)."""
        n = starts.size
        x, y, tx, ty = self._buffers(n, shared=batched)
        mask = np.empty(y.shape, bool) if self.return_mask else None
        groups = list(groups_of(n, x[0].nbytes + y[0].nbytes))
        if self._ch_all:
            work = partial(self._load_samples, starts.tolist(), x, y, tx, ty, mask)
        else:
            work = partial(self._load_subset, starts, x, y, mask)
        each_group(work, groups, threads)
        out = [tx, ty]
        if mask is not None:
            out.append(torch.from_numpy(mask))
        if self.return_time:
            idx = starts[:, None] + np.r_[np.arange(self.seq_len), self.seq_len - 1 + self.lead]
            out.append(torch.from_numpy(self.info.times[idx].astype(np.int64)))
        return tuple(out)

    def _load_samples(self, starts: list[int], x: np.ndarray, y: np.ndarray,
                      tx: torch.Tensor, ty: torch.Tensor, mask: np.ndarray | None,
                      a: int, b: int) -> None:
        """Windows ``a:b`` of ``starts``, all channels: each window's copy out of the map
        multiplies by the scale on the way (one pass over memory, as a plain copy would be)
        and adds the offset while the window (~0.5 MB) is in the CPU cache; then the group's
        NaN fill (channels that hold NaN only) while the group is."""
        d = np.asarray(self.data)  # a plain ndarray: slicing a memmap runs Python code
        span = self.seq_len - 1 + self.lead
        storage, affine = self.info.storage, self._affine
        for i in range(a, b):
            s = starts[i]
            for out, src in ((x[i], d[s:s + self.seq_len]), (y[i], d[s + span])):
                if storage == "float32" and affine is not None:
                    np.multiply(src, affine[0], out=out)
                    np.add(out, affine[1], out=out)
                    continue
                decode_into(out, src, storage)
                if affine is not None:
                    out *= affine[0]
                    out += affine[1]
        if mask is not None:
            np.logical_not(np.isnan(y[a:b]), out=mask[a:b])  # before the fill
        if self._nan_channels.size:
            self._fill_nan(tx[a:b])
            self._fill_nan(ty[a:b])

    def _load_subset(self, starts: np.ndarray, x: np.ndarray, y: np.ndarray,
                     mask: np.ndarray | None, a: int, b: int) -> None:
        """Windows ``a:b`` of ``starts``, a subset of the channels: gathered, then
        normalised and filled while in the CPU cache."""
        self._read(starts[a:b], x[a:b], y[a:b])
        if mask is not None:
            np.logical_not(np.isnan(y[a:b]), out=mask[a:b])  # before the fill
        xt, yt = torch.from_numpy(x[a:b]), torch.from_numpy(y[a:b])
        for t in (xt, yt):
            if self._affine is not None:
                t.mul_(torch.from_numpy(self._affine[0])).add_(torch.from_numpy(self._affine[1]))
            self._fill_nan(t)

    def _fill_nan(self, t: torch.Tensor) -> None:
        """NaN -> ``fill_value`` in place, on the channels (axis -3) that hold NaN."""
        nan = self._nan_channels
        if nan.size == len(self.channels):
            torch.nan_to_num_(t, nan=self.fill_value)
        else:
            for c in nan.tolist():
                torch.nan_to_num_(t[..., c, :, :], nan=self.fill_value)

    def _read(self, starts: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Copy the stored windows at ``starts`` of the selected channels into ``x`` and
        ``y`` as float32: only those channels' bytes are read, one run of consecutive
        channels at a time."""
        d = np.asarray(self.data)
        tidx = starts[:, None] + np.arange(self.seq_len)
        ty = starts + self.seq_len - 1 + self.lead
        for j, c, n in self._runs:
            decode_into(x[:, :, j:j + n], d[tidx, c:c + n], self.info.storage)
            decode_into(y[:, j:j + n], d[ty, c:c + n], self.info.storage)

    def _buffers(self, batch: int, shared: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        """Output arrays for a batch, as numpy arrays and the tensors to return.

        Main process: buffers of the pool (:class:`.batching.BufferPool`), reused once no
        tensor of an earlier batch uses them. DataLoader worker: fresh tensors, for a batch
        (``shared``) in shared memory, so that handing it to the main process does not copy
        it there (single items are stacked by the DataLoader's collate, which does that
        itself).
        """
        shape = (len(self.channels), *self.info.shape[2:])
        shapes = ((batch, self.seq_len, *shape), (batch, *shape))
        if torch.utils.data.get_worker_info() is not None:
            if not shared:
                x, y = (np.empty(sh, np.float32) for sh in shapes)
                return x, y, torch.from_numpy(x), torch.from_numpy(y)
            tx, ty = (shared_empty(sh) for sh in shapes)
            return tx.numpy(), ty.numpy(), tx, ty
        x, y = self._pool.take(*shapes)
        return x, y, torch.from_numpy(x), torch.from_numpy(y)

    def __getitem__(self, i: int):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} windows")
        return tuple(t[0] for t in self._load(self.starts[i : i + 1], batched=False))

    def __getitems__(self, indices) -> Batch:
        return Batch(self._load(self.starts[np.asarray(indices, dtype=np.int64)]))

    @property
    def nan_channels(self) -> np.ndarray:
        """Positions (in ``channels``) of the channels that hold a NaN in this split."""
        return self._nan_channels

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(channel, lat, lon) of one time step of the selected channels."""
        return (len(self.channels), *self.info.shape[2:])

    def read_steps(self, index, normalize: bool | None = None) -> np.ndarray:
        """Time steps ``index`` (an int, a slice or an int array, along the whole cache's time
        axis, ``info.times``) of the selected channels, float32 (steps, channel, lat, lon),
        copied out of the map; normalised as the items are unless ``normalize`` says
        otherwise; NaN kept."""
        if isinstance(index, int | np.integer):
            index = slice(int(index), int(index) + 1)
        d = np.asarray(self.data)
        storage = self.info.storage
        if self._ch_all:
            block = decode(d[index], storage)
        else:
            steps = np.arange(self.info.shape[0])[index].size  # without reading the file
            block = np.empty((steps, *self.frame_shape), np.float32)
            for j, c, n in self._runs:
                decode_into(block[:, j:j + n], d[index, c:c + n], storage)
        affine = self._transform(self.normalize if normalize is None else normalize)
        if affine is not None:
            block *= affine[0]
            block += affine[1]
        return block

    @property
    def step_bytes(self) -> int:
        """Bytes of the file read for one time step of the selected channels."""
        return len(self.channels) * int(np.prod(self.info.shape[2:])) * self.info.dtype.itemsize

    def byte_runs(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """(file offset, length) of the bytes that steps ``lo:hi`` of the selected channels
        occupy in the file, in file order: one run for all channels, one per step and run of
        consecutive channels for a subset."""
        plane = int(np.prod(self.info.shape[2:])) * self.info.dtype.itemsize
        nc, base = self.info.shape[1], self.info.data_offset
        if self._ch_all:
            return [(base + lo * nc * plane, (hi - lo) * nc * plane)]
        runs = sorted((c, n) for _, c, n in self._runs)
        return [(base + (t * nc + c) * plane, n * plane) for t in range(lo, hi)
                for c, n in runs]

    worker_init_fn = staticmethod(freeze_inherited)

    @staticmethod
    def collate(batch):
        """DataLoader ``collate_fn`` that takes a ``__getitems__`` batch without copying."""
        if isinstance(batch, Batch):
            return batch.batched
        return torch.utils.data.default_collate(batch)

    # --- GPU-resident mode ----------------------------------------------------------------
    def to_device(self, device: str | torch.device = "cuda", dtype: torch.dtype = torch.float32,
                  batch_size: int = 64, shuffle: bool = True, drop_last: bool = False,
                  seed: int = 0, rank: int = 0, world_size: int = 1, shard: bool = False,
                  batch_dtype: torch.dtype | None = None):
        """Copy this split (``shard``: only this rank's share of it) once to ``device`` and
        iterate batches built there by index; frames held in ``dtype``, batches cast to
        ``batch_dtype`` (default ``dtype``).

        See :class:`era5cache.serve.resident.ResidentBatches`.
        """
        from .resident import ResidentBatches

        return ResidentBatches(self, device=device, dtype=dtype, batch_size=batch_size,
                               shuffle=shuffle, drop_last=drop_last, seed=seed, rank=rank,
                               world_size=world_size, shard=shard, batch_dtype=batch_dtype)

    def __repr__(self) -> str:
        return (f"CachedERA5Dataset({str(self.root)!r}, split={self.split!r}, "
                f"channels={self.channels}, seq_len={self.seq_len}, lead={self.lead}, "
                f"windows={len(self)})")


def channel_runs(ch: np.ndarray) -> list[tuple[int, int, int]]:
    """(position in the selection, channel in the file, count) of each run of selected
    channels that are consecutive both in the selection and in the file."""
    runs: list[list[int]] = []
    for j, c in enumerate(ch.tolist()):
        if runs and runs[-1][1] + runs[-1][2] == c:
            runs[-1][2] += 1
        else:
            runs.append([j, c, 1])
    return [tuple(r) for r in runs]
