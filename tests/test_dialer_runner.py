"""dialer.runner: the life of each kind of call, the ledger's verdicts, the books kept.

A real :class:`acd.router.Router` stands in for the ACD, driven in POSIX time like the
live service would; the tests play the network by calling the runner's report methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from acd.agents import AgentProfile, AgentState
from acd.errors import InputError
from acd.events import (
    AgentLoggedIn,
    AgentPaused,
    CallAnswered,
    CallArrived,
    CallEnded,
    ConnectToAgent,
    Overflow,
    OverflowAction,
    WrapUpDone,
)
from acd.queues import QueueConfig
from acd.router import Router
from dialer.campaign import DAY_S, HOUR_S, MINUTE_S, CallingHours, Campaign
from dialer.hopper import Hopper
from dialer.leads import Lead, LeadState, Outcome
from dialer.pacing import PacingView, clamp_dials
from dialer.runner import (
    CALLBACK_RETRY_S,
    OUTBOUND_PRIORITY,
    AgentPicture,
    CampaignRunner,
    DialState,
    RunnerError,
    acd_queue_config,
    competing_rate,
    competing_shares,
    picture_from_router,
)

START = 1767603600.0  # Monday 2026-01-05 09:00 UTC


@dataclass
class FixedDials:
    """A policy that asks for ``n`` dials every time, and remembers what it saw."""

    n: int
    views: list[PacingView] = field(default_factory=list)

    def dials_now(self, view: PacingView) -> int:
        self.views.append(view)
        return clamp_dials(self.n, view)


def make(
    *, leads: int = 3, agents: int = 1, policy: FixedDials | None = None, **settings: object
) -> tuple[CampaignRunner, Router]:
    campaign = Campaign(
        name="c",
        caller_id="+12025550100",
        queue="sales",
        hours=CallingHours.every_day((0, 1440)),
        **settings,  # type: ignore[arg-type]
    )
    hopper = Hopper(campaign)
    hopper.load([Lead(f"L{i}", f"+1202555{i:04d}", ("UTC",)) for i in range(leads)], START)
    router = Router([acd_queue_config(campaign, skills={"sales": 0.0}, wrap_up_s=None)], start=START)
    for k in range(agents):
        router.register_agent(AgentProfile(f"a{k}", skills={"sales": 1.0}))
        router.handle(AgentLoggedIn(START, f"a{k}"))
    return CampaignRunner(campaign, hopper, policy=policy), router


def pace(runner: CampaignRunner, router: Router, at: float) -> list[str]:
    return [d.call_id for d in runner.pace(at, picture_from_router(router, runner.acd_queue))]


def put_through(runner: CampaignRunner, router: Router, arrived: CallArrived) -> str:
    """Hand the human to the ACD; the agent's session takes them at once."""
    cmds = router.handle(arrived)
    assert len(cmds) == 1 and isinstance(cmds[0], ConnectToAgent)
    router.handle(CallAnswered(arrived.at, arrived.call_id, cmds[0].agent_id))
    return cmds[0].agent_id


def test_progressive_covers_each_ready_agent_once() -> None:
    runner, router = make(leads=5, agents=2)
    dials = runner.pace(START, picture_from_router(router, "outbound:c"))
    assert [d.call_id for d in dials] == ["c-1", "c-2"]
    assert dials[0].caller_id == "+12025550100" and dials[0].ring_timeout_s == 15.0
    assert dials[0].number == "+12025550000" and dials[0].campaign == "c"
    assert pace(runner, router, START + 1) == []  # both agents covered by a ringing call
    assert runner.ringing == 2 and runner.state_of("c-1") is DialState.RINGING
    view = runner.view(START + 1, picture_from_router(router, "outbound:c"))
    assert view.ringing == (1.0, 1.0) and view.hopper_size == 3 and view.dials_today == 2


