"""A simulated Asterisk 22 running the ccd dialplan: channels, bridges, conferences, AGI.

Theory of operation. This module is the telephony half of the simulated PBX and has no
sockets: AMI actions come in as :class:`ActionRequest` and leave as :class:`Reply`;
everything that happens is published as :class:`AmiEvent` to the listeners (the AMI
server fans them out to its sessions). What it models is what an ACD can observe of a
stock Asterisk running ``docs/asterisk.md``'s dialplan with PJSIP phones and trunks:

* Channels are named ``PJSIP/<endpoint>-<8 hex>`` from one counter shared by every
  channel (and by the hidden ConfBridge announcer, which also uses up two uniqueids:
  expect gaps, as on a real box). A Uniqueid is ``<PBX epoch seconds>.<n>``, or the
  Originate ``ChannelId``.
* The dialplan (``ccd-inbound``, ``ccd-hold``, ``ccd-fallback``, ``ccd-overflow``,
  ``ccd-agent-session``, ``ccd-agent-join``, ``ccd-ring``, ``ccd-outbound``) is Python: each
  (context, exten) is a method, and what a channel is doing right now (music on hold, a
  conference, a Dial, an AGI session, a timed app) is an :class:`_Activity` that knows
  which events to emit when the channel is pulled out of it by a Redirect, a Bridge or
  a hangup. Every move bumps the channel's generation so that timers scheduled for
  what it was doing before fall silent.
* Time is virtual: :class:`Clock` runs ``speed`` times faster than the wall clock and
  :class:`Scheduler` turns virtual delays into asyncio timers. Callbacks that raise are
  recorded in ``Pbx.errors`` (tests assert it stays empty) instead of vanishing into the
  loop's exception handler.
* People are not modelled here: whether and when an agent answers, how patient callers
  are and how long they talk come from an :class:`AgentModel` and the arguments of
  :meth:`Pbx.place_call` (sim.pbx_world builds both from a scenario). Who answers a
  number ccd dials through the trunk (``PJSIP/<number>@trunk``) comes from its
  :class:`NumberScript`, else from ``Pbx.outbound_customers`` (a :class:`CalleeModel`,
  e.g. sim.pbx_world.OutboundCustomers): a human, a machine, or a busy, unanswered,
  congested or unallocated number. ``ccd-outbound`` runs ``AMD()`` on the answerer and
  puts humans on hold like any caller (:meth:`Pbx._admit`); ``Pbx.outbound`` records
  what each dial really did (:class:`OutboundDial`).

Quirks of the real Asterisk kept on purpose (from captures of Asterisk 22.10): the
response to an action precedes the events it causes; ``OriginateResponse`` is an
ordinary ``call`` event (every session sees it) and on failure names the dial string
and ``Uniqueid: <unknown>``; an Originate that times out has no ``DialEnd``; an unallocated
number (a carrier's 404) hangs up with Cause 1 after ``DialEnd NOANSWER`` (app_dial's
word for a cause it has no status for) and a Failure with Reason 0; ``AMD()``'s verdict
shows only as VarSet (class dialplan) and the dialplan's UserEvent;
``BridgeNumChannels`` of a conference counts the hidden announcer; leaving a conference
by Redirect sets ``CONFBRIDGE_RESULT=HANGUP``; when a bridge made by ``Action: Bridge``
breaks, the other party is hung up; ``SoftHangupRequest`` after an AMI Hangup says
``Cause: 16`` whatever the cause asked for; Status items carry ``Privilege: Call`` and
their ActionID last. Orders that differ between runs of a real Asterisk differ here
too, drawn from a stream seeded by ``seed`` (deterministic for a seed): an answered
``OriginateResponse`` floats anywhere from before ``Newchannel`` (an immediate answer) to
after ``ConfbridgeJoin`` or just before the leg's ``Hangup``; ``ConfbridgeJoin`` vs
``BridgeEnter`` and ``ConfbridgeLeave`` vs ``BridgeLeave`` swap; of two channels hung up
together either ``Hangup`` may come first; a caller abandoning a ringing Dial gives two
identical ``DialEnd CANCEL``. When the agent's (marked) leg leaves a conference, the
customers (``end_marked``) are kicked with ``CONFBRIDGE_RESULT=ENDMARKED`` and go on in
``ccd-agent-join`` to ``ccd-hold,wait``. Callers hold in 10 s slices of music, re-checking
the heartbeat and the total hold after each. Noise an ACD does not need is not emitted (Newexten, most VarSet,
Cdr, DeviceStateChange, NewCallerid, security events).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import re
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

Headers = tuple[tuple[str, str], ...]

# Dialplan names (docs/asterisk.md is the contract).
CTX_INBOUND = "ccd-inbound"
CTX_HOLD = "ccd-hold"
CTX_FALLBACK = "ccd-fallback"
CTX_OVERFLOW = "ccd-overflow"
CTX_AGENT_SESSION = "ccd-agent-session"
CTX_AGENT_JOIN = "ccd-agent-join"
CTX_RING = "ccd-ring"
CTX_OUTBOUND = "ccd-outbound"
OVERFLOW_ACTIONS = ("voicemail", "callback", "busy", "safe_harbour")
HEARTBEAT_STALE_S = 30.0  # ccd-hold: callers go to the fallback when ccd was silent this long
DEFAULT_MAX_HOLD_S = 300
HOLD_SLICE_S = 10  # ccd-hold plays music in slices this long and re-checks the heartbeat between them
VOICEMAIL_S = 30.0  # how long a caller sent to voicemail talks to it before hanging up
CALLBACK_MESSAGE_S = 8.0  # the "we will call you back" announcement
BUSY_TONE_S = 5.0  # a caller listening to Busy() hangs up after this
SAFE_HARBOUR_S = 6.0  # the outbound safe-harbour message ("sorry we missed you, ...")
MACHINE_MESSAGE_S = 20.0  # the campaign's message left on an answering machine
AGI_POLL_S = 0.1  # res_agi polls its async command queue about every 100 ms
DEFAULT_ORIGINATE_TIMEOUT_MS = 30000
MAX_UNIQUEID = 149
AGENT_ENDPOINT_CONTEXT = "default"  # the context= of the PJSIP endpoints (outbound legs start there)
TRUNK_ENDPOINT = "trunk"

# ChannelState numbers and texts (ast_state2str).
DOWN, RING, RINGING, UP, BUSY = 0, 4, 5, 6, 7
STATE_DESC = {0: "Down", 1: "Rsrvd", 2: "OffHook", 3: "Dialing", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}

# Q.850 causes as main/channel.c prints them in Cause-txt.
CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    44: "Requested channel not available",
    58: "Bearer capability not available",
    66: "Channel not implemented",
    102: "Recover on timer expiry",
    127: "Interworking, unspecified",
}

# OriginateResponse Reason codes (main/pbx.c pbx_dial_reason): control frames, not causes.
REASON_FAILED, REASON_NO_ANSWER, REASON_ANSWERED, REASON_BUSY, REASON_CONGESTION = 0, 3, 4, 5, 8


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


def dial_status_for_cause(cause: int) -> str:
    """What app_dial reports when the dialled channel hangs up without answering."""
    if cause == 17:
        return "BUSY"
    if cause == 34:
        return "CONGESTION"
    if cause in (3, 20):
        return "CHANUNAVAIL"
    return "NOANSWER"


def agi_encode(text: str) -> str:
    """res_agi's ``ast_uri_encode`` as used for AsyncAGI ``Env`` and ``Result``."""
    return urllib.parse.quote(text, safe="-_.!~*'()")


