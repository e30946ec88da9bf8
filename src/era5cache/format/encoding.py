"""How ``/data`` of the HDF5 cache holds its values: float32 in physical units (the default,
docs/contracts.md section 6) or 16 bits per value, normalised with the training statistics.

A 16-bit cache (``dtype: float16`` or ``bfloat16`` in the recipe) stores
``z = (x - mean) / std`` per channel, rounded to nearest even: half the bytes of float32, so
the same page cache, RAM or GPU holds twice the steps and a loader that waits on the disk
reads twice the windows per second. NaN stays NaN. The rounding error of a value is at most
half a unit in the last place of ``z``: ``|z| * 2**-11`` for float16 (11 significant bits,
``|z| < 2**-14``: ``2**-25`` absolute), ``|z| * 2**-8`` for bfloat16 (8 bits); in physical
units multiply by the channel's ``std`` (:func:`error_bound`). float16 overflows beyond
``|z| = 65504`` (never for a channel normalised by its own std unless a value lies 65504
standard deviations out: :func:`encode` refuses that); bfloat16 has float32's range.

HDF5 has no bfloat16 type: bfloat16 values are stored as their uint16 bit patterns (the high
half of the float32), marked by the ``/data`` attribute ``encoding``.

Pure array functions; :func:`decode_into` is the readers' fast path (one pass over the
block, through PyTorch's vectorised conversions where PyTorch is installed).
"""

from __future__ import annotations

import warnings

import numpy as np

# decode_into hands PyTorch read-only views of the cache's memory map, which it only reads
warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                        category=UserWarning, module=__name__.replace(".", r"\."))

STORAGE = ("float32", "float16", "bfloat16")
NUMPY_DTYPE = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
               "bfloat16": np.dtype(np.uint16)}
# ulp(z) / 2 relative to |z|: half a unit in the last place of the significand
HALF_ULP = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
_F16_MAX = float(np.finfo(np.float16).max)
_F16_TINY = 2.0**-14  # smallest normal float16; below it the spacing is 2**-24


def is_normalised(storage: str) -> bool:
    """16-bit caches hold normalised values; float32 caches physical ones."""
    return storage != "float32"


def encode(z: np.ndarray, storage: str) -> np.ndarray:
    """Normalised float32/float64 values ``z`` -> the stored array (float16, or uint16 bit
    patterns of bfloat16), rounded to nearest even; NaN kept. ``ValueError`` when a finite
    value overflows float16."""
    if storage == "float16":
        z = np.asarray(z)
        with np.errstate(invalid="ignore"):
            over = np.abs(z) > _F16_MAX  # NaN compares False
        if over.any():
            raise ValueError(f"a normalised value beyond float16's range ({_F16_MAX})")
        return z.astype(np.float16)
    if storage == "bfloat16":
        bits = np.ascontiguousarray(z, dtype=np.float32).view(np.uint32)
        # round to nearest even on the 16 dropped bits; a NaN stays a NaN (quiet bit set)
        rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
        out = rounded.astype(np.uint16)
        nan = np.isnan(np.asarray(z))
        out[nan] = 0x7FC0
        return out
    if storage == "float32":
        return np.asarray(z, dtype=np.float32)
    raise ValueError(f"unknown storage {storage!r}; choose from {', '.join(STORAGE)}")


def decode_into(out: np.ndarray, src: np.ndarray, storage: str) -> None:
    """``out[...] = src`` as float32 (``out`` float32, shaped like ``src``; either may be a
    strided view). 16-bit values are widened by PyTorch's conversion where it is installed:
    one vectorised pass, on one core of the 2-core VM 8x numpy's float16 -> float32
    (13.8 against 1.7 GB/s out) and 1.7x numpy's widen-and-shift for bfloat16."""
    torch = _torch() if storage != "float32" else None
    if torch is not None:
        t = torch.from_numpy(np.asarray(src))
        torch.from_numpy(out).copy_(t.view(torch.bfloat16) if storage == "bfloat16" else t)
    elif storage == "bfloat16":  # the bits are the high half of the float32
        bits = out.view(np.uint32)
        np.copyto(bits, src)  # widen (1.2x faster than a casting left_shift)
        bits <<= 16
    else:
        np.copyto(out, src, casting="same_kind")


def _torch():
    """PyTorch, or None where it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def decode(src: np.ndarray, storage: str) -> np.ndarray:
    """The stored array ``src`` as a new float32 array."""
    out = np.empty(np.shape(src), np.float32)
    decode_into(out, np.asarray(src), storage)
    return out


def error_bound(z: np.ndarray, std: float | np.ndarray, storage: str) -> np.ndarray:
    """Largest rounding error, in physical units, of normalised values ``z`` stored as
    ``storage``: half a unit in the last place of each ``|z|``, times ``std``."""
    a = np.abs(np.asarray(z, dtype=np.float64))
    if storage == "float16":
        a = np.maximum(a, _F16_TINY)  # subnormal range: fixed spacing 2**-24
    return a * HALF_ULP[storage] * np.asarray(std, dtype=np.float64)
