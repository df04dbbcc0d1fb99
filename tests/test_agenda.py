"""sim.agenda: events come out by due time, and in push order among equal times.

The engine's determinism rests on this order (a run must not depend on how a heap
breaks ties), so the agenda is checked against a stable sort of everything pushed,
under random interleavings of pushes and pops with many equal times. The same file
runs against the compiled agenda in tests/test_compiled.py.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.agenda import Agenda

# Few distinct times, so that ties are common; None means "pop one".
ops = st.lists(st.one_of(st.none(), st.integers(0, 6).map(float), st.floats(0.0, 10.0)), max_size=300)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_pops_come_in_time_then_push_order(steps: list[float | None]) -> None:
    agenda = Agenda()
    pending: list[tuple[float, int]] = []  # (time, push number), the reference
    pushed = 0
    for step in steps:
        if step is None:
            if not pending:
                assert not agenda and len(agenda) == 0 and agenda.top() == math.inf
                continue
            expected = min(pending)  # earliest time, then the first pushed
            pending.remove(expected)
            assert agenda.top() == expected[0]
            got = agenda.pop()
            assert (got.t, got.a) == expected
            assert got.kind == 7 and got.b == "payload"
        else:
            agenda.push(step, 7, pushed, "payload")
            pending.append((step, pushed))
            pushed += 1
        assert len(agenda) == len(pending) and bool(agenda) == bool(pending)
    drained: list[tuple[float, int]] = []
    while agenda:
        entry = agenda.pop()
        drained.append((entry.t, entry.a))
    assert drained == sorted(pending)


def test_equal_times_keep_push_order_across_a_large_heap() -> None:
    agenda = Agenda()
    for k in range(1000):
        agenda.push(float(k % 3), 0, k)
    out = [agenda.pop() for _ in range(1000)]
    assert [(e.t, e.a) for e in out] == sorted((float(k % 3), k) for k in range(1000))


def test_pop_from_an_empty_agenda_is_an_error() -> None:
    with pytest.raises(IndexError):
        Agenda().pop()
