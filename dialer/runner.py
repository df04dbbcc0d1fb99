"""One campaign's dialling loop: the state machine the simulator and the live dialer share.

Why it exists: pacing, the hopper and the abandonment ledger only mean something when
they are fed the same facts in the same order whatever drives them. The runner owns
that bookkeeping, IO-free like the ACD core, so the simulator (:mod:`sim.outbound`) and
the live service (over AMI, issue 7) are only drivers: they report what the network did
and carry out the :class:`Dial` commands the runner returns. No logic is forked.

Life of a call::

    pace() ─► Dial ─► ringing ─┬─► answered(human=True) ─► CallArrived for the ACD
                               │        ├─► connected(agent) ─► ended()      (a connect)
                               │        └─► abandoned(cause)                 (safe harbour)
                               ├─► answered(human=False)  ─► ended()         (AMD: machine)
                               └─► failed(outcome)        busy, no answer, congestion, invalid…

The ledger gets every human answer exactly once: ``connected`` within 2 s of the answer
is a connect, anything else (late, never, a caller hanging up first, a channel error)
is an abandon — the regulators' definition, not the router's. Every completed call
goes back to the hopper as an :class:`Attempt`, which applies retry rules and limits.

Agents come in as an :class:`AgentPicture` the driver takes from the ACD at the moment
of pacing (:func:`picture_from_router`): the runner never holds agent state, so blended
agents are counted once, where the router has them.

Times are POSIX seconds on the driver's clock and must not go backwards.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from acd.agents import AgentProfile, AgentState
from acd.events import CallArrived, OverflowAction
from acd.queues import OverflowRule, QueueConfig
from acd.router import Router
from dialer.campaign import CONNECT_TOLERANCE_S, DAY_S, MINUTE_S, Campaign
from dialer.compliance import AbandonLedger
from dialer.hopper import Hopper
from dialer.leads import Attempt, Lead, Outcome
from dialer.pacing import (
    BusyAgent,
    HumanOutcome,
    PacingPolicy,
    PacingView,
    RollingEstimates,
    get_pacing,
    notify,
)

DEFAULT_SAMPLES = 500
"""Recent calls behind the rolling estimates: enough for a stable mean and tail, short
enough to follow a list whose answer rate drifts through the day."""

_HUMAN, _MACHINE, _OTHER = range(3)  # dial outcome kinds in the estimates' samples

OUTBOUND_PRIORITY = 100
"""Router priority of answered outbound humans: they have 2 s, an inbound caller minutes."""


class RunnerError(Exception):
    """The driver reported something impossible (an unknown call, a call in the wrong state)."""


class DialState(Enum):
    RINGING = "ringing"
    WAITING = "waiting"  # a human answered, handed to the ACD, not yet with an agent
    CONNECTED = "connected"
    MACHINE = "machine"  # AMD said machine; the driver hangs up or leaves the message


@dataclass(frozen=True, slots=True)
class Dial:
    """Place this call now (the driver's command)."""

    call_id: str
    lead_id: str
    number: str
    campaign: str
    caller_id: str
    ring_timeout_s: float
    data: Mapping[str, str] = field(default_factory=dict)
    agent_id: str | None = None
    """A personal call (an agent-scheduled callback, a preview): the driver holds this
    agent for it (the ACD event :data:`HOLD_REASON` pause) from now until the call is
    answered or fails, so the agent is free when the callee says hello; the answered
    human is offered to this agent only (``CallArrived.agent_id``)."""


HOLD_REASON = "outbound-hold"
"""The pause reason that holds an agent for their personal call while it rings."""

CALLBACK_RETRY_S = 30.0
"""A callback whose agent is busy is looked at again this much later..."""
CALLBACK_GRACE_S = 15 * 60.0
"""...for this long after it fell due; then anyone in the campaign takes it."""


@dataclass(frozen=True, slots=True)
class AgentPicture:
    """The campaign's agents as the ACD has them at the moment of pacing.

    ``ready_ids`` and ``logged_in_ids`` (optional) let callbacks go to the agent who
    booked them; without them every callback is an ordinary call.
    """

    logged_in: int
    ready: int
    busy: tuple[BusyAgent, ...] = ()
    ready_ids: frozenset[str] = frozenset()
    logged_in_ids: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Call:
    call_id: str
    lead_id: str
    launched_at: float
    state: DialState = DialState.RINGING
    answered_at: float = math.nan
    connected_at: float = math.nan
    agent_id: str | None = None
    personal: str | None = None  # the agent this call is for (callback, preview)
    late: bool = False  # put through after the legal 2 s: an abandon in the ledger


LATE_CONNECT = "connected late: an abandoned call in the ledger"
"""The detail of a ``human`` attempt put through after the connect tolerance: it talked
to an agent, but counts as abandoned (and, under UK rules, bars a recall for 72 h)."""


@dataclass(frozen=True, slots=True)
class CampaignTotals:
    """What the campaign did since the runner started (the simulator's per-campaign KPIs)."""

    dials: int
    outcomes: Mapping[str, int]  # completed dials by Outcome value
    humans: int  # human answers (connects + abandons)
    connects: int
    abandons: int
    machines: int
    talk_s: float  # total time agents spent talking on this campaign's calls

    @property
    def abandon_rate(self) -> float:
        return self.abandons / self.humans if self.humans else 0.0


class CampaignRunner:
    """Dials one campaign: asks its pacing policy, serves leads, keeps the books."""

    def __init__(
        self,
        campaign: Campaign,
        hopper: Hopper,
        *,
        policy: PacingPolicy | None = None,
        ledger: AbandonLedger | None = None,
        acd_queue: str | None = None,
        samples: int = DEFAULT_SAMPLES,
        ring_timeout_s: float | None = None,
        call_prefix: str | None = None,
    ) -> None:
        if hopper.campaign is not campaign and hopper.campaign.name != campaign.name:
            raise RunnerError(f"the hopper belongs to campaign {hopper.campaign.name!r}")
        self.campaign = campaign
        self.hopper = hopper
        self.policy = (
            policy
            if policy is not None
            else get_pacing(campaign.dial_mode, campaign.pacing, where=f"campaign {campaign.name}: pacing")
        )
        self.ledger = ledger if ledger is not None else AbandonLedger.for_campaign(campaign)
        self.acd_queue = acd_queue if acd_queue is not None else f"outbound:{campaign.name}"
        ring = campaign.min_ring_s if ring_timeout_s is None else ring_timeout_s
        if not math.isfinite(ring) or ring < campaign.min_ring_s:
            raise RunnerError(
                f"ring timeout {ring:g} s is below the campaign's minimum {campaign.min_ring_s:g} s"
            )
        self.ring_timeout_s = ring
        self._calls: dict[str, _Call] = {}
        self._previewing: set[str] = set()
        self._ringing = 0
        self._waiting = 0
        self._seq = 0
        # Call ids are ``<prefix>-<n>``: a live driver gives a prefix no earlier run
        # used (the call id is the channel's Uniqueid, which Asterisk wants unique).
        self._prefix = campaign.name if call_prefix is None else call_prefix
        # Rolling samples for the estimates: 1 = human, 0 = anything else.
        # Dial outcomes for the estimates, by *launch* cohort: a call enters ``_young``
        # when launched and moves to ``_complete`` once every call launched with it
        # must have ended (a ring timeout later). Rates taken in the order calls end
        # would be biased: after a burst of dials the quick outcomes (busy, humans)
        # arrive first and the no-answers a ring timeout later, so the human rate
        # would read high, then near zero. Entry: [launched_at, kind, ring_s].
        self._samples = samples
        self._young: deque[list[Any]] = deque()
        self._complete: deque[list[Any]] = deque()
        self._entry: dict[str, list[Any]] = {}
        self._talk: deque[float] = deque(maxlen=samples)
        self._wrap: deque[float] = deque(maxlen=samples)
        self._last_minute: deque[tuple[float, str]] = deque()  # (launched, call id)
        self._abandoned_recent: dict[str, float] = {}  # call id -> launched, for the last minute
        self._day = -1
        self._today = [0, 0, 0]  # dials, humans, abandons
        self._outcomes: Counter[str] = Counter()
        self._dials = 0
        self._connects = 0
        self._abandons = 0
        self._machine_answers = 0
        self._talk_total = 0.0

    # --- pacing ------------------------------------------------------------------

    def view(self, at: float, agents: AgentPicture, *, competing_rate_per_s: float = 0.0) -> PacingView:
        """The frozen picture the policy decides from (also what the API shows).

        ``competing_rate_per_s``: blending, the driver's estimate of how fast other work
        (inbound calls) takes this campaign's agents as they come free; 0 for a team that
        only dials."""
        self._roll_day(at)
        minute_dials, minute_drops = self._minute(at)
        humans_w, abandons_w = self.ledger.counts(at)
        # Personal calls (callbacks, previews) have their agent held for them: they
        # do not need an agent from the pool, so pacing does not count them.
        ringing = tuple(
            at - c.launched_at
            for c in self._calls.values()
            if c.state is DialState.RINGING and c.personal is None
        )
        return PacingView(
            at=at,
            campaign=self.campaign.name,
            agents_logged_in=agents.logged_in,
            agents_ready=agents.ready,
            busy=agents.busy,
            ringing=ringing,
            humans_waiting=self._waiting,
            hopper_size=self.hopper.due_now(at),
            estimates=self.estimates(at),
            dials_last_minute=minute_dials,
            abandons_last_minute=minute_drops,
            dials_today=self._today[0],
            humans_today=self._today[1],
            abandons_today=self._today[2],
            # Estimated AMD false positives (UK) make these fractional: round towards
            # the stricter side, so pacing never sees more slack than the ledger has.
            humans_window=math.floor(humans_w + 1e-9),
            abandons_window=math.ceil(abandons_w - 1e-9),
            abandon_target=self.campaign.abandon_target,
            max_dial_level=self.campaign.max_dial_level,
            competing_rate_per_s=competing_rate_per_s,
        )

    def pace(
        self,
        at: float,
        agents: AgentPicture,
        *,
        competing_rate_per_s: float = 0.0,
        max_dials: int | None = None,
    ) -> list[Dial]:
        """Ask the policy how many calls to launch and serve that many leads.

        A callback booked by an agent goes to that agent when they are ready (a
        personal call: see :class:`Dial`); while they are busy it waits, looked at
        again every :data:`CALLBACK_RETRY_S`, for up to :data:`CALLBACK_GRACE_S` after
        it fell due; then, or if they have logged out, anyone takes it.
        ``max_dials`` caps the policy's answer (trunk channels, a calls-per-second cap).
        """
        wanted = self.policy.dials_now(self.view(at, agents, competing_rate_per_s=competing_rate_per_s))
        if max_dials is not None:  # the driver's limits: free trunk channels, calls per second
            wanted = min(wanted, max(0, max_dials))
        dials: list[Dial] = []
        free = set(agents.ready_ids)
        while len(dials) < wanted:
            lead = self.hopper.next(at)
            if lead is None:
                break
            booked_for = self._booked_for(lead, at, agents.logged_in_ids)
            if booked_for is not None and booked_for not in free:
                self.hopper.release(lead.lead_id, at, due=at + CALLBACK_RETRY_S)
                continue
            free.discard(booked_for or "")
            dials.append(self._launch(at, lead.lead_id, booked_for))
        return dials

    def _booked_for(self, lead: Lead, at: float, logged_in: frozenset[str]) -> str | None:
        """The agent a callback being served must go to, or None: anyone may take it
        (not a callback, its agent logged out, or its grace is over)."""
        agent = lead.callback_agent
        due = self.hopper.served_callback(lead.lead_id)
        if agent is None or due is None or agent not in logged_in or at >= due + CALLBACK_GRACE_S:
            return None
        return agent

    def preview(self, at: float, agent_id: str, logged_in: frozenset[str] = frozenset()) -> Lead | None:
        """The next lead for ``agent_id`` to look at before dialling (preview mode).

        The lead is taken from the hopper (no one else gets it); the agent then calls
        :meth:`preview_dial` or :meth:`preview_skip`. A callback booked by another
        agent who is logged in (``logged_in``) is kept for them, as in :meth:`pace`.
        """
        while (lead := self.hopper.next(at)) is not None:
            booked_for = self._booked_for(lead, at, logged_in)
            if booked_for is None or booked_for == agent_id:
                self._previewing.add(lead.lead_id)
                return lead
            self.hopper.release(lead.lead_id, at, due=at + CALLBACK_RETRY_S)
        return None

    def preview_dial(self, at: float, lead_id: str, agent_id: str) -> Dial:
        """The agent chose to call the lead they previewed: a personal call for them."""
        self._end_preview(lead_id)
        return self._launch(at, lead_id, agent_id)

    def preview_skip(self, at: float, lead_id: str, *, due: float | None = None) -> None:
        """The agent passed on the lead: back to the hopper undialled (no attempt)."""
        self._end_preview(lead_id)
        self.hopper.release(lead_id, at, due=due)

    def _end_preview(self, lead_id: str) -> None:
        if lead_id not in self._previewing:
            raise RunnerError(f"lead {lead_id} is not being previewed")
        self._previewing.discard(lead_id)

    def _launch(self, at: float, lead_id: str, personal: str | None) -> Dial:
        lead = self.hopper.get(lead_id)
        self._seq += 1
        call_id = f"{self._prefix}-{self._seq}"
        self._calls[call_id] = _Call(call_id, lead_id, at, personal=personal)
        entry: list[Any] = [at, None, math.nan]
        self._young.append(entry)
        self._entry[call_id] = entry
        self._ringing += 1
        self._dials += 1
        self._today[0] += 1
        self._last_minute.append((at, call_id))
        return Dial(
            call_id,
            lead_id,
            lead.number,
            self.campaign.name,
            self.campaign.caller_id,
            self.ring_timeout_s,
            lead.data,
            personal,
        )

    def withdraw(self, at: float, call_id: str) -> None:
        """Take back a dial :meth:`pace` returned that the driver could not place (its
        store refused to record it): no attempt, the lead back in the hopper as it was,
        and the books as if the dial had never been launched."""
        call = self._get(call_id, DialState.RINGING)
        del self._calls[call_id]
        self._ringing -= 1
        self._dials -= 1
        if self._today[0] > 0:
            self._today[0] -= 1
        entry = self._entry.pop(call_id, None)
        # By identity, from the newest end: entries of calls launched together are equal.
        for i in range(len(self._young) - 1, -1, -1):
            if self._young[i] is entry:
                del self._young[i]
                break
        with contextlib.suppress(ValueError):
            self._last_minute.remove((call.launched_at, call_id))
        self.hopper.release(call.lead_id, at)

    def estimates(self, at: float | None = None) -> RollingEstimates:
        """Rates and ring times of the last ``samples`` complete launch cohorts (calls
        launched at least a ring timeout before ``at``; without ``at``, as of the last
        view), talk and wrap-up samples."""
        if at is not None:
            self._settle(at)
        done = self._complete
        human_rings = [e[2] for e in done if e[1] == _HUMAN]
        other_rings = [e[2] for e in done if e[1] != _HUMAN]
        machines = sum(1 for e in done if e[1] == _MACHINE)
        answers = len(human_rings) + machines
        return RollingEstimates(
            dials=len(done),
            human_rate=len(human_rings) / len(done) if done else 0.0,
            machine_share=machines / answers if answers else 0.0,
            ring_to_answer_mean_s=sum(human_rings) / len(human_rings) if human_rings else 0.0,
            ring_to_answer_s=tuple(human_rings),
            other_ring_s=tuple(other_rings),
            talk_mean_s=_mean(self._talk),
            talk_s=tuple(self._talk),
            wrap_mean_s=_mean(self._wrap),
            wrap_s=tuple(self._wrap),
        )

    # --- what the network and the ACD report ---------------------------------------

    def answered(self, at: float, call_id: str, *, human: bool) -> CallArrived | None:
        """The callee answered; ``human`` is AMD's verdict (True when AMD is off).

        A human is handed to the ACD: the returned event goes to the router as it is.
        A machine is the driver's to hang up or leave the campaign's message to; it is
        reported :meth:`ended` when done.
        """
        call = self._get(call_id, DialState.RINGING)
        self._ringing -= 1
        call.answered_at = at
        self._resolved(call, _HUMAN if human else _MACHINE, at)
        if not human:
            call.state = DialState.MACHINE
            self._machine_answers += 1
            fp = self.campaign.amd_false_positive_rate
            if self.campaign.uk_rules and fp:
                # Ofcom: the people AMD hung up on are abandoned calls; the ledger books
                # the campaign's estimate of them per machine verdict.
                self.ledger.record_estimated_false_positives(at, fp)
            return None
        call.state = DialState.WAITING
        self._waiting += 1
        lead = self.hopper.get(call.lead_id)
        return CallArrived(
            at,
            call_id,
            self.acd_queue,
            caller=lead.number,
            priority=OUTBOUND_PRIORITY,
            data=lead.data,
            agent_id=call.personal,
        )

    def connected(self, at: float, call_id: str, agent_id: str) -> None:
        """The human is talking to ``agent_id``."""
        call = self._get(call_id, DialState.WAITING)
        self._waiting -= 1
        call.state = DialState.CONNECTED
        call.connected_at = at
        call.agent_id = agent_id
        verdict = self.ledger.record_answer(call.answered_at, at - call.answered_at)
        call.late = verdict.abandoned
        self._count_human(call, abandoned=verdict.abandoned)
        if verdict.abandoned:  # put through too late: an abandoned call all the same
            self.hopper.history.record_abandon(self.hopper.get(call.lead_id).number, at)

    def abandoned(self, at: float, call_id: str, cause: str = "no agent") -> None:
        """The human was not put through (the safe-harbour message played, or they hung
        up first, or the channel failed): an abandon, whatever the cause."""
        call = self._get(call_id, DialState.WAITING)
        self._waiting -= 1
        self.ledger.record_answer(call.answered_at, None, cause=cause)
        self._count_human(call, abandoned=True)
        self._finish(call, at, Outcome.ABANDONED, cause)

    def failed(self, at: float, call_id: str, outcome: Outcome, detail: str = "") -> None:
        """The call ended without an answer: busy, no answer, congestion, invalid, failed."""
        if outcome in (Outcome.HUMAN, Outcome.MACHINE, Outcome.ABANDONED):
            raise RunnerError(f"call {call_id}: {outcome} is an answer, report it with answered()")
        call = self._get(call_id, DialState.RINGING)
        self._ringing -= 1
        self._resolved(call, _OTHER, at)
        self._finish(call, at, outcome, detail)

    def ended(self, at: float, call_id: str) -> None:
        """A connected conversation, or a machine's message, is over."""
        call = self._calls.get(call_id)
        if call is None:
            raise RunnerError(f"call {call_id} is not one of campaign {self.campaign.name}'s calls")
        if call.state is DialState.CONNECTED:
            talk = at - call.connected_at
            self._talk.append(talk)
            self._talk_total += talk
            self._finish(call, at, Outcome.HUMAN, LATE_CONNECT if call.late else "", agent_id=call.agent_id)
        elif call.state is DialState.MACHINE:
            self._finish(call, at, Outcome.MACHINE)
        else:
            raise RunnerError(f"call {call_id} is {call.state.value}: only a conversation or a machine ends")

    def wrapped(self, wrap_s: float) -> None:
        """An agent finished the after-call work of one of this campaign's calls."""
        if math.isfinite(wrap_s) and wrap_s >= 0:
            self._wrap.append(wrap_s)

    # --- reading -----------------------------------------------------------------

    @property
    def ringing(self) -> int:
        return self._ringing

    @property
    def humans_waiting(self) -> int:
        return self._waiting

    def in_progress(self) -> dict[str, int]:
        """Calls launched and not yet over, by state (ringing, waiting, connected, machine)."""
        counts = Counter(call.state.value for call in self._calls.values())
        return {state.value: counts.get(state.value, 0) for state in DialState}

    def active(self, call_id: str) -> bool:
        return call_id in self._calls

    def held_agent(self, call_id: str) -> str | None:
        """The agent a personal call is for (the driver holds them while it rings)."""
        call = self._calls.get(call_id)
        return None if call is None else call.personal

    def schedule_callback(self, call_id: str, due: float) -> None:
        """The agent on this call booked a callback at ``due``, for themselves."""
        call = self._calls.get(call_id)
        if call is None or call.state is not DialState.CONNECTED:
            raise RunnerError(f"call {call_id} is not a conversation: no agent to book a callback")
        self.hopper.schedule_callback(call.lead_id, due, call.agent_id)

    def state_of(self, call_id: str) -> DialState | None:
        call = self._calls.get(call_id)
        return None if call is None else call.state

    def totals(self) -> CampaignTotals:
        return CampaignTotals(
            dials=self._dials,
            outcomes=MappingProxyType(dict(self._outcomes)),
            humans=self._connects + self._abandons,
            connects=self._connects,
            abandons=self._abandons,
            machines=self._machine_answers,
            talk_s=self._talk_total,
        )

    # --- internals ---------------------------------------------------------------

    def _resolved(self, call: _Call, kind: int, at: float) -> None:
        entry = self._entry.pop(call.call_id, None)
        if entry is not None:
            entry[1] = kind
            entry[2] = at - call.launched_at

    def _settle(self, at: float) -> None:
        """Move the calls whose whole launch cohort has ended into the samples."""
        edge = at - self.ring_timeout_s
        young, done = self._young, self._complete
        while young and young[0][0] <= edge:
            entry = young.popleft()
            if entry[1] is None:
                continue  # never reported (a driver lost it): no evidence either way
            done.append(entry)
            if len(done) > self._samples:
                done.popleft()

    def _get(self, call_id: str, state: DialState) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise RunnerError(f"call {call_id} is not one of campaign {self.campaign.name}'s calls")
        if call.state is not state:
            raise RunnerError(f"call {call_id} is {call.state.value}, not {state.value}")
        return call

    def _count_human(self, call: _Call, *, abandoned: bool) -> None:
        self._roll_day(call.answered_at)
        self._today[1] += 1
        if abandoned:
            self._today[2] += 1
            self._abandons += 1
            self._abandoned_recent[call.call_id] = call.launched_at
        else:
            self._connects += 1
        notify(self.policy, HumanOutcome(call.answered_at, self.campaign.name, abandoned))

    def _finish(
        self, call: _Call, at: float, outcome: Outcome, detail: str = "", agent_id: str | None = None
    ) -> None:
        del self._calls[call.call_id]
        self._outcomes[outcome.value] += 1
        ended = max(at, call.launched_at)
        self.hopper.complete(call.lead_id, Attempt(call.launched_at, outcome, agent_id, detail, ended))

    def _roll_day(self, at: float) -> None:
        # Forward only: a human answered before midnight and settled after it counts
        # today; rolling back to yesterday would wipe today's counts (twice).
        day = math.floor(at / DAY_S)
        if day > self._day:
            self._today = [0, 0, 0]
            self._day = day

    def _minute(self, at: float) -> tuple[int, int]:
        """Dials launched in the last 60 s, and how many of them were abandoned."""
        edge = at - MINUTE_S
        recent = self._last_minute
        while recent and recent[0][0] <= edge:
            _, old = recent.popleft()
            self._abandoned_recent.pop(old, None)
        # An abandon settled after its dial left the minute (a long ring, a late connect)
        # was never in the deque's reach: drop it here, or the dict grows all day.
        stale = [old for old, launched in self._abandoned_recent.items() if launched <= edge]
        for old in stale:
            del self._abandoned_recent[old]
        return len(recent), len(self._abandoned_recent)


def _mean(values: deque[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def acd_queue_config(
    campaign: Campaign,
    *,
    skills: Mapping[str, float],
    groups: tuple[str, ...] = (),
    wrap_up_s: float | None = 0.0,
    policy: str = "longest_idle",
) -> QueueConfig:
    """The ACD queue that puts a campaign's answered humans through to its agents.

    Its agents are those with ``skills`` (the skills of the queue the campaign names),
    so blended agents serve it and inbound queues from the same pool. A human waits at
    most the legal 2 s, then leaves with the safe-harbour message: the router enforces
    the tolerance with its own timer, the same way on the wire and in the simulator.
    """
    return QueueConfig(
        name=f"outbound:{campaign.name}",
        skills=dict(skills),
        groups=groups,
        service_target_s=CONNECT_TOLERANCE_S,
        max_wait_s=CONNECT_TOLERANCE_S,
        overflow=OverflowRule(OverflowAction.SAFE_HARBOUR),
        wrap_up_s=wrap_up_s,
        policy=policy,
        short_abandon_s=0.0,
    )


def picture_from_router(router: Router, queue: str) -> AgentPicture:
    """The agents able to take ``queue``'s calls, as the router has them now.

    Reserved agents (a call is being put through) count as busy with a call of age 0;
    agents in wrap-up as busy with their wrap-up age. O(members of the queue).
    """
    now = router.now
    logged_in = ready = 0
    busy: list[BusyAgent] = []
    ready_ids: set[str] = set()
    logged_in_ids: set[str] = set()
    for agent_id, state, since, talking_since in router.member_states(queue):
        if state is AgentState.LOGGED_OUT:
            continue
        logged_in += 1
        logged_in_ids.add(agent_id)
        if state is AgentState.READY:
            ready += 1
            ready_ids.add(agent_id)
        elif state is AgentState.TALKING:
            busy.append(BusyAgent(max(0.0, now - talking_since)))
        elif state is AgentState.RESERVED:
            busy.append(BusyAgent(0.0))
        elif state is AgentState.WRAP_UP:
            busy.append(BusyAgent(max(0.0, since - talking_since), max(0.0, now - since)))
    return AgentPicture(logged_in, ready, tuple(busy), frozenset(ready_ids), frozenset(logged_in_ids))


COMPETING_MIN_SPAN_S = 60.0
"""Inbound rates are measured over at least this long: a minute-old router's few calls
are not yet a rate."""


def competing_rate(router: Router, shares: Sequence[tuple[str, float]], *, since_s: float) -> float:
    """How fast inbound work takes a campaign's blended agents, in calls per second.

    ``shares``: (inbound queue, share of its agents who also serve the campaign); each
    queue's rate of offered calls over the router's 15-minute window is weighted by its
    share. ``since_s``: how long the router has been counting (the rate's span is that,
    between a minute and the window's 15). The simulator and the live dialer both pace
    with this figure (:attr:`dialer.pacing.PacingView.competing_rate_per_s`)."""
    if not shares:
        return 0.0
    span = max(COMPETING_MIN_SPAN_S, min(900.0, since_s))
    return sum(share * router.queue_stats(q, "15m").offered for q, share in shares) / span


def competing_shares(
    router: Router, campaign_queue: str, profiles: Iterable[AgentProfile]
) -> list[tuple[str, float]]:
    """For each other queue sharing agents with ``campaign_queue``: the share of its
    agents (of ``profiles``) who also take the campaign's calls."""
    profiles = list(profiles)
    target = router.queue_config(campaign_queue)
    serves = [target.qualifying_level(p) is not None for p in profiles]
    out = []
    for name in router.queue_names:
        if name == campaign_queue or name.startswith("outbound:"):
            continue
        cfg = router.queue_config(name)
        takes = [cfg.qualifying_level(p) is not None for p in profiles]
        pool = sum(takes)
        shared = sum(1 for t, s_ in zip(takes, serves, strict=True) if t and s_)
        if shared:
            out.append((name, shared / pool))
    return out
