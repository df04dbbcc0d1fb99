"""Staffing: the fewest agents that meet every target, per interval, then shrinkage.

Each target is monotone in the number of agents n: service level rises, ASA,
abandonment and occupancy fall (the hypothesis tests check this). So "all targets
met" is false below some n* and true from n* on, and a bisection over n finds n*
in O(log n*) evaluations, all intervals at once (one vectorised Erlang call per step).
The upper end is found by galloping (doubling a step above the lower bound), so a
20,000-Erlang interval costs ~30 evaluations, never a scan from 1.

Lower bounds: with Erlang C an interval needs more agents than its load (else the
queue grows without end), so the search starts at floor(load) + 1. With Erlang A
callers who give up keep the queue finite and any n >= 1 is a candidate; that is how
Erlang A can meet a service level with fewer agents than the load, by letting callers
abandon, which is why ``p_abandon`` is always reported next to the staffing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from acd.erlang import QueueKPIs, erlang_a_kpis, erlang_c_kpis
from acd.errors import InfeasibleTargetError, InputError

# Doublings of the galloping step before a target is declared out of reach: 2**60
# agents is past any load a double can describe.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True, slots=True)
class StaffingTargets:
    """What an interval must achieve; None means "no such target".

    service_level is a fraction (0.8 for 80 %) of offered calls answered within
    target_s. The other targets are ceilings: ASA of answered calls, share of
    callers who abandon (Erlang A only), and agent occupancy.
    """

    service_level: float | None = None
    target_s: float = 20.0
    max_asa_s: float | None = None
    max_abandon: float | None = None
    max_occupancy: float | None = None

    def __post_init__(self) -> None:
        if self.service_level is not None and not 0.0 < self.service_level < 1.0:
            raise InfeasibleTargetError(
                "service level",
                f"{self.service_level * 100:g} % must be above 0 % and below 100 % "
                "(no staffing answers every call within a fixed time)",
            )
        if not math.isfinite(self.target_s) or self.target_s < 0.0:
            raise InputError("service level time", f"{self.target_s!r} must be >= 0 seconds")
        if self.max_asa_s is not None and not self.max_asa_s > 0.0:
            raise InfeasibleTargetError("ASA", "a maximum ASA must be above 0 seconds")
        if self.max_abandon is not None and not 0.0 < self.max_abandon <= 1.0:
            raise InfeasibleTargetError("max abandon", f"{self.max_abandon!r} must be above 0 and at most 1")
        if self.max_occupancy is not None and not 0.0 < self.max_occupancy <= 1.0:
            raise InputError("max occupancy", f"{self.max_occupancy!r} must be above 0 and at most 1")

    @property
    def any(self) -> bool:
        return any(
            t is not None for t in (self.service_level, self.max_asa_s, self.max_abandon, self.max_occupancy)
        )


@dataclass(frozen=True, slots=True)
class StaffingPlan:
    """Agents per interval, the figures they achieve, and heads to schedule."""

    agents: NDArray[np.int64]
    kpis: QueueKPIs
    scheduled: NDArray[np.int64]
    model: str


def evaluate(
    *,
    agents: ArrayLike,
    load: ArrayLike,
    aht_s: ArrayLike,
    target_s: ArrayLike,
    patience_s: ArrayLike | None = None,
) -> QueueKPIs:
    """Figures for a given staffing: Erlang A when patience is given, else Erlang C.

    An interval with no load needs nobody and has nothing to measure: its figures are
    those of a perfect queue (no wait, service level 1) and occupancy 0.
    """
    n, a, h, t = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (agents, load, aht_s, target_s))
    )
    pat = None if patience_s is None else np.broadcast_to(np.asarray(patience_s, dtype=np.float64), n.shape)
    shape = n.shape
    n, a, h, t = (x.ravel() for x in (n, a, h, t))
    busy = a > 0
    fields: dict[str, Any] = {
        "agents": n.copy(),
        "load_erlangs": a.copy(),
        "p_wait": np.zeros_like(a),
        "p_abandon": np.zeros_like(a),
        "service_level": np.ones_like(a),
        "service_level_of_answered": np.ones_like(a),
        "asa_s": np.zeros_like(a),
        "mean_wait_s": np.zeros_like(a),
        "occupancy": np.zeros_like(a),
    }
    if np.any(busy):
        if pat is None:
            k = erlang_c_kpis(agents=n[busy], load=a[busy], aht_s=h[busy], target_s=t[busy])
        else:
            k = erlang_a_kpis(
                agents=n[busy],
                load=a[busy],
                aht_s=h[busy],
                patience_s=pat.ravel()[busy],
                target_s=t[busy],
            )
        for name, arr in fields.items():
            arr[busy] = getattr(k, name)
    reshaped = {name: _unwrap(arr.reshape(shape)) for name, arr in fields.items()}
    return QueueKPIs(**reshaped)


def _unwrap(x: NDArray[np.float64]) -> Any:
    return x[()] if x.ndim == 0 else x


def _meets(k: QueueKPIs, targets: StaffingTargets) -> NDArray[np.bool_]:
    ok = np.ones(np.shape(k.agents), dtype=bool)
    if targets.service_level is not None:
        ok &= np.asarray(k.service_level) >= targets.service_level
    if targets.max_asa_s is not None:
        ok &= np.asarray(k.asa_s) <= targets.max_asa_s
    if targets.max_abandon is not None:
        ok &= np.asarray(k.p_abandon) <= targets.max_abandon
    if targets.max_occupancy is not None:
        ok &= np.asarray(k.occupancy) <= targets.max_occupancy
    return ok


def required_agents(
    *,
    load: ArrayLike,
    aht_s: ArrayLike,
    targets: StaffingTargets,
    patience_s: ArrayLike | None = None,
) -> NDArray[np.int64]:
    """The smallest agent count meeting all targets, per interval (0 where load is 0)."""
    if not targets.any:
        raise InputError("targets", "give at least one target (service level, ASA, abandon, occupancy)")
    if targets.max_abandon is not None and patience_s is None:
        raise InputError(
            "max abandon", "an abandonment target needs a patience (Erlang A); Erlang C callers never give up"
        )
    a = np.atleast_1d(np.asarray(load, dtype=np.float64))
    h = np.broadcast_to(np.asarray(aht_s, dtype=np.float64), a.shape)
    pat = None if patience_s is None else np.broadcast_to(np.asarray(patience_s, dtype=np.float64), a.shape)
    if np.any(~np.isfinite(a)) or np.any(a < 0):
        raise InputError("load", "must be finite and >= 0")

    def ok(n: NDArray[np.float64], idx: NDArray[np.intp]) -> NDArray[np.bool_]:
        k = evaluate(
            agents=n,
            load=a[idx],
            aht_s=h[idx],
            target_s=targets.target_s,
            patience_s=None if pat is None else pat[idx],
        )
        return _meets(k, targets)

    result = np.zeros(a.shape, dtype=np.int64)
    idx = np.flatnonzero(a > 0)
    if idx.size == 0:
        return result
    # floor: known to fail (Erlang C needs more agents than Erlangs; Erlang A at least one).
    floor = np.floor(a[idx]) if pat is None else np.zeros(idx.size)
    guess = _guess(a[idx], h[idx], targets)
    guess = np.maximum(guess, floor + 1.0)
    # One exact evaluation of guess - 1 and guess for every interval at once: when the
    # guess is right, as it nearly always is, the search ends here.
    pair = ok(np.concatenate([guess - 1.0, guess]), np.concatenate([idx, idx]))
    below_ok = pair[: idx.size] & (guess - 1.0 > floor)  # floor itself is known to fail
    guess_ok = pair[idx.size :]
    lo = np.where(guess_ok, np.where(below_ok, floor, guess - 1.0), guess)
    hi = np.where(guess_ok, np.where(below_ok, guess - 1.0, guess), np.inf)
    up = ~guess_ok
    if up.any():
        lo[up], hi[up] = _gallop(lambda n, rows: ok(n, idx[rows]), lo[up], np.sqrt(a[idx][up]), up)
    while True:
        gap = hi - lo > 1.0
        if not gap.any():
            break
        mid = np.floor((lo[gap] + hi[gap]) / 2.0)
        good = ok(mid, idx[gap])
        sub_lo, sub_hi = lo[gap], hi[gap]
        sub_hi[good] = mid[good]
        sub_lo[~good] = mid[~good]
        lo[gap], hi[gap] = sub_lo, sub_hi
    result[idx] = hi.astype(np.int64)
    return result


def _gallop(
    ok: Callable[[NDArray[np.float64], NDArray[np.intp]], NDArray[np.bool_]],
    lo: NDArray[np.float64],
    scale: NDArray[np.float64],
    rows_mask: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """From failing lo, double a step until a passing hi; returns (lo, hi)."""
    rows = np.flatnonzero(rows_mask)
    lo = lo.copy()
    step = np.maximum(1.0, np.ceil(scale))
    hi = lo + step
    passing = ok(hi, rows)
    for _ in range(_MAX_DOUBLINGS):
        if passing.all():
            return lo, hi
        fail = ~passing
        lo[fail] = hi[fail]
        step[fail] *= 2.0
        hi[fail] = lo[fail] + step[fail]
        passing[fail] = ok(hi[fail], rows[fail])
    raise InfeasibleTargetError("targets", "no number of agents meets them")


def _guess(
    load: NDArray[np.float64], aht_s: NDArray[np.float64], targets: StaffingTargets
) -> NDArray[np.float64]:
    """Erlang C staffing from scipy's incomplete gamma: fast, and nearly always exact.

    scipy's gammaincc loses accuracy in the far tails of very large shapes, so this is
    only a starting point; the exact search confirms or corrects it.
    """
    a = load

    def ok(n: NDArray[np.float64]) -> NDArray[np.bool_]:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            log_r = np.log(special.gammaincc(n, a)) - (special.xlogy(n, a) - a - special.gammaln(n + 1))
            c = special.expit(-(np.log1p(-a / n) + log_r))
            excess = n - a
            good = excess > 0
            if targets.service_level is not None:
                good &= 1.0 - c * np.exp(-excess * targets.target_s / aht_s) >= targets.service_level
            if targets.max_asa_s is not None:
                good &= c * aht_s / excess <= targets.max_asa_s
            if targets.max_occupancy is not None:
                good &= a / n <= targets.max_occupancy
        return good

    lo = np.floor(a)
    hi = lo + np.maximum(1.0, np.ceil(np.sqrt(a)))
    for _ in range(_MAX_DOUBLINGS):
        fail = ~ok(hi)
        if not fail.any():
            break
        lo[fail] = hi[fail]
        hi[fail] += 2.0 * (hi[fail] - np.floor(a[fail]))
    while (gap := hi - lo > 1.0).any():
        mid = np.floor((lo + hi) / 2.0)
        good = ok(mid)
        hi = np.where(gap & good, mid, hi)
        lo = np.where(gap & ~good, mid, lo)
    return hi


def scheduled_heads(agents: ArrayLike, *, shrinkage: float) -> NDArray[np.int64]:
    """Heads to schedule so that, after shrinkage (breaks, training, absence), enough remain."""
    if not 0.0 <= shrinkage < 1.0:
        raise InputError("shrinkage", f"{shrinkage!r} must be at least 0 and below 1")
    n = np.asarray(agents, dtype=np.float64)
    # Guard against 10 / (1 - 0.5) = 20.000000000000004 rounding up to 21.
    return np.ceil(n / (1.0 - shrinkage) - 1e-9).astype(np.int64)


def plan(
    *,
    load: ArrayLike,
    aht_s: ArrayLike,
    targets: StaffingTargets,
    patience_s: ArrayLike | None = None,
    shrinkage: float = 0.0,
) -> StaffingPlan:
    """Staff every interval and report what the staffing achieves."""
    agents = required_agents(load=load, aht_s=aht_s, targets=targets, patience_s=patience_s)
    kpis = evaluate(
        agents=agents,
        load=np.atleast_1d(np.asarray(load, dtype=np.float64)),
        aht_s=aht_s,
        target_s=targets.target_s,
        patience_s=patience_s,
    )
    model = "erlang-c" if patience_s is None else "erlang-a"
    return StaffingPlan(
        agents=agents, kpis=kpis, scheduled=scheduled_heads(agents, shrinkage=shrinkage), model=model
    )
