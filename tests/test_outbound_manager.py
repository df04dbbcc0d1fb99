"""The campaign manager: imports, dialling books and restarts, on memory and Redis.

A "restart" is a new manager built on the same backend (the same Redis, or the same
memory dicts): everything it knows must come from the store.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from acd.errors import InputError
from ccd.kv import Kv, KvError, MemoryKv, Op, RedisKv
from ccd.outbound import GC_PAUSE, OutboundError, OutboundManager
from ccd.store import Store
from dialer.leads import LeadState, Outcome
from dialer.runner import AgentPicture

NOON_NY = datetime(2026, 1, 7, 17, 0, tzinfo=UTC).timestamp()  # a Wednesday, 12:00 in New York
SPEC = {"name": "spring", "caller_id": "+12025550100", "queue": "sales", "dial_mode": "progressive"}


class Clock:
    def __init__(self) -> None:
        self.t = NOON_NY

    def __call__(self) -> float:
        return self.t


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def csv_rows(n: int, start: int = 0) -> bytes:
    lines = ["phone,first_name"] + [f"(202) 555-{i:04d},p{i}" for i in range(start, start + n)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(params=["memory", "redis"])
async def kv_factory(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Kv]]:
    if request.param == "memory":
        shared = MemoryKv()
        yield lambda: shared
        return
    url = request.getfixturevalue("redis_url")
    opened: list[Kv] = []

    def make() -> Kv:
        opened.append(RedisKv(url))
        return opened[-1]

    yield make
    for kv in opened:
        await kv.close()


async def _manager(kv_factory: Callable[[], Kv], clock: Clock) -> OutboundManager:
    m = OutboundManager(Store(kv_factory()), now=clock)
    await m.load()
    return m


AGENTS = frozenset({"a1", "a2", "a3"})
PICTURE = AgentPicture(3, 3, ready_ids=AGENTS, logged_in_ids=AGENTS)


async def test_import_report_and_merge(kv_factory: Callable[[], Kv]) -> None:
    clock = Clock()
    m = await _manager(kv_factory, clock)
    await m.create(SPEC, "mgr")
    data = csv_rows(5) + b"not a number,x\n(202) 555-0001,dup\n"
    report = await m.import_leads("spring", chunks(data), source="a.csv", who="mgr")
    assert (report["rows"], report["imported"], report["merged"], report["rejected"]) == (7, 5, 1, 1)
    [problem] = report["problems"]
    assert problem.startswith("line 7, phone: ")
    again = await m.import_leads("spring", chunks(csv_rows(8)), source="b.csv", who="mgr")
    assert (again["imported"], again["merged"]) == (3, 5)  # numbers of the first list are merged
    p = m.progress("spring")
    assert p["leads"]["total"] == 8 and p["status"] == "stopped"
    with pytest.raises(OutboundError, match="already imported"):
        await m.import_leads("spring", chunks(csv_rows(1)), source="c.csv", who="mgr", list_id="list1")


async def test_bad_campaign_specs_name_the_key(kv_factory: Callable[[], Kv]) -> None:
    m = await _manager(kv_factory, Clock())
    with pytest.raises(InputError, match="max_attempts"):
        await m.create({**SPEC, "max_attempts": 0}, "mgr")
    with pytest.raises(InputError, match="colour"):
        await m.create({**SPEC, "colour": "red"}, "mgr")
    assert m.campaigns == {} and await m.store.campaigns() == []


async def test_dialling_survives_a_restart(kv_factory: Callable[[], Kv]) -> None:
    clock = Clock()
    m = await _manager(kv_factory, clock)
    await m.create(SPEC, "mgr")
    await m.import_leads("spring", chunks(csv_rows(10)), source="a.csv", who="mgr")
    assert await m.launch("spring", clock(), PICTURE) == []  # stopped: no dials
    await m.set_status("spring", "start", "mgr")
    dials = await m.launch("spring", clock(), PICTURE)
    assert len(dials) == 3  # progressive: one per ready agent
    first, second, third = dials
    # Each attempt is on record before its Originate would be sent.
    assert {f.call_id for f in await m.store.inflight("spring")} == {d.call_id for d in dials}
    clock.t += 4
    m.failed(clock(), first.call_id, Outcome.BUSY, "busy")
    arrived = m.answered(clock(), second.call_id, human=True)
    assert arrived is not None and arrived.queue == "outbound:spring"
    m.connected(clock() + 0.5, second.call_id, "a1")
    clock.t += 60
    m.ended(clock(), second.call_id)
    await m.flush()
    p = m.progress("spring")
    assert (p["dials"], p["connects"], p["outcomes"]) == (3, 1, {"busy": 1, "human": 1})

    # kill -9 here: the third call is still ringing.
    clock.t += 5
    m2 = await _manager(kv_factory, clock)
    live = m2.get("spring")
    assert live.status == "running"
    lead3 = live.hopper.get(third.lead_id)
    assert lead3.state is LeadState.SCHEDULED  # not dialled again straight away
    assert [a.outcome for a in lead3.attempts] == [Outcome.FAILED]
    assert "restarted" in lead3.attempts[0].detail
    assert await m2.store.inflight("spring") == []
    lead1 = live.hopper.get(first.lead_id)
    assert [a.outcome for a in lead1.attempts] == [Outcome.BUSY]
    assert m2.progress("spring")["outcomes"] == {"busy": 1, "human": 1, "failed": 1}
    assert live.ledger.counts(clock()) == (1.0, 0.0)  # the connect is still in the window
    again = await m2.launch("spring", clock(), PICTURE)
    assert {d.lead_id for d in again}.isdisjoint({first.lead_id, second.lead_id, third.lead_id})
    assert {d.call_id for d in again}.isdisjoint({d.call_id for d in dials})  # ids never reused
    trail = await m2.store.audit(f"lead:spring:{second.lead_id}")
    assert [(e.who, e.what, e.detail["outcome"]) for e in trail] == [("a1", "attempt", "human")]


async def test_dnc_stops_leads_and_survives(kv_factory: Callable[[], Kv]) -> None:
    clock = Clock()
    m = await _manager(kv_factory, clock)
    await m.create(SPEC, "mgr")
    await m.import_leads("spring", chunks(csv_rows(4)), source="a.csv", who="mgr")
    dnc = b"number\n+12025550001\n2025550002\nrubbish\n"
    report = await m.import_dnc(None, chunks(dnc), source="d.csv", who="mgr")
    assert (report["added"], report["leads_stopped"], report["rejected"]) == (2, 2, 1)
    await m.add_dnc("(202) 555-0003", "spring", "mgr")
    m2 = await _manager(kv_factory, clock)
    states = m2.progress("spring")["leads"]["by_state"]
    assert states == {"dnc": 3, "new": 1}
    why = m2.why("spring", "list1-3")
    assert why["reason"] == "dnc_global"


async def test_concurrent_uploads_all_land(kv_factory: Callable[[], Kv]) -> None:
    m = await _manager(kv_factory, Clock())
    await m.create(SPEC, "mgr")
    reports = await asyncio.gather(
        *(
            m.import_leads("spring", chunks(csv_rows(50, 100 * k), 64), source=f"{k}.csv", who="mgr")
            for k in range(4)
        )
    )
    assert sorted(r["list"] for r in reports) == ["list1", "list2", "list3", "list4"]
    assert sum(r["imported"] for r in reports) == 200
    m2 = await _manager(kv_factory, Clock())
    assert m2.progress("spring")["leads"]["total"] == 200


class FlakyKv(MemoryKv):
    """The memory backend, but refusing writes while ``down`` (Redis gone away)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def apply(self, ops: Sequence[Op]) -> list[Any]:
        if self.down:
            raise KvError("Redis: Connection refused")
        return await super().apply(ops)


