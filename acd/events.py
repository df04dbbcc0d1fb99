"""The vocabulary between the ACD core and its drivers (the AMI service, the simulator).

Events (past tense) go into :class:`acd.router.Router` stamped with the time ``at`` in
seconds on the driver's clock; commands (imperative) come back out. The same types
serve the live world and the virtual one, so a simulation exercises exactly what
production runs.

Every type is an immutable, slotted dataclass written in one pattern: fields declared
``Final`` and an explicit ``__init__`` (``init=False``). The simulator builds three
events and a command per call, so construction is on its hottest path:

* compiled (setup.py), an explicit ``__init__`` becomes a C constructor: 35 ns,
  against 0.5 µs for a compiled ``dataclass(frozen=True)``, whose generated
  ``__init__`` stays Python and sets each field through ``object.__setattr__``;
* ``Final`` makes mypy reject any assignment to a field outside ``__init__``, and the
  compiled build makes the attributes read-only at run time as well;
* ``unsafe_hash`` keeps value equality and hashing, as frozen dataclasses have;
  ``dataclasses.replace`` and ``fields`` work as on any dataclass.

Interpreted, the classes cost what generated dataclasses cost; only the run-time
read-only check is missing there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from math import isfinite
from types import MappingProxyType
from typing import Any, Final

from acd.pickling import pickle_by_fields

# Shared by every event and record without data: one immutable empty mapping, not a
# new dict per call.
NO_DATA: Final[Mapping[str, Any]] = MappingProxyType({})


# --- events in ---------------------------------------------------------------------


@dataclass(init=False, unsafe_hash=True, slots=True)
class CallArrived:
    """A caller is waiting for an agent of ``queue``; higher ``priority`` goes first.

    ``agent_id``: for this agent only (an agent-scheduled callback, a preview call):
    offered to no one else, within the queue's max wait. If the agent is unknown or
    logged out, or logs out meanwhile, it is an ordinary call of the queue.
    """

    at: Final[float]
    call_id: Final[str]
    queue: Final[str]
    caller: Final[str]
    priority: Final[int]
    data: Final[Mapping[str, str]]
    agent_id: Final[str | None]

    def __init__(
        self,
        at: float,
        call_id: str,
        queue: str,
        caller: str = "",
        priority: int = 0,
        data: Mapping[str, str] = NO_DATA,
        agent_id: str | None = None,
    ) -> None:
        if not isfinite(at):
            raise ValueError(f"CallArrived.at must be finite (got {at!r})")
        self.at = at
        self.call_id = call_id
        self.queue = queue
        self.caller = caller
        self.priority = priority
        self.data = data
        self.agent_id = agent_id


@dataclass(init=False, unsafe_hash=True, slots=True)
class CallAnswered:
    """The agent the call was offered to picked it up: they are now talking."""

    at: Final[float]
    call_id: Final[str]
    agent_id: Final[str]

    def __init__(self, at: float, call_id: str, agent_id: str) -> None:
        self.at = at
        self.call_id = call_id
        self.agent_id = agent_id


@dataclass(init=False, unsafe_hash=True, slots=True)
class CallEnded:
    """The call is over (either side hung up). Before it was answered it is an abandon."""

    at: Final[float]
    call_id: Final[str]
    cause: Final[str]

    def __init__(self, at: float, call_id: str, cause: str = "normal") -> None:
        self.at = at
        self.call_id = call_id
        self.cause = cause


@dataclass(init=False, unsafe_hash=True, slots=True)
class CallerAbandoned:
    """The caller hung up while waiting or while an agent's phone was ringing."""

    at: Final[float]
    call_id: Final[str]

    def __init__(self, at: float, call_id: str) -> None:
        self.at = at
        self.call_id = call_id


@dataclass(init=False, unsafe_hash=True, slots=True)
class CallTransferred:
    """The agent sent a call they were talking to into another queue (wrap-up follows)."""

    at: Final[float]
    call_id: Final[str]
    queue: Final[str]

    def __init__(self, at: float, call_id: str, queue: str) -> None:
        self.at = at
        self.call_id = call_id
        self.queue = queue


@dataclass(init=False, unsafe_hash=True, slots=True)
class _AgentEvent:
    """Something an agent did (the types below differ by meaning, not by fields)."""

    at: Final[float]
    agent_id: Final[str]

    def __init__(self, at: float, agent_id: str) -> None:
        self.at = at
        self.agent_id = agent_id


@dataclass(init=False, unsafe_hash=True, slots=True)
class _AgentCallEvent:
    """Something an agent did about one call."""

    at: Final[float]
    agent_id: Final[str]
    call_id: Final[str]

    def __init__(self, at: float, agent_id: str, call_id: str) -> None:
        self.at = at
        self.agent_id = agent_id
        self.call_id = call_id


class AgentLoggedIn(_AgentEvent):
    """The agent starts a session; their profile must be registered with the router."""

    __slots__ = ()


class AgentLoggedOut(_AgentEvent):
    """The agent is gone now (logged out, or their phone leg dropped).

    A call that was ringing them or talking to them goes back to the head of its queue:
    the caller is still there and must not be stranded.
    """

    __slots__ = ()


