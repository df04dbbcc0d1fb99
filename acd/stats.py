"""Queue and agent-group statistics over rolling windows, cheap to update and to read.

Counters live in 15-second buckets on a ring an hour long; each window (15 min, 1 h)
keeps a running sum, updated as buckets enter and leave it, so reading a window is
O(1) and an event costs a few additions. "today" runs from the last
:meth:`Statistics.start_new_day` (the driver knows the calendar, the core does not)
and "total" from the start. Times in agent states are integrated exactly across
bucket edges, so occupancy over a window is exact, not sampled.

Definitions (the industry uses several; each is named apart):

* ``offered``: calls that arrived in the queue (incl. overflow and transfers in);
* ``service_level``: answered within the service target ÷ calls that *left* the queue
  (answered + abandoned + overflowed) in the window: abandons count against it;
* ``service_level_of_answered``: answered within target ÷ answered;
* ``service_level_excl_short``: answered within target ÷ (left − short abandons), the
  variant that forgives callers who hung up within ``short_abandon_s``;
* ``asa_s``: mean wait of answered calls; ``abandon_rate``: abandoned ÷ left;
* ``occupancy``: time busy (ringing, talking, wrap-up) ÷ time available (busy + ready).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BUCKET_S = 15.0
WINDOWS_S = {"15m": 900.0, "1h": 3600.0}
_RING = int(WINDOWS_S["1h"] / BUCKET_S)


class RollingSums:
    """n additive metrics summed over rolling windows, today and in total."""

    __slots__ = ("_buckets", "_current", "_n", "day", "spans", "total", "window")

    def __init__(self, n: int, start: float = 0.0) -> None:
        self._n = n
        self._buckets = [[0.0] * n for _ in range(_RING)]
        self._current = math.floor(start / BUCKET_S)
        self.spans = {name: int(span / BUCKET_S) for name, span in WINDOWS_S.items()}
        self.window = {name: [0.0] * n for name in WINDOWS_S}
        self.day = [0.0] * n
        self.total = [0.0] * n

    def advance(self, at: float) -> None:
        index = math.floor(at / BUCKET_S)
        if index <= self._current:
            return
        steps = index - self._current
        if steps >= _RING:
            for b in self._buckets:
                b[:] = [0.0] * self._n
            for sums in self.window.values():
                sums[:] = [0.0] * self._n
            self._current = index
            return
        for _ in range(steps):
            self._current += 1
            for name, span in self.spans.items():
                leaving = self._buckets[(self._current - span) % _RING]
                sums = self.window[name]
                for i, v in enumerate(leaving):
                    if v:
                        sums[i] -= v
            self._buckets[self._current % _RING][:] = [0.0] * self._n

    def add(self, at: float, metric: int, value: float) -> None:
        self.advance(at)
        self._buckets[self._current % _RING][metric] += value
        for sums in self.window.values():
            sums[metric] += value
        self.day[metric] += value
        self.total[metric] += value

    def get(self, window: str) -> list[float]:
        if window == "today":
            return self.day
        if window == "total":
            return self.total
        try:
            return self.window[window]
        except KeyError:
            raise ValueError(f"unknown window {window!r} (15m, 1h, today, total)") from None

    def start_new_day(self) -> None:
        self.day = [0.0] * self._n


# Queue metrics (indexes into RollingSums).
OFFERED, ANSWERED, WITHIN, ABANDONED, SHORT, OVERFLOWED, WAIT_SUM, WAIT_MAX = range(8)


@dataclass(frozen=True, slots=True)
class QueueWindow:
    """One queue's figures over one window (see the module docstring for definitions)."""

    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    short_abandoned: int
    overflowed: int
    service_level: float
    service_level_of_answered: float
    service_level_excl_short: float
    asa_s: float
    abandon_rate: float
    longest_wait_s: float


