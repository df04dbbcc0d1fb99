"""VICIdial's adaptive dial level (ADAPT_HARD_LIMIT), as the pacing policy ``vicidial_adaptive``.

Why it is here: VICIdial is the dialer most of our users know, so "does ccd beat
VICIdial?" is the question the pacing benchmark answers. That comparison is only
honest if this is what VICIdial really does, so every rule below was read from its
source (github:inktel/Vicidial, commit 1278c1ca, 2013; ``bin/AST_VDadapt.pl`` v2.4,
which sets the level, and ``bin/AST_VDauto_dial.pl``, which turns the level into
calls) and is cited by file and line. Names in ``code`` are VICIdial's.

Theory of operation
-------------------
VICIdial splits pacing across two processes sharing a database. ``AST_VDadapt.pl``
loops once a second and every 15 s rewrites the campaign's ``auto_dial_level``
(calls in progress per agent); ``AST_VDauto_dial.pl`` loops every 2.5 s and places
``round(level × agents) − calls in progress`` calls. This policy plays both parts,
with all time taken from ``view.at``.

Sampling (``count_agents_lines``, AST_VDadapt.pl:704-790). Each loop of the adapt
script, while the hopper holds leads (:455), records three counts: ``ready_agents``
(agents in READY or DONE, :730), ``waiting_calls`` (the campaign's calls in status
LIVE: answered and waiting for an agent, :735) and ``total_agents`` (every agent of
the campaign seen in the last minute, *paused ones included*, :731). Their moving
averages are over the last 15 samples (:750-758), or over as many as exist early on
(:774-778). The loop sleeps ``--delay`` seconds, default 1 (:208, :562), so the
averages cover about 15 s. A loop in which the hopper was empty records nothing, and
the sums treat the missing sample as zeros (:746-748 index by the global loop
counter), so an empty hopper drags the averages down; this policy does the same.

Update (``calculate_dial_level``, AST_VDadapt.pl:1606-1840), when at least 15 s have
passed since the previous one (:472, reset at :557) and the average of logged-in
agents is above 0 (:463)::

    differential = ready_avg − waiting_avg                              (:779)
    target       = differential + adaptive_dl_diff_target               (:1693)
    step         = target / agents_avg   (0 if target or agents_avg is 0, :1694-1703)
    step'        = step × (1 + intensity/100)   if step ≥ 0             (:1713-1714)
                   step × |intensity/100 − 1|   if step < 0             (:1708-1712)
    level'       = sprintf("%.3f", level × (1 + step'))                 (:1723-1724)
    level'       = min(level', adaptive_maximum_level); max(level', 1)  (:1754-1763)
    if calls_last_minute > 20 and drops_last_minute / calls_last_minute > 50 %:
        level' = level' / 2                                             (:1773-1777)
    if calls_today > 50 and drops_today / answers_today > adaptive_dropped_percentage:
        level' = 1.0  (ADAPT_HARD_LIMIT; ADAPT_AVERAGE halves instead)  (:1778-1803)
    level' = max(level', 1)                                             (:1825-1830)

So a positive intensity makes the level climb faster and fall slower, a negative one
the reverse (admin.php offers −40 … 40); ``adaptive_dl_diff_target`` −1 aims at one
agent waiting on average, +1 at one customer waiting (admin.php help text).

Drop figures (``calculate_drops``, AST_VDadapt.pl:796-1220) are recomputed only
every 60 s (:466; the counter starts at 61, :91, so the first loop computes them), so
up to four level updates in a row use the same minute-old figures. "Calls" are all
dials logged in ``vicidial_log``; "drops" the DROP and XDROP statuses; "answers" the
statuses flagged human-answered. The last-minute rate is drops ÷ *calls* (:895), the
day's rate drops ÷ *answers* (:941, answers at least 1, :940), both rounded to two
decimals in percent (:896, :942) and only computed when there was a drop.

Calls to place (AST_VDauto_dial.pl:455-770). ``agents`` are the campaign's agents in
READY, DONE, QUEUE or INCALL (:356), i.e. *not* paused, less "dead" ones whose call
has gone (:634); ``goal = sprintf("%.0f", level × agents)`` (:667, :686); calls in
progress are the campaign's calls in SENT, RINGING, LIVE, XFER or CLOSER (:742): XFER
is a call handed to an agent (agi/agi-VDAD_ALL_outbound.agi:1938), so calls being
talked on count too, as do their agents. ``make = goal − existing`` (:767), placed
only when positive (:809) and at most as many as the hopper holds (:971).

Where the source differs from the usual summary (issue 6)
---------------------------------------------------------
- "agents" is not one number. The level update divides by the average of *all*
  logged-in agents, paused ones included (AST_VDadapt.pl:731, :778); the calls to
  place multiply the level by the *non-paused* agents right now, ready plus talking
  (AST_VDauto_dial.pl:356, :667), not by a moving average.
- "calls in progress" includes calls already connected to agents (status XFER,
  AST_VDauto_dial.pl:742), which is why agents on a call are in the multiplier: at
  level 1.0 the formula reduces to progressive dialling (ready − ringing − waiting).
- The 15 samples are taken once a second (AST_VDadapt.pl:208, :562), not once per
  15-second update; the update uses whatever the 15 most recent samples are.
- The intensity is asymmetric (AST_VDadapt.pl:1707-1714): it scales up-steps by
  ``1 + i/100`` and down-steps by ``1 − i/100``; it does not scale every step alike.
- The clamp to [1, max] comes *before* the drop rules (AST_VDadapt.pl:1754-1763,
  then :1773, :1778), and a final raise to 1.0 follows them (:1825-1830); so halving
  can never take the level under 1.0, and when the day is over target the level is
  1.0 whatever the minute did.
- The last-minute rule is drops ÷ *dials*, strictly over 50 % with strictly more than
  20 dials (:1773, :895); the day's rule is drops ÷ *human answers* compared with the
  target, after strictly more than 50 *dials* (:1778, :941), not 50 answers.
- Drop figures are refreshed every 60 s, not at each update (AST_VDadapt.pl:466).
- The suggested level is rounded to three decimals (:1724) and the goal with
  ``sprintf("%.0f")`` (AST_VDauto_dial.pl:686): half to even on the binary value,
  which is exactly Python's ``round``.
- No update happens while the hopper is empty (:455) or nobody is logged in (:463);
  the 15-s clock keeps running, so the first loop after that updates at once.

Not reproduced: ADAPT_TAPERED (needs server wall-clock time); blended campaigns
(``campaign_allow_inbound``, where the averages come from AST_VDauto_dial.pl's
20-sample ones, :874, and inbound calls count as calls in progress); the
``dial_level_threshold`` and ``available_only_tally_threshold`` overrides; trunk
limits; DEAD agents (our views have none); the refresh overrides that recompute drop
figures with no agents (:481-540): here they are refreshed every 60 s regardless.
``available_only_ratio_tally`` and ``dl_diff_target_method = CALLS_PLACED`` are
settings. Agents in wrap-up count as logged in but not as ready or talking: VICIdial's
agent screen keeps an agent out of READY/INCALL while they disposition a call. Our
``agents_ready`` stands for READY+DONE and ``humans_waiting`` for LIVE. The drop
limit is the campaign's ``abandon_target``, and ``max_level`` is capped by the
campaign's ``max_dial_level``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acd.errors import InputError
from dialer.pacing import (
    DEFAULT_MAX_DIAL_LEVEL,
    PacingPolicy,
    PacingView,
    clamp_dials,
    read_at_least,
    read_choice,
    read_flag,
    register_pacing,
    settings_reader,
)

SAMPLES = 15
"""Moving-average length (AST_VDadapt.pl:750-758)."""
SAMPLE_INTERVAL_S = 1.0
"""One sample per adapt loop; the loop's default delay (AST_VDadapt.pl:208, :562)."""
UPDATE_INTERVAL_S = 15.0
"""Seconds between dial-level updates (AST_VDadapt.pl:472)."""
DROP_STATS_INTERVAL_S = 60.0
"""Seconds between refreshes of the drop figures (AST_VDadapt.pl:466)."""
MINUTE_MIN_DIALS = 20
"""The last-minute rule needs strictly more dials than this (AST_VDadapt.pl:1773)."""
MINUTE_MAX_DROP_PCT = 50.0
"""Drops per dial in the last minute above which the level is halved (AST_VDadapt.pl:1773)."""
TODAY_MIN_DIALS = 50
"""The day's rule needs strictly more dials than this (AST_VDadapt.pl:1778)."""
INTENSITY_RANGE = (-40.0, 40.0)
"""What admin.php offers for ``adaptive_intensity``."""
DIFF_TARGET_RANGE = (-40, 40)
"""What admin.php offers for ``adaptive_dl_diff_target``."""


