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
from typing import Final

from acd.pickling import pickle_by_fields

# Module constants are Final: the compiled build (setup.py) then reads them directly
# instead of looking each up in the module's namespace on every use. List slots are
# added to as ``x[i] = x[i] + v``, not ``x[i] += v``: compiled, the latter boxes ``v``
# and goes through the generic in-place addition, two float objects instead of one.
BUCKET_S: Final = 15.0
WINDOWS_S: Final = {"15m": 900.0, "1h": 3600.0}
_RING: Final = int(WINDOWS_S["1h"] / BUCKET_S)


class RollingSums:
    """n additive metrics in 15-second buckets; windows, today and total read on demand.

    ``add`` is one list increment (plus a bucket roll every 15 s of event time): the
    simulator calls it millions of times. Reads sum the ring (at most 240 buckets),
    which a metrics scrape every few seconds can afford. A bucket leaving the ring is
    folded into the "total" and "today" accumulators first.
    """

    __slots__ = ("_buckets", "_day_evicted", "_day_start", "_evicted", "_n", "cur", "end", "index")

    def __init__(self, n: int, start: float = 0.0) -> None:
        self._n = n
        self._buckets = [[0.0] * n for _ in range(_RING)]
        self.index = math.floor(start / BUCKET_S)
        self.end = (self.index + 1) * BUCKET_S
        self.cur = self._buckets[self.index % _RING]
        self._evicted = [0.0] * n
        self._day_evicted = [0.0] * n
        self._day_start = self.index

    def roll(self, at: float) -> None:
        """Move the current bucket forward to the one holding ``at``."""
        index = math.floor(at / BUCKET_S)
        if index <= self.index:
            return
        # Each bucket leaving the ring is folded into the accumulators and replaced by a
        # zeroed one; a gap longer than the ring visits every bucket once. (Index loops
        # with a test per value: compiled (setup.py), no float is boxed for a zero.)
        buckets, evicted, day_evicted, n = self._buckets, self._evicted, self._day_evicted, self._n
        for i in range(self.index + 1, min(index, self.index + _RING) + 1):
            old = buckets[i % _RING]
            today = i - _RING >= self._day_start
            used = False
            for m in range(n):
                v = old[m]
                if v != 0.0:
                    used = True
                    evicted[m] = evicted[m] + v
                    if today:
                        day_evicted[m] = day_evicted[m] + v
            if used:
                buckets[i % _RING] = [0.0] * n
        self.index = index
        self.end = (index + 1) * BUCKET_S
        self.cur = self._buckets[index % _RING]

    def add(self, at: float, metric: int, value: float) -> None:
        if at >= self.end:
            self.roll(at)
        self.cur[metric] = self.cur[metric] + value

    def get(self, window: str, now: float) -> list[float]:
        self.roll(now)
        if window == "total":
            first, base = self.index - _RING + 1, self._evicted
        elif window == "today":
            first, base = max(self._day_start, self.index - _RING + 1), self._day_evicted
        elif window in WINDOWS_S:
            first, base = self.index - int(WINDOWS_S[window] / BUCKET_S) + 1, [0.0] * self._n
        else:
            raise ValueError(f"unknown window {window!r} (15m, 1h, today, total)")
        out = list(base)
        for i in range(first, self.index + 1):
            for m, v in enumerate(self._buckets[i % _RING]):
                out[m] = out[m] + v
        return out

    def fold(self, metric: int, value: float) -> None:
        """Count ``value`` today and in total only (time older than every window)."""
        self._evicted[metric] = self._evicted[metric] + value
        self._day_evicted[metric] = self._day_evicted[metric] + value

    def start_new_day(self, at: float) -> None:
        self.roll(at)
        self._day_start = self.index
        self._day_evicted = [0.0] * self._n


