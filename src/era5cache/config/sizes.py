"""Memory sizes as the recipe and Dask write them, read without pydantic or Dask (the
command starts the workers' fork server before it validates the recipe)."""

from __future__ import annotations

DEFAULT_MEMORY_LIMIT = "2GiB"  # per local worker
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}


def memory_bytes(limit: str | int | float) -> int:
    """Bytes of a memory size such as ``"2GiB"``, ``"600 MB"``, ``"4g"`` or ``2147483648``,
    read as Dask's ``parse_bytes`` reads it; :class:`ValueError` for anything else."""
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        return int(limit)
    text = str(limit).strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):]
    if unit not in _UNITS:
        raise ValueError(f"not a memory size: {limit!r}")
    return int(float(number or 1) * _UNITS[unit])


def checked_size(value: str | int, example: str) -> str | int:
    """``value`` when it is a positive size; a :class:`ValueError` saying what is wrong
    (with ``example``, e.g. ``"2GiB"``, as a size to write) otherwise. For validators."""
    try:
        n = memory_bytes(value)
    except (ValueError, TypeError):
        raise ValueError(f"not a size: {value!r} (use e.g. {example})") from None
    if n <= 0:
        raise ValueError(f"must be a positive size, not {value!r}")
    return value