def _fixed(value: float, decimals: int) -> float:
    # Perl's sprintf("%.Nf") rounds the exact binary value half to even, as Python's
    # format does; going through the string keeps the two identical to the last digit.
    return float(f"{value:.{decimals}f}")


@dataclass(frozen=True, slots=True)
class AgentSample:
    """One loop's counts (AST_VDadapt.pl:730-748); all zero when the hopper was empty."""

    ready: int
    waiting: int
    logged_in: int

    @classmethod
    def of(cls, view: PacingView) -> AgentSample:
        if view.hopper_size <= 0:
            return cls(0, 0, 0)
        return cls(view.agents_ready, view.humans_waiting, view.agents_logged_in)


@dataclass(frozen=True, slots=True)
class DropStats:
    """The drop figures of one ``calculate_drops`` run, taken at ``taken_at``."""

    taken_at: float
    dials_last_minute: int
    drops_last_minute: int
    dials_today: int
    answers_today: int
    drops_today: int

    @classmethod
    def of(cls, view: PacingView) -> DropStats:
        return cls(
            taken_at=view.at,
            dials_last_minute=view.dials_last_minute,
            drops_last_minute=view.abandons_last_minute,
            dials_today=view.dials_today,
            answers_today=view.humans_today,
            drops_today=view.abandons_today,
        )

    @property
    def last_minute_pct(self) -> float:
        """``VCSdrops_one_pct``: drops ÷ dials in percent, 2 decimals, 0 without drops (:893-897)."""
        if self.dials_last_minute <= 0 or self.drops_last_minute <= 0:
            return 0.0
        return _fixed(self.drops_last_minute / self.dials_last_minute * 100, 2)

    @property
    def today_pct(self) -> float:
        """``VCSdrops_answers_today_pct``: drops ÷ max(answers, 1) in percent (:936-943)."""
        if self.dials_today <= 0 or self.drops_today <= 0:
            return 0.0
        return _fixed(self.drops_today / max(self.answers_today, 1) * 100, 2)


