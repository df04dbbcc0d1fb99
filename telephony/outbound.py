"""Outbound dials over AMI: the Originate that places a call, and the one outcome it had.

Theory of operation
-------------------
``OutboundTracker`` is a pure state machine in the manner of
:class:`telephony.calls.CallTracker` (no asyncio, no panoramisk, no clock): the driver
``track``s a :class:`dialer.runner.Dial`, sends the headers of ``originate_action``,
feeds every AMI event to ``on_ami`` with the time it was received, and calls ``reap``
when ``next_deadline`` comes. Out come :data:`DialEvent` s, which the driver hands to
the :class:`dialer.runner.CampaignRunner`: for every call exactly one
:class:`DialFailed`, or one :class:`DialAnswered` followed by one :class:`DialEnded`.

Keys. The Originate gives the dialled channel ``ChannelId: <call id>``, so its Uniqueid
*is* the call id and every channel event is keyed on it (never on Linkedid, which
Asterisk 22 rewrites when channels are bridged). A failed ``OriginateResponse`` says
``Uniqueid: <unknown>`` and names the dial string, not a channel (ami_capture2): it is
matched by its ActionID, which ``originate_action`` records.

One outcome from three witnesses. Asterisk reports a failed dial three ways, in no
fixed order (``OriginateResponse`` floats: before ``Newchannel``, between ``DialBegin``
and ``DialEnd``, or after the ``Hangup``):

* the ``Hangup`` of our channel, whose Q.850 ``Cause`` is the authority (17 busy,
  19 no answer, 1 unallocated...);
* ``DialEnd``'s ``DialStatus`` (absent when Originate's own timeout fires; ``NOANSWER``
  for any cause app_dial has no word for, an unallocated number included);
* the ``OriginateResponse`` ``Reason`` (a control-frame code: 5 busy, 8 congestion,
  3 no answer, 0 anything else, e.g. an unallocated number).

:func:`telephony.calls.originate_outcome` ranks them. A failure is therefore decided
at the ``Hangup`` when its cause is informative, or when the DialStatus or Reason is
(a Local channel's ``;1`` half hangs up with Cause 0); otherwise, and when only the
Reason or a DialStatus has come, the tracker waits :data:`SETTLE_S` for the rest
(a real Asterisk sends them within milliseconds) and then decides with what it has.
An Originate that never made a channel (unknown endpoint) is settled that way too.

Answer. ``DialEnd ANSWER``, ``OriginateResponse Success`` or the channel going Up mark
the call answered; the verdict is the ``CCDOutboundAnswer`` UserEvent that the
``ccd-outbound`` dialplan sends after ``AMD()`` (or at once when AMD is off):
``DialAnswered(human=AMDStatus in HUMAN/NOTSURE)``. An answered channel that hangs up
before any verdict (AMD heard the callee hang up: AMDSTATUS=HANGUP, and the dialplan
stops) gives ``DialAnswered(human=False, amd_status="HANGUP")`` and ``DialEnded``.

Robustness. Duplicates and late events find the call's state already moved and emit
nothing; ended calls are remembered (bounded) so that nothing revives them. Channels
that are not ours (inbound callers, agent legs, other applications) are ignored. A
frame we cannot use is counted in ``malformed``/``malformed_reason`` and never raises.
Nothing is lost for good either: ``reap`` settles a call whose end was never reported
(ring timeout plus :data:`REAP_MARGIN_S` for an unanswered call, ``max_call_s`` for an
answered one), and ``resync`` reconciles with ``CoreShowChannels`` after a reconnect.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dialer.leads import Outcome
from dialer.runner import OUTBOUND_PRIORITY, Dial
from telephony.calls import (
    VAR_AGENT,
    VAR_PRIORITY,
    VAR_QUEUE,
    MalformedFrameError,
    cause_text,
    dispatch_frame,
    originate_outcome,
)
from telephony.calls import (
    first_value as _first,
)

Headers = dict[str, str | list[str]]
AmiMessage = Mapping[str, str | list[str]]

# --- the contract's names (docs/asterisk.md, "Outbound calls") ---------------------------

CTX_OUTBOUND = "ccd-outbound"
UE_OUTBOUND_ANSWER = "CCDOutboundAnswer"
VAR_CALL = "CCD_CALL"
VAR_CAMPAIGN = "CCD_CAMPAIGN"
VAR_LEAD = "CCD_LEAD"
VAR_AMD = "CCD_AMD"
VAR_AMD_MESSAGE = "CCD_AMD_MESSAGE"  # optional: the message left on a machine
VAR_SAFE_HARBOUR = "CCD_SAFE_HARBOUR"  # optional: the message of ccd-overflow,safe_harbour
OUTBOUND_VARIABLES = (VAR_CALL, VAR_CAMPAIGN, VAR_LEAD, VAR_QUEUE, VAR_PRIORITY, VAR_AMD, VAR_AGENT)

DEFAULT_TRUNK = "trunk"
NOT_HUMAN_VERDICTS = frozenset({"MACHINE", "HANGUP"})
"""AMDSTATUS values not put through to an agent. HUMAN and NOTSURE are: NOTSURE is a
person more often than not (a machine usually gives a long greeting, which AMD does
recognise), and hanging up on a person is a dropped call."""

FAILURES = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.CONGESTION, Outcome.INVALID, Outcome.FAILED})

# --- limits, with their reasons -------------------------------------------------------------

SETTLE_S = 2.0
"""How long a failure waits for its missing witnesses. A real Asterisk sends the
Hangup, DialEnd and OriginateResponse of one failure within milliseconds of each other."""
REAP_MARGIN_S = 30.0
"""An unanswered call with no news this long after its ring timeout is lost: Asterisk's
own timeout would have ended it (an OriginateResponse is sent at the latest then)."""
VERDICT_TIMEOUT_S = 30.0
"""From answer to the CCDOutboundAnswer UserEvent: AMD decides within its total analysis
time (5 s by default); after this the call counts as answered by no one we know of."""
MAX_CALL_S = 4 * 3600.0
"""An answered call still open after this is reaped (its Hangup was lost)."""

_FORGET_AFTER = 50_000  # ended calls remembered to drop late events
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ARG_SPECIALS = re.compile(r"([\\,\"()\[\]])")
_DECISIVE_REASONS = frozenset({"3", "5", "8"})


# --- events out -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialAnswered:
    """The callee answered and AMD gave its verdict: ``human`` ones go to an agent."""

    at: float
    call_id: str
    human: bool
    amd_status: str
    amd_cause: str

    def __post_init__(self) -> None:
        _check(self.at, self.call_id)


@dataclass(frozen=True, slots=True)
class DialFailed:
    """The call ended unanswered; ``detail`` says what Asterisk reported."""

    at: float
    call_id: str
    outcome: Outcome
    detail: str

    def __post_init__(self) -> None:
        _check(self.at, self.call_id)
        if self.outcome not in FAILURES:
            raise ValueError(f"call {self.call_id}: {self.outcome} is not a failed dial")


@dataclass(frozen=True, slots=True)
class DialEnded:
    """An answered call's channel hung up; ``cause`` as :func:`telephony.calls.cause_text`."""

    at: float
    call_id: str
    cause: str

    def __post_init__(self) -> None:
        _check(self.at, self.call_id)


