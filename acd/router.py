"""The ACD engine: timestamped events in, commands out, no IO (DESIGN §2).

Contract with drivers (the AMI service and the simulator drive this same code):

* ``handle(event) -> list[Command]``. Events carry their time ``at`` (seconds, any
  epoch, never decreasing). Timers due up to ``at`` fire first, at their own times.
* ``next_deadline() -> float | None`` is when the engine next wants waking (relaxation
  steps, max-wait overflow, ring time-outs, wrap-up ends, announcements), and
  ``on_timer(now) -> list[Command]`` fires what is due.
* Agents are registered with :meth:`Router.register_agent` (skills, group, queue
  allow-list) before their ``AgentLoggedIn``; a profile may be replaced at any time.

Data structures, chosen so that a decision never scans all agents or all calls:

* per queue and relaxation level, a heap of the idle agents who qualify at that
  level, ordered by the queue's policy key (acd.policies). Leaving "ready" bumps the
  agent's epoch, which invalidates their entries everywhere in O(1); stale entries
  are dropped when they reach the top, and a heap is compacted when more than half of
  it is stale. Becoming ready pushes one entry per (queue, level) the agent fits.
* per queue and priority, a sorted list of waiting calls by arrival order; the best
  call for a freed agent is the head of the highest non-empty priority class that is
  relaxed far enough for them, compared across the few queues the agent serves.
* one timer heap with lazy cancellation (each timer carries a version).

Invariants (checked by the hypothesis state machine in tests/test_router_stateful.py):
a call is only ever offered to an agent qualified at the call's relaxation level;
an agent holds at most one call; after every step no waiting call has a qualified
agent idle and ready; within a queue and priority, calls are offered first come first
served; per queue, offered = answered + abandoned + overflowed + waiting.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from heapq import heapify, heappop, heappush
from typing import Any, ClassVar, Final, cast

from acd.agents import NEXT_STATE, AgentProfile, AgentState, IllegalTransitionError, Trigger
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
    Command,
    ConnectToAgent,
    Event,
    OfferFailed,
    Overflow,
    OverflowAction,
    WrapUpDone,
)
from acd.policies import CALL_SELECTIONS, AgentPolicy, IdleAgent, get_policy
from acd.queues import QueueConfig
from acd.stats import GroupStats, GroupWindow, QueueStats, QueueWindow

_BUSY: Final = frozenset({AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP})


def _weights(state: AgentState) -> tuple[int, int, int]:
    """How an agent in ``state`` counts towards its group's (available, busy, talking)
    time. Tests of identity, not a table: every state change asks this twice, and
    compiled (setup.py) these are pointer comparisons where a dict costs a lookup."""
    if state is AgentState.READY:
        return (1, 0, 0)
    if state is AgentState.TALKING:
        return (1, 1, 1)
    if state is AgentState.RESERVED or state is AgentState.WRAP_UP:
        return (1, 1, 0)
    return (0, 0, 0)  # logged out, paused


class CallState(Enum):
    WAITING = "waiting"
    OFFERED = "offered"
    TALKING = "talking"


class _Timer(Enum):
    RELAX = 0
    MAX_WAIT = 1
    RING = 2
    WRAP = 3
    ANNOUNCE = 4


class _Call:
    __slots__ = (
        "agent",
        "arrived_at",
        "call_id",
        "caller",
        "data",
        "entered_at",
        "for_agent",
        "hops",
        "order",
        "priority",
        "queue",
        "state",
        "version",
    )

    def __init__(self, call_id: str, queue: _Queue, priority: int, at: float, order: int) -> None:
        self.call_id = call_id
        self.queue = queue
        self.priority = priority
        self.arrived_at = at  # start of the wait the statistics measure
        self.entered_at = at  # start of the wait routing honours (relaxation, seniority)
        self.order = order
        self.state = CallState.WAITING
        self.agent: _Agent | None = None
        self.version = 0
        self.hops = 0
        self.caller = ""
        self.data: object = None
        self.for_agent: _Agent | None = None  # a personal call: this agent only


class _Agent:
    __slots__ = (
        "call",
        "epoch",
        "group",
        "idle_since",
        "in_heaps",
        "last_offer_seq",
        "memberships",
        "pending_pause",
        "personal",
        "profile",
        "reason",
        "seq",
        "state",
        "state_since",
        "talk_s_today",
        "talking_since",
        "wrap_version",
    )

    def __init__(self, profile: AgentProfile, seq: int, group: GroupStats) -> None:
        self.profile = profile
        self.seq = seq
        self.group = group
        self.state = AgentState.LOGGED_OUT
        self.state_since = 0.0
        self.idle_since = 0.0
        self.talk_s_today = 0.0
        self.talking_since = 0.0
        self.last_offer_seq = 0
        self.reason = ""
        self.pending_pause: str | None = None
        self.call: _Call | None = None
        self.epoch = 0
        self.in_heaps = False
        self.wrap_version = 0
        # (queue, level, match score) for every queue the agent may serve.
        self.memberships: list[tuple[_Queue, int, float]] = []
        self.personal: list[_Call] = []  # calls for this agent only, oldest first


# (key, agent seq, epoch, agent). Typed as a plain tuple on purpose: compiled
# (setup.py), a fixed tuple type is a C struct, boxed again for every list operation.
_IdleEntry = tuple[object, ...]


def _live(entry: _IdleEntry) -> _Agent | None:
    """The entry's agent if the entry is current (the agent idle since it was made)."""
    agent = cast(_Agent, entry[3])
    if agent.epoch == cast(int, entry[2]) and agent.state is AgentState.READY:
        return agent
    return None


