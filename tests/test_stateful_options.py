"""The stateful budget and seed options: parsed in one place, bad values one line on stderr with exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from regconform.commands.explore import per_check
from regconform.stateful.budget import Budget, BudgetError
from regconform.stateful.runner import seed_of


@pytest.mark.parametrize(("text", "expected"), [
    ("6x16", Budget(6, 16)), ("200", Budget(200, 16)), ("10m", Budget(25, 16, 600.0)), ("90s", Budget(25, 16, 90.0)),
])
def test_budgets_parse(text, expected):
    assert Budget.parse(text) == expected


@pytest.mark.parametrize("text", ["", "0x5", "5x0", "5x999", "ten", "10 minutes", "-3", "0s"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(BudgetError, match="--stateful-budget"):
        Budget.parse(text)


def test_explore_shares_a_duration_between_the_stateful_checks():
    assert per_check("9m") == "180s"
    assert per_check("6x16") == "6x16"


def test_the_default_seed_comes_from_the_run_and_differs_per_check():
    assert seed_of("run1", "stateful-oci") == seed_of("run1", "stateful-oci")
    assert len({seed_of("run1", "stateful-oci"), seed_of("run1", "stateful-docker"), seed_of("run2", "stateful-oci")}) == 3


@pytest.mark.parametrize(("args", "named"), [
    (["run", "--stateful-budget", "lots"], "--stateful-budget"),
    (["run", "--stateful-seed", "-4"], "--stateful-seed"),
    (["explore", "--budget", "forever"], "--budget"),
    (["explore", "--stateful-seed", "x"], "--stateful-seed"),
])
def test_bad_stateful_options_exit_2_with_one_line(args, named):
    proc = subprocess.run([sys.executable, "-m", "regconform.cli", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in proc.stderr, proc.stderr
