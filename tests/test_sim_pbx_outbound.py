"""Outbound dialling end to end: OutboundTracker + AmiClient against the simulated Asterisk
over real TCP, its callees drawn from ``OutboundCustomers``.

What ccd concludes about every call (the tracker's DialFailed / DialAnswered+DialEnded)
is compared with the PBX's own record of what that callee did (``Pbx.outbound``), and
the outcome frequencies with the configured probabilities. The PBX runs 100x faster
than real time: a 15 s ring timeout takes 0.15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import binom

from acd.events import CallArrived, ConnectToAgent, Overflow, OverflowAction
from dialer.leads import Outcome
from dialer.runner import Dial
from sim.ami_server import SimulatedAsterisk
from sim.pbx import Callee, OutboundDial, Pbx
from sim.pbx_world import CalleeMix, OutboundCustomers, build_world
from sim.scenario import parse_scenario
from sim.workload import Exponential, Fixed, LogNormal
from telephony.ami import AmiClient
from telephony.calls import CallTracker
from telephony.outbound import DialAnswered, DialEnded, DialEvent, DialFailed, OutboundTracker

SPEED = 100.0
SECRET = "outbound-test-secret"
CAMPAIGN = "renewals"
RING_TIMEOUT_S = 15.0

FAILED_RESULT = {
    "busy": Outcome.BUSY,
    "no_answer": Outcome.NO_ANSWER,
    "congestion": Outcome.CONGESTION,
    "invalid": Outcome.INVALID,
    "unavailable": Outcome.FAILED,
}


async def until(what: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not what():
            await asyncio.sleep(0.01)


class Dialer:
    """The live service's outbound loop, reduced to what these tests need."""

    def __init__(self, server: SimulatedAsterisk, *, amd: bool) -> None:
        self.server = server
        self.pbx: Pbx = server.pbx
        self.amd = amd
        self.outbound = OutboundTracker()
        self.calls = CallTracker()
        self.events: list[DialEvent] = []
        self.arrived: list[CallArrived] = []
        self.raw: list[dict[str, str | list[str]]] = []
        self.ami = AmiClient(
            host="127.0.0.1",
            port=server.port,
            username="ccd",
            secret=SECRET,
            on_event=self.on_event,
            action_timeout_s=5.0,
        )
        self._n = 0

    def on_event(self, event: dict[str, str | list[str]]) -> None:
        at = self.pbx.now()
        self.raw.append(event)
        self.events.extend(self.outbound.on_ami(event, at))
        for e in self.calls.on_ami(event, at):
            if isinstance(e, CallArrived):
                self.arrived.append(e)

    async def dial(self, number: str, **kw: Any) -> str:
        self._n += 1
        d = Dial(f"{CAMPAIGN}-{self._n}", f"L{self._n}", number, CAMPAIGN, "+12025550100", RING_TIMEOUT_S)
        self.outbound.track(d, self.pbx.now())
        action = self.outbound.originate_action(d, action_id=self.ami.next_action_id(), amd=self.amd, **kw)
        await self.ami.originate(action)
        return d.call_id

    def reap(self) -> bool:
        self.events.extend(self.outbound.reap(self.pbx.now()))
        return not self.outbound.calls

    def by_call(self) -> dict[str, list[DialEvent]]:
        out: dict[str, list[DialEvent]] = {}
        for e in self.events:
            out.setdefault(e.call_id, []).append(e)
        return out


@contextlib.asynccontextmanager
async def world(customers: OutboundCustomers | None, *, amd: bool = True) -> AsyncIterator[Dialer]:
    server = SimulatedAsterisk(
        None, speed=SPEED, secret=SECRET, auth_delay_s=0.01, workload=False, outbound_customers=customers
    )
    await server.start()
    dialer = Dialer(server, amd=amd)

    async def heartbeat() -> None:
        # As the service does (every 10 s): a caller put on hold after 30 s of silence
        # would go to the fallback instead of announcing itself.
        while True:
            with contextlib.suppress(Exception):
                await dialer.ami.send(dialer.calls.heartbeat_action(server.pbx.now()))
            await asyncio.sleep(5.0 / SPEED)

    beating: asyncio.Task[None] | None = None
    try:
        await dialer.ami.start()
        await dialer.ami.send(dialer.calls.heartbeat_action(server.pbx.now()))
        beating = asyncio.create_task(heartbeat())
        yield dialer
    finally:
        if beating is not None:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        await dialer.ami.close()
        await server.stop()
    assert server.pbx.errors == []