DialEvent = DialAnswered | DialFailed | DialEnded


def _check(at: float, call_id: str) -> None:
    if not call_id:
        raise ValueError("a dial event needs a call id")
    if not math.isfinite(at):
        raise ValueError(f"call {call_id}: time {at!r} is not finite")


# --- state ------------------------------------------------------------------------------------


class DialPhase(StrEnum):
    PENDING = "pending"  # tracked; Asterisk has said nothing yet
    RINGING = "ringing"  # the channel exists
    CLOSING = "closing"  # a failure is reported; waiting briefly for the rest of its witnesses
    ANSWERED = "answered"  # picked up; AMD is listening
    UP = "up"  # DialAnswered emitted; waiting for the hang-up


@dataclass(slots=True)
class _Dial:
    call_id: str
    tracked_at: float
    ring_timeout_s: float
    phase: DialPhase = DialPhase.PENDING
    action_id: str = ""
    channel: str = ""
    seen: bool = False  # a channel event named it: the channel exists (or existed)
    hung_up: bool = False
    cause: str | None = None
    dial_status: str | None = None
    reason: str | None = None
    answered_at: float = math.nan
    deadline: float = math.inf


_MalformedError = MalformedFrameError


def _lower_keys(msg: Mapping[str, object]) -> dict[str, str]:
    """Header names case-insensitive, the first occurrence of a repeated header kept."""
    out: dict[str, str] = {}
    for k, v in msg.items():
        key = str(k).lower()
        if key not in out:
            out[key] = _first(v)
    return out