# Queue metrics (indexes into RollingSums).
OFFERED: Final = 0
ANSWERED: Final = 1
WITHIN: Final = 2
ABANDONED: Final = 3
SHORT: Final = 4
OVERFLOWED: Final = 5
WAIT_SUM: Final = 6
WAIT_MAX: Final = 7


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
    """A queue's counters. The current bucket's counts build up in plain float
    attributes and go into the ring when the bucket rolls or a window is read: in the
    compiled build (setup.py) that is an addition in place, where a list slot costs
    boxing a new float object for every call."""

    __slots__ = (
        "_abandoned",
        "_answered",
        "_end",
        "_offered",
        "_overflowed",
        "_short",
        "_sums",
        "_wait_max",
        "_wait_sum",
        "_within",
        "day_max",
        "service_target_s",
        "short_abandon_s",
        "total_max",
    )

    def __init__(self, service_target_s: float, short_abandon_s: float, start: float) -> None:
        self.service_target_s = service_target_s
        self.short_abandon_s = short_abandon_s
        self._sums = RollingSums(8, start)
        self._end = self._sums.end
        self.day_max = 0.0
        self.total_max = 0.0
        self._clear()

    def _clear(self) -> None:
        self._offered = 0.0
        self._answered = 0.0
        self._within = 0.0
        self._abandoned = 0.0
        self._short = 0.0
        self._overflowed = 0.0
        self._wait_sum = 0.0
        self._wait_max = 0.0

    def _commit(self) -> None:
        """Move the pending counts into the current bucket: before every roll and read."""
        cur = self._sums.cur
        cur[OFFERED] = cur[OFFERED] + self._offered
        cur[ANSWERED] = cur[ANSWERED] + self._answered
        cur[WITHIN] = cur[WITHIN] + self._within
        cur[ABANDONED] = cur[ABANDONED] + self._abandoned
        cur[SHORT] = cur[SHORT] + self._short
        cur[OVERFLOWED] = cur[OVERFLOWED] + self._overflowed
        cur[WAIT_SUM] = cur[WAIT_SUM] + self._wait_sum
        if self._wait_max > cur[WAIT_MAX]:
            cur[WAIT_MAX] = self._wait_max
        self._clear()

    def _roll(self, at: float) -> None:
        self._commit()
        self._sums.roll(at)
        self._end = self._sums.end

    def offered(self, at: float) -> None:
        if at >= self._end:
            self._roll(at)
        self._offered += 1.0

    def answered(self, at: float, wait_s: float) -> None:
        if at >= self._end:
            self._roll(at)
        self._answered += 1.0
        self._wait_sum += wait_s
        if wait_s <= self.service_target_s:
            self._within += 1.0
        self._note_wait(wait_s)

    def abandoned(self, at: float, wait_s: float) -> None:
        if at >= self._end:
            self._roll(at)
        self._abandoned += 1.0
        if wait_s < self.short_abandon_s:
            self._short += 1.0
        self._note_wait(wait_s)

    def overflowed(self, at: float, wait_s: float) -> None:
        if at >= self._end:
            self._roll(at)
        self._overflowed += 1.0
        self._note_wait(wait_s)

    def _note_wait(self, wait_s: float) -> None:
        # Longest wait is a max, not a sum: kept per bucket (a slot of the bucket that
        # window reads skip) and as running maxima for today and the total.
        if wait_s > self._wait_max:
            self._wait_max = wait_s
        if wait_s > self.day_max:
            self.day_max = wait_s
        if wait_s > self.total_max:
            self.total_max = wait_s

    def window(self, name: str, now: float) -> QueueWindow:
        s = self._sums
        self._commit()
        v = s.get(name, now)
        self._end = s.end
        offered, answered, within, abandoned, short, overflowed, wait_sum = (v[i] for i in range(7))
        left = answered + abandoned + overflowed
        if name in WINDOWS_S:
            first = s.index - int(WINDOWS_S[name] / BUCKET_S) + 1
            longest = max(s._buckets[i % _RING][WAIT_MAX] for i in range(first, s.index + 1))
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

    def start_new_day(self, at: float) -> None:
        self._commit()
        self._sums.start_new_day(at)
        self._end = self._sums.end
        self.day_max = 0.0


# Agent-group metrics: seconds available (ready or busy), busy, talking; calls.
AVAILABLE_S: Final = 0
BUSY_S: Final = 1
TALK_S: Final = 2
CALLS: Final = 3


