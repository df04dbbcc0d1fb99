"""Lead and DNC lists from CSV: every good row in, every bad row named.

Why a module of its own: campaign managers upload what their CRM exports, in whatever
shape, and a list of 100,000 rows must neither stop at the first bad row nor let one
in silently. This module only *reads*: it streams rows (memory grows with the distinct
numbers, not the file), validates each with the same rules as the core
(:func:`dialer.leads.new_lead`, :class:`dialer.compliance.DncList`), merges duplicates
and reports every problem with its line, column and reason. Storing the list
atomically (all of it or none) is the store's job (issue 7).

Lead lists need a number column (``phone`` by default; ``number``, ``phone_number``,
``msisdn`` and ``telephone`` are recognised too). Optional columns: ``lead_id``,
``timezone`` (an IANA zone; otherwise the zone comes from the number) and
``priority`` (a whole number). Every other non-empty column is call data for the
agent. Delimiters ``,`` ``;`` tab and ``|`` are recognised from the header line.
A number seen twice is one lead: the first row wins, later rows only fill in call
data it lacks, and the merge is counted.
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
import multiprocessing
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from acd.errors import InputError
from dialer.leads import DEFAULT_REGION, Lead, ZoneSource, new_lead, normalise_number

NUMBER_COLUMNS = ("phone", "number", "phone_number", "msisdn", "telephone")
DELIMITERS = ",;\t|"
_NO_DATA: MappingProxyType[str, str] = MappingProxyType({})
MAX_LEAD_ID = 128
MAX_FIELD = 4096
"""Longest cell accepted: a CSV of 1 GB of garbage fails on its first giant cell."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One row not imported (or one cell ignored): where and why."""

    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.reason}"


@dataclass(slots=True)
class LeadImport:
    """The outcome of reading one lead list."""

    leads: list[Lead] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    merged: int = 0  # rows whose number was already in the list


@dataclass(slots=True)
class DncImport:
    """The outcome of reading one DNC list: E.164 numbers, in file order, once each."""

    numbers: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    merged: int = 0


