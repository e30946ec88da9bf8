"""Time-axis analysis (the step, fixed or calendar-monthly; gaps; irregularities) and the
train/val/test periods.

Times are numpy ``datetime64[s]`` (UTC). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MONTHLY = "1M"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Period:
    """Inclusive time range; ``start``/``end`` are ISO strings (UTC)."""

    start: str
    end: str

    @classmethod
    def parse(cls, value) -> Period | None:
        """A period from ``[start, end]`` (a recipe, a manifest) or ``"start/end"`` (an HDF5
        attribute); None for None or ``""``. :class:`ValueError` for a bad date, a value of
        another shape, or an end before the start."""
        if value is None or value == "":
            return None
        if isinstance(value, str):
            value = value.split("/")
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise ValueError(f"a period is [start, end], got {value!r}")
        p = cls(str(value[0]), str(value[1]))
        try:
            lo, hi = p.bounds()
        except ValueError as exc:
            raise ValueError(f"bad date in period {list(value)!r} ({exc})") from None
        if hi < lo:
            raise ValueError(f"period {list(value)!r} ends before it starts")
        return p

    def bounds(self) -> tuple[np.datetime64, np.datetime64]:
        return np.datetime64(self.start, "s"), np.datetime64(self.end, "s")

    def mask(self, times: np.ndarray) -> np.ndarray:
        """Boolean per time: inside the period (both ends included)."""
        lo, hi = self.bounds()
        t = np.asarray(times).astype("datetime64[s]")
        return (t >= lo) & (t <= hi)


@dataclass(frozen=True)
class Periods:
    """Train/val/test periods. ``train=None`` means every step (val/test then empty)."""

    train: Period | None = None
    val: Period | None = None
    test: Period | None = None

    @classmethod
    def from_json(cls, data) -> Periods:
        """From ``{split: [start, end] | None}``; :class:`ValueError` names the split."""
        if isinstance(data, Periods):
            return data
        data = dict(data or {})
        unknown = set(data) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown period(s) {sorted(unknown)}; use {', '.join(SPLITS)}")
        out = {}
        for k in SPLITS:
            try:
                out[k] = Period.parse(data.get(k))
            except ValueError as exc:
                raise ValueError(f"{k}: {exc}") from None
        return cls(**out)

    @classmethod
    def from_attrs(cls, attrs) -> Periods:
        """From the HDF5 cache's ``{split}_period`` attributes (``"start/end"`` or ``""``)."""
        return cls(**{k: Period.parse(str(attrs.get(f"{k}_period", ""))) for k in SPLITS})

    def to_json(self) -> dict:
        return {k: (None if (p := getattr(self, k)) is None else [p.start, p.end])
                for k in SPLITS}

    def to_attrs(self) -> dict[str, str]:
        return {f"{k}_period": "" if (p := getattr(self, k)) is None else f"{p.start}/{p.end}"
                for k in SPLITS}

    def mask(self, split: str, times: np.ndarray) -> np.ndarray:
        """Boolean per time: in ``split``'s period (no train period: every step is train)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        p = getattr(self, split)
        n = np.asarray(times).size
        if p is None:
            return np.full(n, split == "train")
        return p.mask(times)

    def masks(self, times: np.ndarray) -> dict[str, np.ndarray]:
        return {name: self.mask(name, times) for name in SPLITS}


@dataclass(frozen=True)
class Gap:
    """Missing steps strictly between ``after`` and ``before``."""

    after: np.datetime64
    before: np.datetime64
    missing: int

    def to_json(self) -> dict:
        return {"after": str(self.after), "before": str(self.before), "missing": self.missing}


@dataclass(frozen=True)
class TimeAxis:
    """``step`` is seconds as a string like '21600s', ``'1M'`` for calendar months, or None.

    ``irregular`` lists the first few times whose distance to their predecessor is not a
    whole number of steps (empty when regular).
    """

    step: str | None
    gaps: tuple[Gap, ...]
    irregular: tuple[np.datetime64, ...]

    @property
    def step_seconds(self) -> int | None:
        if self.step is None or self.step == MONTHLY:
            return None
        return int(self.step[:-1])

    def consecutive(self, times: np.ndarray) -> np.ndarray:
        """Boolean (n-1,): True where ``times[i+1]`` is exactly one step after ``times[i]``."""
        return steps_between(times, self.step) == 1


def _month_index(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[M]").astype(np.int64)


def steps_between(times: np.ndarray, step: str | None) -> np.ndarray:
    """Number of steps between neighbours (float; non-integers mean irregular)."""
    times = np.asarray(times).astype("datetime64[s]")
    if times.size < 2 or step is None:
        return np.zeros(max(times.size - 1, 0))
    if step == MONTHLY:
        return np.diff(_month_index(times)).astype(np.float64)
    return np.diff(times.astype(np.int64)) / float(int(step[:-1]))


def analyse(times: np.ndarray, step: str | None = None) -> TimeAxis:
    """Infer the step of sorted unique ``times`` (or take ``step``) and list gaps and
    irregular steps."""
    times = np.asarray(times).astype("datetime64[s]")
    if step is not None:
        return _with_step(times, step)
    if times.size < 2:
        return TimeAxis(step=None, gaps=(), irregular=())
    offsets = times - times.astype("datetime64[M]").astype("datetime64[s]")
    months = _month_index(times)
    if np.all(offsets == offsets[0]) and np.all(np.diff(months) >= 1):
        step = MONTHLY  # every step on the same day-of-month and time: calendar months
    else:
        diffs = np.diff(times.astype(np.int64))
        values, counts = np.unique(diffs, return_counts=True)
        step = f"{int(values[np.argmax(counts)])}s"
    return _with_step(times, step)


def _with_step(times: np.ndarray, step: str) -> TimeAxis:
    n = steps_between(times, step)
    whole = np.isclose(n, np.round(n)) & (n >= 1)
    irregular = tuple(times[1:][~whole][:5])
    gaps = tuple(
        Gap(times[i], times[i + 1], int(round(n[i])) - 1)
        for i in np.flatnonzero(whole & (np.round(n) > 1))
    )
    return TimeAxis(step=step, gaps=gaps, irregular=irregular)


def format_step(step: str | None) -> str:
    if step is None:
        return "unknown"
    if step == MONTHLY:
        return "1 month"
    s = int(step[:-1])
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"
