"""Outbound campaigns in the live service: the dialer cores, kept durable in the store.

Why this layer: :class:`dialer.runner.CampaignRunner` and :class:`dialer.hopper.Hopper`
are IO-free and forget everything when the process dies; the campaign manager wraps
them so that every fact they produce reaches the :class:`ccd.store.Store` in the right
order, and rebuilds them from the store at start. It is the one place the REST API,
the CLI (through the API) and the AMI driver go through; it holds no asyncio task of
its own and never talks to Asterisk.

Ordering and durability. Writes go through a journal: each fact becomes a batch of
store operations, flushed in order by one writer. :meth:`OutboundManager.launch`
flushes before it returns its dials, so an attempt is on record before its Originate
is sent; outcomes are flushed behind (a crash in between finds the call still "in
flight" at restart, and it is settled as an attempt of unknown outcome: the lead is
not dialled again before its retry delay, which is the safe side).

Restart (:meth:`OutboundManager.load`): campaigns, leads (with attempts and states),
DNC lists, callbacks and the abandonment ledger's window come back from the store; the
per-number call history is rebuilt from the leads' attempts; calls that were in flight
are completed as ``failed`` attempts "outcome unknown: ccd restarted".
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import gc
import itertools
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import dialer.predictive
import dialer.vicidial  # noqa: F401  (registers its pacing policy)
from acd.errors import InputError
from acd.events import CallArrived
from ccd.kv import KvDataError, KvError, Op
from ccd.store import CampaignRecord, LedgerEntry, ListRecord, Store
from dialer.campaign import Campaign, parse_campaign
from dialer.compliance import AbandonLedger, CallHistory, DncList, HumanAnswer
from dialer.hopper import Hopper, HopperError
from dialer.imports import read_dnc, read_leads, text_lines
from dialer.leads import Attempt, Lead, LeadState, Outcome, normalise_number
from dialer.pacing import PACINGS
from dialer.runner import LATE_CONNECT, AgentPicture, CampaignRunner, Dial, DialState, RunnerError

log = logging.getLogger("ccd.outbound")

STATUSES = ("stopped", "running", "paused")
ACTIONS = {"start": "running", "pause": "paused", "stop": "stopped"}
MAX_UPLOAD = 512 * 2**20  # bytes: a lead file of several million rows
CHUNK = 1 << 16
MAX_LINE = 256 * 1024  # bytes: a row of 60 columns of MAX_FIELD would still fit
FREEZE_AFTER_LEADS = 50_000  # a list this big is frozen out of later collections
YIELD_EVERY = 1000  # leads handled between two returns to the event loop (a few ms)
MAX_PROBLEMS_SHOWN = 100  # per import report; the count is always exact
_LIST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


_HUMAN_KINDS = {Outcome.HUMAN: "connects", Outcome.ABANDONED: "abandons", Outcome.MACHINE: "machines"}


class OutboundError(Exception):
    """A request that cannot be carried out; ``status`` is the HTTP code it maps to."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class _GcPause:
    """No cyclic garbage collection while big lists are read and loaded.

    A list import creates hundreds of thousands of long-lived objects, and each full
    collection meanwhile scans them all with the GIL held: measured, 100–160 ms during
    which the event loop (AMI events, routing) cannot run. Collection is held off for
    the import; after a big one (``freeze_after``) the survivors are frozen out of later
    scans, as ``ccd serve`` does at start. Nested imports share one pause."""

    def __init__(self) -> None:
        self._holders = 0
        self._disabled = False
        self.freeze_after = False

    @contextlib.contextmanager
    def held(self) -> Iterator[_GcPause]:
        if self._holders == 0 and gc.isenabled():
            gc.disable()
            self._disabled = True
        self._holders += 1
        try:
            yield self
        finally:
            self._holders -= 1
            if self._holders == 0 and self._disabled:
                self._disabled = False
                gc.enable()
                if self.freeze_after:
                    gc.freeze()
            if self._holders == 0:
                self.freeze_after = False


