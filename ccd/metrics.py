"""Prometheus metrics of the live service (names per DESIGN §5, prefix ``ccd_``).

Counters and histograms are fed as things happen (call records, AMI actions, routing
decisions); gauges that describe the present (agents by state, calls waiting,
service level per window) are read from the router at scrape time by a collector,
so they can never drift from what the router believes. Labels stay low-cardinality:
queue, state, window, outcome, action, never a call id or a caller's number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from acd.agents import AgentState
from acd.events import CallOutcome, CallRecord
from acd.router import Router

WINDOWS = ("15m", "1h", "today")
# Waits from sub-second to ten minutes: where service targets (10-60 s) sit, the
# buckets are dense enough to read a service level off the histogram.
WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
DECISION_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2)


class Metrics:
    def __init__(self, router_of: Callable[[], Router | None]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.wait = Histogram(
            "ccd_call_wait_seconds",
            "Wait in queue until answer or abandon",
            ["queue", "outcome"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.decision = Histogram(
            "ccd_routing_decision_seconds",
            "Time the router took to handle one event (decision latency, no IO)",
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.handoff = Histogram(
            "ccd_handoff_to_action_seconds",
            "From receiving the AMI event to writing the action that connects the caller to an agent",
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.ami_connected = Gauge("ccd_ami_connected", "1 while logged in to Asterisk", registry=r)
        self.ami_reconnects = Counter("ccd_ami_reconnects", "Reconnections to Asterisk", registry=r)
        self.ami_events = Counter("ccd_ami_events", "AMI events received", registry=r)
        self.ami_malformed = Counter("ccd_ami_malformed_events", "AMI events ccd could not use", registry=r)
        self.ami_actions = Counter("ccd_ami_actions", "AMI actions sent", ["action", "result"], registry=r)
        self.resyncs = Counter("ccd_resyncs", "State reconciliations after a (re)connect", registry=r)
        r.register(_RouterCollector(router_of))

    def watch_campaigns(self, progress: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        """Per-campaign gauges and counters, read from the campaigns' progress at scrape time."""
        self.registry.register(_CampaignCollector(progress))

    def on_record(self, rec: CallRecord) -> None:
        """Router observer: one call leaving one queue."""
        if rec.outcome is CallOutcome.ANSWERED:
            self.wait.labels(rec.queue, "answered").observe(rec.wait_s)
        elif rec.outcome is CallOutcome.ABANDONED:
            self.wait.labels(rec.queue, "abandoned").observe(rec.wait_s)


class _RouterCollector(Collector):
    def __init__(self, router_of: Callable[[], Router | None]) -> None:
        self._router_of = router_of

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        router = self._router_of()
        if router is None:
            return
        # The call counters are the router's own running totals, read at scrape time:
        # they cannot disagree with /api/queues (a call cut off from its agent and
        # offered again counts as offered twice in both), and they never go down.
        counters = {
            key: CounterMetricFamily(f"ccd_calls_{key}", help_, labels=["queue"])
            for key, help_ in (
                ("offered", "Calls offered to a queue (a call requeued after its agent vanished: again)"),
                ("answered", "Calls answered by an agent"),
                ("abandoned", "Callers who hung up before an answer"),
                ("overflowed", "Calls sent out of a queue (full, max wait)"),
            )
        }
        for name in router.queue_names:
            total = router.queue_stats(name, "total")
            for key, family in counters.items():
                family.add_metric([name], getattr(total, key))
        yield from counters.values()
        agents = GaugeMetricFamily("ccd_agents", "Agents by state", labels=["state"])
        for state, n in router.agents_by_state().items():
            if state is not AgentState.LOGGED_OUT or n:
                agents.add_metric([state.value], n)
        yield agents
        waiting = GaugeMetricFamily("ccd_queue_waiting_calls", "Calls waiting now", labels=["queue"])
        longest = GaugeMetricFamily(
            "ccd_queue_longest_wait_seconds", "Wait of the oldest waiting call", labels=["queue"]
        )
        sl = GaugeMetricFamily(
            "ccd_service_level",
            "Answered within target / offered, over a window",
            labels=["queue", "window"],
        )
        asa = GaugeMetricFamily(
            "ccd_average_speed_of_answer_seconds", "Mean wait of answered calls", labels=["queue", "window"]
        )
        abandon = GaugeMetricFamily("ccd_abandon_rate", "Abandoned / offered", labels=["queue", "window"])
        for name in router.queue_names:
            waiting.add_metric([name], router.waiting_count(name))
            longest.add_metric([name], router.longest_waiting_s(name))
            for window in WINDOWS:
                w = router.queue_stats(name, window)
                sl.add_metric([name, window], w.service_level)
                asa.add_metric([name, window], w.asa_s)
                abandon.add_metric([name, window], w.abandon_rate)
        yield from (waiting, longest, sl, asa, abandon)


class _CampaignCollector(Collector):
    """Outbound figures per campaign (label ``campaign``; outcomes and states are closed sets)."""

    def __init__(self, progress: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._progress = progress

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        dials = CounterMetricFamily(
            "ccd_campaign_dials", "Completed dials by outcome", labels=["campaign", "outcome"]
        )
        rate = GaugeMetricFamily(
            "ccd_campaign_abandon_rate",
            "Abandoned / human answers over the campaign's legal window",
            labels=["campaign"],
        )
        target = GaugeMetricFamily(
            "ccd_campaign_abandon_target", "The campaign's abandon rate ceiling", labels=["campaign"]
        )
        level = GaugeMetricFamily(
            "ccd_campaign_dial_level", "Calls in progress per logged-in agent", labels=["campaign"]
        )
        hopper = GaugeMetricFamily(
            "ccd_campaign_hopper_size", "Leads due and inside their window", labels=["campaign"]
        )
        progress_ = GaugeMetricFamily(
            "ccd_campaign_calls_in_progress",
            "Calls ringing or answered and waiting",
            labels=["campaign", "state"],
        )
        leads = GaugeMetricFamily("ccd_campaign_leads", "Leads by state", labels=["campaign", "state"])
        running = GaugeMetricFamily("ccd_campaign_running", "1 while the campaign dials", labels=["campaign"])
        for p in self._progress():
            name = str(p["campaign"])
            for outcome, n in p["outcomes"].items():
                dials.add_metric([name, outcome], n)
            rate.add_metric([name], p["abandon_rate"]["rate"])
            target.add_metric([name], p["abandon_rate"]["target"])
            level.add_metric([name], p["dial_level"])
            hopper.add_metric([name], p["hopper_size"])
            for state, n in p["in_progress"].items():
                progress_.add_metric([name, state], n)
            for state, n in p["leads"]["by_state"].items():
                leads.add_metric([name, state], n)
            running.add_metric([name], 1.0 if p["status"] == "running" else 0.0)
        yield from (dials, rate, target, level, hopper, progress_, leads, running)
