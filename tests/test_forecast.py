"""Forecast CSV parsing: the happy path, every error with file:line, and no crashes."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acd.errors import InputError
from acd.forecast import parse_forecast


def parse(text: str, interval_s: float | None = None):  # type: ignore[no-untyped-def]
    return parse_forecast(text.splitlines(keepends=True), source="f.csv", interval_s=interval_s)


def test_clock_times_and_load() -> None:
    f = parse("interval_start,calls,aht_s\n08:00,100,180\n08:30,120,200\n09:00,0,180\n")
    assert f.interval_s == 1800
    assert f.starts == ("08:00", "08:30", "09:00")
    np.testing.assert_allclose(f.load_erlangs, [10.0, 120 / 1800 * 200, 0.0])
    np.testing.assert_allclose(f.offsets_s, [0, 1800, 3600])
    assert f.patience_s is None


def test_iso_times_patience_column_and_midnight() -> None:
    f = parse(
        "interval_start,calls,aht_s,patience_s\n2026-11-25T23:45,10,180,90\n2026-11-26T00:00,12,180,95\n"
    )
    assert f.interval_s == 900
    np.testing.assert_allclose(f.patience_s, [90, 95])
    g = parse("calls,interval_start,aht_s\n5,23:30,100\n6,0:00,100\n")  # any column order
    assert g.interval_s == 1800
    assert g.calls.tolist() == [5.0, 6.0]


def test_single_interval_needs_its_length() -> None:
    with pytest.raises(InputError, match="give its length"):
        parse("interval_start,calls,aht_s\n08:00,10,180\n")
    assert parse("interval_start,calls,aht_s\n08:00,10,180\n", interval_s=3600).interval_s == 3600


def test_blank_lines_skipped() -> None:
    f = parse("interval_start,calls,aht_s\n\n08:00,1,180\n,,\n08:15,2,180\n")
    assert len(f) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"^f\.csv: is empty"),
        ("interval_start,calls\n", r"^f\.csv:1: missing column 'aht_s'"),
        ("interval_start,calls,aht_s,patience\n", r"^f\.csv:1: unknown column 'patience'"),
        ("interval_start,calls,aht_s\n", r"^f\.csv: has a header but no intervals"),
        ("interval_start,calls,aht_s\n08:00,10,180\n08:30,-1,180\n", r"^f\.csv:3: calls: '-1' must not"),
        ("interval_start,calls,aht_s\n08:00,ten,180\n08:30,1,180\n", r"^f\.csv:2: calls: 'ten' is not a"),
        ("interval_start,calls,aht_s\n08:00,10,0\n08:30,1,180\n", r"^f\.csv:2: aht_s: '0' must be above 0"),
        ("interval_start,calls,aht_s\n8am,10,180\n", r"^f\.csv:2: interval_start: '8am' is not a time"),
        ("interval_start,calls,aht_s\n08:00,10\n", r"^f\.csv:2: has 2 fields, the header has 3"),
        (
            "interval_start,calls,aht_s\n08:00,1,180\n08:30,1,180\n09:15,1,180\n",
            r"^f\.csv:4: interval_start: 45 min after the previous interval; intervals here are 30 min",
        ),
        (
            "interval_start,calls,aht_s\n08:00,1,180\n08:00,1,180\n",
            r"^f\.csv:3: interval_start: is not after",
        ),
        (
            "interval_start,calls,aht_s\n08:00,inf,180\n08:30,1,1\n",
            r"^f\.csv:2: calls: 'inf' is not a finite",
        ),
        (
            "interval_start,calls,aht_s\n2026-11-25T08:00+01:00,1,1\n2026-11-25T08:30,1,1\n",
            r"^f\.csv:3: interval_start: mixes times",
        ),
        ("interval_start,calls,calls,aht_s\n", r"named twice"),
    ],
)
def test_errors_name_file_line_and_column(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse(text)


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_raises_input_error(body: str) -> None:
    with contextlib.suppress(InputError):
        parse("interval_start,calls,aht_s\n" + body)


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(1, 3600), st.integers(1, 3600)), min_size=2, max_size=48
    )
)
def test_well_formed_files_round_trip(rows: list[tuple[int, int, int]]) -> None:
    lines = ["interval_start,calls,aht_s,patience_s"]
    for i, (calls, aht, patience) in enumerate(rows):
        minutes = 15 * i
        lines.append(f"{minutes // 60 % 24:02d}:{minutes % 60:02d},{calls},{aht},{patience}")
    f = parse("\n".join(lines) + "\n")
    assert f.calls.tolist() == [r[0] for r in rows]
    assert f.interval_s == 900
