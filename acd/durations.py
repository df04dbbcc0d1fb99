"""Durations as people write them: ``180``, ``"180s"``, ``"3m"``, ``"1h30m"``, ``"250ms"``.

A bare number is seconds. Every parse error names the place it came from, because a
duration with no unit ("is 3 minutes or 3 seconds?") is the commonest config mistake.
"""

from __future__ import annotations

import math
import re

from acd.errors import InputError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)")
_NUMBER = re.compile(r"[+-]?(\d+(?:\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_duration(value: str | float | int, *, where: str = "duration") -> float:
    """Seconds in ``value``; raises InputError naming ``where`` if it is not a duration.

    Negative durations are rejected here: no duration in a contact centre is negative,
    and a sign is more often a typo than an intent.
    """
    if isinstance(value, bool):
        raise InputError(where, f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            compact = text.replace(" ", "")
            parts = _PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise InputError(
                    where,
                    f"{value!r} is not a duration (use e.g. 180, 180s, 3m, 1h30m)",
                )
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds):
        raise InputError(where, f"{value!r} is not a finite duration")
    if seconds < 0:
        raise InputError(where, f"{value!r} is negative")
    return seconds