def test_life_of_a_connected_human() -> None:
    runner, router = make()
    (call,) = pace(runner, router, START)
    arrived = runner.answered(START + 7, call, human=True)
    assert isinstance(arrived, CallArrived)
    assert arrived.queue == "outbound:c" and arrived.priority == OUTBOUND_PRIORITY
    assert arrived.caller == "+12025550000" and arrived.at == START + 7
    assert runner.humans_waiting == 1 and runner.ringing == 0
    agent = put_through(runner, router, arrived)
    runner.connected(START + 7.5, call, agent)
    assert runner.state_of(call) is DialState.CONNECTED and runner.humans_waiting == 0
    router.handle(CallEnded(START + 67.5, call))
    runner.ended(START + 67.5, call)
    runner.wrapped(10.0)
    assert not runner.active(call)
    totals = runner.totals()
    assert (totals.dials, totals.humans, totals.connects, totals.abandons) == (1, 1, 1, 0)
    assert totals.outcomes == {"human": 1} and totals.talk_s == 60.0 and totals.abandon_rate == 0.0
    lead = runner.hopper.get("L0")
    assert lead.state is LeadState.DONE  # a human is never called again by default
    (attempt,) = lead.attempts
    assert attempt.outcome is Outcome.HUMAN and attempt.agent_id == agent
    assert attempt.at == START and attempt.ended_at == START + 67.5
    assert runner.estimates(START + 10).dials == 0  # its launch cohort may still be ringing
    est = runner.estimates(START + 100)
    assert est.dials == 1 and est.human_rate == 1.0 and est.machine_share == 0.0
    assert est.ring_to_answer_s == (7.0,) and est.talk_mean_s == 60.0 and est.wrap_s == (10.0,)
    assert runner.ledger.counts(START + 100) == (1, 0)


def test_a_machine_is_hung_up_and_retried_next_day() -> None:
    runner, router = make()
    (call,) = pace(runner, router, START)
    assert runner.answered(START + 5, call, human=False) is None
    assert runner.state_of(call) is DialState.MACHINE
    runner.ended(START + 5, call)
    totals = runner.totals()
    assert totals.machines == 1 and totals.humans == 0 and totals.outcomes == {"machine": 1}
    lead = runner.hopper.get("L0")
    assert lead.state is LeadState.SCHEDULED and lead.next_due == START - 9 * HOUR_S + DAY_S
    est = runner.estimates(START + 100)
    assert est.human_rate == 0.0 and est.machine_share == 1.0 and est.other_ring_s == (5.0,)
    assert runner.ledger.counts(START + 10) == (0, 0)  # machines are not in the ledger


def test_failures_retry_until_max_attempts() -> None:
    runner, router = make(leads=2, max_attempts=2)
    first = pace(runner, router, START)[0]
    runner.failed(START + 3, first, Outcome.BUSY, "486")
    lead = runner.hopper.get("L0")
    assert lead.state is LeadState.SCHEDULED and lead.next_due == START + 3 + 10 * MINUTE_S
    assert lead.attempts[0].outcome is Outcome.BUSY and lead.attempts[0].detail == "486"
    # The other lead is served meanwhile; L0 comes back when its retry delay is over.
    second = pace(runner, router, START + 4)[0]
    runner.failed(START + 8, second, Outcome.INVALID)
    assert runner.hopper.get("L1").state is LeadState.INVALID
    assert pace(runner, router, START + 9) == []  # nothing due
    again = pace(runner, router, START + 3 + 10 * MINUTE_S)
    assert again == ["c-3"]
    runner.failed(START + 700, again[0], Outcome.NO_ANSWER)
    assert lead.state is LeadState.MAX_ATTEMPTS and len(lead.attempts) == 2
    assert runner.totals().outcomes == {"busy": 1, "invalid": 1, "no_answer": 1}
    assert runner.estimates(START + 800).human_rate == 0.0 and runner.estimates().dials == 3


