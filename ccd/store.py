"""Where outbound state lives between restarts: campaigns, lists, leads, DNC, ledger.

Why: a dialer that forgets is a dialer that breaks the law. After a kill -9 and a
restart no lead may be lost, no attempt forgotten, no lead dialled twice by mistake,
and the abandonment ledger must be intact, because the 3 % rule and the UK 72 h
no-recall are about calls already made. So every fact is written here *before* it is
acted on: an attempt is recorded (:meth:`Store.begin_dial`) before its Originate goes
out, and reconciled (:meth:`Store.end_dial`) after; a restart finds the calls still in
flight and settles them (:meth:`Store.inflight`).

One implementation, two backends (:mod:`ccd.kv`): Redis in production (with AOF on,
every acknowledged write survives a crash of ccd *and* of Redis), memory by default.
Each method's writes go in one atomic batch.

Layout (``<p>`` is the key prefix, ``ccd`` by default)::

    <p>:campaigns               hash   name -> {spec, status, created/updated at and by}
    <p>:c:<name>:lists          hash   list id -> {rows, leads, merged, problems, source…}
    <p>:c:<name>:list:<id>      hash   lead id -> the lead as imported (never changes)
    <p>:c:<name>:state          hash   lead id -> state, attempts, due, callback (once touched)
    <p>:c:<name>:inflight       hash   call id -> {lead, at}: attempts begun, not yet ended
    <p>:c:<name>:ledger         zset   at -> one human answer or false-positive estimate
    <p>:dnc                     set    E.164 numbers no campaign may call
    <p>:c:<name>:dnc            set    … that this campaign may not call
    <p>:agents                  hash   agent id -> last known state and pause reason
    <p>:audit:<entity>          list   who changed what, when (campaign:…, list:…, lead:…)
    <p>:boot                    counter, one per start: call ids unique across restarts
    <p>:staging:<n>             a list or DNC upload being written (renamed in at the end)

A lead list is written to a staging key in batches (memory stays flat whatever the
list's size) and renamed into place with its bookkeeping in one transaction, so a crash
mid-import leaves nothing visible: the list is in, or it is not (the staging key
expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ccd.kv import Kv, KvError, Op
from dialer.leads import Attempt, Lead, LeadState, Outcome, ZoneSource

STAGING_TTL_S = 6 * 3600
"""How long an unfinished upload's staging key outlives the crash that stranded it."""
BATCH = 2000  # leads or numbers per staging write
AUDIT_KEEP = 10_000  # newest entries kept per audited entity


class StoreError(Exception):
    """A request the store cannot carry out (unknown campaign, list already there…)."""


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    name: str
    spec: Mapping[str, Any]  # the campaign table as given (re-parsed on load)
    status: str  # stopped | running | paused
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str

    def to_json(self) -> str:
        return _dumps(
            {
                "spec": self.spec,
                "status": self.status,
                "created_at": self.created_at,
                "created_by": self.created_by,
                "updated_at": self.updated_at,
                "updated_by": self.updated_by,
            }
        )

    @classmethod
    def from_json(cls, name: str, text: str) -> CampaignRecord:
        d = json.loads(text)
        return cls(
            name,
            d["spec"],
            d["status"],
            d["created_at"],
            d["created_by"],
            d["updated_at"],
            d["updated_by"],
        )


@dataclass(frozen=True, slots=True)
class ListRecord:
    list_id: str
    source: str
    rows: int
    leads: int
    merged: int
    problems: int
    at: float
    by: str


