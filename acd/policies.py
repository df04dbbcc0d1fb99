"""Routing policies: which free agent gets a call, and which waiting call an agent gets.

Agent choice is an ordering: each policy gives every idle agent a sort key, fixed
for as long as the agent stays idle, and the router keeps idle agents in heaps by
that key, so a decision is a heap pop, never a scan. A planner adds a policy by
registering an object with a ``key`` method; a queue selects it by name.

Call choice, when an agent frees up and several calls wait for them: the highest
priority first; then the call that waited longest (``oldest``) or the one furthest
past its own queue's service target (``target_ratio``: wait / service_target_s), the
usual way to keep every queue near its target when agents serve several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from acd.errors import InputError
from acd.pickling import pickle_by_fields


@dataclass(init=False, unsafe_hash=True, slots=True)
class IdleAgent:
    """What a policy may look at when an agent becomes idle.

    Built each time an agent frees up, so written like the events (acd.events): a C
    constructor in the compiled build, immutable through ``Final``.
    """

    agent_id: Final[str]
    idle_since: Final[float]
    talk_s_today: Final[float]
    last_offer_seq: Final[int]  # order in which agents were last offered a call (0: never)
    match: Final[float]  # fit to the queue, 0..1 (mean proficiency over its skills)

    def __init__(
        self, agent_id: str, idle_since: float, talk_s_today: float, last_offer_seq: int, match: float
    ) -> None:
        self.agent_id = agent_id
        self.idle_since = idle_since
        self.talk_s_today = talk_s_today
        self.last_offer_seq = last_offer_seq
        self.match = match


class AgentPolicy(Protocol):
    """Smaller key = chosen first. The key must not change while the agent is idle,
    and all of a policy's keys have one length (the router refuses a change).

    A policy may set ``uses_match = False`` when its key ignores ``IdleAgent.match``:
    the router then builds one view per idle agent instead of one per queue.
    """

    def key(self, agent: IdleAgent) -> tuple[float, ...]: ...


class LongestIdle:
    """The agent idle the longest: fair, and the industry default."""

    uses_match = False

    def key(self, agent: IdleAgent) -> tuple[float, ...]:
        return (agent.idle_since,)


class MostSkilled:
    """The best-matching agent first; among equals, the longest idle."""

    def key(self, agent: IdleAgent) -> tuple[float, ...]:
        return (-agent.match, agent.idle_since)


class LeastTalkTime:
    """The agent with the least talk time today: evens out the work over a shift."""

    uses_match = False

    def key(self, agent: IdleAgent) -> tuple[float, ...]:
        return (agent.talk_s_today, agent.idle_since)


class RoundRobin:
    """The agent offered a call least recently, whatever they did since."""

    uses_match = False

    def key(self, agent: IdleAgent) -> tuple[float, ...]:
        return (float(agent.last_offer_seq),)


POLICIES: dict[str, AgentPolicy] = {
    "longest_idle": LongestIdle(),
    "most_skilled": MostSkilled(),
    "least_talk_time": LeastTalkTime(),
    "round_robin": RoundRobin(),
}

CALL_SELECTIONS = ("oldest", "target_ratio")


def register_policy(name: str, policy: AgentPolicy) -> None:
    """Make a policy selectable by name in queue settings."""
    if not name:
        raise InputError("policy", "a policy needs a name")
    POLICIES[name] = policy


def get_policy(name: str, *, where: str) -> AgentPolicy:
    try:
        return POLICIES[name]
    except KeyError:
        raise InputError(where, f"unknown policy {name!r} (known: {', '.join(sorted(POLICIES))})") from None


# Picklable in either build (acd.pickling), like the events.
pickle_by_fields(IdleAgent)
