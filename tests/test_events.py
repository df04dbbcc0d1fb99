"""Events, commands and records: value semantics the drivers and the tests rely on.

acd/events.py writes each type out by hand (Final fields, explicit ``__init__``) so
that the compiled build constructs them in C; these checks hold the hand-written
classes to what dataclasses gave: equality and hashing by value, ``replace``,
pickling, and defaults. Run against the compiled build too (tests/test_compiled.py),
where assigning to a field must also fail at run time.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mypy import api as mypy_api

import acd.events as ev
from acd.policies import IdleAgent

CLASSES = [
    obj
    for obj in vars(ev).values()
    if inspect.isclass(obj)
    and dataclasses.is_dataclass(obj)
    and obj.__module__ == ev.__name__
    and not obj.__name__.startswith("_")
] + [IdleAgent]

# A value for every field name the types use (a new field must be added here).
SAMPLE: dict[str, Any] = {
    "at": 12.5,
    "call_id": "c-1",
    "queue": "sales",
    "caller": "+441632960001",
    "priority": 3,
    "data": {"account": "42"},
    "agent_id": "agent-7",
    "cause": "busy",
    "reason": "lunch",
    "action": ev.OverflowAction.VOICEMAIL,
    "position": 4,
    "expected_wait_s": 30.0,
    "arrived_at": 1.5,
    "left_at": 9.0,
    "outcome": ev.CallOutcome.ANSWERED,
    "wait_s": 7.5,
    "detail": "full",
    "extra": {"k": 1},
    "idle_since": 100.0,
    "talk_s_today": 600.0,
    "last_offer_seq": 9,
    "match": 0.75,
}


def sample(cls: type) -> Any:
    """An instance with every field given (none left to its default)."""
    return cls(**{f.name: SAMPLE[f.name] for f in dataclasses.fields(cls)})


def test_every_type_is_covered() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"CallArrived", "ConnectToAgent", "CallRecord", "IdleAgent", "Overflow"} <= names
    assert len(CLASSES) == 18


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_value_semantics(cls: type) -> None:
    a, b = sample(cls), sample(cls)
    assert a == b and a is not b
    if not any(isinstance(getattr(a, f.name), Mapping) for f in dataclasses.fields(a)):
        assert hash(a) == hash(b)  # with data attached, as with any dict inside: unhashable
    first = dataclasses.fields(a)[0].name
    other = dataclasses.replace(a, **{first: getattr(a, first) * 2})
    assert other != a and type(other) is cls
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a).startswith(f"{cls.__name__}(")
    # The constructor's positional order is the fields' order, and it sets every field.
    names = [f.name for f in dataclasses.fields(a)]
    positional = cls(*(SAMPLE[n] for n in names))
    assert positional == a and [getattr(positional, n) for n in names] == [SAMPLE[n] for n in names]


COMPILED = str(ev.__file__).endswith(".so")


@pytest.mark.skipif(not COMPILED, reason="compiled build only (tests/test_compiled.py runs it)")
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fields_cannot_be_assigned_in_the_compiled_build(cls: type) -> None:
    obj = sample(cls)
    name = dataclasses.fields(obj)[0].name
    with pytest.raises(AttributeError):
        setattr(obj, name, getattr(obj, name))


@pytest.mark.skipif(COMPILED, reason="checks the sources' types: the interpreted run has it")
def test_mypy_rejects_assigning_any_field(tmp_path: Path) -> None:
    """Interpreted, nothing stops an assignment at run time: mypy's Final check is the
    guard, for every field of every type."""
    lines = ["from acd import events as ev", "from acd.policies import IdleAgent", ""]
    expected = []
    for cls in CLASSES:
        prefix = "" if cls is IdleAgent else "ev."
        lines.append(f"def set_{cls.__name__}(x: {prefix}{cls.__name__}) -> None:")
        for f in dataclasses.fields(cls):
            lines.append(f"    x.{f.name} = x.{f.name}")
            expected.append(len(lines))
    probe = tmp_path / "probe.py"
    probe.write_text("\n".join(lines) + "\n")
    stdout, _, _ = mypy_api.run(["--no-incremental", "--follow-imports=silent", str(probe)])
    found = re.finditer(r"probe\.py:(\d+): error: Cannot assign to final", stdout)
    flagged = {int(m.group(1)) for m in found}
    assert flagged == set(expected), stdout


def test_defaults() -> None:
    e = ev.CallArrived(1.0, "c1", "sales")
    assert (e.caller, e.priority, e.agent_id, dict(e.data)) == ("", 0, None, {})
    assert ev.CallEnded(1.0, "c1").cause == "normal"
    assert ev.AgentPaused(1.0, "a1").reason == "break"
    r = ev.CallRecord("c1", "q", 0.0, 1.0, ev.CallOutcome.ABANDONED, 1.0)
    assert (r.agent_id, r.priority, r.detail, dict(r.extra)) == (None, 0, "", {})
    # The shared empty mapping cannot be written through by one event for all the others.
    with pytest.raises(TypeError):
        e.data["x"] = "y"  # type: ignore[index]


@given(st.sampled_from([math.inf, -math.inf, math.nan]))
def test_call_arrived_needs_a_finite_time(at: float) -> None:
    with pytest.raises(ValueError, match=r"CallArrived\.at must be finite"):
        ev.CallArrived(at, "c1", "sales")