@dataclass(init=False, unsafe_hash=True, slots=True)
class AgentPaused:
    """The agent stops taking calls, with a reason code (lunch, training, rna, ...).

    Asked while busy (ringing, talking, wrap-up), the pause waits until the call and
    its wrap-up are done: a pause never cuts a caller off.
    """

    at: Final[float]
    agent_id: Final[str]
    reason: Final[str]

    def __init__(self, at: float, agent_id: str, reason: str = "break") -> None:
        self.at = at
        self.agent_id = agent_id
        self.reason = reason


class AgentReady(_AgentEvent):
    """The agent is ready for calls (ends a pause, or ends wrap-up early)."""

    __slots__ = ()


class AgentRingNoAnswer(_AgentCallEvent):
    """The agent did not pick up the offered call: it goes back to its queue's head."""

    __slots__ = ()


class OfferFailed(_AgentCallEvent):
    """The offer never reached the agent (the PBX refused or lost the connecting action).

    Unlike a ring-no-answer this is not the agent's doing: the call goes back to the
    head of its queue and the agent is free again (or takes their pending pause).
    """

    __slots__ = ()


class WrapUpDone(_AgentEvent):
    """The agent finished after-call work."""

    __slots__ = ()


Event = (
    CallArrived
    | CallAnswered
    | CallEnded
    | CallerAbandoned
    | CallTransferred
    | AgentLoggedIn
    | AgentLoggedOut
    | AgentPaused
    | AgentReady
    | AgentRingNoAnswer
    | OfferFailed
    | WrapUpDone
)

# --- commands out -------------------------------------------------------------------


@dataclass(init=False, unsafe_hash=True, slots=True)
class ConnectToAgent:
    """Offer the call to the agent: ring their device or move the caller into their session."""

    call_id: Final[str]
    agent_id: Final[str]
    queue: Final[str]

    def __init__(self, call_id: str, agent_id: str, queue: str) -> None:
        self.call_id = call_id
        self.agent_id = agent_id
        self.queue = queue


@dataclass(init=False, unsafe_hash=True, slots=True)
class CancelOffer:
    """Stop ringing the agent: the ACD gave up on them (ring timeout) and requeued the call."""

    call_id: Final[str]
    agent_id: Final[str]

    def __init__(self, call_id: str, agent_id: str) -> None:
        self.call_id = call_id
        self.agent_id = agent_id


class OverflowAction(StrEnum):
    """Where a call goes when its queue is full or it has waited too long."""

    QUEUE = "queue"  # into another queue (handled inside the ACD)
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"  # offer the caller a call back
    BUSY = "busy"  # play busy and hang up
    SAFE_HARBOUR = "safe_harbour"  # outbound: the campaign's message to a human no agent took in time


@dataclass(init=False, unsafe_hash=True, slots=True)
class Overflow:
    """The call leaves the ACD for voicemail, a callback offer or a busy signal."""

    call_id: Final[str]
    queue: Final[str]
    action: Final[OverflowAction]
    reason: Final[str]  # "full" or "max_wait"

    def __init__(self, call_id: str, queue: str, action: OverflowAction, reason: str) -> None:
        self.call_id = call_id
        self.queue = queue
        self.action = action
        self.reason = reason


@dataclass(init=False, unsafe_hash=True, slots=True)
class Announce:
    """Tell the waiting caller their position and expected wait (seconds)."""

    call_id: Final[str]
    position: Final[int]
    expected_wait_s: Final[float]

    def __init__(self, call_id: str, position: int, expected_wait_s: float) -> None:
        self.call_id = call_id
        self.position = position
        self.expected_wait_s = expected_wait_s


Command = ConnectToAgent | CancelOffer | Overflow | Announce


# --- records for observers ------------------------------------------------------------


class CallOutcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    TRANSFERRED = "transferred"  # answered here, then sent to another queue


@dataclass(init=False, unsafe_hash=True, slots=True)
class CallRecord:
    """What happened to one call in one queue, emitted when it leaves that queue.

    ``wait_s`` is from arrival in the queue to answer (answered) or to leaving it.
    """

    call_id: Final[str]
    queue: Final[str]
    arrived_at: Final[float]
    left_at: Final[float]
    outcome: Final[CallOutcome]
    wait_s: Final[float]
    agent_id: Final[str | None]
    priority: Final[int]
    detail: Final[str]
    extra: Final[Mapping[str, Any]]

    def __init__(
        self,
        call_id: str,
        queue: str,
        arrived_at: float,
        left_at: float,
        outcome: CallOutcome,
        wait_s: float,
        agent_id: str | None = None,
        priority: int = 0,
        detail: str = "",
        extra: Mapping[str, Any] = NO_DATA,
    ) -> None:
        self.call_id = call_id
        self.queue = queue
        self.arrived_at = arrived_at
        self.left_at = left_at
        self.outcome = outcome
        self.wait_s = wait_s
        self.agent_id = agent_id
        self.priority = priority
        self.detail = detail
        self.extra = extra


# Pickled by their fields through their constructors, in either build (acd.pickling).
pickle_by_fields(
    CallArrived,
    CallAnswered,
    CallEnded,
    CallerAbandoned,
    CallTransferred,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentReady,
    AgentRingNoAnswer,
    OfferFailed,
    WrapUpDone,
    ConnectToAgent,
    CancelOffer,
    Overflow,
    Announce,
    CallRecord,
)
