"""Workload models: arrivals, handle times, patience, ring times.

Every random component takes a ``numpy.random.Generator`` and draws in blocks
(``sample(rng, n)``), so the simulator's per-call cost is an array read, not a
Python-level random call. Distributions are parameterised the way planners talk:
a mean and a coefficient of variation, not a scale and a shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from acd.pickling import pickle_by_fields

FloatArray = NDArray[np.float64]


class Distribution(Protocol):
    """A non-negative random duration (seconds)."""

    @property
    def mean(self) -> float: ...

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class Exponential:
    mean: float

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        return rng.exponential(self.mean, n)


@dataclass(frozen=True, slots=True)
class Fixed:
    mean: float

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        return np.full(n, self.mean)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Lognormal with the given mean and coefficient of variation (sd / mean)."""

    mean: float
    cv: float

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean) - sigma2 / 2
        return rng.lognormal(mu, math.sqrt(sigma2), n)


@dataclass(frozen=True, slots=True)
class Gamma:
    """Gamma with the given mean and coefficient of variation (cv = 1: exponential)."""

    mean: float
    cv: float

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean / shape, n)


@dataclass(frozen=True, slots=True)
class Empirical:
    """Resampling of observed durations (a bootstrap of, e.g., last month's calls)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        return rng.choice(np.asarray(self.values, dtype=np.float64), n)


@dataclass(frozen=True, slots=True)
class Never:
    """Patience of callers who never hang up."""

    mean: float = math.inf

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        return np.full(n, math.inf)


class Sampler:
    """Draws from a distribution in blocks: the simulator's cheap ``next()``."""

    __slots__ = ("_block", "_buf", "_dist", "_i", "_rng")

    def __init__(self, dist: Distribution, rng: np.random.Generator, block: int = 4096) -> None:
        self._dist = dist
        self._rng = rng
        self._block = block
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._dist.sample(self._rng, self._block).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


class Uniform:
    """Block-drawn uniform numbers for Bernoulli trials (does this agent answer?)."""

    __slots__ = ("_buf", "_i", "_rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def below(self, p: float) -> bool:
        """True with probability ``p``; draws nothing when ``p`` is 0."""
        if p <= 0.0:
            return False
        if self._i >= len(self._buf):
            self._buf = self._rng.random(4096).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v < p

    def next(self) -> float:
        """A uniform number in [0, 1) (for a choice among several outcomes)."""
        if self._i >= len(self._buf):
            self._buf = self._rng.random(4096).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


def poisson_arrivals(
    rng: np.random.Generator, rates_per_s: FloatArray, interval_s: float, start: float = 0.0
) -> FloatArray:
    """Arrival times of a Poisson process with piecewise-constant rates.

    Exact: the count in each interval is Poisson(rate x length) and, given the count,
    the times are uniform in the interval. A constant rate is one long interval.
    """
    counts = rng.poisson(np.asarray(rates_per_s) * interval_s)
    starts = start + interval_s * np.arange(len(counts))
    times = np.repeat(starts, counts) + rng.uniform(0.0, interval_s, int(counts.sum()))
    times.sort()
    return times


# Sent to and from worker processes (ccd simulate --jobs); see acd.pickling.
pickle_by_fields(Exponential, Fixed, LogNormal, Gamma, Empirical, Never)