# --- the wire-neutral vocabulary shared with the AMI server -------------------------------


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """An unsolicited event; ``category`` is its class (``call``, ``user``...) for masks."""

    name: str
    category: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class ListItem:
    """One event of an action's list: no Privilege; ActionID right after Event, except for
    ``Status`` items (``status_style``) which carry ``Privilege: Call`` and the ActionID last."""

    name: str
    headers: Headers
    status_style: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A response; with ``items`` not None it opens an event list (``EventList: start``)
    closed by ``complete`` (``<complete>: ... ListItems: n`` plus ``complete_extra``)."""

    response: str
    message: str | None = None
    headers: Headers = ()
    items: tuple[ListItem, ...] | None = None
    complete: str = ""
    complete_extra: Headers = ()

    @property
    def success(self) -> bool:
        return self.response == "Success"


def ok(message: str | None = None, *headers: tuple[str, str]) -> Reply:
    return Reply("Success", message, tuple(headers))


def error(message: str) -> Reply:
    return Reply("Error", message)


class ActionRequest:
    """An action's headers as sent: names case-insensitive, the first occurrence wins
    (manager.c's ``astman_get_header``), every ``Variable:`` kept."""

    __slots__ = ("headers",)

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self.headers: Headers = tuple(headers)

    def get(self, name: str, default: str = "") -> str:
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return default

    def get_nonempty(self, name: str) -> str:
        """First non-empty value (how ``Action:`` itself is read)."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low and value:
                return value
        return ""

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def has(self, name: str) -> bool:
        low = name.lower()
        return any(k.lower() == low for k, _ in self.headers)

    @property
    def action(self) -> str:
        return self.get_nonempty("Action")


# --- time ------------------------------------------------------------------------------------


class Clock:
    """The PBX's epoch clock: ``speed`` virtual seconds per wall second."""

    def __init__(self, speed: float = 1.0, epoch: float | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be above 0, not {speed}")
        self.speed = speed
        self._mono0 = time.monotonic()
        self._epoch0 = time.time() if epoch is None else epoch

    def now(self) -> float:
        return self._epoch0 + (time.monotonic() - self._mono0) * self.speed


class Timer:
    __slots__ = ("_handle", "_owner")

    def __init__(self, owner: Scheduler, handle: asyncio.TimerHandle) -> None:
        self._owner = owner
        self._handle = handle

    def cancel(self) -> None:
        self._handle.cancel()
        self._owner._handles.discard(self._handle)


class Scheduler:
    """asyncio timers in virtual seconds; all cancelled by ``close()``."""

    def __init__(self, clock: Clock, on_error: Callable[[BaseException], None]) -> None:
        self.clock = clock
        self._handles: set[asyncio.TimerHandle] = set()
        self._on_error = on_error
        self.closed = False

    def after(self, delay_s: float, fn: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def run() -> None:
            self._handles.discard(holder[0])
            if self.closed:
                return
            try:
                fn()
            except Exception as exc:
                log.exception("simulated PBX: a timer callback failed")
                self._on_error(exc)

        handle = loop.call_later(max(0.0, delay_s) / self.clock.speed, run)
        holder.append(handle)
        self._handles.add(handle)
        return Timer(self, handle)

    def close(self) -> None:
        self.closed = True
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()


# --- people ------------------------------------------------------------------------------------


class AgentModel(Protocol):
    """The agents' hands: who exists and when (or whether) their phone is answered."""

    def knows(self, agent_id: str) -> bool: ...

    def answer_delay_s(self, agent_id: str, *, ring_per_call: bool) -> float | None:
        """Seconds until the agent answers; None: never (only for ring-per-call offers)."""
        ...


class StaticAgents:
    """Agents added one by one (tests, or a PBX without a scenario)."""

    def __init__(self) -> None:
        self._agents: dict[str, tuple[float, bool]] = {}

    def add(self, agent_id: str, *, answer_delay_s: float = 0.0, never_answers: bool = False) -> None:
        self._agents[agent_id] = (answer_delay_s, never_answers)

    def knows(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def answer_delay_s(self, agent_id: str, *, ring_per_call: bool) -> float | None:
        delay, never = self._agents.get(agent_id, (0.0, False))
        return None if never and ring_per_call else delay


@dataclass(frozen=True, slots=True)
class QueueDefaults:
    """What ``ccd-inbound`` sets for a queue's callers, and how they behave by default."""

    priority: int = 0
    max_hold_s: int = DEFAULT_MAX_HOLD_S
    handle_s: Callable[[], float] = lambda: 60.0
    patience_s: Callable[[], float] = lambda: math.inf


@dataclass(frozen=True, slots=True)
class NumberScript:
    """How a number dialled out through the trunk behaves (for Originate to ``PJSIP/n@trunk``)."""

    outcome: str = "answer"  # answer | busy | noanswer | congestion | invalid | unavailable
    after_s: float = 2.0
    talk_s: float = math.inf  # after answering, the far end hangs up after this


NUMBER_OUTCOMES = ("answer", "busy", "noanswer", "congestion", "invalid", "unavailable")
CALLEE_KINDS = ("human", "machine", "busy", "no_answer", "congestion", "invalid")
AMD_STATUSES = ("HUMAN", "MACHINE", "NOTSURE")


@dataclass(frozen=True, slots=True)
class Callee:
    """Who a number dialled out through the trunk reaches, drawn by a :class:`CalleeModel`.

    ``after_s``: ringing before a human or machine answers, or before the network reports
    busy, congestion or an unallocated number (a ``no_answer`` callee rings until the
    Originate's timeout, as does anyone whose ``after_s`` reaches it). ``amd_status``/
    ``amd_cause``/``amd_s``: what ``AMD()`` concludes on this callee and how long it
    listens first. Once put on hold a human (or a machine AMD let through) hangs up after
    ``patience_s`` unless an agent takes them; with an agent they talk ``talk_s``.
    """

    kind: str
    after_s: float = 2.0
    amd_status: str = "HUMAN"
    amd_cause: str = "HUMAN-800-800"
    amd_s: float = 1.5
    talk_s: float = 60.0
    patience_s: float = math.inf

    def __post_init__(self) -> None:
        if self.kind not in CALLEE_KINDS:
            raise ValueError(f"callee kind {self.kind!r} is not one of {CALLEE_KINDS}")
        if self.amd_status not in AMD_STATUSES:
            raise ValueError(f"AMD status {self.amd_status!r} is not one of {AMD_STATUSES}")
        for name in ("after_s", "amd_s", "talk_s", "patience_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"callee {name} must be >= 0, not {value!r}")


_CALLEE_SCRIPT = {
    "human": "answer",
    "machine": "answer",
    "busy": "busy",
    "no_answer": "noanswer",
    "congestion": "congestion",
    "invalid": "invalid",
}


class CalleeModel(Protocol):
    """The people (and machines) behind the numbers ccd dials (sim.pbx_world.OutboundCustomers)."""

    def callee(self, number: str, campaign: str) -> Callee | None:
        """Who answers ``number`` (dialled for ``campaign``); None: the default script."""
        ...


@dataclass(eq=False, slots=True)
class OutboundDial:
    """What became of one Originate through the trunk (tests compare ccd's view with it).

    ``kind``: who was called (a :class:`Callee` kind, or ``script:<outcome>`` for a
    scripted number); ``result``: what the network signalled (``answered``, ``busy``,
    ``no_answer``, ``congestion``, ``invalid``, ``unavailable``); ``amd_status``: the
    verdict ``ccd-outbound`` announced (None if it never got that far); ``fate``: how an
    answered call ended (``machine_hangup``, ``machine_message``, ``abandoned`` on hold,
    ``completed`` with an agent, ``overflow:<action>``, ``fallback``, ``hungup``)."""

    call_id: str
    number: str
    campaign: str
    lead: str
    kind: str
    dialled_at: float
    result: str | None = None
    answered_at: float | None = None
    amd_status: str | None = None
    fate: str | None = None
    ended_at: float | None = None


# --- state -------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Caller:
    """A simulated customer on an inbound channel, and what became of them."""

    uniqueid: str
    queue: str
    caller: str
    arrived: float
    patience_s: float
    handle_s: float
    remaining_s: float = 0.0
    connected_at: float | None = None
    talking_since: float | None = None
    agent_id: str | None = None
    agents: list[str] = field(default_factory=list)
    ended_at: float | None = None
    outcome: str | None = None  # abandoned | completed | fallback | overflow:<x> | hungup
    patience_timer: Timer | None = None
    handle_timer: Timer | None = None


@dataclass(eq=False, slots=True)
class Bridge:
    uniqueid: str
    type: str
    technology: str
    creator: str
    name: str
    hidden: int = 0  # ConfBridge's announcer channel: counted, never shown
    channels: list[Channel] = field(default_factory=list)
    conference: str | None = None
    marked: set[str] = field(default_factory=set)  # uniqueids of marked conference users
    end_marked: set[str] = field(default_factory=set)  # users kicked when the last marked one leaves
    joined_at: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.channels) + self.hidden

    def block(self, count: int | None = None) -> list[tuple[str, str]]:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", self.type),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", self.creator),
            ("BridgeName", self.name),
            ("BridgeNumChannels", str(self.count if count is None else count)),
            ("BridgeVideoSourceMode", "none"),
        ]


@dataclass(eq=False, slots=True)
class AgiCommand:
    command: str
    command_id: str


@dataclass(eq=False, slots=True)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    link_seq: int  # creation order of the linkedid's channel: the older wins in a bridge
    state: int
    context: str
    exten: str
    priority: int
    created: float
    cid_num: str = ""
    cid_name: str = ""
    conn_num: str = ""
    conn_name: str = ""
    accountcode: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    app: str = ""
    app_data: str = ""
    agent_id: str | None = None  # the endpoint is an agent's phone
    caller: Caller | None = None  # a simulated customer
    callee: Callee | None = None  # who answered an outbound call (ccd-outbound's AMD hears them)
    bridge: Bridge | None = None
    activity: _Activity | None = None
    gen: int = 0
    agi_queue: deque[AgiCommand] = field(default_factory=deque)
    alive: bool = True
    hangup_cause: int = 16

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", self.cid_num or "<unknown>"),
            (f"{prefix}CallerIDName", self.cid_name or "<unknown>"),
            (f"{prefix}ConnectedLineNum", self.conn_num or "<unknown>"),
            (f"{prefix}ConnectedLineName", self.conn_name or "<unknown>"),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", self.accountcode),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]


class _Activity:
    """What a channel is doing; ``leave`` emits what Asterisk emits when it is pulled out."""

    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:  # why: redirect | hangup | kick | bridge
        pass


class _Moh(_Activity):
    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:
        pbx._emit("MusicOnHoldStop", "call", ch.snapshot())


class _Conference(_Activity):
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:
        result = "KICKED" if why == "kick" else "HANGUP"
        pbx._conference_leave(self.bridge, ch, result)


class _InBasicBridge(_Activity):
    def __init__(self, bridge: Bridge, after: Callable[[Channel], None] | None) -> None:
        self.bridge = bridge
        self.after = after  # the dialplan continues here when the peer leaves (a Dial caller)

    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:
        pbx._basic_bridge_leave(self.bridge, ch)


class _Dialling(_Activity):
    """The caller side of ``Dial()``; ``dest`` is the ringing agent leg."""

    def __init__(self, dest: Channel, timer: Timer | None) -> None:
        self.dest = dest
        self.timer = timer
        self.answer_timer: Timer | None = None

    def stop_timers(self) -> None:
        for t in (self.timer, self.answer_timer):
            if t is not None:
                t.cancel()

    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:
        self.stop_timers()
        pbx._dial_end(ch, self.dest, "CANCEL")
        if why == "hangup":
            # As captured when a caller abandons while a phone rings: the same DialEnd twice.
            pbx._dial_end(ch, self.dest, "CANCEL")
        ch.variables["DIALSTATUS"] = "CANCEL"
        pbx._destroy(self.dest, 0, how="internal")


class _Rung(_Activity):
    """The dialled side of a ``Dial()`` before answer: hanging it up ends the caller's Dial."""

    def __init__(self, caller: Channel) -> None:
        self.caller = caller

    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:
        dialling = self.caller.activity
        if isinstance(dialling, _Dialling) and dialling.dest is ch:
            pbx._dial_failed(self.caller, dialling, dial_status_for_cause(ch.hangup_cause), hang_dest=False)


class _Originating(_Activity):
    """An Originate leg ringing (no caller channel)."""

    def __init__(self, on_leave: Callable[[], None]) -> None:
        self.on_leave = on_leave

    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:
        self.on_leave()


class _Agi(_Activity):
    def __init__(self) -> None:
        self.running: AgiCommand | None = None
        self.exec_id = ""
        self.moh = False

    def leave(self, pbx: Pbx, ch: Channel, why: str) -> None:
        if self.moh:
            pbx._emit("MusicOnHoldStop", "call", ch.snapshot())
        if self.running is not None:
            cmd = self.running
            pbx._emit(
                "AGIExecEnd",
                "agi",
                (
                    *ch.snapshot(),
                    ("CommandId", self.exec_id),
                    ("Command", cmd.command),
                    ("ResultCode", "200"),
                    ("Result", "Unknown Result"),
                ),
            )
            pbx._agi_exec_event(ch, cmd, "200 result=-1\n")
        pbx._emit("AsyncAGIEnd", "agi", ch.snapshot())
        pbx._varset(ch, "AGISTATUS", "HANGUP")


class _Timed(_Activity):
    """VoiceMail, Playback, Busy, Wait...: nothing to say when interrupted."""


class _EventWindow:
    """The events of one synchronous step, held back until the step is over so that a few
    (``floating``) can be put where Asterisk's many threads would have put them."""

    __slots__ = ("events", "floating")

    def __init__(self) -> None:
        self.events: list[AmiEvent] = []
        # (event, uniqueid): the event lands anywhere before that channel's Hangup.
        self.floating: list[tuple[AmiEvent, str]] = []


# --- the PBX -------------------------------------------------------------------------------


@dataclass(slots=True)
class Counters:
    """What happened to the simulated callers and agents (tests and reports read these)."""

    arrived: int = 0
    abandoned: int = 0  # hung up before ever reaching an agent
    connected: int = 0  # reached an agent (counted once per call)
    ended: int = 0  # left after talking to an agent
    fallback: int = 0
    overflowed: int = 0
    rung: int = 0  # ring-per-call offers
    ring_no_answer: int = 0
    agent_calls: dict[str, int] = field(default_factory=dict)
    agent_talk_s: dict[str, float] = field(default_factory=dict)
    agent_rung: dict[str, int] = field(default_factory=dict)
    dials: int = 0  # Originates through the trunk
    dial_results: dict[str, int] = field(default_factory=dict)  # by OutboundDial.result


class Pbx:
    """The simulated Asterisk's state and dialplan. See the module docstring."""

    def __init__(
        self,
        *,
        speed: float = 1.0,
        seed: int = 1,
        agents: AgentModel | None = None,
        queues: dict[str, QueueDefaults] | None = None,
        epoch: float | None = None,
    ) -> None:
        self.clock = Clock(speed, epoch)
        self.errors: list[BaseException] = []
        self.scheduler = Scheduler(self.clock, self.errors.append)
        self.static_agents = StaticAgents()
        self.agents: AgentModel = agents if agents is not None else self.static_agents
        self.queues: dict[str, QueueDefaults] = dict(queues or {})
        self._rng = random.Random(seed)
        # Event order variations (quirks 3 and 6) have their own stream, so that they do not
        # change the bridge ids and AGI ids a seed gave before they existed.
        self._order_rng = random.Random(f"{seed}:order")
        self._window: _EventWindow | None = None
        self._destroying = 0  # depth of nested _destroy calls (a hangup that causes another)
        self._deferred_hangups: list[AmiEvent] = []
        self.listeners: list[Callable[[AmiEvent], None]] = []
        self.channels: dict[str, Channel] = {}  # by name
        self._by_uid: dict[str, Channel] = {}
        self.globals: dict[str, str] = {}
        self.conferences: dict[str, Bridge] = {}
        self.bridges: dict[str, Bridge] = {}
        self.calls: dict[str, Caller] = {}
        self.counters = Counters()
        self.fallback_calls: list[str] = []
        self.overflow_calls: dict[str, list[str]] = {a: [] for a in OVERFLOW_ACTIONS}
        self.numbers: dict[str, NumberScript] = {}
        # Numbers without a script reach the callees of this model (None: everybody
        # answers after 2 s and stays on the line, as NumberScript() says).
        self.outbound_customers: CalleeModel | None = None
        self.outbound: dict[str, OutboundDial] = {}
        self._chan_seq = 0
        self._uid_seq = 0
        self._link_seq = 0
        self.booted_at = self.clock.now()

    # --- plumbing -----------------------------------------------------------------------

    def close(self) -> None:
        self.scheduler.close()

    def _emit(self, name: str, category: str, headers: Iterable[tuple[str, str]]) -> None:
        self._emit_event(AmiEvent(name, category, tuple(headers)))

    def _emit_event(self, event: AmiEvent) -> None:
        if self._window is not None:
            self._window.events.append(event)
            return
        for listener in list(self.listeners):
            listener(event)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[_EventWindow]:
        """Hold the events of a synchronous step back and publish them together at its end
        (nested batches join the outer one). Nothing is delayed in time: the point is to
        place floating events (``_float``) at a seeded random position among them."""
        if self._window is not None:
            yield self._window
            return
        window = self._window = _EventWindow()
        try:
            yield window
        finally:
            self._window = None
            events = window.events
            for event, uid in window.floating:
                bound = next(
                    (
                        i
                        for i, e in enumerate(events)
                        if e.name == "Hangup" and ("Uniqueid", uid) in e.headers
                    ),
                    len(events),
                )
                events.insert(self._order_rng.randint(0, bound), event)
            for event in events:
                self._emit_event(event)

    def _float(self, event: AmiEvent, uniqueid: str) -> None:
        """An event with no fixed position (quirk 3: OriginateResponse): anywhere in the current
        batch before the Hangup of channel ``uniqueid``."""
        if self._window is None:
            self._emit_event(event)
        else:
            self._window.floating.append((event, uniqueid))

    def _either(self, *steps: Callable[[], None]) -> None:
        """Run steps that Asterisk runs in different threads in a seeded random order (quirk 6:
        ConfbridgeJoin vs BridgeEnter, ConfbridgeLeave vs BridgeLeave differ between runs)."""
        order = list(steps)
        self._order_rng.shuffle(order)
        for step in order:
            step()

    def _varset(self, ch: Channel, name: str, value: str) -> None:
        """Set a channel variable the ACD may care about, with its (dialplan class) VarSet."""
        ch.variables[name] = value
        self._emit("VarSet", "dialplan", (*ch.snapshot(), ("Variable", name), ("Value", value)))

    def _after(self, ch: Channel, delay_s: float, fn: Callable[[], None]) -> Timer:
        """A timer that does nothing if the channel has moved on (hung up or redirected)."""
        gen = ch.gen

        def fire() -> None:
            if ch.alive and ch.gen == gen:
                fn()

        return self.scheduler.after(delay_s, fire)

    def now(self) -> float:
        return self.clock.now()

    def _knows(self, agent_id: str) -> bool:
        return self.static_agents.knows(agent_id) or self.agents.knows(agent_id)

    def _answer_delay(self, agent_id: str, *, ring_per_call: bool) -> float | None:
        model = self.static_agents if self.static_agents.knows(agent_id) else self.agents
        return model.answer_delay_s(agent_id, ring_per_call=ring_per_call)

    def _new_uniqueid(self) -> str:
        uid = f"{int(self.now())}.{self._uid_seq}"
        self._uid_seq += 1
        return uid

    def _new_channel(
        self,
        endpoint: str,
        *,
        state: int,
        context: str,
        exten: str,
        uniqueid: str | None = None,
        linked: Channel | None = None,
    ) -> Channel:
        name = f"PJSIP/{endpoint}-{self._chan_seq:08x}"
        self._chan_seq += 1
        uid = uniqueid or self._new_uniqueid()
        self._link_seq += 1
        ch = Channel(
            name=name,
            uniqueid=uid,
            linkedid=linked.linkedid if linked else uid,
            link_seq=linked.link_seq if linked else self._link_seq,
            state=state,
            context=context,
            exten=exten,
            priority=1,
            created=self.now(),
        )
        self.channels[name] = ch
        self._by_uid[uid] = ch
        return ch

    def find(self, name: str, *, prefix: bool = False) -> Channel | None:
        """By name or Uniqueid (``ast_channel_get_by_name``); ``prefix`` as the Bridge action does."""
        ch = self.channels.get(name) or self._by_uid.get(name)
        if ch is None and prefix and name:
            ch = next((c for n, c in self.channels.items() if n.startswith(name)), None)
        return ch

    def _set_state(self, ch: Channel, state: int) -> None:
        if ch.state != state:
            ch.state = state
            self._emit("Newstate", "call", ch.snapshot())

    def _at(self, ch: Channel, context: str, exten: str, priority: int, app: str, data: str = "") -> None:
        ch.context, ch.exten, ch.priority, ch.app, ch.app_data = context, exten, priority, app, data

    def _var(self, ch: Channel, name: str) -> str:
        return ch.variables.get(name, "")

    # --- the outside world: callers ---------------------------------------------------------

    def add_agent(self, agent_id: str, *, answer_delay_s: float = 0.0, never_answers: bool = False) -> None:
        """Make ``PJSIP/<agent_id>`` a phone that answers (only with the built-in agent model)."""
        self.static_agents.add(agent_id, answer_delay_s=answer_delay_s, never_answers=never_answers)

    def script_number(
        self, number: str, outcome: str = "answer", *, after_s: float = 2.0, talk_s: float = math.inf
    ) -> None:
        """How ``PJSIP/<number>@trunk`` behaves when originated (default: answers after 2 s)."""
        if outcome not in NUMBER_OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self.numbers[number] = NumberScript(outcome, after_s, talk_s)

    def place_call(
        self,
        queue: str,
        *,
        caller: str = "5550000000",
        patience_s: float | None = None,
        handle_s: float | None = None,
        caller_name: str = "",
    ) -> str:
        """A customer calls the DID of ``queue``; returns the call id (the channel's Uniqueid).

        ``patience_s``: the caller hangs up after this long unless put through to an agent
        (None: never; from the scenario's patience for the Poisson callers). ``handle_s``:
        the conversation's length once connected, after which the agent side ends it
        (None: the queue's sampler, else 60 s).
        """
        defaults = self.queues.get(queue, QueueDefaults())
        patience = math.inf if patience_s is None else patience_s
        handle = defaults.handle_s() if handle_s is None else handle_s
        ch = self._new_channel(TRUNK_ENDPOINT, state=RING, context=CTX_INBOUND, exten=queue)
        ch.cid_num, ch.cid_name = caller, caller_name
        self._emit("Newchannel", "call", ch.snapshot())
        self._admit(ch, queue, caller, patience_s=patience, handle_s=handle)
        self._run_inbound(ch, defaults)
        return ch.uniqueid

    def _admit(self, ch: Channel, queue: str, caller: str, *, patience_s: float, handle_s: float) -> Caller:
        """The person on ``ch`` becomes a simulated caller: they hang up after ``patience_s``
        unless put through to an agent, and then talk ``handle_s`` (inbound callers from
        the start, outbound callees once the dialplan puts them on hold)."""
        call = Caller(ch.uniqueid, queue, caller, self.now(), patience_s, handle_s, remaining_s=handle_s)
        ch.caller = call
        self.calls[ch.uniqueid] = call
        self.counters.arrived += 1
        if math.isfinite(patience_s):
            call.patience_timer = self.scheduler.after(patience_s, lambda: self._patience_over(ch))
        return call

    def _patience_over(self, ch: Channel) -> None:
        call = ch.caller
        if not ch.alive or call is None or call.connected_at is not None or call.outcome is not None:
            return
        self._destroy(ch, 16, how="remote")

    # --- dialplan ---------------------------------------------------------------------------

    def _goto(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        ch.gen += 1
        ch.activity = None
        if context == CTX_INBOUND:
            self._run_inbound(ch, self.queues.get(exten, QueueDefaults()))
        elif context == CTX_HOLD and exten == "s":
            self._run_hold(ch, announce=True)
        elif context == CTX_HOLD and exten == "wait":
            self._run_hold(ch, announce=False)
        elif context == CTX_FALLBACK and exten == "s":
            self._run_fallback(ch)
        elif context == CTX_OVERFLOW and exten in OVERFLOW_ACTIONS:
            self._run_overflow(ch, exten)
        elif context == CTX_AGENT_SESSION and exten == "s":
            self._at(ch, context, exten, 1, "Answer")
            self._set_state(ch, UP)
            self._confbridge(ch, context, exten, 2, "ccd_agent_user", marked=True)
        elif context == CTX_AGENT_JOIN and exten == "s":
            self._confbridge(ch, context, exten, 1, "ccd_customer_user", marked=False)
        elif context == CTX_RING and exten == "s":
            self._run_ring(ch)
        elif context == CTX_OUTBOUND and exten == "s":
            self._run_outbound(ch)
        else:
            # "sent to invalid extension but no invalid handler": the PBX hangs up.
            self._at(ch, context, exten, priority, "")
            self._destroy(ch, 16, how="internal")

    def extension_exists(self, context: str, exten: str) -> bool:
        if context == CTX_INBOUND:
            return bool(exten)
        if context == CTX_HOLD:
            return exten in ("s", "wait")
        if context == CTX_OVERFLOW:
            return exten in OVERFLOW_ACTIONS
        return (
            context in (CTX_FALLBACK, CTX_AGENT_SESSION, CTX_AGENT_JOIN, CTX_RING, CTX_OUTBOUND)
            and exten == "s"
        )

    def _run_inbound(self, ch: Channel, defaults: QueueDefaults) -> None:
        self._at(ch, CTX_INBOUND, ch.exten, 1, "Set", f"CCD_QUEUE={ch.exten}")
        ch.variables["CCD_QUEUE"] = ch.exten
        ch.variables["CCD_PRIORITY"] = str(defaults.priority)
        ch.variables["CCD_MAX_HOLD"] = str(defaults.max_hold_s)
        self._at(ch, CTX_INBOUND, ch.exten, 4, "Answer")
        self._set_state(ch, UP)
        self._goto(ch, CTX_HOLD, "s")

    def _heartbeat_stale(self) -> bool:
        try:
            beat = float(self.globals.get("CCD_HEARTBEAT", "") or "nan")
        except ValueError:
            return True
        return not (self.now() - beat <= HEARTBEAT_STALE_S)

    def _run_hold(self, ch: Channel, *, announce: bool) -> None:
        """``ccd-hold,s`` (``announce``: heartbeat check, CCDCallWaiting) or ``ccd-hold,wait``.

        Both then hold the caller in slices of music (extensions.conf, priority by priority):
        ``Set(CCD_MAX_HOLD)`` (300 if unset or bad), ``Set(CCD_HOLD_START)`` (``s``: now, a
        new wait; ``wait``: kept if set, so that a take-back does not restart the clock),
        then the loop of :meth:`_hold_slice`. Slicing is what lets a crashed ccd be noticed
        by callers already on hold: one long MusicOnHold would only end after CCD_MAX_HOLD.
        """
        exten = "s" if announce else "wait"
        if announce:
            self._at(ch, CTX_HOLD, exten, 1, "GotoIf")
            if self._heartbeat_stale():
                self._goto(ch, CTX_FALLBACK, "s")
                return
            self._at(ch, CTX_HOLD, exten, 2, "UserEvent")
            self._emit(
                "UserEvent",
                "user",
                (
                    *ch.snapshot(),
                    ("UserEvent", "CCDCallWaiting"),
                    ("Queue", self._var(ch, "CCD_QUEUE")),
                    ("CCDPriority", self._var(ch, "CCD_PRIORITY")),
                ),
            )
        first = 3 if announce else 1
        self._at(ch, CTX_HOLD, exten, first, "Set")
        ch.variables["CCD_MAX_HOLD"] = str(_positive_int(self._var(ch, "CCD_MAX_HOLD")) or DEFAULT_MAX_HOLD_S)
        self._at(ch, CTX_HOLD, exten, first + 1, "Set")
        kept = None if announce else _positive_int(self._var(ch, "CCD_HOLD_START"))
        ch.variables["CCD_HOLD_START"] = str(kept or int(self.now()))
        self._hold_slice(ch, exten, first + 2)

    def _hold_slice(self, ch: Channel, exten: str, loop: int) -> None:
        """One turn of the hold loop, from priority ``loop``: ``Set(CCD_HOLD_LEFT=max - (EPOCH -
        start))``, ``GotoIf(left <= 0 ? ccd-fallback)``, ``MusicOnHold(default,MIN(10,left))``,
        ``GotoIf(heartbeat stale ? ccd-fallback)``, ``Goto(loop)``. Each slice that runs out
        ends its music (MusicOnHoldStop) and the next starts it again (MusicOnHoldStart)."""
        self._at(ch, CTX_HOLD, exten, loop, "Set")
        max_hold = _positive_int(self._var(ch, "CCD_MAX_HOLD")) or DEFAULT_MAX_HOLD_S
        start = _int_or(self._var(ch, "CCD_HOLD_START"), int(self.now()))
        left = max_hold - (int(self.now()) - start)
        ch.variables["CCD_HOLD_LEFT"] = str(left)
        self._at(ch, CTX_HOLD, exten, loop + 1, "GotoIf")
        if left <= 0:
            self._goto(ch, CTX_FALLBACK, "s")
            return
        slice_s = min(HOLD_SLICE_S, left)
        self._at(ch, CTX_HOLD, exten, loop + 2, "MusicOnHold", f"default,{slice_s}")
        self._emit("MusicOnHoldStart", "call", (*ch.snapshot(), ("Class", "default")))
        ch.activity = _Moh()

        def slice_over() -> None:
            ch.activity = None
            self._emit("MusicOnHoldStop", "call", ch.snapshot())
            self._at(ch, CTX_HOLD, exten, loop + 3, "GotoIf")
            if self._heartbeat_stale():
                self._goto(ch, CTX_FALLBACK, "s")
                return
            self._at(ch, CTX_HOLD, exten, loop + 4, "Goto", f"{loop}")
            self._hold_slice(ch, exten, loop)

        self._after(ch, slice_s, slice_over)

    def _run_fallback(self, ch: Channel) -> None:
        self._at(ch, CTX_FALLBACK, "s", 1, "UserEvent")
        self._emit(
            "UserEvent",
            "user",
            (*ch.snapshot(), ("UserEvent", "CCDFallback"), ("Queue", self._var(ch, "CCD_QUEUE"))),
        )
        if ch.caller is not None and ch.caller.outcome is None:
            self._settle(ch.caller, "fallback")
            self.counters.fallback += 1
            self.fallback_calls.append(ch.uniqueid)
        self._at(ch, CTX_FALLBACK, "s", 2, "VoiceMail", "ccd@default")
        self._timed_then_hangup(ch, VOICEMAIL_S, 16)

    def _run_overflow(self, ch: Channel, action: str) -> None:
        if ch.caller is not None and ch.caller.outcome is None:
            self._settle(ch.caller, f"overflow:{action}")
            self.counters.overflowed += 1
        self.overflow_calls[action].append(ch.uniqueid)
        if action == "voicemail":
            self._at(ch, CTX_OVERFLOW, action, 1, "VoiceMail", "ccd@default")
            self._timed_then_hangup(ch, VOICEMAIL_S, 16)
        elif action == "callback":
            self._at(ch, CTX_OVERFLOW, action, 1, "Playback", "ccd-we-will-call-you-back")
            self._timed_then_hangup(ch, CALLBACK_MESSAGE_S, 16)
        elif action == "safe_harbour":
            # Outbound: the human no agent took in time hears the campaign's message.
            message = self._var(ch, "CCD_SAFE_HARBOUR") or "ccd/safe-harbour"
            self._at(ch, CTX_OVERFLOW, action, 1, "Playback", message)
            self._timed_then_hangup(ch, SAFE_HARBOUR_S, 16)
        else:
            self._at(ch, CTX_OVERFLOW, action, 1, "Busy", "")
            self._set_state(ch, BUSY)
            self._timed_then_hangup(ch, BUSY_TONE_S, 17)

    def _timed_then_hangup(self, ch: Channel, seconds: float, cause: int) -> None:
        ch.activity = _Timed()
        self._after(ch, seconds, lambda: self._destroy(ch, cause, how="remote"))

    def _settle(self, call: Caller, outcome: str) -> None:
        call.outcome = outcome
        if call.patience_timer is not None:
            call.patience_timer.cancel()
            call.patience_timer = None

    # --- ConfBridge ----------------------------------------------------------------------------

    def _confbridge(
        self, ch: Channel, context: str, exten: str, priority: int, profile: str, *, marked: bool
    ) -> None:
        """ConfBridge(ccd-agent-${CCD_AGENT},ccd_agent_bridge,<profile>). ``marked``: the agent's
        ``ccd_agent_user`` (marked=yes); else ``ccd_customer_user`` (wait_marked, end_marked)."""
        conf = f"ccd-agent-{self._var(ch, 'CCD_AGENT')}"
        self._at(ch, context, exten, priority, "ConfBridge", f"{conf},ccd_agent_bridge,{profile}")
        bridge = self.conferences.get(conf)
        if bridge is None:
            bridge = self._new_bridge("base", "softmix", "ConfBridge", conf)
            bridge.conference = conf
            bridge.hidden = 1
            # The announcer CBAnn/<conf>-%08x;1/;2 uses a channel number and two uniqueids.
            self._chan_seq += 1
            self._uid_seq += 2
            self.conferences[conf] = bridge
            self._emit("BridgeCreate", "call", bridge.block(0))
            self._emit("ConfbridgeStart", "call", (("Conference", conf), *bridge.block()))
        if marked:
            bridge.marked.add(ch.uniqueid)
        else:
            bridge.end_marked.add(ch.uniqueid)
        after = bridge.count + 1  # ConfbridgeJoin counts the newcomer whether or not BridgeEnter came first
        self._either(
            lambda: self._bridge_enter(bridge, ch),
            lambda: self._emit(
                "ConfbridgeJoin",
                "call",
                (
                    ("Conference", conf),
                    *bridge.block(after),
                    *ch.snapshot(),
                    ("Admin", "No"),
                    ("Muted", "No"),
                ),
            ),
        )
        ch.activity = _Conference(bridge)
        self._conversations(bridge)

    def _conference_leave(self, bridge: Bridge, ch: Channel, result: str) -> None:
        """``ch`` leaves the conference with CONFBRIDGE_RESULT ``result``. When the last marked
        user (the agent) goes, app_confbridge kicks every end_marked user (the customers):
        CONFBRIDGE_RESULT=ENDMARKED and their dialplan goes on after ConfBridge()."""
        was_marked = self._conference_part(bridge, ch, result)
        kicked: list[Channel] = []
        if was_marked and not bridge.marked:
            kicked = [c for c in bridge.channels if c.uniqueid in bridge.end_marked]
            for c in kicked:
                c.activity = None
                c.gen += 1
                self._conference_part(bridge, c, "ENDMARKED")
        if not bridge.channels:
            conf = bridge.conference or ""
            self._emit("ConfbridgeEnd", "call", (("Conference", conf), *bridge.block()))
            bridge.hidden = 0
            self.conferences.pop(conf, None)
            self._bridge_destroy(bridge)
        else:
            self._conversations(bridge)
        for c in kicked:
            if c.alive:
                self._after_conference(c)

    def _conference_part(self, bridge: Bridge, ch: Channel, result: str) -> bool:
        """The leave events of one user; returns whether they were marked. A kick sets the
        result before the user leaves (as captured for KICKED); a hangup or Redirect sets
        HANGUP after BridgeLeave. ConfbridgeLeave and BridgeLeave come in either order and
        ConfbridgeLeave always counts the leaver."""
        conf = bridge.conference or ""
        before = bridge.count
        if result != "HANGUP":
            self._varset(ch, "CONFBRIDGE_RESULT", result)

        def bridge_leave() -> None:
            self._bridge_leave(bridge, ch)
            if result == "HANGUP":
                self._varset(ch, "CONFBRIDGE_RESULT", result)

        self._either(
            lambda: self._emit(
                "ConfbridgeLeave",
                "call",
                (("Conference", conf), *bridge.block(before), *ch.snapshot(), ("Admin", "No")),
            ),
            bridge_leave,
        )
        was_marked = ch.uniqueid in bridge.marked
        bridge.marked.discard(ch.uniqueid)
        bridge.end_marked.discard(ch.uniqueid)
        return was_marked

    def _after_conference(self, ch: Channel) -> None:
        """The dialplan after ConfBridge() returned by itself (kicked, end_marked). In
        ``ccd-agent-join`` a customer is never hung up: ``GotoIf(HANGUP?done)``,
        ``Set(CCD_HOLD_START=${EPOCH})`` (the talk was not hold), ``Goto(ccd-hold,wait,1)``;
        ccd requeues the call. An agent's ``ccd-agent-session`` leg hangs up."""
        if ch.context == CTX_AGENT_JOIN:
            self._at(ch, CTX_AGENT_JOIN, "s", 2, "GotoIf")
            if self._var(ch, "CONFBRIDGE_RESULT") != "HANGUP":
                self._at(ch, CTX_AGENT_JOIN, "s", 3, "Set", "CCD_HOLD_START=${EPOCH}")
                ch.variables["CCD_HOLD_START"] = str(int(self.now()))
                self._at(ch, CTX_AGENT_JOIN, "s", 4, "Goto", "ccd-hold,wait,1")
                self._goto(ch, CTX_HOLD, "wait")
                return
            self._at(ch, CTX_AGENT_JOIN, "s", 5, "Hangup")
        elif ch.context == CTX_AGENT_SESSION:
            self._at(ch, CTX_AGENT_SESSION, "s", 3, "Hangup")
        self._destroy(ch, 16, how="internal")

    # --- bridges --------------------------------------------------------------------------------

    def _new_bridge(self, kind: str, tech: str, creator: str, name: str) -> Bridge:
        bridge = Bridge(str(uuid.UUID(int=self._rng.getrandbits(128), version=4)), kind, tech, creator, name)
        self.bridges[bridge.uniqueid] = bridge
        return bridge

    def _bridge_enter(self, bridge: Bridge, ch: Channel) -> None:
        bridge.channels.append(ch)
        bridge.joined_at[ch.uniqueid] = self.now()
        ch.bridge = bridge
        if bridge.type == "basic":
            # Linkedid propagation: the oldest linkedid in a basic bridge wins.
            oldest = min(bridge.channels, key=lambda c: c.link_seq)
            for c in bridge.channels:
                c.linkedid, c.link_seq = oldest.linkedid, oldest.link_seq
        self._emit("BridgeEnter", "call", (*bridge.block(), *ch.snapshot()))

    def _bridge_leave(self, bridge: Bridge, ch: Channel) -> None:
        if ch in bridge.channels:
            bridge.channels.remove(ch)
        bridge.joined_at.pop(ch.uniqueid, None)
        ch.bridge = None
        self._emit("BridgeLeave", "call", (*bridge.block(), *ch.snapshot()))
        # A customer leaving an agent, or the last agent leaving customers: talk time stops.
        if ch.caller is not None:
            self._pause_talk(ch.caller)
        if ch.agent_id is not None and not any(c.agent_id is not None for c in bridge.channels):
            for other in bridge.channels:
                if other.caller is not None:
                    self._pause_talk(other.caller)

    def _bridge_destroy(self, bridge: Bridge) -> None:
        self.bridges.pop(bridge.uniqueid, None)
        self._emit("BridgeDestroy", "call", bridge.block(0))

    def _basic_bridge(
        self, a: Channel, b: Channel, *, after_b: Callable[[Channel], None] | None = None
    ) -> Bridge:
        """``after_b``: where b's dialplan goes on when a leaves (a Dial caller); without it
        b is hung up (a yanked channel, a dialled leg)."""
        bridge = self._new_bridge("basic", "simple_bridge", "<unknown>", "<unknown>")
        self._emit("BridgeCreate", "call", bridge.block(0))
        for ch, after in ((a, None), (b, after_b)):
            self._bridge_enter(bridge, ch)
            ch.activity = _InBasicBridge(bridge, after)
        self._conversations(bridge)
        return bridge

    def _basic_bridge_leave(self, bridge: Bridge, ch: Channel) -> None:
        """One party leaves a two-party bridge: it breaks, the other goes on or is hung up."""
        self._bridge_leave(bridge, ch)
        rest = list(bridge.channels)
        for other in rest:
            self._bridge_leave(bridge, other)
        self._bridge_destroy(bridge)
        for other in rest:
            activity = other.activity
            other.activity = None
            other.gen += 1
            if isinstance(activity, _InBasicBridge) and activity.after is not None:
                activity.after(other)
            else:
                self._destroy(other, 16, how="soft")

    # --- conversations (the simulated customers and agents talk) ------------------------------

    def _conversations(self, bridge: Bridge) -> None:
        agents = [c for c in bridge.channels if c.agent_id is not None]
        if not agents:
            return
        for ch in bridge.channels:
            call = ch.caller
            if call is None or call.talking_since is not None or call.outcome is not None:
                continue
            agent_id = agents[0].agent_id
            assert agent_id is not None
            now = self.now()
            if call.connected_at is None:
                call.connected_at = now
                self.counters.connected += 1
                if call.patience_timer is not None:
                    call.patience_timer.cancel()
                    call.patience_timer = None
            call.talking_since, call.agent_id = now, agent_id
            call.agents.append(agent_id)
            self.counters.agent_calls[agent_id] = self.counters.agent_calls.get(agent_id, 0) + 1
            remaining = max(call.remaining_s, 0.0)
            call.handle_timer = self.scheduler.after(remaining, functools.partial(self._agent_ends, ch))

    def _pause_talk(self, call: Caller) -> None:
        if call.talking_since is None:
            return
        talked = self.now() - call.talking_since
        call.remaining_s -= talked
        if call.agent_id is not None:
            self.counters.agent_talk_s[call.agent_id] = (
                self.counters.agent_talk_s.get(call.agent_id, 0.0) + talked
            )
        call.talking_since = None
        if call.handle_timer is not None:
            call.handle_timer.cancel()
            call.handle_timer = None

    def _agent_ends(self, ch: Channel) -> None:
        """The conversation is over: the agent's side ends it."""
        if not ch.alive:
            return
        activity = ch.activity
        if isinstance(activity, _InBasicBridge):
            agent_leg = next((c for c in activity.bridge.channels if c.agent_id is not None), None)
            if agent_leg is not None and agent_leg.caller is None:
                self._destroy(agent_leg, 16, how="remote")
                return
        self._destroy(ch, 16, how="remote")

    # --- ring-per-call: Dial() -----------------------------------------------------------------

    def _run_ring(self, ch: Channel) -> None:
        device = self._var(ch, "CCD_AGENT_DEVICE")
        timeout = _positive_float(self._var(ch, "CCD_RING_TIMEOUT"))
        self._at(ch, CTX_RING, "s", 1, "Dial", f"{device},{self._var(ch, 'CCD_RING_TIMEOUT')}")
        ch.variables["DIALSTATUS"] = ""
        if not device:
            # "Dial requires an argument": the application fails and the PBX hangs up.
            self._destroy(ch, 16, how="internal")
            return
        tech, _, resource = device.partition("/")
        agent_id = resource.split("@", 1)[0] if tech.upper() == "PJSIP" else ""
        if not agent_id or "@" in resource or not self._knows(agent_id):
            self._ring_failed(ch, "CHANUNAVAIL")
            return
        self.counters.rung += 1
        self.counters.agent_rung[agent_id] = self.counters.agent_rung.get(agent_id, 0) + 1
        dest = self._new_channel(agent_id, state=DOWN, context=AGENT_ENDPOINT_CONTEXT, exten="s", linked=ch)
        dest.agent_id = agent_id
        dest.cid_num, dest.cid_name = ch.cid_num, ch.cid_name
        dest.app, dest.app_data = "AppDial", "(Outgoing Line)"
        self._emit("Newchannel", "call", dest.snapshot())
        self._emit("DialBegin", "call", (*ch.snapshot(), *dest.snapshot("Dest"), ("DialString", resource)))
        self._set_state(dest, RINGING)
        self._emit("DialState", "call", (*ch.snapshot(), *dest.snapshot("Dest"), ("DialStatus", "RINGING")))
        dest.activity = _Rung(ch)
        timer = None
        if timeout is not None:
            timer = self._after(ch, timeout, lambda: self._dial_timeout(ch))
        dialling = _Dialling(dest, timer)
        ch.activity = dialling
        delay = self._answer_delay(agent_id, ring_per_call=True)
        if delay is not None and (timeout is None or delay < timeout):
            dialling.answer_timer = self._after(ch, delay, lambda: self._dial_answered(ch, dialling))

    def _dial_end(self, ch: Channel, dest: Channel, status: str) -> None:
        self._emit("DialEnd", "call", (*ch.snapshot(), *dest.snapshot("Dest"), ("DialStatus", status)))

    def _dial_timeout(self, ch: Channel) -> None:
        dialling = ch.activity
        if isinstance(dialling, _Dialling):
            self._dial_failed(ch, dialling, "NOANSWER", hang_dest=True)

    def _dial_failed(self, ch: Channel, dialling: _Dialling, status: str, *, hang_dest: bool) -> None:
        dialling.stop_timers()
        ch.activity = None
        self._dial_end(ch, dialling.dest, status)
        if hang_dest:
            dialling.dest.activity = None
            self._destroy(dialling.dest, 0, how="internal")
        self.counters.ring_no_answer += 1
        self._ring_failed(ch, status)

    def _ring_failed(self, ch: Channel, status: str) -> None:
        ch.gen += 1
        self._varset(ch, "DIALSTATUS", status)
        self._at(ch, CTX_RING, "s", 3, "UserEvent")
        self._emit(
            "UserEvent",
            "user",
            (
                *ch.snapshot(),
                ("UserEvent", "CCDRingFailed"),
                ("Agent", self._var(ch, "CCD_AGENT")),
                ("DialStatus", status),
            ),
        )
        self._goto(ch, CTX_HOLD, "wait")

    def _dial_answered(self, ch: Channel, dialling: _Dialling) -> None:
        dest = dialling.dest
        dialling.stop_timers()
        dest.activity = None
        ch.activity = None
        self._set_state(dest, UP)
        dest.conn_num, dest.conn_name = ch.cid_num, ch.cid_name
        self._dial_end(ch, dest, "ANSWER")
        self._varset(ch, "DIALSTATUS", "ANSWER")
        dest.app, dest.app_data = "", ""
        # The caller has dialplan after the bridge: Hangup() once the call is over.
        self._basic_bridge(dest, ch, after_b=self._after_dial)

    def _after_dial(self, ch: Channel) -> None:
        self._at(ch, CTX_RING, "s", 5, "Hangup")
        self._destroy(ch, 16, how="internal")

    # --- outbound: ccd-outbound -------------------------------------------------------------------

    def _run_outbound(self, ch: Channel) -> None:
        """``ccd-outbound,s`` (extensions.conf), for an answered Originate to a callee.

        ``Set(AMDSTATUS=HUMAN)``, ``Set(AMDCAUSE=AMD-OFF)``; if ``CCD_AMD`` is 1, ``AMD()``
        listens for the callee's ``amd_s`` and sets AMDSTATUS/AMDCAUSE (two VarSet, class
        dialplan); then ``UserEvent(CCDOutboundAnswer,Call: ${CCD_CALL},AMDStatus:
        ${AMDSTATUS},AMDCause: ${AMDCAUSE})``. MACHINE: the campaign's message if
        ``CCD_AMD_MESSAGE`` is set, and ``Hangup()``; anything else: ``Goto(ccd-hold,s,1)``,
        where the callee waits like any caller (CCDCallWaiting with the ``CCD_QUEUE`` and
        ``CCD_PRIORITY`` of the Originate). A scripted number's answerer is a person.
        """
        callee = ch.callee or Callee("human", 0.0)
        self._at(ch, CTX_OUTBOUND, "s", 1, "Set", "AMDSTATUS=HUMAN")
        ch.variables["AMDSTATUS"] = "HUMAN"
        self._at(ch, CTX_OUTBOUND, "s", 2, "Set", "AMDCAUSE=AMD-OFF")
        ch.variables["AMDCAUSE"] = "AMD-OFF"
        self._at(ch, CTX_OUTBOUND, "s", 3, "GotoIf")
        if self._var(ch, "CCD_AMD") != "1":
            self._outbound_verdict(ch, callee)
            return
        self._at(ch, CTX_OUTBOUND, "s", 4, "AMD")
        ch.activity = _Timed()

        def decided() -> None:
            ch.activity = None
            self._varset(ch, "AMDSTATUS", callee.amd_status)
            self._varset(ch, "AMDCAUSE", callee.amd_cause)
            self._outbound_verdict(ch, callee)

        self._after(ch, callee.amd_s, decided)

    def _outbound_verdict(self, ch: Channel, callee: Callee) -> None:
        status, cause = self._var(ch, "AMDSTATUS"), self._var(ch, "AMDCAUSE")
        self._at(ch, CTX_OUTBOUND, "s", 5, "UserEvent")
        self._emit(
            "UserEvent",
            "user",
            (
                *ch.snapshot(),
                ("UserEvent", "CCDOutboundAnswer"),
                ("Call", self._var(ch, "CCD_CALL")),
                ("AMDStatus", status),
                ("AMDCause", cause),
            ),
        )
        record = self.outbound.get(ch.uniqueid)
        if record is not None:
            record.amd_status = status
        self._at(ch, CTX_OUTBOUND, "s", 6, "GotoIf")
        if status == "MACHINE":
            message = self._var(ch, "CCD_AMD_MESSAGE")
            if record is not None:
                record.fate = "machine_message" if message else "machine_hangup"
            self._at(ch, CTX_OUTBOUND, "machine", 1, "GotoIf")
            if message:
                # WaitForSilence (the greeting's end), Playback, Hangup: in all, the message's time.
                self._at(ch, CTX_OUTBOUND, "machine", 3, "Playback", message)
                self._timed_then_hangup(ch, MACHINE_MESSAGE_S, 16)
                return
            self._at(ch, CTX_OUTBOUND, "machine", 4, "Hangup")
            self._destroy(ch, 16, how="internal")
            return
        self._at(ch, CTX_OUTBOUND, "s", 7, "Goto", "ccd-hold,s,1")
        number = record.number if record is not None else ch.cid_num
        self._admit(
            ch,
            self._var(ch, "CCD_QUEUE"),
            number,
            patience_s=callee.patience_s,
            handle_s=callee.talk_s,
        )
        self._goto(ch, CTX_HOLD, "s")

    # --- hang-ups ----------------------------------------------------------------------------------

    def _destroy(self, ch: Channel, cause: int, *, how: str) -> None:
        """A channel dies. ``how``: remote (BYE: HangupRequest), soft (AMI/peer: SoftHangupRequest
        Cause 16), internal (the dialplan or a Dial tear-down: no request event)."""
        if not ch.alive:
            return
        ch.hangup_cause = cause
        if how == "remote":
            self._emit("HangupRequest", "call", (*ch.snapshot(), ("Cause", str(cause))))
        activity = ch.activity
        ch.activity = None
        ch.gen += 1
        ch.alive = False
        self._destroying += 1
        try:
            if activity is not None:
                activity.leave(self, ch, "hangup")
            if how == "soft":
                self._emit("SoftHangupRequest", "call", (*ch.snapshot(), ("Cause", "16")))
            if ch.bridge is not None:  # e.g. a channel bridged without an activity
                self._bridge_leave(ch.bridge, ch)
        finally:
            self._destroying -= 1
        self.channels.pop(ch.name, None)
        self._by_uid.pop(ch.uniqueid, None)
        hangup = AmiEvent(
            "Hangup", "call", (*ch.snapshot(), ("Cause", str(cause)), ("Cause-txt", cause_text(cause)))
        )
        if self._destroying and self._order_rng.random() < 0.5:
            # Hung up because another channel is (its bridge peer, its Dial caller): the two
            # channel threads race, so this Hangup may come after the other's (quirk 6).
            self._deferred_hangups.append(hangup)
        else:
            self._emit_event(hangup)
            if not self._destroying:
                deferred, self._deferred_hangups = self._deferred_hangups, []
                for event in deferred:
                    self._emit_event(event)
        call = ch.caller
        if call is not None:
            self._pause_talk(call)
            call.ended_at = self.now()
            if call.connected_at is not None:
                self.counters.ended += 1
                if call.outcome is None:
                    self._settle(call, "completed")
            elif call.outcome is None:
                self._settle(call, "abandoned" if how == "remote" else "hungup")
                if how == "remote":
                    self.counters.abandoned += 1
        record = self.outbound.get(ch.uniqueid)
        if record is not None and record.ended_at is None:
            record.ended_at = self.now()
            if record.result == "answered" and record.fate is None:
                record.fate = call.outcome if call is not None and call.outcome else "hungup"

    def _leave_activity(self, ch: Channel, why: str) -> None:
        activity = ch.activity
        ch.activity = None
        ch.gen += 1
        if activity is not None:
            activity.leave(self, ch, why)

    # --- AMI actions ------------------------------------------------------------------------------

    def handle(self, req: ActionRequest) -> Reply | asyncio.Future[Reply] | None:
        """Run a PBX action; None: not one of ours (the server answers "Invalid/unknown")."""
        handler = _ACTIONS.get(req.action.lower())
        if handler is None:
            return None
        return handler(self, req)

    def action_originate(self, req: ActionRequest) -> Reply | asyncio.Future[Reply]:
        dial = req.get("Channel")
        if not dial:
            return error("Channel not specified")
        channel_id = req.get("ChannelId")
        if len(channel_id) > MAX_UNIQUEID or len(req.get("OtherChannelId")) > MAX_UNIQUEID:
            return error(f"Uniqueid length exceeds maximum of {MAX_UNIQUEID}")
        priority_text = req.get("Priority")
        priority = 1
        if priority_text:
            try:
                priority = int(priority_text)
            except ValueError:
                return error("Invalid priority")
        timeout_text = req.get("Timeout")
        timeout_ms = DEFAULT_ORIGINATE_TIMEOUT_MS
        if timeout_text:
            try:
                timeout_ms = int(timeout_text)
            except ValueError:
                return error("Invalid timeout")
        if "/" not in dial:
            return error("Invalid channel")
        context, exten, app = req.get("Context"), req.get("Exten"), req.get("Application")
        if not app and exten and context and priority_text and not self.extension_exists(context, exten):
            return error("Extension does not exist.")
        variables: dict[str, str] = {}
        for header in req.get_all("Variable"):
            # manager.c man_do_variable_value: name=value pairs split like app arguments.
            for pair in separate_args(header.lstrip(" \t")):
                name, sep, value = pair.partition("=")
                if sep and name:
                    variables[name] = value
        cid_name, cid_num = _parse_callerid(req.get("CallerID"))
        plan = _OriginatePlan(
            dial=dial,
            context=context,
            exten=exten or "s",
            priority=priority,
            app=app,
            data=req.get("Data"),
            channel_id=channel_id,
            variables=variables,
            cid_num=cid_num,
            cid_name=cid_name,
            account=req.get("Account"),
            timeout_s=timeout_ms / 1000.0,
            action_id=req.get("ActionID"),
        )
        if _true(req.get("Async")):
            self.scheduler.after(0.0, lambda: self._originate(plan, None))
            return ok("Originate successfully queued")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def done(success: bool) -> None:
            if not future.done():
                future.set_result(
                    ok("Originate successfully queued") if success else error("Originate failed")
                )

        self.scheduler.after(0.0, lambda: self._originate(plan, done))
        return future

    def _originate_response(
        self, plan: _OriginatePlan, ch: Channel | None, reason: int, done: Callable[[bool], None] | None
    ) -> None:
        success = reason == REASON_ANSWERED and ch is not None
        if done is not None:  # synchronous Originate: the response says it all, no event
            done(success)
            return
        headers: list[tuple[str, str]] = []
        if plan.action_id:
            headers.append(("ActionID", plan.action_id))
        headers += [
            ("Response", "Success" if success else "Failure"),
            ("Channel", ch.name if success and ch else plan.dial),
        ]
        if plan.app:
            headers += [("Application", plan.app), ("Data", plan.data)]
        else:
            headers += [("Context", plan.context), ("Exten", plan.exten)]
        headers += [
            ("Reason", str(reason)),
            ("Uniqueid", ch.uniqueid if success and ch else "<unknown>"),
            ("CallerIDNum", plan.cid_num or "<unknown>"),
            ("CallerIDName", plan.cid_name or "<unknown>"),
        ]
        event = AmiEvent("OriginateResponse", "call", tuple(headers))
        if success and ch is not None:
            self._float(event, ch.uniqueid)
        else:
            self._emit_event(event)

    def _originate(self, plan: _OriginatePlan, done: Callable[[bool], None] | None) -> None:
        with self._batch():
            self._originate_now(plan, done)

    def _originate_now(self, plan: _OriginatePlan, done: Callable[[bool], None] | None) -> None:
        tech, _, resource = plan.dial.partition("/")
        if tech.upper() != "PJSIP" or not resource:
            self._originate_response(plan, None, REASON_FAILED, done)  # no such channel driver
            return
        number, at, endpoint = resource.partition("@")
        if not at:
            endpoint = number
        if plan.channel_id and self.find(plan.channel_id) is not None:
            self._originate_response(plan, None, REASON_FAILED, done)  # the uniqueid is taken
            return
        ch = self._new_channel(
            endpoint, state=DOWN, context=AGENT_ENDPOINT_CONTEXT, exten="s", uniqueid=plan.channel_id or None
        )
        ch.app, ch.app_data = "AppDial2", "(Outgoing Line)"
        self._emit("Newchannel", "call", ch.snapshot())
        ch.variables.update(plan.variables)
        ch.cid_num, ch.cid_name = plan.cid_num, plan.cid_name
        ch.conn_num, ch.conn_name = plan.cid_num, plan.cid_name
        ch.accountcode = plan.account
        self._emit("DialBegin", "call", (*ch.snapshot("Dest"), ("DialString", resource)))
        record: OutboundDial | None = None
        if at:
            script = self._trunk_script(ch, number, plan) if endpoint == TRUNK_ENDPOINT else None
            if script is not None:
                record = self.outbound[ch.uniqueid] = OutboundDial(
                    ch.uniqueid,
                    number,
                    plan.variables.get("CCD_CAMPAIGN", ""),
                    plan.variables.get("CCD_LEAD", ""),
                    ch.callee.kind if ch.callee is not None else f"script:{script.outcome}",
                    self.now(),
                )
                self.counters.dials += 1
        elif self._knows(endpoint):
            ch.agent_id = endpoint
            delay = self._answer_delay(endpoint, ring_per_call=False)
            script = NumberScript("answer", 0.0 if delay is None else delay)
        else:
            script = None
        if script is None or script.outcome == "unavailable":
            # As captured (scenario 6): DialEnd CHANUNAVAIL, the Failure, then the leg's Hangup.
            self._dial_result(record, "unavailable")
            self._dial_end_dest(ch, "CHANUNAVAIL")
            self._originate_response(plan, None, REASON_FAILED, done)
            self._destroy(ch, 20, how="internal")
            return
        gen = ch.gen

        def give_up(cause: int, status: str | None, reason: int) -> None:
            if not ch.alive or ch.gen != gen:
                return
            ch.activity = None
            self._dial_result(record, _CAUSE_RESULT.get(cause, "failed"))
            if reason in (REASON_BUSY, REASON_CONGESTION):
                # As captured (3c): the busy OriginateResponse overtakes DialEnd BUSY.
                self._originate_response(plan, None, reason, done)
            if status is not None:
                self._dial_end_dest(ch, status)
            self._destroy(ch, cause, how="internal")
            if reason not in (REASON_BUSY, REASON_CONGESTION):
                self._originate_response(plan, None, reason, done)

        def answer() -> None:
            if not ch.alive or ch.gen != gen:
                return
            with self._batch():
                ch.activity = None
                self._dial_result(record, "answered")
                if record is not None:
                    record.answered_at = self.now()
                self._set_state(ch, UP)
                self._dial_end_dest(ch, "ANSWER")
                # Floats (quirk 3): anywhere from before Newchannel (an immediate answer) to
                # after ConfbridgeJoin or the hold music, or just before the leg's Hangup.
                self._originate_response(plan, ch, REASON_ANSWERED, done)
                if plan.app:
                    self._run_application(ch, plan.app, plan.data)
                else:
                    self._goto(ch, plan.context, plan.exten, plan.priority)
            if math.isfinite(script.talk_s):
                self.scheduler.after(script.talk_s, lambda: self._destroy(ch, 16, how="remote"))

        def far_end_gone() -> None:  # the originate leg was hung up while ringing
            self._originate_response(plan, None, REASON_FAILED, done)

        if script.outcome == "busy":
            self.scheduler.after(script.after_s, lambda: give_up(17, "BUSY", REASON_BUSY))
        elif script.outcome == "congestion":
            self.scheduler.after(script.after_s, lambda: give_up(34, "CONGESTION", REASON_CONGESTION))
        elif script.outcome == "invalid":
            # A 404 from the carrier: cause 1 (unallocated). app_dial's word for a cause it
            # has no status for is NOANSWER, and pbx_dial_reason's is 0.
            self.scheduler.after(script.after_s, lambda: give_up(1, "NOANSWER", REASON_FAILED))
        elif script.outcome == "answer" and script.after_s <= 0 < plan.timeout_s:
            answer()  # picked up at once (auto-answer, a Local channel): no ringing
            return
        else:
            self._set_state(ch, RINGING)
            self._emit("DialState", "call", (*ch.snapshot("Dest"), ("DialStatus", "RINGING")))
            if script.outcome == "answer" and script.after_s < plan.timeout_s:
                self.scheduler.after(script.after_s, answer)
            # main/dial.c: the global timeout hangs up with cause 19 and publishes no DialEnd.
            self.scheduler.after(plan.timeout_s, lambda: give_up(19, None, REASON_NO_ANSWER))
        ch.activity = _Originating(far_end_gone)

    def _trunk_script(self, ch: Channel, number: str, plan: _OriginatePlan) -> NumberScript:
        """How a number dialled through the trunk behaves: its script, else a callee of
        ``outbound_customers`` (remembered on the channel for ccd-outbound), else the default."""
        script = self.numbers.get(number)
        if script is not None or self.outbound_customers is None:
            return script or NumberScript()
        callee = self.outbound_customers.callee(number, plan.variables.get("CCD_CAMPAIGN", ""))
        if callee is None:
            return NumberScript()
        ch.callee = callee
        return NumberScript(_CALLEE_SCRIPT[callee.kind], callee.after_s)

    def _dial_result(self, record: OutboundDial | None, result: str) -> None:
        if record is not None and record.result is None:
            record.result = result
            self.counters.dial_results[result] = self.counters.dial_results.get(result, 0) + 1
            if result != "answered":
                record.ended_at = self.now()

    def _dial_end_dest(self, ch: Channel, status: str) -> None:
        self._emit("DialEnd", "call", (*ch.snapshot("Dest"), ("DialStatus", status)))

    def _run_application(self, ch: Channel, app: str, data: str) -> None:
        """Originate with Application=: a few applications an ACD might use."""
        ch.gen += 1
        self._at(ch, "", "", 1, app, data)
        name = app.lower()
        if name == "musiconhold":
            self._emit(
                "MusicOnHoldStart",
                "call",
                (*ch.snapshot(), ("Class", data.split(",", maxsplit=1)[0] or "default")),
            )
            ch.activity = _Moh()
        elif name == "confbridge":
            conf = data.split(",", maxsplit=1)[0]
            ch.variables.setdefault("CCD_AGENT", conf.removeprefix("ccd-agent-"))
            self._confbridge(ch, "", "", 1, "ccd_agent_user", marked=True)
        elif name == "bridge":
            other = self.find(data.split(",", maxsplit=1)[0])
            if other is None:
                ch.variables["BRIDGERESULT"] = "NONEXISTENT"
                self._destroy(ch, 16, how="internal")
                return
            self._leave_activity(other, "bridge")
            self._basic_bridge(other, ch)
        elif name in ("wait", "echo", "playback"):
            ch.activity = _Timed()
            seconds = _positive_float(data) if name == "wait" else (None if name == "echo" else 1.0)
            if seconds is not None:
                self._after(ch, seconds, lambda: self._destroy(ch, 16, how="internal"))
        else:
            self._destroy(ch, 16, how="internal")

    def action_redirect(self, req: ActionRequest) -> Reply:
        name = req.get("Channel")
        if not name:
            return error("Channel not specified")
        context, exten, priority_text = req.get("Context"), req.get("Exten"), req.get("Priority")
        if not context:
            return error("Context not specified")
        if not exten:
            return error("Exten not specified")
        if not priority_text:
            return error("Priority not specified")
        try:
            priority = int(priority_text)
        except ValueError:
            return error("Priority is invalid")
        if priority < 1:
            return error("Priority is invalid")
        ch = self.find(name)
        if ch is None:
            return error(f"Channel does not exist: {name}")
        extra_name = req.get("ExtraChannel")
        extra = self.find(extra_name) if extra_name else None
        if extra_name and extra is None:
            return error("Secondary redirect failed")
        # ast_async_goto: the move happens after the response is on the wire.
        moves = [(ch, context, exten, priority)]
        if extra is not None:
            moves.append(
                (
                    extra,
                    req.get("ExtraContext") or context,
                    req.get("ExtraExten") or exten,
                    _int_or(req.get("ExtraPriority"), priority),
                )
            )
        gens = [(c, c.gen) for c, *_ in moves]

        def move() -> None:
            for (c, ctx, ext, pri), (_, gen) in zip(moves, gens, strict=True):
                if c.alive and c.gen == gen:
                    self._redirect(c, ctx, ext, pri)

        self.scheduler.after(0.0, move)
        return ok("Dual Redirect successful" if extra is not None else "Redirect successful")

    def _redirect(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        activity = ch.activity
        if isinstance(activity, _InBasicBridge):
            # A redirected party leaves the bridge; the other side is ejected (hung up).
            ch.activity = None
            ch.gen += 1
            self._basic_bridge_leave(activity.bridge, ch)
        else:
            self._leave_activity(ch, "redirect")
        if ch.alive:
            self._goto(ch, context, exten, priority)

    def action_setvar(self, req: ActionRequest) -> Reply:
        variable = req.get("Variable")
        if not variable:
            return error("No variable specified")
        name = req.get("Channel")
        value = req.get("Value")
        if not name:
            self.globals[variable] = value
            return ok("Variable Set")
        ch = self.find(name)
        if ch is None:
            return error("No such channel")
        ch.variables[variable] = value
        return ok("Variable Set")

    def action_getvar(self, req: ActionRequest) -> Reply:
        variable = req.get("Variable")
        if not variable:
            return error("No variable specified")
        name = req.get("Channel")
        ch = None
        if name:
            ch = self.find(name)
            if ch is None:
                return error("No such channel")
        return ok(None, ("Variable", variable), ("Value", self._read_variable(ch, variable) or ""))

    def _read_variable(self, ch: Channel | None, variable: str) -> str | None:
        """A variable or one of the few dialplan functions an ACD reads; None when unset."""
        m = re.fullmatch(r"(\w+)\((.*)\)", variable)
        if m:
            func, arg = m.group(1).upper(), m.group(2).lower()
            if func == "GLOBAL":
                return self.globals.get(m.group(2))
            if ch is None:
                return None
            if func == "CHANNEL":
                return {
                    "name": ch.name,
                    "uniqueid": ch.uniqueid,
                    "linkedid": ch.linkedid,
                    "state": STATE_DESC.get(ch.state, ""),
                }.get(arg)
            if func == "CALLERID":
                return {"num": ch.cid_num, "name": ch.cid_name}.get(arg)
            return None
        if variable == "EPOCH":
            return str(int(self.now()))
        if ch is not None and variable in ch.variables:
            return ch.variables[variable]
        return self.globals.get(variable)

    def action_hangup(self, req: ActionRequest) -> Reply:
        name = req.get("Channel")
        if not name:
            return error("No channel specified")
        cause = _int_or(req.get("Cause"), 0)
        if not 0 <= cause <= 127:
            cause = 0
        cause = cause or 16
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            try:
                pattern = re.compile(name[1:-1])
            except re.error:
                return error("Invalid regex")
            victims = [c for c in list(self.channels.values()) if pattern.search(c.name)]
            items = []
            for c in victims:
                items.append(ListItem("ChannelHungup", (("Channel", c.name),)))
                self._schedule_hangup(c, cause)
            return Reply(
                "Success",
                "Channels hung up will follow",
                items=tuple(items),
                complete="ChannelsHungupListComplete",
            )
        ch = self.find(name)
        if ch is None:
            return error("No such channel")
        self._schedule_hangup(ch, cause)
        return ok("Channel Hungup")

    def _schedule_hangup(self, ch: Channel, cause: int) -> None:
        # A soft hangup is serviced by the channel's own thread: after the response.
        self.scheduler.after(0.0, lambda: self._destroy(ch, cause, how="soft"))

    def action_bridge(self, req: ActionRequest) -> Reply:
        name1, name2 = req.get("Channel1"), req.get("Channel2")
        if not name1 or not name2:
            return error("Missing channel parameter in request")
        a = self.find(name1, prefix=True)
        if a is None:
            return error(f"Channel1 does not exist: {name1}")
        b = self.find(name2, prefix=True)
        if b is None:
            return error(f"Channel2 does not exist: {name2}")

        def join() -> None:
            if not (a.alive and b.alive):
                return
            for c in (a, b):
                if isinstance(c.activity, _InBasicBridge):
                    c.activity.after = None  # yanked: its old bridge must not resume its dialplan
                self._leave_activity(c, "bridge")
                c.app, c.app_data = "", ""
            for c in (a, b):
                if c.alive and c.state != UP:
                    self._set_state(c, UP)
            if a.alive and b.alive:
                self._basic_bridge(a, b)

        self.scheduler.after(0.0, join)
        return ok("Channels have been bridged")

    def action_agi(self, req: ActionRequest) -> Reply:
        name, command = req.get("Channel"), req.get("Command")
        if not name or not command:
            return error("Both, Channel and Command are *required*")
        ch = self.find(name)
        if ch is None:
            return error(f"Channel {name} does not exist.")
        ch.agi_queue.append(AgiCommand(command, req.get("CommandID")))
        if isinstance(ch.activity, _Agi) and ch.activity.running is None:
            self._after(ch, AGI_POLL_S, lambda: self._agi_next(ch))
        return ok("Added AGI command to queue")

    def action_userevent(self, req: ActionRequest) -> Reply:
        name = req.get("UserEvent")
        if not name:
            return error("UserEvent header missing")
        body = [(k, v) for k, v in req.headers if k.lower() not in ("action", "userevent")]
        self._emit("UserEvent", "user", (("UserEvent", name), *body))
        return ok("Event Sent")

    def _duration(self, ch: Channel) -> str:
        seconds = int(max(0.0, self.now() - ch.created))
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    def action_coreshowchannels(self, req: ActionRequest) -> Reply:
        items = tuple(
            ListItem(
                "CoreShowChannel",
                (
                    *ch.snapshot(),
                    ("Application", ch.app),
                    ("ApplicationData", ch.app_data),
                    ("Duration", self._duration(ch)),
                    ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
                ),
            )
            for ch in self.channels.values()
        )
        return Reply("Success", "Channels will follow", items=items, complete="CoreShowChannelsComplete")

    def action_status(self, req: ActionRequest) -> Reply:
        name = req.get("Channel")
        if name:
            ch = self.find(name)
            if ch is None:
                return error("No such channel")
            chosen = [ch]
        else:
            chosen = list(self.channels.values())
        wanted = [v.strip() for v in req.get("Variables").split(",") if v.strip()]
        every = _true(req.get("AllVariables"))
        items = []
        for ch in chosen:
            headers = [
                *ch.snapshot(),
                ("Type", "PJSIP"),
                ("DNID", ""),
                ("EffectiveConnectedLineNum", ch.conn_num or "<unknown>"),
                ("EffectiveConnectedLineName", ch.conn_name or "<unknown>"),
                ("TimeToHangup", "0"),
                ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""),
                ("Application", ch.app or "(null)"),
                ("Data", ch.app_data or "(null)"),
                ("Nativeformats", "(ulaw)"),
                ("Readformat", "ulaw"),
                ("Readtrans", ""),
                ("Writeformat", "ulaw"),
                ("Writetrans", ""),
                ("Callgroup", "0"),
                ("Pickupgroup", "0"),
                ("Seconds", str(int(max(0.0, self.now() - ch.created)))),
            ]
            if name and every:
                headers += [("Variable", f"{k}={v}") for k, v in ch.variables.items()]
            elif name:
                for var in wanted:
                    value = self._read_variable(ch, var)
                    headers.append(("Variable", f"{var}={'(null)' if value is None else value}"))
            items.append(ListItem("Status", tuple(headers), status_style=True))
        return Reply(
            "Success",
            "Channel status will follow",
            items=tuple(items),
            complete="StatusComplete",
            complete_extra=(("Items", str(len(items))),),
        )

    def action_confbridgelistrooms(self, req: ActionRequest) -> Reply:
        if not self.conferences:
            return error("No active conferences.")
        items = tuple(
            ListItem(
                "ConfbridgeListRooms",
                (
                    ("Conference", name),
                    ("Parties", str(len(bridge.channels))),
                    ("Marked", str(len(bridge.marked))),
                    ("Locked", "No"),
                    ("Muted", "No"),
                ),
            )
            for name, bridge in self.conferences.items()
        )
        return Reply(
            "Success",
            "Confbridge conferences will follow",
            items=items,
            complete="ConfbridgeListRoomsComplete",
        )

    def _conference_for(self, req: ActionRequest) -> Bridge | Reply:
        conf = req.get("Conference")
        if not conf:
            return error("No Conference name provided.")
        if not self.conferences:
            return error("No active conferences.")
        bridge = self.conferences.get(conf)
        if bridge is None:
            return error("No Conference by that name found.")
        return bridge

    def action_confbridgelist(self, req: ActionRequest) -> Reply:
        bridge = self._conference_for(req)
        if isinstance(bridge, Reply):
            return bridge
        now = self.now()
        items = tuple(
            ListItem(
                "ConfbridgeList",
                (
                    ("Conference", bridge.conference or ""),
                    ("Admin", "No"),
                    ("MarkedUser", "Yes" if ch.uniqueid in bridge.marked else "No"),
                    ("WaitMarked", "Yes" if ch.uniqueid in bridge.end_marked else "No"),
                    ("EndMarked", "Yes" if ch.uniqueid in bridge.end_marked else "No"),
                    ("EndMarkedAny", "No"),
                    ("Waiting", "No"),
                    ("Muted", "No"),
                    ("Talking", "No"),
                    ("AnsweredTime", str(int(now - bridge.joined_at.get(ch.uniqueid, now)))),
                    *ch.snapshot(),
                ),
            )
            for ch in bridge.channels
        )
        return Reply(
            "Success", "Confbridge user list will follow", items=items, complete="ConfbridgeListComplete"
        )

    def action_confbridgekick(self, req: ActionRequest) -> Reply:
        bridge = self._conference_for(req)
        if isinstance(bridge, Reply):
            return bridge
        who = req.get("Channel")
        victims = [c for c in bridge.channels if who in ("all", c.name)]
        if not victims:
            return error("No Channel by that name found in Conference.")

        def kick() -> None:
            for c in victims:
                if c.alive and isinstance(c.activity, _Conference) and c.activity.bridge is bridge:
                    self._leave_activity(c, "kick")
                    if c.alive:
                        self._after_conference(c)  # the next priority, as the dialplan says

        self.scheduler.after(0.0, kick)
        return ok("User kicked")

    # --- AsyncAGI ------------------------------------------------------------------------------

    def start_async_agi(self, channel: str) -> None:
        """Test hook: the channel runs ``AGI(agi:async)`` (as if the dialplan sent it there).

        Queued commands run one at a time; ``ASYNCAGI BREAK`` ends AGI and, there being
        no next priority, the channel is hung up; a Redirect ends it with AGISTATUS=HANGUP.
        """
        ch = self.find(channel)
        if ch is None:
            raise KeyError(channel)
        self._leave_activity(ch, "redirect")
        self._at(ch, ch.context, ch.exten, ch.priority, "AGI", "agi:async")
        env = [
            ("agi_request", "async"),
            ("agi_channel", ch.name),
            ("agi_language", "en"),
            ("agi_type", "PJSIP"),
            ("agi_uniqueid", ch.uniqueid),
            ("agi_version", "22.10.1"),
            ("agi_callerid", ch.cid_num or "unknown"),
            ("agi_calleridname", ch.cid_name or "unknown"),
            ("agi_callingpres", "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", "unknown"),
            ("agi_rdnis", "unknown"),
            ("agi_context", ch.context),
            ("agi_extension", ch.exten),
            ("agi_priority", str(ch.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", ch.accountcode),
            ("agi_threadid", str(140000000000000 + self._rng.randrange(10**9))),
        ]
        text = "".join(f"{k}: {v}\n" for k, v in env) + "\n"
        self._emit("AsyncAGIStart", "agi", (*ch.snapshot(), ("Env", agi_encode(text))))
        ch.activity = _Agi()
        self._after(ch, AGI_POLL_S, lambda: self._agi_next(ch))

    def _agi_exec_event(self, ch: Channel, cmd: AgiCommand, result: str) -> None:
        headers = [*ch.snapshot(), ("Result", agi_encode(result))]
        if cmd.command_id:
            headers.append(("CommandId", cmd.command_id))
        self._emit("AsyncAGIExec", "agi", headers)

    def _agi_next(self, ch: Channel) -> None:
        agi = ch.activity
        if not isinstance(agi, _Agi) or agi.running is not None or not ch.agi_queue:
            return
        cmd = ch.agi_queue.popleft()
        agi.running, agi.exec_id = cmd, str(self._rng.randrange(10**8, 10**9))
        self._emit(
            "AGIExecStart", "agi", (*ch.snapshot(), ("CommandId", agi.exec_id), ("Command", cmd.command))
        )
        words = cmd.command.split()
        verb = " ".join(words[:2]).upper() if len(words) >= 2 else cmd.command.upper()
        gen = ch.gen

        def finish(result: str, code: str = "200", text: str = "Success") -> None:
            if not ch.alive or ch.gen != gen or agi.running is not cmd:
                return
            if agi.moh:
                agi.moh = False
                self._emit("MusicOnHoldStop", "call", ch.snapshot())
            agi.running = None
            self._emit(
                "AGIExecEnd",
                "agi",
                (
                    *ch.snapshot(),
                    ("CommandId", agi.exec_id),
                    ("Command", cmd.command),
                    ("ResultCode", code),
                    ("Result", text),
                ),
            )
            self._agi_exec_event(ch, cmd, result)
            if verb == "ASYNCAGI BREAK":
                ch.activity = None
                ch.gen += 1
                self._emit("AsyncAGIEnd", "agi", ch.snapshot())
                self._varset(ch, "AGISTATUS", "SUCCESS")
                self._destroy(ch, 16, how="internal")  # no next priority
            elif words and words[0].upper() == "HANGUP":
                self._destroy(ch, 16, how="soft")
            elif ch.agi_queue:
                self._after(ch, AGI_POLL_S, lambda: self._agi_next(ch))

        head = words[0].upper() if words else ""
        if head == "ANSWER":
            self._set_state(ch, UP)
            finish("200 result=0\n")
        elif verb == "ASYNCAGI BREAK" or head == "NOOP":
            finish("200 result=0\n")
        elif head == "HANGUP":
            finish("200 result=1\n")
        elif verb == "GET VARIABLE" and len(words) >= 3:
            value = self._read_variable(ch, words[2])
            finish("200 result=0\n" if value is None else f"200 result=1 ({value})\n")
        elif verb == "SET VARIABLE" and len(words) >= 3:
            ch.variables[words[2]] = " ".join(words[3:]).strip('"')
            finish("200 result=1\n")
        elif head == "EXEC" and len(words) >= 2:
            app, args = words[1].lower(), " ".join(words[2:])
            if app == "wait":
                self._after(ch, _positive_float(args) or 0.0, lambda: finish("200 result=0\n"))
            elif app == "musiconhold":
                parts = args.split(",")
                agi.moh = True
                self._emit("MusicOnHoldStart", "call", (*ch.snapshot(), ("Class", parts[0] or "default")))
                seconds = _positive_float(parts[1]) if len(parts) > 1 else None
                if seconds is not None:
                    self._after(ch, seconds, lambda: finish("200 result=0\n"))
            elif app in ("playback", "noop", "set", "userevent"):
                finish("200 result=0\n")
            else:
                finish("200 result=-2\n")
        else:
            finish("510 Invalid or unknown command\n", "510", "Invalid or unknown command")


@dataclass(frozen=True, slots=True)
class _OriginatePlan:
    dial: str
    context: str
    exten: str
    priority: int
    app: str
    data: str
    channel_id: str
    variables: dict[str, str]
    cid_num: str
    cid_name: str
    account: str
    timeout_s: float
    action_id: str


_ACTIONS: dict[str, Callable[[Pbx, ActionRequest], Reply | asyncio.Future[Reply]]] = {
    "originate": Pbx.action_originate,
    "redirect": Pbx.action_redirect,
    "setvar": Pbx.action_setvar,
    "getvar": Pbx.action_getvar,
    "hangup": Pbx.action_hangup,
    "bridge": Pbx.action_bridge,
    "agi": Pbx.action_agi,
    "userevent": Pbx.action_userevent,
    "coreshowchannels": Pbx.action_coreshowchannels,
    "status": Pbx.action_status,
    "confbridgelistrooms": Pbx.action_confbridgelistrooms,
    "confbridgelist": Pbx.action_confbridgelist,
    "confbridgekick": Pbx.action_confbridgekick,
}
PBX_ACTIONS = tuple(_ACTIONS)


# The result a trunk call's failure shows (cause of the leg's Hangup).
_CAUSE_RESULT = {17: "busy", 34: "congestion", 19: "no_answer", 1: "invalid", 20: "unavailable"}


def separate_args(text: str) -> list[str]:
    """``ast_app_separate_args`` with quote and backslash removal: split on commas outside
    quotes, parentheses and brackets; a backslash makes the next character literal."""
    out: list[str] = []
    arg: list[str] = []
    paren = bracket = 0
    quote = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 1
            if i < len(text):
                arg.append(text[i])
        elif c == '"':
            quote = not quote
        elif c == "," and not (paren or bracket or quote):
            out.append("".join(arg))
            arg = []
        else:
            if c == "(":
                paren += 1
            elif c == ")" and paren:
                paren -= 1
            elif c == "[":
                bracket += 1
            elif c == "]" and bracket:
                bracket -= 1
            arg.append(c)
        i += 1
    if arg or out:
        out.append("".join(arg))
    return out


def _true(text: str) -> bool:
    return text.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _positive_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 and math.isfinite(value) else None


def _positive_int(text: str) -> int | None:
    value = _positive_float(text)
    return None if value is None else int(value)


def _parse_callerid(text: str) -> tuple[str, str]:
    """``"Name" <num>`` / ``Name <num>`` / ``num`` → (name, num), like ast_callerid_parse."""
    text = text.strip()
    m = re.fullmatch(r'(?:"?([^"<]*?)"?\s*)?<([^>]*)>', text)
    if m:
        return (m.group(1) or "").strip(), m.group(2).strip()
    if re.fullmatch(r"[\d+*#]+", text):
        return "", text
    return text, ""