def test_no_agent_within_two_seconds_is_a_safe_harbour_abandon() -> None:
    runner, router = make(policy=FixedDials(1))
    router.handle(AgentPaused(START, "a0", "lunch"))
    (call,) = pace(runner, router, START)
    arrived = runner.answered(START + 6, call, human=True)
    assert arrived is not None
    assert router.handle(arrived) == []  # nobody free: the human waits
    deadline = router.next_deadline()
    assert deadline == START + 8.0  # the legal 2 s, enforced by the router's own timer
    (cmd,) = router.on_timer(deadline)
    assert isinstance(cmd, Overflow) and cmd.action is OverflowAction.SAFE_HARBOUR
    runner.abandoned(deadline, call, cause="safe harbour")
    totals = runner.totals()
    assert (totals.humans, totals.connects, totals.abandons) == (1, 0, 1)
    assert totals.abandon_rate == 1.0 and totals.outcomes == {"abandoned": 1}
    lead = runner.hopper.get("L0")
    assert lead.attempts[-1].outcome is Outcome.ABANDONED and lead.state is LeadState.SCHEDULED
    assert runner.hopper.history.last_abandon(lead.number) == START + 8.0
    assert runner.ledger.counts(START + 9) == (1, 1)
    view = runner.view(START + 9, AgentPicture(1, 0))
    assert view.abandons_last_minute == 1 and view.abandons_today == 1 and view.abandons_window == 1
    # A minute after the dial, it has left the minute's figures but not the day's.
    later = runner.view(START + 61, AgentPicture(1, 0))
    assert later.abandons_last_minute == 0 and later.dials_last_minute == 0 and later.abandons_today == 1


@pytest.mark.parametrize(("delay", "abandoned"), [(2.0, False), (2.5, True)])
def test_a_late_connect_is_an_abandon(delay: float, abandoned: bool) -> None:
    runner, router = make()
    (call,) = pace(runner, router, START)
    assert runner.answered(START + 5, call, human=True) is not None
    runner.connected(START + 5 + delay, call, "a0")
    totals = runner.totals()
    assert (totals.connects, totals.abandons) == (int(not abandoned), int(abandoned))
    assert runner.ledger.counts(START + 10) == (1, int(abandoned))
    # The conversation still happens and ends like any other.
    runner.ended(START + 60, call)
    assert runner.totals().outcomes == {"human": 1}


def test_the_policy_sees_agents_calls_and_competing_work() -> None:
    policy = FixedDials(0)
    runner, router = make(agents=3, policy=policy)
    busy = FixedDials(1)
    other, _ = make(agents=3, policy=busy)
    (call,) = pace(other, router, START)
    arrived = other.answered(START + 4, call, human=True)
    assert arrived is not None
    agent = put_through(other, router, arrived)
    other.connected(START + 4, call, agent)
    # The picture ages calls by the router's clock: the driver brings it to the instant first.
    assert router.on_timer(START + 30) == []
    runner.pace(START + 30, picture_from_router(router, "outbound:c"), competing_rate_per_s=0.25)
    view = policy.views[-1]
    assert view.competing_rate_per_s == 0.25
    assert (view.agents_logged_in, view.agents_ready, view.agents_talking) == (3, 2, 1)
    assert view.busy[0].talk_s == 26.0 and not view.busy[0].in_wrap
    assert runner.view(START, AgentPicture(1, 1)).competing_rate_per_s == 0.0  # the default
    # Wrap-up: the agent shows as busy with the call's talk time and the wrap-up's age.
    router.handle(CallEnded(START + 64, call))
    wrapping = [s for s in router.agents() if s.state is AgentState.WRAP_UP]
    assert [s.agent_id for s in wrapping] == [agent]
    router.on_timer(START + 70)
    picture = picture_from_router(router, "outbound:c")
    assert picture.logged_in == 3 and picture.ready == 2
    assert picture.busy[0].talk_s == 60.0 and picture.busy[0].wrap_s == 6.0


