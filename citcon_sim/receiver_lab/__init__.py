"""The IPN receiver lab: test the merchant's side of the IPN contract.

A fixed battery of notifications (valid, forged, tampered, duplicated, for a failed or
an unknown transaction…) is POSTed to the merchant's receiver; each answer is judged,
and so are the receiver's calls back to the gateway. ``citcon-sim check-receiver`` and
``citcon_sim.testing.check_receiver`` run it; docs/receiver-lab.md explains every check.
"""

from __future__ import annotations

from citcon_sim.receiver_lab.checks import BY_ID, CHECKS, FACES, Check, Expect, Setup, markdown
from citcon_sim.receiver_lab.report import CheckResult, Outcome, ReceiverReport
from citcon_sim.receiver_lab.runner import (
    Gateway,
    LabGateway,
    Notice,
    Order,
    Prepare,
    judge,
    lab_gateway,
    run_lab,
)

__all__ = [
    "BY_ID", "CHECKS", "FACES", "Check", "CheckResult", "Expect", "Gateway", "LabGateway",
    "Notice", "Order", "Outcome", "Prepare", "ReceiverReport", "Setup", "judge",
    "lab_gateway", "markdown", "run_lab",
]
