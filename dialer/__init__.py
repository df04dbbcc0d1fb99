"""ccd's outbound brain: campaigns, leads, compliance and pacing (IO-free, like acd).

Times are POSIX seconds (float, UTC) throughout: the ``at`` of the ACD core, anchored
to the Unix epoch because calling windows are about real local days.

* :mod:`dialer.campaign` — validated campaign settings (:class:`Campaign`, ``parse_campaign``).
* :mod:`dialer.leads` — leads, attempts and outcomes; numbers in E.164 with their zones.
* :mod:`dialer.compliance` — calling windows (DST-exact), DNC, per-number limits, the UK
  72 h rule, the abandonment ledger and ``check_dial``, the check at the moment of dialling.
* :mod:`dialer.hopper` — the next lead to dial out of millions, and why a lead is not dialled.
"""

from dialer.campaign import AmdAction, CallingHours, CallLimit, Campaign, DialMode, RetryRule, parse_campaign
from dialer.compliance import (
    AbandonLedger,
    CallHistory,
    DncList,
    HumanAnswer,
    Reason,
    Refusal,
    check_dial,
    is_callable,
    next_window_open,
)
from dialer.hopper import Hopper, HopperError, HopperSummary
from dialer.leads import Attempt, Lead, LeadState, Outcome, ZoneSource, new_lead, normalise_number

__all__ = [
    "AbandonLedger",
    "AmdAction",
    "Attempt",
    "CallHistory",
    "CallLimit",
    "CallingHours",
    "Campaign",
    "DialMode",
    "DncList",
    "Hopper",
    "HopperError",
    "HopperSummary",
    "HumanAnswer",
    "Lead",
    "LeadState",
    "Outcome",
    "Reason",
    "Refusal",
    "RetryRule",
    "ZoneSource",
    "check_dial",
    "is_callable",
    "new_lead",
    "next_window_open",
    "normalise_number",
    "parse_campaign",
]
