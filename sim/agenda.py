"""The simulator's agenda: pending events by due time, first scheduled first among equals.

Every simulated call passes through here once or twice (its conversation's end, a
caller's patience), so this is one of the hottest structures in a run. It is a binary
heap written out by hand over small objects holding the due time as a plain float:

* compiled (setup.py), comparing two entries is two machine comparisons on fields of
  C structs. ``heapq`` on tuples or floats compares boxed Python objects through the
  generic rich comparison, about a hundred instructions each, and an agenda keyed by
  float in a dict hashes the float on every operation; this heap costs a third of that.
* interpreted, the same loops run as bytecode and cost more than ``heapq``'s C, but
  the interpreted build is the slow one anyway; one agenda for both keeps them the
  same program (tests/test_agenda.py checks its order against a sort).

Ties: events due at the same time come out in the order they were pushed, so a run
never depends on how the heap happens to break ties.
"""

from __future__ import annotations

from typing import Any, Final

INF: Final = float("inf")


class Entry:
    """One pending event: (kind, a, b) are the engine's, opaque here."""

    __slots__ = ("a", "b", "kind", "seq", "t")

    def __init__(self, t: float, seq: int, kind: int, a: Any, b: Any) -> None:
        self.t = t
        self.seq = seq  # push order, for ties
        self.kind = kind
        self.a = a
        self.b = b

    def __repr__(self) -> str:
        return f"Entry(t={self.t!r}, seq={self.seq}, kind={self.kind}, a={self.a!r}, b={self.b!r})"


class Agenda:
    """Pending events, the earliest (then the first pushed) on top."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def top(self) -> float:
        """When the next event is due (infinity if none is)."""
        heap = self._heap
        return heap[0].t if heap else INF

    def push(self, t: float, kind: int, a: Any = None, b: Any = None) -> None:
        seq = self._seq
        self._seq = seq + 1
        new = Entry(t, seq, kind, a, b)
        heap = self._heap
        heap.append(new)
        # Sift up: move parents later than the new entry down one level. The new
        # entry is the last pushed, so it goes after every entry due at its time.
        pos = len(heap) - 1
        while pos > 0:
            up = (pos - 1) >> 1
            parent = heap[up]
            if parent.t <= t:
                break
            heap[pos] = parent
            pos = up
        heap[pos] = new

    def pop(self) -> Entry:
        """Take the next event off; the agenda must not be empty."""
        heap = self._heap
        last = heap.pop()
        if not heap:
            return last
        first = heap[0]
        # heapq's way: walk the hole at the root down along the earlier child to a
        # leaf (one comparison per level), then sift the last entry up from there.
        # That takes fewer comparisons than stopping early, as the last entry of a
        # heap nearly always belongs near the bottom.
        n = len(heap)
        pos = 0
        child = 1
        while child < n:
            early = heap[child]
            right = child + 1
            if right < n:
                other = heap[right]
                if other.t < early.t or (other.t == early.t and other.seq < early.seq):
                    child = right
                    early = other
            heap[pos] = early
            pos = child
            child = 2 * pos + 1
        t, seq = last.t, last.seq
        while pos > 0:
            up = (pos - 1) >> 1
            parent = heap[up]
            if parent.t < t or (parent.t == t and parent.seq < seq):
                break
            heap[pos] = parent
            pos = up
        heap[pos] = last
        return first