def test_a_human_settled_after_midnight_does_not_wipe_the_new_day() -> None:
    runner, router = make(leads=3, agents=2, policy=FixedDials(1))
    midnight = START + 15 * HOUR_S
    (call,) = pace(runner, router, midnight - 1.0)
    assert runner.answered(midnight - 0.5, call, human=True) is not None
    (second,) = pace(runner, router, midnight + 0.2)  # a new day: one dial today
    runner.connected(midnight + 1.0, call, "a0")  # yesterday's answer, settled today
    view = runner.view(midnight + 2.0, AgentPicture(2, 1))
    assert (view.dials_today, view.humans_today) == (1, 1)
    assert second == "c-2"


def test_errors_name_the_call_and_its_state() -> None:
    runner, router = make()
    (call,) = pace(runner, router, START)
    with pytest.raises(RunnerError, match="call nope is not one of campaign c's calls"):
        runner.ended(START + 1, "nope")
    with pytest.raises(RunnerError, match="not one of campaign c's calls"):
        runner.answered(START + 1, "nope", human=True)
    with pytest.raises(RunnerError, match=f"call {call} is ringing, not waiting"):
        runner.connected(START + 1, call, "a0")
    with pytest.raises(RunnerError, match="is ringing: only a conversation or a machine ends"):
        runner.ended(START + 1, call)
    with pytest.raises(RunnerError, match="is an answer, report it with answered"):
        runner.failed(START + 1, call, Outcome.HUMAN)
    assert runner.answered(START + 2, call, human=True) is not None
    with pytest.raises(RunnerError, match="is waiting, not ringing"):
        runner.answered(START + 3, call, human=True)
    with pytest.raises(RunnerError, match="is waiting, not ringing"):
        runner.failed(START + 3, call, Outcome.BUSY)
    runner.abandoned(START + 4, call)
    with pytest.raises(RunnerError, match="not one of campaign c's calls"):
        runner.abandoned(START + 5, call)
    with pytest.raises(RunnerError, match="below the campaign's minimum 15 s"):
        CampaignRunner(runner.campaign, runner.hopper, ring_timeout_s=10.0)
    other = Campaign(name="other", caller_id="+12025550100", queue="sales")
    with pytest.raises(RunnerError, match="the hopper belongs to campaign 'c'"):
        CampaignRunner(other, runner.hopper)


# --- personal calls: callbacks to the agent who booked them, previews ------------------


def book_callback(runner: CampaignRunner, router: Router, at: float, due: float) -> str:
    """One conversation in which the agent books a callback; returns the agent."""
    (call,) = pace(runner, router, at)
    arrived = runner.answered(at + 5, call, human=True)
    assert arrived is not None
    agent = put_through(runner, router, arrived)
    runner.connected(at + 5, call, agent)
    runner.schedule_callback(call, due)
    router.handle(CallEnded(at + 60, call))
    runner.ended(at + 60, call)
    router.handle(WrapUpDone(at + 70, agent))
    return agent


def test_a_callback_goes_to_the_agent_who_booked_it() -> None:
    runner, router = make(leads=1, agents=2, policy=FixedDials(1))
    agent = book_callback(runner, router, START, START + HOUR_S)
    other = "a1" if agent == "a0" else "a0"
    (dial,) = runner.pace(START + HOUR_S, picture_from_router(router, "outbound:c"))
    assert dial.lead_id == "L0" and dial.agent_id == agent
    assert runner.held_agent(dial.call_id) == agent
    # The driver holds the agent while it rings; the other agent stays free, and the
    # held agent's call is not counted against the pool.
    router.handle(AgentPaused(START + HOUR_S, agent, "outbound-hold"))
    view = runner.view(START + HOUR_S + 1, picture_from_router(router, "outbound:c"))
    assert view.ringing == () and view.agents_ready == 1
    arrived = runner.answered(START + HOUR_S + 6, dial.call_id, human=True)
    assert arrived is not None and arrived.agent_id == agent
    assert router.handle(arrived) == []  # waits for its agent only, though `other` is free
    assert router.agent(other).state is AgentState.READY


