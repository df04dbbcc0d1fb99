"""Strict reading of TOML settings shared by scenario files and the service config.

Both kinds of file describe queues the same way, so one parser reads them: a key
spelt wrong, or a value of the wrong type, is an :class:`InputError` naming its path
(``queues[1].wrap_up: '3x' is not a duration``) rather than a silently ignored line
that would make a plan or a live queue quietly different from what was written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from acd.durations import parse_duration
from acd.errors import InputError
from acd.events import OverflowAction
from acd.policies import POLICIES
from acd.queues import OverflowRule, QueueConfig, RelaxationStep


class TableReader:
    """Typed access to one TOML table that remembers which keys were used."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        if not isinstance(data, Mapping):
            raise InputError(where, "must be a table")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise InputError(self.at(key), "is required")
            return default
        return self.data[key]

    def duration(self, key: str, default: Any = ...) -> float:
        value = self.raw(key, default)
        if value is None:
            return math.nan
        return parse_duration(value, where=self.at(key))

    def number(
        self, key: str, default: Any = ..., *, minimum: float = 0.0, maximum: float = math.inf
    ) -> float:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(self.at(key), f"{value!r} is not a number")
        if not minimum <= value <= maximum:
            raise InputError(self.at(key), f"{value!r} must be between {minimum:g} and {maximum:g}")
        return float(value)

    def integer(self, key: str, default: Any = ..., *, minimum: int = 0) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(self.at(key), f"{value!r} is not a whole number")
        if value < minimum:
            raise InputError(self.at(key), f"{value!r} must be at least {minimum}")
        return value

    def text(self, key: str, default: Any = ...) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or not value:
            raise InputError(self.at(key), f"{value!r} is not a non-empty string")
        return value

    def table(self, key: str, default: Any = ...) -> TableReader | None:
        value = self.raw(key, default)
        if value is None:
            return None
        return TableReader(value, self.at(key))

    def tables(self, key: str) -> list[TableReader]:
        value = self.raw(key, [])
        if not isinstance(value, list):
            raise InputError(self.at(key), "must be an array of tables ([[...]])")
        return [TableReader(v, f"{self.at(key)}[{i}]") for i, v in enumerate(value)]

    def levels(self, key: str, default: Any = ...) -> dict[str, float]:
        value = self.raw(key, default)
        if not isinstance(value, Mapping):
            raise InputError(self.at(key), "must be a table of skill = level")
        out = {}
        for skill, level in value.items():
            if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 <= level <= 1:
                raise InputError(f"{self.at(key)}.{skill}", f"{level!r} must be a proficiency in 0..1")
            out[str(skill)] = float(level)
        return out

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(self.at(key), "must be a list of strings")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise InputError(self.at(unknown[0]), "unknown key")


def queue_config(q: TableReader, name: str, *, ring_timeout_default: str | float) -> QueueConfig:
    """The routing settings of one ``[[queues]]`` table; the caller reads its other keys.

    ``ring_timeout_default``: "none" where the PBX reports ring-no-answer itself (the
    simulator), a duration where the router's back-stop should be on by default.
    """
    skills = q.levels("skills", {name: 0.0})
    overflow = None
    ov = q.table("overflow", None)
    if ov is not None:
        action_name = ov.text("action")
        try:
            action = OverflowAction(action_name)
        except ValueError:
            known = ", ".join(a.value for a in OverflowAction)
            raise InputError(ov.at("action"), f"unknown action {action_name!r} (known: {known})") from None
        target = ov.text("target") if ov.has("target") else None
        ov.done()
        overflow = OverflowRule(action, target)
    relaxation = []
    for step in q.tables("relaxation"):
        relaxation.append(
            RelaxationStep(
                after_s=step.duration("after"),
                min_levels=step.levels("min_levels", {}),
                drop_skills=step.strings("drop_skills"),
                add_groups=step.strings("add_groups"),
            )
        )
        step.done()
    policy = q.text("policy", "longest_idle")
    if policy not in POLICIES:
        raise InputError(q.at("policy"), f"unknown policy {policy!r} (known: {', '.join(sorted(POLICIES))})")
    max_wait = q.duration("max_wait", None)
    max_length = q.integer("max_length", None) if q.has("max_length") else None
    ring_raw = q.raw("ring_timeout", ring_timeout_default)
    ring_timeout = math.nan if ring_raw == "none" else q.duration("ring_timeout", ring_timeout_default)
    return QueueConfig(
        name=name,
        skills=skills,
        service_target_s=q.duration("service_target", "20s"),
        max_wait_s=None if math.isnan(max_wait) else max_wait,
        max_length=max_length,
        overflow=overflow,
        wrap_up_s=q.duration("wrap_up", 0.0),
        policy=policy,
        relaxation=tuple(relaxation),
        groups=q.strings("groups"),
        short_abandon_s=q.duration("short_abandon", "5s"),
        ring_timeout_s=None if math.isnan(ring_timeout) else ring_timeout,
    )
