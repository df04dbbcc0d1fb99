"""Forecast files: calls and handle time per interval, the planner's input.

Format (CSV with a header): ``interval_start,calls,aht_s`` and optionally
``patience_s``. ``interval_start`` is an ISO date-time (``2026-11-25T08:00``) or a
clock time (``08:00``); intervals are consecutive and of equal length, inferred from
the first two rows unless given. The same file drives ``ccd staff --forecast`` and the
simulator's time-varying arrivals, so it is parsed here, in the core, from text lines
(opening the file is the caller's job).

Unknown columns are errors, not ignored: a misspelt ``patience`` would otherwise
silently turn an Erlang A plan into an Erlang C one.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
from numpy.typing import NDArray

from acd.errors import InputError

REQUIRED_COLUMNS = ("interval_start", "calls", "aht_s")
OPTIONAL_COLUMNS = ("patience_s",)


@dataclass(frozen=True, slots=True)
class Forecast:
    """Per-interval arrays, in file order; ``patience_s`` is None when the file has none."""

    starts: tuple[str, ...]
    offsets_s: NDArray[np.float64]
    interval_s: float
    calls: NDArray[np.float64]
    aht_s: NDArray[np.float64]
    patience_s: NDArray[np.float64] | None

    @property
    def load_erlangs(self) -> NDArray[np.float64]:
        """Offered load per interval: arrival rate times handle time."""
        return self.calls / self.interval_s * self.aht_s

    def __len__(self) -> int:
        return len(self.starts)


def _parse_start(text: str, where: str) -> datetime:
    value = text.strip()
    try:
        if "-" not in value and "T" not in value:  # a clock time, H:MM or HH:MM[:SS]
            padded = "0" + value if value.index(":") == 1 else value
            return datetime.combine(date(2000, 1, 1), time.fromisoformat(padded))
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(where, f"{text!r} is not a time (use 08:00 or 2026-11-25T08:00)") from None


def _number(text: str, where: str, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(where, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(where, f"{text!r} is not a finite number")
    if positive and value <= 0:
        raise InputError(where, f"{text!r} must be above 0")
    if value < 0:
        raise InputError(where, f"{text!r} must not be negative")
    return value


def parse_forecast(lines: Iterable[str], *, source: str, interval_s: float | None = None) -> Forecast:
    """Parse a forecast; every error names ``source:line`` and the column."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(source, "is empty (expected a header interval_start,calls,aht_s)") from None
    except csv.Error as exc:
        raise InputError(f"{source}:1", f"not CSV: {exc}") from None
    columns = [h.strip() for h in header]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise InputError(
            f"{source}:1",
            f"unknown column {unknown[0]!r} (expected {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})",
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"{source}:1", f"missing column {missing[0]!r}")
    if len(set(columns)) != len(columns):
        raise InputError(f"{source}:1", "a column is named twice")
    pos = {name: columns.index(name) for name in columns}
    has_patience = "patience_s" in pos
    starts: list[str] = []
    times: list[datetime] = []
    calls: list[float] = []
    aht: list[float] = []
    patience: list[float] = []
    line_numbers: list[int] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise InputError(f"{source}:{line}", f"has {len(row)} fields, the header has {len(columns)}")

            def cell(name: str, row: list[str] = row, line: int = line) -> tuple[str, str]:
                return row[pos[name]].strip(), f"{source}:{line}: {name}"

            text, where = cell("interval_start")
            times.append(_parse_start(text, where))
            starts.append(text)
            text, where = cell("calls")
            calls.append(_number(text, where, positive=False))
            text, where = cell("aht_s")
            aht.append(_number(text, where, positive=True))
            if has_patience:
                text, where = cell("patience_s")
                patience.append(_number(text, where, positive=True))
            line_numbers.append(line)
    except csv.Error as exc:
        raise InputError(f"{source}:{reader.line_num}", f"not CSV: {exc}") from None
    if not starts:
        raise InputError(source, "has a header but no intervals")
    offsets = _offsets(times, line_numbers, source=source, interval_s=interval_s)
    step = interval_s if interval_s is not None else _step(times, line_numbers, source)
    return Forecast(
        starts=tuple(starts),
        offsets_s=offsets,
        interval_s=step,
        calls=np.array(calls),
        aht_s=np.array(aht),
        patience_s=np.array(patience) if has_patience else None,
    )


def _step(times: list[datetime], lines: list[int], source: str) -> float:
    if len(times) < 2:
        raise InputError(source, "has one interval: give its length (--period)")
    return _delta(times[0], times[1], lines[1], source)


def _delta(a: datetime, b: datetime, line: int, source: str) -> float:
    try:
        delta = b - a
    except TypeError:
        raise InputError(
            f"{source}:{line}: interval_start", "mixes times with and without a UTC offset"
        ) from None
    if a.year == 2000 and b.year == 2000 and delta < timedelta(0):
        delta += timedelta(days=1)  # clock times past midnight
    seconds = delta.total_seconds()
    if seconds <= 0:
        raise InputError(f"{source}:{line}: interval_start", "is not after the previous interval")
    return seconds


def _offsets(
    times: list[datetime], lines: list[int], *, source: str, interval_s: float | None
) -> NDArray[np.float64]:
    step = interval_s if interval_s is not None else (_step(times, lines, source) if len(times) > 1 else None)
    if step is None:
        raise InputError(source, "has one interval: give its length (--period)")
    offsets = [0.0]
    for i in range(1, len(times)):
        delta = _delta(times[i - 1], times[i], lines[i], source)
        if abs(delta - step) > 1e-6:
            raise InputError(
                f"{source}:{lines[i]}: interval_start",
                f"{delta / 60:g} min after the previous interval; intervals here are {step / 60:g} min",
            )
        offsets.append(offsets[-1] + step)
    return np.array(offsets)