def _rows(lines: Iterable[str], source: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """(header, rows with their line numbers) of a CSV, delimiter from the header."""
    it = iter(lines)
    try:
        first = next(it)
    except StopIteration:
        raise InputError(source, "is empty: a header line is needed") from None
    first = first.removeprefix("\ufeff")
    counts = {d: first.count(d) for d in DELIMITERS}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","

    def chained() -> Iterator[str]:
        yield first
        yield from it

    reader = csv.reader(chained(), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise InputError(f"{source}: line 1", f"unreadable header ({exc})") from None
    if len(set(header)) != len(header):
        seen = sorted({h for h in header if header.count(h) > 1})
        raise InputError(f"{source}: line 1", f"duplicate column(s) {', '.join(seen)}")

    def body() -> Iterator[tuple[int, list[str]]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(f"{source}: line {reader.line_num}", f"unreadable CSV ({exc})") from None
            if any(len(cell) > MAX_FIELD for cell in row):
                raise InputError(
                    f"{source}: line {reader.line_num}",
                    f"a cell longer than {MAX_FIELD} characters: this is not a lead list",
                )
            yield reader.line_num, row

    return header, body()


def _number_column(header: list[str], source: str) -> str:
    for name in NUMBER_COLUMNS:
        if name in header:
            return name
    raise InputError(
        f"{source}: line 1",
        f"no number column (one of {', '.join(NUMBER_COLUMNS)}); the header has: {', '.join(header)}",
    )


PARALLEL_CHUNK = 1000
"""Rows per task when a big list is validated in worker processes."""
PARALLEL_MIN_ROWS = 20_000
"""Below this a list is validated in-process: starting workers would cost more."""

_Checked = tuple[Any, ...]
"""A validated row: ``("ok", line, lead_id, e164, zones, zone source, priority, data)``
or ``("bad", line, lead_id, column, reason)`` (plain tuples: they cross processes)."""


def _check_row(
    line: int, row: list[str], header: list[str], number_col: str, region: str, id_prefix: str
) -> _Checked:
    """Validate one row; pure, so it can run in a worker process."""
    cells = {name: row[i].strip() for i, name in enumerate(header)}
    lead_id = cells.get("lead_id") or f"{id_prefix}{line}"
    if len(lead_id) > MAX_LEAD_ID or not lead_id.isprintable():
        # It travels in a channel variable and an AMI header: no line breaks, no controls.
        return (
            "bad",
            line,
            lead_id,
            "lead_id",
            f"{lead_id[:40]!r}: at most {MAX_LEAD_ID} printable characters",
        )
    priority = 0
    if cells.get("priority"):
        try:
            priority = int(cells["priority"])
        except ValueError:
            return ("bad", line, lead_id, "priority", f"{cells['priority']!r} is not a whole number")
    data = {k: v for k, v in cells.items() if v and k not in (number_col, "lead_id", "timezone", "priority")}
    try:
        lead = new_lead(
            lead_id,
            cells[number_col],
            region=region,
            zone=cells.get("timezone") or None,
            priority=priority,
            data=data,
            where=f"line {line}",
        )
    except InputError as exc:
        column = exc.where.rpartition(".")[2]
        column = {"number": number_col, "zone": "timezone"}.get(column, column)
        return ("bad", line, lead_id, column, exc.problem)
    return ("ok", line, lead_id, lead.number, lead.zones, lead.zone_source.value, priority, data)


def _check_rows(
    rows: list[tuple[int, list[str]]], header: list[str], number_col: str, region: str, id_prefix: str
) -> list[_Checked]:
    return [_check_row(line, row, header, number_col, region, id_prefix) for line, row in rows]


_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()  # imports run in threads: one pool per size, not two


def _pool(workers: int) -> ProcessPoolExecutor:
    """One pool per size for the process's life, started by forkserver: forking a
    service with threads and an event loop is unsafe, and a fresh pool per list would
    cost a second of start-up each time."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("forkserver")
            )
        return pool


def _drop_pool(workers: int, pool: ProcessPoolExecutor) -> None:
    with _POOLS_LOCK:
        if _POOLS.get(workers) is pool:
            del _POOLS[workers]
    pool.shutdown(wait=False, cancel_futures=True)


def _checked_rows(
    rows: Iterator[tuple[int, list[str]]],
    header: list[str],
    number_col: str,
    region: str,
    id_prefix: str,
    workers: int,
) -> Iterator[_Checked]:
    """Every row validated, in file order; big lists in parallel, a bounded number of
    chunks in flight (memory stays flat whatever the list's size). If the pool breaks
    (a worker killed), the rest of the list is validated here, and the next list gets
    a fresh pool."""
    first = list(itertools.islice(rows, PARALLEL_MIN_ROWS))
    if workers <= 1 or len(first) < PARALLEL_MIN_ROWS:
        yield from _check_rows(first, header, number_col, region, id_prefix)
        for line, row in rows:
            yield _check_row(line, row, header, number_col, region, id_prefix)
        return
    pool = _pool(workers)
    chunks = itertools.chain(
        (first[i : i + PARALLEL_CHUNK] for i in range(0, len(first), PARALLEL_CHUNK)),
        iter(lambda: list(itertools.islice(rows, PARALLEL_CHUNK)), []),
    )
    pending: collections.deque[tuple[list[tuple[int, list[str]]], Future[list[_Checked]] | None]]
    pending = collections.deque()
    broken = False

    def result(chunk: list[tuple[int, list[str]]], fut: Future[list[_Checked]] | None) -> list[_Checked]:
        nonlocal broken
        if fut is not None:
            try:
                return fut.result()
            except BrokenProcessPool:
                if not broken:
                    broken = True
                    _drop_pool(workers, pool)
        return _check_rows(chunk, header, number_col, region, id_prefix)

    for chunk in chunks:
        fut = None
        if not broken:
            try:
                fut = pool.submit(_check_rows, chunk, header, number_col, region, id_prefix)
            except BrokenProcessPool:
                broken = True
                _drop_pool(workers, pool)
        pending.append((chunk, fut))
        if len(pending) >= 2 * workers:
            yield from result(*pending.popleft())
    while pending:
        yield from result(*pending.popleft())


def read_leads(
    lines: Iterable[str],
    *,
    source: str = "leads.csv",
    region: str = DEFAULT_REGION,
    id_prefix: str = "",
    workers: int = 1,
) -> LeadImport:
    """Read a lead list; bad rows become :class:`Problem` entries, good ones leads.

    ``lines`` is text (see :func:`text_lines` for bytes); lead ids are the ``lead_id``
    column or ``<id_prefix><line>``. ``workers`` > 1 validates a big list in that many
    processes (numbers and zones are most of the cost); the result is the same.
    """
    header, rows = _rows(lines, source)
    number_col = _number_column(header, source)
    out = LeadImport()
    width = len(header)

    def shaped() -> Iterator[tuple[int, list[str]]]:
        for line, row in rows:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            out.rows += 1
            if len(row) != width:
                out.problems.append(Problem(line, "row", f"{len(row)} fields where the header has {width}"))
                continue
            yield line, row

    by_number: dict[str, Lead] = {}
    ids: set[str] = set()
    for checked in _checked_rows(shaped(), header, number_col, region, id_prefix, workers):
        line, lead_id = checked[1], checked[2]
        if lead_id in ids:
            out.problems.append(Problem(line, "lead_id", f"{lead_id!r} is used by an earlier row"))
            continue
        if checked[0] == "bad":
            out.problems.append(Problem(line, checked[3], checked[4]))
            continue
        _, _, _, e164, zones, zone_source, priority, data = checked
        first = by_number.get(e164)
        if first is not None:
            missing = {k: v for k, v in data.items() if k not in first.data}
            if missing:
                first.data = {**first.data, **missing}
            out.merged += 1
            continue
        ids.add(lead_id)
        lead = Lead(
            lead_id,
            e164,
            zones,
            ZoneSource(zone_source),
            priority,
            MappingProxyType(data) if data else _NO_DATA,
        )
        by_number[e164] = lead
        out.leads.append(lead)
    out.problems.sort(key=lambda p: p.line)
    return out


def read_dnc(lines: Iterable[str], *, source: str = "dnc.csv", region: str = DEFAULT_REGION) -> DncImport:
    """Read a DNC list (a number column; other columns are ignored)."""
    header, rows = _rows(lines, source)
    number_col = header.index(_number_column(header, source))
    out = DncImport()
    seen: set[str] = set()
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        out.rows += 1
        if number_col >= len(row):
            out.problems.append(Problem(line, header[number_col], "missing"))
            continue
        try:
            e164 = normalise_number(row[number_col].strip(), region=region, where=f"line {line}")
        except InputError as exc:
            out.problems.append(Problem(line, header[number_col], exc.problem))
            continue
        if e164 in seen:
            out.merged += 1
            continue
        seen.add(e164)
        out.numbers.append(e164)
    return out


def text_lines(data: Iterable[bytes] | bytes, *, source: str) -> Iterator[str]:
    """Decode an upload as UTF-8 (with or without BOM), line by line, streaming.

    A byte sequence that is not UTF-8 stops the import with its line: guessing an
    encoding would silently turn names and numbers into something else.
    """
    chunks = [data] if isinstance(data, bytes) else data
    buffer = io.BytesIO()
    line = 1
    for chunk in chunks:
        buffer.write(chunk)
        raw = buffer.getvalue()
        *complete, rest = raw.split(b"\n")
        for piece in complete:
            yield _decode(piece + b"\n", line, source)
            line += 1
        buffer = io.BytesIO()
        buffer.write(rest)
    tail = buffer.getvalue()
    if tail:
        yield _decode(tail, line, source)


def _decode(raw: bytes, line: int, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: line {line}",
            f"is not UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8",
        ) from None
