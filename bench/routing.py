"""Benchmark: routing decisions with 5,000 agents, 200 skills and 100 queues.

Run with ``python bench/routing.py [--hours 8] [--naive-minutes 10]``.

A day of traffic at ~95 % of capacity (Poisson arrivals per queue, exponential talk
times, one relaxation step per queue) goes through acd.router.Router. Every call to
``handle`` that can make a routing decision (a call arrives, an agent frees up) and
every timer firing is timed. The reference is a naive router written here that scans
every agent for each arriving call and every waiting call for each freed agent; it
runs the first minutes of the same traffic, and the two must make the same decisions
(same agent for the same call), which doubles as a cross-check of the real router.
"""

from __future__ import annotations

import argparse
import heapq
import platform
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from acd.agents import AgentProfile
from acd.events import AgentLoggedIn, CallAnswered, CallArrived, CallEnded, ConnectToAgent
from acd.queues import QueueConfig, RelaxationStep
from acd.router import Router

N_AGENTS, N_SKILLS, N_QUEUES = 5000, 200, 100
AHT_S = 300.0
RELAX_AFTER_S = 30.0


def build(seed: int) -> tuple[list[QueueConfig], list[AgentProfile], np.ndarray]:
    rng = np.random.default_rng(seed)
    queues = []
    for q in range(N_QUEUES):
        skills = rng.choice(N_SKILLS, size=rng.integers(1, 3), replace=False)
        queues.append(
            QueueConfig(
                f"q{q}",
                skills={f"s{s}": 0.5 for s in skills},
                wrap_up_s=0.0,
                ring_timeout_s=None,
                relaxation=(RelaxationStep(RELAX_AFTER_S, min_levels={f"s{s}": 0.3 for s in skills}),),
            )
        )
    agents = []
    for a in range(N_AGENTS):
        # Each agent covers a few queues' skills well, so every queue is staffed.
        served = rng.choice(N_QUEUES, size=3, replace=False)
        skills: dict[str, float] = {}
        for q in served:
            for s in queues[q].skills:
                skills[s] = float(rng.uniform(0.35, 1.0))
        for s in rng.choice(N_SKILLS, size=3, replace=False):
            skills.setdefault(f"s{s}", float(rng.uniform(0.0, 1.0)))
        agents.append(AgentProfile(f"a{a}", group=f"g{a % 10}", skills=skills))
    # Arrival rates: proportional to each queue's strictly qualified head-count, 95 % load.
    counts = np.array([sum(q.qualifying_level(p) == 0 for p in agents) for q in queues], dtype=float)
    rates = 0.95 * counts / counts.sum() * N_AGENTS / AHT_S
    return queues, agents, rates


class NaiveRouter:
    """The reference: same rules (longest idle; priority then oldest; one relaxation
    step), but every decision scans all agents or all waiting calls."""

    def __init__(self, queues: list[QueueConfig], agents: list[AgentProfile]) -> None:
        self.queues = {q.name: q for q in queues}
        self.agents = agents
        self.level = {(p.agent_id, q.name): q.qualifying_level(p) for p in agents for q in queues}
        self.idle_since: dict[str, float | None] = {p.agent_id: None for p in agents}
        self.waiting: list[tuple[float, int, str, str]] = []  # (arrived, seq, call, queue)
        self.timers: list[tuple[float, int, str]] = []
        self.call_agent: dict[str, str] = {}
        self.seq = 0
        self.now = 0.0

    def next_deadline(self) -> float | None:
        while self.timers and self.timers[0][2] not in {w[2] for w in self.waiting}:
            heapq.heappop(self.timers)
        return self.timers[0][0] if self.timers else None

    def on_timer(self, now: float) -> list[Any]:
        out: list[Any] = []
        while self.timers and self.timers[0][0] <= now:
            due, _, call = heapq.heappop(self.timers)
            self.now = due
            for w in self.waiting:
                if w[2] == call:
                    self._route_call(w, out)
                    break
        self.now = now
        return out

    def handle(self, event: Any) -> list[Any]:
        out: list[Any] = []
        if self.timers and self.timers[0][0] <= event.at:
            out = self.on_timer(event.at)
        self.now = event.at
        if isinstance(event, AgentLoggedIn):
            self._agent_free(event.agent_id, out)
        elif isinstance(event, CallArrived):
            self.seq += 1
            entry = (event.at, self.seq, event.call_id, event.queue)
            self.waiting.append(entry)
            heapq.heappush(self.timers, (event.at + RELAX_AFTER_S, self.seq, event.call_id))
            self._route_call(entry, out)
        elif isinstance(event, CallEnded):
            self._agent_free(self.call_agent.pop(event.call_id), out)
        return out

    def _route_call(self, entry: tuple[float, int, str, str], out: list[Any]) -> None:
        arrived, _, call, queue = entry
        top = 1 if self.now - arrived >= RELAX_AFTER_S else 0
        best = None
        for p in self.agents:  # the scan
            since = self.idle_since[p.agent_id]
            lvl = self.level[(p.agent_id, queue)]
            if since is None or lvl is None or lvl > top:
                continue
            key = (lvl, since)
            if best is None or key < best[0]:
                best = (key, p.agent_id)
        if best is not None:
            self.waiting.remove(entry)
            self._connect(call, best[1], queue, out)

    def _agent_free(self, agent_id: str, out: list[Any]) -> None:
        best = None
        for entry in self.waiting:  # the scan
            arrived, seq, _, queue = entry
            lvl = self.level[(agent_id, queue)]
            if lvl is None or lvl > (1 if self.now - arrived >= RELAX_AFTER_S else 0):
                continue
            key = (arrived, seq)
            if best is None or key < best[0]:
                best = (key, entry)
        if best is None:
            self.idle_since[agent_id] = self.now
            return
        self.waiting.remove(best[1])
        self._connect(best[1][2], agent_id, best[1][3], out)

    def _connect(self, call: str, agent_id: str, queue: str, out: list[Any]) -> None:
        self.idle_since[agent_id] = None
        self.call_agent[call] = agent_id
        out.append(ConnectToAgent(call, agent_id, queue))


