"""Benchmark: next-lead selections per second with 1,000,000 leads.

Run with ``python bench/hopper.py [--leads 1000000] [--selections 200000] [--naive 5]``.

A million leads over 24 zone groups (the Americas, Europe, India, Australia incl. the
multi-zone Australian mobiles and Lord Howe), priorities 0–9, due times spread over the
last day and the next two hours, one campaign with the default 08:00–21:00 window, a
3-in-24-h per-number limit and a DNC list of 1 % of the numbers. The clock starts at
15:00 UTC (New York, London, Kolkata open; Sydney asleep) and runs 10 ms per selection.
Every selection is ``Hopper.next(at)`` (with its ``check_dial``), and every served
lead is completed as busy (a retry in 10 minutes), so the hopper keeps changing.

Reference: a naive hopper in this file with the same rules that scans every lead per
selection (window state computed once per zone group per call, which is already kinder
than checking each lead); it runs a few selections only. Both pick the same leads.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import time
from datetime import UTC, datetime

from dialer.campaign import DAY_S, CallLimit, Campaign
from dialer.compliance import CallHistory, DncList, check_dial, window_open
from dialer.hopper import Hopper
from dialer.leads import Attempt, Lead, LeadState, Outcome, ZoneSource, new_lead

START = datetime(2026, 3, 9, 15, tzinfo=UTC).timestamp()
# (a number of the region, ``zone`` override or None): new_lead settles zones once.
TEMPLATES = [
    ("+12125550100", None),
    ("+13125550100", None),
    ("+13035550100", None),
    ("+13105550100", None),
    ("+19075550100", None),
    ("+18085550100", None),
    ("+14165550100", None),
    ("+5511987650000", None),
    ("+525512340000", None),
    ("+442079460000", None),
    ("+447911120000", None),
    ("+33142680000", None),
    ("+4930123400", None),
    ("+34912340000", None),
    ("+919812340000", None),
    ("+81312340000", None),
    ("+6560000000", None),
    ("+61298760000", None),
    ("+61412340000", None),
    ("+61412340000", "Australia/Lord_Howe"),
    ("+61893450000", None),
    ("+6493070000", None),
    ("+27211230000", None),
    ("+97143000000", None),
]


def build(n: int, seed: int) -> tuple[list[Lead], list[str]]:
    rng = random.Random(seed)
    protos = [new_lead("proto", number, zone=zone) for number, zone in TEMPLATES]
    leads = []
    for i in range(n):
        proto = protos[i % len(protos)]
        # Same zones as the prototype, a distinct number: trusted constructor, as a store reloads.
        number = proto.number[:-6] + f"{i // len(protos) % 1_000_000:06d}"
        lead = Lead(f"L{i}", number, proto.zones, ZoneSource.NUMBER, rng.randrange(10))
        lead.next_due = START - rng.uniform(0, DAY_S) if rng.random() < 0.9 else START + rng.uniform(0, 7200)
        leads.append(lead)
    dnc = [lead.number for lead in rng.sample(leads, n // 100)]
    return leads, dnc


class NaiveHopper:
    """Same rules, no structure: every selection looks at every lead."""

    def __init__(self, campaign: Campaign, leads: list[Lead], dnc: DncList, history: CallHistory) -> None:
        self.campaign, self.leads, self.dnc, self.history = campaign, leads, dnc, history
        self.order = {lead.lead_id: i for i, lead in enumerate(leads)}

    def next(self, at: float) -> Lead | None:
        open_groups: dict[tuple[str, ...], bool] = {}
        while True:
            best: Lead | None = None
            best_key: tuple[int, int, float, int] | None = None
            for lead in self.leads:
                if lead.state not in (LeadState.NEW, LeadState.SCHEDULED):
                    continue
                due = lead.next_due
                if due is None or due > at:
                    continue
                is_open = open_groups.get(lead.zones)
                if is_open is None:
                    is_open = open_groups[lead.zones] = window_open(lead.zones, self.campaign.hours, at)
                if not is_open:
                    continue
                key = (
                    0 if lead.callback_at is not None else 1,
                    -lead.priority,
                    due,
                    self.order[lead.lead_id],
                )
                if best_key is None or key < best_key:
                    best, best_key = lead, key
            if best is None:
                return None
            refusal = check_dial(best, self.campaign, self.dnc, self.history, at)
            if refusal is None:
                best.move(LeadState.DIALLING)
                self.history.record_dial(best.number, at)
                return best
            if refusal.until is None:
                best.move(LeadState.DNC, refusal.detail)
            else:
                best.next_due = refusal.until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--selections", type=int, default=200_000)
    parser.add_argument("--naive", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    campaign = Campaign("bench", "+12025550123", "sales", call_limits=(CallLimit(3, DAY_S),))

    t0 = time.perf_counter()
    leads, dnc_numbers = build(args.leads, args.seed)
    t1 = time.perf_counter()
    dnc = DncList()
    for number in dnc_numbers:
        dnc.add(number)
    hopper = Hopper(campaign, dnc=dnc)
    t2 = time.perf_counter()
    hopper.load(leads, START)
    t3 = time.perf_counter()
    # Millions of long-lived objects: freeze them out of the cyclic collector, as `ccd serve`
    # does after start-up; otherwise a full collection (~0.3 s) lands inside some selection.
    gc.collect()
    gc.freeze()
    groups = len({lead.zones for lead in leads})
    print(f"{args.leads:,} leads in {groups} zone groups: built {t1 - t0:.1f} s, loaded {t3 - t2:.1f} s")
    print(f"at start: {hopper.summary(START)}")

    served: list[str] = []
    at = START
    latencies = []
    t4 = time.perf_counter()
    for _ in range(args.selections):
        at += 0.01
        s = time.perf_counter()
        lead = hopper.next(at)
        latencies.append(time.perf_counter() - s)
        if lead is None:
            break
        served.append(lead.lead_id)
        hopper.complete(lead.lead_id, Attempt(at, Outcome.BUSY))
    t5 = time.perf_counter()
    latencies.sort()
    ours_rate = len(latencies) / sum(latencies)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"ours: {len(served):,} selections, {ours_rate:,.0f} next()/s (p50 {p50 * 1e6:.1f} µs, "
        f"p99 {p99 * 1e6:.1f} µs, max {latencies[-1] * 1e3:.1f} ms); "
        f"with complete(): {len(served) / (t5 - t4):,.0f} leads/s"
    )
    s = time.perf_counter()
    why = hopper.why(leads[-1].lead_id, at)
    summary = hopper.summary(at)
    print(f"why + summary: {(time.perf_counter() - s) * 1e3:.1f} ms ({why}); due now {summary.due_now:,}")

    # The reference on fresh copies of the same leads, from the same start.
    fresh, _ = build(args.leads, args.seed)
    naive = NaiveHopper(campaign, fresh, dnc, CallHistory())
    picked = []
    at = START
    s = time.perf_counter()
    for _ in range(args.naive):
        at += 0.01
        lead = naive.next(at)
        assert lead is not None
        picked.append(lead.lead_id)
        lead.record(Attempt(at, Outcome.BUSY))
        lead.move(LeadState.SCHEDULED)
        lead.next_due = at + 600
    naive_s = (time.perf_counter() - s) / args.naive
    assert picked == served[: args.naive], (picked, served[: args.naive])
    print(f"naive scan: {1 / naive_s:,.2f} next()/s ({naive_s * 1e3:,.0f} ms each); same leads picked: yes")
    print(f"ratio: {ours_rate * naive_s:,.0f}x")
    machine = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    print(f"{datetime.now(UTC):%Y-%m-%d}, {machine}")


if __name__ == "__main__":
    main()