class _IdleLine:
    """The idle agents of one queue at one level, best (smallest key, then seq) first.

    Entries of agents no longer idle stay until they reach the front (the agent's epoch
    tells), so leaving is O(1). While entries arrive in order the line is a plain FIFO:
    with longest-idle routing, the default, they always do (an agent idle from now has
    waited least), and taking the best costs no comparisons. The first entry to arrive
    out of order turns it into a heap until it empties. Either way agents come out in
    the same order.
    """

    __slots__ = ("entries", "head", "live", "ordered")

    def __init__(self) -> None:
        self.entries: list[_IdleEntry] = []
        self.head = 0  # FIFO: entries before it are taken
        self.live = 0  # entries of agents still idle
        self.ordered = True

    def push(self, entry: _IdleEntry) -> None:
        entries = self.entries
        if not self.ordered:
            heappush(entries, entry)
            return
        # (Comparing whole entries never reaches the agent: an agent's seq is its own,
        # and its epoch changes with every entry it makes.)
        if self.head < len(entries) and entry < entries[-1]:
            del entries[: self.head]
            self.head = 0
            heapify(entries)
            self.ordered = False
            heappush(entries, entry)
            return
        if self.head > 64 and 2 * self.head > len(entries):  # drop what was taken
            del entries[: self.head]
            self.head = 0
        entries.append(entry)

    def first(self) -> _Agent | None:
        """The best idle agent, dropping stale entries on the way; None if none."""
        entries = self.entries
        while True:
            if self.ordered:
                if self.head >= len(entries):
                    self._reset()
                    return None
                agent = _live(entries[self.head])
                if agent is not None:
                    return agent
                self.head += 1
            else:
                if not entries:
                    self._reset()
                    return None
                agent = _live(entries[0])
                if agent is not None:
                    return agent
                heappop(entries)

    def _reset(self) -> None:
        self.entries.clear()
        self.head = 0
        self.ordered = True

    def compact(self) -> None:
        """Drop stale entries when they are most of the line (order is kept)."""
        if len(self.entries) - self.head > 2 * self.live + 32:
            live = [e for e in self.entries[self.head :] if _live(e) is not None]
            if not self.ordered:
                heapify(live)
            self.entries = live
            self.head = 0


class _WaitLine:
    """The waiting calls of one priority in a queue, in arrival order (``call.order``).

    Calls nearly always join at the back (orders are handed out increasing) and leave
    from the front (answered in turn), so this is a list with a head index: joining
    and leaving cost no comparisons. A call that leaves from the middle (abandoned,
    overflowed, or taken ahead of others by an agent it relaxed to) leaves its queue's
    ``waiting`` map, which is what counts: its entry here is skipped when it reaches
    the front. A call that comes back (requeued after a ring-no-answer) goes back to
    its place, found by bisection; if its old entry is still there it is simply live
    again. (A SortedList did this before: pure Python, a few percent of a simulation.)
    """

    __slots__ = ("count", "head", "orders")

    def __init__(self) -> None:
        self.orders: list[int] = []  # ascending; entries before head are gone
        self.head = 0
        self.count = 0  # calls waiting in this line

    def add(self, order: int) -> None:
        orders = self.orders
        self.count += 1
        if not orders or order > orders[-1]:
            orders.append(order)
            return
        pos = bisect_left(orders, order, self.head)
        if pos < len(orders) and orders[pos] == order:
            return  # its old entry, still in place
        if pos == self.head and pos > 0:
            self.head = pos - 1  # a slot already taken: reuse it
            orders[pos - 1] = order
        else:
            orders.insert(pos, order)

    def remove(self, order: int) -> None:
        """After the call left its queue's ``waiting`` map."""
        self.count -= 1
        if self.count == 0:
            self.orders.clear()
            self.head = 0
        elif self.orders[self.head] == order:
            self.head += 1
            if self.head > 64 and 2 * self.head > len(self.orders):  # drop what is gone
                del self.orders[: self.head]
                self.head = 0

    def first(self, waiting: dict[int, _Call]) -> _Call:
        """The call at the front; the line must not be empty."""
        orders = self.orders
        head = self.head
        while True:
            call = waiting.get(orders[head])
            if call is not None:
                self.head = head
                return call
            head += 1

    def calls(self, waiting: dict[int, _Call]) -> list[_Call]:
        """The waiting calls in order."""
        return [waiting[o] for o in self.orders[self.head :] if o in waiting]

    def index(self, order: int, waiting: dict[int, _Call]) -> int:
        """How many calls of this line wait ahead of ``order``.

        A count over those calls: position announcements ask for it once every so
        many seconds per caller, never per routing decision."""
        end = bisect_left(self.orders, order, self.head)
        return sum(1 for o in self.orders[self.head : end] if o in waiting)


class _Queue:
    __slots__ = (
        "classes",
        "config",
        "idle",
        "key_len",
        "members",
        "policy",
        "prios",
        "stats",
        "thresholds",
        "uses_match",
        "waiting",
    )

    def __init__(self, config: QueueConfig, policy: AgentPolicy, stats: QueueStats) -> None:
        self.config = config
        self.policy = policy
        self.uses_match = bool(getattr(policy, "uses_match", True))
        self.stats = stats
        levels = config.levels()
        self.thresholds = [after for after, _, _ in levels]
        # Per level; a one-element policy key is stored as its float, so that entries
        # compare floats, not tuples nested in tuples.
        self.idle = [_IdleLine() for _ in levels]
        self.key_len = 0  # the policy's key length, fixed by its first key
        # priority -> its waiting calls by arrival order; the priorities that have
        # calls waiting, highest first.
        self.classes: dict[int, _WaitLine] = {}
        self.prios: list[int] = []
        self.waiting: dict[int, _Call] = {}  # order -> call
        self.members: set[_Agent] = set()

    def level_of(self, call: _Call, now: float) -> int:
        wait = now - call.entered_at
        level = 0
        for k in range(1, len(self.thresholds)):
            if wait >= self.thresholds[k]:
                level = k
        return level


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    agent_id: str
    group: str
    state: AgentState
    reason: str
    pending_pause: str | None
    call_id: str | None
    state_since: float
    idle_since: float
    talk_s_today: float


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    call_id: str
    queue: str
    state: CallState
    priority: int
    arrived_at: float
    agent_id: str | None