def run(
    router: Any,
    queues: list[QueueConfig],
    agents: list[AgentProfile],
    rates: np.ndarray,
    hours: float,
    seed: int,
) -> tuple[list[float], list[tuple[str, str]], int]:
    rng = np.random.default_rng(seed + 1)
    end = hours * 3600.0
    events: list[tuple[float, int, int, str, str]] = []  # (t, seq, kind 0=arrive 1=end, call, queue)
    n = 0
    for q, rate in zip(queues, rates, strict=True):
        count = rng.poisson(rate * end)
        for t in np.sort(rng.uniform(0, end, count)):
            n += 1
            events.append((float(t), n, 0, f"c{n}", q.name))
    heapq.heapify(events)
    talk = rng.exponential(AHT_S, n + 1)
    latencies: list[float] = []
    decisions: list[tuple[str, str]] = []
    clock = time.perf_counter

    def apply(cmds: list[Any], now: float) -> None:
        for c in cmds:
            if isinstance(c, ConnectToAgent):
                decisions.append((c.call_id, c.agent_id))
                router.handle(CallAnswered(now, c.call_id, c.agent_id))
                k = int(c.call_id[1:])
                heapq.heappush(events, (now + float(talk[k]), k, 1, c.call_id, ""))

    for p in agents:
        if isinstance(router, Router):
            router.register_agent(p)
        router.handle(AgentLoggedIn(0.0, p.agent_id))
    seq = n
    while events:
        t, _, kind, call, queue = heapq.heappop(events)
        if t > end and kind == 0:
            continue
        while (due := router.next_deadline()) is not None and due <= t:
            start = clock()
            cmds = router.on_timer(due)
            latencies.append(clock() - start)
            apply(cmds, due)
        start = clock()
        cmds = router.handle(CallArrived(t, call, queue) if kind == 0 else CallEnded(t, call))
        latencies.append(clock() - start)
        apply(cmds, t)
        seq += 1
    return latencies, decisions, n


def summarise(lat: list[float]) -> dict[str, float]:
    arr = np.array(lat)
    return {
        "decisions": float(arr.size),
        "per_s": arr.size / arr.sum(),
        "mean_us": arr.mean() * 1e6,
        "p50_us": float(np.percentile(arr, 50) * 1e6),
        "p99_us": float(np.percentile(arr, 99) * 1e6),
        "max_us": arr.max() * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0, help="simulated day length for the real router")
    parser.add_argument("--naive-minutes", type=float, default=10.0, help="traffic for the naive reference")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    queues, agents, rates = build(args.seed)
    ours_lat, _, calls = run(Router(queues), queues, agents, rates, args.hours, args.seed)
    slice_h = args.naive_minutes / 60
    ours_slice_lat, ours_slice_dec, _ = run(Router(queues), queues, agents, rates, slice_h, args.seed)
    naive_lat, naive_dec, _ = run(NaiveRouter(queues, agents), queues, agents, rates, slice_h, args.seed)
    same = ours_slice_dec == naive_dec
    ours, ours_s, naive = summarise(ours_lat), summarise(ours_slice_lat), summarise(naive_lat)
    print(
        f"# bench/routing.py  {datetime.now(UTC):%Y-%m-%d}  {platform.machine()} {platform.python_version()}"
    )
    print(f"{N_AGENTS} agents, {N_SKILLS} skills, {N_QUEUES} queues, AHT {AHT_S:g} s, load 95 %")
    print(f"{'run':<34} {'decisions':>10} {'per s':>10} {'p50 us':>8} {'p99 us':>8} {'max us':>9}")
    for name, s in (
        (f"ours, {args.hours:g} h ({calls} calls)", ours),
        (f"ours, first {args.naive_minutes:g} min", ours_s),
        (f"naive scan, first {args.naive_minutes:g} min", naive),
    ):
        print(
            f"{name:<34} {s['decisions']:>10.0f} {s['per_s']:>10.0f} {s['p50_us']:>8.1f}"
            f" {s['p99_us']:>8.1f} {s['max_us']:>9.0f}"
        )
    print(f"\nratio (naive mean latency / ours, same traffic): {naive['mean_us'] / ours_s['mean_us']:.0f}x")
    print(f"ratio at p99: {naive['p99_us'] / ours_s['p99_us']:.0f}x")
    print(f"same decisions as the naive router on the shared slice: {same} ({len(naive_dec)} offers)")


if __name__ == "__main__":
    main()
