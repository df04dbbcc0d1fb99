"""The simulator's outbound side: the telephone network that answers dials, and the
agents' hands on outbound calls, around one :class:`dialer.runner.CampaignRunner` per
campaign.

Theory of operation
-------------------
The runner is the brain, as it is for the live dialer: it asks the campaign's pacing
policy, serves leads from the hopper and keeps the abandonment ledger. This module
only reports what the simulated network and agents did, through the runner's and the
router's public methods, and carries out the :class:`dialer.runner.Dial` commands. It
forks no pacing, hopper or ledger logic.

Clocks. The router keeps the engine's virtual time ``t`` (seconds from the start);
the runner and the hopper work in POSIX seconds, ``start_epoch + t``, because calling
windows are about real weekdays. A :class:`acd.events.CallArrived` the runner returns
is re-stamped with ``t`` before it reaches the router.

A dial's fate is drawn when it is launched, from the campaign's own random streams:
the outcome from the ``answer`` probabilities; for an answer, the ring time (a ring
time reaching the ring timeout makes it a no-answer at the timeout) and, with AMD,
whether AMD gets it right. A human (or a machine AMD lets through, or any machine with
AMD off) goes to the ACD queue ``outbound:<campaign>``; an offer there connects at
once (agents sit in persistent sessions: no ring, no ring-no-answer); a human no agent
takes within 2 s leaves with the safe-harbour message (the router's max-wait overflow).
After the conversation the agent wraps up for a sampled time (the queue has no wrap-up
timer of its own) and the engine ends the wrap-up with :class:`acd.events.WrapUpDone`.

Pacing runs on a tick (``pace_every``) and right after an event that may free one of
the campaign's agents (the end of any of its calls or wrap-ups, the end of an inbound
call on a queue whose agents it shares), at most once per instant per campaign. No
dial is launched after the simulated duration; calls in progress run to their end.
Agents freed by the router's own timers (an inbound queue's fixed wrap-up), shifts and
breaks are seen at the next tick.

Blending. The view's ``competing_rate_per_s`` is the rate at which inbound calls are
offered to the queues sharing the campaign's agents, measured by the router over its
15-minute window (refreshed every 15 s of virtual time, at least 60 s of history
assumed), each queue's rate weighted by the share of its agents who also serve the
campaign.

Figures (:class:`CampaignLog`) cover what happened after the warm-up: the runner's
totals at the end of the run minus its totals at the end of the warm-up (dials
launched, human answers settled, outcomes completed), and talk time on the campaign's
calls within [warm-up, duration], the window agent occupancy is measured over.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np

from acd.agents import AgentProfile, AgentState
from acd.events import (
    AgentPaused,
    AgentReady,
    CallAnswered,
    CallEnded,
    Command,
    ConnectToAgent,
    Overflow,
    WrapUpDone,
)
from acd.queues import QueueConfig
from acd.router import Router
from acd.stats import BUCKET_S
from dialer.campaign import CONNECT_TOLERANCE_S
from dialer.hopper import Hopper
from dialer.leads import FINAL_STATES, Lead, Outcome
from dialer.runner import (
    HOLD_REASON,
    CampaignRunner,
    CampaignTotals,
    Dial,
    competing_rate,
    picture_from_router,
)
from sim.scenario import ANSWER_KINDS, CampaignModel, Scenario, acd_queue, agent_queues, serves
from sim.workload import Sampler, Uniform

OUTBOUND: Final = 8
"""The engine's event kind for everything outbound (after sim.engine's own kinds)."""

# What an outbound event is (the engine hands (code, payload) back to OutboundSim.handle).
TICK, PACE, ANSWER, FAIL, TALK_END, WRAP_DONE, WARMUP, CHECK, PREVIEW_DONE = range(9)

_HUMAN, _MACHINE, _BUSY, _NO_ANSWER, _INVALID, _CONGESTION = range(6)
assert ANSWER_KINDS == ("human", "machine", "busy", "no_answer", "invalid", "congestion")
_FAILURES = {_BUSY: Outcome.BUSY, _INVALID: Outcome.INVALID, _CONGESTION: Outcome.CONGESTION}

LEAD_AREA_BASE = 200  # synthetic numbers +1 <200 + campaign index> <7-digit lead index>


@dataclass(frozen=True, slots=True)
class CampaignLog:
    """What one campaign did in one replication, after the warm-up (see the module)."""

    name: str
    pacing: str
    groups: tuple[int, ...]  # indexes of the scenario's agent groups able to take its calls
    dials: int
    humans: int
    connects: int
    abandons: int
    machines: int  # answers AMD classed as machines (hung up on)
    amd_false_positives: int  # of which real humans
    outcomes: Mapping[str, int]  # completed dials by outcome, every outcome present
    talk_s: float  # agents' talk time on its calls within [warm-up, duration]
    held_s: float  # agents held for its personal calls (previews, callbacks) in that window
    in_progress: int  # dials not finished when the run stopped
    in_progress_at_warmup: int
    leads_open: int  # leads not in a final state at the end (due later, or being dialled)


class _Live:
    """An answered outbound call the ACD holds (waiting, or talking to an agent)."""

    __slots__ = ("agent", "campaign", "connected_at", "machine")

    def __init__(self, campaign: _Run, machine: bool) -> None:
        self.campaign = campaign
        self.machine = machine  # a machine AMD let through: it talks machine_talk
        self.connected_at = math.nan
        self.agent = ""


class _Run:
    """One campaign's runner, random streams and bookkeeping."""

    __slots__ = (
        "amd",
        "callback",
        "competing",
        "competing_at",
        "competing_rate",
        "done",
        "draw",
        "edges",
        "fail",
        "false_positives",
        "groups",
        "held_window_s",
        "in_flight",
        "index",
        "last_paced",
        "machine_talk",
        "model",
        "pace_at",
        "preview_skip",
        "preview_time",
        "previewing",
        "ring",
        "runner",
        "start_false_positives",
        "start_in_flight",
        "start_totals",
        "talk",
        "talk_window_s",
        "wrap",
    )

    def __init__(
        self, index: int, model: CampaignModel, runner: CampaignRunner, seed: np.random.SeedSequence
    ) -> None:
        self.index = index
        self.model = model
        self.runner = runner
        # One stream per component: changing, say, AMD accuracy leaves talk times alone.
        streams = iter(seed.spawn(10))  # children 0-6 are what they were before 7-9 came

        def rng() -> np.random.Generator:
            return np.random.default_rng(next(streams))

        self.draw = Uniform(rng())
        self.amd = Uniform(rng())
        self.ring = Sampler(model.ring_time, rng())
        self.talk = Sampler(model.talk, rng())
        self.machine_talk = Sampler(model.machine_talk, rng())
        self.wrap = Sampler(model.wrap, rng())
        self.fail = Sampler(model.fail_time, rng())
        self.callback = Uniform(rng())
        self.preview_time = Sampler(model.preview_time, rng())
        self.preview_skip = Uniform(rng())
        self.edges = model.answer.cumulative()
        self.groups: tuple[int, ...] = ()
        self.competing: list[tuple[str, float]] = []  # (inbound queue, share of its agents)
        self.competing_at = -math.inf
        self.competing_rate = 0.0
        self.last_paced = -math.inf
        self.pace_at = -math.inf  # a PACE event is pending at this instant
        self.done = False
        self.in_flight = 0
        self.previewing = 0  # leads in agents' hands (preview): not dials yet
        self.held_window_s = 0.0  # agents held for personal calls, within [warm-up, duration]
        self.false_positives = 0
        self.talk_window_s = 0.0
        self.start_totals: CampaignTotals | None = None
        self.start_in_flight = 0
        self.start_false_positives = 0