async def test_no_dial_goes_out_that_the_store_did_not_record() -> None:
    clock = Clock()
    kv = FlakyKv()
    m = OutboundManager(Store(kv), now=clock)
    await m.load()
    await m.create(SPEC, "mgr")
    await m.import_leads("spring", chunks(csv_rows(10)), source="a.csv", who="mgr")
    await m.set_status("spring", "start", "mgr")
    live = m.get("spring")
    before = m.progress("spring", PICTURE)
    kv.down = True
    with pytest.raises(KvError):
        await m.launch("spring", clock(), PICTURE)
    # Withdrawn: no call in flight, leads back undialled, the runner's books unchanged.
    assert m.active_calls() == [] and live.runner.ringing == 0
    assert m.progress("spring", PICTURE)["dials"] == before["dials"] == 0
    assert all(live.hopper.get(lid).state is LeadState.NEW for lid in live.hopper.lead_ids())
    assert all(live.hopper.get(lid).attempts == () for lid in live.hopper.lead_ids())
    kv.down = False
    dials = await m.launch("spring", clock(), PICTURE)
    assert len(dials) == 3 and len(await m.store.inflight("spring")) == 3


@pytest.mark.parametrize(
    ("garbage", "problem"),
    [
        (b"\xff" * 65536, "line 1: is not UTF-8 text"),
        (b"x" * 65536, "longer than 256 KiB"),
        (b"phone\n" + b"\x00\xfe\xff" * 30000, "line 2: is not UTF-8 text"),
    ],
)
async def test_a_gigabyte_of_garbage_is_refused_after_its_first_bytes(garbage: bytes, problem: str) -> None:
    m = await _manager(MemoryKv, Clock())
    await m.create(SPEC, "mgr")
    sent = 0

    async def gigabyte() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(2**30 // len(garbage)):
            sent += len(garbage)
            yield garbage

    with pytest.raises(InputError, match=problem):
        await m.import_leads("spring", gigabyte(), source="junk.csv", who="mgr")
    assert sent <= 8 * 2**20  # read at most a few MiB of the gigabyte
    assert await m.store.lists("spring") == []


async def test_call_ids_never_repeat_across_an_update() -> None:
    clock = Clock()
    m = await _manager(MemoryKv, clock)
    await m.create(SPEC, "mgr")
    await m.import_leads("spring", chunks(csv_rows(10)), source="a.csv", who="mgr")
    await m.set_status("spring", "start", "mgr")
    first = await m.launch("spring", clock(), PICTURE)
    for d in first:
        m.failed(clock() + 3, d.call_id, Outcome.BUSY, "busy")
    await m.set_status("spring", "pause", "mgr")
    await m.update("spring", {"max_attempts": 3}, "mgr")
    await m.set_status("spring", "start", "mgr")
    clock.t += 10
    second = await m.launch("spring", clock(), PICTURE)
    assert second and {d.call_id for d in first}.isdisjoint(d.call_id for d in second)


async def test_status_changes_only_once_stored() -> None:
    kv = FlakyKv()
    m = OutboundManager(Store(kv), now=Clock())
    await m.load()
    await m.create(SPEC, "mgr")
    await m.set_status("spring", "start", "mgr")
    kv.down = True
    with pytest.raises(KvError):
        await m.set_status("spring", "stop", "mgr")
    assert m.get("spring").status == "running"  # as the store still says


async def test_a_late_connect_stays_an_abandon_after_a_restart(kv_factory: Callable[[], Kv]) -> None:
    clock = Clock()
    m = await _manager(kv_factory, clock)
    await m.create({**SPEC, "uk_rules": True}, "mgr")
    await m.import_leads("spring", chunks(csv_rows(3)), source="a.csv", who="mgr")
    await m.set_status("spring", "start", "mgr")
    [dial, *_] = await m.launch("spring", clock(), PICTURE)
    m.answered(clock() + 5, dial.call_id, human=True)
    m.connected(clock() + 8, dial.call_id, "a1")  # 3 s after the answer: too late
    m.ended(clock() + 60, dial.call_id)
    await m.flush()
    assert m.progress("spring", PICTURE)["abandons"] == 1
    m2 = await _manager(kv_factory, clock)
    p = m2.progress("spring", PICTURE)
    assert (p["connects"], p["abandons"], p["outcomes"]["human"]) == (0, 1, 1)
    # UK rules: no recall within 72 h of an abandoned call, across the restart too.
    why = m2.why("spring", dial.lead_id)
    assert why["reason"] in ("uk_no_recall", "retry_delay", "done"), why
    assert m2.history.no_recall_until(dial.number, clock() + 3600) is not None


def test_gc_is_held_off_during_imports_and_restored_after() -> None:
    assert gc.isenabled()
    with GC_PAUSE.held():
        assert not gc.isenabled()
        with GC_PAUSE.held():  # two imports at once
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