@dataclass(frozen=True, slots=True)
class AdaptStep:
    """One dial-level update with its intermediate figures: VICIdial's adaptive log, as a record."""

    at: float
    level_before: float
    ready_avg: float
    waiting_avg: float
    agents_avg: float
    differential_target: float
    step: float
    """``differential_mul``: the relative change before the intensity."""
    intensity_step: float
    """``intensity_diff_mul``: the relative change after it."""
    suggested: float
    """``intensity_dial_level`` before the cap, the floor and the drop rules."""
    halved_for_minute: bool
    over_limit_today: bool
    level: float
    """The new dial level."""


def adapt_level(
    *,
    at: float = 0.0,
    level: float,
    ready_avg: float,
    waiting_avg: float,
    agents_avg: float,
    drops: DropStats,
    drop_limit_pct: float,
    diff_target: float = 0.0,
    intensity: float = 0.0,
    max_level: float = DEFAULT_MAX_DIAL_LEVEL,
    method: str = "hard_limit",
) -> AdaptStep:
    """``calculate_dial_level`` for one ADAPT campaign (AST_VDadapt.pl:1690-1830); pure."""
    differential_target = (ready_avg - waiting_avg) + diff_target
    step = differential_target / agents_avg if differential_target != 0 and agents_avg != 0 else 0.0
    pct_raw = step * 100
    intensity_mul = intensity / 100
    # Asymmetric on purpose: a positive intensity speeds rises and slows falls.
    intensity_pct = pct_raw * abs(intensity_mul - 1) if pct_raw < 0 else pct_raw * (intensity_mul + 1)
    intensity_step = intensity_pct / 100
    suggested = _fixed(level * (intensity_step + 1), 3)
    new = suggested
    if new > max_level:
        new = max_level
    if new < 1:
        new = 1.0
    halved = drops.dials_last_minute > MINUTE_MIN_DIALS and drops.last_minute_pct > MINUTE_MAX_DROP_PCT
    if halved:
        new = new / 2
    over_today = drops.dials_today > TODAY_MIN_DIALS and drops.today_pct > drop_limit_pct
    if over_today:
        new = 1.0 if method == "hard_limit" else new / 2
    if new < 1:
        new = 1.0
    return AdaptStep(
        at=at,
        level_before=level,
        ready_avg=ready_avg,
        waiting_avg=waiting_avg,
        agents_avg=agents_avg,
        differential_target=differential_target,
        step=step,
        intensity_step=intensity_step,
        suggested=suggested,
        halved_for_minute=halved,
        over_limit_today=over_today,
        level=new,
    )