GC_PAUSE = _GcPause()


class JournaledLedger(AbandonLedger):
    """An abandonment ledger that also lists what it records, for the store."""

    def __init__(self, window_s: float) -> None:
        super().__init__(window_s)
        self.journal: list[LedgerEntry] = []

    def record_answer(self, at: float, connect_delay_s: float | None, *, cause: str = "") -> HumanAnswer:
        self.journal.append(LedgerEntry(at, connect_delay_s, cause))
        return super().record_answer(at, connect_delay_s, cause=cause)

    def record_estimated_false_positives(self, at: float, count: float) -> None:
        self.journal.append(LedgerEntry(at, fp=count))
        super().record_estimated_false_positives(at, count)

    def replay(self, entries: Iterable[LedgerEntry]) -> None:
        for e in entries:
            if e.fp is not None:
                super().record_estimated_false_positives(e.at, e.fp)
            else:
                super().record_answer(e.at, e.delay, cause=e.cause)


@dataclass(eq=False)
class LiveCampaign:
    record: CampaignRecord
    campaign: Campaign
    hopper: Hopper
    runner: CampaignRunner
    ledger: JournaledLedger
    outcomes: Counter[str] = field(default_factory=Counter)  # all attempts ever, by outcome
    # Humans, connects, abandons and machines before this runner (from the attempts on
    # record at start, and from runners an update replaced); the runner counts the rest.
    base: Counter[str] = field(default_factory=Counter)

    def human_counts(self) -> dict[str, int]:
        t = self.runner.totals()
        b = self.base
        return {
            "humans": b["connects"] + b["abandons"] + t.humans,
            "connects": b["connects"] + t.connects,
            "abandons": b["abandons"] + t.abandons,
            "machines": b["machines"] + t.machines,
        }

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one list import at a time

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def status(self) -> str:
        return self.record.status


