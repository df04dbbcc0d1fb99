"""The outbound store on both backends: the same behaviour from memory and from Redis.

Every test runs twice, against the embedded memory backend and a real redis-server
(a private one, flushed per test): the store's logic is written once, so any
difference would be a backend bug.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_server import free_port

from ccd.kv import KvError, MemoryKv, RedisKv, open_kv
from ccd.store import (
    CampaignRecord,
    LedgerEntry,
    ListRecord,
    Store,
    StoreError,
    decode_lead,
    lead_state,
    lead_static,
)
from dialer.leads import Attempt, Lead, LeadState, Outcome, ZoneSource, new_lead

T0 = 1_767_000_000.0


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        s = Store(MemoryKv())
    else:
        s = Store(RedisKv(request.getfixturevalue("redis_url")))
    yield s
    await s.close()


def _leads(n: int, start: int = 0) -> list[Lead]:
    return [new_lead(f"L{i}", f"+1202555{i:04d}", data={"name": f"n{i}"}) for i in range(start, start + n)]


def _record(list_id: str, n: int) -> ListRecord:
    return ListRecord(list_id, f"{list_id}.csv", n, n, 0, 0, T0, "manager1")


async def _all(store: Store, campaign: str) -> dict[str, Lead]:
    return {lead.lead_id: lead async for _, lead in store.leads(campaign)}


async def test_campaign_round_trip_and_audit(store: Store) -> None:
    rec = CampaignRecord("spring", {"name": "spring", "queue": "sales"}, "stopped", T0, "alice", T0, "alice")
    await store.put_campaign(rec, what="create", detail={"spec": dict(rec.spec)})
    assert await store.campaign("spring") == rec
    assert await store.campaign("nope") is None
    later = CampaignRecord("spring", rec.spec, "running", T0, "alice", T0 + 5, "bob")
    await store.put_campaign(later, what="start", detail={})
    assert [c.status for c in await store.campaigns()] == ["running"]
    trail = await store.audit("campaign:spring")
    assert [(e.who, e.what, e.at) for e in trail] == [("alice", "create", T0), ("bob", "start", T0 + 5)]


async def test_list_import_is_read_back_whole(store: Store) -> None:
    leads = _leads(4500)  # more than two staging batches
    n = await store.import_list("c1", _record("list1", 4500), leads, detail={"problems": []})
    assert n == 4500
    back = await _all(store, "c1")
    assert len(back) == 4500
    assert back["L17"].number == "+12025550017" and back["L17"].data == {"name": "n17"}
    assert back["L17"].state is LeadState.NEW and back["L17"].attempts == ()
    [rec] = await store.lists("c1")
    assert (rec.list_id, rec.leads, rec.by) == ("list1", 4500, "manager1")
    with pytest.raises(StoreError, match="already imported"):
        await store.import_list("c1", _record("list1", 1), _leads(1, 9000), detail={})


async def test_a_failed_import_leaves_nothing(store: Store) -> None:
    await store.import_list("c1", _record("good", 10), _leads(10), detail={})

    def exploding() -> Iterator[Lead]:
        yield from _leads(5000, 100)
        raise RuntimeError("the upload connection dropped")

    with pytest.raises(RuntimeError, match="dropped"):
        await store.import_list("c1", _record("bad", 5000), exploding(), detail={})
    assert [r.list_id for r in await store.lists("c1")] == ["good"]
    assert len(await _all(store, "c1")) == 10
    assert await store.kv.keys("ccd:staging:*") == []  # nothing left behind
    assert [e.what for e in await store.audit("list:c1:bad")] == []


async def test_lead_state_and_inflight_survive(store: Store) -> None:
    await store.import_list("c1", _record("l", 3), _leads(3), detail={})
    lead = (await _all(store, "c1"))["L1"]
    lead.move(LeadState.DIALLING)
    await store.begin_dial("c1", "c1-1-1", lead, T0)
    assert [(f.call_id, f.lead_id, f.at) for f in await store.inflight("c1")] == [("c1-1-1", "L1", T0)]
    again = await store.lead("c1", "L1")
    assert again is not None and again.state is LeadState.DIALLING
    lead.record(Attempt(T0, Outcome.BUSY, None, "busy", T0 + 4))
    lead.move(LeadState.SCHEDULED, "retry")
    lead.next_due = T0 + 600
    await store.end_dial("c1", "c1-1-1", lead, at=T0 + 4, who="dialer", detail={"outcome": "busy"})
    assert await store.inflight("c1") == []
    back = await store.lead("c1", "L1")
    assert back is not None
    assert back.attempts == (Attempt(T0, Outcome.BUSY, None, "busy", T0 + 4),)
    assert (back.state, back.next_due, back.detail) == (LeadState.SCHEDULED, T0 + 600, "retry")
    assert [(e.who, e.what) for e in await store.audit("lead:c1:L1")] == [("dialer", "attempt")]


async def test_ledger_keeps_its_window(store: Store) -> None:
    day = 86400.0
    await store.ledger_add("c1", LedgerEntry(T0, 0.5), uid="u1", keep_s=day)
    await store.ledger_add("c1", LedgerEntry(T0 + 10, None, "caller hung up"), uid="u2", keep_s=day)
    await store.ledger_add("c1", LedgerEntry(T0 + 20, fp=0.25), uid="u3", keep_s=day)
    await store.ledger_add("c1", LedgerEntry(T0 + day + 15, 1.0), uid="u4", keep_s=day)  # trims the first two
    assert await store.ledger("c1", -math.inf) == [
        LedgerEntry(T0 + 20, fp=0.25),
        LedgerEntry(T0 + day + 15, 1.0),
    ]
    assert await store.ledger("c1", T0 + 21) == [LedgerEntry(T0 + day + 15, 1.0)]


async def test_dnc_global_and_per_campaign(store: Store) -> None:
    n = await store.dnc_add((f"+1202555{i:04d}" for i in range(4100)), None, at=T0, who="m", source="x.csv")
    assert n == 4100 and len(await store.dnc(None)) == 4100
    await store.dnc_add(["+12025559999"], "c1", at=T0, who="m", source="api")
    assert await store.dnc_has("+12025559999", "c1") and not await store.dnc_has("+12025559999", None)
    assert await store.dnc_remove("+12025550001", None, at=T0, who="m")
    assert not await store.dnc_remove("+12025550001", None, at=T0, who="m")
    assert len(await store.dnc(None)) == 4099
    assert [e.what for e in await store.audit("dnc")] == ["add", "remove", "remove"]


async def test_agents_and_boot(store: Store) -> None:
    await store.save_agent("a1", "paused", "lunch", T0)
    assert await store.agents() == {"a1": ("paused", "lunch", T0)}
    assert await store.boot() + 1 == await store.boot()


def test_store_urls() -> None:
    assert isinstance(open_kv(None), MemoryKv) and isinstance(open_kv("memory:"), MemoryKv)
    with pytest.raises(KvError, match="redis://"):
        open_kv("postgres://x")


async def test_redis_down_is_a_clear_error() -> None:
    s = Store(RedisKv(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(KvError, match="Redis"):
        await s.campaigns()
    await s.close()


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=200)
@given(
    priority=st.integers(-1000, 1000),
    data=st.dictionaries(_text.filter(bool), _text.filter(bool), max_size=4),
    attempts=st.lists(
        st.tuples(
            st.floats(0, 2e9),
            st.sampled_from(list(Outcome)),
            st.none() | _text,
            _text,
            st.none() | st.floats(0, 1e5),
        ),
        max_size=5,
    ),
    state=st.sampled_from(list(LeadState)),
    due=st.none() | st.floats(0, 2e9),
    callback=st.none() | st.tuples(st.floats(0, 2e9), st.none() | _text),
)
def test_lead_codec_round_trips(
    priority: int,
    data: dict[str, str],
    attempts: list[tuple[float, Outcome, str | None, str, float | None]],
    state: LeadState,
    due: float | None,
    callback: tuple[float, str | None] | None,
) -> None:
    lead = Lead("id", "+442079460000", ("Europe/London",), ZoneSource.NUMBER, priority, data)
    lead.attempts = tuple(
        Attempt(at, o, ag, d, None if e is None else at + e) for at, o, ag, d, e in attempts
    )
    lead.state, lead.next_due = state, due
    if callback is not None:
        lead.callback_at, lead.callback_agent = callback
    back = decode_lead("id", lead_static(lead), lead_state(lead))
    for name in Lead.__slots__:
        assert getattr(back, name) == getattr(lead, name), name