@dataclass(frozen=True, slots=True)
class InFlight:
    call_id: str
    lead_id: str
    at: float


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One human answer (``delay`` None: never reached an agent) or, when ``fp`` is
    set, an estimate of AMD false positives booked as abandons (UK)."""

    at: float
    delay: float | None = None
    cause: str = ""
    fp: float | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    who: str
    what: str
    detail: Mapping[str, Any]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


# --- the lead codec: the same text in both backends ---------------------------------------


def lead_static(lead: Lead) -> str:
    """The part of a lead fixed at import (number, zones, priority, call data)."""
    return _dumps(
        {
            "n": lead.number,
            "z": list(lead.zones),
            "zs": lead.zone_source.value,
            "p": lead.priority,
            "d": dict(lead.data),
        }
    )


def lead_state(lead: Lead) -> str:
    """The part that moves: lifecycle state, attempts, due time, callback."""
    return _dumps(
        {
            "s": lead.state.value,
            "a": [[a.at, a.outcome.value, a.agent_id, a.detail, a.ended_at] for a in lead.attempts],
            "due": _num(lead.next_due),
            "cb": _num(lead.callback_at),
            "cba": lead.callback_agent,
            "x": lead.detail,
        }
    )


def decode_lead(lead_id: str, static: str, state: str | None) -> Lead:
    s = json.loads(static)
    lead = Lead(
        lead_id,
        s["n"],
        tuple(s["z"]),
        ZoneSource(s["zs"]),
        int(s["p"]),
        dict(s["d"]),
    )
    if state is not None:
        d = json.loads(state)
        lead.state = LeadState(d["s"])
        lead.attempts = tuple(Attempt(a[0], Outcome(a[1]), a[2], a[3], a[4]) for a in d["a"])
        lead.next_due = d["due"]
        lead.callback_at = d["cb"]
        lead.callback_agent = d["cba"]
        lead.detail = d["x"]
    return lead


class Store:
    """Outbound state on a :class:`ccd.kv.Kv` backend (see the module docstring)."""

    def __init__(self, kv: Kv, *, prefix: str = "ccd") -> None:
        self.kv = kv
        self.p = prefix

    async def close(self) -> None:
        await self.kv.close()

    def _c(self, campaign: str, what: str) -> str:
        return f"{self.p}:c:{campaign}:{what}"

    def audit_ops(self, entity: str, at: float, who: str, what: str, detail: Mapping[str, Any]) -> list[Op]:
        key = f"{self.p}:audit:{entity}"
        entry = _dumps({"at": at, "who": who, "what": what, "detail": detail})
        return [("RPUSH", key, entry), ("LTRIM", key, -AUDIT_KEEP, -1)]

    async def boot(self) -> int:
        """A number no earlier start of ccd used (call ids are built from it)."""
        return await self.kv.incr(f"{self.p}:boot")

    # --- campaigns ---------------------------------------------------------------------

    async def campaign(self, name: str) -> CampaignRecord | None:
        text = await self.kv.hget(f"{self.p}:campaigns", name)
        return None if text is None else CampaignRecord.from_json(name, text)

    async def campaigns(self) -> list[CampaignRecord]:
        raw = await self.kv.hgetall(f"{self.p}:campaigns")
        return [CampaignRecord.from_json(name, text) for name, text in sorted(raw.items())]

    async def put_campaign(self, record: CampaignRecord, *, what: str, detail: Mapping[str, Any]) -> None:
        ops: list[Op] = [("HSET", f"{self.p}:campaigns", record.name, record.to_json())]
        ops += self.audit_ops(f"campaign:{record.name}", record.updated_at, record.updated_by, what, detail)
        await self.kv.apply(ops)

    # --- lead lists --------------------------------------------------------------------

    async def lists(self, campaign: str) -> list[ListRecord]:
        raw = await self.kv.hgetall(self._c(campaign, "lists"))
        out = []
        for list_id, text in raw.items():
            d = json.loads(text)
            out.append(
                ListRecord(
                    list_id, d["source"], d["rows"], d["leads"], d["merged"], d["problems"], d["at"], d["by"]
                )
            )
        return sorted(out, key=lambda r: (r.at, r.list_id))

    async def import_list(
        self, campaign: str, record: ListRecord, leads: Iterable[Lead], *, detail: Mapping[str, Any]
    ) -> int:
        """Write a whole list atomically; returns how many leads went in.

        Leads go to a staging key in batches, then one transaction renames it into
        place and records the list and the audit entry. Until then nothing of it is
        visible; if anything fails the staging key is deleted (or expires)."""
        lists_key = self._c(campaign, "lists")
        if await self.kv.hget(lists_key, record.list_id) is not None:
            raise StoreError(f"campaign {campaign}: list {record.list_id!r} is already imported")
        staging = f"{self.p}:staging:{await self.kv.incr(f'{self.p}:staging-seq')}"
        count = 0
        try:
            batch: list[str] = []
            for lead in leads:
                batch += (lead.lead_id, lead_static(lead))
                count += 1
                if len(batch) >= 2 * BATCH:
                    await self.kv.apply([("HSET", staging, *batch), ("EXPIRE", staging, STAGING_TTL_S)])
                    batch = []
                    await asyncio.sleep(0)  # the memory backend never waits: let the loop run
            if batch:
                await self.kv.apply([("HSET", staging, *batch), ("EXPIRE", staging, STAGING_TTL_S)])
            meta = {
                "source": record.source,
                "rows": record.rows,
                "leads": count,
                "merged": record.merged,
                "problems": record.problems,
                "at": record.at,
                "by": record.by,
            }
            ops: list[Op] = [("HSET", lists_key, record.list_id, _dumps(meta))]
            if count:
                ops.insert(0, ("RENAME", staging, self._c(campaign, f"list:{record.list_id}")))
                ops.insert(1, ("PERSIST", self._c(campaign, f"list:{record.list_id}")))
            ops += self.audit_ops(
                f"list:{campaign}:{record.list_id}", record.at, record.by, "import", {**meta, **detail}
            )
            ops += self.audit_ops(
                f"campaign:{campaign}",
                record.at,
                record.by,
                "list imported",
                {"list": record.list_id, "leads": count},
            )
            await self.kv.apply(ops)
        except BaseException:
            # Best effort: if the store itself is what failed, the key expires anyway.
            with contextlib.suppress(KvError):
                await self.kv.apply([("DEL", staging)])
            raise
        return count

    async def leads(self, campaign: str) -> AsyncIterator[tuple[str, Lead]]:
        """Every lead of the campaign with its current state, list by list."""
        state_key = self._c(campaign, "state")
        for rec in await self.lists(campaign):
            key = self._c(campaign, f"list:{rec.list_id}")
            page: list[tuple[str, str]] = []
            seen: set[str] = set()  # HSCAN may return a field twice while the hash rehashes
            async for lead_id, static in self.kv.hscan(key):
                if lead_id in seen:
                    continue
                seen.add(lead_id)
                page.append((lead_id, static))
                if len(page) >= BATCH:
                    for lead in await self._decode_page(state_key, page):
                        yield rec.list_id, lead
                    page = []
            for lead in await self._decode_page(state_key, page):
                yield rec.list_id, lead

    async def _decode_page(self, state_key: str, page: list[tuple[str, str]]) -> list[Lead]:
        if not page:
            return []
        states = await self.kv.hmget(state_key, [lead_id for lead_id, _ in page])
        return [decode_lead(lead_id, static, st) for (lead_id, static), st in zip(page, states, strict=True)]

    async def lead(self, campaign: str, lead_id: str) -> Lead | None:
        for rec in await self.lists(campaign):
            static = await self.kv.hget(self._c(campaign, f"list:{rec.list_id}"), lead_id)
            if static is not None:
                return decode_lead(lead_id, static, await self.kv.hget(self._c(campaign, "state"), lead_id))
        return None

    def lead_ops(self, campaign: str, lead: Lead) -> list[Op]:
        return [("HSET", self._c(campaign, "state"), lead.lead_id, lead_state(lead))]

    async def save_lead(
        self, campaign: str, lead: Lead, *, at: float, who: str, what: str, detail: Mapping[str, Any]
    ) -> None:
        """A lead's new state, with its audit entry, in one write."""
        ops = self.lead_ops(campaign, lead)
        ops += self.audit_ops(f"lead:{campaign}:{lead.lead_id}", at, who, what, detail)
        await self.kv.apply(ops)

    # --- attempts in flight ------------------------------------------------------------

    def begin_dial_ops(self, campaign: str, call_id: str, lead: Lead, at: float) -> list[Op]:
        """Before the Originate: the lead is dialling and this call is on record."""
        ops = self.lead_ops(campaign, lead)
        ops.append(("HSET", self._c(campaign, "inflight"), call_id, _dumps({"lead": lead.lead_id, "at": at})))
        return ops

    def end_dial_ops(
        self, campaign: str, call_id: str, lead: Lead, *, at: float, who: str, detail: Mapping[str, Any]
    ) -> list[Op]:
        """The call is over: its attempt is on the lead, and it is no longer in flight."""
        ops = self.lead_ops(campaign, lead)
        ops.append(("HDEL", self._c(campaign, "inflight"), call_id))
        ops += self.audit_ops(f"lead:{campaign}:{lead.lead_id}", at, who, "attempt", detail)
        return ops

    async def begin_dial(self, campaign: str, call_id: str, lead: Lead, at: float) -> None:
        await self.kv.apply(self.begin_dial_ops(campaign, call_id, lead, at))

    async def end_dial(
        self, campaign: str, call_id: str, lead: Lead, *, at: float, who: str, detail: Mapping[str, Any]
    ) -> None:
        await self.kv.apply(self.end_dial_ops(campaign, call_id, lead, at=at, who=who, detail=detail))

    async def inflight(self, campaign: str) -> list[InFlight]:
        raw = await self.kv.hgetall(self._c(campaign, "inflight"))
        out = []
        for call_id, text in raw.items():
            d = json.loads(text)
            out.append(InFlight(call_id, d["lead"], d["at"]))
        return sorted(out, key=lambda f: (f.at, f.call_id))

    # --- the abandonment ledger ------------------------------------------------------

    def ledger_ops(self, campaign: str, entry: LedgerEntry, *, uid: str, keep_s: float) -> list[Op]:
        """``uid`` makes the entry a distinct member (two answers can share a time)."""
        key = self._c(campaign, "ledger")
        member = _dumps({"i": uid, "t": entry.at, "d": _num(entry.delay), "c": entry.cause, "f": entry.fp})
        return [
            ("ZADD", key, repr(entry.at), member),
            ("ZREMRANGEBYSCORE", key, "-inf", repr(entry.at - keep_s)),
        ]

    async def ledger_add(self, campaign: str, entry: LedgerEntry, *, uid: str, keep_s: float) -> None:
        await self.kv.apply(self.ledger_ops(campaign, entry, uid=uid, keep_s=keep_s))

    async def ledger(self, campaign: str, since: float) -> list[LedgerEntry]:
        out = []
        key = self._c(campaign, "ledger")
        members = await self.kv.zrangebyscore(key, since, math.inf)
        for text in members:
            d = json.loads(text)
            out.append(LedgerEntry(d["t"], d["d"], d["c"], d["f"]))
        return out

    # --- DNC -------------------------------------------------------------------------

    def _dnc_key(self, campaign: str | None) -> str:
        return f"{self.p}:dnc" if campaign is None else self._c(campaign, "dnc")

    async def dnc_add(
        self, numbers: Iterable[str], campaign: str | None, *, at: float, who: str, source: str
    ) -> int:
        """Add numbers atomically (staged, then merged in one transaction)."""
        staging = f"{self.p}:staging:{await self.kv.incr(f'{self.p}:staging-seq')}"
        count = 0
        try:
            batch: list[str] = []
            for number in numbers:
                batch.append(number)
                count += 1
                if len(batch) >= BATCH:
                    await self.kv.apply([("SADD", staging, *batch), ("EXPIRE", staging, STAGING_TTL_S)])
                    batch = []
                    await asyncio.sleep(0)
            if batch:
                await self.kv.apply([("SADD", staging, *batch), ("EXPIRE", staging, STAGING_TTL_S)])
            key = self._dnc_key(campaign)
            entity = "dnc" if campaign is None else f"dnc:{campaign}"
            ops: list[Op] = []
            if count:
                ops += [("SUNIONSTORE", key, key, staging), ("DEL", staging)]
            ops += self.audit_ops(entity, at, who, "add", {"numbers": count, "source": source})
            await self.kv.apply(ops)
        except BaseException:
            # Best effort: if the store itself is what failed, the key expires anyway.
            with contextlib.suppress(KvError):
                await self.kv.apply([("DEL", staging)])
            raise
        return count

    async def dnc_remove(self, number: str, campaign: str | None, *, at: float, who: str) -> bool:
        entity = "dnc" if campaign is None else f"dnc:{campaign}"
        ops: list[Op] = [("SREM", self._dnc_key(campaign), number)]
        ops += self.audit_ops(entity, at, who, "remove", {"number": number})
        result = await self.kv.apply(ops)
        return bool(result[0])

    async def dnc(self, campaign: str | None) -> set[str]:
        return await self.kv.smembers(self._dnc_key(campaign))

    async def dnc_has(self, number: str, campaign: str | None) -> bool:
        return await self.kv.sismember(self._dnc_key(campaign), number)

    # --- agents ----------------------------------------------------------------------

    def agent_ops(self, agent_id: str, state: str, reason: str | None, at: float) -> list[Op]:
        return [("HSET", f"{self.p}:agents", agent_id, _dumps({"state": state, "reason": reason, "at": at}))]

    async def save_agent(self, agent_id: str, state: str, reason: str | None, at: float) -> None:
        await self.kv.apply(self.agent_ops(agent_id, state, reason, at))

    async def agents(self) -> dict[str, tuple[str, str | None, float]]:
        raw = await self.kv.hgetall(f"{self.p}:agents")
        out = {}
        for agent_id, text in raw.items():
            d = json.loads(text)
            out[agent_id] = (d["state"], d["reason"], d["at"])
        return out

    # --- audit -----------------------------------------------------------------------

    async def audit(self, entity: str, *, limit: int = 1000) -> list[AuditEntry]:
        """The newest ``limit`` entries for an entity (``campaign:x``, ``lead:x:id``…), oldest first."""
        raw = await self.kv.lrange(f"{self.p}:audit:{entity}", -limit, -1)
        out = []
        for text in raw:
            d = json.loads(text)
            out.append(AuditEntry(d["at"], d["who"], d["what"], d["detail"]))
        return out

    async def add_audit(
        self, entity: str, *, at: float, who: str, what: str, detail: Mapping[str, Any]
    ) -> None:
        await self.kv.apply(self.audit_ops(entity, at, who, what, detail))
