"""Queue settings: what a call needs, how long it may wait, and how the pool widens.

A queue requires skills at minimum proficiency levels. **Skill relaxation** widens
the pool as a call waits: each :class:`RelaxationStep` applies after ``after_s``
seconds of waiting and lowers minimum levels, drops a skill requirement or admits
more agent groups. Level 0 is the strict requirement; level k is after the k-th step.
An agent's *qualifying level* for a queue is the lowest level at which they fit, and
a call at level L may go to any agent whose qualifying level is <= L, the best
matched first: relaxation trades speed for match quality only when it must.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from acd.agents import AgentProfile
from acd.errors import InputError
from acd.events import OverflowAction
from acd.pickling import pickle_by_fields


@dataclass(frozen=True, slots=True)
class RelaxationStep:
    """After ``after_s`` of waiting: new minimum levels, dropped skills, more groups."""

    after_s: float
    min_levels: Mapping[str, float] = field(default_factory=dict)
    drop_skills: tuple[str, ...] = ()
    add_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OverflowRule:
    """Where calls go when the queue is full or a call waited ``max_wait_s``."""

    action: OverflowAction
    target: str | None = None  # the queue, for action QUEUE


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue. Durations in seconds; ``None`` means "no such limit".

    ``wrap_up_s``: after-call work after each call; ``None`` means until the agent says
    ready. ``policy`` names how an agent is picked when several are free (see
    acd.policies). ``groups``: the agent groups allowed at level 0 (empty: any).
    ``ring_timeout_s``: the ACD's own backstop for an agent who never answers nor is
    reported as ring-no-answer. ``announce_every_s``: position/expected-wait
    announcements to waiting callers.
    """

    name: str
    skills: Mapping[str, float] = field(default_factory=dict)
    service_target_s: float = 20.0
    max_wait_s: float | None = None
    max_length: int | None = None
    overflow: OverflowRule | None = None
    wrap_up_s: float | None = 0.0
    policy: str = "longest_idle"
    relaxation: tuple[RelaxationStep, ...] = ()
    groups: tuple[str, ...] = ()
    short_abandon_s: float = 5.0
    ring_timeout_s: float | None = 30.0
    announce_every_s: float | None = None

    def __post_init__(self) -> None:
        where = f"queue {self.name!r}"
        if not self.name:
            raise InputError("queue", "name must not be empty")
        for skill, level in self.skills.items():
            _level(f"{where}: skills.{skill}", level)
        for key in ("service_target_s", "short_abandon_s"):
            _seconds(f"{where}: {key}", getattr(self, key), allow_none=False)
        for key in ("max_wait_s", "wrap_up_s", "ring_timeout_s", "announce_every_s"):
            _seconds(f"{where}: {key}", getattr(self, key), allow_none=True)
        if self.announce_every_s is not None and self.announce_every_s <= 0:
            raise InputError(f"{where}: announce_every_s", "must be above 0")
        if self.ring_timeout_s is not None and self.ring_timeout_s <= 0:
            raise InputError(f"{where}: ring_timeout_s", "must be above 0")
        if self.max_length is not None and self.max_length < 0:
            raise InputError(f"{where}: max_length", f"{self.max_length!r} must be >= 0")
        if (self.max_wait_s is not None or self.max_length is not None) and self.overflow is None:
            raise InputError(f"{where}: overflow", "max_wait_s or max_length needs an overflow rule")
        if self.overflow is not None and (self.overflow.action is OverflowAction.QUEUE) != bool(
            self.overflow.target
        ):
            raise InputError(f"{where}: overflow", "a target queue goes with action 'queue' and only with it")
        if self.overflow is not None and self.overflow.target == self.name:
            raise InputError(f"{where}: overflow", "cannot overflow into itself")
        last = 0.0
        required = dict(self.skills)
        for i, step in enumerate(self.relaxation):
            at = f"{where}: relaxation[{i}]"
            if not math.isfinite(step.after_s) or not step.after_s > last:
                raise InputError(f"{at}.after_s", "steps must come after 0 and in increasing order")
            last = step.after_s
            for skill in step.drop_skills:
                if skill not in required:
                    raise InputError(f"{at}.drop_skills", f"{skill!r} is not required at this point")
                del required[skill]
            for skill, level in step.min_levels.items():
                _level(f"{at}.min_levels.{skill}", level)
                if skill not in required:
                    raise InputError(f"{at}.min_levels.{skill}", "relaxes a skill the queue does not require")
                if level > required[skill]:
                    raise InputError(f"{at}.min_levels.{skill}", "relaxation may only lower a level")
                required[skill] = level
            if step.add_groups and not self.groups:
                raise InputError(f"{at}.add_groups", "the queue admits every group already")

    def levels(self) -> list[tuple[float, dict[str, float], frozenset[str]]]:
        """(after_s, required skills, allowed groups) per relaxation level, 0 first."""
        skills = dict(self.skills)
        groups = set(self.groups)
        out = [(0.0, dict(skills), frozenset(groups))]
        for step in self.relaxation:
            for skill in step.drop_skills:
                del skills[skill]
            skills.update(step.min_levels)
            groups |= set(step.add_groups)
            out.append((step.after_s, dict(skills), frozenset(groups)))
        return out

    def qualifying_level(self, agent: AgentProfile) -> int | None:
        """The lowest relaxation level at which the agent may take this queue's calls."""
        if agent.queues and self.name not in agent.queues:
            return None
        for level, (_, skills, groups) in enumerate(self.levels()):
            if groups and agent.group not in groups:
                continue
            if all(agent.skills.get(s, -1.0) >= m for s, m in skills.items()):
                return level
        return None

    def match_score(self, agent: AgentProfile) -> float:
        """How well the agent fits (mean proficiency over the required skills, 0..1)."""
        if not self.skills:
            return max(agent.skills.values(), default=0.0)
        return sum(agent.skills.get(s, 0.0) for s in self.skills) / len(self.skills)


def _level(where: str, level: object) -> None:
    if not isinstance(level, (int, float)) or not math.isfinite(level) or not 0 <= level <= 1:
        raise InputError(where, f"{level!r} must be a proficiency in 0..1")


def _seconds(where: str, value: object, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(where, f"{value!r} must be a number of seconds >= 0")


# Sent to and from worker processes (ccd simulate --jobs); see acd.pickling.
pickle_by_fields(RelaxationStep, OverflowRule, QueueConfig)
