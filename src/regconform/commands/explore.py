"""`regconform explore`: the stateful checks only, for longer than a run gives them (default 10 minutes).

The same checks as `regconform run` includes (suites/test_stateful.py), with --budget instead of the
run's small --stateful-budget. A duration is shared by the three stateful checks (two content formats,
and the garbage collection check): each explores for a third of it, one after the other, or side
by side with -n. A failure is reported like any check (behaviour.json, report.html, summary.md), with
the seed and budget that replay it in `regconform run`.
"""

from __future__ import annotations

import argparse

from regconform import options
from regconform.commands import run as run_command
from regconform.commands.common import run_pytest
from regconform.resources import SUITES
from regconform.stateful.budget import Budget

STATEFUL_CHECKS = 3  # test_stateful.py: 2 content formats, and the GC check (OCI)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("explore", help="explore the registry with stateful sequences for longer (--budget 10m)")
    options.add_to_parser(p, options.EXPLORE)


def per_check(budget_text: str) -> str:
    budget = Budget.parse(budget_text)
    if budget.seconds is None:
        return budget_text
    return f"{max(1.0, budget.seconds / STATEFUL_CHECKS):.0f}s"


def run(ns: argparse.Namespace, extra: list[str]) -> int:
    run_command.preflight(ns)
    return run_pytest(ns, options.EXPLORE, [str(SUITES / "test_stateful.py"), f"--stateful-budget={per_check(ns.explore_budget)}"],
                      extra, nothing_selected="no stateful check was selected (check -k / -m)")
