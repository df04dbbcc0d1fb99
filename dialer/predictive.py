"""The ``predictive`` pacing policy: as many calls as keep each new human's risk of
hearing silence below a threshold that feedback steers to the abandonment target.

Why this model
--------------
A blind dialer (a fixed ratio, or VICIdial's level that follows averages) treats the
agents as a pool with a rate; but whether the next human finds an agent depends on
*these* agents and *these* calls: an agent 9 minutes into a call with a 5-minute mean
is nearly free, a call that has rung 20 s is unlikely to be answered. The view carries
exactly that (DESIGN §5), so the policy predicts the next seconds call by call.

The model
---------
Let now be 0, ``τ`` = 2 s the legal tolerance, and ``s`` a time in the next seconds
(a 1-s grid up to the longest launch-to-answer time seen).

*Supply* ``S(u)``: agents who will have been free by ``u``: the ready ones, ``R``, plus a
Bernoulli per busy agent, free by ``u`` with probability ``q_i(u)``. For an agent talking
for ``a`` seconds, with talk time ``T`` and wrap-up ``W`` from the campaign's recent
samples, ``q(u) = P(T − a + W ≤ u | T > a)``: the elapsed time *conditions* the
remaining time. For an agent in wrap-up for ``w`` seconds, ``q(u) = P(W − w ≤ u | W > w)``.

*Demand* ``D(s)``: humans who will have claimed an agent by ``s``: the ``h`` waiting now;
a Bernoulli per ringing call of age ``r``, a human by ``s`` with probability

    c(r, s) = p·[F_H(r + s) − F_H(r)] / (p·[1 − F_H(r)] + (1 − p)·[1 − F_O(r)])

(``p`` the human-answer rate, ``F_H`` the launch-to-human-answer distribution, ``F_O``
the launch-to-end distribution of calls that reach no human: a call that has rung long
is mostly a no-answer); ``k`` new calls, each a human by ``s`` with probability
``p·F_H(s)``; and, for blended agents, Poisson(λ·s) inbound calls taking agents.

*Risk of the marginal call.* The ``(k+1)``-th new call launched now reaches a human at
a time ``s ~ F_H`` (with probability ``p``) and is put through if an agent is free for
it within ``τ``, i.e. if supply by ``s + τ`` exceeds the humans ahead of it:

    a(k) = Σ_s  ΔF_H(s) · P( S(s + τ) − D_k(s) ≤ 0 )

That is the call's own risk; a call answered before a crowd is safe itself but
takes the agent a later answer needed, so the risk used is also at least the call's
addition to the expected shortfall at the end of the horizon ``H``, per human:

    r(k) = max( a(k), (A(k+1) − A(k)) / p ),   A(k) = E[(D_k(H) − S(H + τ))⁺]

``S − D`` is a sum of independent Bernoullis (and a Poisson): for small teams its
distribution is computed exactly by convolution on the grid, for large ones with the
normal approximation and a continuity correction (the sum of hundreds of terms), plus
the variance of the estimate of ``p``, which moves every call's humans together.

*Decision.* Launch ``k`` calls, the largest number with

    r(m) ≤ θ for every m < k,        E_pending + p·Σ_{m<k} r(m) ≤ B,
    in progress + busy + k ≤ max_dial_level × working agents,

and, on a team inbound calls do not share, never fewer than progressive would.
``B = target·humans − abandons`` over the compliance window is what it can still
absorb, and ``E_pending`` the expected abandons among calls already ringing or
waiting: pacing never *plans* to exceed the target, even early in a campaign when
``B`` is a fraction of one call (it then dials progressively until enough humans
have answered).

*Feedback.* ``θ = target · e^g``. Each settled human answer moves ``g`` by a
stochastic-approximation step towards the aim (``aim`` × target, 0.85 by default):
``g += η·(aim·target − X)/(aim·target)`` with ``X`` = 1 for an abandon, 0 for a
connect, so ``g`` stops moving exactly when the measured abandon rate equals the aim.
The model's own biases (independence, the FIFO approximation) are corrected by this
loop rather than by hand-tuned constants.

*Small slack.* The threshold is also capped by :func:`safe_risk`: the per-human risk
that keeps the chance of the window *ever* exceeding the target below ``ruin``
(Lundberg's bound on the random walk of the slack), so a window with one abandon of
slack is not broken by one unlucky call.

*Uncertainty.* Talk and wrap-up times are Kaplan–Meier estimates (:class:`Survival`)
in which the calls running now are censored observations: finished calls alone are
biased short at the start of a shift. Below ``min_dials`` completed dials, without talk
and answer-time samples, or until finished calls have rung as long as the ringing ones
(and the legal 15 s), the policy dials progressively. Above, ``p`` is replaced by its
upper two-sigma Wilson bound: with few samples, fewer calls, not more abandons.

``docs/pacing.md`` has the same model with its equations typeset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from dialer.campaign import CONNECT_TOLERANCE_S, MIN_RING_S
from dialer.pacing import (
    HumanOutcome,
    PacingPolicy,
    PacingView,
    clamp_dials,
    read_at_least,
    register_pacing,
    settings_reader,
)

Array = NDArray[np.float64]

GRID_S = 1.0
MAX_HORIZON_S = 120.0
WRAP_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
EXACT_LIMIT = 40
"""Up to this many random terms (busy agents + ringing calls), ``S − D`` is convolved
exactly; above it the normal approximation is within the feedback loop's reach."""


