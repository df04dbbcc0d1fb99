"""Durations as people write them, and clear errors for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acd.durations import parse_duration
from acd.errors import InputError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("180", 180.0),
        (180, 180.0),
        (2.5, 2.5),
        ("180s", 180.0),
        ("3m", 180.0),
        ("8h", 28800.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        (" 20S ", 20.0),
        ("1d", 86400.0),
        ("0", 0.0),
    ],
)
def test_accepted(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "20x", "3 minutes", "1h-30m", "-5", "nan", "inf", "1e999", "h1"])
def test_rejected_with_the_place_named(text: str) -> None:
    with pytest.raises(InputError, match=r"^queues\[2\]\.service_target: "):
        parse_duration(text, where="queues[2].service_target")


def test_booleans_are_not_durations() -> None:
    with pytest.raises(InputError):
        parse_duration(True)


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_input_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except InputError:
        return
    assert value >= 0


@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_units_scale(n: int, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * scale)
