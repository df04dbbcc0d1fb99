"""Lead and DNC lists from CSV: good rows in, bad rows named by line, column and reason."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.errors import InputError
from dialer import imports
from dialer.imports import MAX_FIELD, PARALLEL_MIN_ROWS, read_dnc, read_leads, text_lines

GOOD = """lead_id,phone,timezone,priority,name,plan
a1,+1 212 555 0100,,2,Ann,gold
a2,(312) 555-0101,America/Chicago,,Bob,
a3,not a number,,,Cy,silver
a4,+12125550100,,,Ann again,
a5,+442079460958,,x,Dee,
a6,+61412345678,Mars/Olympus,,Eve,
"""


def test_good_rows_in_bad_rows_named() -> None:
    result = read_leads(GOOD.splitlines(keepends=True), source="list.csv")
    assert [lead.lead_id for lead in result.leads] == ["a1", "a2"]
    a1, a2 = result.leads
    assert a1.number == "+12125550100" and a1.zones == ("America/New_York",) and a1.priority == 2
    assert a2.zones == ("America/Chicago",)
    # a4 repeats a1's number: merged (a1 keeps its data, gains what it lacked).
    assert result.merged == 1 and a1.data == {"name": "Ann", "plan": "gold"}
    assert result.rows == 6
    problems = [(p.line, p.column) for p in result.problems]
    assert problems == [(4, "phone"), (6, "priority"), (7, "timezone")]
    assert "not a number" in result.problems[0].reason or "phone" in str(result.problems[0])


def test_semicolons_bom_and_other_number_columns() -> None:
    text = "\ufeffMSISDN;Name\n+442079460958;Zoë\n"
    result = read_leads(text.splitlines(keepends=True), id_prefix="L")
    (lead,) = result.leads
    assert lead.lead_id == "L2" and lead.data == {"name": "Zoë"}


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("", "leads.csv", "empty"),
        ("name,email\nAnn,a@x\n", "leads.csv: line 1", "no number column"),
        ("phone,phone\n1,2\n", "leads.csv: line 1", "duplicate column"),
    ],
)
def test_unusable_files_are_rejected_with_their_place(text: str, where: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        read_leads(text.splitlines(keepends=True))
    assert info.value.where == where


def test_wrong_field_counts_and_reused_ids_are_row_problems() -> None:
    text = "lead_id,phone\nx,+12125550100\nx,+13125550101\ny,+13125550102,extra\n"
    result = read_leads(text.splitlines(keepends=True))
    assert [lead.lead_id for lead in result.leads] == ["x"]
    assert [(p.line, p.column) for p in result.problems] == [(3, "lead_id"), (4, "row")]


def test_garbage_is_rejected_at_its_first_giant_cell() -> None:
    garbage = ["phone\n", "+12125550100\n", "A" * (MAX_FIELD + 1) + "\n"] + ["B" * 10_000 + "\n"] * 10
    with pytest.raises(InputError, match="not a lead list") as info:
        read_leads(garbage)
    assert info.value.where == "leads.csv: line 3"


def test_bytes_must_be_utf8_and_the_bad_line_is_named() -> None:
    data = "phone,name\n+12125550100,Zoë\n".encode() + b"+13125550101,Jos\xe9\n"
    lines = text_lines([data[:7], data[7:]], source="up.csv")
    with pytest.raises(InputError, match="not UTF-8") as info:
        read_leads(lines, source="up.csv")
    assert info.value.where == "up.csv: line 3"
    ok = read_leads(text_lines(b"phone\n+12125550100", source="u"), source="u")
    assert [lead.number for lead in ok.leads] == ["+12125550100"]


def test_dnc_lists_normalise_merge_and_name_bad_rows() -> None:
    text = "number,reason\n(212) 555-0100,asked\n+1 212 555 0100,again\n12,typo\n+442079460958,\n"
    result = read_dnc(text.splitlines(keepends=True))
    assert result.numbers == ["+12125550100", "+442079460958"]
    assert result.merged == 1 and [(p.line, p.column) for p in result.problems] == [(4, "number")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet='0123456789+()- ,;"x\n', max_size=20), max_size=15))
def test_any_input_gives_leads_problems_or_one_clear_error(cells: list[str]) -> None:
    text = "phone,name\n" + "\n".join(f"{c},n" for c in cells) + "\n"
    try:
        result = read_leads(text.splitlines(keepends=True))
    except InputError as exc:
        assert exc.where.startswith("leads.csv")
        return
    assert len(result.leads) + len(result.problems) + result.merged == result.rows
    assert all(lead.number.startswith("+") for lead in result.leads)
    assert len({lead.number for lead in result.leads}) == len(result.leads)


def test_parallel_validation_gives_the_same_list() -> None:
    """Worker processes validate a big list; the result is the sequential one, row for row."""
    rows = ["phone,name,timezone,priority"]
    for i in range(PARALLEL_MIN_ROWS + 3000):
        number = f"(212) {200 + i // 10000}-{i % 10000:04d}" if i % 97 else "12x"
        zone = "Mars/Base" if i % 301 == 0 else ("Europe/Paris" if i % 7 == 0 else "")
        rows.append(f"{number},n{i},{zone},{i % 5 if i % 11 else 'x'}")
    rows.append("(212) 200-0001,again,,")  # a duplicate number: merged
    one = read_leads(rows, workers=1)
    two = read_leads(rows, workers=2)
    assert one.rows == two.rows and one.merged == two.merged == 1
    assert one.problems == two.problems and len(one.problems) > 100
    assert [(x.lead_id, x.number, x.zones, x.priority, dict(x.data)) for x in one.leads] == [
        (x.lead_id, x.number, x.zones, x.priority, dict(x.data)) for x in two.leads
    ]


def test_lead_ids_that_cannot_travel_in_an_ami_header_are_refused() -> None:
    out = read_leads(["lead_id,phone", '"bad\nid",2025550101', "ok,2025550102", f"{'x' * 200},2025550103"])
    assert [lead.lead_id for lead in out.leads] == ["ok"]
    assert [(p.column, p.reason.split(":")[-1].strip()) for p in out.problems] == [
        ("lead_id", "at most 128 printable characters"),
        ("lead_id", "at most 128 printable characters"),
    ]


def test_a_broken_worker_pool_falls_back_and_heals() -> None:
    """A worker killed (out of memory, say) must not fail imports until a restart."""
    pool = imports._pool(2)
    with pytest.raises(BrokenProcessPool):
        pool.submit(os._exit, 1).result()
    rows = ["phone"] + [f"(212) {200 + i // 10000}-{i % 10000:04d}" for i in range(PARALLEL_MIN_ROWS + 10)]
    two, one = read_leads(rows, workers=2), read_leads(rows, workers=1)
    assert [x.number for x in two.leads] == [x.number for x in one.leads] and len(
        one.leads
    ) > PARALLEL_MIN_ROWS
    assert imports._pool(2) is not pool  # the next list gets a fresh pool
