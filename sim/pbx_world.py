"""The people around the simulated PBX, drawn from a scenario: callers and agents' hands.

A :class:`sim.scenario.Scenario` says how often callers arrive per queue, how patient
they are and how long they talk, and how fast each agent group picks up its phone. This
module turns that into what :class:`sim.pbx.Pbx` asks for: an :class:`AgentModel`
(``PJSIP/<group>-<k>`` phones, k = 1..count, as sim.engine names agents), per-queue
:class:`QueueDefaults`, and :class:`Arrivals`, which places Poisson callers in virtual
time. Randomness: one ``numpy`` generator per component, spawned from the seed, so a
seed gives the same callers whatever else happens (the times at which things happen on
the wall clock still depend on the event loop).

Outbound, the people ccd calls are :class:`OutboundCustomers`: who answers a number
(a human, a machine, or busy / no answer / congestion / unallocated, by probability),
after how long, what ``AMD()`` makes of them, how long a human waits on hold for an
agent and talks to one. A scenario's ``[[campaigns]]`` give one model per campaign
(:meth:`OutboundCustomers.from_campaign_model`); :class:`CalleeMix` picks a model by
campaign or number prefix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from sim.pbx import DEFAULT_MAX_HOLD_S, Callee, CalleeModel, Pbx, QueueDefaults, Timer
from sim.scenario import ANSWER_KINDS, CampaignModel, QueueModel, Scenario
from sim.workload import Distribution, Exponential, Fixed, LogNormal, Sampler, Uniform, poisson_arrivals


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


# What AMD() says, and after how long, as captured on Asterisk 22.10 with the amd.conf
# defaults (ami_capture2, scenario 5): a short "hello" then silence, a long greeting, and
# no decision within the 5 s analysis time.
AMD_HUMAN = ("HUMAN", "HUMAN-800-800", 1.53)
AMD_MACHINE = ("MACHINE", "MAXWORDS-3-2", 2.40)
AMD_TALKATIVE_HUMAN = ("MACHINE", "LONGGREETING-1500-1500", 2.00)  # "Hello, this is Jo speaking..."
AMD_NOTSURE = ("NOTSURE", "TOOLONG-4900", 5.02)

# Defaults, as the scenario's campaigns have them (patience: outbound callees hang up soon).
_RING = LogNormal(8.0, 0.5)
_FAIL = Fixed(3.0)
_TALK = LogNormal(150.0, 0.7)
_PATIENCE = Exponential(5.0)
_MACHINE = Fixed(5.0)


@dataclass(frozen=True, slots=True)
class _Draws:
    """The random streams of one OutboundCustomers (one per component, as sim.outbound does,
    so that changing say the AMD accuracy leaves the talk times alone)."""

    kind: Uniform
    amd: Uniform
    ring: Sampler
    fail: Sampler
    talk: Sampler
    patience: Sampler
    machine: Sampler


@dataclass(frozen=True, slots=True)
class OutboundCustomers:
    """The callees of an outbound campaign, for ``Pbx.outbound_customers``.

    The ``p_*`` say how a dial ends and must sum to 1: a human or a machine answers
    after ``ring_s``; busy, congestion and an unallocated (``invalid``) number are
    signalled after ``fail_s``; ``no_answer`` rings out. ``AMD()`` gets a callee right
    with ``amd_accuracy``, except that with ``p_notsure`` it cannot decide (NOTSURE
    after its whole 5 s). A human on hold hangs up after ``patience_s`` (outbound
    callees did not ask to wait: a few seconds) unless an agent takes them, then
    talks ``talk_s``; a machine AMD lets through plays its greeting for ``machine_s``
    and hangs up. ``seed`` makes the draws repeatable: each model instance has its own
    streams, drawn in dial order.
    """

    p_human: float = 0.30
    p_machine: float = 0.20
    p_busy: float = 0.08
    p_no_answer: float = 0.37
    p_congestion: float = 0.0
    p_invalid: float = 0.05
    ring_s: Distribution = _RING
    fail_s: Distribution = _FAIL
    talk_s: Distribution = _TALK
    patience_s: Distribution = _PATIENCE
    machine_s: Distribution = _MACHINE
    amd_accuracy: float = 1.0
    p_notsure: float = 0.0
    seed: int = 1
    _draws: _Draws = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        probs = self.probabilities
        for kind, p in probs.items():
            if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
                raise ValueError(f"OutboundCustomers.p_{kind}: {p!r} is not a probability in [0, 1]")
        total = sum(probs.values())
        if abs(total - 1.0) > 1e-9:
            terms = " + ".join(f"p_{k}" for k in probs)
            raise ValueError(f"OutboundCustomers: {terms} = {total:g}, not 1")
        for name in ("amd_accuracy", "p_notsure"):
            p = getattr(self, name)
            if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
                raise ValueError(f"OutboundCustomers.{name}: {p!r} is not a probability in [0, 1]")
        for name in ("ring_s", "fail_s", "talk_s", "patience_s", "machine_s"):
            dist = getattr(self, name)
            mean = getattr(dist, "mean", None)
            usable = callable(getattr(dist, "sample", None)) and isinstance(mean, (int, float)) and mean >= 0
            if not usable:
                raise ValueError(f"OutboundCustomers.{name}: {dist!r} is not a duration distribution")
        if not isinstance(self.seed, int):
            raise ValueError(f"OutboundCustomers.seed: {self.seed!r} is not an integer")
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(7)]
        draws = _Draws(
            kind=Uniform(rngs[0]),
            amd=Uniform(rngs[1]),
            ring=Sampler(self.ring_s, rngs[2]),
            fail=Sampler(self.fail_s, rngs[3]),
            talk=Sampler(self.talk_s, rngs[4]),
            patience=Sampler(self.patience_s, rngs[5]),
            machine=Sampler(self.machine_s, rngs[6]),
        )
        object.__setattr__(self, "_draws", draws)

    @property
    def probabilities(self) -> Mapping[str, float]:
        """``p_*`` by callee kind, in ANSWER_KINDS order."""
        return MappingProxyType({k: getattr(self, f"p_{k}") for k in ANSWER_KINDS})

    @classmethod
    def from_campaign_model(
        cls, model: CampaignModel, *, seed: int = 1, patience_s: Distribution | None = None
    ) -> OutboundCustomers:
        """A scenario campaign's callees: its ``answer`` probabilities, ``ring_time``,
        ``fail_time``, ``talk``, ``machine_talk`` and ``amd_accuracy`` (scenarios have no
        hold patience for callees: ``patience_s``, default exponential 5 s)."""
        a = model.answer
        return cls(
            p_human=a.human,
            p_machine=a.machine,
            p_busy=a.busy,
            p_no_answer=a.no_answer,
            p_congestion=a.congestion,
            p_invalid=a.invalid,
            ring_s=model.ring_time,
            fail_s=model.fail_time,
            talk_s=model.talk,
            patience_s=patience_s if patience_s is not None else _PATIENCE,
            machine_s=model.machine_talk,
            amd_accuracy=model.amd_accuracy,
            seed=seed,
        )

    def callee(self, number: str, campaign: str) -> Callee:
        """The next callee (:class:`sim.pbx.CalleeModel`)."""
        d = self._draws
        u, edge = d.kind.next(), 0.0
        kind = ANSWER_KINDS[-1]
        for k, p in self.probabilities.items():
            edge += p
            if u < edge:
                kind = k
                break
        if kind == "no_answer":
            return Callee("no_answer", math.inf)
        if kind not in ("human", "machine"):
            return Callee(kind, max(0.0, d.fail.next()))
        ring = max(0.0, d.ring.next())
        if d.amd.below(self.p_notsure):
            status, cause, amd_s = AMD_NOTSURE
        elif kind == "human":
            status, cause, amd_s = AMD_HUMAN if d.amd.below(self.amd_accuracy) else AMD_TALKATIVE_HUMAN
        else:
            status, cause, amd_s = AMD_MACHINE if d.amd.below(self.amd_accuracy) else AMD_HUMAN
        if kind == "human":
            talk, patience = max(0.0, d.talk.next()), max(0.0, d.patience.next())
        else:
            talk = patience = max(0.0, d.machine.next())
        return Callee(kind, ring, status, cause, amd_s, talk, patience)


class CalleeMix:
    """Several callee models: by the Originate's campaign (``CCD_CAMPAIGN``), else by the
    longest number prefix that matches, else ``default`` (None: the PBX's default script)."""

    def __init__(
        self,
        *,
        campaigns: Mapping[str, CalleeModel] | None = None,
        prefixes: Mapping[str, CalleeModel] | None = None,
        default: CalleeModel | None = None,
    ) -> None:
        self.campaigns = dict(campaigns or {})
        self.prefixes = sorted((prefixes or {}).items(), key=lambda kv: -len(kv[0]))
        self.default = default

    def callee(self, number: str, campaign: str) -> Callee | None:
        model = self.campaigns.get(campaign)
        if model is None:
            model = next((m for prefix, m in self.prefixes if number.startswith(prefix)), self.default)
        return None if model is None else model.callee(number, campaign)


def campaign_callees(scenario: Scenario, seed: int) -> CalleeMix | None:
    """The callees of a scenario's campaigns, each with its own seeded streams; the first
    campaign's also answer dials of campaigns the scenario does not name (a live demo)."""
    if not scenario.campaigns:
        return None
    models: dict[str, CalleeModel] = {}
    for i, c in enumerate(scenario.campaigns):
        sub = int(np.random.SeedSequence([seed, 0x0B, i]).generate_state(1)[0])
        models[c.name] = OutboundCustomers.from_campaign_model(c, seed=sub)
    return CalleeMix(campaigns=models, default=models[scenario.campaigns[0].name])


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
    pbx.outbound_customers = campaign_callees(scenario, seed)
    return pbx, arrivals
