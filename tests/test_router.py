"""The ACD engine, one behaviour at a time: policies, transitions, overflow, statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.agents import AgentProfile, AgentState, IllegalTransitionError, transition_table_markdown
from acd.errors import InputError, RouterError
from acd.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentReady,
    AgentRingNoAnswer,
    Announce,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallerAbandoned,
    CallOutcome,
    CallRecord,
    CallTransferred,
    CancelOffer,
    ConnectToAgent,
    OfferFailed,
    Overflow,
    OverflowAction,
    WrapUpDone,
)
from acd.policies import IdleAgent, register_policy
from acd.queues import OverflowRule, QueueConfig, RelaxationStep
from acd.router import CallState, Router, _Agent, _Call, _IdleLine, _WaitLine, _weights
from acd.stats import GroupStats


def make(*queues: QueueConfig, agents: dict[str, dict[str, float]] | None = None, **kw: object) -> Router:
    router = Router(queues or (QueueConfig("q", skills={"s": 0.5}),), **kw)  # type: ignore[arg-type]
    for agent_id, skills in (agents or {}).items():
        router.register_agent(AgentProfile(agent_id, skills=skills))
    return router


def login(router: Router, at: float, *agent_ids: str) -> list[object]:
    out: list[object] = []
    for agent_id in agent_ids:
        out += router.handle(AgentLoggedIn(at, agent_id))
    return out


def connects(cmds: list[object]) -> list[tuple[str, str]]:
    return [(c.call_id, c.agent_id) for c in cmds if isinstance(c, ConnectToAgent)]


# --- agent policies -----------------------------------------------------------------


def test_longest_idle_is_the_default() -> None:
    r = make(agents={"a": {"s": 1}, "b": {"s": 1}, "c": {"s": 1}})
    login(r, 0, "b")
    login(r, 5, "a", "c")
    assert connects(r.handle(CallArrived(10, "c1", "q"))) == [("c1", "b")]
    assert connects(r.handle(CallArrived(11, "c2", "q"))) == [("c2", "a")]  # a and c tie: first registered


def test_most_skilled_first() -> None:
    r = make(
        QueueConfig("q", skills={"s": 0.5}, policy="most_skilled"), agents={"a": {"s": 0.6}, "b": {"s": 0.9}}
    )
    login(r, 0, "a", "b")
    assert connects(r.handle(CallArrived(1, "c1", "q"))) == [("c1", "b")]


def test_least_talk_time() -> None:
    r = make(
        QueueConfig("q", skills={"s": 0.5}, policy="least_talk_time"), agents={"a": {"s": 1}, "b": {"s": 1}}
    )
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    r.handle(CallAnswered(2, "c1", "a"))
    r.handle(CallEnded(100, "c1"))  # a talked 98 s, then b logs in
    login(r, 200, "b")
    assert connects(r.handle(CallArrived(300, "c2", "q"))) == [("c2", "b")]


def test_round_robin() -> None:
    r = make(QueueConfig("q", skills={"s": 0.5}, policy="round_robin"), agents={"a": {"s": 1}, "b": {"s": 1}})
    login(r, 0, "a", "b")
    r.handle(CallArrived(1, "c1", "q"))  # a (never offered, first registered)
    r.handle(CallAnswered(1, "c1", "a"))
    r.handle(CallEnded(2, "c1"))  # a ready again, longest idle would now pick b anyway
    r.handle(CallArrived(3, "c2", "q"))
    r.handle(CallAnswered(3, "c2", "b"))
    r.handle(CallEnded(4, "c2"))
    # Now b is idle since 4, a since 2: longest idle says a; round robin says a too (offered
    # before b). Pause b's tie-breaker: offer order is a=1, b=2.
    assert connects(r.handle(CallArrived(5, "c3", "q"))) == [("c3", "a")]


def test_custom_policy_registered_by_name() -> None:
    class Alphabetical:
        def key(self, agent: IdleAgent) -> tuple[float, ...]:
            return (float(ord(agent.agent_id[0])),)

    register_policy("alphabetical", Alphabetical())
    r = make(QueueConfig("q", policy="alphabetical"), agents={"zed": {}, "amy": {}})
    login(r, 0, "amy")
    login(r, 1, "zed")
    r.handle(AgentPaused(2, "amy"))
    r.handle(AgentReady(3, "amy"))  # amy is now idle for less time than zed
    assert connects(r.handle(CallArrived(4, "c1", "q"))) == [("c1", "amy")]


def test_a_policy_whose_keys_change_length_is_refused() -> None:
    """Idle heaps store one-value keys as floats: mixed lengths could not be compared."""

    class Fickle:
        def key(self, agent: IdleAgent) -> tuple[float, ...]:
            return (agent.idle_since,) if agent.agent_id == "a" else (agent.idle_since, 0.0)

    register_policy("fickle", Fickle())
    r = make(QueueConfig("q", policy="fickle"), agents={"a": {}, "b": {}})
    login(r, 0, "a")
    with pytest.raises(RouterError, match="policy 'fickle' gave a key of 2 values after keys of 1"):
        login(r, 1, "b")


def test_group_time_weights_follow_the_state_definitions() -> None:
    """Available = ready or busy; busy = ringing, talking or wrap-up (acd.stats)."""
    busy = {AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP}
    for s in AgentState:
        expected = (int(s in busy or s is AgentState.READY), int(s in busy), int(s is AgentState.TALKING))
        assert _weights(s) == expected, s


def test_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(InputError, match="unknown policy 'fastest'"):
        Router([QueueConfig("q", policy="fastest")])


# --- skills and relaxation -----------------------------------------------------------


def test_only_qualified_agents_and_allow_lists() -> None:
    r = Router([QueueConfig("sales", skills={"sales": 0.5}), QueueConfig("support", skills={"support": 0.5})])
    r.register_agent(AgentProfile("low", skills={"sales": 0.4, "support": 0.9}, queues=("sales",)))
    r.register_agent(AgentProfile("ok", skills={"sales": 0.5}))
    login(r, 0, "low", "ok")
    assert connects(r.handle(CallArrived(1, "c1", "support"))) == []  # low is barred from support
    assert connects(r.handle(CallArrived(2, "c2", "sales"))) == [("c2", "ok")]
    assert connects(r.handle(CallArrived(3, "c3", "sales"))) == []  # low: 0.4 < 0.5


def test_relaxation_widens_the_pool_after_the_threshold() -> None:
    q = QueueConfig(
        "q",
        skills={"s": 0.8},
        groups=("tier2",),
        relaxation=(RelaxationStep(20, min_levels={"s": 0.5}), RelaxationStep(40, add_groups=("tier1",))),
    )
    r = Router([q])
    r.register_agent(AgentProfile("mid", group="tier2", skills={"s": 0.6}))
    r.register_agent(AgentProfile("junior", group="tier1", skills={"s": 0.9}))
    login(r, 0, "mid", "junior")
    assert r.qualifying_level("mid", "q") == 1 and r.qualifying_level("junior", "q") == 2
    assert r.handle(CallArrived(0, "c1", "q")) == []
    assert r.next_deadline() == 20
    assert r.on_timer(19.9) == []
    assert connects(r.on_timer(20)) == [("c1", "mid")]
    r.handle(CallAnswered(21, "c1", "mid"))
    r.handle(CallArrived(21, "c2", "q"))
    assert r.next_deadline() == 41
    assert connects(r.on_timer(61)) == [("c2", "junior")]


def test_strict_match_preferred_over_relaxed() -> None:
    q = QueueConfig("q", skills={"s": 0.8}, relaxation=(RelaxationStep(10, min_levels={"s": 0.1}),))
    r = make(q, agents={"weak": {"s": 0.2}, "strong": {"s": 0.9}})
    login(r, 0, "weak")
    login(r, 1, "strong")  # weak has been idle longer, but is only a relaxed match
    r.handle(CallArrived(2, "c1", "q"))
    r.handle(CallArrived(3, "c2", "q"))
    assert r.call("c1").agent_id == "strong"  # type: ignore[union-attr]
    assert connects(r.on_timer(13)) == [("c2", "weak")]


def test_freed_agent_takes_only_calls_relaxed_enough_for_them() -> None:
    q = QueueConfig("q", skills={"s": 0.8}, relaxation=(RelaxationStep(30, min_levels={"s": 0.1}),))
    r = make(q, agents={"weak": {"s": 0.2}, "strong": {"s": 0.9}})
    login(r, 0, "strong")
    r.handle(CallArrived(1, "busy", "q"))
    r.handle(CallAnswered(1, "busy", "strong"))
    r.handle(CallArrived(5, "c1", "q"))
    assert login(r, 10, "weak") == []  # c1 has waited 5 s < 30 s
    assert connects(r.on_timer(35)) == [("c1", "weak")]


# --- call choice when an agent frees up ---------------------------------------------


def busy_agent_router(*queues: QueueConfig, **kw: object) -> Router:
    r = make(*queues, agents={"a": {"s": 1, "t": 1}}, **kw)
    login(r, 0, "a")
    r.handle(CallArrived(0, "first", queues[0].name))
    r.handle(CallAnswered(0, "first", "a"))
    return r


def test_priority_then_longest_wait() -> None:
    r = busy_agent_router(QueueConfig("q", skills={"s": 0.5}))
    r.handle(CallArrived(1, "old", "q"))
    r.handle(CallArrived(2, "vip", "q", priority=5))
    r.handle(CallArrived(3, "new", "q"))
    assert r.waiting_calls("q") == ["vip", "old", "new"]
    assert r.position("old") == 2
    assert connects(r.handle(CallEnded(10, "first"))) == [("vip", "a")]


def test_across_queues_longest_wait_or_target_ratio() -> None:
    queues = (QueueConfig("q", skills={"s": 0.5}, service_target_s=60), QueueConfig("t", skills={"t": 0.5}))
    r = busy_agent_router(*queues)
    r.handle(CallArrived(1, "slow-target", "q"))  # waits 19 s of a 60 s target
    r.handle(CallArrived(5, "fast-target", "t"))  # waits 15 s of a 20 s target
    assert connects(r.handle(CallEnded(20, "first"))) == [("slow-target", "a")]
    r = busy_agent_router(*queues, call_selection="target_ratio")
    r.handle(CallArrived(1, "slow-target", "q"))
    r.handle(CallArrived(5, "fast-target", "t"))
    assert connects(r.handle(CallEnded(20, "first"))) == [("fast-target", "a")]


# --- transitions ---------------------------------------------------------------------


def test_ring_no_answer_requeues_at_head_and_pauses_agent() -> None:
    r = make(agents={"a": {"s": 1}, "b": {"s": 1}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    r.handle(CallArrived(2, "c2", "q"))
    assert r.waiting_calls("q") == ["c2"]
    assert r.handle(AgentRingNoAnswer(10, "a", "c1")) == []
    assert r.agent("a").state is AgentState.PAUSED and r.agent("a").reason == "rna"
    assert r.waiting_calls("q") == ["c1", "c2"]  # its original place: the head
    assert connects(login(r, 11, "b")) == [("c1", "b")]


def test_offer_failed_requeues_at_head_and_frees_the_agent() -> None:
    r = make(agents={"a": {"s": 1}, "b": {"s": 1}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    r.handle(CallArrived(2, "c2", "q"))
    # Nobody else is free: the same agent is offered the call again, not paused.
    assert connects(r.handle(OfferFailed(3, "a", "c1"))) == [("c1", "a")]
    assert r.agent("a").state is AgentState.RESERVED and r.agent("a").reason == ""
    login(r, 4, "b")  # b takes c2
    r.handle(AgentPaused(5, "a", "lunch"))  # a pause asked while reserved waits
    assert connects(r.handle(OfferFailed(6, "a", "c1"))) == []
    assert r.agent("a").state is AgentState.PAUSED and r.agent("a").reason == "lunch"
    assert r.waiting_calls("q") == ["c1"]
    with pytest.raises(RouterError):
        r.handle(OfferFailed(7, "a", "c1"))  # not offered any more


def test_ring_timeout_is_the_routers_backstop() -> None:
    r = make(QueueConfig("q", ring_timeout_s=15), agents={"a": {}, "b": {}})
    login(r, 0, "a", "b")
    r.handle(CallArrived(1, "c1", "q"))
    cmds = r.on_timer(16)
    assert CancelOffer("c1", "a") in cmds
    assert ("c1", "b") in connects(cmds)
    assert r.agent("a").reason == "rna"


def test_caller_hangs_up_while_ringing_agent_back_to_ready() -> None:
    r = make(agents={"a": {"s": 1}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    r.handle(CallerAbandoned(3, "c1"))
    assert r.agent("a").state is AgentState.READY
    w = r.queue_stats("q")
    assert (w.offered, w.abandoned, w.short_abandoned, w.answered) == (1, 1, 1, 0)


def test_wrap_up_timer_then_ready_and_pending_pause() -> None:
    r = make(QueueConfig("q", wrap_up_s=30), agents={"a": {}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    r.handle(CallAnswered(2, "c1", "a"))
    r.handle(AgentPaused(50, "a", reason="lunch"))  # asked while talking: kept pending
    assert r.agent("a").state is AgentState.TALKING and r.agent("a").pending_pause == "lunch"
    r.handle(CallEnded(60, "c1"))
    assert r.agent("a").state is AgentState.WRAP_UP
    assert r.next_deadline() == 90
    r.on_timer(90)
    assert r.agent("a").state is AgentState.PAUSED and r.agent("a").reason == "lunch"
    r.handle(AgentReady(100, "a"))
    assert r.agent("a").state is AgentState.READY


def test_wrap_up_until_agent_says_ready() -> None:
    r = make(QueueConfig("q", wrap_up_s=None), agents={"a": {}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    r.handle(CallAnswered(1, "c1", "a"))
    r.handle(CallEnded(5, "c1"))
    r.handle(CallArrived(6, "c2", "q"))
    assert r.next_deadline() != 5  # no wrap timer
    assert connects(r.handle(WrapUpDone(300, "a"))) == [("c2", "a")]


def test_logout_mid_call_requeues_the_caller() -> None:
    r = make(QueueConfig("q"), agents={"a": {}, "b": {}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    r.handle(CallAnswered(2, "c1", "a"))
    r.handle(AgentLoggedOut(3, "a"))  # the agent's leg dropped
    assert r.call("c1").state is CallState.WAITING  # type: ignore[union-attr]
    assert connects(login(r, 4, "b")) == [("c1", "b")]
    assert r.agent("a").state is AgentState.LOGGED_OUT


def test_a_caller_put_back_mid_call_keeps_their_place() -> None:
    """Found by the state machine's waiting-line check: the caller goes back ahead of
    one who arrived after them, though their wait restarts (for max wait)."""
    r = make(QueueConfig("q"), agents={"a": {}})
    r.handle(CallArrived(0, "c1", "q"))
    r.handle(CallArrived(0, "c2", "q"))
    login(r, 1, "a")
    r.handle(CallAnswered(1, "c1", "a"))
    r.handle(AgentLoggedOut(1, "a"))
    assert r.waiting_calls("q") == ["c1", "c2"]
    assert (r.position("c1"), r.position("c2")) == (1, 2)
    assert r.call("c1").arrived_at == 1.0  # type: ignore[union-attr]


def test_logout_while_ringing_cancels_the_offer() -> None:
    r = make(QueueConfig("q"), agents={"a": {}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    assert r.handle(AgentLoggedOut(2, "a")) == [CancelOffer("c1", "a")]
    assert r.waiting_calls("q") == ["c1"]


def test_transfer_to_another_queue() -> None:
    r = Router([QueueConfig("front"), QueueConfig("billing", skills={"billing": 0.5})])
    r.register_agent(AgentProfile("a", skills={}))
    r.register_agent(AgentProfile("b", skills={"billing": 1.0}))
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "front"))
    r.handle(CallAnswered(2, "c1", "a"))
    cmds = r.handle(CallTransferred(30, "c1", "billing"))
    assert r.call("c1").queue == "billing"  # type: ignore[union-attr]
    assert ("c1", "a") not in connects(cmds)
    assert connects(login(r, 31, "b")) == [("c1", "b")]
    assert r.queue_stats("front").answered == 1 and r.queue_stats("billing").offered == 1


def test_illegal_moves_raise_one_error_type() -> None:
    r = make(agents={"a": {}})
    with pytest.raises(IllegalTransitionError, match="cannot ready while logged_out"):
        r.handle(AgentReady(0, "a"))
    login(r, 0, "a")
    with pytest.raises(IllegalTransitionError):
        r.handle(WrapUpDone(1, "a"))
    with pytest.raises(RouterError, match="was not offered"):
        r.handle(CallAnswered(1, "nope", "a"))
    with pytest.raises(RouterError, match="unknown agent"):
        r.handle(AgentLoggedIn(1, "ghost"))
    with pytest.raises(RouterError, match="unknown queue"):
        r.handle(CallArrived(1, "c", "nowhere"))
    r.handle(CallArrived(1, "c", "q"))
    with pytest.raises(RouterError, match="already in the ACD"):
        r.handle(CallArrived(2, "c", "q"))
    with pytest.raises(RouterError, match="before the router's clock"):
        r.handle(CallEnded(0, "c"))
    assert r.handle(CallEnded(3, "gone-already")) == []  # unknown hang-ups are harmless


def test_idempotent_login_and_logout() -> None:
    r = make(agents={"a": {}})
    login(r, 0, "a")
    login(r, 1, "a")
    r.handle(AgentLoggedOut(2, "a"))
    r.handle(AgentLoggedOut(3, "a"))
    assert r.agent("a").state is AgentState.LOGGED_OUT


def test_skill_change_mid_shift_takes_effect() -> None:
    r = make(agents={"a": {"s": 0.1}})
    login(r, 0, "a")
    r.handle(CallArrived(1, "c1", "q"))
    assert connects(r.register_agent(AgentProfile("a", skills={"s": 0.9}))) == [("c1", "a")]


# --- overflow ---------------------------------------------------------------------------


def test_queue_full_overflows_to_another_queue() -> None:
    full = QueueConfig("q", max_length=1, overflow=OverflowRule(OverflowAction.QUEUE, "spill"))
    r = Router([full, QueueConfig("spill")])
    r.handle(CallArrived(0, "c1", "q"))
    r.handle(CallArrived(1, "c2", "q"))
    assert r.waiting_calls("q") == ["c1"] and r.waiting_calls("spill") == ["c2"]
    assert r.queue_stats("q").overflowed == 1


def test_max_wait_goes_to_voicemail() -> None:
    q = QueueConfig("q", max_wait_s=60, overflow=OverflowRule(OverflowAction.VOICEMAIL))
    r = Router([q])
    r.handle(CallArrived(0, "c1", "q"))
    assert r.next_deadline() == 60
    assert r.on_timer(60) == [Overflow("c1", "q", OverflowAction.VOICEMAIL, "max_wait")]
    assert r.call("c1") is None
    assert r.handle(CallEnded(61, "c1")) == []  # the voicemail hang-up arrives later


def test_overflow_cycle_ends_in_busy() -> None:
    a = QueueConfig("a", max_length=0, overflow=OverflowRule(OverflowAction.QUEUE, "b"))
    b = QueueConfig("b", max_length=0, overflow=OverflowRule(OverflowAction.QUEUE, "a"))
    r = Router([a, b])
    cmds = r.handle(CallArrived(0, "c1", "a"))
    assert cmds[-1] == Overflow("c1", "a", OverflowAction.BUSY, "full")


def test_overflow_config_errors() -> None:
    with pytest.raises(InputError, match="needs an overflow rule"):
        QueueConfig("q", max_wait_s=10)
    with pytest.raises(InputError, match="unknown target queue 'x'"):
        Router([QueueConfig("q", max_length=1, overflow=OverflowRule(OverflowAction.QUEUE, "x"))])
    with pytest.raises(InputError, match="may only lower a level"):
        QueueConfig("q", skills={"s": 0.5}, relaxation=(RelaxationStep(10, min_levels={"s": 0.7}),))
    with pytest.raises(InputError, match="increasing order"):
        QueueConfig("q", relaxation=(RelaxationStep(10), RelaxationStep(5)))
    with pytest.raises(InputError, match=r"skills\.s"):
        QueueConfig("q", skills={"s": 2.0})


# --- announcements and statistics ---------------------------------------------------------


def test_announcements_with_position_and_expected_wait() -> None:
    r = make(QueueConfig("q", announce_every_s=30), agents={"a": {}})
    login(r, 0, "a")
    r.handle(CallArrived(0, "c0", "q"))
    r.handle(CallAnswered(0, "c0", "a"))
    r.handle(CallEnded(60, "c0"))
    r.handle(AgentPaused(60, "a"))
    r.handle(CallArrived(61, "c1", "q"))
    r.handle(CallArrived(62, "c2", "q"))
    cmds = r.on_timer(92)
    announce = [c for c in cmds if isinstance(c, Announce)]
    assert [(a.call_id, a.position) for a in announce] == [("c1", 1), ("c2", 2)]
    # c1 is announced at 91 s: position 1 / (one answer in the 91 s since the start).
    assert announce[0].expected_wait_s == pytest.approx(91.0)
    assert announce[1].expected_wait_s == pytest.approx(2 * 92.0)


def test_statistics_windows_and_variants() -> None:
    records: list[CallRecord] = []
    q = QueueConfig("q", service_target_s=20, short_abandon_s=5)
    r = Router([q], observers=[records.append])
    r.register_agent(AgentProfile("a"))
    login(r, 0, "a")
    r.handle(AgentPaused(0, "a"))
    r.handle(CallArrived(0, "fast", "q"))
    r.handle(CallArrived(0, "slow", "q"))
    r.handle(CallArrived(0, "short", "q"))
    r.handle(CallArrived(0, "long", "q"))
    r.handle(CallerAbandoned(2, "short"))
    r.handle(AgentReady(10, "a"))  # fast: offered at 10
    r.handle(CallAnswered(12, "fast", "a"))
    r.handle(CallerAbandoned(40, "long"))
    r.handle(CallEnded(50, "fast"))  # slow offered at 50
    r.handle(CallAnswered(50, "slow", "a"))
    w = r.queue_stats("q", "15m")
    assert (w.offered, w.answered, w.answered_within_target, w.abandoned, w.short_abandoned) == (
        4,
        2,
        1,
        2,
        1,
    )
    assert w.service_level == pytest.approx(1 / 4)
    assert w.service_level_of_answered == pytest.approx(1 / 2)
    assert w.service_level_excl_short == pytest.approx(1 / 3)
    assert w.asa_s == pytest.approx((12 + 50) / 2)
    assert w.abandon_rate == pytest.approx(2 / 4)
    assert w.longest_wait_s == 50
    assert [(rec.call_id, rec.outcome) for rec in records] == [
        ("short", CallOutcome.ABANDONED),
        ("fast", CallOutcome.ANSWERED),
        ("long", CallOutcome.ABANDONED),
        ("slow", CallOutcome.ANSWERED),
    ]
    # Twenty minutes later the 15-minute window is empty; the hour and the day are not.
    r.handle(CallEnded(1250, "slow"))
    assert r.queue_stats("q", "15m").offered == 0
    assert r.queue_stats("q", "1h").offered == 4
    assert r.queue_stats("q", "today").answered == 2
    r.start_new_day()
    assert r.queue_stats("q", "today").answered == 0 and r.queue_stats("q", "total").answered == 2


def test_group_occupancy_integrates_exactly() -> None:
    r = make(QueueConfig("q", wrap_up_s=10), agents={"a": {}, "b": {}})
    login(r, 0, "a", "b")
    r.handle(CallArrived(100, "c1", "q"))  # a rings from 100
    r.handle(CallAnswered(107, "c1", "a"))
    r.handle(CallEnded(190, "c1"))  # wrap-up until 200
    r.on_timer(200)
    r.handle(AgentPaused(300, "b"))
    r.handle(AgentReady(400, "b"))  # b paused 100 s
    w = r.group_stats("default", "15m")
    now = r.now
    assert w.available_s == pytest.approx(2 * now - 100)
    assert w.busy_s == pytest.approx(100)  # ringing 7 + talking 83 + wrap 10
    assert w.talk_s == pytest.approx(83)
    assert w.occupancy == pytest.approx(100 / (2 * now - 100))
    assert r.agents_by_state("q")[AgentState.READY] == 2


def test_clock_may_jump_hours_without_cost() -> None:
    r = make(QueueConfig("q"), agents={"a": {}})
    login(r, 0, "a")
    r.handle(CallArrived(5, "c1", "q"))
    r.handle(CallAnswered(5, "c1", "a"))
    r.handle(CallEnded(100_000, "c1"))
    assert r.group_stats("default", "total").talk_s == pytest.approx(99_995)
    assert r.group_stats("default", "1h").talk_s == pytest.approx(3600, abs=16)


def test_state_diagram_in_docs_is_generated_from_the_table() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "acd.md").read_text()
    block = doc.split("<!-- transitions:start -->\n")[1].split("<!-- transitions:end -->")[0]
    assert block == transition_table_markdown(), "regenerate docs/acd.md from acd.agents.TRANSITIONS"


def test_caller_cut_off_mid_call_keeps_relaxation_and_goes_first() -> None:
    # Found by the state machine: the requeued caller used to restart relaxation from
    # zero, so a free relaxed-match agent took a younger call while they waited.
    q = QueueConfig("q", skills={"s": 0.8}, relaxation=(RelaxationStep(30, min_levels={"s": 0.2}),))
    r = make(q, agents={"strong": {"s": 0.9}, "weak": {"s": 0.3}})
    login(r, 0, "strong")
    r.handle(CallArrived(0, "first", "q"))
    r.handle(CallAnswered(1, "first", "strong"))
    r.handle(CallArrived(40, "younger", "q"))  # waits; relaxed at 70
    login(r, 80, "weak")  # takes "younger" (relaxed)
    r.handle(CallAnswered(81, "younger", "weak"))
    r.handle(CallEnded(90, "younger"))  # weak is free again
    assert connects(r.handle(AgentLoggedOut(100, "strong"))) == [("first", "weak")]
    assert r.queue_stats("q", "total").offered == 3  # the cut-off caller is a new offer


# --- personal calls (agent-scheduled callbacks, preview calls) -------------------------


def personal_router() -> Router:
    q = QueueConfig(
        "q",
        skills={"s": 0.5},
        max_wait_s=2,
        overflow=OverflowRule(OverflowAction.SAFE_HARBOUR),
        wrap_up_s=0.0,
    )
    return make(q, agents={"a": {"s": 1}, "b": {"s": 1}})


def test_a_personal_call_goes_to_its_agent_only() -> None:
    r = personal_router()
    login(r, 0, "a")  # a has been idle longer than b: the queue would pick a
    login(r, 5, "b")
    assert connects(r.handle(CallArrived(10, "c1", "q", agent_id="b"))) == [("c1", "b")]
    # b busy: the next personal call for b waits, and a (idle) does not take it.
    r.handle(CallAnswered(10, "c1", "b"))
    assert connects(r.handle(CallArrived(11, "c2", "q", agent_id="b"))) == []
    assert r.agent("a").state is AgentState.READY
    # An ordinary call arriving meanwhile goes to a, and b's personal call goes first
    # when b is free (before ordinary calls waiting longer).
    assert connects(r.handle(CallArrived(11.5, "c3", "q"))) == [("c3", "a")]
    r.handle(CallAnswered(11.5, "c3", "a"))
    assert connects(r.handle(CallArrived(11.6, "c4", "q", priority=9))) == []
    assert connects(r.handle(CallEnded(12, "c1"))) == [("c2", "b")]


def test_a_personal_call_overflows_after_the_max_wait() -> None:
    r = personal_router()
    login(r, 0, "a", "b")
    r.handle(CallArrived(1, "c1", "q", agent_id="b"))
    r.handle(CallAnswered(1, "c1", "b"))
    r.handle(CallArrived(2, "c2", "q", agent_id="b"))
    assert r.on_timer(4) == [Overflow("c2", "q", OverflowAction.SAFE_HARBOUR, "max_wait")]
    assert r.call("c2") is None
    assert connects(r.handle(CallEnded(5, "c1"))) == []  # nothing left for b


def test_a_personal_call_becomes_ordinary_when_its_agent_leaves() -> None:
    r = personal_router()
    login(r, 0, "a", "b")
    r.handle(AgentPaused(0, "a", "lunch"))
    r.handle(CallArrived(1, "c1", "q", agent_id="a"))
    assert connects(r.handle(AgentLoggedOut(1.5, "a"))) == [("c1", "b")]
    # Unknown or logged-out agents: an ordinary call from the start.
    r.handle(CallAnswered(1.5, "c1", "b"))
    r.handle(AgentLoggedIn(2, "a"))
    assert connects(r.handle(CallArrived(3, "c2", "q", agent_id="nobody"))) == [("c2", "a")]


def test_a_personal_caller_hanging_up_leaves_no_trace() -> None:
    r = personal_router()
    login(r, 0, "a")
    r.handle(AgentPaused(0, "a", "brb"))
    r.handle(CallArrived(1, "c1", "q", agent_id="a"))
    r.handle(CallerAbandoned(1.5, "c1"))
    assert connects(r.handle(AgentReady(2, "a"))) == []
    assert r.agent("a").state is AgentState.READY


def test_personal_calls_have_a_position_and_survive_announcements() -> None:
    q = QueueConfig("q", skills={"s": 0.5}, announce_every_s=10.0)
    r = make(q, agents={"a": {"s": 1}, "b": {"s": 1}})
    login(r, 0, "a", "b")
    r.handle(AgentPaused(1, "a", "hold"))
    r.handle(AgentPaused(1, "b", "lunch"))
    r.handle(CallArrived(2, "p1", "q", agent_id="a"))
    r.handle(CallArrived(3, "p2", "q", agent_id="a"))
    assert (r.position("p1"), r.position("p2")) == (1, 2)
    assert [type(c) for c in r.on_timer(20)] == [Announce, Announce]


def test_offer_failed_on_a_personal_call_offers_it_again_and_nothing_else() -> None:
    r = personal_router()
    login(r, 0, "a", "b")
    r.handle(CallArrived(1, "p1", "q", agent_id="a"))
    assert connects(r.handle(OfferFailed(2, "a", "p1"))) == [("p1", "a")]
    assert r.agent("a").state is AgentState.RESERVED and r.agent("a").call_id == "p1"
    assert connects(r.handle(CallArrived(3, "p2", "q", agent_id="a"))) == []  # one call at a time


def test_a_personal_call_is_anyones_once_answered() -> None:
    other = QueueConfig("other", skills={"s": 0.5})
    r = make(personal_router().queue_config("q"), other, agents={"a": {"s": 1}, "b": {"s": 1}})
    login(r, 0, "a", "b")
    r.handle(CallArrived(1, "p1", "q", agent_id="a"))
    r.handle(CallAnswered(1, "p1", "a"))
    assert connects(r.handle(CallTransferred(10, "p1", "other"))) == [("p1", "b")]


def test_a_queue_added_while_running_is_served_at_once() -> None:
    r = make(QueueConfig("q", skills={"s": 0.5}), agents={"a": {"s": 1}, "b": {"t": 1}})
    login(r, 0, "a", "b")
    assert connects(r.handle(CallArrived(1, "c1", "q"))) == [("c1", "a")]
    assert r.add_queue(QueueConfig("new", skills={"t": 0.5})) == []
    assert connects(r.handle(CallArrived(2, "c2", "new"))) == [("c2", "b")]  # b was ready already
    assert r.agents_by_state("new")[AgentState.RESERVED] == 1
    with pytest.raises(InputError, match="defined twice"):
        r.add_queue(QueueConfig("new"))
    with pytest.raises(InputError, match="unknown target"):
        r.add_queue(QueueConfig("x", overflow=OverflowRule(OverflowAction.QUEUE, "nowhere")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 4)), max_size=80))
def test_idle_line_gives_agents_in_key_order(ops: list[tuple[bool, int, int]]) -> None:
    """_IdleLine as FIFO while keys come in order and as a heap after: same order as
    sorting the idle agents by (key, seq), stale entries skipped, whichever the mode."""
    agents = [_Agent(AgentProfile(f"a{k}"), k, GroupStats(0.0)) for k in range(5)]
    line = _IdleLine()
    idle: dict[int, float] = {}  # agent seq -> key, for the agents that are idle
    for push, key, k in ops:
        agent = agents[k]
        if push:  # the agent becomes idle (again): a new entry, the old one goes stale
            agent.epoch += 1
            agent.state = AgentState.READY
            line.push((float(key), agent.seq, agent.epoch, agent))
            idle[agent.seq] = float(key)
            continue
        best = line.first()
        expected = min(idle, key=lambda s: (idle[s], s)) if idle else None
        assert (best.seq if best else None) == expected
        if best is not None:  # offered a call: no longer idle
            best.epoch += 1
            best.state = AgentState.RESERVED
            del idle[best.seq]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 24), max_size=120))
def test_wait_line_keeps_the_waiting_calls_in_order(ops: list[int]) -> None:
    """_WaitLine against a sorted set: an op on a waiting call takes it out (answered,
    abandoned, offered out of turn), on another puts it in (arrival, or back in its
    place after a ring-no-answer). After each op the line lists exactly the waiting
    calls in order, and its front and positions agree."""
    queue = make()._queues["q"]
    calls = {k: _Call(f"c{k}", queue, 0, float(k), k) for k in range(25)}
    line = _WaitLine()
    waiting: dict[int, _Call] = {}  # the queue's map, which the line consults
    for k in ops:
        if k in waiting:
            del waiting[k]
            line.remove(k)
        else:
            waiting[k] = calls[k]
            line.add(k)
        expected = sorted(waiting)
        assert line.count == len(expected)
        assert [c.order for c in line.calls(waiting)] == expected
        assert [line.index(k, waiting) for k in expected] == list(range(len(expected)))
        if expected:
            assert line.first(waiting).order == expected[0]


def test_wait_line_long_fifo_drops_what_is_gone_and_takes_calls_back() -> None:
    queue = make()._queues["q"]
    line, waiting = _WaitLine(), {}
    for k in range(300):
        waiting[k] = _Call(f"c{k}", queue, 0, float(k), k)
        line.add(k)
    for k in range(200):  # answered in turn
        del waiting[k]
        line.remove(k)
    for k in (250, 260):  # abandoned from the middle
        del waiting[k]
        line.remove(k)
    assert len(line.orders) < 200  # the answered ones were dropped, not kept
    for k in (199, 150, 260):  # back in their places (ring-no-answer)
        waiting[k] = _Call(f"c{k}", queue, 0, float(k), k)
        line.add(k)
    expected = sorted(waiting)
    assert [c.order for c in line.calls(waiting)] == expected
    assert line.first(waiting).order == 150 and line.count == len(expected)
    assert line.index(260, waiting) == expected.index(260)


def test_calls_relaxed_at_one_instant_keep_their_order() -> None:
    """Found by the state machine: c1 and c2 arrive together; c1 rings the only expert,
    who does not answer, and goes back ahead of c2. At 10 s both relax far enough for
    the junior agent. c2's relaxation timer was set first (c1's only on its requeue),
    so it fires first; the junior must still get c1, the older call."""
    relax = (RelaxationStep(10, min_levels={"sales": 0.3}),)
    sales = QueueConfig("sales", skills={"sales": 0.6}, relaxation=relax)
    r = make(sales, agents={"expert": {"sales": 0.6}, "junior": {"sales": 0.4}})
    login(r, 0, "expert")
    assert connects(r.handle(CallArrived(0, "c1", "sales"))) == [("c1", "expert")]
    login(r, 0, "junior")
    assert connects(r.handle(CallArrived(0, "c2", "sales"))) == []  # junior: not before 10 s
    assert connects(r.handle(AgentRingNoAnswer(1, "expert", "c1"))) == []
    assert r.waiting_calls("sales") == ["c1", "c2"]
    assert connects(r.on_timer(10)) == [("c1", "junior")]
    assert r.waiting_calls("sales") == ["c2"]