@dataclass(frozen=True, slots=True)
class GroupWindow:
    available_s: float
    busy_s: float
    talk_s: float
    calls: int
    occupancy: float


class GroupStats:
    """Integrates how many of a group's agents are available and busy over time.

    As in QueueStats, the current bucket's sums build up in float attributes and go
    into the ring before any roll or read.
    """

    __slots__ = (
        "_available_s",
        "_busy_s",
        "_calls",
        "_sums",
        "_talk_s",
        "available",
        "busy",
        "last",
        "talking",
    )

    def __init__(self, start: float) -> None:
        self._sums = RollingSums(4, start)
        self.last = start
        self.available = 0
        self.busy = 0
        self.talking = 0
        self._clear()

    def _clear(self) -> None:
        self._available_s = 0.0
        self._busy_s = 0.0
        self._talk_s = 0.0
        self._calls = 0.0

    def _commit(self) -> None:
        cur = self._sums.cur
        cur[AVAILABLE_S] = cur[AVAILABLE_S] + self._available_s
        cur[BUSY_S] = cur[BUSY_S] + self._busy_s
        cur[TALK_S] = cur[TALK_S] + self._talk_s
        cur[CALLS] = cur[CALLS] + self._calls
        self._clear()

    def flush(self, at: float) -> None:
        """Credit the time since the last change, split exactly at bucket edges."""
        t = self.last
        if at <= t:
            return
        self.last = at
        if not self.available:
            return
        s = self._sums
        if at <= s.end and t >= s.end - BUCKET_S:  # the common case: one bucket
            dt = at - t
            self._available_s += self.available * dt
            self._busy_s += self.busy * dt
            self._talk_s += self.talking * dt
            return
        self._commit()  # the rolls below move the current bucket
        end = s.end
        if t >= end - BUCKET_S and at < end + BUCKET_S:
            # Into the next bucket: once per 15 s per group, so spelt out (the general
            # loop below costs ten times as much compiled). The same additions in the
            # same order as the loop's.
            self._credit(s.cur, end - t)
            s.roll(end)
            self._credit(s.cur, at - end)
            return
        counts = ((AVAILABLE_S, self.available), (BUSY_S, self.busy), (TALK_S, self.talking))
        # Time older than the ring only counts today and in total: fold it in directly.
        horizon = at - _RING * BUCKET_S
        if t < horizon:
            s.roll(horizon)
            for metric, count in counts:
                s.fold(metric, count * (horizon - t))
            t = horizon
        while t < at:
            edge = min(at, (math.floor(t / BUCKET_S) + 1) * BUCKET_S)
            for metric, count in counts:
                if count:
                    s.add(t, metric, count * (edge - t))
            t = edge

    def _credit(self, bucket: list[float], dt: float) -> None:
        """Add ``dt`` seconds at the present counts straight into a bucket."""
        if self.available:
            bucket[AVAILABLE_S] = bucket[AVAILABLE_S] + self.available * dt
        if self.busy:
            bucket[BUSY_S] = bucket[BUSY_S] + self.busy * dt
        if self.talking:
            bucket[TALK_S] = bucket[TALK_S] + self.talking * dt

    def call_taken(self, at: float) -> None:
        s = self._sums
        if at >= s.end:
            self._commit()
            s.roll(at)
        self._calls += 1.0

    def window(self, name: str, now: float) -> GroupWindow:
        self.flush(now)
        self._commit()
        v = self._sums.get(name, now)
        return GroupWindow(
            available_s=v[AVAILABLE_S],
            busy_s=v[BUSY_S],
            talk_s=v[TALK_S],
            calls=round(v[CALLS]),
            occupancy=v[BUSY_S] / v[AVAILABLE_S] if v[AVAILABLE_S] > 0 else 0.0,
        )

    def start_new_day(self, at: float) -> None:
        self.flush(at)
        self._commit()
        self._sums.start_new_day(at)


# Sent to and from worker processes (ccd simulate --jobs); see acd.pickling.
pickle_by_fields(QueueWindow, GroupWindow)