class Router:
    """Inbound call distribution for a set of queues. See the module docstring."""

    def __init__(
        self,
        queues: Iterable[QueueConfig],
        *,
        start: float = 0.0,
        call_selection: str = "oldest",
        rna_reason: str = "rna",
        observers: Iterable[Callable[[CallRecord], None]] = (),
    ) -> None:
        if call_selection not in CALL_SELECTIONS:
            raise InputError(
                "call_selection", f"{call_selection!r} is not one of {', '.join(CALL_SELECTIONS)}"
            )
        self.now = start
        self._start = start
        self.call_selection = call_selection
        self.rna_reason = rna_reason
        self._observers = list(observers)
        self._queues: dict[str, _Queue] = {}
        for cfg in queues:
            if cfg.name in self._queues:
                raise InputError(f"queue {cfg.name!r}", "is defined twice")
            policy = get_policy(cfg.policy, where=f"queue {cfg.name!r}: policy")
            self._queues[cfg.name] = _Queue(
                cfg, policy, QueueStats(cfg.service_target_s, cfg.short_abandon_s, start)
            )
        for q in self._queues.values():
            rule = q.config.overflow
            if rule is not None and rule.target is not None and rule.target not in self._queues:
                raise InputError(
                    f"queue {q.config.name!r}: overflow", f"unknown target queue {rule.target!r}"
                )
        self._skill_queues: dict[str, list[_Queue]] = {}
        self._open_queues: list[_Queue] = []  # queues with no skill requirement at some level
        for q in self._queues.values():
            self._index(q)
        self._agents: dict[str, _Agent] = {}
        self._groups: dict[str, GroupStats] = {}
        self._calls: dict[str, _Call] = {}
        self._timers: list[tuple[float, int, _Timer, object, int]] = []
        # Counters, each handing out 1, 2, ... (plain ints: compiled, itertools.count's
        # next() is a generic call through the builtins module).
        self._seq = 0
        self._offer_seq = 0
        self._head_seq = 0

    def _index(self, q: _Queue) -> None:
        needed = set(q.config.skills)
        if not needed or any(not skills for _, skills, _ in q.config.levels()):
            self._open_queues.append(q)
        for skill in needed:
            self._skill_queues.setdefault(skill, []).append(q)

    # --- driver interface -----------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        """Apply one event; return the commands it (and any timers due first) produce."""
        at = event.at
        if at < self.now - 1e-9:
            raise RouterError(f"event at {at} is before the router's clock ({self.now})")
        timers = self._timers
        out: list[Command] = self.on_timer(at) if timers and timers[0][0] <= at else []
        if at > self.now:
            self.now = at
        # The three events of every call first, as direct calls (in the compiled build,
        # setup.py, a C call; through the table, a generic Python call), the rest by table.
        if type(event) is CallArrived:
            self._on_call_arrived(event, out)
        elif type(event) is CallAnswered:
            self._on_call_answered(event, out)
        elif type(event) is CallEnded:
            self._on_call_ended(event, out)
        else:
            self._handlers[type(event)](self, event, out)
        return out

    def next_deadline(self) -> float | None:
        """When the router next wants on_timer called (None: nothing scheduled)."""
        timers = self._timers
        while timers and not self._timer_valid(timers[0]):
            heappop(timers)
        return timers[0][0] if timers else None

    def on_timer(self, now: float) -> list[Command]:
        """Fire every timer due at or before ``now``, each at its own time."""
        out: list[Command] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heappop(timers)
            if not self._timer_valid(entry):
                continue
            due, _, kind, obj, _ = entry
            self.now = max(self.now, due)
            if kind is _Timer.RELAX or kind is _Timer.MAX_WAIT or kind is _Timer.ANNOUNCE:
                assert isinstance(obj, _Call)
                if kind is _Timer.RELAX:
                    self._route_call(obj, out)
                elif kind is _Timer.MAX_WAIT:
                    self._overflow(obj, "max_wait", out)
                else:
                    self._announce(obj, out)
            elif kind is _Timer.RING:
                assert isinstance(obj, _Call) and obj.agent is not None
                agent = obj.agent
                out.append(CancelOffer(obj.call_id, agent.profile.agent_id))
                self._ring_no_answer(agent, obj, out)
            else:  # WRAP
                assert isinstance(obj, _Agent)
                self._end_wrap_up(obj, out)
        self.now = max(self.now, now)
        return out

    def register_agent(self, profile: AgentProfile) -> list[Command]:
        """Add or replace an agent's profile; takes effect at once, even mid-shift.

        A ready agent whose new skills fit a waiting call is offered it: hence the
        commands returned (none for a new or logged-out agent).
        """
        out: list[Command] = []
        agent = self._agents.get(profile.agent_id)
        if agent is None:
            agent = _Agent(profile, self._next_seq(), self._group(profile.group))
            self._agents[profile.agent_id] = agent
            agent.memberships = self._memberships(profile)
            return out
        was_ready = agent.state is AgentState.READY
        if was_ready:
            self._leave_ready(agent)
        for q, _, _ in agent.memberships:
            q.members.discard(agent)
        if profile.group != agent.profile.group:
            self._flush_group(agent)
            self._count(agent, -1)
            agent.group = self._group(profile.group)
            self._flush_group(agent)
            self._count(agent, +1)
        agent.profile = profile
        agent.memberships = self._memberships(profile)
        if agent.state is not AgentState.LOGGED_OUT:
            for q, _, _ in agent.memberships:
                q.members.add(agent)
        if was_ready:
            self._become_ready(agent, out)
        return out

    def add_queue(self, cfg: QueueConfig) -> list[Command]:
        """A queue added while running (an outbound campaign created through the API).

        Every agent's memberships are worked out again, as if re-registered, so the
        agents whose skills fit serve the new queue at once."""
        if cfg.name in self._queues:
            raise InputError(f"queue {cfg.name!r}", "is defined twice")
        rule = cfg.overflow
        if rule is not None and rule.target is not None and rule.target not in self._queues:
            raise InputError(f"queue {cfg.name!r}: overflow", f"unknown target queue {rule.target!r}")
        policy = get_policy(cfg.policy, where=f"queue {cfg.name!r}: policy")
        q = _Queue(cfg, policy, QueueStats(cfg.service_target_s, cfg.short_abandon_s, self.now))
        self._queues[cfg.name] = q
        self._index(q)
        out: list[Command] = []
        for agent in list(self._agents.values()):
            out += self.register_agent(agent.profile)
        return out

    def start_new_day(self) -> None:
        """Reset the "today" windows and today's talk time (the driver knows midnight)."""
        for q in self._queues.values():
            q.stats.start_new_day(self.now)
        for g in self._groups.values():
            g.start_new_day(self.now)
        for agent in self._agents.values():
            agent.talk_s_today = 0.0
            if agent.state is AgentState.TALKING:
                agent.talking_since = self.now

    # --- read side (metrics, API, tests) ----------------------------------------------

    @property
    def queue_names(self) -> list[str]:
        return list(self._queues)

    @property
    def group_names(self) -> list[str]:
        return list(self._groups)

    def queue_config(self, name: str) -> QueueConfig:
        return self._queue(name).config

    def queue_stats(self, name: str, window: str = "15m") -> QueueWindow:
        return self._queue(name).stats.window(window, self.now)

    def group_stats(self, group: str, window: str = "15m") -> GroupWindow:
        if group not in self._groups:
            raise KeyError(group)
        return self._groups[group].window(window, self.now)

    def waiting_calls(self, name: str) -> list[str]:
        """Waiting calls of a queue in the order they will be offered (absent relaxation)."""
        q = self._queue(name)
        out: list[str] = []
        for prio in q.prios:
            out.extend(call.call_id for call in q.classes[prio].calls(q.waiting))
        return out

    def waiting_count(self, name: str) -> int:
        return len(self._queue(name).waiting)

    def longest_waiting_s(self, name: str) -> float:
        q = self._queue(name)
        oldest = min((c.arrived_at for c in q.waiting.values()), default=None)
        return 0.0 if oldest is None else self.now - oldest

    def position(self, call_id: str) -> int | None:
        """1-based place in its queue's offer order, or None if not waiting."""
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.WAITING:
            return None
        if call.for_agent is not None:
            # A personal call waits for its agent alone: first in their line.
            return 1 + call.for_agent.personal.index(call)
        q = call.queue
        ahead = sum(line.count for prio, line in q.classes.items() if prio > call.priority)
        return ahead + q.classes[call.priority].index(call.order, q.waiting) + 1

    def expected_wait_s(self, call_id: str) -> float | None:
        """Position / recent answer rate (15 min); None when nothing was answered lately."""
        pos = self.position(call_id)
        if pos is None:
            return None
        window = self._calls[call_id].queue.stats.window("15m", self.now)
        elapsed = min(900.0, self.now - self._start)
        if window.answered == 0 or elapsed <= 0:
            return None
        return pos / (window.answered / elapsed)

    def agent(self, agent_id: str) -> AgentSnapshot:
        a = self._agents[agent_id]
        return AgentSnapshot(
            agent_id=agent_id,
            group=a.profile.group,
            state=a.state,
            reason=a.reason,
            pending_pause=a.pending_pause,
            call_id=None if a.call is None else a.call.call_id,
            state_since=a.state_since,
            idle_since=a.idle_since,
            talk_s_today=a.talk_s_today
            + (self.now - a.talking_since if a.state is AgentState.TALKING else 0.0),
        )

    def agents(self) -> list[AgentSnapshot]:
        return [self.agent(agent_id) for agent_id in self._agents]

    def agent_profile(self, agent_id: str) -> AgentProfile:
        return self._agents[agent_id].profile

    def call(self, call_id: str) -> CallSnapshot | None:
        c = self._calls.get(call_id)
        if c is None:
            return None
        return CallSnapshot(
            call_id=c.call_id,
            queue=c.queue.config.name,
            state=c.state,
            priority=c.priority,
            arrived_at=c.arrived_at,
            agent_id=None if c.agent is None else c.agent.profile.agent_id,
        )

    def calls(self) -> list[CallSnapshot]:
        return [s for s in (self.call(cid) for cid in self._calls) if s is not None]

    def agents_by_state(self, queue: str | None = None) -> dict[AgentState, int]:
        """Agents per state, all or those able to serve ``queue`` (logged in)."""
        counts = dict.fromkeys(AgentState, 0)
        pool = self._agents.values() if queue is None else self._queue(queue).members
        for a in pool:
            counts[a.state] += 1
        return counts

    def member_states(self, queue: str) -> list[tuple[str, AgentState, float, float]]:
        """(agent id, state, state_since, talking_since) of every logged-in agent able
        to serve ``queue``, in registration order: the outbound dialer's picture of its
        agents, without building a snapshot object per agent on every pacing decision."""
        members = sorted(self._queue(queue).members, key=lambda a: a.seq)
        return [(a.profile.agent_id, a.state, a.state_since, a.talking_since) for a in members]

    def relaxation_level(self, call_id: str) -> int | None:
        call = self._calls.get(call_id)
        return None if call is None else call.queue.level_of(call, self.now)

    def qualifying_level(self, agent_id: str, queue: str) -> int | None:
        for q, level, _ in self._agents[agent_id].memberships:
            if q.config.name == queue:
                return level
        return None

    # --- event handlers -------------------------------------------------------------

    def _on_call_arrived(self, e: CallArrived, out: list[Command]) -> None:
        if e.call_id in self._calls:
            raise RouterError(f"call {e.call_id!r} is already in the ACD")
        q = self._queues.get(e.queue) or self._queue(e.queue)  # the latter raises
        call = _Call(e.call_id, q, e.priority, e.at, self._next_seq())
        call.caller = e.caller
        call.data = e.data
        if e.agent_id is not None:
            agent = self._agents.get(e.agent_id)
            if agent is not None and agent.state is not AgentState.LOGGED_OUT:
                call.for_agent = agent
        self._calls[e.call_id] = call
        self._enter_queue(call, q, out)

    def _on_call_answered(self, e: CallAnswered, out: list[Command]) -> None:
        call = self._calls.get(e.call_id)
        agent = self._agents.get(e.agent_id) or self._agent(e.agent_id)  # the latter raises
        if call is None or call.state is not CallState.OFFERED or call.agent is not agent:
            raise RouterError(f"call {e.call_id!r} was not offered to agent {e.agent_id!r}")
        self._move(agent, Trigger.ANSWER)
        call.state = CallState.TALKING
        call.for_agent = None  # personal until answered: a transfer or requeue is for anyone
        call.version += 1
        agent.talking_since = self.now
        wait = self.now - call.arrived_at
        call.queue.stats.answered(self.now, wait)
        agent.group.call_taken(self.now)
        if self._observers:
            self._record(call, CallOutcome.ANSWERED, wait, agent)

    def _on_call_ended(self, e: CallEnded | CallerAbandoned, out: list[Command]) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            return  # already left the ACD (overflowed, ended): nothing to do
        if call.state is CallState.TALKING:
            assert call.agent is not None
            del self._calls[call.call_id]
            self._finish_talk(call.agent, call, out)
            return
        wait = self.now - call.arrived_at
        agent = call.agent
        self._leave(call)
        del self._calls[call.call_id]
        call.queue.stats.abandoned(self.now, wait)
        self._record(call, CallOutcome.ABANDONED, wait, agent, detail=type(e).__name__)
        if agent is not None:  # the phone was ringing
            agent.call = None
            self._check(agent, Trigger.CALLER_GONE)
            self._become_ready(agent, out)

    def _on_call_transferred(self, e: CallTransferred, out: list[Command]) -> None:
        call = self._calls.get(e.call_id)
        if call is None or call.state is not CallState.TALKING:
            raise RouterError(f"call {e.call_id!r} is not talking to an agent, so cannot be transferred")
        target = self._queue(e.queue)
        agent = call.agent
        assert agent is not None
        self._record(call, CallOutcome.TRANSFERRED, 0.0, agent, detail=e.queue)
        self._finish_talk(agent, call, out, keep_call=True)
        call.agent = None
        call.hops = 0
        call.arrived_at = self.now
        call.order = self._next_seq()
        self._enter_queue(call, target, out)

    def _on_logged_in(self, e: AgentLoggedIn, out: list[Command]) -> None:
        agent = self._agent(e.agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            self._move(agent, Trigger.LOG_IN)  # validates; idempotent where legal
            return
        self._check(agent, Trigger.LOG_IN)
        for q, _, _ in agent.memberships:
            q.members.add(agent)
        agent.reason = ""
        self._become_ready(agent, out)

    def _on_logged_out(self, e: AgentLoggedOut, out: list[Command]) -> None:
        agent = self._agent(e.agent_id)
        if agent.state is AgentState.LOGGED_OUT:
            return  # idempotent
        call = agent.call
        if agent.state is AgentState.READY:
            self._leave_ready(agent)
        if agent.state is AgentState.TALKING:
            agent.talk_s_today += self.now - agent.talking_since
        agent.wrap_version += 1
        agent.pending_pause = None
        agent.reason = ""
        agent.call = None
        self._move(agent, Trigger.LOG_OUT)
        for q, _, _ in agent.memberships:
            q.members.discard(agent)
        for waiting in agent.personal:  # their personal calls: anyone of the queue now
            waiting.for_agent = None
            self._add_waiting(waiting)
        personal, agent.personal = agent.personal, []
        for waiting in personal:
            self._route_call(waiting, out)
        if call is None:
            return
        call.for_agent = None
        # Ringing or talking, the caller is still on the line: back to the queue.
        if call.state is CallState.OFFERED:
            out.append(CancelOffer(call.call_id, agent.profile.agent_id))
        else:
            # Cut off mid-conversation: a new offer, at the head of its priority class.
            call.order = -self._next_head()
            call.arrived_at = self.now
            call.queue.stats.offered(self.now)
        self._requeue(call, out)

    def _on_paused(self, e: AgentPaused, out: list[Command]) -> None:
        agent = self._agent(e.agent_id)
        if agent.state in _BUSY:
            self._move(agent, Trigger.PAUSE)
            agent.pending_pause = e.reason
            return
        if agent.state is AgentState.READY:
            self._leave_ready(agent)
        self._move(agent, Trigger.PAUSE)
        agent.reason = e.reason

    def _on_ready(self, e: AgentReady, out: list[Command]) -> None:
        agent = self._agent(e.agent_id)
        if agent.state in (AgentState.RESERVED, AgentState.TALKING):
            self._check(agent, Trigger.READY)
            agent.pending_pause = None  # "ready" while busy cancels a pending pause
            return
        if agent.state is AgentState.WRAP_UP:
            agent.pending_pause = None
            self._end_wrap_up(agent, out)
            return
        if agent.state is AgentState.READY:
            return
        self._check(agent, Trigger.READY)  # raises if logged out
        self._become_ready(agent, out)

    def _on_ring_no_answer(self, e: AgentRingNoAnswer, out: list[Command]) -> None:
        agent = self._agent(e.agent_id)
        call = self._calls.get(e.call_id)
        if call is None or call.agent is not agent or call.state is not CallState.OFFERED:
            raise RouterError(f"call {e.call_id!r} is not ringing agent {e.agent_id!r}")
        self._ring_no_answer(agent, call, out)

    def _on_offer_failed(self, e: OfferFailed, out: list[Command]) -> None:
        agent = self._agent(e.agent_id)
        call = self._calls.get(e.call_id)
        if call is None or call.agent is not agent or call.state is not CallState.OFFERED:
            raise RouterError(f"call {e.call_id!r} is not offered to agent {e.agent_id!r}")
        self._move(agent, Trigger.OFFER_FAILED)
        agent.call = None
        # Back at its old place first, so that another free agent may take it at once;
        # with nobody else free this agent is offered it again (a personal call is, at
        # once, by the requeue: then the agent is no longer free).
        self._requeue(call, out)
        if self._is_free(agent):
            self._become_ready(agent, out)

    def _on_wrap_up_done(self, e: WrapUpDone, out: list[Command]) -> None:
        agent = self._agent(e.agent_id)
        if agent.state is not AgentState.WRAP_UP:
            raise IllegalTransitionError(agent.profile.agent_id, agent.state, Trigger.WRAP_UP_DONE)
        self._end_wrap_up(agent, out)

    # Filled in below the class: event type -> handler (a dict lookup, not an isinstance chain).
    _handlers: ClassVar[dict[type, Callable[[Router, Any, list[Command]], None]]] = {}

    # --- mechanics ------------------------------------------------------------------

    def _enter_queue(self, call: _Call, q: _Queue, out: list[Command]) -> None:
        cfg = q.config
        call.queue = q
        call.entered_at = call.arrived_at
        call.state = CallState.WAITING
        call.version += 1
        q.stats.offered(self.now)
        # A free agent takes the call at once: it never joins the waiting list, and the
        # queue being full does not matter.
        if self._try_offer(call, out, enqueue_first=False):
            return
        if call.for_agent is None and cfg.max_length is not None and len(q.waiting) >= cfg.max_length:
            self._overflow(call, "full", out)
            return
        self._add_waiting(call)
        v = call.version
        for k in range(1, len(q.thresholds)):
            self._schedule(call.entered_at + q.thresholds[k], _Timer.RELAX, call, v)
        if cfg.max_wait_s is not None:
            self._schedule(call.arrived_at + cfg.max_wait_s, _Timer.MAX_WAIT, call, v)
        if cfg.announce_every_s is not None:
            self._schedule(self.now + cfg.announce_every_s, _Timer.ANNOUNCE, call, v)

    def _add_waiting(self, call: _Call) -> None:
        if call.for_agent is not None:
            call.for_agent.personal.append(call)
            return
        q = call.queue
        line = q.classes.get(call.priority)
        if line is None:
            line = q.classes[call.priority] = _WaitLine()
            k = 0
            while k < len(q.prios) and q.prios[k] > call.priority:
                k += 1
            q.prios.insert(k, call.priority)
        q.waiting[call.order] = call
        line.add(call.order)

    def _leave(self, call: _Call) -> None:
        """Take a call out of its waiting list or off the agent it was ringing."""
        call.version += 1
        if call.state is CallState.WAITING and call.for_agent is not None:
            call.for_agent.personal.remove(call)
        elif call.state is CallState.WAITING:
            q = call.queue
            del q.waiting[call.order]
            line = q.classes[call.priority]
            line.remove(call.order)
            if line.count == 0:
                del q.classes[call.priority]
                q.prios.remove(call.priority)
        elif call.state is CallState.OFFERED:
            call.agent = None

    def _requeue(self, call: _Call, out: list[Command]) -> None:
        """Back to its queue in its original place: ahead of everyone who came later."""
        call.agent = None
        call.state = CallState.WAITING
        call.version += 1
        self._add_waiting(call)
        q = call.queue
        v = call.version
        for k in range(1, len(q.thresholds)):
            due = call.entered_at + q.thresholds[k]
            if due > self.now:
                self._schedule(due, _Timer.RELAX, call, v)
        if q.config.max_wait_s is not None:
            # Max wait counts this attempt only: a caller cut off mid-conversation is not
            # sent to voicemail for the time they spent talking.
            self._schedule(max(self.now, call.arrived_at + q.config.max_wait_s), _Timer.MAX_WAIT, call, v)
        if q.config.announce_every_s is not None:
            self._schedule(self.now + q.config.announce_every_s, _Timer.ANNOUNCE, call, v)
        self._route_call(call, out)

    def _route_call(self, call: _Call, out: list[Command]) -> None:
        if call.state is CallState.WAITING:
            self._try_offer(call, out, enqueue_first=True)

    def _try_offer(self, call: _Call, out: list[Command], *, enqueue_first: bool) -> bool:
        """Offer the call to the best idle agent qualified at its level, if any."""
        if call.for_agent is not None:
            if call.for_agent.state is not AgentState.READY:
                return False
            if enqueue_first:
                self._leave(call)
            self._offer(call, call.for_agent, out)
            return True
        q = call.queue
        top = q.level_of(call, self.now) if len(q.thresholds) > 1 else 0
        for level in range(top + 1):
            agent = self._pop_idle(q, level)
            if agent is None:
                continue
            if not enqueue_first:  # arriving: no waiting call can be due this agent
                self._offer(call, agent, out)
                return True
            # Already waiting (a relaxation step, a requeue): timers due at one instant
            # fire one by one, so an older call may have become eligible for this agent
            # at the same moment and not been routed yet. The agent takes the best
            # waiting call, as when they free up; if that was another, try again.
            best = self._best_call_for(agent) or call
            self._leave(best)
            self._offer(best, agent, out)
            if best is call:
                return True
            self._try_offer(call, out, enqueue_first=True)
            return True
        return False

    def _pop_idle(self, q: _Queue, level: int) -> _Agent | None:
        return q.idle[level].first()

    def _offer(self, call: _Call, agent: _Agent, out: list[Command]) -> None:
        self._leave_ready(agent)
        self._move(agent, Trigger.OFFER)
        agent.call = call
        agent.last_offer_seq = self._next_offer()
        call.agent = agent
        call.state = CallState.OFFERED
        call.version += 1
        out.append(ConnectToAgent(call.call_id, agent.profile.agent_id, call.queue.config.name))
        timeout = call.queue.config.ring_timeout_s
        if timeout is not None:
            self._schedule(self.now + timeout, _Timer.RING, call, call.version)

    def _become_ready(self, agent: _Agent, out: list[Command]) -> None:
        """The agent is free (login, pause over, wrap-up over, offer gone): pause if a
        pause is pending, else take the best waiting call, else join the idle heaps."""
        if agent.pending_pause is not None:
            reason, agent.pending_pause = agent.pending_pause, None
            self._set_state(agent, AgentState.PAUSED)
            agent.reason = reason
            return
        self._set_state(agent, AgentState.READY)
        agent.reason = ""
        agent.idle_since = self.now
        call = agent.personal[0] if agent.personal else self._best_call_for(agent)
        if call is not None:
            self._leave(call)
            self._offer(call, agent, out)  # never entered the heaps: nothing to invalidate
            return
        agent.epoch += 1
        agent_id = agent.profile.agent_id
        view = IdleAgent(agent_id, agent.idle_since, agent.talk_s_today, agent.last_offer_seq, 0.0)
        for q, level, match in agent.memberships:
            if q.uses_match:  # the fit differs per queue; other policies share one view
                view = IdleAgent(agent_id, agent.idle_since, agent.talk_s_today, agent.last_offer_seq, match)
            key = q.policy.key(view)
            if len(key) != q.key_len:
                self._first_key(q, key)
            line = q.idle[level]
            line.push((key[0] if q.key_len == 1 else key, agent.seq, agent.epoch, agent))
            line.live += 1
        agent.in_heaps = True

    @staticmethod
    def _first_key(q: _Queue, key: tuple[float, ...]) -> None:
        """Fix the queue's key length; a policy whose keys change length is refused: its
        heap would hold floats and tuples, which do not compare."""
        if q.key_len:
            raise RouterError(
                f"queue {q.config.name!r}: policy {q.config.policy!r} gave a key of {len(key)} "
                f"values after keys of {q.key_len}; a policy's keys must all have one length"
            )
        if not key:
            raise RouterError(f"queue {q.config.name!r}: policy {q.config.policy!r} gave an empty key")
        q.key_len = len(key)

    def _leave_ready(self, agent: _Agent) -> None:
        """The agent stops being idle: invalidate their heap entries (O(1) each)."""
        agent.epoch += 1
        if not agent.in_heaps:
            return
        agent.in_heaps = False
        for q, level, _ in agent.memberships:
            line = q.idle[level]
            line.live -= 1
            line.compact()

    def _best_call_for(self, agent: _Agent) -> _Call | None:
        """Highest priority first, then longest wait (or furthest past target), then FIFO."""
        best: _Call | None = None
        best_key: tuple[float, float, int] | None = None
        now = self.now
        ratio = self.call_selection == "target_ratio"
        for q, level, _ in agent.memberships:
            if not q.waiting:
                continue
            cutoff = now - q.thresholds[level]
            for prio in q.prios:
                head = q.classes[prio].first(q.waiting)
                if head.entered_at <= cutoff:  # relaxed far enough for this agent
                    wait = now - head.entered_at
                    score = wait / max(q.config.service_target_s, 1e-9) if ratio else wait
                    key = (float(prio), score, -head.order)
                    if best_key is None or key > best_key:
                        best, best_key = head, key
                    break
        return best

    def _ring_no_answer(self, agent: _Agent, call: _Call, out: list[Command]) -> None:
        self._move(agent, Trigger.RING_NO_ANSWER)
        agent.call = None
        agent.reason = self.rna_reason
        agent.pending_pause = None
        self._requeue(call, out)

    def _finish_talk(
        self, agent: _Agent, call: _Call, out: list[Command], *, keep_call: bool = False
    ) -> None:
        agent.talk_s_today += self.now - agent.talking_since
        agent.call = None
        self._check(agent, Trigger.CALL_ENDED)
        wrap = call.queue.config.wrap_up_s
        if not keep_call:
            call.version += 1
        if wrap == 0.0:
            # No after-call work: straight on (wrap_up -> ready is always legal, so the
            # zero-length wrap-up state is skipped rather than entered and left).
            agent.wrap_version += 1
            self._become_ready(agent, out)
            return
        self._set_state(agent, AgentState.WRAP_UP)
        if wrap is not None:
            agent.wrap_version += 1
            self._schedule(self.now + wrap, _Timer.WRAP, agent, agent.wrap_version)

    def _end_wrap_up(self, agent: _Agent, out: list[Command]) -> None:
        agent.wrap_version += 1
        self._check(agent, Trigger.WRAP_UP_DONE)
        self._become_ready(agent, out)

    def _overflow(self, call: _Call, reason: str, out: list[Command]) -> None:
        q = call.queue
        rule = q.config.overflow
        assert rule is not None
        wait = self.now - call.arrived_at
        personal = call.for_agent is not None and call in call.for_agent.personal
        if call.state is CallState.WAITING and (personal or q.waiting.get(call.order) is call):
            self._leave(call)
        else:  # "full": it never joined the waiting list
            call.version += 1
        q.stats.overflowed(self.now, wait)
        call.hops += 1
        moves = rule.action is OverflowAction.QUEUE and call.hops <= len(self._queues)
        # detail "full->billing" when the call moves into another queue, else the reason.
        self._record(
            call, CallOutcome.OVERFLOWED, wait, None, detail=f"{reason}->{rule.target}" if moves else reason
        )
        if moves:
            assert rule.target is not None
            call.for_agent = None  # another queue: another set of agents
            call.arrived_at = self.now
            call.order = self._next_seq()
            self._enter_queue(call, self._queues[rule.target], out)
            return
        action = rule.action if rule.action is not OverflowAction.QUEUE else OverflowAction.BUSY
        del self._calls[call.call_id]
        out.append(Overflow(call.call_id, q.config.name, action, reason))

    def _announce(self, call: _Call, out: list[Command]) -> None:
        pos = self.position(call.call_id)
        if pos is None:
            return
        ewt = self.expected_wait_s(call.call_id)
        out.append(Announce(call.call_id, pos, -1.0 if ewt is None else ewt))
        every = call.queue.config.announce_every_s
        assert every is not None
        self._schedule(self.now + every, _Timer.ANNOUNCE, call, call.version)

    def _record(
        self, call: _Call, outcome: CallOutcome, wait: float, agent: _Agent | None, detail: str = ""
    ) -> None:
        if not self._observers:
            return
        rec = CallRecord(
            call_id=call.call_id,
            queue=call.queue.config.name,
            arrived_at=call.arrived_at,
            left_at=self.now,
            outcome=outcome,
            wait_s=wait,
            agent_id=None if agent is None else agent.profile.agent_id,
            priority=call.priority,
            detail=detail,
        )
        for observer in self._observers:
            observer(rec)

    # --- agent state bookkeeping ------------------------------------------------------

    @staticmethod
    def _is_free(agent: _Agent) -> bool:
        """A call, not an inline test, where a callee may have given the agent a call.

        After ``agent.call = None`` mypy takes ``agent.call`` for None until the end of
        the function; the compiled build (setup.py) enforces such inferences at run
        time, so an inline test after a requeue that offered the call straight back
        would raise there.
        """
        return agent.call is None

    def _check(self, agent: _Agent, trigger: Trigger) -> AgentState:
        nxt = NEXT_STATE[trigger].get(agent.state)
        if nxt is None:
            raise IllegalTransitionError(agent.profile.agent_id, agent.state, trigger)
        return nxt

    def _move(self, agent: _Agent, trigger: Trigger) -> None:
        nxt = NEXT_STATE[trigger].get(agent.state)
        if nxt is None:
            raise IllegalTransitionError(agent.profile.agent_id, agent.state, trigger)
        if nxt is not agent.state:
            self._set_state(agent, nxt)

    def _set_state(self, agent: _Agent, state: AgentState) -> None:
        old = agent.state
        if old is state:
            return
        g = agent.group
        if self.now > g.last:
            g.flush(self.now)
        o_avail, o_busy, o_talk = _weights(old)
        n_avail, n_busy, n_talk = _weights(state)
        g.available += n_avail - o_avail
        g.busy += n_busy - o_busy
        g.talking += n_talk - o_talk
        agent.state = state
        agent.state_since = self.now

    def _count(self, agent: _Agent, sign: int) -> None:
        g = agent.group
        avail, busy, talk = _weights(agent.state)
        g.available += sign * avail
        g.busy += sign * busy
        g.talking += sign * talk

    def _flush_group(self, agent: _Agent) -> None:
        agent.group.flush(self.now)

    def _group(self, name: str) -> GroupStats:
        g = self._groups.get(name)
        if g is None:
            g = self._groups[name] = GroupStats(self.now)
        return g

    def _memberships(self, profile: AgentProfile) -> list[tuple[_Queue, int, float]]:
        candidates: dict[str, _Queue] = {q.config.name: q for q in self._open_queues}
        for skill in profile.skills:
            for q in self._skill_queues.get(skill, ()):
                candidates[q.config.name] = q
        out = []
        for q in candidates.values():
            level = q.config.qualifying_level(profile)
            if level is not None:
                out.append((q, level, q.config.match_score(profile)))
        return out

    # --- timers -------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _next_offer(self) -> int:
        self._offer_seq += 1
        return self._offer_seq

    def _next_head(self) -> int:
        self._head_seq += 1
        return self._head_seq

    def _schedule(self, due: float, kind: _Timer, obj: object, version: int) -> None:
        heappush(self._timers, (due, self._next_seq(), kind, obj, version))

    def _timer_valid(self, entry: tuple[float, int, _Timer, object, int]) -> bool:
        _, _, kind, obj, version = entry
        if kind is _Timer.WRAP:
            assert isinstance(obj, _Agent)
            return obj.wrap_version == version and obj.state is AgentState.WRAP_UP
        assert isinstance(obj, _Call)
        if obj.version != version or self._calls.get(obj.call_id) is not obj:
            return False
        if kind is _Timer.RING:
            return obj.state is CallState.OFFERED
        return obj.state is CallState.WAITING

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise RouterError(f"unknown queue {name!r}") from None

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise RouterError(f"unknown agent {agent_id!r} (register its profile first)") from None


Router._handlers = {
    CallArrived: Router._on_call_arrived,
    CallAnswered: Router._on_call_answered,
    CallEnded: Router._on_call_ended,
    CallerAbandoned: Router._on_call_ended,
    CallTransferred: Router._on_call_transferred,
    AgentLoggedIn: Router._on_logged_in,
    AgentLoggedOut: Router._on_logged_out,
    AgentPaused: Router._on_paused,
    AgentReady: Router._on_ready,
    AgentRingNoAnswer: Router._on_ring_no_answer,
    OfferFailed: Router._on_offer_failed,
    WrapUpDone: Router._on_wrap_up_done,
}
