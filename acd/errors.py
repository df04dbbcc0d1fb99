"""The error family for bad input reaching the cores from people and files.

Why one type: the CLI turns it into a single stderr line and exit code 2, the HTTP
layer into a 4xx body, and both need the *place* (a flag, a file and line, a config
key) kept apart from the *problem* so each can format it its own way.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input that cannot be used: ``where`` names the place, ``problem`` what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


class InfeasibleTargetError(InputError):
    """Targets that no number of agents can meet (e.g. a 100 % service level)."""


class RouterError(Exception):
    """A driver told the ACD something impossible (an unknown call, an answer by an
    agent nobody offered the call to). The driver is wrong, not the input data: it
    should log it and resynchronise, not show it to a person."""