def synthetic_leads(model: CampaignModel, index: int) -> list[Lead]:
    """The campaign's list: distinct E.164-shaped numbers in zone UTC (shape check only)."""
    area = LEAD_AREA_BASE + index
    return [Lead(f"{model.name}-{i}", f"+1{area:03d}{i:07d}", ("UTC",)) for i in range(1, model.leads + 1)]


class OutboundSim:
    """Every campaign of a scenario, driven in the engine's virtual time."""

    def __init__(
        self,
        scenario: Scenario,
        router: Router,
        seeds: Sequence[np.random.SeedSequence],
        *,
        push: Callable[[float, int, Any, Any], None],
        apply: Callable[[Sequence[Command], float], None],
        agent_group: Mapping[str, int],
    ) -> None:
        self.scenario = scenario
        self.router = router
        self.epoch = scenario.start_epoch
        self.duration = scenario.duration_s
        self.warmup = scenario.warmup_s
        self._push = push
        self._apply = apply
        self._agent_group = agent_group
        self._live: dict[str, _Live] = {}
        self._wrapping: dict[str, str] = {}  # agent -> the outbound call they wrap up
        self._held: dict[str, tuple[_Run, float]] = {}  # agent -> (campaign, held since)
        self._after_hold: dict[str, str | None] = {}  # agent -> deferred pause reason (None: back)
        self.runs: list[_Run] = []
        campaigns = scenario.campaigns
        for ci, (model, seed) in enumerate(zip(campaigns, seeds, strict=True)):
            campaign = model.campaign()
            hopper = Hopper(campaign)
            hopper.load(synthetic_leads(model, ci), self.epoch)
            runner = CampaignRunner(
                campaign, hopper, acd_queue=model.acd_queue, ring_timeout_s=model.ring_timeout_s
            )
            self.runs.append(_Run(ci, model, runner, seed))
        # Who serves what, by agent group: the router's own qualification rule.
        able = [[serves(m, g, campaigns) for m in campaigns] for g in scenario.agents]
        for run in self.runs:
            run.groups = tuple(gi for gi, row in enumerate(able) if row[run.index])
        self._group_runs = [[self.runs[ci] for ci, ok in enumerate(row) if ok] for row in able]
        self._queue_runs: list[list[_Run]] = []
        for q in scenario.queues:
            takes_q = [
                q.config.qualifying_level(
                    AgentProfile("probe", group=g.group, skills=g.skills, queues=agent_queues(g, campaigns))
                )
                is not None
                for g in scenario.agents
            ]
            pool = sum(g.count for g, ok in zip(scenario.agents, takes_q, strict=True) if ok)
            runs = []
            for run in self.runs:
                shared = sum(
                    g.count
                    for gi, (g, ok) in enumerate(zip(scenario.agents, takes_q, strict=True))
                    if ok and able[gi][run.index]
                )
                if shared:
                    run.competing.append((q.config.name, shared / pool))
                    runs.append(run)
            self._queue_runs.append(runs)

    @staticmethod
    def queue_configs(scenario: Scenario) -> list[QueueConfig]:
        """The ACD queues of the scenario's campaigns, for the router."""
        return [acd_queue(m) for m in scenario.campaigns]

    # --- the engine's entry points ---------------------------------------------------

    def start(self) -> None:
        for run in self.runs:
            self._push(0.0, OUTBOUND, TICK, (run, 0))
        if self.warmup > 0:
            self._push(self.warmup, OUTBOUND, WARMUP, None)
        else:
            self._snapshot()

    def handle(self, t: float, code: int, payload: Any) -> None:
        if code == TICK:
            run, k = payload
            self._pace(run, t)
            nxt = (k + 1) * run.model.pace_every_s
            if nxt < self.duration and not run.done:
                self._push(nxt, OUTBOUND, TICK, (run, k + 1))
        elif code == PACE:
            payload.pace_at = -math.inf
            self._pace(payload, t)
        elif code == ANSWER:
            self._answered(t, *payload)
        elif code == FAIL:
            run, call_id, outcome = payload
            held = run.runner.held_agent(call_id)
            run.runner.failed(self.epoch + t, call_id, outcome)
            run.in_flight -= 1
            if held is not None:
                self._release(held, t)
                self._request(run, t)
        elif code == PREVIEW_DONE:
            self._preview_done(t, *payload)
        elif code == TALK_END:
            self._talk_ended(t, payload)
        elif code == WRAP_DONE:
            run, agent_id, call_id, since = payload
            if self._wrapping.get(agent_id) == call_id:
                del self._wrapping[agent_id]
                snap = self.router.agent(agent_id)
                # Not if the agent ended the wrap-up early (back from a break): the
                # router has them in another state, or in a later wrap-up.
                if snap.state is AgentState.WRAP_UP and snap.state_since == since:
                    self._end_wrap(run, agent_id, t, t - since)
        elif code == WARMUP:
            self._snapshot()
        # CHECK: nothing to do; it only keeps the engine running until the router's
        # 2-second timer of a waiting human has fired.

    def connect(self, cmd: ConnectToAgent, t: float) -> None:
        """The router put an outbound human through: the agent's session takes it at once."""
        live = self._live[cmd.call_id]
        run = live.campaign
        self._apply(self.router.handle(CallAnswered(t, cmd.call_id, cmd.agent_id)), t)
        run.runner.connected(self.epoch + t, cmd.call_id, cmd.agent_id)
        live.connected_at = t
        live.agent = cmd.agent_id
        talk = (run.machine_talk if live.machine else run.talk).next()
        self._push(t + talk, OUTBOUND, TALK_END, cmd.call_id)

    def overflowed(self, cmd: Overflow, t: float) -> None:
        """No agent within 2 s: the safe-harbour message plays and the call ends."""
        live = self._live.pop(cmd.call_id)
        run = live.campaign
        run.runner.abandoned(self.epoch + t, cmd.call_id, cause=f"{cmd.action.value} ({cmd.reason})")
        run.in_flight -= 1

    def inbound_ended(self, t: float, queue_index: int) -> None:
        """An inbound call ended: its agent may be free for the campaigns sharing them."""
        for run in self._queue_runs[queue_index]:
            self._request(run, t)

    def finish(self) -> tuple[CampaignLog, ...]:
        logs = []
        for run in self.runs:
            end = run.runner.totals()
            start = run.start_totals
            assert start is not None
            hopper = run.runner.hopper
            states = hopper.summary(self.epoch + self.router.now).by_state
            final = sum(states.get(s.value, 0) for s in FINAL_STATES)
            logs.append(
                CampaignLog(
                    name=run.model.name,
                    pacing=run.model.pacing,
                    groups=run.groups,
                    dials=end.dials - start.dials,
                    humans=end.humans - start.humans,
                    connects=end.connects - start.connects,
                    abandons=end.abandons - start.abandons,
                    machines=end.machines - start.machines,
                    amd_false_positives=run.false_positives - run.start_false_positives,
                    outcomes={
                        o.value: end.outcomes.get(o.value, 0) - start.outcomes.get(o.value, 0)
                        for o in Outcome
                    },
                    talk_s=run.talk_window_s,
                    held_s=run.held_window_s,
                    in_progress=run.in_flight,
                    in_progress_at_warmup=run.start_in_flight,
                    leads_open=len(hopper) - final,
                )
            )
        return tuple(logs)

    # --- pacing -------------------------------------------------------------------------

    def _request(self, run: _Run, t: float) -> None:
        """Pace ``run`` at ``t``, after the events already due then (once per instant)."""
        if run.done or t >= self.duration or t in (run.last_paced, run.pace_at):
            return
        run.pace_at = t
        self._push(t, OUTBOUND, PACE, run)

    def _pace(self, run: _Run, t: float) -> None:
        if run.last_paced == t or t >= self.duration or run.done:
            return
        run.last_paced = t
        at = self.epoch + t
        # The picture ages calls by the router's clock, which stands at its last event:
        # bring it to now (every timer due by now has fired already, so this fires none).
        self._apply(self.router.on_timer(t), t)
        picture = picture_from_router(self.router, run.model.acd_queue)
        dials = run.runner.pace(at, picture, competing_rate_per_s=self._competing(run, t))
        for dial in dials:
            self._launch(run, dial, t)
        if run.model.pacing == "preview":
            held = {d.agent_id for d in dials}
            for agent_id in sorted(picture.ready_ids - held):
                lead = run.runner.preview(at, agent_id, picture.logged_in_ids)
                if lead is None:
                    break
                self._hold(run, agent_id, t)
                run.previewing += 1
                self._push(t + run.preview_time.next(), OUTBOUND, PREVIEW_DONE, (run, agent_id, lead.lead_id))
        if not dials and run.in_flight == 0 and run.previewing == 0 and run.runner.hopper.due_now(at) == 0:
            hopper = run.runner.hopper
            states = hopper.summary(at).by_state
            if sum(states.get(s.value, 0) for s in FINAL_STATES) == len(hopper):
                run.done = True  # every lead is finished: no more ticks

    def _competing(self, run: _Run, t: float) -> float:
        if not run.competing:
            return 0.0
        if t - run.competing_at >= BUCKET_S:
            run.competing_rate = competing_rate(self.router, run.competing, since_s=t)
            run.competing_at = t
        return run.competing_rate

    # --- the network ------------------------------------------------------------------

    # --- personal calls: callbacks and previews ------------------------------------------

    def _hold(self, run: _Run, agent_id: str, t: float) -> None:
        """Keep the agent for their personal call (a pause the router understands)."""
        snap = self.router.agent(agent_id)
        if not (snap.state is AgentState.PAUSED and snap.reason == HOLD_REASON):
            self._apply(self.router.handle(AgentPaused(t, agent_id, HOLD_REASON)), t)
        self._held.setdefault(agent_id, (run, t))

    def defer_shift(self, agent_id: str, reason: str | None) -> bool:
        """A break or shift end (its pause ``reason``; None: a break's end) reaching an
        agent held for a personal call waits for the hold to end, as an agent in the
        middle of a preview or whose callback is ringing would not walk away. True if
        deferred."""
        if agent_id not in self._held:
            return False
        self._after_hold[agent_id] = reason  # the last word wins: on break, or back
        return True

    def _release(self, agent_id: str, t: float) -> None:
        """The personal call no longer needs the agent waiting (answered, or failed)."""
        pause = self._after_hold.pop(agent_id, None)
        held = self._held.pop(agent_id, None)
        if held is not None:
            # Held agents work for the campaign (a preview, a callback ringing): their
            # time counts as available, or utilisation would be flattered.
            run, since = held
            lo, hi = max(since, self.warmup), min(t, self.duration)
            if hi > lo:
                run.held_window_s += hi - lo
        snap = self.router.agent(agent_id)
        if snap.state is AgentState.PAUSED and snap.reason == HOLD_REASON:
            # A call waiting for this agent is offered on AgentReady; a break deferred
            # meanwhile starts after that call (a pause asked mid-call waits for it).
            self._apply(self.router.handle(AgentReady(t, agent_id)), t)
            if pause is not None:
                self._apply(self.router.handle(AgentPaused(t, agent_id, pause)), t)

    def _preview_done(self, t: float, run: _Run, agent_id: str, lead_id: str) -> None:
        at = self.epoch + t
        run.previewing -= 1
        snap = self.router.agent(agent_id)
        still_held = snap.state is AgentState.PAUSED and snap.reason == HOLD_REASON
        # No dial after the simulated day; an agent gone on a break passes too.
        if t >= self.duration or not still_held or run.preview_skip.below(run.model.preview_skip):
            run.runner.preview_skip(at, lead_id)  # skipped, or the agent went on a break
            self._release(agent_id, t)
            self._request(run, t)
            return
        self._launch(run, run.runner.preview_dial(at, lead_id, agent_id), t)

    def _launch(self, run: _Run, dial: Dial, t: float) -> None:
        if dial.agent_id is not None:
            self._hold(run, dial.agent_id, t)
        run.in_flight += 1
        model = run.model
        kind = bisect.bisect_right(run.edges, run.draw.next())
        if kind in (_HUMAN, _MACHINE):
            ring = run.ring.next()
            if ring >= model.ring_timeout_s:  # they would have answered too late
                self._push(t + model.ring_timeout_s, OUTBOUND, FAIL, (run, dial.call_id, Outcome.NO_ANSWER))
                return
            right = run.amd.below(model.amd_accuracy) if model.amd else False
            if kind == _HUMAN:
                human = right or not model.amd
                false_positive = not human
                machine_talk = False
            else:
                human = not right  # AMD off, or AMD mistook the machine for a person
                false_positive = False
                machine_talk = True
            self._push(t + ring, OUTBOUND, ANSWER, (run, dial.call_id, human, machine_talk, false_positive))
        elif kind == _NO_ANSWER:
            self._push(t + model.ring_timeout_s, OUTBOUND, FAIL, (run, dial.call_id, Outcome.NO_ANSWER))
        else:
            self._push(t + run.fail.next(), OUTBOUND, FAIL, (run, dial.call_id, _FAILURES[kind]))

    def _answered(self, t: float, run: _Run, call_id: str, human: bool, machine: bool, fp: bool) -> None:
        held = run.runner.held_agent(call_id)
        arrived = run.runner.answered(self.epoch + t, call_id, human=human)
        if arrived is None:  # AMD said machine: hang up
            run.false_positives += fp
            run.runner.ended(self.epoch + t, call_id)
            run.in_flight -= 1
            if held is not None:
                self._release(held, t)
                self._request(run, t)
            return
        self._live[call_id] = _Live(run, machine)
        self._apply(self.router.handle(replace(arrived, at=t)), t)
        if held is not None:  # the call waits for its agent, who is released to take it
            self._release(held, t)
        if call_id in self._live and self._live[call_id].agent == "":
            # Waiting: make sure the engine is still running when its 2 s are up.
            self._push(t + CONNECT_TOLERANCE_S, OUTBOUND, CHECK, None)

    def _talk_ended(self, t: float, call_id: str) -> None:
        live = self._live.pop(call_id)
        run = live.campaign
        self._apply(self.router.handle(CallEnded(t, call_id)), t)  # the agent wraps up
        model = run.model
        booked = model.callback_probability > 0 and run.callback.below(model.callback_probability)
        if booked and not live.machine:
            run.runner.schedule_callback(call_id, self.epoch + t + model.callback_after_s)
        run.runner.ended(self.epoch + t, call_id)
        run.in_flight -= 1
        lo, hi = max(live.connected_at, self.warmup), min(t, self.duration)
        if hi > lo:
            run.talk_window_s += hi - lo
        wrap = run.wrap.next()
        agent_id = live.agent
        if wrap <= 0.0:
            self._end_wrap(run, agent_id, t, 0.0)
        else:
            self._wrapping[agent_id] = call_id
            self._push(t + wrap, OUTBOUND, WRAP_DONE, (run, agent_id, call_id, t))
            for other in self._group_runs[self._agent_group[agent_id]]:
                self._request(other, t)  # the call's end changes the picture (and the estimates)

    def _end_wrap(self, run: _Run, agent_id: str, t: float, wrap_s: float) -> None:
        self._apply(self.router.handle(WrapUpDone(t, agent_id)), t)
        run.runner.wrapped(wrap_s)
        for other in self._group_runs[self._agent_group[agent_id]]:
            self._request(other, t)

    def _snapshot(self) -> None:
        for run in self.runs:
            run.start_totals = run.runner.totals()
            run.start_in_flight = run.in_flight
            run.start_false_positives = run.false_positives
