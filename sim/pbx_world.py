"""The people around the simulated PBX, drawn from a scenario: callers and agents' hands.

A :class:`sim.scenario.Scenario` says how often callers arrive per queue, how patient
they are and how long they talk, and how fast each agent group picks up its phone. This
module turns that into what :class:`sim.pbx.Pbx` asks for: an :class:`AgentModel`
(``PJSIP/<group>-<k>`` phones, k = 1..count, as sim.engine names agents), per-queue
:class:`QueueDefaults`, and :class:`Arrivals`, which places Poisson callers in virtual
time. Randomness: one ``numpy`` generator per component, spawned from the seed, so a
seed gives the same callers whatever else happens (the times at which things happen on
the wall clock still depend on the event loop).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from sim.pbx import DEFAULT_MAX_HOLD_S, Pbx, QueueDefaults, Timer
from sim.scenario import QueueModel, Scenario
from sim.workload import Sampler, Uniform, poisson_arrivals


class ScenarioAgents:
    """The scenario's agents: logins are answered after ``answer_delay``; ring-per-call
    offers too, except that with ``no_answer_probability`` the phone is never answered."""

    def __init__(self, scenario: Scenario, streams: Callable[[], np.random.Generator]) -> None:
        self._group: dict[str, int] = {}
        self._delay: list[Sampler] = []
        self._no_answer: list[tuple[float, Uniform]] = []
        for gi, g in enumerate(scenario.agents):
            self._delay.append(Sampler(g.answer_delay, streams()))
            self._no_answer.append((g.no_answer_probability, Uniform(streams())))
            for k in range(g.count):
                self._group[f"{g.group}-{k + 1}"] = gi

    def knows(self, agent_id: str) -> bool:
        return agent_id in self._group

    def answer_delay_s(self, agent_id: str, *, ring_per_call: bool) -> float | None:
        gi = self._group[agent_id]
        if ring_per_call:
            p, draw = self._no_answer[gi]
            if p > 0 and draw.below(p):
                return None
        return max(0.0, self._delay[gi].next())


def _scaled(
    sampler: Sampler, scale: tuple[float, ...] | None, interval_s: float, elapsed: Callable[[], float]
) -> Callable[[], float]:
    """A sampler whose mean follows a forecast's per-interval column (a unit-mean shape x mean)."""
    if scale is None:
        return sampler.next

    def draw() -> float:
        i = min(int(elapsed() // interval_s), len(scale) - 1)
        return sampler.next() * scale[i]

    return draw


def queue_defaults(
    scenario: Scenario, streams: Callable[[], np.random.Generator], elapsed: Callable[[], float]
) -> dict[str, QueueDefaults]:
    out = {}
    for q in scenario.queues:
        handle = Sampler(q.handle_time, streams())
        patience = Sampler(q.patience, streams())
        max_wait = q.config.max_wait_s
        out[q.config.name] = QueueDefaults(
            priority=q.priority,
            # A queue's own limit, if any, with a margin so that ccd (not the dialplan) acts first.
            max_hold_s=DEFAULT_MAX_HOLD_S
            if max_wait is None
            else max(DEFAULT_MAX_HOLD_S, int(max_wait) + 60),
            handle_s=_scaled(handle, q.handle_scale, q.arrival_interval_s, elapsed),
            patience_s=_scaled(patience, q.patience_scale, q.arrival_interval_s, elapsed),
        )
    return out


class Arrivals:
    """Poisson callers for every queue of a scenario, placed on the PBX as virtual time passes."""

    def __init__(self, scenario: Scenario, pbx: Pbx, streams: Callable[[], np.random.Generator]) -> None:
        self.scenario = scenario
        self.pbx = pbx
        self._numbers = streams()
        self._plans: list[tuple[QueueModel, list[float]]] = []
        for q in scenario.queues:
            times = poisson_arrivals(streams(), np.asarray(q.rates_per_s), q.arrival_interval_s)
            self._plans.append((q, times[times < scenario.duration_s].tolist()))
        self._timers: dict[str, Timer] = {}  # the next arrival, per queue
        self._started_at = 0.0
        self.placed = 0

    def elapsed(self) -> float:
        return self.pbx.now() - self._started_at

    def start(self) -> None:
        self._started_at = self.pbx.now()
        for q, times in self._plans:
            self._next(q, iter(times))

    def stop(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

    def _next(self, q: QueueModel, times: Iterator[float]) -> None:
        at = next(times, None)
        if at is None:
            self._timers.pop(q.config.name, None)
            return

        def arrive() -> None:
            self._place(q)
            self._next(q, times)

        self._timers[q.config.name] = self.pbx.scheduler.after(max(0.0, at - self.elapsed()), arrive)

    def _place(self, q: QueueModel) -> None:
        defaults = self.pbx.queues[q.config.name]
        patience = defaults.patience_s()
        number = f"555{int(self._numbers.integers(0, 10**7)):07d}"
        self.pbx.place_call(
            q.config.name,
            caller=number,
            patience_s=None if math.isinf(patience) else patience,
            handle_s=defaults.handle_s(),
        )
        self.placed += 1


def build_world(scenario: Scenario | None, *, speed: float, seed: int) -> tuple[Pbx, Arrivals | None]:
    """A PBX peopled by the scenario (or by nobody: tests add agents and place calls)."""
    if scenario is None:
        return Pbx(speed=speed, seed=seed), None
    streams_seq = iter(
        np.random.SeedSequence(seed).spawn(2 + 2 * len(scenario.agents) + 3 * len(scenario.queues))
    )

    def streams() -> np.random.Generator:
        return np.random.default_rng(next(streams_seq))

    agents = ScenarioAgents(scenario, streams)
    holder: list[Arrivals] = []
    pbx = Pbx(speed=speed, seed=seed, agents=agents)
    pbx.queues.update(queue_defaults(scenario, streams, lambda: holder[0].elapsed() if holder else 0.0))
    arrivals = Arrivals(scenario, pbx, streams)
    holder.append(arrivals)
    return pbx, arrivals