def test_a_callback_waits_for_its_busy_agent_then_anyone_takes_it() -> None:
    runner, router = make(leads=2, agents=2, policy=FixedDials(1))
    agent = book_callback(runner, router, START, START + HOUR_S)
    router.handle(AgentPaused(START + HOUR_S - 1, agent, "meeting"))  # logged in, not ready
    dials = runner.pace(START + HOUR_S, picture_from_router(router, "outbound:c"))
    assert [d.lead_id for d in dials] == ["L1"]  # the callback waits, another lead goes
    assert runner.hopper.why("L0", START + HOUR_S + 1).reason.value == "callback"
    # 15 minutes after it fell due, anyone takes it.
    later = START + HOUR_S + 16 * MINUTE_S
    (dial,) = runner.pace(later, picture_from_router(router, "outbound:c"))
    assert dial.lead_id == "L0" and dial.agent_id is None


def test_preview_dial_and_skip() -> None:
    runner, _router = make(leads=2, agents=1, policy=FixedDials(0))
    lead = runner.preview(START, "a0")
    assert lead is not None and lead.lead_id == "L0"
    runner.preview_skip(START + 8, "L0", due=START + HOUR_S)
    assert runner.hopper.get("L0").attempts == () and runner.totals().dials == 0
    nxt = runner.preview(START + 9, "a0")
    assert nxt is not None and nxt.lead_id == "L1"
    dial = runner.preview_dial(START + 20, "L1", "a0")
    assert dial.agent_id == "a0" and runner.totals().dials == 1
    with pytest.raises(RunnerError, match="not being previewed"):
        runner.preview_dial(START + 21, "L1", "a0")


def test_uk_rules_count_amd_false_positives_as_abandons() -> None:
    # 2 % of machine verdicts are people: each verdict books 0.02 of a human answer
    # that was abandoned (Ofcom), so 50 of them weigh one abandon.
    runner, router = make(leads=50, agents=50, uk_rules=True, amd=True, amd_false_positive_rate=0.02)
    calls = pace(runner, router, START)
    for call in calls:
        runner.answered(START + 5, call, human=False)
        runner.ended(START + 5, call)
    humans, abandons = runner.ledger.counts(START + 10)
    assert humans == pytest.approx(1.0) and abandons == pytest.approx(1.0)
    assert runner.view(START + 10, picture_from_router(router, "outbound:c")).abandons_window == 1
    with pytest.raises(InputError, match="amd_false_positive_rate"):
        Campaign("c", "+12025550100", "sales", uk_rules=True, amd=True)


def test_a_callback_grace_counts_from_when_it_fell_due() -> None:
    # The booked agent stays logged in but never ready; pacing every 30 s keeps looking
    # at the callback, and after 15 minutes anyone takes it.
    runner, router = make(leads=1, agents=2, policy=FixedDials(1))
    agent = book_callback(runner, router, START, START + HOUR_S)
    router.handle(AgentPaused(START + HOUR_S - 1, agent, "meeting"))
    served = {}
    for k in range(40):
        for dial in runner.pace(START + HOUR_S + 30 * k, picture_from_router(router, "outbound:c")):
            served[30 * k] = dial
    assert list(served) == [15 * MINUTE_S]  # at the end of the grace, not before, once
    assert served[15 * MINUTE_S].lead_id == "L0" and served[15 * MINUTE_S].agent_id is None


def test_preview_keeps_a_callback_for_the_agent_who_booked_it() -> None:
    runner, router = make(leads=2, agents=2, policy=FixedDials(1))
    agent = book_callback(runner, router, START, START + HOUR_S)
    other = "a1" if agent == "a0" else "a0"
    logged_in = frozenset({"a0", "a1"})
    lead = runner.preview(START + HOUR_S, other, logged_in)
    assert lead is not None and lead.lead_id == "L1"  # L0 is kept for its agent
    lead = runner.preview(START + HOUR_S + CALLBACK_RETRY_S, agent, logged_in)
    assert lead is not None and lead.lead_id == "L0"