class Predictive:
    """See the module docstring for the model; one instance per campaign."""

    def __init__(
        self,
        *,
        aim: float = 0.85,
        step: float = 0.01,
        min_dials: int = 50,
        gain_range: tuple[float, float] = (0.05, 20.0),
        margin: float = 1.0,
        ruin: float = 0.02,
        tolerance_s: float = CONNECT_TOLERANCE_S,
    ) -> None:
        if not 0 < aim <= 1:
            raise ValueError(f"aim must be in (0, 1] (got {aim!r})")
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"step must be > 0 (got {step!r})")
        if min_dials < 1:
            raise ValueError(f"min_dials must be >= 1 (got {min_dials!r})")
        low, high = gain_range
        if not 0 < low <= 1 <= high:
            raise ValueError(f"gain_range must straddle 1 (got {gain_range!r})")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be >= 0 (got {margin!r})")
        if not 0 < ruin < 1:
            raise ValueError(f"ruin must be in (0, 1) (got {ruin!r})")
        self.aim = aim
        self.margin = margin
        self.ruin = ruin
        self.step = step
        self.min_dials = min_dials
        self.log_gain_range = (math.log(low), math.log(high))
        self.tolerance_s = tolerance_s
        self.log_gain = 0.0
        self.target: float | None = None
        self.last: Decision | None = None

    @property
    def threshold(self) -> float:
        """θ: the largest risk of abandon a new call may carry now."""
        target = 0.03 if self.target is None else self.target
        return min(1.0, target * math.exp(self.log_gain))

    def observe(self, event: object) -> None:
        if not isinstance(event, HumanOutcome) or self.target is None:
            return
        aim = self.aim * self.target
        x = 1.0 if event.abandoned else 0.0
        low, high = self.log_gain_range
        self.log_gain = min(high, max(low, self.log_gain + self.step * (aim - x) / aim))

    def dials_now(self, view: PacingView) -> int:
        self.target = view.abandon_target
        progressive = max(0, view.agents_ready - view.calls_in_progress)
        working = view.agents_ready + len(view.busy)
        est = view.estimates
        if (
            est.dials < self.min_dials
            or not est.ring_to_answer_s
            or not est.talk_s
            or est.human_rate <= 0.0
            or working == 0
            or not _covers_ringing(view)
        ):
            self.last = Decision("progressive", progressive, 0.0, 0.0, 0.0, self.threshold)
            return clamp_dials(progressive, view)
        cap = math.floor(view.max_dial_level * working) - view.calls_in_progress - len(view.busy)
        cap = min(max(0, cap), view.hopper_size)
        budget = view.abandon_target * view.humans_window - view.abandons_window
        model = _Model(view, self.tolerance_s)
        # The feedback's threshold, scaled down when the window has little slack: the
        # risk a human may run is what keeps the chance of ever exceeding the target
        # below ``ruin`` (see safe_risk), relative to the risk the feedback aims at.
        safe = safe_risk(budget, view.abandon_target, self.ruin)
        theta = self.threshold * min(1.0, safe / (self.aim * view.abandon_target))
        risks = model.marginal_risks(cap, stop_above=theta)
        pending = model.pending
        k = 0
        # Abandons to come are a sum of Bernoullis: plan on their mean plus ``margin``
        # standard deviations, so a small team's window (a budget of one or two
        # abandons) is not overrun by an unlucky pair. Pending calls count as Poisson.
        spent, var = pending, pending
        while k < min(cap, len(risks)):
            risk = float(risks[k])
            x = model.p * risk
            if risk > theta or spent + x + self.margin * math.sqrt(var + x * (1 - x)) > budget:
                break
            spent += x
            var += x * (1 - x)
            k += 1
        mode = "predictive"
        # Covering a ready agent is safe only if nothing else can take that agent
        # while the call rings: not so for blended agents, whom inbound calls take.
        if k < progressive and view.competing_rate_per_s == 0.0:
            k, mode = progressive, "progressive floor"
        self.last = Decision(mode, k, float(risks[0]), pending, spent, theta)
        return clamp_dials(k, view)


