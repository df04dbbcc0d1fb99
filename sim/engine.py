"""The discrete-event engine: a simulated PBX driving the real ACD core in virtual time.

The engine plays the telephone network, the callers and the agents' hands; the
routing decisions are made by :class:`acd.router.Router`, the same object the live
service drives. It talks to the router only through events, commands,
``next_deadline()`` and ``on_timer()``: nothing is forked for the simulator.

The simulator's own events are ordered by time, and events due at the same time run
in the order they were scheduled, identically on every run (the agenda,
:mod:`sim.agenda`). Arrivals, drawn before the run, are merged in from a small heap
of each queue's next arrival (after the other events of the same instant), and the
router's timers by comparing its next deadline with both tops before each event.
Randomness comes from generators handed in (one stream per component), drawn in
blocks. Per call the engine writes into flat lists; figures are computed from them
with numpy after the run (sim.results), so the hot loop does no statistics.

Caller model: patience starts at arrival and keeps running while an agent's phone
rings (callers do hang up while it rings); it stops at answer. Agent model: an agent
answers after ``answer_delay``; with ``no_answer_probability`` they do not, the PBX
reports ring-no-answer after ``RNA_AFTER_S`` and the agent (paused ``rna`` by the
ACD) makes themselves ready again after ``rna_recovery``. Shifts log agents in; breaks
and shift ends pause them (a pause asked mid-call waits for the call, as in life).

Outbound campaigns (:mod:`sim.outbound`) share the agenda (one event kind, ``OUTBOUND``)
and the router; the engine hands them the router's commands for their calls. Their
random streams are spawned after the inbound ones, so adding a campaign to a scenario
leaves the inbound workload's draws as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heapreplace
from math import isnan
from typing import Final

import numpy as np

from acd.agents import AgentProfile, AgentState
from acd.events import (
    AgentLoggedIn,
    AgentPaused,
    AgentReady,
    AgentRingNoAnswer,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallerAbandoned,
    CallOutcome,
    CallRecord,
    CancelOffer,
    Command,
    ConnectToAgent,
    Event,
    Overflow,
    OverflowAction,
)
from acd.pickling import pickle_by_fields
from acd.router import Router
from sim.agenda import Agenda
from sim.outbound import OUTBOUND, CampaignLog, OutboundSim
from sim.scenario import Scenario, agent_queues
from sim.workload import Fixed, Sampler, Uniform, poisson_arrivals

RNA_AFTER_S: Final = 15.0  # how long the simulated PBX rings an agent who will not answer
# Final copies: compiled (setup.py), math.nan is an attribute lookup on every use.
NAN: Final = math.nan
INF: Final = math.inf

# Event kinds (ints: the hot loop compares them, it does not dispatch on types). All
# constants here are Final: the compiled build (setup.py) then inlines them rather than
# looking each one up in the module's namespace on every comparison. Arrivals are not
# agenda events: they come from per-queue lists (see _loop).
ANSWER: Final = 1
END: Final = 2
PATIENCE: Final = 3
RNA: Final = 4
RECOVER: Final = 5
SHIFT: Final = 6
SAMPLE: Final = 7
# Shift actions.
LOG_IN: Final = 0
BREAK: Final = 1
BACK: Final = 2
OFF: Final = 3
# Outcomes per queue entry.
PENDING: Final = 0
ANSWERED: Final = 1
ABANDONED: Final = 2
OVERFLOWED: Final = 3


@dataclass(frozen=True, slots=True)
class RunLog:
    """Everything one replication recorded; sim.results turns it into figures."""

    queue_names: tuple[str, ...]
    service_targets: tuple[float, ...]
    group_names: tuple[str, ...]
    # One row per (call, queue) entry: a call that overflows into another queue has two.
    entry_queue: np.ndarray
    entry_arrived: np.ndarray
    entry_offered: np.ndarray  # first time offered to an agent (nan: never)
    entry_answered: np.ndarray
    entry_left: np.ndarray  # abandoned / overflowed at (nan otherwise)
    entry_ended: np.ndarray  # conversation ended at (nan: not answered, or still talking)
    entry_outcome: np.ndarray
    # Per group, cumulative (available_s, busy_s) at each sample time.
    sample_times: np.ndarray
    group_available: np.ndarray  # shape (samples, groups)
    group_busy: np.ndarray
    end_s: float
    events: int
    campaigns: tuple[CampaignLog, ...] = ()


class Simulation:
    """One replication of a scenario. ``run()`` returns its :class:`RunLog`."""

    def __init__(self, scenario: Scenario, seed: int | np.random.SeedSequence) -> None:
        self.scenario = scenario
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        streams = iter(ss.spawn(4 + 3 * len(scenario.queues) + 2 * len(scenario.agents)))

        def rng() -> np.random.Generator:
            return np.random.default_rng(next(streams))

        self.router = Router(
            [q.config for q in scenario.queues] + OutboundSim.queue_configs(scenario),
            call_selection=scenario.call_selection,
            observers=[self._on_record] if self._needs_records() else [],
        )
        self.queue_index = {q.config.name: i for i, q in enumerate(scenario.queues)}
        self.arrivals: list[list[float]] = []
        for q in scenario.queues:
            times = poisson_arrivals(rng(), np.asarray(q.rates_per_s), q.arrival_interval_s)
            self.arrivals.append(times[times < scenario.duration_s].tolist())
        self.handle = [Sampler(q.handle_time, rng()) for q in scenario.queues]
        self.patience = [Sampler(q.patience, rng()) for q in scenario.queues]
        self.agent_group: dict[str, int] = {}
        self.delay: list[Sampler] = []
        self.no_answer: list[Uniform] = []
        for gi, g in enumerate(scenario.agents):
            self.delay.append(Sampler(g.answer_delay, rng()))
            self.no_answer.append(Uniform(rng()))
            for k in range(g.count):
                agent_id = f"{g.group}-{k + 1}"
                self.agent_group[agent_id] = gi
                self.router.register_agent(
                    AgentProfile(
                        agent_id, group=g.group, skills=g.skills, queues=agent_queues(g, scenario.campaigns)
                    )
                )
        self._handle_scale = [q.handle_scale for q in scenario.queues]
        self._patience_scale = [q.patience_scale for q in scenario.queues]
        self._scale_step = [q.arrival_interval_s for q in scenario.queues]
        self._p_no_answer = [g.no_answer_probability for g in scenario.agents]
        self._has_delay = [
            not (isinstance(g.answer_delay, Fixed) and g.answer_delay.mean == 0.0) for g in scenario.agents
        ]
        self._agenda = Agenda()  # (kind, a, b) by due time
        # Per entry (list-backed while running).
        self.e_queue: list[int] = []
        self.e_arrived: list[float] = []
        self.e_offered: list[float] = []
        self.e_answered: list[float] = []
        self.e_left: list[float] = []
        self.e_ended: list[float] = []
        self.e_outcome: list[int] = []
        self.call_entry: dict[str, int] = {}
        self.offer_token: dict[str, int] = {}
        self._samples: list[tuple[float, list[float], list[float]]] = []
        self._ringing: dict[str, str] = {}  # call -> agent whose phone rings
        self._progress: Callable[[float], None] | None = None
        self.events = 0
        self.outbound: OutboundSim | None = None
        if scenario.campaigns:
            self.outbound = OutboundSim(
                scenario,
                self.router,
                ss.spawn(len(scenario.campaigns)),  # after the inbound streams: those stay as they were
                push=self._agenda.push,
                apply=self._apply,
                agent_group=self.agent_group,
            )

    def _needs_records(self) -> bool:
        return any(
            q.config.overflow is not None and q.config.overflow.action is OverflowAction.QUEUE
            for q in self.scenario.queues
        )

    # --- scheduling -------------------------------------------------------------------

    def _schedule_shifts(self) -> None:
        for g in self.scenario.agents:
            ids = [f"{g.group}-{k + 1}" for k in range(g.count)]
            for shift in g.shifts:
                self._agenda.push(shift.start_s, SHIFT, ids, LOG_IN)
                for br in shift.breaks:
                    self._agenda.push(br.start_s, SHIFT, ids, BREAK)
                    self._agenda.push(br.start_s + br.duration_s, SHIFT, ids, BACK)
                if shift.end_s < self.scenario.duration_s:
                    self._agenda.push(shift.end_s, SHIFT, ids, OFF)

    # --- the run ------------------------------------------------------------------------

    def run(self, *, drain_s: float = 7200.0, progress: Callable[[float], None] | None = None) -> RunLog:
        """Simulate; ``progress(fraction)`` is called every few thousand events."""
        sc = self.scenario
        self._schedule_shifts()
        # Cumulative agent-time samples at every reporting boundary, the warm-up end and
        # the end, for occupancy per interval and over the measured period.
        points = set(np.arange(0.0, sc.duration_s, sc.interval_s).tolist())
        points |= {sc.warmup_s, sc.duration_s}
        for point in sorted(points):
            self._agenda.push(point, SAMPLE)
        if self.outbound is not None:
            self.outbound.start()
        stop = sc.duration_s + drain_s
        self._progress = progress
        self._loop(stop)
        return self._log(min(stop, max(sc.duration_s, self.router.now)))

    def _loop(self, stop: float) -> None:
        # Bound methods are not cached in locals: interpreted it would save little, and
        # compiled (setup.py) a direct call to a method is a C call, a local is not.
        agenda = self._agenda
        router = self.router
        deadline = router.next_deadline()
        arrivals = self.arrivals
        # Arrivals are known in advance and in order, per queue: they wait in a heap of
        # their own, one entry per queue (its next arrival), not among the hundreds of
        # pending ends and patience timers. At equal times the other events go first.
        upcoming = [(times[0], qi, 0) for qi, times in enumerate(arrivals) if times]
        heapify(upcoming)
        queues = self.scenario.queues
        names = [q.config.name for q in queues]
        prios = [q.priority for q in queues]
        e_queue, e_arrived, e_offered = self.e_queue, self.e_arrived, self.e_offered
        e_answered, e_left, e_outcome = self.e_answered, self.e_left, self.e_outcome
        e_ended = self.e_ended
        call_entry, offer_token = self.call_entry, self.offer_token
        patience = self.patience
        patience_scale = self._patience_scale
        outbound = self.outbound
        events = 0
        n_calls = 0
        while agenda or upcoming:
            t = agenda.top()
            arriving = bool(upcoming) and upcoming[0][0] < t
            if arriving:
                t = upcoming[0][0]
            if deadline is not None and deadline <= t:
                if deadline > stop:
                    break
                self._apply(router.on_timer(deadline), deadline)
                deadline = router.next_deadline()
                continue
            if t > stop:
                break
            events += 1
            if arriving:
                _, qi, k = upcoming[0]
                times = arrivals[qi]
                if k + 1 < len(times):
                    heapreplace(upcoming, (times[k + 1], qi, k + 1))
                else:
                    heappop(upcoming)
                n_calls += 1
                call_id = str(n_calls)
                entry = len(e_queue)
                call_entry[call_id] = entry
                e_queue.append(qi)
                e_arrived.append(t)
                e_offered.append(NAN)
                e_answered.append(NAN)
                e_left.append(NAN)
                e_ended.append(NAN)
                e_outcome.append(PENDING)
                offer_token[call_id] = 0
                tau = patience[qi].next()
                scale = patience_scale[qi]
                if scale is not None:
                    tau *= self._scaled(qi, t, scale)
                cmds = router.handle(CallArrived(t, call_id, names[qi], priority=prios[qi]))
                if cmds:
                    self._apply(cmds, t)
                # A caller put through at once never gets to hang up while waiting.
                if tau != INF and e_outcome[entry] == PENDING:
                    self._agenda.push(t + tau, PATIENCE, call_id, None)
                deadline = router.next_deadline()
                continue
            due = agenda.pop()
            kind, a, b = due.kind, due.a, due.b
            if kind == ANSWER:
                call_id, token = a, b
                if offer_token.get(call_id) == token:
                    agent_id = self._ringing.pop(call_id)
                    self._answer(call_id, agent_id, t, call_entry[call_id])
            elif kind == END:
                entry = call_entry[a]
                e_ended[entry] = t
                cmds = router.handle(CallEnded(t, a))
                if cmds:
                    self._apply(cmds, t)
                if outbound is not None:  # the agent may be free for a campaign
                    outbound.inbound_ended(t, e_queue[entry])
                # The call is over: forget it, so that these maps hold only live calls
                # (hundreds of entries, not one per call of the day). Late timers of
                # the call find nothing and do nothing.
                del call_entry[a]
                del offer_token[a]
            elif kind == PATIENCE:
                waiting = call_entry.get(a)
                if waiting is not None and e_outcome[waiting] == PENDING and isnan(e_answered[waiting]):
                    e_outcome[waiting] = ABANDONED
                    e_left[waiting] = t
                    offer_token[a] = offer_token.get(a, 0) + 1
                    self._ringing.pop(a, None)
                    self._apply(router.handle(CallerAbandoned(t, a)), t)
                    del call_entry[a]
                    del offer_token[a]
            elif kind == RNA:
                call_id, token = a, b
                if offer_token.get(call_id) == token:
                    agent_id = self._ringing.pop(call_id)
                    offer_token[call_id] = offer_token[call_id] + 1  # (not +=: see acd.stats)
                    self._apply(router.handle(AgentRingNoAnswer(t, agent_id, call_id)), t)
                    gi = self.agent_group[agent_id]
                    self._agenda.push(t + self.scenario.agents[gi].rna_recovery_s, RECOVER, agent_id, None)
            elif kind == RECOVER:
                snap = router.agent(a)
                if snap.state is AgentState.PAUSED and snap.reason == router.rna_reason:
                    self._apply(router.handle(AgentReady(t, a)), t)
            elif kind == SHIFT:
                self._shift(a, b, t)
            elif kind == OUTBOUND:
                assert outbound is not None
                outbound.handle(t, a, b)
            else:  # SAMPLE
                self._sample(t)
                if self._progress is not None:
                    self._progress(min(1.0, t / self.scenario.duration_s))
            deadline = router.next_deadline()
        self.events = events

    def _apply(self, cmds: Sequence[Command], t: float) -> None:
        """Carry out the router's commands as the PBX would."""
        if not cmds:
            return
        for cmd in cmds:
            if type(cmd) is ConnectToAgent:
                call_id, agent_id = cmd.call_id, cmd.agent_id
                entry = self.call_entry.get(call_id)
                if entry is None:  # an outbound call (inbound calls are in call_entry while they last)
                    assert self.outbound is not None
                    self.outbound.connect(cmd, t)
                    continue
                if isnan(self.e_offered[entry]):
                    self.e_offered[entry] = t
                token = self.offer_token[call_id] = self.offer_token[call_id] + 1
                gi = self.agent_group[agent_id]
                p_no = self._p_no_answer[gi]
                if p_no > 0.0 and self.no_answer[gi].below(p_no):
                    self._ringing[call_id] = agent_id
                    self._agenda.push(t + RNA_AFTER_S, RNA, call_id, token)
                    continue
                delay = self.delay[gi].next() if self._has_delay[gi] else 0.0
                if delay <= 0.0:  # picked up at once: the phone never rang for long
                    self._answer(call_id, agent_id, t, entry)
                else:
                    self._ringing[call_id] = agent_id
                    self._agenda.push(t + delay, ANSWER, call_id, token)
            elif type(cmd) is CancelOffer:
                self.offer_token[cmd.call_id] = self.offer_token[cmd.call_id] + 1
                self._ringing.pop(cmd.call_id, None)
            elif type(cmd) is Overflow:
                entry = self.call_entry.get(cmd.call_id)
                if entry is None:  # an outbound human nobody took in 2 s: safe harbour
                    assert self.outbound is not None
                    self.outbound.overflowed(cmd, t)
                    continue
                if self.e_outcome[entry] == PENDING:
                    self.e_outcome[entry] = OVERFLOWED
                    self.e_left[entry] = t
                self.offer_token[cmd.call_id] = self.offer_token[cmd.call_id] + 1
            # Announce: callers in the simulator do not react to announcements.

    def _answer(self, call_id: str, agent_id: str, t: float, entry: int) -> None:
        self.offer_token[call_id] = self.offer_token[call_id] + 1
        self.e_answered[entry] = t
        self.e_outcome[entry] = ANSWERED
        cmds = self.router.handle(CallAnswered(t, call_id, agent_id))
        if cmds:
            self._apply(cmds, t)
        qi = self.e_queue[entry]
        talk = self.handle[qi].next()
        scale = self._handle_scale[qi]
        if scale is not None:
            talk *= self._scaled(qi, self.e_arrived[entry], scale)
        self._agenda.push(t + talk, END, call_id, None)

    def _scaled(self, qi: int, arrived: float, means: tuple[float, ...]) -> float:
        """The mean for a call arriving at ``arrived``: its forecast interval's."""
        k = int(arrived // self._scale_step[qi])
        return means[k if k < len(means) else -1]

    def _on_record(self, rec: CallRecord) -> None:
        """Follow a call the router moved into another queue: it opens a new entry."""
        if rec.outcome is not CallOutcome.OVERFLOWED or "->" not in rec.detail:
            return  # not moved into another queue (voicemail etc. come as a command)
        rule = self.scenario.queues[self.queue_index[rec.queue]].config.overflow
        assert rule is not None and rule.target is not None
        old = self.call_entry[rec.call_id]
        if self.e_outcome[old] == PENDING:
            self.e_outcome[old] = OVERFLOWED
            self.e_left[old] = rec.left_at
        entry = len(self.e_queue)
        self.call_entry[rec.call_id] = entry
        self.e_queue.append(self.queue_index[rule.target])
        self.e_arrived.append(rec.left_at)
        self.e_offered.append(NAN)
        self.e_answered.append(NAN)
        self.e_left.append(NAN)
        self.e_ended.append(NAN)
        self.e_outcome.append(PENDING)

    def _shift(self, ids: list[str], action: int, t: float) -> None:
        router = self.router
        outbound = self.outbound
        for agent_id in ids:
            state = router.agent(agent_id).state
            reason = None if action == BACK else "break" if action == BREAK else "off_shift"
            if outbound is not None and action != LOG_IN and outbound.defer_shift(agent_id, reason):
                continue  # held for a personal call: the break starts (or ends) after it
            if action == LOG_IN:
                event: Event = (
                    AgentLoggedIn(t, agent_id) if state is AgentState.LOGGED_OUT else AgentReady(t, agent_id)
                )
            elif action in (BREAK, OFF):
                if state is AgentState.LOGGED_OUT:
                    continue
                event = AgentPaused(t, agent_id, "break" if action == BREAK else "off_shift")
            else:  # BACK from a break
                if state is AgentState.LOGGED_OUT:
                    continue
                event = AgentReady(t, agent_id)
            self._apply(router.handle(event), t)

    def _sample(self, t: float) -> None:
        avail, busy = [], []
        for g in self.scenario.agents:
            if g.group in self.router.group_names:
                w = self.router.group_stats(g.group, "total")
                avail.append(w.available_s)
                busy.append(w.busy_s)
            else:
                avail.append(0.0)
                busy.append(0.0)
        self._samples.append((t, avail, busy))

    def _log(self, end: float) -> RunLog:
        sc = self.scenario
        samples = self._samples or [(0.0, [0.0] * len(sc.agents), [0.0] * len(sc.agents))]
        return RunLog(
            queue_names=tuple(q.config.name for q in sc.queues),
            service_targets=tuple(q.config.service_target_s for q in sc.queues),
            group_names=tuple(g.group for g in sc.agents),
            # fromiter: a quarter faster than np.array, which first walks a list to
            # find its shape and type.
            entry_queue=_ints(self.e_queue),
            entry_arrived=_floats(self.e_arrived),
            entry_offered=_floats(self.e_offered),
            entry_answered=_floats(self.e_answered),
            entry_left=_floats(self.e_left),
            entry_ended=_floats(self.e_ended),
            entry_outcome=_ints(self.e_outcome),
            sample_times=np.asarray([s[0] for s in samples]),
            group_available=np.asarray([s[1] for s in samples]),
            group_busy=np.asarray([s[2] for s in samples]),
            end_s=end,
            events=self.events,
            campaigns=() if self.outbound is None else self.outbound.finish(),
        )


def _floats(values: list[float]) -> np.ndarray:
    return np.fromiter(values, dtype=np.float64, count=len(values))


def _ints(values: list[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64, count=len(values))


# Sent to and from worker processes (ccd simulate --jobs); see acd.pickling.
pickle_by_fields(RunLog)
