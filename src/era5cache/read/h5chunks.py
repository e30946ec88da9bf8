"""Compressed HDF5 chunks of netCDF-4 variables read as stored and inflated here.

netCDF-C reads a deflated variable through HDF5, which inflates each chunk with zlib: on the
benchmark's CDS-layout file that is 80% of a plain pass over it. A variable whose HDF5
filter pipeline is deflate, optionally after shuffle (what ``zlib=True`` writes, with or
without ``shuffle``: every compressed ERA5 NetCDF we know), is read here instead: each chunk's
stored bytes come from h5py (``read_direct_chunk``) and are inflated by ISA-L (``isal``, 1.7
to 2.6 times zlib's rate on these files; zlib where it is not installed); a read unshuffles
only the rows it takes (:class:`InflatedChunk`). Any other filter (fletcher32, szip, n-bit,
scale-offset, plugins), a contiguous or uncompressed variable, or a file h5py cannot open is
left to netCDF4.

Values are the stored ones, bit for bit what netCDF4 returns with automatic masking off
(native byte order; the HDF5 fill value where a chunk was never written): CF decoding
(``_FillValue``, packing) happens above, in xarray or :mod:`.packed`.

Pure functions (:func:`decode_chunk`, :func:`read_region`) are separate from the xarray
adapter (:class:`H5ChunkArray`, :class:`DirectStore`). With a file cache
(:mod:`.filecache`: each Dask worker's for the job), the h5py file stays open for the job,
and a chunk that a read only partly covers (a mirror's month-deep chunk, read a block of
steps at a time) is kept inflated for the next read, up to the cache's
``chunk_cache_bytes`` per file, so that it is inflated once per worker. Memory: a chunk's stored
and inflated bytes while it inflates (for the 744-step int16 mirror chunk, 1.06 + 1.54 GB),
then the inflated bytes while it is kept.
"""

from __future__ import annotations

import threading
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from .filecache import Files

try:  # ISA-L's inflate: same output as zlib's
    from isal.isal_zlib import decompress as INFLATE
    from isal.isal_zlib import error as InflateError
except ImportError:  # pragma: no cover - machines without isal wheels (pyproject.toml)
    INFLATE, InflateError = zlib.decompress, zlib.error

DEFLATE, SHUFFLE = 1, 2  # HDF5 filter ids (H5Z_FILTER_DEFLATE, H5Z_FILTER_SHUFFLE)
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
DIRECT = "era5cache_h5chunks"  # encoding key of the variables read here