def safe_risk(slack: float, target: float, ruin: float) -> float:
    """The abandon risk per human that keeps P(the window ever exceeds ``target``)
    at most ``ruin``, with ``slack`` = target × humans − abandons now.

    Each human moves the slack by ``+target`` (connected) or ``target − 1`` (abandoned,
    probability ``r``): a random walk, ruined below 0. By Lundberg's inequality the
    ruin probability is at most ``exp(−R·slack)`` where ``R`` solves
    ``(1 − r)·e^(−R·target) + r·e^(R·(1 − target)) = 1``; asking for ``ruin`` fixes
    ``R = ln(1/ruin)/slack`` and gives the largest ``r`` directly. It is 0 with no
    slack, about 0.005 with one abandon of slack (target 3 %, ruin 2 %), and tends to
    ``target`` as the slack grows.
    """
    if slack <= 0:
        return 0.0
    rate = math.log(1.0 / ruin) / slack
    if rate * (1 - target) > 700:  # e^700: no risk is small enough to matter
        return 0.0
    low = math.exp(-rate * target)
    return (1.0 - low) / (math.exp(rate * (1.0 - target)) - low)


class Decision:
    """Why the last answer was what it was (for logs, the API and tests)."""

    __slots__ = ("dials", "first_risk", "mode", "pending", "planned", "threshold")

    def __init__(
        self, mode: str, dials: int, first_risk: float, pending: float, planned: float, threshold: float
    ) -> None:
        self.mode = mode
        self.dials = dials
        self.first_risk = first_risk  # risk of the first new call
        self.pending = pending  # expected abandons among calls already out
        self.planned = planned  # pending + the expected abandons of the calls launched (predictive mode)
        self.threshold = threshold

    def __repr__(self) -> str:
        return (
            f"Decision({self.mode}: {self.dials} calls, first risk {self.first_risk:.4f}, "
            f"pending {self.pending:.3f}, planned {self.planned:.3f}, θ {self.threshold:.4f})"
        )