class QueueStats:
    __slots__ = ("_max_buckets", "_sums", "day_max", "service_target_s", "short_abandon_s", "total_max")

    def __init__(self, service_target_s: float, short_abandon_s: float, start: float) -> None:
        self.service_target_s = service_target_s
        self.short_abandon_s = short_abandon_s
        self._sums = RollingSums(7, start)
        # Longest wait is a max, not a sum: kept per bucket, scanned on read.
        self._max_buckets: dict[int, float] = {}
        self.day_max = 0.0
        self.total_max = 0.0

    def offered(self, at: float) -> None:
        self._sums.add(at, OFFERED, 1.0)

    def answered(self, at: float, wait_s: float) -> None:
        s = self._sums
        s.add(at, ANSWERED, 1.0)
        s.add(at, WAIT_SUM, wait_s)
        if wait_s <= self.service_target_s:
            s.add(at, WITHIN, 1.0)
        self._note_wait(at, wait_s)

    def abandoned(self, at: float, wait_s: float) -> None:
        self._sums.add(at, ABANDONED, 1.0)
        if wait_s < self.short_abandon_s:
            self._sums.add(at, SHORT, 1.0)
        self._note_wait(at, wait_s)

    def overflowed(self, at: float, wait_s: float) -> None:
        self._sums.add(at, OVERFLOWED, 1.0)
        self._note_wait(at, wait_s)

    def _note_wait(self, at: float, wait_s: float) -> None:
        index = math.floor(at / BUCKET_S)
        if wait_s > self._max_buckets.get(index, -1.0):
            self._max_buckets[index] = wait_s
        if len(self._max_buckets) > 2 * _RING:
            cutoff = index - _RING
            self._max_buckets = {k: v for k, v in self._max_buckets.items() if k > cutoff}
        self.day_max = max(self.day_max, wait_s)
        self.total_max = max(self.total_max, wait_s)

    def window(self, name: str, now: float) -> QueueWindow:
        self._sums.advance(now)
        v = self._sums.get(name)
        offered, answered, within, abandoned, short, overflowed, wait_sum = (v[i] for i in range(7))
        left = answered + abandoned + overflowed
        if name in WINDOWS_S:
            first = math.floor(now / BUCKET_S) - self._sums.spans[name]
            longest = max((w for k, w in self._max_buckets.items() if k > first), default=0.0)
        else:
            longest = self.total_max if name == "total" else self.day_max
        return QueueWindow(
            offered=round(offered),
            answered=round(answered),
            answered_within_target=round(within),
            abandoned=round(abandoned),
            short_abandoned=round(short),
            overflowed=round(overflowed),
            service_level=within / left if left else 1.0,
            service_level_of_answered=within / answered if answered else 1.0,
            service_level_excl_short=within / (left - short) if left > short else 1.0,
            asa_s=wait_sum / answered if answered else 0.0,
            abandon_rate=abandoned / left if left else 0.0,
            longest_wait_s=longest,
        )

    def start_new_day(self) -> None:
        self._sums.start_new_day()
        self.day_max = 0.0


# Agent-group metrics: seconds available (ready or busy), busy, talking; calls.
AVAILABLE_S, BUSY_S, TALK_S, CALLS = range(4)


@dataclass(frozen=True, slots=True)
class GroupWindow:
    available_s: float
    busy_s: float
    talk_s: float
    calls: int
    occupancy: float


class GroupStats:
    """Integrates how many of a group's agents are available and busy over time."""

    __slots__ = ("_last", "_sums", "available", "busy", "talking")

    def __init__(self, start: float) -> None:
        self._sums = RollingSums(4, start)
        self._last = start
        self.available = 0
        self.busy = 0
        self.talking = 0

    def flush(self, at: float) -> None:
        """Credit the time since the last change, split exactly at bucket edges."""
        t = self._last
        if at <= t:
            return
        self._last = at
        counts = ((AVAILABLE_S, self.available), (BUSY_S, self.busy), (TALK_S, self.talking))
        if not self.available:
            return
        # Time older than the longest window only counts today and in total.
        horizon = at - WINDOWS_S["1h"] - BUCKET_S
        if t < horizon:
            for metric, count in counts:
                self._sums.day[metric] += count * (horizon - t)
                self._sums.total[metric] += count * (horizon - t)
            t = horizon
        while t < at:
            edge = min(at, (math.floor(t / BUCKET_S) + 1) * BUCKET_S)
            for metric, count in counts:
                if count:
                    self._sums.add(t, metric, count * (edge - t))
            t = edge

    def call_taken(self, at: float) -> None:
        self._sums.add(at, CALLS, 1.0)

    def window(self, name: str, now: float) -> GroupWindow:
        self.flush(now)
        self._sums.advance(now)
        v = self._sums.get(name)
        return GroupWindow(
            available_s=v[AVAILABLE_S],
            busy_s=v[BUSY_S],
            talk_s=v[TALK_S],
            calls=round(v[CALLS]),
            occupancy=v[BUSY_S] / v[AVAILABLE_S] if v[AVAILABLE_S] > 0 else 0.0,
        )

    def start_new_day(self) -> None:
        self._sums.start_new_day()
