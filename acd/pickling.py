"""Pickling frozen dataclasses by their fields, the same whether compiled or not.

``ccd simulate --jobs`` sends scenarios to worker processes and gets run logs back.
An interpreted frozen, slotted dataclass unpickles by writing its slots directly; the
mypyc-compiled build (setup.py) restores them through ``__setattr__``, which freezing
forbids, so the worker fails. Rebuilding the object from its fields through its
constructor works in both builds, and runs the class's own checks again on the way.
"""

from __future__ import annotations

import copyreg
import dataclasses
from typing import Any


def _rebuild(cls: type[Any], values: dict[str, Any]) -> Any:
    return cls(**values)


def pickle_by_fields(*classes: type[Any]) -> None:
    """Register each dataclass to pickle as ``cls(**fields)`` (init fields only)."""
    for cls in classes:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.init)

        def reduce(obj: Any, names: tuple[str, ...] = names) -> tuple[Any, ...]:
            return _rebuild, (type(obj), {n: getattr(obj, n) for n in names})

        copyreg.pickle(cls, reduce)
