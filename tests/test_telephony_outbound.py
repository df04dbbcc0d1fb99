"""OutboundTracker on hand-written AMI frames shaped like Asterisk 22.10's (ami_capture2).

Each outcome is fed in the order captured, reversed, and shuffled with duplicates; a
hypothesis property checks that any interleaving that keeps each channel's own events
in order (Stasis guarantees that much; the OriginateResponse floats freely) yields the
outcome, and that any order at all yields exactly one terminal event per call.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.leads import Outcome
from dialer.runner import Dial
from sim.pbx import separate_args  # the simulated Asterisk parses Variable: as manager.c does
from telephony.outbound import (
    CTX_OUTBOUND,
    MAX_CALL_S,
    REAP_MARGIN_S,
    SETTLE_S,
    UE_OUTBOUND_ANSWER,
    VERDICT_TIMEOUT_S,
    DialAnswered,
    DialEnded,
    DialEvent,
    DialFailed,
    DialPhase,
    OutboundTracker,
    app_arg,
)

Frame = dict[str, Any]
CALL = "renewals-7"
AID = "ccd-1a2b-42"
CHAN = "PJSIP/trunk-0000002a"
NUMBER = "+12025550123"
T0 = 1_767_603_600.0


def dial(call_id: str = CALL, **kw: Any) -> Dial:
    args: dict[str, Any] = {
        "call_id": call_id,
        "lead_id": "L-9981",
        "number": NUMBER,
        "campaign": "renewals",
        "caller_id": "+12025550100",
        "ring_timeout_s": 25.0,
    }
    args.update(kw)
    return Dial(**args)


def snapshot(uid: str = CALL, state: int = 0, prefix: str = "", context: str = "default") -> Frame:
    desc = {0: "Down", 5: "Ringing", 6: "Up"}[state]
    return {
        f"{prefix}Channel": CHAN,
        f"{prefix}ChannelState": str(state),
        f"{prefix}ChannelStateDesc": desc,
        f"{prefix}CallerIDNum": "+12025550100",
        f"{prefix}CallerIDName": "<unknown>",
        f"{prefix}ConnectedLineNum": "+12025550100",
        f"{prefix}ConnectedLineName": "<unknown>",
        f"{prefix}Language": "en",
        f"{prefix}AccountCode": "",
        f"{prefix}Context": context,
        f"{prefix}Exten": "s",
        f"{prefix}Priority": "1",
        f"{prefix}Uniqueid": uid,
        f"{prefix}Linkedid": uid,
    }


def event(name: str, category: str = "call", **headers: Any) -> Frame:
    return {"Event": name, "Privilege": f"{category},all", **headers}


def newchannel(uid: str = CALL) -> Frame:
    return event("Newchannel", **snapshot(uid))


def dial_begin(uid: str = CALL) -> Frame:
    return event("DialBegin", **snapshot(uid, prefix="Dest"), DialString=f"{NUMBER}@trunk")


def ringing(uid: str = CALL) -> Frame:
    return event("Newstate", **snapshot(uid, 5))


def up(uid: str = CALL) -> Frame:
    return event("Newstate", **snapshot(uid, 6))


def dial_end(status: str, uid: str = CALL) -> Frame:
    return event("DialEnd", **snapshot(uid, 6 if status == "ANSWER" else 0, prefix="Dest"), DialStatus=status)


def originate_response(reason: int, uid: str = CALL, aid: str = AID) -> Frame:
    ok = reason == 4
    return event(
        "OriginateResponse",
        ActionID=aid,
        Response="Success" if ok else "Failure",
        Channel=CHAN if ok else f"PJSIP/{NUMBER}@trunk",
        Context=CTX_OUTBOUND,
        Exten="s",
        Reason=str(reason),
        Uniqueid=uid if ok else "<unknown>",
        CallerIDNum="+12025550100",
        CallerIDName="<unknown>",
    )


def hangup(cause: int, uid: str = CALL, state: int = 0) -> Frame:
    text = {1: "Unallocated (unassigned) number", 16: "Normal Clearing", 17: "User busy"}
    return event("Hangup", **snapshot(uid, state), Cause=str(cause), **{"Cause-txt": text.get(cause, "x")})


def verdict(status: str, cause: str, uid: str = CALL) -> Frame:
    return event(
        "UserEvent",
        "user",
        **snapshot(uid, 6, context=CTX_OUTBOUND),
        UserEvent=UE_OUTBOUND_ANSWER,
        Call=CALL,
        AMDStatus=status,
        AMDCause=cause,
    )


def call_waiting(uid: str = CALL) -> Frame:
    return event(
        "UserEvent", "user", **snapshot(uid, 6, context="ccd-hold"), UserEvent="CCDCallWaiting", Queue="q"
    )


# The captured sequences of each outcome (OriginateResponse where it was seen first).
FLOWS: dict[str, list[Frame]] = {
    "human": [
        newchannel(),
        dial_begin(),
        ringing(),
        up(),
        dial_end("ANSWER"),
        originate_response(4),
        verdict("HUMAN", "HUMAN-800-800"),
        call_waiting(),
        hangup(16, state=6),
    ],
    "machine": [
        newchannel(),
        dial_begin(),
        ringing(),
        up(),
        dial_end("ANSWER"),
        originate_response(4),
        verdict("MACHINE", "MAXWORDS-3-2"),
        hangup(16, state=6),
    ],
    "busy": [newchannel(), dial_begin(), originate_response(5), dial_end("BUSY"), hangup(17)],
    "no_answer": [newchannel(), dial_begin(), ringing(), hangup(19, state=5), originate_response(3)],
    "congestion": [newchannel(), dial_begin(), dial_end("CONGESTION"), originate_response(8), hangup(34)],
    "invalid": [newchannel(), dial_begin(), dial_end("NOANSWER"), hangup(1), originate_response(0)],
    "unavailable": [newchannel(), dial_begin(), dial_end("CHANUNAVAIL"), originate_response(0), hangup(20)],
}
EXPECTED: dict[str, Outcome | tuple[bool, str]] = {
    "human": (True, "HUMAN"),
    "machine": (False, "MACHINE"),
    "busy": Outcome.BUSY,
    "no_answer": Outcome.NO_ANSWER,
    "congestion": Outcome.CONGESTION,
    "invalid": Outcome.INVALID,
    "unavailable": Outcome.FAILED,
}


def tracked(*calls: str) -> OutboundTracker:
    tracker = OutboundTracker()
    for i, call_id in enumerate(calls or (CALL,)):
        d = dial(call_id)
        tracker.track(d, T0)
        tracker.originate_action(d, action_id=AID if call_id == CALL else f"{AID}-{i}")
    return tracker


def feed(tracker: OutboundTracker, frames: list[Frame], at: float = T0 + 1) -> list[DialEvent]:
    out: list[DialEvent] = []
    for i, frame in enumerate(frames):
        out.extend(tracker.on_ami(frame, at + i * 0.01))
    return out


def check(events: list[DialEvent], expected: Outcome | tuple[bool, str], call_id: str = CALL) -> None:
    mine = [e for e in events if e.call_id == call_id]
    if isinstance(expected, Outcome):
        assert len(mine) == 1 and isinstance(mine[0], DialFailed), mine
        assert mine[0].outcome is expected
    else:
        assert [type(e) for e in mine] == [DialAnswered, DialEnded], mine
        answered = mine[0]
        assert isinstance(answered, DialAnswered)
        assert (answered.human, answered.amd_status) == expected


# --- the Originate ----------------------------------------------------------------------------


def test_originate_action_headers() -> None:
    tracker = OutboundTracker()
    d = dial(agent_id="1001")
    action = tracker.originate_action(
        d, action_id=AID, trunk="carrier", amd=True, queue="outbound:renewals", priority=100
    )
    assert action == {
        "Action": "Originate",
        "ActionID": AID,
        "Channel": f"PJSIP/{NUMBER}@carrier",
        "Context": "ccd-outbound",
        "Exten": "s",
        "Priority": "1",
        "Timeout": "25000",
        "CallerID": "+12025550100",
        "Async": "true",
        "ChannelId": CALL,
        "Variable": [
            f"CCD_CALL={CALL}",
            "CCD_CAMPAIGN=renewals",
            "CCD_LEAD=L-9981",
            "CCD_QUEUE=outbound:renewals",
            "CCD_PRIORITY=100",
            "CCD_AMD=1",
            "CCD_AGENT=1001",
        ],
    }
    plain = tracker.originate_action(dial("c-2"), action_id="a-2", amd_message="m", safe_harbour="sh")
    assert "CCD_AMD=0" in plain["Variable"] and "CCD_QUEUE=outbound:renewals" in plain["Variable"]
    assert "CCD_AMD_MESSAGE=m" in plain["Variable"] and "CCD_SAFE_HARBOUR=sh" in plain["Variable"]
    assert not any(v.startswith("CCD_AGENT=") for v in plain["Variable"])


def test_variable_values_are_escaped_for_asterisks_argument_parser() -> None:
    tricky = 'ACME,"Ltd" (UK) [x] \\ 1'
    assert separate_args(f"CCD_LEAD={app_arg(tricky)}") == [f"CCD_LEAD={tricky}"]
    action = OutboundTracker().originate_action(dial(lead_id=tricky), action_id=AID)
    lead = next(v for v in action["Variable"] if v.startswith("CCD_LEAD="))
    assert separate_args(lead) == [f"CCD_LEAD={tricky}"]
    assert separate_args("A=1,B=(2,3),C") == ["A=1", "B=(2,3)", "C"]


@given(st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"])))
def test_property_any_value_survives_the_argument_parser(value: str) -> None:
    assert separate_args(f"CCD_LEAD={app_arg(value)}") == [f"CCD_LEAD={value}"]


@pytest.mark.parametrize(
    ("change", "kw"),
    [
        ("number", {"number": "+1202/555"}),
        ("number", {"number": "12,3"}),
        ("caller id", {"caller_id": "x\r\nAction: Hangup"}),
        ("lead", {"lead_id": "a\nb"}),
        ("call id", {"call_id": "a/b"}),
    ],
)
def test_originate_action_refuses_what_cannot_be_sent(change: str, kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OutboundTracker().originate_action(dial(**kw), action_id=AID)


def test_bad_trunk_and_action_id_are_refused() -> None:
    with pytest.raises(ValueError, match="trunk"):
        OutboundTracker().originate_action(dial(), action_id=AID, trunk="a@b")
    with pytest.raises(ValueError, match="action id"):
        OutboundTracker().originate_action(dial(), action_id="")


def test_track_twice_is_an_error() -> None:
    tracker = tracked()
    with pytest.raises(ValueError, match="already tracked"):
        tracker.track(dial(), T0)


# --- every outcome, in order, reversed, shuffled with duplicates ---------------------------------


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_each_outcome_in_the_captured_order(flow: str) -> None:
    tracker = tracked()
    events = feed(tracker, FLOWS[flow])
    check(events, EXPECTED[flow])
    assert tracker.calls == [] and tracker.ended(CALL)
    assert tracker.next_deadline() is None
    assert tracker.malformed == 0


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_each_outcome_reversed(flow: str) -> None:
    """Everything backwards: the Hangup comes first. Failures are still named right (the
    Hangup's cause is the authority); a Hangup with Cause 16 says nothing about a dial,
    so the verdict that follows is still heard (a real channel's events are in order,
    but the call must end exactly once whatever comes)."""
    tracker = tracked()
    events = feed(tracker, list(reversed(FLOWS[flow])))
    events += tracker.reap(T0 + 3600)
    check(events, EXPECTED[flow])


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_duplicates_and_late_events_emit_nothing(flow: str) -> None:
    tracker = tracked()
    frames = FLOWS[flow]
    events = feed(tracker, [f for frame in frames for f in (frame, frame)])
    check(events, EXPECTED[flow])
    assert feed(tracker, frames, at=T0 + 100) == []
    assert tracker.reap(T0 + 100_000) == []


def test_failure_waits_for_the_hangup_then_decides_on_its_cause() -> None:
    """Reason 0 says nothing; the Hangup's cause 1 says invalid."""
    tracker = tracked()
    assert feed(tracker, [newchannel(), originate_response(0)]) == []
    assert tracker.phase(CALL) is DialPhase.CLOSING
    assert tracker.next_deadline() == pytest.approx(T0 + 1.01 + SETTLE_S)
    [failed] = tracker.on_ami(hangup(1), T0 + 1.5)
    assert isinstance(failed, DialFailed) and failed.outcome is Outcome.INVALID
    assert "unallocated_number" in failed.detail and "reason 0" in failed.detail


def test_no_answer_without_dialend_is_decided_by_the_hangup() -> None:
    tracker = tracked()
    [failed] = feed(tracker, [newchannel(), dial_begin(), ringing(), hangup(19, state=5)])
    assert isinstance(failed, DialFailed) and failed.outcome is Outcome.NO_ANSWER
    assert feed(tracker, [originate_response(3)]) == []


def test_local_channel_cause_0_takes_the_dialstatus() -> None:
    """A Local ;1 half hangs up with Cause 0 while DialEnd says BUSY (ami_capture 1)."""
    tracker = tracked()
    [failed] = feed(tracker, [newchannel(), dial_end("BUSY"), hangup(0)])
    assert isinstance(failed, DialFailed) and failed.outcome is Outcome.BUSY


def test_uninformative_hangup_waits_for_the_originate_response() -> None:
    tracker = tracked()
    assert feed(tracker, [newchannel(), hangup(0)]) == []
    [failed] = tracker.on_ami(originate_response(5), T0 + 1.2)
    assert isinstance(failed, DialFailed) and failed.outcome is Outcome.BUSY


def test_originate_response_without_any_channel_settles_after_a_pause() -> None:
    """An unknown endpoint: no channel at all, only ``Failure Reason: 0 Uniqueid: <unknown>``."""
    tracker = tracked()
    assert tracker.on_ami(originate_response(0), T0 + 0.1) == []
    assert tracker.reap(T0 + 0.1 + SETTLE_S - 0.01) == []
    [failed] = tracker.reap(T0 + 0.1 + SETTLE_S)
    assert isinstance(failed, DialFailed) and failed.outcome is Outcome.FAILED
    assert failed.detail == "OriginateResponse reason 0"


def test_answer_after_hangup_is_an_answer_lost_during_amd() -> None:
    """The late OriginateResponse (Success) is the only witness of the answer."""
    tracker = tracked()
    assert feed(tracker, [newchannel(), hangup(16)]) == []
    events = tracker.on_ami(originate_response(4), T0 + 1.1)
    assert events == [
        DialAnswered(T0 + 1.1, CALL, False, "HANGUP", ""),
        DialEnded(T0 + 1.1, CALL, "normal_clearing"),
    ]


def test_callee_hangs_up_while_amd_listens() -> None:
    tracker = tracked()
    events = feed(tracker, [newchannel(), up(), dial_end("ANSWER"), hangup(16, state=6)])
    assert [type(e) for e in events] == [DialAnswered, DialEnded]
    assert isinstance(events[0], DialAnswered) and events[0].amd_status == "HANGUP"
    assert not events[0].human


@pytest.mark.parametrize(
    ("status", "human"),
    [("HUMAN", True), ("NOTSURE", True), ("MACHINE", False), ("", True), ("WHATEVER", True)],
)
def test_verdicts(status: str, human: bool) -> None:
    tracker = tracked()
    events = feed(tracker, [newchannel(), up(), verdict(status, "c")])
    assert events == [DialAnswered(T0 + 1.02, CALL, human, status, "c")]
    assert tracker.phase(CALL) is DialPhase.UP


def test_verdict_keyed_on_the_call_header_when_the_uniqueid_differs() -> None:
    """A Local channel's ;1 half would carry the ChannelId, a ;2 its own id: Call names it."""
    tracker = tracked()
    frame = verdict("HUMAN", "HUMAN-800-800", uid="1795422500.36")
    [answered] = tracker.on_ami(frame, T0 + 2)
    assert isinstance(answered, DialAnswered) and answered.call_id == CALL


def test_unknown_channels_are_ignored() -> None:
    tracker = tracked()
    other = [
        newchannel("1795422427.4"),
        hangup(16, uid="1795422427.4"),
        originate_response(4, uid="ccd-agent-1001-1", aid="ccd-1a2b-7"),
        originate_response(0, aid="other-app-1"),
        verdict("HUMAN", "x", uid="1795422427.4") | {"Call": "someone-else"},
        call_waiting("1795422427.4"),
        event("DialEnd", **snapshot("cust-1"), **snapshot("agent-leg", prefix="Dest"), DialStatus="ANSWER"),
        event("Cdr", Channel=CHAN),
    ]
    assert feed(tracker, other) == []
    assert tracker.phase(CALL) is DialPhase.PENDING
    assert tracker.malformed == 0


@pytest.mark.parametrize(
    "frame",
    [
        {"Event": "Hangup", "Cause": "16"},
        {"Event": "Newchannel", "Channel": CHAN},
        {"Event": "OriginateResponse", "Response": "Failure"},
        {"Event": "UserEvent", "UserEvent": UE_OUTBOUND_ANSWER, "AMDStatus": "HUMAN"},
        {"Event": "DialEnd", "DestUniqueid": CALL},
        {"Event": "Hangup", "Uniqueid": "  "},
        {"Event": ["Hangup"], "Uniqueid": []},
    ],
)
def test_malformed_frames_are_counted_and_never_raise(frame: Frame) -> None:
    tracker = tracked()
    assert tracker.on_ami(frame, T0) == []
    assert tracker.malformed == 1 and tracker.malformed_reason


def test_a_broken_mapping_is_counted_not_raised() -> None:
    class Broken(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("boom")

    tracker = tracked()
    assert tracker.on_ami(Broken(Event="Hangup"), T0) == []
    assert tracker.malformed == 1 and "boom" in tracker.malformed_reason


def test_header_names_are_case_insensitive() -> None:
    tracker = tracked()
    frames = [{k.lower(): v for k, v in f.items()} for f in FLOWS["busy"]]
    check(feed(tracker, frames), Outcome.BUSY)


def test_several_calls_at_once_keep_apart() -> None:
    tracker = tracked("a", "b", "c")
    events = feed(
        tracker,
        [
            newchannel("a"),
            newchannel("b"),
            hangup(17, uid="b"),
            up("a"),
            verdict("MACHINE", "x", uid="a") | {"Call": "a"},
            hangup(19, uid="c"),
            hangup(16, uid="a", state=6),
        ],
    )
    check(events, Outcome.BUSY, "b")
    check(events, Outcome.NO_ANSWER, "c")
    check(events, (False, "MACHINE"), "a")


# --- timers -------------------------------------------------------------------------------------


def test_reap_a_call_nobody_reported() -> None:
    tracker = tracked()
    due = T0 + 25.0 + REAP_MARGIN_S
    assert tracker.next_deadline() == due
    assert tracker.reap(due - 1) == []
    [failed] = tracker.reap(due)
    assert failed == DialFailed(due, CALL, Outcome.FAILED, "no end reported")
    assert tracker.next_deadline() is None


def test_reap_an_answered_call_without_verdict_then_at_max_call() -> None:
    tracker = tracked()
    feed(tracker, [newchannel(), up()], at=T0 + 5)
    answered_at = T0 + 5.01
    assert tracker.next_deadline() == pytest.approx(answered_at + VERDICT_TIMEOUT_S)
    [answered] = tracker.reap(answered_at + VERDICT_TIMEOUT_S)
    assert isinstance(answered, DialAnswered) and not answered.human and answered.amd_status == "UNKNOWN"
    # Open calls are not reaped before max_call_s.
    assert tracker.reap(answered_at + 3600) == []
    [ended] = tracker.reap(answered_at + MAX_CALL_S)
    assert ended == DialEnded(answered_at + MAX_CALL_S, CALL, "no_end_reported")


def test_next_deadline_follows_the_earliest_open_call() -> None:
    tracker = OutboundTracker(max_call_s=100.0)
    tracker.track(dial("a", ring_timeout_s=20.0), T0)
    tracker.track(dial("b", ring_timeout_s=15.0), T0 + 1)
    assert tracker.next_deadline() == T0 + 16 + REAP_MARGIN_S
    tracker.on_ami(verdict("HUMAN", "x", uid="b") | {"Call": "b"}, T0 + 3)
    assert tracker.next_deadline() == T0 + 20 + REAP_MARGIN_S
    tracker.forget("a")
    assert tracker.next_deadline() == T0 + 103
    assert tracker.on_ami(hangup(17, uid="a"), T0 + 4) == []


@pytest.mark.parametrize("kw", [{"settle_s": 0}, {"max_call_s": math.inf}, {"reap_margin_s": -1}])
def test_bad_limits(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        OutboundTracker(**kw)


def test_events_check_themselves() -> None:
    with pytest.raises(ValueError, match="not a failed dial"):
        DialFailed(T0, CALL, Outcome.HUMAN, "")
    with pytest.raises(ValueError, match="call id"):
        DialEnded(T0, "", "x")
    with pytest.raises(ValueError, match="finite"):
        DialAnswered(math.nan, CALL, True, "HUMAN", "")


# --- resync -------------------------------------------------------------------------------------


def core_show_channel(uid: str, state: int = 6, context: str = "ccd-hold") -> Frame:
    return {
        "Event": "CoreShowChannel",
        "ActionID": "ccd-1a2b-99",
        **snapshot(uid, state, context=context),
        "Application": "MusicOnHold",
        "ApplicationData": "default,10",
        "Duration": "00:00:04",
        "BridgeId": "",
    }


def test_resync_ends_what_is_gone_and_keeps_what_is_there() -> None:
    tracker = tracked("up", "answered", "ringing", "ringing-there", "pending", "answered-there")
    feed(tracker, [newchannel("up"), up("up"), verdict("HUMAN", "x", uid="up") | {"Call": "up"}])
    feed(tracker, [newchannel("answered"), up("answered")])
    feed(tracker, [newchannel("ringing"), ringing("ringing"), dial_end("BUSY", uid="ringing")])
    feed(tracker, [newchannel("ringing-there"), newchannel("answered-there")])
    listing = [core_show_channel("ringing-there", 5), core_show_channel("answered-there", 6)]
    events = tracker.resync(listing, T0 + 20)
    by_call: dict[str, list[DialEvent]] = {}
    for e in events:
        by_call.setdefault(e.call_id, []).append(e)
    assert by_call["up"] == [DialEnded(T0 + 20, "up", "unknown")]
    assert [type(e) for e in by_call["answered"]] == [DialAnswered, DialEnded]
    [failed] = by_call["ringing"]
    assert isinstance(failed, DialFailed) and failed.outcome is Outcome.BUSY
    assert "gone while AMI was down" in failed.detail
    assert set(by_call) == {"up", "answered", "ringing"}
    assert tracker.phase("ringing-there") is DialPhase.RINGING
    assert tracker.phase("answered-there") is DialPhase.ANSWERED
    # Never seen: it may still be dialling; its OriginateResponse may yet come.
    assert tracker.phase("pending") is DialPhase.PENDING
    assert tracker.on_ami(originate_response(5, aid=f"{AID}-4"), T0 + 21) == []
    [late] = tracker.reap(T0 + 21 + SETTLE_S)
    assert isinstance(late, DialFailed) and late.call_id == "pending" and late.outcome is Outcome.BUSY


# --- properties ---------------------------------------------------------------------------------


def _channel_order_kept(flow: list[Frame]) -> st.SearchStrategy[list[Frame]]:
    """Interleavings that keep the channel's own events in order, the OriginateResponse
    anywhere, and duplicates of any event anywhere after it."""
    channel = [f for f in flow if f["Event"] != "OriginateResponse"]
    floating = [f for f in flow if f["Event"] == "OriginateResponse"]

    @st.composite
    def build(draw: st.DrawFn) -> list[Frame]:
        frames = list(channel)
        for f in floating:
            frames.insert(draw(st.integers(0, len(frames))), f)
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(frames) - 1))
            frames.insert(draw(st.integers(i + 1, len(frames))), frames[i])
        return frames

    return build()


@settings(max_examples=60, deadline=None)
@given(data=st.data(), flow=st.sampled_from(sorted(FLOWS)))
def test_property_any_faithful_interleaving_gives_the_outcome(data: st.DataObject, flow: str) -> None:
    frames = data.draw(_channel_order_kept(FLOWS[flow]))
    tracker = tracked()
    events = feed(tracker, frames) + tracker.reap(T0 + 10_000)
    check(events, EXPECTED[flow])
    assert tracker.malformed == 0


@settings(max_examples=80, deadline=None)
@given(
    frames=st.lists(st.sampled_from([f for flow in FLOWS.values() for f in flow]), max_size=14),
    reap_at=st.floats(0, 200),
)
def test_property_any_order_at_all_ends_a_call_exactly_once(frames: list[Frame], reap_at: float) -> None:
    """Events of different outcomes mixed, in any order, duplicated: never two terminal
    events, an answer only before its end, and every call settled once reaped."""
    tracker = tracked()
    events = feed(tracker, frames)
    events += tracker.reap(T0 + reap_at)
    events += tracker.reap(T0 + MAX_CALL_S + 10_000)
    kinds = [type(e) for e in events]
    assert kinds in ([DialFailed], [DialAnswered, DialEnded]), kinds
    assert tracker.calls == [] and tracker.next_deadline() is None