def test_fractional_false_positives_are_rounded_towards_the_stricter_side() -> None:
    runner, router = make(leads=34, agents=34, uk_rules=True, amd=True, amd_false_positive_rate=0.02)
    calls = pace(runner, router, START)
    for call in calls[:24]:
        runner.answered(START + 5, call, human=False)
        runner.ended(START + 5, call)
    for call in calls[24:]:
        arrived = runner.answered(START + 5, call, human=True)
        assert arrived is not None
        runner.connected(START + 5, call, put_through(runner, router, arrived))
    assert runner.ledger.counts(START + 10) == pytest.approx((10.48, 0.48))
    v = runner.view(START + 10, picture_from_router(router, "outbound:c"))
    assert (v.humans_window, v.abandons_window) == (10, 1)


def test_a_late_connect_blocks_a_uk_recall_like_any_abandon() -> None:
    runner, router = make(uk_rules=True)
    (call,) = pace(runner, router, START)
    arrived = runner.answered(START + 5, call, human=True)
    assert arrived is not None
    runner.connected(START + 8, call, put_through(runner, router, arrived))  # 3 s: too late
    number = runner.hopper.get("L0").number
    assert runner.hopper.history.no_recall_until(number, START + 10) == START + 8 + 72 * HOUR_S


def test_answer_rates_are_measured_by_launch_cohort_not_by_order_of_ending() -> None:
    # A burst of 100 dials: busy signals end at 3 s, 10 humans answer at 8 s, the 60
    # no-answers end at the 15 s timeout. Counted as they end, the human rate reads 25 %
    # at 10 s and 2 % just after the timeouts; the cohort says 10 %, once it is complete.
    runner, router = make(leads=100, agents=0, policy=FixedDials(100))
    calls = pace(runner, router, START)
    for call in calls[:30]:
        runner.failed(START + 3, call, Outcome.BUSY)
    for call in calls[30:40]:
        arrived = runner.answered(START + 8, call, human=True)
        assert arrived is not None
        runner.abandoned(START + 10, call)
    assert runner.estimates(START + 10).dials == 0  # the cohort is still ringing
    for call in calls[40:]:
        runner.failed(START + 15, call, Outcome.NO_ANSWER)
    est = runner.estimates(START + 15)
    assert est.dials == 100 and est.human_rate == pytest.approx(0.10)
    assert sorted(set(est.other_ring_s)) == [3.0, 15.0] and est.ring_to_answer_s == (8.0,) * 10


def test_competing_inbound_work_is_weighted_by_shared_agents() -> None:
    """Blending: inbound calls take the campaign's agents at the queue's rate times the
    share of its agents who also dial; the simulator and the live service use this."""
    router = Router([QueueConfig("support", skills={"s": 0.5}), QueueConfig("outbound:c", skills={"x": 0.5})])
    profiles = [
        AgentProfile("both1", skills={"s": 1.0, "x": 1.0}),
        AgentProfile("both2", skills={"s": 1.0, "x": 1.0}),
        AgentProfile("in1", skills={"s": 1.0}),
        AgentProfile("in2", skills={"s": 1.0}),
        AgentProfile("out1", skills={"x": 1.0}),
    ]
    shares = competing_shares(router, "outbound:c", profiles)
    assert shares == [("support", 0.5)]
    for k in range(30):
        router.handle(CallArrived(float(k), f"c{k}", "support"))
    assert competing_rate(router, shares, since_s=300.0) == pytest.approx(0.5 * 30 / 300.0)
    assert competing_rate(router, shares, since_s=5.0) == pytest.approx(0.5 * 30 / 60.0)  # a minute at least
    assert competing_rate(router, [], since_s=300.0) == 0.0
