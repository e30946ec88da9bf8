"""Time-axis analysis (the step, fixed or calendar-monthly; gaps; irregularities), the
train/val/test periods, and the selection of steps (``--start``/``--end``/``--step``).

Times are numpy ``datetime64[s]`` (UTC). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

MONTHLY = "1M"
SPLITS = ("train", "val", "test")
EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


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


def parse_step(text: str) -> np.timedelta64:
    """'6h' -> timedelta64(6, 'h') in seconds; accepts h, min or m (minutes), d."""
    text = str(text).strip().lower()
    units = {"h": "h", "d": "D", "min": "m", "m": "m"}
    for suffix, unit in units.items():
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return np.timedelta64(int(text[: -len(suffix)]), unit).astype("timedelta64[s]")
    raise ValueError(f"cannot parse time step {text!r}; use e.g. '6h', '1d'")


def parse_time(text: str | None, what: str, last: bool = False) -> np.datetime64 | None:
    """An ISO date or time in seconds; with ``last``, a year, month or day alone is its last
    second (``--end 2020-12-31`` keeps the whole day, as xarray's slices do)."""
    if text is None:
        return None
    try:
        value = np.datetime64(str(text).strip().replace(" ", "T"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO date or time (e.g. 2020-01-01 or "
                         "2020-01-01T06)") from None
    coarse = np.datetime_data(value.dtype)[0] in ("Y", "M", "D")
    if last and coarse:
        return (value + 1).astype("datetime64[s]") - np.timedelta64(1, "s")
    return value.astype("datetime64[s]")


@dataclass(frozen=True)
class TimeSelection:
    """The steps to keep: from ``start`` to ``end`` inclusive (None: unbounded; an end given
    as a date is the whole day), every ``step`` counted from midnight (None: every step of
    the inputs). datetime64[s] and timedelta64[s]."""

    start: np.datetime64 | None = None
    end: np.datetime64 | None = None
    step: np.timedelta64 | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None, step: str | None
              ) -> TimeSelection | None:
        """From ISO strings and a step like '6h' (:func:`parse_step`); None when nothing is
        selected; ValueError for an unreadable value, an end before the start, or a step
        that does not divide a day or is not whole days."""
        sel = cls(parse_time(start, "start"), parse_time(end, "end", last=True),
                  None if step is None else parse_step(step))
        if sel.start is not None and sel.end is not None and sel.end < sel.start:
            raise ValueError(f"end {end} is before start {start}")
        day = np.timedelta64(86400, "s")
        if sel.step is not None and (sel.step <= np.timedelta64(0, "s") or (
                day % sel.step and sel.step % day)):
            raise ValueError(f"step {step} neither divides a day nor is whole days")
        return None if sel == cls() else sel

    def to_json(self) -> dict[str, str | None]:
        return {"start": None if self.start is None else str(self.start),
                "end": None if self.end is None else str(self.end),
                "step": None if self.step is None else f"{int(self.step.astype(int))}s"}

    def indices(self, times: np.ndarray, where: str) -> np.ndarray:
        """Positions in ``times`` (datetime64, ascending) of the selected steps;
        :class:`InputError` naming ``where`` when none is selected or the step is not a
        multiple of the inputs' step."""
        times = times.astype("datetime64[s]")
        keep = np.ones(times.size, dtype=bool)
        if self.start is not None:
            keep &= times >= self.start
        if self.end is not None:
            keep &= times <= self.end
        if self.step is not None:
            native = native_step(times)
            if native is not None and self.step % native:
                raise InputError(f"{where}: step {format_hours(self.step)} is not a multiple "
                                 f"of the inputs' step {format_hours(native)}")
            keep &= (times - EPOCH) % self.step == np.timedelta64(0, "s")
        if not keep.any():
            span = f"{times[0]} .. {times[-1]}" if times.size else "no steps"
            raise InputError(f"{where}: no time step selected by {self.describe()} (the "
                             f"inputs hold {span})")
        return np.flatnonzero(keep)

    def describe(self) -> str:
        parts = [f"start {self.start}" if self.start is not None else "",
                 f"end {self.end}" if self.end is not None else "",
                 f"step {format_hours(self.step)}" if self.step is not None else ""]
        return ", ".join(p for p in parts if p) or "no selection"


def format_hours(step: np.timedelta64) -> str:
    """A step in hours: '6h', '0.5h'."""
    h = step / np.timedelta64(1, "h")
    return f"{h:g}h"


def native_step(times: np.ndarray) -> np.timedelta64 | None:
    """The smallest step between consecutive ``times`` (datetime64[s]); None for one step."""
    if times.size < 2:
        return None
    return np.diff(times.astype("datetime64[s]")).min()
