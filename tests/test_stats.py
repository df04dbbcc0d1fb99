"""acd.stats against a brute-force reference, under random event sequences.

QueueStats and GroupStats keep the current 15-second bucket's counts in attributes and
move them into the ring before every roll and read (see acd/stats.py). These
properties replay random streams of updates, reading windows at random moments in
between (a read moves the pending counts too), and compare every figure with one
recomputed from the whole event log: nothing may be lost, counted twice or credited
to the wrong bucket.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.stats import BUCKET_S, GroupStats, QueueStats

WINDOW_BUCKETS = {"15m": 60, "1h": 240}
TARGET_S, SHORT_S = 20.0, 5.0

# (time step, kind, wait, read a window after it?)
queue_ops = st.lists(
    st.tuples(
        st.floats(0.0, 400.0),
        st.sampled_from(["offered", "answered", "abandoned", "overflowed", "new_day"]),
        st.floats(0.0, 300.0),
        st.booleans(),
    ),
    max_size=60,
)


def first_bucket(window: str, now: float, day_start: float = 0.0) -> int:
    """The oldest bucket index a window covers: "total" all, "today" from the bucket
    holding the day's start (the bucket is the unit of every window)."""
    if window == "total":
        return -(10**9)
    if window == "today":
        return math.floor(day_start / BUCKET_S)
    return math.floor(now / BUCKET_S) - WINDOW_BUCKETS[window] + 1


@settings(max_examples=300, deadline=None)
@given(queue_ops, st.sampled_from(["15m", "1h", "today", "total"]))
def test_queue_windows_match_the_event_log(ops: list[tuple[float, str, float, bool]], window: str) -> None:
    stats = QueueStats(TARGET_S, SHORT_S, 0.0)
    log: list[tuple[float, str, float]] = []
    now = day_start = 0.0
    day_first = 0  # log index of the day's first event: the day's longest wait starts there
    for step, kind, wait, read in ops:
        now += step
        if kind == "new_day":
            stats.start_new_day(now)
            day_start, day_first = now, len(log)
            continue
        if kind == "offered":
            stats.offered(now)
        else:
            getattr(stats, kind)(now, wait)
        log.append((now, kind, wait))
        if read:
            stats.window(window, now)
    w = stats.window(window, now)
    first = first_bucket(window, now, day_start)
    seen = [(kind, wait) for at, kind, wait in log if math.floor(at / BUCKET_S) >= first]
    answered = [wait for kind, wait in seen if kind == "answered"]
    abandoned = [wait for kind, wait in seen if kind == "abandoned"]
    assert w.offered == sum(kind == "offered" for kind, _ in seen)
    assert w.answered == len(answered)
    assert w.answered_within_target == sum(x <= TARGET_S for x in answered)
    assert w.abandoned == len(abandoned)
    assert w.short_abandoned == sum(x < SHORT_S for x in abandoned)
    assert w.overflowed == sum(kind == "overflowed" for kind, _ in seen)
    assert w.asa_s == pytest.approx(sum(answered) / len(answered) if answered else 0.0)
    if window == "today":  # a running maximum since the day's start, not per bucket
        seen = [(kind, wait) for _, kind, wait in log[day_first:]]
    waits = [wait for kind, wait in seen if kind != "offered"]
    assert w.longest_wait_s == (max(waits) if waits else 0.0)


# (time step, agents available, busy of them, talking of those, a call taken?, read?)
group_ops = st.lists(
    st.tuples(
        st.floats(0.0, 900.0),
        st.integers(0, 5),
        st.integers(0, 5),
        st.integers(0, 5),
        st.booleans(),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(group_ops, st.sampled_from(["15m", "1h", "total"]), st.floats(0.0, 5000.0))
def test_group_time_matches_the_integral(
    ops: list[tuple[float, int, int, int, bool, bool]], window: str, tail: float
) -> None:
    g = GroupStats(0.0)
    # Piecewise-constant (start, available, busy, talking) and the calls taken.
    pieces: list[tuple[float, int, int, int]] = [(0.0, 0, 0, 0)]
    calls: list[float] = []

    def check(now: float) -> None:
        """The window read at ``now`` against the integral over its buckets."""
        w = g.window(window, now)
        start = 0.0 if window == "total" else max(0.0, first_bucket(window, now) * BUCKET_S)
        expected = [0.0, 0.0, 0.0]
        for k, (t0, *counts) in enumerate(pieces):
            t1 = pieces[k + 1][0] if k + 1 < len(pieces) else now
            overlap = max(0.0, min(t1, now) - max(t0, start))
            for m in range(3):
                expected[m] += counts[m] * overlap
        assert w.available_s == pytest.approx(expected[0], rel=1e-9, abs=1e-6)
        assert w.busy_s == pytest.approx(expected[1], rel=1e-9, abs=1e-6)
        assert w.talk_s == pytest.approx(expected[2], rel=1e-9, abs=1e-6)
        first = first_bucket(window, now)
        assert w.calls == sum(math.floor(at / BUCKET_S) >= first for at in calls)

    now = 0.0
    for step, avail, busy_drawn, talk_drawn, call, read in ops:
        now += step
        busy = min(busy_drawn, avail)
        talk = min(talk_drawn, busy)
        g.flush(now)  # as the router does before changing the counts
        g.available, g.busy, g.talking = avail, busy, talk
        pieces.append((now, avail, busy, talk))
        if call:
            g.call_taken(now)
            calls.append(now)
        if read:
            check(now)
    check(now + tail)


def test_time_across_a_bucket_edge_is_split_at_the_edge() -> None:
    """The usual flush, into the next bucket, credits each side to its own bucket: a
    window that starts at the edge counts only the time after it."""
    g = GroupStats(0.0)
    g.flush(0.0)
    g.available = g.busy = 1
    g.flush(10.0)
    g.flush(20.0)  # 10 s to 20 s: 5 s in the first bucket, 5 s in the second
    w = g.window("15m", 905.0)  # the 60 buckets from 15 s
    assert (w.available_s, w.busy_s) == (890.0, 890.0)
    assert g.window("total", 905.0).available_s == 905.0


def test_a_new_day_keeps_pending_counts_in_the_total() -> None:
    """Counts still pending at a day's start belong to the old day ("today" starts at
    the bucket holding the new day's first moment)."""
    stats = QueueStats(TARGET_S, SHORT_S, 0.0)
    stats.offered(1.0)
    stats.answered(2.0, 3.0)
    stats.start_new_day(BUCKET_S + 1.0)
    stats.offered(BUCKET_S + 2.0)
    today, total = stats.window("today", BUCKET_S + 3.0), stats.window("total", BUCKET_S + 3.0)
    assert (today.offered, today.answered, today.longest_wait_s) == (1, 0, 0.0)
    assert (total.offered, total.answered, total.longest_wait_s) == (2, 1, 3.0)


def test_calls_before_the_day_stay_out_of_today_when_they_leave_the_ring() -> None:
    stats = QueueStats(TARGET_S, SHORT_S, 0.0)
    stats.offered(10.0)
    stats.start_new_day(100.0)
    stats.offered(200.0)
    later = 100.0 + 2 * 3600.0  # both buckets have left the hour-long ring
    assert stats.window("today", later).offered == 1
    assert stats.window("total", later).offered == 2
    assert stats.window("1h", later).offered == 0
