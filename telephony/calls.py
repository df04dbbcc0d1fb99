"""What ccd knows of the PBX's channels, and the translation AMI <-> domain vocabulary.

Theory of operation
-------------------
``CallTracker`` is a pure state machine (no asyncio, no panoramisk, no clock): one AMI
event goes in with the time it was received, domain events come out; one router command
goes in, AMI action headers come out. It follows the contract in ``docs/asterisk.md``
to the letter; the names live in the constants below so that a test can compare them
with the sample dialplan and the simulated Asterisk.

Keys. A customer call is keyed by the Uniqueid of the channel that runs our dialplan
(the call id); an agent session leg by the ``ChannelId`` ccd gave it at login
(``ccd-agent-<agent>-<n>``, which Asterisk uses as its Uniqueid). Never by Linkedid:
Asterisk 22 rewrites Linkedid when channels are bridged. Channel *names* are only
remembered to address actions and are refreshed from every event that carries one.

Robustness. AMI is a stream we do not control: events can be duplicated (two
identical ``DialEnd CANCEL``), late (an ``OriginateResponse`` after the leg is already
hanging up), or about channels we never knew (the other half of a Local channel,
another application's calls). Every domain event is therefore emitted from a
transition of our own per-call state, so a repeat finds the state already moved and
emits nothing; ended calls and dead agent legs are remembered (bounded) so nothing can
revive them. A frame that is unusable (no Uniqueid, a non-numeric Priority) is counted
in ``malformed`` with ``malformed_reason`` and otherwise ignored: bad input from the
PBX must never take the service down.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

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
    Command,
    ConnectToAgent,
    Event,
    OfferFailed,
    Overflow,
    OverflowAction,
)

Headers = dict[str, str | list[str]]
AmiMessage = Mapping[str, str | list[str]]

# --- the contract's names (docs/asterisk.md) ------------------------------------------

CTX_INBOUND = "ccd-inbound"
CTX_HOLD = "ccd-hold"
CTX_FALLBACK = "ccd-fallback"
CTX_OVERFLOW = "ccd-overflow"
CTX_AGENT_SESSION = "ccd-agent-session"
CTX_AGENT_JOIN = "ccd-agent-join"
CTX_RING = "ccd-ring"
CONTEXTS = (CTX_INBOUND, CTX_HOLD, CTX_FALLBACK, CTX_OVERFLOW, CTX_AGENT_SESSION, CTX_AGENT_JOIN, CTX_RING)

UE_CALL_WAITING = "CCDCallWaiting"
UE_RING_FAILED = "CCDRingFailed"
UE_FALLBACK = "CCDFallback"
USER_EVENTS = (UE_CALL_WAITING, UE_RING_FAILED, UE_FALLBACK)

VAR_HEARTBEAT = "CCD_HEARTBEAT"
VAR_QUEUE = "CCD_QUEUE"
VAR_PRIORITY = "CCD_PRIORITY"
VAR_MAX_HOLD = "CCD_MAX_HOLD"
VAR_HOLD_START = "CCD_HOLD_START"
VAR_AGENT = "CCD_AGENT"
VAR_AGENT_DEVICE = "CCD_AGENT_DEVICE"
VAR_RING_TIMEOUT = "CCD_RING_TIMEOUT"

AGENT_LEG_PREFIX = "ccd-agent-"  # ChannelId of a session leg; also the conference name prefix
AGENT_MODES = ("session", "ring")

_LEG_ID = re.compile(r"^ccd-agent-(.+)-(\d+)$")
_AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FORGET_AFTER = 50_000  # ended calls / dead legs remembered to drop late events

# --- causes ----------------------------------------------------------------------------

# Q.850 cause -> the short text ccd reports (CallEnded.cause, call records, metrics).
Q850_TEXT: dict[int, str] = {
    0: "unknown",
    1: "unallocated_number",
    3: "no_route",
    16: "normal_clearing",
    17: "user_busy",
    18: "no_user_response",
    19: "no_answer",
    20: "subscriber_absent",
    21: "call_rejected",
    22: "number_changed",
    26: "answered_elsewhere",
    27: "destination_out_of_order",
    28: "invalid_number_format",
    29: "facility_rejected",
    31: "normal_unspecified",
    34: "congestion",
    38: "network_out_of_order",
    41: "temporary_failure",
    42: "switching_equipment_congestion",
    44: "channel_unavailable",
    58: "bearer_unavailable",
    66: "channel_not_implemented",
    102: "recovery_on_timer_expiry",
    127: "interworking",
}


def cause_text(cause: str | int | None) -> str:
    """The Q.850 cause of a ``Hangup`` as text; junk becomes ``"unknown"`` rather than an error."""
    try:
        n = int(cause) if cause is not None else 0
    except (TypeError, ValueError):
        return "unknown"
    return Q850_TEXT.get(n, f"cause_{n}")


# Dial outcome from each source. Asterisk reports the same failure three ways and none
# is reliable alone (ami_capture2: a Local ;1 half hangs up with Cause 0 while DialEnd
# says BUSY; Originate's own timeout has no DialEnd; OriginateResponse may say Reason 0
# for a busy PJSIP peer), hence the precedence in ``originate_outcome``.
_CAUSE_OUTCOME: dict[int, str] = {
    1: "invalid",
    3: "invalid",
    22: "invalid",
    28: "invalid",
    17: "busy",
    18: "no_answer",
    19: "no_answer",
    21: "congestion",
    27: "congestion",
    34: "congestion",
    38: "congestion",
    41: "congestion",
    42: "congestion",
    20: "failed",
    44: "failed",
    58: "failed",
    66: "failed",
}
_DIAL_STATUS_OUTCOME: dict[str, str] = {
    "ANSWER": "human",
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "no_answer",
    "CONGESTION": "congestion",
    "CHANUNAVAIL": "failed",
}
# OriginateResponse Reason = the control-frame code of main/pbx.c pbx_dial_reason, not Q.850.
_REASON_OUTCOME: dict[str, str] = {
    "4": "human",
    "1": "failed",
    "3": "no_answer",
    "5": "busy",
    "8": "congestion",
}


def originate_outcome(reason: str | None, cause: str | None = None, dial_status: str | None = None) -> str:
    """One outcome for a dialled leg: human, no_answer, busy, congestion, invalid or failed.

    ``reason`` is the ``OriginateResponse`` Reason, ``cause`` the Q.850 ``Cause`` of the
    leg's ``Hangup`` and ``dial_status`` the ``DialEnd`` DialStatus (either may be None).
    An answer (Reason 4 or DialStatus ANSWER) wins: whatever the leg does afterwards is
    a conversation, and "human" only means "answered" until AMD says otherwise. Else an
    informative hangup cause is authoritative (the Originate Reason is coarse and often
    0), then the DialStatus, then the Reason; nothing usable is "failed".
    """
    reason_s = (reason or "").strip()
    status = (dial_status or "").strip().upper()
    if reason_s == "4" or status == "ANSWER":
        return "human"
    try:
        n = int(cause) if cause not in (None, "") else None
    except (TypeError, ValueError):
        n = None
    if n is not None and n in _CAUSE_OUTCOME:
        return _CAUSE_OUTCOME[n]
    if status in _DIAL_STATUS_OUTCOME:
        return _DIAL_STATUS_OUTCOME[status]
    return _REASON_OUTCOME.get(reason_s, "failed")


# --- state -----------------------------------------------------------------------------


class CallState(StrEnum):
    WAITING = "waiting"  # on hold in ccd-hold, the router owns it
    OFFERED = "offered"  # redirected to an agent (ringing, or joining their session)
    TALKING = "talking"
    GONE = "gone"


class LegState(StrEnum):
    PENDING = "pending"  # originated, not yet in the conference
    IN = "in"  # joined ccd-agent-<id>: logged in


@dataclass(slots=True)
class _Call:
    call_id: str
    channel: str
    queue: str
    state: CallState = CallState.WAITING
    agent: str | None = None
    mode: str = "session"  # how it was offered: decides which event means "answered"


@dataclass(slots=True)
class _Agent:
    agent_id: str
    mode: str
    device: str
    leg: str | None = None  # Uniqueid (= ChannelId) of the session leg
    leg_channel: str | None = None
    leg_state: LegState | None = None


class _MalformedError(Exception):
    """An AMI frame we cannot use (missing or unparsable field)."""


MalformedFrameError = _MalformedError
T = TypeVar("T")


def dispatch_frame(
    handlers: Mapping[str, Callable[[Any, float], list[T]]],
    msg: Mapping[str, Any],
    at: float,
    normalise: Callable[[Mapping[str, object]], Any],
    bad: Callable[[str], None],
) -> list[T]:
    """Hand one AMI frame to the handler of its event (case-insensitive), or to none.

    Shared by the trackers: most events are of no interest, which is found out before
    the frame is copied; a frame a handler cannot use is reported through ``bad``
    and never raises (bad input from the PBX must not take the service down)."""
    try:
        name = msg.get("Event")
        if name is None:
            name = next((v for k, v in msg.items() if str(k).lower() == "event"), "")
        handler = handlers.get(_first(name).lower())
        if handler is None:
            return []
        return handler(normalise(msg), at)
    except _MalformedError as exc:
        bad(str(exc))
    except Exception as exc:  # never let one frame take the service down
        bad(f"{type(exc).__name__}: {exc}")
    return []


def first_value(value: object) -> str:
    """A header value as one string: a repeated header (a list) yields its first value."""
    if value is None:
        return ""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


_first = first_value


def _lower_keys(msg: Mapping[str, object]) -> dict[str, str | list[str]]:
    """Header names are matched case-insensitively, like Asterisk and panoramisk do."""
    out: dict[str, str | list[str]] = {}
    for k, v in msg.items():
        key = str(k).lower()
        if key in out:
            continue
        if isinstance(v, list):
            out[key] = [str(x) for x in v]
        else:
            out[key] = "" if v is None else str(v)
    return out


def _variables(value: str | list[str] | None) -> dict[str, str]:
    """``Variable: NAME=value`` headers of a ``Status`` item; ``(null)`` means unset."""
    items = value if isinstance(value, list) else ([value] if value else [])
    out: dict[str, str] = {}
    for item in items:
        name, sep, val = str(item).partition("=")
        if sep and val != "(null)":
            out[name.strip()] = val
    return out


def _caller(m: Mapping[str, str | list[str]]) -> str:
    caller = _first(m.get("calleridnum")).strip()
    return "" if caller == "<unknown>" else caller


def _redirect(channel: str, context: str, exten: str = "s") -> Headers:
    return {"Action": "Redirect", "Channel": channel, "Context": context, "Exten": exten, "Priority": "1"}


def _setvar(channel: str, name: str, value: str) -> Headers:
    return {"Action": "Setvar", "Channel": channel, "Variable": name, "Value": value}


class CallTracker:
    """Customer calls and agent session legs as ccd knows them; see the module docstring."""

    def __init__(self, *, ring_timeout_s: float = 15.0, max_hold_s: float = 300.0) -> None:
        if not ring_timeout_s > 0 or not max_hold_s > 0:
            raise ValueError("ring_timeout_s and max_hold_s must be positive")
        self.ring_timeout_s = ring_timeout_s
        self.max_hold_s = max_hold_s
        self.malformed = 0
        self.malformed_reason = ""
        self._calls: dict[str, _Call] = {}
        self._agents: dict[str, _Agent] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()  # call ids and leg ids that are over
        self._handlers = {
            "userevent": self._on_user_event,
            "confbridgejoin": self._on_confbridge_join,
            "dialend": self._on_dial_end,
            "hangup": self._on_hangup,
            "newchannel": self._on_newchannel,
            "originateresponse": self._on_originate_response,
            "rename": self._on_rename,
        }

    # --- configuration ----------------------------------------------------------------

    def set_agent(self, agent_id: str, *, mode: str = "session", device: str) -> None:
        """Declare how an agent is reached; the leg state of a known agent is kept."""
        if not _AGENT_ID.match(agent_id):
            # The id ends up in a ChannelId, a conference name and a Variable header.
            raise ValueError(f"agent id {agent_id!r}: letters, digits, '_', '.', '-' only (max 64)")
        if mode not in AGENT_MODES:
            raise ValueError(f"agent {agent_id!r}: mode {mode!r} is not one of {AGENT_MODES}")
        if not device or any(c in device for c in "\r\n,"):
            raise ValueError(f"agent {agent_id!r}: device {device!r} is not a dial string")
        a = self._agents.get(agent_id)
        if a is None:
            self._agents[agent_id] = _Agent(agent_id, mode, device)
        else:
            a.mode, a.device = mode, device

    # --- queries ----------------------------------------------------------------------

    def call_channel(self, call_id: str) -> str | None:
        c = self._calls.get(call_id)
        return c.channel if c is not None else None

    def call_state(self, call_id: str) -> CallState | None:
        c = self._calls.get(call_id)
        if c is not None:
            return c.state
        return CallState.GONE if call_id in self._ended else None

    def agent_channel(self, agent_id: str) -> str | None:
        a = self._agents.get(agent_id)
        return a.leg_channel if a is not None else None

    def agent_logged_in(self, agent_id: str) -> bool:
        a = self._agents.get(agent_id)
        return a is not None and a.leg_state is LegState.IN

    @property
    def calls(self) -> list[str]:
        return list(self._calls)

    # --- AMI in -----------------------------------------------------------------------

    def on_ami(self, msg: Mapping[str, str | list[str]], at: float) -> list[Event]:
        """One AMI event in, the domain events it means out (usually none)."""
        return dispatch_frame(self._handlers, msg, at, _lower_keys, self._bad)

    def _bad(self, reason: str) -> None:
        self.malformed += 1
        self.malformed_reason = reason

    @staticmethod
    def _need(m: Mapping[str, str | list[str]], key: str) -> str:
        value = _first(m.get(key)).strip()
        if not value:
            raise _MalformedError(f"{_first(m.get('event')) or 'message'} without {key}")
        return value

    def _on_user_event(self, m: dict[str, str | list[str]], at: float) -> list[Event]:
        name = _first(m.get("userevent")).strip()
        if name not in USER_EVENTS:
            return []
        uid = self._need(m, "uniqueid")
        if uid in self._ended:
            return []
        if name == UE_CALL_WAITING:
            return self._call_waiting(m, uid, at)
        call = self._calls.get(uid)
        if call is None:
            return []
        self._refresh_channel(call, m)
        if name == UE_RING_FAILED:
            agent = _first(m.get("agent")).strip()
            if call.state is not CallState.OFFERED or (agent and agent != call.agent):
                return []
            assert call.agent is not None
            who = call.agent
            call.state, call.agent = CallState.WAITING, None
            return [AgentRingNoAnswer(at, who, uid)]
        # CCDFallback: the dialplan gave up on ccd (max hold, or heartbeat lost).
        self._end(call)
        return [CallEnded(at, uid, cause="fallback")]

    def _call_waiting(self, m: dict[str, str | list[str]], uid: str, at: float) -> list[Event]:
        queue = self._need(m, "queue")
        call = self._calls.get(uid)
        if call is None:
            priority = self._priority(_first(m.get("ccdpriority")))
            channel = self._need(m, "channel")
            self._calls[uid] = _Call(uid, channel, queue)
            return [CallArrived(at, uid, queue, caller=_caller(m), priority=priority)]
        self._refresh_channel(call, m)
        if call.state is CallState.TALKING:
            call.state, call.agent, call.queue = CallState.WAITING, None, queue
            return [CallTransferred(at, uid, queue)]
        return []  # a repeat, or back in ccd-hold while offered: nothing new for the router

    def _priority(self, text: str) -> int:
        text = text.strip()
        if not text:
            return 0
        try:
            return int(text)
        except ValueError:
            raise _MalformedError(f"Priority {text!r} is not an integer") from None

    def _on_confbridge_join(self, m: dict[str, str | list[str]], at: float) -> list[Event]:
        conference = _first(m.get("conference")).strip()
        uid = self._need(m, "uniqueid")
        if not conference.startswith(AGENT_LEG_PREFIX) or uid in self._ended:
            return []
        agent_id = conference[len(AGENT_LEG_PREFIX) :]
        leg = _LEG_ID.match(uid)
        if leg is not None:
            if leg.group(1) != agent_id:
                return []  # someone else's leg in this room: not a login
            return self._leg_joined(agent_id, uid, _first(m.get("channel")), at)
        call = self._calls.get(uid)
        if call is None:
            return []
        self._refresh_channel(call, m)
        if call.state is CallState.OFFERED and call.agent == agent_id:
            call.state = CallState.TALKING
            return [CallAnswered(at, uid, agent_id)]
        return []

    def _leg_joined(self, agent_id: str, uid: str, channel: str, at: float) -> list[Event]:
        a = self._agents.get(agent_id)
        if a is None:  # not configured: the router would not know them either
            return []
        if a.leg is not None and a.leg != uid and a.leg_state is LegState.IN:
            a.leg, a.leg_channel = uid, channel or a.leg_channel  # a second leg takes over silently
            return []
        was_in = a.leg == uid and a.leg_state is LegState.IN
        a.leg, a.leg_state = uid, LegState.IN
        if channel:
            a.leg_channel = channel
        return [] if was_in else [AgentLoggedIn(at, agent_id)]

    def _on_dial_end(self, m: dict[str, str | list[str]], at: float) -> list[Event]:
        # Originate's own dial has no caller block: no Uniqueid, nothing for us (not malformed).
        uid = _first(m.get("uniqueid")).strip()
        if not uid or _first(m.get("dialstatus")).strip().upper() != "ANSWER":
            return []
        call = self._calls.get(uid)
        if call is None or call.state is not CallState.OFFERED or call.mode != "ring":
            return []
        assert call.agent is not None
        call.state = CallState.TALKING
        return [CallAnswered(at, uid, call.agent)]

    def _on_hangup(self, m: dict[str, str | list[str]], at: float) -> list[Event]:
        uid = self._need(m, "uniqueid")
        call = self._calls.get(uid)
        if call is not None:
            talking = call.state is CallState.TALKING
            self._end(call)
            if talking:
                return [CallEnded(at, uid, cause=cause_text(_first(m.get("cause"))))]
            return [CallerAbandoned(at, uid)]
        leg = _LEG_ID.match(uid)
        if leg is None:
            return []
        return self._leg_gone(leg.group(1), uid, at)

    def _leg_gone(self, agent_id: str, uid: str, at: float) -> list[Event]:
        self._forget(uid)
        a = self._agents.get(agent_id)
        if a is None or a.leg != uid:
            return []  # an old leg, or a login that never joined: nobody logs out
        was_in = a.leg_state is LegState.IN
        a.leg = a.leg_channel = a.leg_state = None
        if not was_in:
            return []
        # The router requeues what this agent had; the service puts the caller back on hold.
        for call in self._calls.values():
            if call.agent == agent_id and call.state in (CallState.OFFERED, CallState.TALKING):
                call.state, call.agent = CallState.WAITING, None
        return [AgentLoggedOut(at, agent_id)]

    def _on_newchannel(self, m: dict[str, str | list[str]], at: float) -> list[Event]:
        # Learn a pending leg's channel name early, so that a login can be cancelled.
        uid = _first(m.get("uniqueid")).strip()
        leg = _LEG_ID.match(uid)
        if leg is not None:
            a = self._agents.get(leg.group(1))
            if a is not None and a.leg == uid and _first(m.get("channel")):
                a.leg_channel = _first(m.get("channel"))
        return []

    def _on_originate_response(self, m: dict[str, str | list[str]], at: float) -> list[Event]:
        """Only bookkeeping: login success is the ConfbridgeJoin, failure is reported by the service.

        It can arrive after the leg is already hanging up (ami_capture2 3d), so a
        ``Success`` never resurrects a leg; a ``Failure`` names the dial string, not a channel.
        """
        uid = _first(m.get("uniqueid")).strip()
        leg = _LEG_ID.match(uid)
        if leg is None:
            return []
        a = self._agents.get(leg.group(1))
        if a is None or a.leg != uid:
            return []
        if _first(m.get("response")).strip() == "Success":
            if _first(m.get("channel")):
                a.leg_channel = _first(m.get("channel"))
        elif a.leg_state is LegState.PENDING:
            self.login_failed(a.agent_id)
        return []

    def _on_rename(self, m: dict[str, str | list[str]], at: float) -> list[Event]:
        uid, new = _first(m.get("uniqueid")).strip(), _first(m.get("newname")).strip()
        if uid and new:
            if uid in self._calls:
                self._calls[uid].channel = new
            for a in self._agents.values():
                if a.leg == uid:
                    a.leg_channel = new
        return []

    def _refresh_channel(self, call: _Call, m: Mapping[str, str | list[str]]) -> None:
        channel = _first(m.get("channel")).strip()
        if channel:
            call.channel = channel

    def _end(self, call: _Call) -> None:
        call.state = CallState.GONE
        del self._calls[call.call_id]
        self._forget(call.call_id)

    def _forget(self, key: str) -> None:
        self._ended[key] = None
        self._ended.move_to_end(key)
        while len(self._ended) > _FORGET_AFTER:
            self._ended.popitem(last=False)

    # --- commands out -----------------------------------------------------------------

    def actions_for(self, cmd: Command) -> list[Headers]:
        """The AMI actions (without ActionID) that carry out one router command, in order."""
        if isinstance(cmd, ConnectToAgent):
            return self._connect(cmd)
        if isinstance(cmd, CancelOffer):
            call = self._calls.get(cmd.call_id)
            if call is None or call.state is CallState.TALKING:
                return []  # gone, or answered meanwhile: never yank a caller from a conversation
            call.state, call.agent = CallState.WAITING, None
            return [_redirect(call.channel, CTX_HOLD, "wait")]
        if isinstance(cmd, Overflow):
            if cmd.action is OverflowAction.QUEUE:
                return []  # moved between queues inside the ACD
            call = self._calls.get(cmd.call_id)
            if call is None:
                return []
            self._end(call)  # the call has left the ACD: its hangup is no longer ours
            return [_redirect(call.channel, CTX_OVERFLOW, cmd.action.value)]
        if isinstance(cmd, Announce):
            return []  # the contract has no announcement action (yet): MoH plays on
        return []

    def _connect(self, cmd: ConnectToAgent) -> list[Headers]:
        call = self._calls.get(cmd.call_id)
        if call is None or call.state is CallState.TALKING:
            return []
        a = self._agents.get(cmd.agent_id)
        mode = a.mode if a is not None else "session"
        call.state, call.agent, call.mode = CallState.OFFERED, cmd.agent_id, mode
        ch = call.channel
        if mode == "ring":
            assert a is not None
            return [
                _setvar(ch, VAR_AGENT, cmd.agent_id),
                _setvar(ch, VAR_AGENT_DEVICE, a.device),
                _setvar(ch, VAR_RING_TIMEOUT, str(max(1, round(self.ring_timeout_s)))),
                _redirect(ch, CTX_RING),
            ]
        return [_setvar(ch, VAR_AGENT, cmd.agent_id), _redirect(ch, CTX_AGENT_JOIN)]

    def login_action(self, agent_id: str, seq: int) -> Headers:
        """Call the agent's device into their personal conference; the leg is pending until it joins."""
        a = self._agents.get(agent_id)
        if a is None:
            raise KeyError(f"agent {agent_id!r} is not configured")
        if a.mode != "session":
            raise ValueError(f"agent {agent_id!r} is ring-per-call: there is no session to log into")
        uid = f"{AGENT_LEG_PREFIX}{agent_id}-{seq}"
        if a.leg_state is not LegState.IN:
            a.leg, a.leg_channel, a.leg_state = uid, None, LegState.PENDING
        return {
            "Action": "Originate",
            "Channel": a.device,
            "Context": CTX_AGENT_SESSION,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(max(1000, round(self.ring_timeout_s * 1000))),
            "CallerID": f'"ccd" <{agent_id}>',
            "Async": "true",
            "ChannelId": uid,
            "Variable": f"{VAR_AGENT}={agent_id}",
        }

    def login_failed(self, agent_id: str) -> None:
        """Forget a pending login (the service learnt from the OriginateResponse that it failed)."""
        a = self._agents.get(agent_id)
        if a is not None and a.leg_state is LegState.PENDING:
            if a.leg:
                self._forget(a.leg)
            a.leg = a.leg_channel = a.leg_state = None

    def logout_action(self, agent_id: str) -> Headers | None:
        """Hang up the session leg. Before its channel name is known, its Uniqueid addresses it
        (Asterisk 12+ looks channels up by name, then by Uniqueid)."""
        a = self._agents.get(agent_id)
        if a is None or a.leg is None:
            return None
        return {"Action": "Hangup", "Channel": a.leg_channel or a.leg, "Cause": "16"}

    def hangup_action(self, call_id: str, cause: int = 16) -> Headers | None:
        call = self._calls.get(call_id)
        if call is None:
            return None
        return {"Action": "Hangup", "Channel": call.channel, "Cause": str(int(cause))}

    def transfer_actions(self, call_id: str, queue: str) -> list[Headers]:
        """Back through ``ccd-hold,s``: its CCDCallWaiting, for a talking call, is the transfer."""
        call = self._calls.get(call_id)
        if call is None or not queue or any(c in queue for c in "\r\n"):
            return []
        return [
            _setvar(call.channel, VAR_QUEUE, queue),
            _setvar(call.channel, VAR_MAX_HOLD, str(max(1, round(self.max_hold_s)))),
            _redirect(call.channel, CTX_HOLD),
        ]

    def hold_actions(self, call_id: str) -> list[Headers]:
        """Put a call the router took back (its agent vanished) on hold again, without a new arrival."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        call.state, call.agent = CallState.WAITING, None
        # Empty: ccd-hold,wait starts the hold clock afresh (the talk was not hold time).
        return [_setvar(call.channel, VAR_HOLD_START, ""), _redirect(call.channel, CTX_HOLD, "wait")]

    def fallback_actions(self, call_id: str) -> list[Headers]:
        """Hand a call to the dialplan's fallback (ccd is stopping or refuses it); ccd forgets it."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        self._end(call)
        return [_redirect(call.channel, CTX_FALLBACK)]

    def heartbeat_action(self, epoch_s: float) -> Headers:
        """A global Setvar (no Channel); 0 withdraws ccd: the dialplan then sends callers to the fallback."""
        return {"Action": "Setvar", "Variable": VAR_HEARTBEAT, "Value": str(int(epoch_s))}

    # --- resync after a reconnect -----------------------------------------------------

    status_vars = f"{VAR_QUEUE},{VAR_PRIORITY},{VAR_AGENT}"

    def needs_status(self, channel: Mapping[str, str | list[str]]) -> bool:
        """A CoreShowChannel item for a customer on hold that ccd does not know: its
        queue and priority are channel variables, which only ``Status`` reports."""
        m = _lower_keys(channel)
        uid = _first(m.get("uniqueid")).strip()
        return (
            bool(uid)
            and _first(m.get("context")).strip() == CTX_HOLD
            and uid not in self._calls
            and uid not in self._ended
            and _LEG_ID.match(uid) is None
        )

    def resync(
        self,
        channels: Sequence[Mapping[str, str | list[str]]],
        status: Sequence[Mapping[str, str | list[str]]] | float,
        at: float | None = None,
    ) -> list[Event]:
        """Reconcile with the channels Asterisk really has after a reconnect.

        Call as ``resync(items, at)`` (CoreShowChannel and Status items mixed) or
        ``resync(core_show_channels, status_items, at)``. Events lost while
        disconnected are inferred: known calls that are gone ended (an abandon unless
        they were talking, cause "unknown"); agent legs that are gone logged out;
        offered customers now in their agent's conference (or bridged by ccd-ring)
        were answered, ring-per-call ones back on hold were not; unknown customers
        on hold in ccd-hold arrived (queue and priority from their Status variables);
        unknown session legs in a conference of a configured agent logged in.
        """
        if isinstance(status, (int, float)):
            items: Iterable[Mapping[str, str | list[str]]] = channels
            when = float(status)
        else:
            items = [*channels, *status]
            if at is None:
                raise TypeError("resync(channels, status, at): at is required")
            when = at
        present: dict[str, dict[str, str | list[str]]] = {}
        variables: dict[str, dict[str, str]] = {}
        for raw in items:
            try:
                m = _lower_keys(raw)
            except Exception as exc:
                self._bad(f"resync item: {type(exc).__name__}: {exc}")
                continue
            uid = _first(m.get("uniqueid")).strip()
            if not uid:
                continue
            if _first(m.get("event")).strip().lower() == "status":
                variables[uid] = _variables(m.get("variable"))
                present.setdefault(uid, m)
            else:
                present[uid] = m
        out: list[Event] = []
        for call in list(self._calls.values()):
            item = present.get(call.call_id)
            if item is None:
                talking = call.state is CallState.TALKING
                self._end(call)
                ended = CallEnded(when, call.call_id, "unknown") if talking else None
                out.append(ended or CallerAbandoned(when, call.call_id))
        for a in self._agents.values():
            # A pending leg may simply not exist yet (the Originate is still dialling).
            if a.leg is not None and a.leg_state is LegState.IN and a.leg not in present:
                out.extend(self._leg_gone(a.agent_id, a.leg, when))
        for call in list(self._calls.values()):
            item = present[call.call_id]
            self._refresh_channel(call, item)
            if call.state is CallState.OFFERED and call.agent is not None:
                out.extend(self._resync_offered(call, item, when))
        for uid, item in present.items():
            if uid in self._calls or uid in self._ended:
                continue
            leg = _LEG_ID.match(uid)
            if leg is not None:
                out.extend(self._resync_leg(leg.group(1), uid, item, when))
            elif _first(item.get("context")).strip() == CTX_HOLD:
                out.extend(self._resync_held(uid, item, variables.get(uid, {}), when))
        return out

    def _resync_offered(self, call: _Call, item: Mapping[str, str | list[str]], at: float) -> list[Event]:
        context = _first(item.get("context")).strip()
        app = _first(item.get("application")).strip().lower()
        data = _first(item.get("applicationdata")).strip()
        bridged = bool(_first(item.get("bridgeid")).strip())  # BridgeId (CoreShowChannel), BridgeID (Status)
        agent = call.agent
        assert agent is not None
        in_room = app == "confbridge" and data.split(",", 1)[0] == f"{AGENT_LEG_PREFIX}{agent}"
        if (call.mode == "session" and (in_room or (context == CTX_AGENT_JOIN and bridged))) or (
            call.mode == "ring" and context == CTX_RING and bridged
        ):
            call.state = CallState.TALKING
            return [CallAnswered(at, call.call_id, agent)]
        if context == CTX_HOLD:
            call.state, call.agent = CallState.WAITING, None
            exten = _first(item.get("exten")).strip()
            if call.mode == "ring" and exten == "wait":
                # ccd-ring sends a caller its agent did not answer to ccd-hold,wait: the
                # CCDRingFailed event was lost with the link, the ring-no-answer was not.
                return [AgentRingNoAnswer(at, agent, call.call_id)]
            # Still where it was before the offer: the connecting Redirect was lost.
            return [OfferFailed(at, agent, call.call_id)]
        return []

    def offer_failed(self, call_id: str, at: float) -> list[Event]:
        """The action connecting an offered call was refused or lost: the caller is still
        on hold where they were, and the agent did nothing wrong."""
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.OFFERED or call.agent is None:
            return []
        agent = call.agent
        call.state, call.agent = CallState.WAITING, None
        return [OfferFailed(at, agent, call_id)]

    def _resync_leg(
        self, agent_id: str, uid: str, item: Mapping[str, str | list[str]], at: float
    ) -> list[Event]:
        a = self._agents.get(agent_id)
        in_room = _first(item.get("application")).strip().lower() == "confbridge" or bool(
            _first(item.get("bridgeid")).strip()
        )
        if a is None or not in_room or _first(item.get("context")).strip() != CTX_AGENT_SESSION:
            return []
        if a.leg_state is LegState.IN:
            return []
        return self._leg_joined(agent_id, uid, _first(item.get("channel")), at)

    def _resync_held(
        self, uid: str, item: Mapping[str, str | list[str]], variables: Mapping[str, str], at: float
    ) -> list[Event]:
        queue = variables.get(VAR_QUEUE, "").strip()
        channel = _first(item.get("channel")).strip()
        if not queue or not channel:
            return []  # no Status for it: the dialplan's max hold will send it to the fallback
        try:
            priority = self._priority(variables.get(VAR_PRIORITY, ""))
        except _MalformedError as exc:
            self._bad(str(exc))
            priority = 0
        self._calls[uid] = _Call(uid, channel, queue)
        return [CallArrived(at, uid, queue, caller=_caller(item), priority=priority)]