def calls_to_place(*, level: float, agents: int, existing: int) -> int:
    """``goal − existing`` with ``goal = sprintf("%.0f", level × agents)`` (AST_VDauto_dial.pl:667-767).

    May be negative (too many calls out): the dialer then places none.
    """
    return round(level * agents) - existing


class VicidialAdaptive:
    """The ADAPT_HARD_LIMIT dial method, one instance per campaign (state: level, samples, clocks)."""

    def __init__(
        self,
        *,
        initial_level: float = 1.0,
        max_level: float = DEFAULT_MAX_DIAL_LEVEL,
        intensity: float = 0.0,
        diff_target: int = 0,
        diff_target_method: str = "adapt_calc_only",
        method: str = "hard_limit",
        available_only: bool = False,
    ) -> None:
        if not (math.isfinite(max_level) and max_level >= 1):
            raise ValueError(f"max_level must be finite and >= 1 (got {max_level!r})")
        if not 1 <= initial_level <= max_level:
            raise ValueError(f"initial_level must be in 1..max_level (got {initial_level!r})")
        if method not in ("hard_limit", "average"):
            raise ValueError(f"method must be hard_limit or average (got {method!r})")
        if diff_target_method not in ("adapt_calc_only", "calls_placed"):
            raise ValueError(
                f"diff_target_method must be adapt_calc_only or calls_placed (got {diff_target_method!r})"
            )
        self.level = initial_level
        self.max_level = max_level
        self.intensity = intensity
        self.diff_target = diff_target
        self.diff_target_method = diff_target_method
        self.method = method
        self.available_only = available_only
        self.samples: deque[AgentSample] = deque(maxlen=SAMPLES)
        self.drops: DropStats | None = None
        self.last_step: AdaptStep | None = None
        self._origin: float | None = None  # time of the first view: the sampling grid starts there
        self._next_k = 0  # index of the next grid instant to sample
        self._prev: AgentSample | None = None
        self._clock_from = 0.0  # the 15-s update clock counts from here

    # --- the moving averages -------------------------------------------------------

    def averages(self) -> tuple[float, float, float]:
        """(ready, waiting, logged-in) averaged over the samples held (AST_VDadapt.pl:761-779)."""
        n = len(self.samples)
        if n == 0:
            return (0.0, 0.0, 0.0)
        return (
            sum(s.ready for s in self.samples) / n,
            sum(s.waiting for s in self.samples) / n,
            sum(s.logged_in for s in self.samples) / n,
        )

    def _sample(self, view: PacingView) -> None:
        # VICIdial samples once a second whatever happens; we are called when the driver
        # likes, so we fill the one-second grid from the first view on: an instant before
        # ``view.at`` gets the state of the previous view (it held until now), an instant
        # at ``view.at`` gets this one.
        current = AgentSample.of(view)
        if self._origin is None:
            self._origin = view.at
            self._clock_from = view.at
        before = max(0, math.ceil((view.at - self._origin) / SAMPLE_INTERVAL_S))
        missed = before - self._next_k
        if missed > 0 and self._prev is not None:
            for _ in range(min(missed, SAMPLES)):
                self.samples.append(self._prev)
        self._next_k = max(self._next_k, before)
        if self._origin + self._next_k * SAMPLE_INTERVAL_S <= view.at:
            self.samples.append(current)
            self._next_k += 1
        self._prev = current

    # --- the policy ----------------------------------------------------------------

    def dials_now(self, view: PacingView) -> int:
        self._sample(view)
        if self.drops is None or view.at - self.drops.taken_at >= DROP_STATS_INTERVAL_S:
            self.drops = DropStats.of(view)
        ready_avg, waiting_avg, agents_avg = self.averages()
        due = view.at - self._clock_from >= UPDATE_INTERVAL_S
        if due and view.hopper_size > 0 and agents_avg > 0:
            self.last_step = adapt_level(
                at=view.at,
                level=self.level,
                ready_avg=ready_avg,
                waiting_avg=waiting_avg,
                agents_avg=agents_avg,
                drops=self.drops,
                drop_limit_pct=view.abandon_target * 100,
                diff_target=self.diff_target,
                intensity=self.intensity,
                max_level=min(self.max_level, view.max_dial_level),
                method=self.method,
            )
            self.level = self.last_step.level
            self._clock_from = view.at
        return clamp_dials(self._calls(view), view)

    def _calls(self, view: PacingView) -> int:
        if self.available_only:
            # Only ready agents are multiplied; the calls agents are talking on are added
            # to the goal and subtracted again as existing (AST_VDauto_dial.pl:668-684).
            agents = view.agents_ready
            existing = view.calls_in_progress
        else:
            talking = view.agents_talking
            agents = view.agents_ready + talking
            existing = view.calls_in_progress + talking
        if self.diff_target_method == "calls_placed":
            agents = max(0, agents + self.diff_target)  # AST_VDauto_dial.pl:662-665
        return calls_to_place(level=self.level, agents=agents, existing=existing)