class OutboundManager:
    """Campaigns, lists, DNC and dialling state, durable in ``store``."""

    def __init__(self, store: Store, *, now: Callable[[], float], region: str = "US") -> None:
        self.store = store
        self.now = now
        self.region = region
        self.dnc = DncList(region=region)
        self.history = CallHistory()
        self.campaigns: dict[str, LiveCampaign] = {}
        self._calls: dict[str, tuple[LiveCampaign, str]] = {}  # call id -> (campaign, lead id)
        self._boot = 0
        self._uid = 0
        self._journal: list[Op] = []
        self._flushing: asyncio.Lock = asyncio.Lock()
        self.write_errors = 0
        self._builds: dict[str, int] = {}
        self._creating = asyncio.Lock()
        self.max_upload = MAX_UPLOAD
        # Numbers are validated in this many processes for a big list (one per core).
        self.import_workers = os.cpu_count() or 1

    # --- start ------------------------------------------------------------------------

    async def load(self) -> None:
        """Everything back from the store; calls that were in flight are settled."""
        self._boot = await self.store.boot()
        global_dnc = await self.store.dnc(None)
        self.dnc.add_all(global_dnc)
        for record in await self.store.campaigns():
            own_dnc = await self.store.dnc(record.name)
            self.dnc.add_all(own_dnc, record.name)
            live = self._build(record)
            leads = [lead async for _, lead in self.store.leads(record.name)]
            for lead in leads:
                for a in lead.attempts:
                    self.history.record_dial(lead.number, a.at)
                    live.outcomes[a.outcome.value] += 1
                    late = a.outcome is Outcome.HUMAN and a.detail == LATE_CONNECT
                    kind = "abandons" if late else _HUMAN_KINDS.get(a.outcome)
                    if kind is not None:
                        live.base[kind] += 1
                    if a.outcome is Outcome.ABANDONED or late:
                        self.history.record_abandon(lead.number, a.finished_at)
            now = self.now()
            for i in range(0, len(leads), YIELD_EVERY):  # the HTTP API stays responsive meanwhile
                live.hopper.load(leads[i : i + YIELD_EVERY], now)
                await asyncio.sleep(0)
            live.ledger.replay(await self.store.ledger(record.name, now - live.campaign.window_s))
            for flight in await self.store.inflight(record.name):
                self._settle_lost(live, flight.call_id, flight.lead_id, flight.at, now)
            self.campaigns[record.name] = live
            # Lead states are stored when a DNC stops them; this catches a number listed
            # while its lead was being dialled (stopped when next served, not stored).
            self._apply_dnc(global_dnc, None, "ccd", journal=False, only=live)
            self._apply_dnc(own_dnc, record.name, "ccd", journal=False, only=live)
        await self.flush()

    def _settle_lost(
        self, live: LiveCampaign, call_id: str, lead_id: str, launched: float, now: float
    ) -> None:
        if lead_id not in live.hopper or live.hopper.get(lead_id).state is not LeadState.DIALLING:
            self._journal.append(("HDEL", self.store._c(live.name, "inflight"), call_id))
            return
        self.history.record_dial(live.hopper.get(lead_id).number, launched)
        detail = "outcome unknown: ccd restarted while the call was in progress"
        lead = live.hopper.complete(
            lead_id, Attempt(launched, Outcome.FAILED, None, detail, max(now, launched))
        )
        live.outcomes[Outcome.FAILED.value] += 1
        self._journal += self.store.end_dial_ops(
            live.name,
            call_id,
            lead,
            at=now,
            who="ccd",
            detail={"call": call_id, "outcome": "failed", "detail": detail},
        )
        log.warning(
            "campaign %s: call %s to lead %s was in flight at restart: %s",
            live.name,
            call_id,
            lead_id,
            detail,
        )

    def _parse(self, spec: Mapping[str, Any], where: str) -> Campaign:
        return parse_campaign(spec, where, known_modes=sorted(PACINGS))

    def _build(self, record: CampaignRecord) -> LiveCampaign:
        campaign = self._parse(record.spec, f"campaign {record.name}")
        hopper = Hopper(campaign, dnc=self.dnc, history=self.history)
        ledger = JournaledLedger(campaign.window_s)
        runner = CampaignRunner(
            campaign,
            hopper,
            ledger=ledger,
            acd_queue=f"outbound:{campaign.name}",
            call_prefix=self._call_prefix(campaign.name),
        )
        return LiveCampaign(record, campaign, hopper, runner, ledger)

    def _call_prefix(self, name: str) -> str:
        """``<campaign>-<boot>``, and ``…u<n>`` for a runner rebuilt by an update: call ids
        (Asterisk's Uniqueids) must never repeat, in this run or any other."""
        n = self._builds[name] = self._builds.get(name, -1) + 1
        return f"{name}-{self._boot}" if n == 0 else f"{name}-{self._boot}u{n}"

    # --- the journal ------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every fact noted so far, in order (one transaction per flush)."""
        async with self._flushing:
            while self._journal:
                ops, self._journal = self._journal, []
                try:
                    await self.store.kv.apply(ops)
                except KvDataError:
                    # Applied but for a refused command: resending cannot help, and
                    # keeping it would stop every later write. Said loudly instead.
                    self.write_errors += 1
                    log.error("store: a batch of %d writes was refused in part; dropped", len(ops))
                    raise
                except KvError:
                    self.write_errors += 1
                    self._journal[:0] = ops  # kept, in order, for the next flush
                    raise

    def note(self, ops: list[Op]) -> None:
        """Journal facts of the service's own (agents' pauses) behind the dialler's."""
        self._journal += ops

    def _ledger_ops(self, live: LiveCampaign) -> None:
        for entry in live.ledger.journal:
            self._uid += 1
            self._journal += self.store.ledger_ops(
                live.name, entry, uid=f"{self._boot}-{self._uid}", keep_s=live.campaign.window_s
            )
        live.ledger.journal.clear()

    # --- campaigns ----------------------------------------------------------------------

    def get(self, name: str) -> LiveCampaign:
        live = self.campaigns.get(name)
        if live is None:
            raise OutboundError(f"unknown campaign {name!r}", 404)
        return live

    async def create(self, spec: Mapping[str, Any], who: str) -> LiveCampaign:
        name = spec.get("name")
        if not isinstance(name, str):
            raise InputError("name", "is required (letters, digits, '_', '.', '-')")
        self._parse(spec, "campaign")  # every key checked before anything is stored
        async with self._creating:  # two requests creating the same name: one wins
            if name in self.campaigns:
                raise OutboundError(f"campaign {name!r} already exists", 409)
            at = self.now()
            record = CampaignRecord(name, dict(spec), "stopped", at, who, at, who)
            live = self._build(record)
            await self.store.put_campaign(record, what="create", detail={"spec": dict(spec)})
            self.campaigns[name] = live
            return live

    async def update(self, name: str, changes: Mapping[str, Any], who: str) -> LiveCampaign:
        """New settings (merged over the old ones); only while the campaign is not dialling.

        Waits for a list import in progress (the campaign's lock, which the rebuilt
        campaign keeps), and writes every fact noted so far before the ledger is read
        back for the new settings' window."""
        live = self.get(name)
        async with live.lock:
            live = self.get(name)
            if live.status == "running":
                raise OutboundError(f"campaign {name!r} is running: pause or stop it before changing it", 409)
            if "name" in changes and changes["name"] != name:
                raise InputError("name", "a campaign cannot be renamed")
            spec = {**live.record.spec, **changes}
            self._parse(spec, "campaign")
            leads = [live.hopper.get(lid) for lid in live.hopper.lead_ids()]
            if any(lead.state is LeadState.DIALLING for lead in leads):
                raise OutboundError(
                    f"campaign {name!r} still has calls in progress: try again when they end", 409
                )
            await self.flush()
            at = self.now()
            record = CampaignRecord(
                name, spec, live.status, live.record.created_at, live.record.created_by, at, who
            )
            fresh = self._build(record)
            # Same leads, same books: move the hopper's leads over with their states.
            fresh.hopper.load(leads, at)
            fresh.ledger.replay(await self.store.ledger(name, at - fresh.campaign.window_s))
            fresh.outcomes = live.outcomes
            fresh.base = Counter(live.human_counts())
            del fresh.base["humans"]
            fresh.lock = live.lock
            await self.store.put_campaign(record, what="update", detail={"changes": dict(changes)})
            self.campaigns[name] = fresh
            return fresh

    async def set_status(self, name: str, action: str, who: str) -> LiveCampaign:
        live = self.get(name)
        status = ACTIONS.get(action)
        if status is None:
            raise OutboundError(f"no campaign action {action!r} (known: {', '.join(ACTIONS)})", 404)
        if live.status == status:
            return live
        at = self.now()
        r = live.record
        record = CampaignRecord(r.name, r.spec, status, r.created_at, r.created_by, at, who)
        # Stored first: a stop the store did not take must not look done (it would
        # come back running after a restart).
        await self.store.put_campaign(record, what=action, detail={"from": r.status, "to": status})
        self.get(name).record = record
        return self.get(name)

    # --- lists ------------------------------------------------------------------------

    async def import_leads(
        self,
        name: str,
        chunks: AsyncIterable[bytes],
        *,
        source: str,
        who: str,
        list_id: str | None = None,
    ) -> dict[str, Any]:
        """Read a CSV list and store it atomically; bad rows reported, good rows in.

        Numbers already in the campaign (from an earlier list) are merged, not doubled.
        One import per campaign at a time: concurrent uploads wait their turn."""
        live = self.get(name)
        async with live.lock:
            with GC_PAUSE.held() as pause:
                report = await self._import_leads(live, chunks, source=source, who=who, list_id=list_id)
                pause.freeze_after |= report["imported"] >= FREEZE_AFTER_LEADS
                return report

    async def _import_leads(
        self, live: LiveCampaign, chunks: AsyncIterable[bytes], *, source: str, who: str, list_id: str | None
    ) -> dict[str, Any]:
        name = live.name
        at = self.now()
        taken = {r.list_id for r in await self.store.lists(name)}
        lid = list_id or next(f"list{n}" for n in itertools.count(len(taken) + 1) if f"list{n}" not in taken)
        if not lid or len(lid) > 64 or not set(lid) <= _LIST_ID_CHARS:
            raise InputError("list", f"{lid!r}: use letters, digits, '_', '.', '-' (at most 64)")
        if any(r.list_id == lid for r in await self.store.lists(name)):
            raise OutboundError(f"campaign {name!r}: list {lid!r} is already imported", 409)
        with await _spool(chunks, self.max_upload, source) as f:
            # A big list takes seconds to read: off the loop, so calls keep flowing.
            read = await asyncio.to_thread(
                read_leads,
                text_lines(iter(lambda: f.read(CHUNK), b""), source=source),
                source=source,
                region=live.campaign.default_region,
                id_prefix=f"{lid}-",
                workers=self.import_workers,
            )
        fresh: list[Lead] = []
        merged = read.merged
        clashes = []
        for k, lead in enumerate(read.leads):
            if live.hopper.has_number(lead.number):
                merged += 1
            elif lead.lead_id in live.hopper:
                clashes.append(lead.lead_id)
            else:
                fresh.append(lead)
            if k % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a million leads: let AMI events through meanwhile
        record = ListRecord(
            lid, source, read.rows, len(fresh), merged, len(read.problems) + len(clashes), at, who
        )
        problems = [str(p) for p in read.problems[:MAX_PROBLEMS_SHOWN]]
        problems += [f"lead_id {c!r} is already in the campaign" for c in clashes[: MAX_PROBLEMS_SHOWN // 2]]
        await self.store.import_list(name, record, fresh, detail={"problems_shown": problems[:20]})
        for i in range(0, len(fresh), YIELD_EVERY):
            live.hopper.load(fresh[i : i + YIELD_EVERY], max(at, self.now()))
            await asyncio.sleep(0)
        return {
            "campaign": name,
            "list": lid,
            "rows": read.rows,
            "imported": len(fresh),
            "merged": merged,
            "rejected": record.problems,
            "problems": problems,
        }

    async def import_dnc(
        self, campaign: str | None, chunks: AsyncIterable[bytes], *, source: str, who: str
    ) -> dict[str, Any]:
        if campaign is not None:
            self.get(campaign)
        with await _spool(chunks, self.max_upload, source) as f:
            read = await asyncio.to_thread(
                read_dnc,
                text_lines(iter(lambda: f.read(CHUNK), b""), source=source),
                source=source,
                region=self.region,
            )
        await self.store.dnc_add(read.numbers, campaign, at=self.now(), who=who, source=source)
        stopped = self._apply_dnc(read.numbers, campaign, who)
        await self.flush()
        return {
            "campaign": campaign,
            "rows": read.rows,
            "added": len(read.numbers),
            "leads_stopped": stopped,
            "rejected": len(read.problems),
            "problems": [str(p) for p in read.problems[:MAX_PROBLEMS_SHOWN]],
        }

    def _apply_dnc(
        self,
        numbers: Iterable[str],
        campaign: str | None,
        who: str,
        *,
        journal: bool = True,
        only: LiveCampaign | None = None,
    ) -> int:
        """Stop the leads with these numbers now (and say so on each lead's record)."""
        stopped = 0
        if only is not None:
            targets = [only]
        else:
            targets = list(self.campaigns.values()) if campaign is None else [self.get(campaign)]
        at = self.now()
        for number in numbers:
            self.dnc.add(number, campaign)
            for live in targets:
                if not live.hopper.has_number(number):
                    continue
                before = {lid: live.hopper.get(lid).state for lid in live.hopper.leads_with_number(number)}
                stopped += live.hopper.mark_dnc(number, campaign)
                for lid, state in before.items():
                    lead = live.hopper.get(lid)
                    if journal and lead.state is not state:
                        self._journal += self.store.lead_ops(live.name, lead)
                        change = {"from": state.value, "detail": lead.detail}
                        self._journal += self.store.audit_ops(
                            f"lead:{live.name}:{lid}", at, who, "dnc", change
                        )
        return stopped

    async def add_dnc(self, number: str, campaign: str | None, who: str) -> dict[str, Any]:
        if campaign is not None:
            self.get(campaign)
        e164 = normalise_number(number, region=self.region, where="number")
        await self.store.dnc_add([e164], campaign, at=self.now(), who=who, source="api")
        stopped = self._apply_dnc([e164], campaign, who)
        await self.flush()
        return {"number": e164, "campaign": campaign, "leads_stopped": stopped}

    async def remove_dnc(self, number: str, campaign: str | None, who: str) -> dict[str, Any]:
        if campaign is not None:
            self.get(campaign)
        e164 = normalise_number(number, region=self.region, where="number")
        removed = await self.store.dnc_remove(e164, campaign, at=self.now(), who=who)
        if not removed:
            raise OutboundError(f"{e164} is not on this DNC list", 404)
        self.dnc.remove(e164, campaign)
        # Leads stopped by it stay stopped: a DNC stop is a fact about the past.
        return {"number": e164, "campaign": campaign, "removed": True}

    # --- leads and callbacks ----------------------------------------------------------

    def _lead(self, live: LiveCampaign, lead_id: str) -> Lead:
        if lead_id not in live.hopper:
            raise OutboundError(f"campaign {live.name!r} has no lead {lead_id!r}", 404)
        return live.hopper.get(lead_id)

    async def lead_view(self, name: str, lead_id: str) -> dict[str, Any]:
        live = self.get(name)
        lead = self._lead(live, lead_id)
        why = live.hopper.why(lead_id, self.now())
        trail = await self.store.audit(f"lead:{name}:{lead_id}")
        return {
            "campaign": name,
            "id": lead.lead_id,
            "number": lead.number,
            "zones": list(lead.zones),
            "priority": lead.priority,
            "data": dict(lead.data),
            "state": lead.state.value,
            "detail": lead.detail,
            "next_due": lead.next_due,
            "callback_at": lead.callback_at,
            "callback_agent": lead.callback_agent,
            "attempts": [
                {
                    "at": a.at,
                    "outcome": a.outcome.value,
                    "agent": a.agent_id,
                    "detail": a.detail,
                    "ended_at": a.ended_at,
                }
                for a in lead.attempts
            ],
            "why_not_dialled": {"reason": why.reason.value, "until": why.until, "detail": why.detail},
            "audit": [{"at": e.at, "who": e.who, "what": e.what, "detail": dict(e.detail)} for e in trail],
        }

    def why(self, name: str, lead_id: str) -> dict[str, Any]:
        live = self.get(name)
        self._lead(live, lead_id)
        refusal = live.hopper.why(lead_id, self.now())
        return {
            "lead": lead_id,
            "reason": refusal.reason.value,
            "until": refusal.until,
            "detail": refusal.detail,
            "text": str(refusal),
        }

    async def schedule_callback(
        self, name: str, lead_id: str, due: float, agent_id: str | None, who: str
    ) -> dict[str, Any]:
        live = self.get(name)
        self._lead(live, lead_id)
        if not math.isfinite(due):
            raise InputError("at", "must be a time")
        try:
            lead = live.hopper.schedule_callback(lead_id, due, agent_id)
        except HopperError as exc:
            raise OutboundError(str(exc), 409) from None
        # Through the journal, behind any older snapshot of this lead still to be written.
        self._journal += self.store.lead_ops(name, lead)
        detail = {"at": due, "agent": agent_id}
        self._journal += self.store.audit_ops(f"lead:{name}:{lead_id}", self.now(), who, "callback", detail)
        await self.flush()
        return {"lead": lead_id, "callback_at": due, "agent": agent_id}

    def callbacks(self, name: str) -> list[dict[str, Any]]:
        live = self.get(name)
        out = []
        for lead_id in live.hopper.lead_ids():
            lead = live.hopper.get(lead_id)
            if lead.callback_at is not None:
                out.append(
                    {
                        "lead": lead_id,
                        "number": lead.number,
                        "at": lead.callback_at,
                        "agent": lead.callback_agent,
                    }
                )
        return sorted(out, key=lambda c: (c["at"], c["lead"]))

    # --- progress -----------------------------------------------------------------------

    def progress(self, name: str, picture: AgentPicture | None = None) -> dict[str, Any]:
        live = self.get(name)
        at = self.now()
        runner = live.runner
        picture = picture if picture is not None else AgentPicture(0, 0)
        view = runner.view(at, picture)
        humans_w, abandons_w = live.ledger.counts(at)
        summary = live.hopper.summary(at)
        outcomes = dict(live.outcomes)
        up = runner.in_progress()
        placing = up["ringing"] + up["waiting"]  # talking calls are among the busy agents
        working = picture.logged_in
        return {
            "campaign": name,
            "status": live.status,
            "dial_mode": live.campaign.dial_mode,
            "dials": sum(outcomes.values()) + len(self._calls_of(live)),
            "outcomes": outcomes,
            **live.human_counts(),
            "in_progress": up,
            "abandon_rate": {
                "window_s": live.campaign.window_s,
                "humans": humans_w,
                "abandons": abandons_w,
                "rate": (abandons_w / humans_w) if humans_w else 0.0,
                "target": live.campaign.abandon_target,
            },
            "dial_level": (placing + len(picture.busy)) / working if working else 0.0,
            "agents": {"logged_in": picture.logged_in, "ready": picture.ready},
            "hopper_size": view.hopper_size,
            "leads": {
                "total": summary.total,
                "by_state": dict(summary.by_state),
                "waiting": dict(summary.waiting),
            },
        }

    def _calls_of(self, live: LiveCampaign) -> list[str]:
        return [cid for cid, (c, _) in self._calls.items() if c is live]

    # --- dialling (the AMI driver's side) -------------------------------------------------

    def running(self) -> list[LiveCampaign]:
        return [c for c in self.campaigns.values() if c.status == "running"]

    async def launch(
        self,
        name: str,
        at: float,
        picture: AgentPicture,
        *,
        competing_rate_per_s: float = 0.0,
        max_dials: int | None = None,
    ) -> list[Dial]:
        """Pace one campaign; every dial returned is already on record in the store.

        If the store cannot take the record, the dials are withdrawn (their leads go
        back undialled, no attempt counted) and KvError is raised: a call the store
        does not know of must not go out, since a restart could not account for it."""
        live = self.get(name)
        if live.status != "running":
            return []
        await self.flush()  # earlier facts first; a store that is down stops pacing here
        dials = live.runner.pace(at, picture, competing_rate_per_s=competing_rate_per_s, max_dials=max_dials)
        if not dials:
            return dials
        ops: list[Op] = []
        for d in dials:
            ops += self.store.begin_dial_ops(name, d.call_id, live.hopper.get(d.lead_id), at)
        try:
            await self.store.kv.apply(ops)
        except KvError:
            self.write_errors += 1
            for d in dials:
                live.runner.withdraw(at, d.call_id)
            raise
        for d in dials:
            self._calls[d.call_id] = (live, d.lead_id)
        return dials

    def owner(self, call_id: str) -> LiveCampaign | None:
        entry = self._calls.get(call_id)
        return None if entry is None else entry[0]

    def state_of(self, call_id: str) -> DialState | None:
        live = self.owner(call_id)
        return None if live is None else live.runner.state_of(call_id)

    def answered(self, at: float, call_id: str, *, human: bool) -> CallArrived | None:
        live, _ = self._calls[call_id]
        arrived = live.runner.answered(at, call_id, human=human)
        self._ledger_ops(live)
        return arrived

    def connected(self, at: float, call_id: str, agent_id: str) -> None:
        live, _ = self._calls[call_id]
        live.runner.connected(at, call_id, agent_id)
        self._ledger_ops(live)

    def abandoned(self, at: float, call_id: str, cause: str) -> None:
        live, _ = self._calls[call_id]
        live.runner.abandoned(at, call_id, cause)
        self._ledger_ops(live)
        self._completed(live, call_id, at, Outcome.ABANDONED, cause)

    def failed(self, at: float, call_id: str, outcome: Outcome, detail: str) -> None:
        live, _ = self._calls[call_id]
        live.runner.failed(at, call_id, outcome, detail)
        self._completed(live, call_id, at, outcome, detail)

    def ended(self, at: float, call_id: str) -> None:
        live, _ = self._calls[call_id]
        state = live.runner.state_of(call_id)
        live.runner.ended(at, call_id)
        outcome = Outcome.HUMAN if state is DialState.CONNECTED else Outcome.MACHINE
        self._completed(live, call_id, at, outcome, "")

    def _completed(self, live: LiveCampaign, call_id: str, at: float, outcome: Outcome, detail: str) -> None:
        _, lead_id = self._calls.pop(call_id)
        lead = live.hopper.get(lead_id)
        live.outcomes[outcome.value] += 1
        who = lead.attempts[-1].agent_id if lead.attempts and lead.attempts[-1].agent_id else "dialer"
        self._journal += self.store.end_dial_ops(
            live.name,
            call_id,
            lead,
            at=at,
            who=who,
            detail={"call": call_id, "outcome": outcome.value, "detail": detail, "state": lead.state.value},
        )

    def active_calls(self) -> list[str]:
        return list(self._calls)

    def call_lead(self, call_id: str) -> Lead | None:
        entry = self._calls.get(call_id)
        return None if entry is None else entry[0].hopper.get(entry[1])


async def _spool(chunks: AsyncIterable[bytes], limit: int, source: str) -> IO[bytes]:
    """An upload on disk (memory stays flat), refused as soon as it cannot be a list.

    Checked while it streams in, so garbage is refused after its first bad bytes, not
    after a gigabyte of them: the size limit, UTF-8, and a line length no lead list
    has (a CSV reader would only find out at the end of such a line)."""
    f = tempfile.TemporaryFile()  # noqa: SIM115 (returned open, closed by the caller's with)
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    line = 1
    open_line = 0  # bytes since the last newline
    try:
        async for chunk in chunks:
            if size + len(chunk) > limit:
                raise OutboundError(f"the upload is larger than the limit of {limit // 2**20} MiB", 413)
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = line + chunk.count(b"\n", 0, exc.start)
                problem = "is not UTF-8 text (save the file as UTF-8)"
                raise InputError(f"{source}: line {at}", problem) from None
            newlines = chunk.count(b"\n")
            line += newlines
            open_line = open_line + len(chunk) if newlines == 0 else len(chunk) - chunk.rfind(b"\n") - 1
            if open_line > MAX_LINE:
                raise InputError(
                    f"{source}: line {line}", f"longer than {MAX_LINE // 1024} KiB: this is not a CSV list"
                )
            size += len(chunk)
            f.write(chunk)
    except BaseException:
        f.close()
        raise
    f.seek(0)
    return f


__all__ = ["ACTIONS", "STATUSES", "LiveCampaign", "OutboundError", "OutboundManager", "RunnerError"]