@dataclass(frozen=True)
class ChunkLayout:
    """How one HDF5 dataset is stored: ``shape`` and ``chunks`` (elements), ``dtype`` as
    stored (possibly big-endian), ``filters`` (HDF5 filter ids in pipeline order, as
    written: shuffle before deflate), ``fill`` (the HDF5 fill value, of unwritten chunks)."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    filters: tuple[int, ...]
    fill: object

    @property
    def chunk_bytes(self) -> int:
        return int(np.prod(self.chunks)) * self.dtype.itemsize


def layout_of(dset) -> ChunkLayout | None:
    """The :class:`ChunkLayout` of an h5py dataset that this module reads: chunked, numeric,
    with deflate as its last filter and at most shuffle before it; None for any other."""
    if dset.chunks is None or dset.dtype.kind not in "iuf" or dset.ndim == 0:
        return None
    plist = dset.id.get_create_plist()
    filters = tuple(plist.get_filter(i)[0] for i in range(plist.get_nfilters()))
    if filters not in ((DEFLATE,), (SHUFFLE, DEFLATE)):
        return None
    return ChunkLayout(tuple(dset.shape), tuple(dset.chunks), np.dtype(dset.dtype), filters,
                       dset.fillvalue)


class InflatedChunk:
    """One chunk inflated, its bytes still shuffled where the file shuffles them: a read
    unshuffles only the rows (along the first dimension) it takes, so a chunk read a block
    of steps at a time is never held twice, and its unshuffling is spread over the reads."""

    def __init__(self, data: bytes, layout: ChunkLayout, shuffled: bool):
        if len(data) != layout.chunk_bytes:
            raise ValueError(f"a chunk inflates to {len(data)} bytes, not "
                             f"{layout.chunk_bytes}")
        self.data, self.layout, self.shuffled = data, layout, shuffled

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def values(self, box: tuple[slice, ...]) -> np.ndarray:
        """Values of ``box`` (slices of step 1 within the chunk), native byte order; may
        be a read-only view of the chunk."""
        layout, k = self.layout, self.layout.dtype.itemsize
        inner = int(np.prod(layout.chunks[1:]))
        rows = box[0]
        count = (rows.stop - rows.start) * inner
        if self.shuffled and k > 1:  # byte j of element i is at j * n + i
            planes = np.frombuffer(self.data, np.uint8).reshape(k, -1)
            out = np.empty((count, k), np.uint8)
            for j in range(k):
                out[:, j] = planes[j, rows.start * inner:rows.start * inner + count]
            flat = out.view(layout.dtype).reshape(-1)
        else:
            flat = np.frombuffer(self.data, layout.dtype, count, rows.start * inner * k)
        block = flat.reshape((rows.stop - rows.start,) + layout.chunks[1:])
        block = block[(slice(None),) + tuple(box[1:])]
        return block if layout.dtype.isnative else block.astype(layout.dtype.newbyteorder("="))


def decode_chunk(stored: tuple[int, bytes], layout: ChunkLayout,
                 inflate: Callable[..., bytes] = INFLATE) -> InflatedChunk:
    """One chunk as stored, ``(filter mask, bytes)`` as h5py's ``read_direct_chunk`` gives
    it, inflated by ``inflate`` (ISA-L's, else zlib's: the same bytes); the filter mask
    marks the filters not applied to this chunk (bit i: filter i of ``layout.filters``).
    The stored bytes are let go once inflated (pass the
    tuple itself, not a name bound to its bytes): memory peaks at the stored and the
    inflated bytes together."""
    filter_mask, data = stored
    del stored
    for i, f in enumerate(layout.filters):
        if f == DEFLATE and not filter_mask & (1 << i):
            data = inflate(data, bufsize=layout.chunk_bytes)
    shuffled = any(f == SHUFFLE and not filter_mask & (1 << i)
                   for i, f in enumerate(layout.filters))
    return InflatedChunk(data, layout, shuffled)


def read_region(layout: ChunkLayout, region: tuple[slice, ...],
                chunk: Callable[[tuple[int, ...], bool], InflatedChunk | None]) -> np.ndarray:
    """Values of ``region`` (one slice of step 1 per dimension, within ``layout.shape``),
    native byte order. ``chunk(origin, whole)`` gives the chunk starting at ``origin``
    (element coordinates), or None where it was never written (the fill value then);
    ``whole`` says whether the region covers all of the chunk that lies in the dataset
    (no later read of the same region pattern needs it again)."""
    out = np.empty([s.stop - s.start for s in region], layout.dtype.newbyteorder("="))
    firsts = [range(s.start // c * c, s.stop, c) for s, c in zip(region, layout.chunks,
                                                                 strict=True)]
    for origin in np.ndindex(*[len(r) for r in firsts]):
        start = tuple(r[i] for r, i in zip(firsts, origin, strict=True))
        src, dst, whole = [], [], True
        for s, a, c, n in zip(region, start, layout.chunks, layout.shape, strict=True):
            lo, hi = max(s.start, a), min(s.stop, a + c)
            src.append(slice(lo - a, hi - a))
            dst.append(slice(lo - s.start, hi - s.start))
            whole &= lo == a and hi == min(a + c, n)
        found = chunk(start, whole)
        out[tuple(dst)] = layout.fill if found is None else found.values(tuple(src))
    return out


class OpenH5:
    """An h5py file kept open in a :class:`.filecache.FileCache`, with its partly read
    chunks kept inflated (least recently used dropped first, at most ``budget`` bytes);
    ``counts["inflated"]`` counts the chunks it inflates."""

    def __init__(self, path: str, budget: int, counts: Counter | None = None):
        import h5py

        self.file = h5py.File(path, "r")
        self.budget = budget
        self.counts = Counter() if counts is None else counts
        self.chunks: OrderedDict[tuple, InflatedChunk] = OrderedDict()
        self.lock = threading.Lock()

    def chunk(self, name: str, layout: ChunkLayout, origin: tuple[int, ...],
              whole: bool) -> InflatedChunk | None:
        """The chunk of variable ``name`` at ``origin``, kept inflated unless ``whole`` (the
        read takes all of it) or it alone exceeds the budget."""
        key = (name, origin)
        if key in self.chunks:
            self.chunks.move_to_end(key)
            return self.chunks[key]
        found = read_chunk(self.file[name], layout, origin)
        if found is not None:
            self.counts["inflated"] += 1
        if not whole and found is not None and found.nbytes <= self.budget:
            while self.chunks and sum(c.nbytes for c in self.chunks.values()) \
                    + found.nbytes > self.budget:
                self.chunks.popitem(last=False)
            self.chunks[key] = found
        return found

    def close(self) -> None:
        self.chunks.clear()
        self.file.close()


def read_chunk(dset, layout: ChunkLayout, origin: tuple[int, ...]) -> InflatedChunk | None:
    """The chunk of h5py dataset ``dset`` at ``origin``, inflated; None where never
    written."""
    if dset.id.get_chunk_info_by_coord(origin).byte_offset is None:
        return None
    return decode_chunk(dset.id.read_direct_chunk(origin), layout)


class H5ChunkArray(xr.backends.BackendArray):
    """Lazy array of one variable read through :func:`read_region` (an xarray
    ``BackendArray``: basic indexing). Pickles small (path, name, layout, the file cache's
    name). With a file cache (``files``, :mod:`.filecache`) the file stays open in it and
    chunks partly read stay inflated (:class:`OpenH5`); without, each read opens and closes
    the file."""

    def __init__(self, path: str, name: str, layout: ChunkLayout,
                 files: Files | None = None):
        self.path, self.name, self.layout, self.files = path, name, layout, files
        self.shape = layout.shape
        self.dtype = layout.dtype.newbyteorder("=")

    def __getitem__(self, key):
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape,
                                                  indexing.IndexingSupport.BASIC, self.basic)

    def basic(self, key: tuple) -> np.ndarray:
        """``key``: an int or a slice (any step) per dimension; reads the span it covers."""
        ranges = [range(*k.indices(n)) if isinstance(k, slice) else int(k) % n
                  for k, n in zip(key, self.shape, strict=True)]
        if any(isinstance(r, range) and not r for r in ranges):
            return np.empty([len(r) for r in ranges if isinstance(r, range)], self.dtype)
        spans, picks = [], []
        for r in ranges:
            if isinstance(r, int):
                spans.append(slice(r, r + 1))
                picks.append(0)
                continue
            lo = min(r[0], r[-1])
            last = r[-1] - lo + (1 if r.step > 0 else -1)
            spans.append(slice(lo, max(r[0], r[-1]) + 1))
            picks.append(slice(r[0] - lo, last if last >= 0 else None, r.step))
        return self._read(tuple(spans))[tuple(picks)]

    def _read(self, region: tuple[slice, ...]) -> np.ndarray:
        """:func:`read_region`; a chunk that cannot be read or inflated (a damaged or
        truncated file) is an :class:`InputError` naming the file and the variable."""
        try:
            if self.files is None:
                import h5py

                with h5py.File(self.path, "r") as h5:
                    dset = h5[self.name]
                    return read_region(self.layout, region, lambda origin, whole: read_chunk(
                        dset, self.layout, origin))
            files = self.files
            f = files.get(("h5py", self.path),
                          lambda: OpenH5(self.path, files.chunk_cache_bytes, files.counts))
            with f.lock:
                return read_region(self.layout, region, lambda origin, whole: f.chunk(
                    self.name, self.layout, origin, whole))
        except (OSError, RuntimeError, ValueError, KeyError, InflateError) as exc:
            where = ", ".join(f"{s.start}:{s.stop}" for s in region)
            raise InputError(f"{self.path}: variable {self.name!r} [{where}] cannot be read "
                             f"({exc}); the file is damaged or changed since the job "
                             "opened it: download it again") from exc


def direct_layouts(path: Path, names: list[str]) -> dict[str, ChunkLayout]:
    """The variables among ``names`` of the netCDF-4 file ``path`` that this module reads
    (:func:`layout_of`), with their layouts; none for a file that is not HDF5 or that h5py
    cannot open (netCDF4 reads it, and reports what is wrong)."""
    with open(path, "rb") as f:
        if f.read(8) != HDF5_MAGIC:
            return {}
    import h5py

    try:
        with h5py.File(path, "r") as f:
            out = {}
            for name in names:
                dset = f.get(name)
                layout = layout_of(dset) if isinstance(dset, h5py.Dataset) else None
                if layout is not None:
                    out[name] = layout
            return out
    except (OSError, ValueError, KeyError, RuntimeError):
        return {}


class DirectStore(xr.backends.common.AbstractDataStore):
    """An xarray data store that gives the variables of ``layouts`` as
    :class:`H5ChunkArray` (marked ``encoding[DIRECT]``), everything else (other
    variables, attributes, encodings) as ``store`` (a ``NetCDF4DataStore``) does; closing
    it closes ``store``."""

    def __init__(self, store, path: Path, layouts: dict[str, ChunkLayout],
                 files: Files | None = None):
        self.store, self.path, self.layouts, self.files = store, path, layouts, files

    def load(self):
        from xarray.core import indexing

        variables, attrs = self.store.load()
        variables = dict(variables)
        for name, layout in self.layouts.items():
            v = variables[name]
            if v.shape != layout.shape:  # not the dataset netCDF4 reads (never seen)
                continue
            arr = indexing.LazilyIndexedArray(H5ChunkArray(str(self.path), name, layout,
                                                                  self.files))
            variables[name] = xr.Variable(v.dims, arr, v.attrs, v.encoding | {DIRECT: True})
        return variables, attrs

    def get_encoding(self):
        return self.store.get_encoding()

    def close(self, **kwargs):
        self.store.close(**kwargs)