class _Model:
    """The supply and demand of one view on the time grid (see the module docstring)."""

    def __init__(self, view: PacingView, tolerance_s: float) -> None:
        est = view.estimates
        n = est.dials
        # Upper two-sigma Wilson bound of the human-answer rate: few samples, fewer calls.
        p_hat = est.human_rate
        z = 2.0
        centre = (p_hat + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p_hat * (1 - p_hat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        self.p = min(1.0, centre + half)
        # The estimate's own error is common to every call: it moves all their humans
        # together, so it adds variance in the square of their number (see _normal).
        self.p_relative_error = math.sqrt(max(p_hat * (1 - p_hat), 1e-12) / n) / max(self.p, 1e-12)
        self.human = np.sort(np.asarray(est.ring_to_answer_s, dtype=np.float64))
        self.other = np.sort(np.asarray(est.other_ring_s, dtype=np.float64))
        self.talk = np.sort(np.asarray(est.talk_s, dtype=np.float64))
        finished_wraps = np.asarray(est.wrap_s, dtype=np.float64)
        running_wraps = np.asarray([b.wrap_s for b in view.busy if b.wrap_s is not None], dtype=np.float64)
        # Agents wrapping up now are censored wrap-up times, as running calls are for
        # talk: the first wrap-ups of a shift are known to last *at least* this long.
        self.wrap = Survival(finished_wraps, running_wraps)
        # Five wrap-up quantiles stand in for its distribution in the convolution with talk
        # (no wrap-up seen at all, finished or running: the queue has none).
        has_wrap = len(finished_wraps) + len(running_wraps) > 0
        self.wrap_points = self.wrap.quantiles(WRAP_QUANTILES) if has_wrap else np.zeros(1)
        horizon = min(MAX_HORIZON_S, float(self.human[-1]) + GRID_S)
        self.s = np.arange(GRID_S, horizon + GRID_S / 2, GRID_S)  # answer times of the new call
        f = _ecdf(self.human, self.s)
        self.weights = np.diff(np.concatenate(([0.0], f)))
        self.weights[-1] += 1.0 - f[-1]
        self.f_new = f
        self.u = self.s + tolerance_s  # the supply that counts for an answer at s
        self.ready = view.agents_ready
        self.waiting = view.humans_waiting
        self.q = self._supply(view)  # (busy, grid)
        self.c = self._ringing(view)  # (ringing, grid)
        self.competing = view.competing_rate_per_s * self.s
        self.pending = 0.0  # A(0), set by marginal_risks

    # --- the pieces --------------------------------------------------------------

    def _supply(self, view: PacingView) -> Array:
        busy = view.busy
        if not busy:
            return np.zeros((0, len(self.u)))
        talking = np.asarray([b.talk_s for b in busy if b.wrap_s is None], dtype=np.float64)
        wrapping = np.asarray([b.wrap_s for b in busy if b.wrap_s is not None], dtype=np.float64)
        rows = []
        if len(talking):
            # Calls still going are censored observations of the talk time: leaving them
            # out would learn only from the calls short enough to have ended already.
            talk = Survival(self.talk, talking)
            acc = np.zeros((len(talking), len(self.u)))
            for w in self.wrap_points:
                acc += talk.residual(talking, self.u - w)
            rows.append(acc / len(self.wrap_points))
        if len(wrapping):
            rows.append(self.wrap.residual(wrapping, self.u))
        return np.vstack(rows)

    def _ringing(self, view: PacingView) -> Array:
        if not view.ringing:
            return np.zeros((0, len(self.s)))
        r = np.asarray(view.ringing, dtype=np.float64)
        p = self.p
        f_r = _ecdf(self.human, r)
        alive = p * (1.0 - f_r) + (1.0 - p) * (1.0 - _ecdf(self.other, r) if len(self.other) else 1.0)
        later = _ecdf(self.human, r[:, None] + self.s[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(alive[:, None] > 1e-12, p * (later - f_r[:, None]) / alive[:, None], 0.0)
        return np.clip(c, 0.0, 1.0)

    # --- risks -------------------------------------------------------------------

    def marginal_risks(self, cap: int, stop_above: float = 1.0) -> Array:
        """``r(m)`` for m = 0 … cap: the risk the (m+1)-th new call adds, per human it
        brings; non-decreasing in m. The larger of two parts:

        * its own chance of finding no agent: ``a(m)``, the humans answered before it
          against the agents free by its answer plus ``τ`` (timing);
        * what it adds to the shortfall at the end of the horizon, per human:
          ``(A(m+1) − A(m)) / p`` with ``A(k) = E[(D_k(H) − S(H + τ))⁺]``. A call likely
          to be answered before a crowd is safe itself, but takes the agent a later
          answer needed: this part sees bursts that the first misses.

        Sets :attr:`pending`: expected abandons among the calls already out. The exact
        computation stops after the first risk above ``stop_above``.
        """
        x = self.p * self.f_new  # each new call: a human by s
        cap = max(cap, 0)
        if self.q.shape[0] + self.c.shape[0] <= EXACT_LIMIT and self.competing.max(initial=0.0) < 5.0:
            own, end = self._exact(cap, x, stop_above)
        else:
            own, end = self._normal(cap, x)
        risks = np.maximum(own, np.diff(end) / self.p)
        humans_coming = float(self.c[:, -1].sum()) if self.c.size else 0.0
        self.pending = max(float(end[0]), self.waiting_shortfall() + humans_coming * float(own[0]))
        return np.asarray(risks, dtype=np.float64)

    def _normal(self, cap: int, x: Array) -> tuple[Array, Array]:
        # S − D: supply by s + τ minus demand by s, as a normal with its mean and variance.
        base_mean = self.ready + self.q.sum(axis=0) - self.waiting - self.c.sum(axis=0) - self.competing
        base_var = (self.q * (1 - self.q)).sum(axis=0) + (self.c * (1 - self.c)).sum(axis=0) + self.competing
        m = np.arange(cap + 2, dtype=np.float64)[:, None]
        mean = base_mean[None, :] - m * x[None, :]
        humans = self.c.sum(axis=0)[None, :] + m * x[None, :]  # expected humans by s
        var = (
            base_var[None, :]
            + m * (x * (1 - x))[None, :]
            + (self.p_relative_error * humans) ** 2  # an error in p moves them all at once
        )
        sd = np.sqrt(np.maximum(var, 1e-12))
        # P(S − D ≤ 0) for an integer S − D: continuity correction at 0.5.
        own = ndtr((0.5 - mean[:-1]) / sd[:-1]) @ self.weights
        end = _normal_shortfall(mean[:, -1], var[:, -1])
        return np.asarray(own, dtype=np.float64), end

    def _exact(self, cap: int, x: Array, stop_above: float) -> tuple[Array, Array]:
        grid = len(self.s)
        n_down = self.c.shape[0] + cap + 1 + self.waiting + _poisson_width(self.competing)
        width = self.ready + self.q.shape[0] + n_down + 1
        dist = np.zeros((grid, width))
        zero = n_down  # index of S − D = 0 before the ready agents are added
        dist[:, zero + self.ready - self.waiting] = 1.0
        for qi in self.q:
            dist = _shifted(dist, qi[:, None], up=True)
        for ci in self.c:
            dist = _shifted(dist, ci[:, None], up=False)
        if self.competing.max(initial=0.0) > 0:
            dist = _minus_poisson(dist, self.competing)
        shortfall = np.maximum(0.0, zero - np.arange(width, dtype=np.float64))  # humans lost at x
        own: list[float] = []
        end = [float(dist[-1] @ shortfall)]
        x_col = x[:, None]
        for _ in range(cap + 1):
            own.append(float(dist[:, : zero + 1].sum(axis=1) @ self.weights))
            dist = _shifted(dist, x_col, up=False)
            end.append(float(dist[-1] @ shortfall))
            if max(own[-1], (end[-1] - end[-2]) / self.p) > stop_above:
                break
        return np.asarray(own), np.asarray(end)

    def waiting_shortfall(self) -> float:
        """Expected humans lost among those waiting now (they have τ at most)."""
        if not self.waiting:
            return 0.0
        mean = self.ready + float(self.q[:, 0].sum()) if self.q.size else float(self.ready)
        var = float((self.q[:, 0] * (1 - self.q[:, 0])).sum()) if self.q.size else 0.0
        return float(_normal_shortfall(np.asarray([mean - self.waiting]), np.asarray([var]))[0])


class Survival:
    """Kaplan–Meier survival of a duration from finished samples and running ones.

    Why not the plain empirical distribution: the calls that ended recently are biased
    towards short ones (at the start of a shift, *only* short calls have ended), and
    the calls agents are on right now say "at least this long". Kaplan–Meier uses both.
    Beyond the longest finished sample the tail is exponential, with the censored
    maximum-likelihood mean (all time observed ÷ finished samples).
    """

    def __init__(self, finished: Array, running: Array) -> None:
        finished = np.sort(finished)
        running = np.sort(running)
        times, counts = np.unique(finished, return_counts=True)
        n_f, n_r = len(finished), len(running)
        at_risk = (n_f - np.searchsorted(finished, times, side="left")) + (
            n_r - np.searchsorted(running, times, side="left")
        )
        self.times = times
        self.surv = np.cumprod(1.0 - counts / np.maximum(at_risk, 1)) if len(times) else np.ones(0)
        exposure = float(finished.sum() + running.sum())
        self.tail_mean = max(exposure / n_f if n_f else max(exposure, 60.0), 1.0)

    def at(self, x: Array) -> Array:
        """S(x) = P(duration > x)."""
        times = self.times
        if len(times) == 0:
            return np.asarray(np.exp(-np.maximum(x, 0.0) / self.tail_mean), dtype=np.float64)
        idx = np.searchsorted(times, x, side="right") - 1
        s = np.where(idx >= 0, self.surv[np.maximum(idx, 0)], 1.0)
        last_t, last_s = float(times[-1]), float(self.surv[-1])
        beyond = x > last_t
        if last_s > 0 and beyond.any():
            s = np.where(beyond, last_s * np.exp(-(x - last_t) / self.tail_mean), s)
        return np.asarray(s, dtype=np.float64)

    def quantiles(self, levels: tuple[float, ...]) -> Array:
        """The smallest x with P(duration ≤ x) ≥ level, for each level."""
        out = np.empty(len(levels))
        for i, level in enumerate(levels):
            left = 1.0 - level  # S(x) must be at or below this
            hit = np.flatnonzero(self.surv <= left) if len(self.surv) else np.zeros(0, dtype=np.int64)
            if len(hit):
                out[i] = self.times[hit[0]]
            else:
                last_t = float(self.times[-1]) if len(self.times) else 0.0
                last_s = float(self.surv[-1]) if len(self.surv) else 1.0
                out[i] = last_t + self.tail_mean * math.log(last_s / left)
        return out

    def residual(self, elapsed: Array, horizon: Array) -> Array:
        """P(X − a ≤ v | X > a) for each elapsed ``a`` (rows) and ``v`` (columns)."""
        base = self.at(elapsed)[:, None]
        later = self.at(elapsed[:, None] + np.maximum(horizon, 0.0)[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(base > 0, 1.0 - later / base, 1.0)
        return np.where(horizon[None, :] < 0, 0.0, np.clip(q, 0.0, 1.0))


def _normal_shortfall(mean: Array, var: Array) -> Array:
    """E[(−X)⁺] for X ~ Normal(mean, var), elementwise: the expected humans lost when
    supply minus demand is X (for an integer X, the normal with a continuity
    correction gives the same expression)."""
    sd = np.sqrt(np.maximum(var, 1e-12))
    z = -mean / sd
    return np.asarray(-mean * ndtr(z) + sd * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi), dtype=np.float64)


def _covers_ringing(view: PacingView) -> bool:
    """Have finished calls rung as long as the calls ringing now, and at least the
    legal minimum ring time? Until then the ring-time samples hold only the calls quick
    enough to have finished (at the start of a run, the first few seconds of the first
    calls) and would make every ringing call look like a lost cause."""
    est = view.estimates
    seen = max(max(est.ring_to_answer_s, default=0.0), max(est.other_ring_s, default=0.0))
    return seen >= max(MIN_RING_S, max(view.ringing, default=0.0))


def _shifted(dist: Array, prob: Array, *, up: bool) -> Array:
    """Each row's distribution plus (up) or minus one Bernoulli(prob[row])."""
    out = dist * (1.0 - prob)
    if up:
        out[:, 1:] += dist[:, :-1] * prob
    else:
        out[:, :-1] += dist[:, 1:] * prob
    return out


def _ecdf(sorted_samples: Array, at: Array) -> Array:
    if len(sorted_samples) == 0:
        return np.zeros_like(at, dtype=np.float64)
    return np.searchsorted(sorted_samples, at, side="right") / len(sorted_samples)


def _poisson_width(means: Array) -> int:
    top = float(means.max(initial=0.0))
    return 0 if top <= 0 else int(top + 6 * math.sqrt(top) + 6)


def _minus_poisson(dist: Array, means: Array) -> Array:
    """Subtract an independent Poisson(means[row]) from each row's distribution."""
    width = _poisson_width(means)
    ks = np.arange(width + 1)
    out = np.zeros_like(dist)
    log_fact = np.cumsum(np.log(np.maximum(ks, 1)))
    for row, lam in enumerate(means):
        if lam <= 0:
            out[row] = dist[row]
            continue
        pmf = np.exp(ks * math.log(lam) - lam - log_fact)
        for k, w in enumerate(pmf):
            if k == 0:
                out[row] += w * dist[row]
            else:
                out[row, :-k] += w * dist[row, k:]
                out[row, 0] += w * dist[row, :k].sum()
    return out


def _predictive(settings: Mapping[str, Any], *, where: str) -> PacingPolicy:
    reader = settings_reader(settings, where)
    aim = reader.number("aim", 0.85, minimum=0.05, maximum=1.0)
    step = read_at_least(reader, "step", 0.01, 1e-4)
    min_dials = int(read_at_least(reader, "min_dials", 50, 1))
    margin = read_at_least(reader, "margin", 1.0, 0.0)
    ruin = reader.number("ruin", 0.02, minimum=1e-6, maximum=0.5)
    reader.done()
    return Predictive(aim=aim, step=step, min_dials=min_dials, margin=margin, ruin=ruin)


register_pacing("predictive", _predictive)