def expected_events(record: OutboundDial) -> tuple[str, Outcome | str | None]:
    """What the tracker must have said about a call, from what the PBX did."""
    if record.result == "answered":
        return "answered", record.amd_status
    assert record.result is not None
    return "failed", FAILED_RESULT[record.result]


def observed(events: list[DialEvent]) -> tuple[str, Outcome | str | None]:
    if len(events) == 1 and isinstance(events[0], DialFailed):
        return "failed", events[0].outcome
    assert [type(e) for e in events] == [DialAnswered, DialEnded], events
    answered = events[0]
    assert isinstance(answered, DialAnswered)
    assert answered.human == (answered.amd_status != "MACHINE")
    return "answered", answered.amd_status


def binomial_interval(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The central ``confidence`` interval of a Binomial(n, p) count (exact, not normal)."""
    tail = (1 - confidence) / 2
    return int(binom.ppf(tail, n, p)), int(binom.isf(tail, n, p))


# --- end to end over TCP ------------------------------------------------------------------------


async def test_every_outcome_matches_what_the_callee_did() -> None:
    """60 calls of every kind, AMD on and fallible: each tracker outcome is the PBX's truth."""
    customers = OutboundCustomers(
        p_human=0.3,
        p_machine=0.2,
        p_busy=0.15,
        p_no_answer=0.1,
        p_congestion=0.1,
        p_invalid=0.15,
        ring_s=LogNormal(3.0, 0.5),
        fail_s=Fixed(1.0),
        patience_s=Exponential(3.0),
        amd_accuracy=0.8,
        p_notsure=0.1,
        seed=7,
    )
    async with world(customers) as dialer:
        numbers = [f"+1202555{i:04d}" for i in range(60)]
        calls = [await dialer.dial(n) for n in numbers]
        await until(dialer.reap)
        records = dialer.pbx.outbound
        assert sorted(records) == sorted(calls)
        by_call = dialer.by_call()
        for call_id in calls:
            record = records[call_id]
            assert record.number == numbers[calls.index(call_id)] and record.campaign == CAMPAIGN
            assert observed(by_call[call_id]) == expected_events(record), record
        kinds = Counter(r.kind for r in records.values())
        assert set(kinds) == {"human", "machine", "busy", "no_answer", "congestion", "invalid"}
        verdicts = Counter(r.amd_status for r in records.values() if r.result == "answered")
        assert set(verdicts) == {"HUMAN", "MACHINE", "NOTSURE"}
        # Humans (and machines AMD let through) were announced to the ACD like inbound callers.
        held = {r.call_id for r in records.values() if r.amd_status in ("HUMAN", "NOTSURE")}
        assert {a.call_id for a in dialer.arrived} == held
        assert all(a.queue == f"outbound:{CAMPAIGN}" and a.priority == 100 for a in dialer.arrived)
        # Nobody took them: they hung up on hold after their patience; machines were hung up.
        fates = Counter(r.fate for r in records.values() if r.result == "answered")
        assert set(fates) == {"abandoned", "machine_hangup"}
        assert fates["machine_hangup"] == verdicts["MACHINE"]
        assert dialer.outbound.malformed == 0 and dialer.calls.malformed == 0
        assert dialer.ami.handler_errors == 0


async def test_outcome_frequencies_within_binomial_intervals() -> None:
    """400 dials: each outcome's count lies in the exact 99.9 % two-sided interval of a
    Binomial(400, p) for its configured p (a 0.1 % chance per outcome that a correct
    simulator fails, 0.6 % over the six checks; the seed is fixed, so the run is
    repeatable and the seed was not chosen to pass). At n = 400 the half-width for
    p = 0.3 is about 0.075: a missing or doubled outcome, or AMD ignoring its accuracy,
    is far outside."""
    n = 400
    customers = OutboundCustomers(
        p_human=0.30,
        p_machine=0.20,
        p_busy=0.10,
        p_no_answer=0.25,
        p_congestion=0.05,
        p_invalid=0.10,
        ring_s=Exponential(2.0),  # P(ring >= 15 s timeout) = e^-7.5 < 0.1 %: no answers lost
        fail_s=Fixed(0.5),
        patience_s=Fixed(1.0),
        machine_s=Fixed(1.0),
        amd_accuracy=0.9,
        seed=2026,
    )
    async with world(customers) as dialer:
        calls = [await dialer.dial(f"+1303555{i:04d}") for i in range(n)]
        await until(dialer.reap, timeout=15.0)
        by_call = dialer.by_call()
        assert sorted(by_call) == sorted(calls)
        seen: Counter[str] = Counter()
        for call_id in calls:
            first = by_call[call_id][0]
            if isinstance(first, DialFailed):
                seen[first.outcome.value] += 1
            else:
                assert isinstance(first, DialAnswered)
                seen["answered"] += 1
                seen["human_verdict"] += first.human
        a = customers.amd_accuracy
        expected = {
            "answered": customers.p_human + customers.p_machine,
            "busy": customers.p_busy,
            "no_answer": customers.p_no_answer,
            "congestion": customers.p_congestion,
            "invalid": customers.p_invalid,
            # AMD passes a human with prob a and a machine with prob 1 - a.
            "human_verdict": customers.p_human * a + customers.p_machine * (1 - a),
        }
        for outcome, p in expected.items():
            lo, hi = binomial_interval(n, p)
            assert lo <= seen[outcome] <= hi, (outcome, seen[outcome], (lo, hi), p)
        assert sum(seen[k] for k in ("answered", "busy", "no_answer", "congestion", "invalid")) == n


async def test_a_human_talks_to_an_agent_then_hangs_up() -> None:
    """The human on hold is connected (the inbound contract: CCDCallWaiting → CallArrived →
    ConnectToAgent), talks their talk time, and hangs up: DialEnded."""
    customers = OutboundCustomers(
        p_human=1.0,
        p_machine=0.0,
        p_busy=0.0,
        p_no_answer=0.0,
        p_invalid=0.0,
        ring_s=Fixed(2.0),
        talk_s=Fixed(30.0),
        patience_s=Fixed(60.0),
        seed=3,
    )
    async with world(customers) as dialer:
        dialer.pbx.add_agent("1001")
        dialer.calls.set_agent("1001", device="PJSIP/1001")
        await dialer.ami.originate(dialer.calls.login_action("1001", 1))
        await until(lambda: dialer.calls.agent_logged_in("1001"))
        call_id = await dialer.dial("+12025550199")
        await until(lambda: bool(dialer.arrived))
        assert dialer.arrived[0].call_id == call_id
        for action in dialer.calls.actions_for(ConnectToAgent(call_id, "1001", f"outbound:{CAMPAIGN}")):
            await dialer.ami.send(action)
        await until(dialer.reap)
        answered, ended = dialer.by_call()[call_id]
        assert isinstance(answered, DialAnswered) and answered.human
        assert answered.amd_status == "HUMAN" and answered.amd_cause == "HUMAN-800-800"
        assert isinstance(ended, DialEnded) and ended.cause == "normal_clearing"
        record = dialer.pbx.outbound[call_id]
        assert record.fate == "completed"
        assert record.answered_at is not None and record.ended_at is not None
        # Virtual seconds: the event loop's lag (x100) can only lengthen what was measured.
        talk = dialer.pbx.counters.agent_talk_s["1001"]
        assert 29.5 <= talk <= 45.0
        assert 29.5 <= ended.at - answered.at <= 60.0


async def test_safe_harbour_and_machine_message() -> None:
    """A human no agent takes is Redirected to ccd-overflow,safe_harbour (the router's
    Overflow): the campaign's message, then the end. A machine is left CCD_AMD_MESSAGE."""
    human = OutboundCustomers(
        p_human=1.0, p_machine=0.0, p_busy=0.0, p_no_answer=0.0, p_invalid=0.0, patience_s=Fixed(60.0)
    )
    machine = OutboundCustomers(p_human=0.0, p_machine=1.0, p_busy=0.0, p_no_answer=0.0, p_invalid=0.0)
    mix = CalleeMix(prefixes={"+1202": human, "+1303": machine})
    async with world(None) as dialer:
        dialer.pbx.outbound_customers = mix
        person = await dialer.dial("+12025550123", safe_harbour="renewals/sorry")
        answerphone = await dialer.dial("+13035550123", amd_message="renewals/please-call")
        await until(lambda: bool(dialer.arrived))
        overflow = Overflow(person, f"outbound:{CAMPAIGN}", OverflowAction.SAFE_HARBOUR, "max_wait")
        for action in dialer.calls.actions_for(overflow):
            await dialer.ami.send(action)
        await until(dialer.reap)
        records = dialer.pbx.outbound
        assert records[person].fate == "overflow:safe_harbour"
        assert records[answerphone].fate == "machine_message"
        assert person in dialer.pbx.overflow_calls["safe_harbour"]
        ends = {e.call_id: e for e in dialer.events if isinstance(e, DialEnded)}
        assert set(ends) == {person, answerphone}
        [machine_answer] = [e for e in dialer.by_call()[answerphone] if isinstance(e, DialAnswered)]
        assert not machine_answer.human and machine_answer.amd_status == "MACHINE"


async def test_without_amd_every_answer_is_a_person() -> None:
    customers = OutboundCustomers(
        p_human=0.5, p_machine=0.5, p_busy=0.0, p_no_answer=0.0, p_invalid=0.0, ring_s=Fixed(1.0), seed=5
    )
    async with world(customers, amd=False) as dialer:
        calls = [await dialer.dial(f"+1415555{i:04d}") for i in range(10)]
        await until(dialer.reap)
        answers = [e for e in dialer.events if isinstance(e, DialAnswered)]
        assert len(answers) == 10
        assert {(a.human, a.amd_status, a.amd_cause) for a in answers} == {(True, "HUMAN", "AMD-OFF")}
        assert {a.call_id for a in dialer.arrived} == set(calls)


async def test_scripted_numbers_keep_their_script_and_none_means_the_old_default() -> None:
    async with world(None) as dialer:
        dialer.pbx.script_number("+12025550001", "busy", after_s=0.5)
        dialer.pbx.script_number("+12025550002", "invalid", after_s=0.5)
        busy = await dialer.dial("+12025550001")
        invalid = await dialer.dial("+12025550002")
        default = await dialer.dial("+12025550003")  # answers after 2 s, stays on the line
        await until(lambda: len(dialer.events) >= 3)
        outcomes = {e.call_id: e for e in dialer.events}
        failed_busy, failed_invalid, answered = outcomes[busy], outcomes[invalid], outcomes[default]
        assert isinstance(failed_busy, DialFailed) and failed_busy.outcome is Outcome.BUSY
        assert isinstance(failed_invalid, DialFailed) and failed_invalid.outcome is Outcome.INVALID
        assert isinstance(answered, DialAnswered) and answered.human
        assert dialer.pbx.outbound[default].kind == "script:answer"
        assert dialer.pbx.counters.dial_results == {"busy": 1, "invalid": 1, "answered": 1}
        hangup = dialer.outbound.hangup_action(default)
        assert hangup is not None
        await dialer.ami.send(hangup)
        await until(dialer.reap)


async def test_an_unallocated_number_fails_as_asterisk_reports_it() -> None:
    """A carrier's 404: DialEnd NOANSWER (app_dial has no word for cause 1), the channel's
    Hangup with Cause 1, and a Failure naming the dial string with Reason 0."""
    async with world(None) as dialer:
        dialer.pbx.script_number("+12025550404", "invalid", after_s=0.5)
        call_id = await dialer.dial("+12025550404")
        await until(dialer.reap)
        mine = [
            e
            for e in dialer.raw
            if call_id in (e.get("Uniqueid"), e.get("DestUniqueid")) or e.get("Event") == "OriginateResponse"
        ]
        names = [str(e["Event"]) for e in mine]
        assert names == ["Newchannel", "DialBegin", "DialEnd", "Hangup", "OriginateResponse"]
        assert mine[2]["DialStatus"] == "NOANSWER"
        assert (mine[3]["Cause"], mine[3]["Cause-txt"]) == ("1", "Unallocated (unassigned) number")
        response = mine[4]
        assert (response["Response"], response["Reason"], response["Uniqueid"]) == (
            "Failure",
            "0",
            "<unknown>",
        )
        assert response["Channel"] == "PJSIP/+12025550404@trunk"
        [failed] = dialer.events
        assert isinstance(failed, DialFailed) and failed.outcome is Outcome.INVALID


async def test_resync_after_a_dropped_link() -> None:
    """Calls that end while the link is down are settled by resync from CoreShowChannels."""
    customers = OutboundCustomers(
        p_human=1.0,
        p_machine=0.0,
        p_busy=0.0,
        p_no_answer=0.0,
        p_invalid=0.0,
        ring_s=Fixed(1.0),
        patience_s=Fixed(20.0),
        seed=11,
    )
    async with world(customers) as dialer:
        short = await dialer.dial("+12025550100")
        await until(lambda: bool(dialer.arrived))
        dialer.pbx.script_number("+12025550101", "answer", after_s=1.0)  # a patient person
        staying = await dialer.dial("+12025550101")
        dialer.server.stall_sessions(True)  # nothing reaches ccd from now on
        record = dialer.pbx.outbound[short]
        await until(lambda: record.ended_at is not None, timeout=5.0)  # their patience runs out
        dialer.server.drop_sessions()  # the events held for the stalled session die with it
        dialer.server.stall_sessions(False)
        await until(lambda: dialer.ami.reconnects == 1 and dialer.ami.connected)
        assert dialer.outbound.phase(short) is not None  # ccd never heard the Hangup
        items = await dialer.ami.send_list({"Action": "CoreShowChannels"})
        assert staying in {i["Uniqueid"] for i in items}  # still on the line, held
        events = dialer.outbound.resync(items, dialer.pbx.now())
        assert events == [DialEnded(events[0].at, short, "unknown")]
        dialer.events.extend(events)
        hangup = dialer.outbound.hangup_action(staying)
        assert hangup is not None
        await dialer.ami.send(hangup)
        await until(dialer.reap)
        assert [type(e) for e in dialer.by_call()[short]] == [DialAnswered, DialEnded]
        assert [type(e) for e in dialer.by_call()[staying]] == [DialAnswered, DialEnded]


# --- the models ---------------------------------------------------------------------------------


def test_customers_validate_with_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"p_human \+ p_machine .* = 1.1, not 1"):
        OutboundCustomers(p_human=0.4)
    with pytest.raises(ValueError, match=r"p_busy: -0.1 is not a probability"):
        OutboundCustomers(p_busy=-0.1, p_no_answer=0.55)
    with pytest.raises(ValueError, match="amd_accuracy"):
        OutboundCustomers(amd_accuracy=1.5)
    with pytest.raises(ValueError, match="ring_s"):
        OutboundCustomers(ring_s=3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        OutboundCustomers(seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="callee kind"):
        Callee("alien")
    with pytest.raises(ValueError, match="AMD status"):
        Callee("human", amd_status="MAYBE")


def test_customers_are_deterministic_for_a_seed() -> None:
    def draws(seed: int) -> list[Callee]:
        c = OutboundCustomers(seed=seed, amd_accuracy=0.7, p_notsure=0.1)
        return [c.callee(f"+1202555{i:04d}", "x") for i in range(200)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    callees = draws(1)
    assert all(math.isinf(c.after_s) for c in callees if c.kind == "no_answer")
    machines = [c for c in callees if c.kind == "machine"]
    assert all(c.talk_s == c.patience_s == 5.0 for c in machines)


def test_from_campaign_model_and_the_scenario_world() -> None:
    data = {
        "simulation": {"duration": "1h"},
        "agents": [{"group": "t", "count": 1, "skills": {"sales": 1.0}}],
        "campaigns": [
            {
                "name": "renewals",
                "queue": "sales",
                "leads": 10,
                "answer": {"human": 0.5, "machine": 0.2, "busy": 0.1, "no_answer": 0.15, "invalid": 0.05},
                "ring_time": {"dist": "fixed", "mean": "4s"},
                "talk": {"dist": "fixed", "mean": "60s"},
                "amd": True,
                "amd_accuracy": 0.9,
            }
        ],
    }
    scenario = parse_scenario(data, source="test", base=Path("."))
    model = scenario.campaigns[0]
    customers = OutboundCustomers.from_campaign_model(model, seed=4)
    assert (customers.p_human, customers.p_machine, customers.p_invalid) == (0.5, 0.2, 0.05)
    assert customers.ring_s == model.ring_time and customers.talk_s == model.talk
    assert customers.amd_accuracy == 0.9 and customers.machine_s == model.machine_talk
    pbx, _ = build_world(scenario, speed=1.0, seed=4)
    mix = pbx.outbound_customers
    assert isinstance(mix, CalleeMix) and set(mix.campaigns) == {"renewals"}
    callee = mix.callee("+12025550123", "another-campaign")  # a live demo's campaign: the default
    assert callee is not None and callee.kind in ("human", "machine", "busy", "no_answer", "invalid")
    assert CalleeMix().callee("+1", "x") is None