def app_arg(value: str) -> str:
    """A value as one literal argument of Asterisk's argument parser.

    Asterisk splits each ``Variable:`` header of an Originate into ``name=value`` pairs
    with ``ast_app_separate_args``: on commas outside quotes, parentheses and brackets,
    removing quotes and backslashes. A backslash before each of those characters keeps
    a value (a lead id with a comma) whole and unchanged.
    """
    if "\r" in value or "\n" in value:
        raise ValueError(f"{value!r}: a header value cannot hold a line break")
    return _ARG_SPECIALS.sub(r"\\\1", value)


class OutboundTracker:
    """Outbound calls as Asterisk reports them; see the module docstring."""

    def __init__(
        self,
        *,
        settle_s: float = SETTLE_S,
        reap_margin_s: float = REAP_MARGIN_S,
        verdict_timeout_s: float = VERDICT_TIMEOUT_S,
        max_call_s: float = MAX_CALL_S,
    ) -> None:
        for name, value in (
            ("settle_s", settle_s),
            ("reap_margin_s", reap_margin_s),
            ("verdict_timeout_s", verdict_timeout_s),
            ("max_call_s", max_call_s),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.settle_s = settle_s
        self.reap_margin_s = reap_margin_s
        self.verdict_timeout_s = verdict_timeout_s
        self.max_call_s = max_call_s
        self.malformed = 0
        self.malformed_reason = ""
        self._dials: dict[str, _Dial] = {}
        self._by_action: dict[str, str] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._timers: list[tuple[float, int, str]] = []  # (deadline, seq, call id), stale entries skipped
        self._seq = itertools.count()
        self._handlers = {
            "newchannel": self._on_channel,
            "newstate": self._on_channel,
            "dialbegin": self._on_dial_begin,
            "dialend": self._on_dial_end,
            "originateresponse": self._on_originate_response,
            "userevent": self._on_user_event,
            "hangup": self._on_hangup,
        }

    # --- queries --------------------------------------------------------------------------

    @property
    def calls(self) -> list[str]:
        return list(self._dials)

    def phase(self, call_id: str) -> DialPhase | None:
        d = self._dials.get(call_id)
        return d.phase if d is not None else None

    def channel(self, call_id: str) -> str | None:
        """The channel's name once an event gave it (to hang the call up)."""
        d = self._dials.get(call_id)
        return d.channel or None if d is not None else None

    def ended(self, call_id: str) -> bool:
        return call_id in self._ended

    # --- commands out -----------------------------------------------------------------------

    def track(self, dial: Dial, at: float) -> None:
        """Register a dial before its Originate is sent (its events may beat the ack)."""
        if not dial.call_id:
            raise ValueError("a dial needs a call id")
        if dial.call_id in self._dials or dial.call_id in self._ended:
            raise ValueError(f"call {dial.call_id} is already tracked")
        if not (dial.ring_timeout_s > 0 and math.isfinite(dial.ring_timeout_s)):
            raise ValueError(f"call {dial.call_id}: ring timeout {dial.ring_timeout_s!r} s")
        d = _Dial(dial.call_id, at, dial.ring_timeout_s)
        self._dials[dial.call_id] = d
        self._arm(d, at + dial.ring_timeout_s + self.reap_margin_s)

    def originate_action(
        self,
        dial: Dial,
        *,
        action_id: str,
        trunk: str = DEFAULT_TRUNK,
        amd: bool = False,
        queue: str | None = None,
        priority: int = OUTBOUND_PRIORITY,
        amd_message: str | None = None,
        safe_harbour: str | None = None,
    ) -> Headers:
        """The AMI ``Originate`` that places ``dial`` (see docs/asterisk.md, "Outbound calls").

        ``queue``: the ACD queue the campaign's humans wait in (default
        ``outbound:<campaign>``); ``amd``: run ``AMD()`` on answer; ``amd_message``: what
        to leave on a machine (default: hang up); ``safe_harbour``: the message played
        to a human no agent took in time. Each channel variable is its own ``Variable:``
        header (a list: panoramisk writes one header per item), escaped with
        :func:`app_arg`. Raises ValueError for anything that cannot be sent safely.
        """
        if not action_id or any(c in action_id for c in "\r\n"):
            raise ValueError(f"call {dial.call_id}: action id {action_id!r}")
        if not _NUMBER.fullmatch(dial.number):
            raise ValueError(f"call {dial.call_id}: {dial.number!r} is not a number to dial")
        if not _NAME.fullmatch(trunk):
            raise ValueError(f"trunk {trunk!r}: letters, digits, '_', '.', '-' only")
        if not dial.call_id or len(dial.call_id) > 149 or any(c in dial.call_id for c in "\r\n/"):
            raise ValueError(f"call id {dial.call_id!r} cannot be a Uniqueid")
        caller_id = dial.caller_id.strip()
        if not caller_id or any(c in caller_id for c in "\r\n"):
            raise ValueError(f"call {dial.call_id}: caller id {dial.caller_id!r}")
        variables = {
            VAR_CALL: dial.call_id,
            VAR_CAMPAIGN: dial.campaign,
            VAR_LEAD: dial.lead_id,
            VAR_QUEUE: queue if queue is not None else f"outbound:{dial.campaign}",
            VAR_PRIORITY: str(int(priority)),
            VAR_AMD: "1" if amd else "0",
        }
        if dial.agent_id is not None:
            variables[VAR_AGENT] = dial.agent_id
        if amd_message:
            variables[VAR_AMD_MESSAGE] = amd_message
        if safe_harbour:
            variables[VAR_SAFE_HARBOUR] = safe_harbour
        d = self._dials.get(dial.call_id)
        if d is not None:
            if d.action_id:
                self._by_action.pop(d.action_id, None)
            d.action_id = action_id
        self._by_action[action_id] = dial.call_id
        return {
            "Action": "Originate",
            "ActionID": action_id,
            "Channel": f"PJSIP/{dial.number}@{trunk}",
            "Context": CTX_OUTBOUND,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(max(1000, round(dial.ring_timeout_s * 1000))),
            "CallerID": caller_id,
            "Async": "true",
            "ChannelId": dial.call_id,
            "Variable": [f"{name}={app_arg(value)}" for name, value in variables.items()],
        }

    def hangup_action(self, call_id: str, cause: int = 16) -> Headers | None:
        """Hang a call up (e.g. a machine the campaign does not leave a message on).
        Before its channel name is known, the Uniqueid addresses it."""
        d = self._dials.get(call_id)
        if d is None:
            return None
        return {"Action": "Hangup", "Channel": d.channel or call_id, "Cause": str(int(cause))}

    def forget(self, call_id: str) -> None:
        """Stop tracking a call (its Originate was refused): later events about it are dropped."""
        d = self._dials.pop(call_id, None)
        if d is not None and d.action_id:
            self._by_action.pop(d.action_id, None)
        self._remember(call_id)

    # --- AMI in ---------------------------------------------------------------------------

    def on_ami(self, msg: AmiMessage, at: float) -> list[DialEvent]:
        """One AMI event in, the dial events it means out (usually none)."""
        return dispatch_frame(self._handlers, msg, at, _lower_keys, self._bad)

    def _bad(self, reason: str) -> None:
        self.malformed += 1
        self.malformed_reason = reason

    @staticmethod
    def _need(m: Mapping[str, str], key: str) -> str:
        value = m.get(key, "").strip()
        if not value:
            raise _MalformedError(f"{m.get('event') or 'message'} without {key}")
        return value

    def _ours(self, uid: str) -> _Dial | None:
        return self._dials.get(uid) if uid else None

    def _on_channel(self, m: dict[str, str], at: float) -> list[DialEvent]:
        d = self._ours(self._need(m, "uniqueid"))
        if d is None:
            return []
        self._saw(d, m.get("channel", ""))
        state = m.get("channelstate", "").strip()
        if state == "6":
            return self._answered(d, at)
        return []

    def _on_dial_begin(self, m: dict[str, str], at: float) -> list[DialEvent]:
        # Originate's own dial has no caller: our channel is the destination.
        d = self._ours(m.get("destuniqueid", "").strip())
        if d is not None:
            self._saw(d, m.get("destchannel", ""))
        return []

    def _on_dial_end(self, m: dict[str, str], at: float) -> list[DialEvent]:
        d = self._ours(m.get("destuniqueid", "").strip())
        if d is None:
            return []
        self._saw(d, m.get("destchannel", ""))
        status = m.get("dialstatus", "").strip().upper()
        if not status:
            raise _MalformedError("DialEnd without DialStatus")
        if status == "ANSWER":
            return self._answered(d, at)
        if d.phase in (DialPhase.ANSWERED, DialPhase.UP):
            return []
        d.dial_status = status
        return self._failing(d, at)

    def _on_originate_response(self, m: dict[str, str], at: float) -> list[DialEvent]:
        action_id = m.get("actionid", "").strip()
        uid = m.get("uniqueid", "").strip()
        call_id = self._by_action.get(action_id) if action_id else None
        if call_id is None and uid in self._dials:
            call_id = uid
        if call_id is None:
            if not action_id and not uid:
                raise _MalformedError("OriginateResponse without ActionID or Uniqueid")
            return []  # an agent login, another application's originate, or a late one
        d = self._dials.get(call_id)
        if d is None:
            return []
        response = m.get("response", "").strip().lower()
        reason = m.get("reason", "").strip()
        if response == "success" or reason == "4":
            if response == "success" and m.get("channel"):
                d.channel = m["channel"].strip()
            return self._answered(d, at)
        if d.phase in (DialPhase.ANSWERED, DialPhase.UP):
            return []
        d.reason = reason or "0"
        return self._failing(d, at)

    def _on_user_event(self, m: dict[str, str], at: float) -> list[DialEvent]:
        if m.get("userevent", "").strip() != UE_OUTBOUND_ANSWER:
            return []
        uid = m.get("uniqueid", "").strip()
        call = m.get("call", "").strip()
        if not uid and not call:
            raise _MalformedError(f"UserEvent {UE_OUTBOUND_ANSWER} without Uniqueid or Call")
        d = self._ours(uid) or self._ours(call)
        if d is None:
            return []
        self._saw(d, m.get("channel", ""))
        if d.phase is DialPhase.UP:
            return []
        status = m.get("amdstatus", "").strip().upper()
        cause = m.get("amdcause", "").strip()
        # Anything but a clear "machine" (or "gone") is put through: an unknown or empty
        # verdict from a misconfigured dialplan must not hang up on people.
        human = status not in NOT_HUMAN_VERDICTS
        if math.isnan(d.answered_at):
            d.answered_at = at
        answered = DialAnswered(at, d.call_id, human, status, cause)
        if d.hung_up:  # the Hangup overtook the verdict (it never does within one channel)
            self._finish(d)
            return [answered, DialEnded(at, d.call_id, cause_text(d.cause))]
        d.phase = DialPhase.UP
        self._arm(d, d.answered_at + self.max_call_s)
        return [answered]

    def _on_hangup(self, m: dict[str, str], at: float) -> list[DialEvent]:
        d = self._ours(self._need(m, "uniqueid"))
        if d is None:
            return []
        cause = m.get("cause", "").strip()
        d.seen, d.hung_up, d.cause = True, True, cause or None
        if d.phase is DialPhase.UP:
            self._finish(d)
            return [DialEnded(at, d.call_id, cause_text(cause))]
        if d.phase is DialPhase.ANSWERED:
            return self._gone_before_verdict(d, at)
        return self._failing(d, at)

    # --- transitions --------------------------------------------------------------------------

    def _saw(self, d: _Dial, channel: str) -> None:
        d.seen = True
        if channel.strip():
            d.channel = channel.strip()
        if d.phase is DialPhase.PENDING:
            d.phase = DialPhase.RINGING

    def _answered(self, d: _Dial, at: float) -> list[DialEvent]:
        if d.phase in (DialPhase.ANSWERED, DialPhase.UP):
            return []
        d.answered_at = at
        if d.hung_up:  # answered, then gone before anything told us so (a late OriginateResponse)
            return self._gone_before_verdict(d, at)
        d.phase = DialPhase.ANSWERED
        self._arm(d, at + self.verdict_timeout_s)
        return []

    def _gone_before_verdict(self, d: _Dial, at: float) -> list[DialEvent]:
        """Answered, hung up, and no CCDOutboundAnswer: the callee hung up while AMD listened."""
        self._finish(d)
        return [
            DialAnswered(at, d.call_id, False, "HANGUP", ""),
            DialEnded(at, d.call_id, cause_text(d.cause)),
        ]

    @staticmethod
    def _decisive(d: _Dial) -> bool:
        """Enough is known to name the failure: an informative hangup cause (one that
        outranks any DialStatus), a DialStatus, or a specific OriginateResponse Reason."""
        informative_cause = d.cause is not None and originate_outcome(None, d.cause, "BUSY") == (
            originate_outcome(None, d.cause, "CONGESTION")
        )
        return (
            informative_cause
            or (d.dial_status is not None and d.dial_status != "ANSWER")
            or d.reason in _DECISIVE_REASONS
        )

    def _failing(self, d: _Dial, at: float) -> list[DialEvent]:
        """Failure evidence came in: decide now if the Hangup is here and says enough,
        else wait ``settle_s`` for the other witnesses."""
        if d.hung_up and (self._decisive(d) or d.reason is not None):
            return [self._fail(d, at)]
        if d.phase is not DialPhase.CLOSING:
            d.phase = DialPhase.CLOSING
            self._arm(d, min(d.deadline, at + self.settle_s))
        return []

    def _fail(self, d: _Dial, at: float, why: str = "") -> DialFailed:
        outcome = originate_outcome(d.reason, d.cause, d.dial_status)
        self._finish(d)
        return DialFailed(at, d.call_id, Outcome(outcome), why or _detail(d))

    def _finish(self, d: _Dial) -> None:
        self._dials.pop(d.call_id, None)
        if d.action_id:
            self._by_action.pop(d.action_id, None)
        self._remember(d.call_id)

    def _remember(self, call_id: str) -> None:
        self._ended[call_id] = None
        self._ended.move_to_end(call_id)
        while len(self._ended) > _FORGET_AFTER:
            self._ended.popitem(last=False)

    # --- timers ---------------------------------------------------------------------------

    def _arm(self, d: _Dial, deadline: float) -> None:
        d.deadline = deadline
        heapq.heappush(self._timers, (deadline, next(self._seq), d.call_id))

    def _live_top(self) -> tuple[float, str] | None:
        timers = self._timers
        while timers:
            deadline, _, call_id = timers[0]
            d = self._dials.get(call_id)
            if d is not None and d.deadline == deadline:
                return deadline, call_id
            heapq.heappop(timers)  # the call ended or its deadline moved
        return None

    def next_deadline(self) -> float | None:
        """When ``reap`` next has something to do (None: nothing is tracked)."""
        top = self._live_top()
        return top[0] if top is not None else None

    def reap(self, at: float) -> list[DialEvent]:
        """Settle every call whose deadline has passed (see the module docstring)."""
        out: list[DialEvent] = []
        while (top := self._live_top()) is not None and top[0] <= at:
            heapq.heappop(self._timers)
            d = self._dials[top[1]]
            out.extend(self._expire(d, at))
        return out

    def _expire(self, d: _Dial, at: float) -> list[DialEvent]:
        if d.phase is DialPhase.UP:
            self._finish(d)
            return [DialEnded(at, d.call_id, "no_end_reported")]
        if d.phase is DialPhase.ANSWERED:
            if at >= d.answered_at + self.max_call_s:
                return self._gone_before_verdict(d, at)
            d.phase = DialPhase.UP
            self._arm(d, d.answered_at + self.max_call_s)
            return [DialAnswered(at, d.call_id, False, "UNKNOWN", "no verdict reported")]
        if d.phase is DialPhase.CLOSING:
            return [self._fail(d, at)]
        return [self._fail(d, at, "no end reported")]

    # --- resync after a reconnect -----------------------------------------------------------

    def resync(self, channels: Sequence[AmiMessage], at: float) -> list[DialEvent]:
        """Reconcile with the ``CoreShowChannel`` items Asterisk lists after a reconnect.

        A call whose channel is listed goes on (answered if it is Up, which the lost
        events would have said). A call whose channel existed and is gone ended while
        ccd was not listening: an answered one is ``DialEnded(cause="unknown")`` (after
        ``DialAnswered(human=False, amd_status="UNKNOWN")`` if no verdict had come), an
        unanswered one fails with what is known (``failed`` if nothing). A call never
        seen may still be dialling or its OriginateResponse may yet come: ``reap`` has it.
        """
        present: dict[str, dict[str, str]] = {}
        for raw in channels:
            try:
                item = _lower_keys(raw)
            except Exception as exc:
                self._bad(f"resync item: {type(exc).__name__}: {exc}")
                continue
            uid = item.get("uniqueid", "").strip()
            if uid:
                present[uid] = item
        out: list[DialEvent] = []
        for d in list(self._dials.values()):
            listed = present.get(d.call_id)
            if listed is not None:
                self._saw(d, listed.get("channel", ""))
                if listed.get("channelstate", "").strip() == "6":
                    out.extend(self._answered(d, at))
                continue
            if d.phase is DialPhase.UP:
                self._finish(d)
                out.append(DialEnded(at, d.call_id, "unknown"))
            elif d.phase is DialPhase.ANSWERED:
                self._finish(d)
                out.append(DialAnswered(at, d.call_id, False, "UNKNOWN", "gone while AMI was down"))
                out.append(DialEnded(at, d.call_id, "unknown"))
            elif d.seen:
                out.append(self._fail(d, at, _detail(d, "gone while AMI was down")))
        return out


def _detail(d: _Dial, extra: str = "") -> str:
    """What Asterisk said about a failed call, for the attempt record."""
    parts = []
    if d.cause is not None:
        parts.append(f"hangup cause {d.cause} ({cause_text(d.cause)})")
    if d.dial_status:
        parts.append(f"DialStatus {d.dial_status}")
    if d.reason is not None:
        parts.append(f"OriginateResponse reason {d.reason}")
    if extra:
        parts.append(extra)
    return ", ".join(parts) or "no end reported"
