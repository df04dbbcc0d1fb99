"""Random sequences of everything that can happen in a contact centre, with the ACD's
invariants checked after every step (hypothesis rule-based state machine).

The machine fires the router's timers one deadline at a time, so every offer is
checked at the exact time it was made.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from acd.agents import AgentProfile, AgentState
from acd.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentReady,
    AgentRingNoAnswer,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallerAbandoned,
    CallTransferred,
    CancelOffer,
    ConnectToAgent,
    OfferFailed,
    Overflow,
    OverflowAction,
    WrapUpDone,
)
from acd.queues import OverflowRule, QueueConfig, RelaxationStep
from acd.router import CallState, Router

LEVELS = st.sampled_from([0.0, 0.2, 0.4, 0.6, 0.6, 0.8, 1.0, 1.0])
DT = st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, 12.0])
N_AGENTS = 6


def queues(policy: str, wrap: float | None) -> list[QueueConfig]:
    return [
        QueueConfig(
            "sales",
            skills={"sales": 0.6},
            policy=policy,
            wrap_up_s=wrap,
            relaxation=(RelaxationStep(10, min_levels={"sales": 0.3}),),
        ),
        QueueConfig(
            "support",
            skills={"support": 0.5, "lang": 0.5},
            groups=("t2",),
            policy=policy,
            relaxation=(RelaxationStep(15, add_groups=("t1",)), RelaxationStep(30, drop_skills=("lang",))),
            ring_timeout_s=20,
        ),
        QueueConfig(
            "vip",
            max_length=2,
            overflow=OverflowRule(OverflowAction.VOICEMAIL),
            max_wait_s=40,
            ring_timeout_s=None,
        ),
    ]


class ContactCentre(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.router: Router
        self.t = 0.0
        self.seq = 0
        self.head = 0
        self.order: dict[str, int] = {}  # call -> arrival order in its current queue
        self.n_calls = 0

    @initialize(
        skills=st.lists(
            st.tuples(LEVELS, LEVELS, LEVELS, st.sampled_from(["t1", "t2"])),
            min_size=N_AGENTS,
            max_size=N_AGENTS,
        ),
        policy=st.sampled_from(["longest_idle", "most_skilled", "least_talk_time", "round_robin"]),
        selection=st.sampled_from(["oldest", "target_ratio"]),
        wrap=st.sampled_from([0.0, 3.0, None]),
    )
    def setup(
        self, skills: list[tuple[float, float, float, str]], policy: str, selection: str, wrap: float | None
    ) -> None:
        self.router = Router(queues(policy, wrap), call_selection=selection)
        for i, (sales, support, lang, group) in enumerate(skills):
            profile = AgentProfile(
                f"a{i}", group=group, skills={"sales": sales, "support": support, "lang": lang}
            )
            self.router.register_agent(profile)

    # --- driving ------------------------------------------------------------------------

    def fire_until(self, t: float) -> None:
        while (due := self.router.next_deadline()) is not None and due <= t:
            before = self.waiting_now()
            self.check_commands(self.router.on_timer(due), before)

    def advance(self, dt: float) -> None:
        self.t += dt
        self.fire_until(self.t)

    def send(self, dt: float, make: object) -> None:
        t = self.t + dt
        self.fire_until(t)
        self.t = t
        before = self.waiting_now()
        self.check_commands(self.router.handle(make(t)), before)  # type: ignore[operator]
        self.fire_until(t)

    def waiting_now(self) -> set[str]:
        return {c.call_id for c in self.router.calls() if c.state is CallState.WAITING}

    def check_commands(self, cmds: list[object], waiting_before: set[str]) -> None:
        r = self.router
        offered_now = {c.call_id for c in cmds if isinstance(c, ConnectToAgent)}
        for cmd in cmds:
            if isinstance(cmd, ConnectToAgent):
                call = r.call(cmd.call_id)
                assert call is not None and call.state is CallState.OFFERED and call.agent_id == cmd.agent_id
                level = r.relaxation_level(cmd.call_id)
                qualifying = r.qualifying_level(cmd.agent_id, call.queue)
                # Only to an agent qualified at the call's (relaxed) level.
                assert qualifying is not None and level is not None and qualifying <= level, (
                    cmd,
                    level,
                    qualifying,
                )
                # First come, first served within the queue and priority: no older call of
                # the class that waited through this whole step may still wait. (One step
                # can fire several timers: a call that was ringing another agent when this
                # one was offered, and came back later in the step, was not passed over.)
                for other in r.calls():
                    if (
                        other.queue == call.queue
                        and other.priority == call.priority
                        and other.state is CallState.WAITING
                        and other.call_id in waiting_before
                        and other.call_id not in offered_now
                    ):
                        assert self.order[other.call_id] > self.order[cmd.call_id], (cmd, other)
            elif isinstance(cmd, Overflow):
                assert r.call(cmd.call_id) is None
            elif isinstance(cmd, CancelOffer):
                snapshot = r.call(cmd.call_id)
                assert snapshot is None or snapshot.agent_id != cmd.agent_id

    def pick(self, items: list[str], index: int) -> str | None:
        return items[index % len(items)] if items else None

    def calls_in(self, *states: CallState) -> list[str]:
        return sorted(c.call_id for c in self.router.calls() if c.state in states)

    def agents_in(self, *states: AgentState) -> list[str]:
        return sorted(a.agent_id for a in self.router.agents() if a.state in states)

    # --- rules --------------------------------------------------------------------------

    @rule(queue=st.sampled_from(["sales", "support", "vip"]), priority=st.sampled_from([0, 0, 1, 5]), dt=DT)
    def arrive(self, queue: str, priority: int, dt: float) -> None:
        self.n_calls += 1
        call_id = f"c{self.n_calls}"
        self.seq += 1
        self.order[call_id] = self.seq
        self.send(dt, lambda t: CallArrived(t, call_id, queue, priority=priority))

    def to_ringing_agent(self, i: int, dt: float, make: Callable[[float, str, str], object]) -> None:
        """Send make(t, call, agent) for an offered call if, after dt, it still rings them."""
        call_id = self.pick(self.calls_in(CallState.OFFERED), i)
        if call_id is None:
            return
        snap = self.router.call(call_id)
        assert snap is not None and snap.agent_id is not None
        agent_id = snap.agent_id
        self.advance(dt)
        if (s := self.router.call(call_id)) is not None and s.agent_id == agent_id:
            self.send(0.0, lambda t: make(t, call_id, agent_id))

    @rule(i=st.integers(0, 50), dt=DT)
    def answer(self, i: int, dt: float) -> None:
        self.to_ringing_agent(i, dt, CallAnswered)

    @rule(i=st.integers(0, 50), dt=DT)
    def ring_no_answer(self, i: int, dt: float) -> None:
        self.to_ringing_agent(i, dt, lambda t, call, agent: AgentRingNoAnswer(t, agent, call))

    @rule(i=st.integers(0, 50), dt=DT)
    def offer_failed(self, i: int, dt: float) -> None:
        self.to_ringing_agent(i, dt, lambda t, call, agent: OfferFailed(t, agent, call))

    @rule(i=st.integers(0, 50), dt=DT)
    def caller_hangs_up(self, i: int, dt: float) -> None:
        call_id = self.pick(self.calls_in(CallState.WAITING, CallState.OFFERED, CallState.TALKING), i)
        if call_id is not None:
            self.send(dt, lambda t: CallEnded(t, call_id) if i % 2 else CallerAbandoned(t, call_id))

    @rule(i=st.integers(0, 50), dest=st.sampled_from(["sales", "support", "vip"]), dt=DT)
    def transfer(self, i: int, dest: str, dt: float) -> None:
        call_id = self.pick(self.calls_in(CallState.TALKING), i)
        if call_id is not None:
            self.advance(dt)
            snap = self.router.call(call_id)
            if snap is not None and snap.state is CallState.TALKING:
                self.seq += 1
                self.order[call_id] = self.seq
                self.send(0.0, lambda t: CallTransferred(t, call_id, dest))

    @rule(i=st.integers(0, N_AGENTS - 1), dt=DT)
    def log_in(self, i: int, dt: float) -> None:
        self.send(dt, lambda t: AgentLoggedIn(t, f"a{i}"))

    @rule(i=st.integers(0, N_AGENTS - 1), dt=DT)
    def log_out(self, i: int, dt: float) -> None:
        self.advance(dt)
        snap = self.router.agent(f"a{i}")
        if snap.call_id is not None and self.router.call(snap.call_id).state is CallState.TALKING:  # type: ignore[union-attr]
            self.head -= 1
            self.order[snap.call_id] = self.head  # goes back at the head
        self.send(0.0, lambda t: AgentLoggedOut(t, f"a{i}"))

    @rule(i=st.integers(0, 50), reason=st.sampled_from(["lunch", "training"]), dt=DT)
    def pause(self, i: int, reason: str, dt: float) -> None:
        agent_id = self.pick(self.agents_in(*(s for s in AgentState if s is not AgentState.LOGGED_OUT)), i)
        if agent_id is not None:
            self.advance(dt)
            if self.router.agent(agent_id).state is not AgentState.LOGGED_OUT:
                self.send(0.0, lambda t: AgentPaused(t, agent_id, reason))

    @rule(i=st.integers(0, 50), dt=DT)
    def ready(self, i: int, dt: float) -> None:
        agent_id = self.pick(self.agents_in(*(s for s in AgentState if s is not AgentState.LOGGED_OUT)), i)
        if agent_id is not None:
            self.advance(dt)
            if self.router.agent(agent_id).state is not AgentState.LOGGED_OUT:
                self.send(0.0, lambda t: AgentReady(t, agent_id))

    @rule(i=st.integers(0, 50), dt=DT)
    def wrap_up_done(self, i: int, dt: float) -> None:
        agent_id = self.pick(self.agents_in(AgentState.WRAP_UP), i)
        if agent_id is not None:
            self.advance(dt)
            if self.router.agent(agent_id).state is AgentState.WRAP_UP:
                self.send(0.0, lambda t: WrapUpDone(t, agent_id))

    @rule(dt=st.sampled_from([1.0, 10.0, 30.0]))
    def time_passes(self, dt: float) -> None:
        self.t += dt
        self.fire_until(self.t)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def one_call_per_agent_and_consistent(self) -> None:
        if not hasattr(self, "router"):
            return
        holders: dict[str, str] = {}
        for call in self.router.calls():
            if call.agent_id is not None:
                assert call.agent_id not in holders, "an agent holds two calls"
                holders[call.agent_id] = call.call_id
                agent = self.router.agent(call.agent_id)
                assert agent.call_id == call.call_id
                expected = AgentState.RESERVED if call.state is CallState.OFFERED else AgentState.TALKING
                assert agent.state is expected
        for agent in self.router.agents():
            if agent.call_id is not None:
                assert holders.get(agent.agent_id) == agent.call_id

    @invariant()
    def no_call_waits_while_a_qualified_agent_is_idle(self) -> None:
        if not hasattr(self, "router"):
            return
        r = self.router
        ready = self.agents_in(AgentState.READY)
        for call in r.calls():
            if call.state is CallState.WAITING:
                level = r.relaxation_level(call.call_id)
                assert level is not None
                for agent_id in ready:
                    q = r.qualifying_level(agent_id, call.queue)
                    assert q is None or q > level, (call, agent_id, q, level)

    @invariant()
    def counters_add_up(self) -> None:
        if not hasattr(self, "router"):
            return
        r = self.router
        for name in r.queue_names:
            w = r.queue_stats(name, "total")
            here = [c for c in r.calls() if c.queue == name]
            waiting = sum(c.state is CallState.WAITING for c in here)
            ringing = sum(c.state is CallState.OFFERED for c in here)
            assert w.offered == w.answered + w.abandoned + w.overflowed + waiting + ringing, (name, w)
            assert r.waiting_count(name) == waiting

    @invariant()
    def waiting_lines_list_each_waiting_call_once_in_offer_order(self) -> None:
        if not hasattr(self, "router"):
            return
        r = self.router
        calls = {c.call_id: c for c in r.calls()}
        for name in r.queue_names:
            line = r.waiting_calls(name)
            assert len(line) == len(set(line)) == r.waiting_count(name)
            assert all(calls[c].queue == name and calls[c].state is CallState.WAITING for c in line)
            # Offer order: priority, then place in the queue. The place is the call's
            # arrival order, which a call put back (its agent logged out mid-call,
            # say) keeps while its arrival time restarts: hence the router's own.
            ranks = [(-calls[c].priority, r._calls[c].order) for c in line]
            assert ranks == sorted(ranks), (name, line)
            assert [r.position(c) for c in line] == list(range(1, len(line) + 1))


ContactCentre.TestCase.settings = settings(max_examples=400, stateful_step_count=80, deadline=None)
TestContactCentre = ContactCentre.TestCase


def test_long_random_walks() -> None:
    """Hypothesis favours short runs; these seeded walks go deep (busy queues, long
    shifts) through the same rules and invariants, 3,000 steps each."""
    for seed in range(4):
        rnd = random.Random(seed)
        m = ContactCentre()
        skills = [
            (
                rnd.choice([0.2, 0.6, 0.8, 1.0]),
                rnd.choice([0.2, 0.6, 1.0]),
                rnd.choice([0.4, 0.6]),
                rnd.choice(["t1", "t2"]),
            )
            for _ in range(N_AGENTS)
        ]
        m.setup(
            skills,
            rnd.choice(["longest_idle", "most_skilled", "least_talk_time", "round_robin"]),
            rnd.choice(["oldest", "target_ratio"]),
            rnd.choice([0.0, 3.0, None]),
        )
        dts = [0.0, 0.5, 1.0, 2.0, 5.0, 12.0]
        connects = 0
        for _ in range(3000):
            dt = rnd.choice(dts)
            i = rnd.randrange(50)
            action = rnd.choices(
                [
                    "arrive",
                    "answer",
                    "rna",
                    "failed",
                    "hangup",
                    "transfer",
                    "login",
                    "logout",
                    "pause",
                    "ready",
                    "wrap",
                    "time",
                ],
                weights=[6, 6, 1, 1, 3, 1, 2, 1, 1, 3, 2, 1],
            )[0]
            if action == "arrive":
                m.arrive(rnd.choice(["sales", "support", "vip"]), rnd.choice([0, 0, 1, 5]), dt)
            elif action == "answer":
                connects += 1
                m.answer(i, dt)
            elif action == "rna":
                m.ring_no_answer(i, dt)
            elif action == "failed":
                m.offer_failed(i, dt)
            elif action == "hangup":
                m.caller_hangs_up(i, dt)
            elif action == "transfer":
                m.transfer(i, rnd.choice(["sales", "support", "vip"]), dt)
            elif action == "login":
                m.log_in(i % N_AGENTS, dt)
            elif action == "logout":
                m.log_out(i % N_AGENTS, dt)
            elif action == "pause":
                m.pause(i, rnd.choice(["lunch", "training"]), dt)
            elif action == "ready":
                m.ready(i, dt)
            elif action == "wrap":
                m.wrap_up_done(i, dt)
            else:
                m.time_passes(rnd.choice([1.0, 10.0, 30.0]))
            m.one_call_per_agent_and_consistent()
            m.no_call_waits_while_a_qualified_agent_is_idle()
            m.counters_add_up()
        assert (
            m.router.queue_stats("sales", "total").answered
            + m.router.queue_stats("support", "total").answered
            > 50
        )
