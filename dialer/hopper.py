"""The hopper: which lead to dial next, out of a million, without looking at them all.

Order. Among the leads that may be dialled now, agent-scheduled callbacks first, then
higher ``priority``, then the longest due, then load order. "May be dialled now" means
due (retry delays and callbacks have passed) and inside the calling window in the
callee's local time; the per-number rules (call limits, UK 72 h, DNC) are checked with
:func:`dialer.compliance.check_dial` on the chosen lead at the moment it is served, and
a refused lead is rescheduled for when its rule lifts (or finished, for DNC).

Data structures (STYLE §12: a selection never scans leads):

* **zone groups** — leads are grouped by their tuple of candidate zones; the campaign's
  calling hours make every lead of a group open or closed together. Each group has a
  sorted list of its *due* leads by the order above.
* a **calendar** heap of group window changes (next opening for a closed group, next
  closing for an open one, computed by :mod:`dialer.compliance`): a group outside its
  window costs nothing until its window opens, and then one entry moves.
* a **front** sorted list holding the best due lead of every open group: the next lead
  is its head, O(log n).
* a **pending** heap of leads not yet due (retry delays, callbacks, call limits), moved
  into their group when due; entries are deleted lazily (each carries a version).

Per selection: a few O(log n) list and heap operations plus one ``check_dial``; a group
opening or closing costs O(log n) however many leads it holds. Counts per state and per
reason are kept as the leads move, so :meth:`Hopper.summary` is O(groups) and
:meth:`Hopper.why` O(groups · log n): an empty hopper is never a mystery.

Lifecycle: ``load`` → ``next(at)`` (the lead is being dialled, its dial is recorded
in the per-number history) → ``complete(lead_id, attempt)`` (retry rules, max attempts,
or done). Callbacks, DNC marking and removal may come at any time. Times are POSIX
seconds and must not go backwards (like the ACD core's).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from sortedcontainers import SortedList

from acd.errors import InputError
from dialer.campaign import DAY_S, UK_NO_RECALL_S, Campaign
from dialer.compliance import (
    CallHistory,
    DncList,
    Reason,
    Refusal,
    check_dial,
    local_time,
    next_local_day_open,
    utc_time,
    window_next_close,
    window_next_open,
    window_open,
)
from dialer.leads import FINAL_STATES, Attempt, Lead, LeadState, Outcome

# (callbacks first: 0, -priority, due, load sequence, lead id)
Key = tuple[int, int, float, int, str]


class HopperError(Exception):
    """The driver misused the hopper (completing a lead that is not being dialled)."""


class _Place(Enum):
    NONE = 0  # dialling or finished
    PENDING = 1  # not yet due
    READY = 2  # due, in its group's sorted list
    PARKED = 3  # due, but the campaign's hours never open in its zones


class _Group:
    __slots__ = ("front", "gid", "never", "open", "ready", "version", "zones")

    def __init__(self, gid: int, zones: tuple[str, ...]) -> None:
        self.gid = gid
        self.zones = zones
        self.ready: SortedList[Key] = SortedList()
        self.open = False
        self.never = False
        self.front: Key | None = None
        self.version = 0


class _Slot:
    __slots__ = (
        "detail",
        "group",
        "key",
        "lead",
        "place",
        "reason",
        "served_at",
        "served_callback",
        "served_from",
        "version",
    )

    def __init__(self, lead: Lead, group: _Group) -> None:
        self.lead = lead
        self.group = group
        self.key: Key | None = None
        self.place = _Place.NONE
        self.reason = Reason.QUEUED
        self.detail = ""
        self.version = 0
        self.served_at = 0.0
        self.served_callback: float | None = None  # what next() cleared, for release()
        self.served_from = LeadState.NEW


@dataclass(frozen=True, slots=True)
class HopperSummary:
    """Where every lead is: counts by state, and why the waiting ones are waiting."""

    at: float
    total: int
    by_state: Mapping[str, int]
    waiting: Mapping[str, int]  # not dialable now, by Reason value
    due_now: int  # inside their window and due (per-number rules are checked when served)
    next_deadline: float | None = None
    lines: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return "\n".join(self.lines)


class Hopper:
    """Serves one campaign's leads in order, within the rules (see module docstring)."""

    def __init__(
        self, campaign: Campaign, *, dnc: DncList | None = None, history: CallHistory | None = None
    ) -> None:
        self.campaign = campaign
        self.dnc = dnc if dnc is not None else DncList(region=campaign.default_region)
        self.history = history if history is not None else CallHistory()
        self._slots: dict[str, _Slot] = {}
        self._by_number: dict[str, list[str]] = {}
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._group_list: list[_Group] = []
        self._front: SortedList[Key] = SortedList()
        self._pending: list[tuple[float, int, str]] = []
        self._calendar: list[tuple[float, int, int]] = []
        self._versions = itertools.count(1)
        self._seq = itertools.count()
        self._now = -math.inf
        self._states: Counter[LeadState] = Counter()
        self._waiting: Counter[Reason] = Counter()

    # --- queries -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self._slots

    def has_number(self, e164: str) -> bool:
        """Whether a lead of this hopper has this number (list imports merge on it)."""
        return e164 in self._by_number

    def leads_with_number(self, e164: str) -> list[str]:
        return list(self._by_number.get(e164, ()))

    def lead_ids(self) -> list[str]:
        return list(self._slots)

    def get(self, lead_id: str) -> Lead:
        return self._slot(lead_id).lead

    def next_deadline(self) -> float | None:
        """When the next lead may become dialable (a due time or a window change); may
        be early (entries are deleted lazily), never late."""
        times = [heap[0][0] for heap in (self._pending, self._calendar) if heap]
        return min(times) if times else None

    # --- loading -----------------------------------------------------------------

    def load(self, leads: Iterable[Lead], at: float) -> int:
        """Add leads (new ones are due at ``at`` unless they carry ``next_due``)."""
        self._advance(at)
        fresh: dict[_Group, list[Key]] = {}
        pending = []
        count = 0
        for lead in leads:
            if lead.lead_id in self._slots:
                raise InputError(f"lead {lead.lead_id}", "is loaded twice")
            group = self._group(lead.zones)
            slot = _Slot(lead, group)
            self._slots[lead.lead_id] = slot
            self._by_number.setdefault(lead.number, []).append(lead.lead_id)
            self._states[lead.state] += 1
            count += 1
            if lead.state in FINAL_STATES or lead.state is LeadState.DIALLING:
                continue  # a restart leaves a dialling lead for its driver to complete
            due = lead.callback_at if lead.callback_at is not None else lead.next_due
            due = self._now if due is None else due
            lead.next_due = due
            if due <= self._now:
                slot.key = self._key(lead, due)
                slot.place = _Place.READY
                fresh.setdefault(group, []).append(slot.key)
            else:
                slot.reason, slot.detail = self._pending_reason(lead)
                slot.place = _Place.PENDING
                self._waiting[slot.reason] += 1
                pending.append((due, slot.version, lead.lead_id))
        for group, keys in fresh.items():
            group.ready.update(keys)
            self._set_front(group)
        if len(pending) > len(self._pending):
            self._pending.extend(pending)
            heapq.heapify(self._pending)
        else:
            for entry in pending:
                heapq.heappush(self._pending, entry)
        return count

    # --- serving -----------------------------------------------------------------

    def next(self, at: float) -> Lead | None:
        """The lead to dial now (marked dialling, its dial recorded), or None."""
        self._advance(at)
        front = self._front
        while front:
            key = front.pop(0)
            slot = self._slots[key[4]]
            group = slot.group
            group.ready.remove(key)
            group.front = None
            self._set_front(group)
            slot.place = _Place.NONE
            slot.key = None
            lead = slot.lead
            refusal = check_dial(lead, self.campaign, self.dnc, self.history, at)
            if refusal is None:
                slot.served_from = lead.state
                slot.served_callback = lead.callback_at
                self._move(slot, LeadState.DIALLING)
                slot.served_at = at
                lead.callback_at = None  # this call honours the callback
                lead.next_due = None
                self.history.record_dial(lead.number, at)
                return lead
            self._refused(slot, refusal)
        return None

    def complete(self, lead_id: str, attempt: Attempt) -> Lead:
        """The call to a lead being dialled is over: record it, then retry or finish."""
        slot = self._slot(lead_id)
        lead = slot.lead
        if lead.state is not LeadState.DIALLING:
            raise HopperError(f"lead {lead_id} is {lead.state}, not being dialled")
        lead.record(attempt)
        ended = attempt.finished_at  # the clock moves with next(): a call's end may be reported early
        if attempt.outcome is Outcome.ABANDONED:
            self.history.record_abandon(lead.number, ended)
        campaign = self.campaign
        if lead.callback_at is not None:  # the agent booked a callback during the call
            self._move(slot, LeadState.SCHEDULED)
            self._schedule(slot, lead.callback_at, Reason.CALLBACK, self._callback_text(lead))
            return lead
        lead.callback_agent = None
        rule = campaign.retry_rule(attempt.outcome)
        if attempt.outcome is Outcome.INVALID:
            self._move(
                slot, LeadState.INVALID, attempt.detail or "the network says the number does not exist"
            )
        elif rule.final:
            self._move(slot, LeadState.DONE, f"{attempt.outcome} (no retry)")
        elif len(lead.attempts) >= campaign.max_attempts:
            self._move(slot, LeadState.MAX_ATTEMPTS, f"{len(lead.attempts)}/{campaign.max_attempts} attempts")
        else:
            if rule.next_day:
                due = next_local_day_open(lead, campaign, ended)
                due = ended + DAY_S if due is None else due
            else:
                due = ended + rule.delay_s
            if attempt.outcome is Outcome.ABANDONED and campaign.uk_rules:
                due = max(due, ended + UK_NO_RECALL_S)
            self._move(slot, LeadState.SCHEDULED)
            text = f"retry delay after {attempt.outcome} ({rule.describe()}) until {utc_time(due)}"
            self._schedule(slot, due, Reason.RETRY_DELAY, text)
        return lead

    def served_callback(self, lead_id: str) -> float | None:
        """When the callback a lead being dialled honours fell due (None: not a callback)."""
        slot = self._slot(lead_id)
        return slot.served_callback if slot.lead.state is LeadState.DIALLING else None

    def release(self, lead_id: str, at: float, *, due: float | None = None) -> Lead:
        """Give back a lead :meth:`next` served that was not dialled after all.

        For a preview the agent skipped, or a callback kept for an agent who is busy
        right now. No attempt is recorded and the dial is withdrawn from the number's
        history (call limits count calls made, not leads looked at). The lead is due
        again at ``due`` (default: now), ordered as any lead due then; a callback stays
        the callback booked for its original time, for the same agent.
        """
        slot = self._slot(lead_id)
        lead = slot.lead
        if lead.state is not LeadState.DIALLING:
            raise HopperError(f"lead {lead_id} is {lead.state}, not being dialled")
        if at < slot.served_at:
            raise HopperError(f"lead {lead_id} cannot be released at {at} before it was served")
        self._advance(at)
        when = max(self._now, at) if due is None else due
        if not math.isfinite(when):
            raise InputError(f"lead {lead_id}.release", f"{due!r} is not a time")
        self.history.withdraw_dial(lead.number, slot.served_at)
        if slot.served_callback is not None:
            # Still the callback booked for then (its grace counts from there); it is
            # only looked at again at ``when``.
            lead.callback_at = slot.served_callback
        self._move(slot, slot.served_from)
        reason, detail = (
            (Reason.CALLBACK, self._callback_text(lead))
            if lead.callback_at is not None
            else (Reason.RETRY_DELAY, f"released undialled, due at {utc_time(when)}")
        )
        self._schedule(slot, when, reason, detail)
        return lead

    def schedule_callback(self, lead_id: str, due: float, agent_id: str | None = None) -> Lead:
        """An agent promised to call back at ``due`` (to be put through to ``agent_id``
        when that agent is free; the driver decides). Callbacks go before other leads
        and do not count against max attempts, but obey windows, limits and DNC."""
        slot = self._slot(lead_id)
        lead = slot.lead
        if not math.isfinite(due):
            raise InputError(f"lead {lead_id}.callback", f"{due!r} is not a time")
        if lead.state in (LeadState.DNC, LeadState.INVALID):
            raise InputError(f"lead {lead_id}.callback", f"cannot call back a lead in state {lead.state}")
        lead.callback_at = due
        lead.callback_agent = agent_id
        if lead.state is LeadState.DIALLING:
            return lead  # applied when the call completes
        if lead.state is not LeadState.NEW:
            self._move(slot, LeadState.SCHEDULED)
        self._schedule(slot, due, Reason.CALLBACK, self._callback_text(lead))
        return lead

    def mark_dnc(self, number: str, campaign: str | None = None) -> int:
        """Put ``number`` on the DNC list (global, or for ``campaign``) and finish every
        lead of this hopper with it at once. Returns how many leads were stopped; one
        being dialled right now is stopped when it is next served (check_dial)."""
        e164 = self.dnc.add(number, campaign)
        if campaign is not None and campaign != self.campaign.name:
            return 0
        stopped = 0
        for lead_id in self._by_number.get(e164, ()):
            slot = self._slots[lead_id]
            if slot.lead.state in (LeadState.DNC, LeadState.INVALID, LeadState.DIALLING):
                continue
            self._detach(slot)
            self._move(slot, LeadState.DNC, "global DNC" if campaign is None else f"campaign {campaign} DNC")
            stopped += 1
        return stopped

    def remove(self, lead_id: str) -> Lead:
        """Take a lead out of the hopper for good (it is forgotten, not finished)."""
        slot = self._slot(lead_id)
        if slot.lead.state is LeadState.DIALLING:
            raise InputError(f"lead {lead_id}", "is being dialled; remove it after its call completes")
        self._detach(slot)
        self._states[slot.lead.state] -= 1
        del self._slots[lead_id]
        ids = self._by_number[slot.lead.number]
        ids.remove(lead_id)
        if not ids:
            del self._by_number[slot.lead.number]
        return slot.lead

    # --- explanations ------------------------------------------------------------

    def why(self, lead_id: str, at: float) -> Refusal:
        """Why ``lead_id`` is not being dialled at ``at`` (reason ``queued``: it is due
        and waiting for its turn, with the number of leads before it)."""
        slot = self._slot(lead_id)
        if at >= self._now:
            self._advance(at)
        lead = slot.lead
        state = lead.state
        if state is LeadState.DONE:
            return Refusal(Reason.DONE, None, f"already done ({lead.detail or 'finished'})")
        if state is LeadState.DNC:
            reason = Reason.DNC_GLOBAL if lead.detail.startswith("global") else Reason.DNC_CAMPAIGN
            return Refusal(reason, None, f"DNC ({lead.detail})")
        if state is LeadState.INVALID:
            return Refusal(Reason.INVALID, None, f"invalid number {lead.number} ({lead.detail})")
        if state is LeadState.MAX_ATTEMPTS:
            n = len(lead.attempts)
            return Refusal(
                Reason.MAX_ATTEMPTS, None, f"max attempts reached ({n}/{self.campaign.max_attempts})"
            )
        if state is LeadState.DIALLING:
            return Refusal(
                Reason.DIALLING, None, f"currently being dialled (since {utc_time(slot.served_at)})"
            )
        listed = self.dnc.check(lead.number, self.campaign.name)
        if listed is not None:
            reason = Reason.DNC_GLOBAL if listed == "global" else Reason.DNC_CAMPAIGN
            return Refusal(reason, None, f"DNC ({listed}); it is finished when next reached")
        if slot.place is _Place.PENDING and lead.next_due is not None and lead.next_due > at:
            return Refusal(slot.reason, lead.next_due, slot.detail)
        if slot.place is _Place.PARKED:
            return Refusal(
                Reason.NO_WINDOW, None, f"the campaign's hours never open in {', '.join(lead.zones)}"
            )
        refusal = check_dial(lead, self.campaign, self.dnc, self.history, at)
        if refusal is not None:
            return refusal
        if slot.place is _Place.READY and slot.key is not None:
            ahead = sum(g.ready.bisect_left(slot.key) for g in self._group_list if g.open)
            return Refusal(
                Reason.QUEUED,
                None,
                f"due now: position {ahead + 1} in the hopper ({ahead} leads due before it)",
            )
        return Refusal(Reason.QUEUED, lead.next_due, "due; it joins the hopper at the next selection")

    def due_now(self, at: float) -> int:
        """Leads due and inside their window at ``at``: what pacing may ask for.

        O(zone groups), not O(leads), so a driver can ask before every pacing decision.
        Per-number rules are checked when a lead is served, so this is an upper bound.
        """
        self._advance(at)
        return sum(len(g.ready) for g in self._group_list if g.open)

    def summary(self, at: float) -> HopperSummary:
        """Counts by state and, for the leads not dialable now, by reason."""
        self._advance(at)
        waiting: Counter[str] = Counter({r.value: n for r, n in self._waiting.items() if n})
        due_now = 0
        for g in self._group_list:
            if g.open:
                due_now += len(g.ready)
            elif g.ready:
                waiting[(Reason.NO_WINDOW if g.never else Reason.WINDOW).value] += len(g.ready)
        by_state = {s.value: n for s, n in self._states.items() if n}
        lines = [f"{len(self._slots)} leads at {utc_time(at)}: {due_now} due and inside their window"]
        lines += [f"  state {state}: {n}" for state, n in sorted(by_state.items())]
        lines += [f"  waiting ({reason}): {n}" for reason, n in sorted(waiting.items())]
        deadline = self.next_deadline()
        if deadline is not None:
            lines.append(f"  next change at {utc_time(deadline)}")
        return HopperSummary(
            at,
            len(self._slots),
            MappingProxyType(by_state),
            MappingProxyType(dict(waiting)),
            due_now,
            deadline,
            tuple(lines),
        )

    # --- internals ---------------------------------------------------------------

    def _slot(self, lead_id: str) -> _Slot:
        slot = self._slots.get(lead_id)
        if slot is None:
            raise InputError(f"lead {lead_id}", "is not in this campaign's hopper")
        return slot

    def _key(self, lead: Lead, due: float) -> Key:
        return (0 if lead.callback_at is not None else 1, -lead.priority, due, next(self._seq), lead.lead_id)

    def _move(self, slot: _Slot, state: LeadState, detail: str = "") -> None:
        old = slot.lead.state
        slot.lead.move(state, detail)
        self._states[old] -= 1
        self._states[state] += 1

    def _group(self, zones: tuple[str, ...]) -> _Group:
        group = self._groups.get(zones)
        if group is None:
            group = _Group(len(self._group_list), zones)
            self._groups[zones] = group
            self._group_list.append(group)
            self._refresh(group, self._now)
        return group

    def _refresh(self, group: _Group, at: float) -> None:
        """Read the group's window state at ``at`` and book its next change."""
        hours = self.campaign.hours
        group.open = window_open(group.zones, hours, at)
        change = (window_next_close if group.open else window_next_open)(group.zones, hours, at)
        group.never = change is None and not group.open
        if change is None and group.open:
            change = at + 7 * DAY_S  # open all week: look again in a week
        group.version = next(self._versions)
        if change is not None:
            heapq.heappush(self._calendar, (change, group.version, group.gid))
        self._set_front(group)

    def _set_front(self, group: _Group) -> None:
        best = group.ready[0] if group.open and group.ready else None
        if best != group.front:
            if group.front is not None:
                self._front.remove(group.front)
            if best is not None:
                self._front.add(best)
            group.front = best

    def _advance(self, at: float) -> None:
        if at > self._now:
            self._now = at
        now = self._now
        calendar = self._calendar
        while calendar and calendar[0][0] <= now:
            _, version, gid = heapq.heappop(calendar)
            group = self._group_list[gid]
            if group.version == version:
                self._refresh(group, now)
        pending = self._pending
        while pending and pending[0][0] <= now:
            due, version, lead_id = heapq.heappop(pending)
            slot = self._slots.get(lead_id)
            if slot is None or slot.version != version or slot.place is not _Place.PENDING:
                continue
            self._waiting[slot.reason] -= 1
            self._ready(slot, due)

    def _ready(self, slot: _Slot, due: float) -> None:
        key = self._key(slot.lead, due)
        slot.key = key
        slot.place = _Place.READY
        group = slot.group
        group.ready.add(key)
        if group.open and (group.front is None or key < group.front):
            self._set_front(group)

    def _detach(self, slot: _Slot) -> None:
        """Take the lead out of whatever structure holds it."""
        if slot.place is _Place.READY and slot.key is not None:
            group = slot.group
            group.ready.remove(slot.key)
            if group.front == slot.key:
                self._front.remove(slot.key)
                group.front = None
                self._set_front(group)
        elif slot.place in (_Place.PENDING, _Place.PARKED):
            self._waiting[slot.reason] -= 1
        slot.place = _Place.NONE
        slot.key = None
        slot.version += 1

    def _schedule(self, slot: _Slot, due: float, reason: Reason, detail: str, *, defer: bool = False) -> None:
        """Due now: into its group; later (or ``defer``: not in this selection) pending."""
        self._detach(slot)
        slot.lead.next_due = due
        if due <= self._now and not defer:
            self._ready(slot, due)
            return
        slot.place = _Place.PENDING
        slot.reason = reason
        slot.detail = detail
        self._waiting[reason] += 1
        heapq.heappush(self._pending, (due, slot.version, slot.lead.lead_id))

    def _refused(self, slot: _Slot, refusal: Refusal) -> None:
        """check_dial said no at the moment of dialling: finish or come back later."""
        reason = refusal.reason
        if reason in (Reason.DNC_GLOBAL, Reason.DNC_CAMPAIGN):
            self._move(slot, LeadState.DNC, "global DNC" if reason is Reason.DNC_GLOBAL else refusal.detail)
        elif reason is Reason.INVALID:
            pass  # already final
        elif reason is Reason.MAX_ATTEMPTS:
            self._move(slot, LeadState.MAX_ATTEMPTS, refusal.detail)
        elif refusal.until is None:  # the hours never open for this lead's zones
            slot.place = _Place.PARKED
            slot.reason = Reason.NO_WINDOW
            self._waiting[Reason.NO_WINDOW] += 1
        else:
            # Deferred to the next selection even if the rule has lifted by the hopper's
            # clock: a caller asking about an earlier instant must not spin on this lead.
            self._schedule(slot, refusal.until, reason, refusal.detail, defer=True)

    def _pending_reason(self, lead: Lead) -> tuple[Reason, str]:
        assert lead.next_due is not None
        if lead.callback_at is not None:
            return Reason.CALLBACK, self._callback_text(lead)
        if lead.attempts:
            last = lead.attempts[-1].outcome
            return Reason.RETRY_DELAY, f"retry delay after {last} until {utc_time(lead.next_due)}"
        return Reason.RETRY_DELAY, f"not due until {utc_time(lead.next_due)}"

    @staticmethod
    def _callback_text(lead: Lead) -> str:
        assert lead.callback_at is not None
        who = f" with agent {lead.callback_agent}" if lead.callback_agent else ""
        return f"callback{who} at {local_time(lead.callback_at, lead.zone)}"
