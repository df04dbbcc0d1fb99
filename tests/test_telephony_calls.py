"""CallTracker: AMI frames in the shapes of a real Asterisk 22 in, domain events out.

The frames are written here by hand after the capture of a real Asterisk 22.10
(header order, the channel snapshot block, Local channel halves, Linkedid rewritten on
bridging, the quirks of DialEnd and OriginateResponse), with the contract's names.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentRingNoAnswer,
    Announce,
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
)
from telephony.calls import (
    CONTEXTS,
    USER_EVENTS,
    CallState,
    CallTracker,
    cause_text,
    originate_outcome,
)

Frame = dict[str, Any]

CUST = "Local/5551230101@carrier-00000002;1"
CUST_UID = "1795422427.4"
AGENT_CH = "PJSIP/1001-00000000"
LEG = "ccd-agent-1001-1"


def snapshot(
    channel: str, uid: str, context: str, exten: str = "s", priority: int = 1, linkedid: str | None = None
) -> Frame:
    return {
        "Channel": channel,
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "CallerIDNum": "5551230101",
        "CallerIDName": "Customer 101",
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "en",
        "AccountCode": "",
        "Context": context,
        "Exten": exten,
        "Priority": str(priority),
        "Uniqueid": uid,
        "Linkedid": linkedid or uid,
    }


def waiting(uid: str = CUST_UID, channel: str = CUST, queue: str = "sales", priority: str = "0") -> Frame:
    return {
        "Event": "UserEvent",
        "Privilege": "user,all",
        **snapshot(channel, uid, "ccd-hold", "s", 3),
        "UserEvent": "CCDCallWaiting",
        "Queue": queue,
        # Not "Priority": the channel snapshot already has one (the dialplan priority).
        "CCDPriority": priority,
    }


def ring_failed(agent: str = "1001", status: str = "NOANSWER", uid: str = CUST_UID) -> Frame:
    return {
        "Event": "UserEvent",
        "Privilege": "user,all",
        **snapshot(CUST, uid, "ccd-ring", "s", 3),
        "UserEvent": "CCDRingFailed",
        "Agent": agent,
        "DialStatus": status,
    }


def fallback(uid: str = CUST_UID) -> Frame:
    return {
        "Event": "UserEvent",
        "Privilege": "user,all",
        **snapshot(CUST, uid, "ccd-fallback", "s", 1),
        "UserEvent": "CCDFallback",
        "Queue": "sales",
    }


def bridge_block(conference: str, n: int) -> Frame:
    return {
        "BridgeUniqueid": "a89d34ee-bc4a-4427-a4b0-e246b30a433e",
        "BridgeType": "base",
        "BridgeTechnology": "softmix",
        "BridgeCreator": "ConfBridge",
        "BridgeName": conference,
        "BridgeNumChannels": str(n),
        "BridgeVideoSourceMode": "none",
    }


def conf_join(
    channel: str, uid: str, agent: str = "1001", context: str = "ccd-agent-join", n: int = 3
) -> Frame:
    conference = f"ccd-agent-{agent}"
    return {
        "Event": "ConfbridgeJoin",
        "Privilege": "call,all",
        "Conference": conference,
        **bridge_block(conference, n),
        **snapshot(channel, uid, context, "s", 2, linkedid="1795422426.0"),
        "Admin": "No",
        "Muted": "No",
    }


def hangup(channel: str, uid: str, cause: int = 16, context: str = "ccd-hold") -> Frame:
    return {
        "Event": "Hangup",
        "Privilege": "call,all",
        **snapshot(channel, uid, context),
        "Cause": str(cause),
        "Cause-txt": {16: "Normal Clearing", 17: "User busy", 21: "Call Rejected"}.get(cause, "Unknown"),
    }


def dial_end(status: str, caller: tuple[str, str] | None = (CUST, CUST_UID)) -> Frame:
    frame: Frame = {"Event": "DialEnd", "Privilege": "call,all"}
    if caller is not None:  # Originate's own dial has no caller block
        frame.update(snapshot(caller[0], caller[1], "ccd-ring", "s", 2))
    frame.update(
        {
            "DestChannel": "PJSIP/1002-00000007",
            "DestChannelState": "6",
            "DestUniqueid": "1795422463.20",
            "DestLinkedid": CUST_UID,
            "DialStatus": status,
        }
    )
    return frame


def originate_response(
    response: str, uid: str, channel: str, reason: str, action_id: str = "ccd-x-1"
) -> Frame:
    return {
        "Event": "OriginateResponse",
        "Privilege": "call,all",
        "ActionID": action_id,
        "Response": response,
        "Channel": channel,
        "Context": "ccd-agent-session",
        "Exten": "s",
        "Reason": reason,
        "Uniqueid": uid,
        "CallerIDNum": "1001",
        "CallerIDName": "ccd",
    }


def tracker(mode: str = "session") -> CallTracker:
    t = CallTracker(ring_timeout_s=12, max_hold_s=240)
    t.set_agent("1001", mode=mode, device="PJSIP/1001")
    t.set_agent("1002", mode="ring", device="PJSIP/1002")
    return t


def logged_in(t: CallTracker, agent: str = "1001", leg: str = LEG, at: float = 1.0) -> None:
    assert t.on_ami(conf_join(AGENT_CH, leg, agent, "ccd-agent-session", 2), at) == [AgentLoggedIn(at, agent)]


def arrived(t: CallTracker, uid: str = CUST_UID, at: float = 2.0) -> None:
    assert t.on_ami(waiting(uid), at) == [CallArrived(at, uid, "sales", caller="5551230101", priority=0)]


def talking(t: CallTracker, agent: str = "1001") -> None:
    logged_in(t, agent)
    arrived(t)
    t.actions_for(ConnectToAgent(CUST_UID, agent, "sales"))
    assert t.on_ami(conf_join(CUST, CUST_UID, agent), 3.0) == [CallAnswered(3.0, CUST_UID, agent)]


# --- the names of the contract ---------------------------------------------------------


def test_contract_names() -> None:
    assert set(CONTEXTS) == {
        "ccd-inbound",
        "ccd-hold",
        "ccd-fallback",
        "ccd-overflow",
        "ccd-agent-session",
        "ccd-agent-join",
        "ccd-ring",
    }
    assert set(USER_EVENTS) == {"CCDCallWaiting", "CCDRingFailed", "CCDFallback"}


# --- events ccd acts on: one test per row of the contract table -----------------------


def test_call_waiting_for_unknown_channel_is_an_arrival() -> None:
    t = tracker()
    events = t.on_ami(waiting(priority="5", queue="support"), 10.0)
    assert events == [CallArrived(10.0, CUST_UID, "support", caller="5551230101", priority=5)]
    assert t.call_channel(CUST_UID) == CUST
    assert t.call_state(CUST_UID) is CallState.WAITING


def test_call_waiting_for_a_talking_call_is_a_transfer() -> None:
    t = tracker()
    talking(t)
    acts = t.transfer_actions(CUST_UID, "billing")
    assert acts == [
        {"Action": "Setvar", "Channel": CUST, "Variable": "CCD_QUEUE", "Value": "billing"},
        {"Action": "Setvar", "Channel": CUST, "Variable": "CCD_MAX_HOLD", "Value": "240"},
        {"Action": "Redirect", "Channel": CUST, "Context": "ccd-hold", "Exten": "s", "Priority": "1"},
    ]
    assert t.on_ami(waiting(queue="billing"), 5.0) == [CallTransferred(5.0, CUST_UID, "billing")]
    assert t.on_ami(waiting(queue="billing"), 5.1) == []  # a repeat is no second transfer
    # Transferred, then hung up while waiting in the new queue: an abandon there.
    assert t.on_ami(hangup(CUST, CUST_UID), 6.0) == [CallerAbandoned(6.0, CUST_UID)]


def test_agent_leg_joining_its_conference_is_a_login() -> None:
    t = tracker()
    action = t.login_action("1001", 7)
    assert action == {
        "Action": "Originate",
        "Channel": "PJSIP/1001",
        "Context": "ccd-agent-session",
        "Exten": "s",
        "Priority": "1",
        "Timeout": "12000",
        "CallerID": '"ccd" <1001>',
        "Async": "true",
        "ChannelId": "ccd-agent-1001-7",
        "Variable": "CCD_AGENT=1001",
    }
    assert "ActionID" not in action
    assert t.logout_action("1001") == {"Action": "Hangup", "Channel": "ccd-agent-1001-7", "Cause": "16"}
    assert t.on_ami(originate_response("Success", "ccd-agent-1001-7", AGENT_CH, "4"), 1.0) == []
    assert t.on_ami(conf_join(AGENT_CH, "ccd-agent-1001-7", "1001", "ccd-agent-session", 2), 1.5) == [
        AgentLoggedIn(1.5, "1001")
    ]
    assert t.on_ami(conf_join(AGENT_CH, "ccd-agent-1001-7", "1001", "ccd-agent-session", 2), 1.6) == []
    assert t.agent_channel("1001") == AGENT_CH
    assert t.agent_logged_in("1001")
    assert t.logout_action("1001") == {"Action": "Hangup", "Channel": AGENT_CH, "Cause": "16"}


def test_agent_ids_with_dashes_and_foreign_legs() -> None:
    t = CallTracker()
    t.set_agent("team-a-7", device="PJSIP/7")
    assert t.on_ami(conf_join(AGENT_CH, "ccd-agent-team-a-7-3", "team-a-7", "ccd-agent-session"), 1) == [
        AgentLoggedIn(1, "team-a-7")
    ]
    # A leg of another agent in this room, and an unconfigured agent: no login.
    assert t.on_ami(conf_join(AGENT_CH, "ccd-agent-x-1", "team-a-7", "ccd-agent-session"), 2) == []
    assert t.on_ami(conf_join(AGENT_CH, "ccd-agent-zz-1", "zz", "ccd-agent-session"), 2) == []
    # A conference that is not ours.
    assert t.on_ami(conf_join(CUST, CUST_UID, "x") | {"Conference": "sales-meeting"}, 3) == []


def test_customer_joining_the_agents_conference_is_an_answer() -> None:
    t = tracker()
    logged_in(t)
    arrived(t)
    acts = t.actions_for(ConnectToAgent(CUST_UID, "1001", "sales"))
    assert acts == [
        {"Action": "Setvar", "Channel": CUST, "Variable": "CCD_AGENT", "Value": "1001"},
        {"Action": "Redirect", "Channel": CUST, "Context": "ccd-agent-join", "Exten": "s", "Priority": "1"},
    ]
    assert t.call_state(CUST_UID) is CallState.OFFERED
    # Linkedid changed by the bridging: the call is still found by its Uniqueid.
    assert t.on_ami(conf_join(CUST, CUST_UID), 3.0) == [CallAnswered(3.0, CUST_UID, "1001")]
    assert t.on_ami(conf_join(CUST, CUST_UID), 3.1) == []
    assert t.call_state(CUST_UID) is CallState.TALKING


def test_join_of_another_agents_room_is_no_answer() -> None:
    t = tracker()
    arrived(t)
    t.actions_for(ConnectToAgent(CUST_UID, "1001", "sales"))
    assert t.on_ami(conf_join(CUST, CUST_UID, agent="2002"), 3.0) == []


def test_ring_per_call_dial_answer() -> None:
    t = tracker()
    arrived(t)
    acts = t.actions_for(ConnectToAgent(CUST_UID, "1002", "sales"))
    assert acts == [
        {"Action": "Setvar", "Channel": CUST, "Variable": "CCD_AGENT", "Value": "1002"},
        {"Action": "Setvar", "Channel": CUST, "Variable": "CCD_AGENT_DEVICE", "Value": "PJSIP/1002"},
        {"Action": "Setvar", "Channel": CUST, "Variable": "CCD_RING_TIMEOUT", "Value": "12"},
        {"Action": "Redirect", "Channel": CUST, "Context": "ccd-ring", "Exten": "s", "Priority": "1"},
    ]
    assert t.on_ami(dial_end("RINGING"), 3.0) == []
    assert t.on_ami(dial_end("ANSWER", caller=None), 3.5) == []  # Originate's dial: no caller block
    assert t.malformed == 0
    assert t.on_ami(dial_end("ANSWER"), 4.0) == [CallAnswered(4.0, CUST_UID, "1002")]
    assert t.on_ami(dial_end("ANSWER"), 4.1) == []
    assert t.on_ami(hangup(CUST, CUST_UID, 16, "ccd-ring"), 9.0) == [
        CallEnded(9.0, CUST_UID, cause="normal_clearing")
    ]


def test_ring_no_answer() -> None:
    t = tracker()
    arrived(t)
    t.actions_for(ConnectToAgent(CUST_UID, "1002", "sales"))
    assert t.on_ami(ring_failed("1002"), 15.0) == [AgentRingNoAnswer(15.0, "1002", CUST_UID)]
    assert t.on_ami(ring_failed("1002"), 15.1) == []  # duplicate
    assert t.call_state(CUST_UID) is CallState.WAITING
    # Later caller hang-up while back on hold: an abandon.
    assert t.on_ami(hangup(CUST, CUST_UID), 20.0) == [CallerAbandoned(20.0, CUST_UID)]


def test_ring_failed_for_a_call_not_ringing_that_agent_is_ignored() -> None:
    t = tracker()
    arrived(t)
    assert t.on_ami(ring_failed("1002"), 3.0) == []  # never offered
    t.actions_for(ConnectToAgent(CUST_UID, "1002", "sales"))
    assert t.on_ami(ring_failed("9999"), 3.0) == []


def test_cancel_offer_takes_the_call_back_to_hold() -> None:
    t = tracker()
    arrived(t)
    t.actions_for(ConnectToAgent(CUST_UID, "1002", "sales"))
    assert t.actions_for(CancelOffer(CUST_UID, "1002")) == [
        {"Action": "Redirect", "Channel": CUST, "Context": "ccd-hold", "Exten": "wait", "Priority": "1"}
    ]
    # The Dial was interrupted; a late DialEnd ANSWER or CCDRingFailed means nothing now.
    assert t.on_ami(dial_end("ANSWER"), 5.0) == []
    assert t.on_ami(ring_failed("1002"), 5.0) == []


def test_cancel_offer_never_yanks_a_talking_caller() -> None:
    t = tracker()
    talking(t)
    assert t.actions_for(CancelOffer(CUST_UID, "1001")) == []


def test_fallback_ends_the_call() -> None:
    t = tracker()
    arrived(t)
    assert t.on_ami(fallback(), 300.0) == [CallEnded(300.0, CUST_UID, cause="fallback")]
    # The dialplan goes on (voicemail) and the channel hangs up later: already over.
    assert t.on_ami(hangup(CUST, CUST_UID, context="ccd-fallback"), 330.0) == []
    assert t.on_ami(fallback(), 331.0) == []
    assert t.on_ami(waiting(), 332.0) == []  # nothing revives an ended call


def test_fallback_of_an_unknown_call_is_ignored() -> None:
    t = tracker()
    assert t.on_ami(fallback("1795422999.1"), 1.0) == []


@pytest.mark.parametrize(
    ("cause", "text"), [(16, "normal_clearing"), (17, "user_busy"), (21, "call_rejected"), (19, "no_answer")]
)
def test_hangup_of_a_talking_customer_ends_with_the_q850_text(cause: int, text: str) -> None:
    t = tracker()
    talking(t)
    assert t.on_ami(hangup(CUST, CUST_UID, cause, "ccd-agent-join"), 9.0) == [CallEnded(9.0, CUST_UID, text)]
    # Both Local halves hang up: the ;2 half is not a call, and a repeat is nothing.
    assert t.on_ami(hangup(CUST.replace(";1", ";2"), "1795422427.5", cause), 9.0) == []
    assert t.on_ami(hangup(CUST, CUST_UID, cause), 9.1) == []
    assert t.call_state(CUST_UID) is CallState.GONE


def test_abandon_while_waiting() -> None:
    t = tracker()
    arrived(t)
    assert t.on_ami(hangup(CUST, CUST_UID), 5.0) == [CallerAbandoned(5.0, CUST_UID)]
    assert t.hangup_action(CUST_UID) is None


def test_abandon_while_offered_with_duplicate_dial_end_cancel() -> None:
    t = tracker()
    arrived(t)
    t.actions_for(ConnectToAgent(CUST_UID, "1002", "sales"))
    assert t.on_ami(hangup(CUST, CUST_UID, 16, "ccd-ring"), 5.0) == [CallerAbandoned(5.0, CUST_UID)]
    # The real capture: two identical DialEnd CANCEL for the same destination.
    assert t.on_ami(dial_end("CANCEL"), 5.0) == []
    assert t.on_ami(dial_end("CANCEL"), 5.0) == []


def test_agent_leg_hangup_is_a_logout_and_frees_the_call() -> None:
    t = tracker()
    talking(t)
    assert t.on_ami(hangup(AGENT_CH, LEG, 16, "ccd-agent-session"), 8.0) == [AgentLoggedOut(8.0, "1001")]
    assert t.on_ami(hangup(AGENT_CH, LEG, 16, "ccd-agent-session"), 8.0) == []
    assert t.agent_channel("1001") is None
    assert t.logout_action("1001") is None
    assert t.call_state(CUST_UID) is CallState.WAITING
    assert t.hold_actions(CUST_UID) == [
        {"Action": "Setvar", "Channel": CUST, "Variable": "CCD_HOLD_START", "Value": ""},
        {"Action": "Redirect", "Channel": CUST, "Context": "ccd-hold", "Exten": "wait", "Priority": "1"},
    ]
    # The customer was cut off from the agent: no longer talking, so hanging up is an abandon.
    assert t.on_ami(hangup(CUST, CUST_UID), 9.0) == [CallerAbandoned(9.0, CUST_UID)]


def test_agent_leg_drop_while_offered_lets_the_router_cancel() -> None:
    t = tracker()
    logged_in(t)
    arrived(t)
    t.actions_for(ConnectToAgent(CUST_UID, "1001", "sales"))
    assert t.on_ami(hangup(AGENT_CH, LEG), 4.0) == [AgentLoggedOut(4.0, "1001")]
    # The router answers a logout with CancelOffer for a ringing call: it must still redirect.
    assert t.actions_for(CancelOffer(CUST_UID, "1001")) == [
        {"Action": "Redirect", "Channel": CUST, "Context": "ccd-hold", "Exten": "wait", "Priority": "1"}
    ]
    assert t.on_ami(conf_join(CUST, CUST_UID), 4.1) == []  # late join into the dying room: no answer


def test_late_originate_response_after_the_leg_died() -> None:
    t = tracker()
    t.login_action("1001", 1)
    assert t.on_ami(conf_join(AGENT_CH, LEG, "1001", "ccd-agent-session"), 1.0) == [
        AgentLoggedIn(1.0, "1001")
    ]
    assert t.on_ami(hangup(AGENT_CH, LEG), 2.0) == [AgentLoggedOut(2.0, "1001")]
    assert t.on_ami(originate_response("Success", LEG, AGENT_CH, "4"), 2.1) == []
    assert t.on_ami(conf_join(AGENT_CH, LEG, "1001", "ccd-agent-session"), 2.2) == []  # never revived
    assert not t.agent_logged_in("1001")


def test_failed_login() -> None:
    t = tracker()
    t.login_action("1001", 2)
    failure = originate_response("Failure", "ccd-agent-1001-2", "PJSIP/1001", "3")
    assert t.on_ami(failure, 16.0) == []
    assert t.logout_action("1001") is None
    # A hang-up of a leg that never joined logs nobody out.
    t.login_action("1001", 3)
    assert t.on_ami(hangup("PJSIP/1001-00000009", "ccd-agent-1001-3", 19), 17.0) == []


def test_pending_login_learns_its_channel_from_newchannel() -> None:
    t = tracker()
    t.login_action("1001", 4)
    t.on_ami({"Event": "Newchannel", **snapshot("PJSIP/1001-0000000a", "ccd-agent-1001-4", "default")}, 1.0)
    assert t.logout_action("1001") == {"Action": "Hangup", "Channel": "PJSIP/1001-0000000a", "Cause": "16"}


def test_second_leg_takes_over_silently() -> None:
    t = tracker()
    logged_in(t)
    assert (
        t.on_ami(conf_join("PJSIP/1001-00000011", "ccd-agent-1001-2", "1001", "ccd-agent-session"), 5) == []
    )
    assert t.on_ami(hangup(AGENT_CH, LEG), 6.0) == []  # the old leg: still logged in
    assert t.agent_logged_in("1001")
    assert t.on_ami(hangup("PJSIP/1001-00000011", "ccd-agent-1001-2"), 7.0) == [AgentLoggedOut(7.0, "1001")]


def test_rename_updates_the_channel_name() -> None:
    t = tracker()
    arrived(t)
    t.on_ami({"Event": "Rename", "Channel": CUST, "Newname": "PJSIP/trunk-0000004f", "Uniqueid": CUST_UID}, 3)
    assert t.hangup_action(CUST_UID, 21) == {
        "Action": "Hangup",
        "Channel": "PJSIP/trunk-0000004f",
        "Cause": "21",
    }


# --- commands ccd sends -----------------------------------------------------------------


def test_overflow_redirects_and_forgets() -> None:
    t = tracker()
    arrived(t)
    assert t.actions_for(Overflow(CUST_UID, "sales", OverflowAction.QUEUE, "full")) == []
    assert t.actions_for(Overflow(CUST_UID, "sales", OverflowAction.CALLBACK, "max_wait")) == [
        {
            "Action": "Redirect",
            "Channel": CUST,
            "Context": "ccd-overflow",
            "Exten": "callback",
            "Priority": "1",
        }
    ]
    assert t.on_ami(hangup(CUST, CUST_UID), 5.0) == []  # left the ACD: its hangup is not an abandon
    assert t.actions_for(Overflow(CUST_UID, "sales", OverflowAction.BUSY, "full")) == []


@pytest.mark.parametrize("action", [OverflowAction.VOICEMAIL, OverflowAction.CALLBACK, OverflowAction.BUSY])
def test_overflow_targets(action: OverflowAction) -> None:
    t = tracker()
    arrived(t)
    (redirect,) = t.actions_for(Overflow(CUST_UID, "sales", action, "full"))
    assert (redirect["Context"], redirect["Exten"]) == ("ccd-overflow", action.value)


def test_commands_for_unknown_calls_produce_nothing() -> None:
    t = tracker()
    assert t.actions_for(ConnectToAgent("nope", "1001", "sales")) == []
    assert t.actions_for(CancelOffer("nope", "1001")) == []
    assert t.actions_for(Announce(CUST_UID, 1, 30.0)) == []
    assert t.transfer_actions("nope", "sales") == []
    assert t.hold_actions("nope") == []
    assert t.fallback_actions("nope") == []
    assert t.hangup_action("nope") is None
    assert t.logout_action("nobody") is None


def test_hangup_heartbeat_and_fallback_actions() -> None:
    t = tracker()
    arrived(t)
    assert t.hangup_action(CUST_UID) == {"Action": "Hangup", "Channel": CUST, "Cause": "16"}
    assert t.heartbeat_action(1795422550.713367) == {
        "Action": "Setvar",
        "Variable": "CCD_HEARTBEAT",
        "Value": "1795422550",
    }
    assert t.fallback_actions(CUST_UID) == [
        {"Action": "Redirect", "Channel": CUST, "Context": "ccd-fallback", "Exten": "s", "Priority": "1"}
    ]
    assert t.on_ami(fallback(), 4.0) == []  # ccd handed it over itself: not an end the router must hear


def test_set_agent_validates() -> None:
    t = CallTracker()
    with pytest.raises(ValueError, match="agent id"):
        t.set_agent("a,b", device="PJSIP/1")
    with pytest.raises(ValueError, match="mode"):
        t.set_agent("a", mode="queue", device="PJSIP/1")
    with pytest.raises(ValueError, match="device"):
        t.set_agent("a", device="")
    t.set_agent("r", mode="ring", device="PJSIP/9")
    with pytest.raises(ValueError, match="ring-per-call"):
        t.login_action("r", 1)
    with pytest.raises(KeyError):
        t.login_action("unknown", 1)


# --- outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "cause", "status", "outcome"),
    [
        ("4", None, None, "human"),
        ("4", "16", None, "human"),  # answered then hung up normally
        ("0", None, "ANSWER", "human"),
        ("5", "17", "BUSY", "busy"),
        ("0", "17", "BUSY", "busy"),  # PJSIP 486: Reason 0 but the Hangup cause knows
        ("0", "0", "BUSY", "busy"),  # Local ;1 half: Cause 0 "Unknown", DialEnd says BUSY
        ("3", "19", None, "no_answer"),  # Originate timeout: no DialEnd at all
        ("1", None, None, "failed"),  # 1 is "hangup", not "no answer"
        ("8", "34", "CONGESTION", "congestion"),
        ("0", "20", "CHANUNAVAIL", "failed"),
        ("0", "1", None, "invalid"),
        ("0", None, None, "failed"),
        ("", "junk", None, "failed"),
        ("3", None, None, "no_answer"),
        ("8", None, None, "congestion"),
    ],
)
def test_originate_outcome(reason: str, cause: str | None, status: str | None, outcome: str) -> None:
    assert originate_outcome(reason, cause, status) == outcome


def test_cause_text() -> None:
    assert cause_text("16") == "normal_clearing"
    assert cause_text(17) == "user_busy"
    assert cause_text("21") == "call_rejected"
    assert cause_text("250") == "cause_250"
    assert cause_text("x") == "unknown"
    assert cause_text(None) == "unknown"


# --- malformed input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"Event": "Hangup", "Channel": CUST, "Cause": "16"},  # no Uniqueid
        {"Event": "UserEvent", "UserEvent": "CCDCallWaiting", "Queue": "sales"},
        {**waiting(), "Queue": ""},
        {**waiting(), "CCDPriority": "high"},
        {"Event": "ConfbridgeJoin", "Conference": "ccd-agent-1001"},
    ],
)
def test_malformed_frames_are_counted_not_raised(frame: Frame) -> None:
    t = tracker()
    assert t.on_ami(frame, 1.0) == []
    assert t.malformed == 1
    assert t.malformed_reason


def test_garbage_never_raises() -> None:
    t = tracker()
    assert t.on_ami(None, 1.0) == []  # type: ignore[arg-type]
    assert t.on_ami({"Event": ["Hangup", "Hangup"], "Uniqueid": []}, 1.0) == []
    assert t.on_ami({}, 1.0) == []
    assert t.on_ami({"Event": "SomethingElse", "Uniqueid": CUST_UID}, 1.0) == []
    assert t.malformed == 2


def test_repeated_headers_and_case() -> None:
    t = tracker()
    frame = {k.lower(): v for k, v in waiting().items()}
    frame["calleridnum"] = ["5551230101", "5551230101"]  # a UserEvent body repeating a snapshot header
    assert t.on_ami(frame, 1.0) == [CallArrived(1.0, CUST_UID, "sales", caller="5551230101")]


# --- resync -------------------------------------------------------------------------------


def core_show_channel(
    channel: str, uid: str, context: str, exten: str = "s", app: str = "", data: str = "", bridge: str = ""
) -> Frame:
    return {
        "Event": "CoreShowChannel",
        "ActionID": "ccd-1-9",
        **snapshot(channel, uid, context, exten),
        "Application": app,
        "ApplicationData": data,
        "Duration": "00:00:02",
        "BridgeId": bridge,
    }


def status_item(channel: str, uid: str, variables: list[str]) -> Frame:
    return {
        "Event": "Status",
        "Privilege": "Call",
        **snapshot(channel, uid, "ccd-hold"),
        "Type": "PJSIP",
        "BridgeID": "",
        "Application": "MusicOnHold",
        "Data": "default,300",
        "Seconds": "2",
        "Variable": variables,
        "ActionID": "ccd-1-10",
    }


def test_resync_reconciles_everything() -> None:
    t = tracker()
    logged_in(t)  # 1001: its leg will be gone
    t.set_agent("1003", device="PJSIP/1003")
    t.set_agent("1004", device="PJSIP/1004")
    logged_in(t, "1004", "ccd-agent-1004-1")
    arrived(t, "c-gone-waiting")
    arrived(t, "c-gone-talking")
    t.actions_for(ConnectToAgent("c-gone-talking", "1004", "sales"))
    t.on_ami(conf_join(CUST, "c-gone-talking", "1004"), 2.5)
    arrived(t, "c-answered")
    t.actions_for(ConnectToAgent("c-answered", "1004", "sales"))
    arrived(t, "c-rna")
    t.actions_for(ConnectToAgent("c-rna", "1002", "sales"))
    arrived(t, "c-still-waiting")
    channels = [
        core_show_channel(
            "PJSIP/1004-1", "ccd-agent-1004-1", "ccd-agent-session", app="ConfBridge", bridge="b4"
        ),
        core_show_channel(
            "PJSIP/t-3",
            "c-answered",
            "ccd-agent-join",
            app="ConfBridge",
            data="ccd-agent-1004,a,b",
            bridge="b4",
        ),
        core_show_channel("PJSIP/t-4", "c-rna", "ccd-hold", "wait", app="MusicOnHold"),
        core_show_channel("PJSIP/t-5", "c-still-waiting", "ccd-hold", app="MusicOnHold"),
        core_show_channel("PJSIP/t-6", "c-new", "ccd-hold", app="MusicOnHold"),
        core_show_channel("PJSIP/t-7", "c-new-no-status", "ccd-hold", app="MusicOnHold"),
        core_show_channel(
            "PJSIP/1003-1", "ccd-agent-1003-5", "ccd-agent-session", app="ConfBridge", bridge="b3"
        ),
        core_show_channel("PJSIP/1003-1;2", "ccd-agent-1003-5;2", "phones", app="AppDial"),
        core_show_channel("PJSIP/other", "1795.1", "from-internal", app="Dial"),
    ]
    assert t.needs_status(channels[4])
    assert t.needs_status(channels[5])
    assert not t.needs_status(channels[3])  # known
    assert not t.needs_status(channels[0])  # an agent leg
    assert not t.needs_status(channels[8])  # not ours
    status = [status_item("PJSIP/t-6", "c-new", ["CCD_QUEUE=billing", "CCD_PRIORITY=3", "CCD_AGENT=(null)"])]
    events = t.resync(channels, status, 50.0)
    assert events == [
        CallerAbandoned(50.0, "c-gone-waiting"),
        CallEnded(50.0, "c-gone-talking", "unknown"),
        AgentLoggedOut(50.0, "1001"),
        CallAnswered(50.0, "c-answered", "1004"),
        AgentRingNoAnswer(50.0, "1002", "c-rna"),
        CallArrived(50.0, "c-new", "billing", caller="5551230101", priority=3),
        AgentLoggedIn(50.0, "1003"),
    ]
    assert t.call_channel("c-still-waiting") == "PJSIP/t-5"
    # Everything is consistent now: a second resync with the same picture says nothing.
    assert t.resync(channels + status, 51.0) == []


def test_resync_finds_a_lost_redirect_as_a_failed_offer() -> None:
    t = tracker()
    logged_in(t, "1001", LEG)
    arrived(t, "c-session")
    t.actions_for(ConnectToAgent("c-session", "1001", "sales"))  # the Redirect never arrived
    arrived(t, "c-ring", at=3.0)
    t.actions_for(ConnectToAgent("c-ring", "1002", "sales"))  # nor this one: still at ccd-hold,s
    channels = [
        core_show_channel(AGENT_CH, LEG, "ccd-agent-session", app="ConfBridge", bridge="b1"),
        core_show_channel("PJSIP/t-1", "c-session", "ccd-hold", app="MusicOnHold"),
        core_show_channel("PJSIP/t-2", "c-ring", "ccd-hold", app="MusicOnHold"),
    ]
    assert t.resync(channels, [], 9.0) == [
        OfferFailed(9.0, "1001", "c-session"),
        OfferFailed(9.0, "1002", "c-ring"),
    ]
    assert t.call_state("c-session") is CallState.WAITING


def test_a_refused_connect_is_a_failed_offer_once() -> None:
    t = tracker()
    logged_in(t)
    arrived(t)
    t.actions_for(ConnectToAgent(CUST_UID, "1001", "sales"))
    assert t.offer_failed(CUST_UID, 4.0) == [OfferFailed(4.0, "1001", CUST_UID)]
    assert t.offer_failed(CUST_UID, 4.5) == []  # not offered any more
    assert t.offer_failed("nobody", 4.5) == []


def test_resync_keeps_a_pending_login() -> None:
    t = tracker()
    t.login_action("1001", 9)
    assert t.resync([], 1.0) == []
    assert t.on_ami(conf_join(AGENT_CH, "ccd-agent-1001-9", "1001", "ccd-agent-session"), 2.0) == [
        AgentLoggedIn(2.0, "1001")
    ]


def test_resync_tolerates_junk_items() -> None:
    t = tracker()
    assert t.resync([{"Event": "CoreShowChannel"}, None], [], 1.0) == []  # type: ignore[list-item]
    assert t.malformed == 1


# --- invariants under arbitrary event sequences -------------------------------------------

UIDS = ["c1", "c2", "ccd-agent-1001-1", "ccd-agent-1002-1", "c1;2"]
AGENTS = ["1001", "1002", "9"]


def _frames() -> st.SearchStrategy[Frame]:
    uid = st.sampled_from(UIDS)
    agent = st.sampled_from(AGENTS)
    return st.one_of(
        st.builds(lambda u, q: waiting(u, queue=q), uid, st.sampled_from(["sales", "billing", ""])),
        st.builds(lambda a, u: ring_failed(a, uid=u), agent, uid),
        st.builds(fallback, uid),
        st.builds(lambda u, a: conf_join(CUST, u, a), uid, agent),
        st.builds(lambda u, c: hangup(CUST, u, c), uid, st.sampled_from([0, 16, 17, 19])),
        st.builds(lambda u, s: dial_end(s, (CUST, u)), uid, st.sampled_from(["ANSWER", "CANCEL", "BUSY"])),
        st.builds(
            lambda u, r: originate_response(r, u, AGENT_CH, "4"), uid, st.sampled_from(["Success", "Failure"])
        ),
        st.dictionaries(
            st.sampled_from(["Event", "Uniqueid", "UserEvent", "Conference", "Queue"]), st.text()
        ),
    )


def _commands() -> st.SearchStrategy[Any]:
    uid = st.sampled_from(UIDS)
    agent = st.sampled_from(AGENTS)
    return st.one_of(
        st.builds(lambda u, a: ("cmd", ConnectToAgent(u, a, "sales")), uid, agent),
        st.builds(lambda u, a: ("cmd", CancelOffer(u, a)), uid, agent),
        st.builds(lambda u: ("cmd", Overflow(u, "sales", OverflowAction.VOICEMAIL, "full")), uid),
        st.builds(lambda a, n: ("login", a, n), agent, st.integers(1, 2)),
        st.builds(lambda u: ("hold", u), uid),
        st.builds(lambda u: ("transfer", u), uid),
        st.builds(lambda: ("resync",)),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_frames(), _commands()), max_size=40))
def test_no_answer_without_offer_and_one_end_per_call(steps: list[Any]) -> None:
    t = CallTracker()
    t.set_agent("1001", device="PJSIP/1001")
    t.set_agent("1002", mode="ring", device="PJSIP/1002")
    offered: dict[str, str] = {}  # call -> agent it was last offered to
    ended: set[str] = set()
    arrived_calls: set[str] = set()
    logged: set[str] = set()
    for i, step in enumerate(steps):
        if isinstance(step, tuple):
            if step[0] == "cmd":
                cmd = step[1]
                before = t.call_state(cmd.call_id)
                acts = t.actions_for(cmd)
                if isinstance(cmd, ConnectToAgent) and acts:
                    assert before in (CallState.WAITING, CallState.OFFERED)
                    offered[cmd.call_id] = cmd.agent_id
                for a in acts:
                    assert "ActionID" not in a
                continue
            if step[0] == "login":
                if step[1] in ("1001",):
                    t.login_action(step[1], step[2])
                continue
            if step[0] == "hold":
                t.hold_actions(step[1])
                continue
            if step[0] == "transfer":
                t.transfer_actions(step[1], "billing")
                continue
            events = t.resync([core_show_channel(CUST, u, "ccd-hold") for u in UIDS[:2]], float(i))
        else:
            events = t.on_ami(step, float(i))
        for e in events:
            if isinstance(e, CallArrived):
                assert e.call_id not in arrived_calls
                arrived_calls.add(e.call_id)
            elif isinstance(e, CallAnswered):
                assert offered.get(e.call_id) == e.agent_id, "answer for a call never offered to that agent"
                assert e.call_id not in ended
            elif isinstance(e, (CallEnded, CallerAbandoned)):
                assert e.call_id in arrived_calls and e.call_id not in ended, "two ends for one call"
                ended.add(e.call_id)
            elif isinstance(e, AgentRingNoAnswer):
                assert offered.get(e.call_id) == e.agent_id
            elif isinstance(e, CallTransferred):
                assert e.call_id in arrived_calls and e.call_id not in ended
            elif isinstance(e, AgentLoggedIn):
                assert e.agent_id not in logged
                logged.add(e.agent_id)
            elif isinstance(e, AgentLoggedOut):
                assert e.agent_id in logged
                logged.discard(e.agent_id)


def test_replay_of_a_whole_session_with_noise() -> None:
    """Scenario 1 of the Asterisk 22 capture, in the contract's names, every frame in order."""
    t = tracker()
    t.login_action("1001", 1)
    a1, c1, c2 = AGENT_CH, CUST, CUST.replace(";1", ";2")
    noise = {"Privilege": "call,all"}

    def ev(name: str, channel: str, uid: str, context: str, **extra: str) -> Frame:
        return {"Event": name, **noise, **snapshot(channel, uid, context), **extra}

    frames: list[Frame] = [
        {"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"},
        ev("Newchannel", a1, LEG, "default"),
        {"Event": "DialBegin", **noise, "DestChannel": a1, "DestUniqueid": LEG, "DialString": "1001"},
        originate_response("Success", LEG, a1, "4"),
        ev("Newstate", a1, LEG, "default"),
        {"Event": "DialEnd", **noise, "DestChannel": a1, "DestUniqueid": LEG, "DialStatus": "ANSWER"},
        {"Event": "BridgeCreate", **noise, **bridge_block("ccd-agent-1001", 0)},
        {
            "Event": "ConfbridgeStart",
            **noise,
            "Conference": "ccd-agent-1001",
            **bridge_block("ccd-agent-1001", 1),
        },
        ev("BridgeEnter", a1, LEG, "ccd-agent-session", **bridge_block("ccd-agent-1001", 2)),
        conf_join(a1, LEG, "1001", "ccd-agent-session", 2),
        ev(
            "VarSet",
            a1,
            LEG,
            "ccd-agent-session",
            Variable="BRIDGEPEER",
            Value="CBAnn/ccd-agent-1001-00000001;2",
        ),
        ev("Newchannel", c1, CUST_UID, "ccd-inbound"),
        ev("Newchannel", c2, "1795422427.5", "carrier"),
        waiting(),
        ev("MusicOnHoldStart", c1, CUST_UID, "ccd-hold", Class="default"),
    ]
    out = [e for f in frames for e in t.on_ami(f, 1.0)]
    assert out == [AgentLoggedIn(1.0, "1001"), CallArrived(1.0, CUST_UID, "sales", caller="5551230101")]
    t.actions_for(ConnectToAgent(CUST_UID, "1001", "sales"))
    frames = [
        {"Response": "Success", "ActionID": "ccd-x-7", "Message": "Redirect successful"},
        ev("MusicOnHoldStop", c1, CUST_UID, "ccd-hold"),
        ev("BridgeEnter", c1, CUST_UID, "ccd-agent-join", **bridge_block("ccd-agent-1001", 3)),
        conf_join(c1, CUST_UID),
        ev("SoftHangupRequest", c2, "1795422427.5", "carrier", Cause="16"),
        ev("ConfbridgeLeave", c1, CUST_UID, "ccd-agent-join", Conference="ccd-agent-1001"),
        ev("HangupRequest", c1, CUST_UID, "ccd-agent-join", Cause="16"),
        hangup(c2, "1795422427.5", 16, "carrier"),
        ev("BridgeLeave", c1, CUST_UID, "ccd-agent-join", **bridge_block("ccd-agent-1001", 2)),
        ev("VarSet", c1, CUST_UID, "ccd-agent-join", Variable="CONFBRIDGE_RESULT", Value="HANGUP"),
        hangup(c1, CUST_UID, 16, "ccd-agent-join"),
        ev("BridgeLeave", a1, LEG, "ccd-agent-session", **bridge_block("ccd-agent-1001", 1)),
        ev("ConfbridgeLeave", a1, LEG, "ccd-agent-session", Conference="ccd-agent-1001"),
        {"Event": "ConfbridgeEnd", **noise, "Conference": "ccd-agent-1001"},
        hangup(a1, LEG, 16, "ccd-agent-session"),
        hangup(a1.replace("PJSIP/1001", "PJSIP/1001;2"), f"{LEG};2", 16, "default"),
        {"Event": "BridgeDestroy", **noise, **bridge_block("ccd-agent-1001", 0)},
    ]
    out = [e for f in frames for e in t.on_ami(f, 2.0)]
    assert out == [
        CallAnswered(2.0, CUST_UID, "1001"),
        CallEnded(2.0, CUST_UID, "normal_clearing"),
        AgentLoggedOut(2.0, "1001"),
    ]
    assert t.malformed == 0