def _vicidial_adaptive(settings: Mapping[str, Any], *, where: str) -> PacingPolicy:
    reader = settings_reader(settings, where)
    max_level = read_at_least(reader, "max_level", DEFAULT_MAX_DIAL_LEVEL, 1.0)
    initial_level = reader.number("initial_level", 1.0, minimum=1.0, maximum=max_level)
    low, high = INTENSITY_RANGE
    intensity = reader.number("intensity", 0.0, minimum=low, maximum=high)
    dlow, dhigh = DIFF_TARGET_RANGE
    diff_target = reader.integer("diff_target", 0, minimum=dlow)
    if diff_target > dhigh:
        raise InputError(reader.at("diff_target"), f"{diff_target} must be between {dlow} and {dhigh}")
    policy = VicidialAdaptive(
        initial_level=initial_level,
        max_level=max_level,
        intensity=intensity,
        diff_target=diff_target,
        diff_target_method=read_choice(
            reader, "diff_target_method", "adapt_calc_only", ("adapt_calc_only", "calls_placed")
        ),
        method=read_choice(reader, "method", "hard_limit", ("hard_limit", "average")),
        available_only=read_flag(reader, "available_only", False),
    )
    reader.done()
    return policy


register_pacing("vicidial_adaptive", _vicidial_adaptive)
