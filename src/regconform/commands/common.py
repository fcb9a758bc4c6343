"""What the suite-running commands share: the pytest arguments of a run and its exit code."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from regconform import options
from regconform.commands import EXIT_FAILED, EXIT_OK, fail
from regconform.errors import SetupError
from regconform.resources import SUITES


def report_args(report_dir: Path) -> list[str]:
    """junit.xml and Allure results beside the harness's own reports; Allure cleaned once, here."""
    shutil.rmtree(report_dir / "allure-results", ignore_errors=True)
    return [f"--junitxml={report_dir / 'junit.xml'}", f"--alluredir={report_dir / 'allure-results'}"]


def read_password_stdin(ns: argparse.Namespace, variable: str = "REGCONFORM_PASSWORD") -> None:
    """--password-stdin: the password goes to the environment of the plugin (and xdist workers), never argv."""
    if not getattr(ns, "password_stdin", False):
        return
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SetupError("--password-stdin: standard input held no password")
    os.environ[variable] = password


def run_pytest(ns: argparse.Namespace, command: str, suites: list[str], extra: list[str],
               nothing_selected: str = "no check was selected (check -k / -m)") -> int:
    import pytest

    report_dir = Path(ns.report_dir)
    from regconform.reports.writers import check_report_dir

    check_report_dir(report_dir)  # a SetupError line before pytest starts, not an INTERNALERROR at its end
    args = ["-p", "regconform.plugin", *suites, f"--rootdir={SUITES.parent}", *report_args(report_dir),
            "-q", "-rfEs", *options.pytest_args(ns, command)]
    code = int(pytest.main(args + extra))
    if code in (EXIT_OK, EXIT_FAILED):
        return code
    if code == 5:
        return fail(nothing_selected)
    return fail(f"the run stopped early (pytest exit code {code}); the reason is in the output above")
