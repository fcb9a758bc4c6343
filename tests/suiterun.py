"""Run the conformance suites in a subprocess and read back what each check did.

Self-tests judge the suites from the outside, as a user sees them: a real `pytest suites` run
against a URL (usually a FaultProxy), its exit code, and the per-check records of behaviour.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAILED = ("failed", "error")


def clean_env(extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child run: none of the outer run's REGCONFORM_*/xdist settings leak in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REGCONFORM_", "PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}
    # Keep the image choice: it says which registry image this machine has, not how to run.
    if "REGCONFORM_REGISTRY_IMAGE" in os.environ:
        env["REGCONFORM_REGISTRY_IMAGE"] = os.environ["REGCONFORM_REGISTRY_IMAGE"]
    env.update(extra_env or {})
    return env


@dataclass
class SuiteRun:
    """One finished run: exit code, output, and behaviour.json's records by node id."""

    returncode: int
    stdout: str
    stderr: str
    report_dir: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ids(self, substring: str = "") -> list[str]:
        return sorted(i for i in self.records if substring in i)

    def outcomes(self, substring: str = "") -> dict[str, str]:
        return {i: self.records[i]["outcome"] for i in self.ids(substring)}

    def record(self, substring: str) -> dict[str, Any]:
        """The record of the one check whose node id contains `substring` (an error if not exactly one)."""
        found = self.ids(substring)
        if len(found) != 1:
            raise LookupError(f"{len(found)} checks match {substring!r}: {found or self.ids()}\n{self.tail()}")
        return self.records[found[0]]

    def outcome(self, substring: str) -> str:
        return self.record(substring)["outcome"]

    def reason(self, substring: str) -> str:
        return self.record(substring)["reason"] or ""

    def failed_ids(self) -> list[str]:
        return sorted(i for i, r in self.records.items() if r["outcome"] in FAILED)

    def passed_ids(self) -> list[str]:
        return sorted(i for i, r in self.records.items() if r["outcome"] == "passed")

    def tail(self, lines: int = 40) -> str:
        """The end of the run's output, for assertion messages."""
        out = (self.stdout + "\n" + self.stderr).strip().splitlines()
        return "\n".join(out[-lines:])


def run_containers(run_id: str) -> list[str]:
    """`docker ps -a -q --filter label=org.regconform.run=<id>`: the containers a run left."""
    from regconform.targets.container import RUN_LABEL

    out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label={RUN_LABEL}={run_id}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def read_records(report_dir: Path) -> dict[str, dict[str, Any]]:
    path = report_dir / "behaviour.json"
    if not path.exists():
        return {}
    return {rec["id"]: rec for rec in json.loads(path.read_text())["checks"]}


def run_command(argv: list[str], *, report_dir: Path, extra_env: Mapping[str, str] | None = None,
                timeout: float = 600) -> SuiteRun:
    """Run argv (cwd = the repository) to the end; on timeout interrupt it so it still cleans up."""
    proc = subprocess.Popen(argv, cwd=REPO, env=clean_env(extra_env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        err += f"\n[suiterun: timed out after {timeout:.0f} s and was interrupted]"
    return SuiteRun(proc.returncode, out, err, report_dir, read_records(report_dir))


def run_suites(url: str, *pytest_args: str, profile: str = "distribution-2.8",
               extra_env: Mapping[str, str] | None = None, report_dir: Path | None = None,
               timeout: float = 600) -> SuiteRun:
    """`python -m pytest suites --registry-url URL ...` in a subprocess; records from its behaviour.json."""
    report_dir = report_dir or Path(tempfile.mkdtemp(prefix="regconform-selftest-"))
    argv = [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q", "-rfEs",
            f"--registry-url={url}", f"--report-dir={report_dir}", f"--profile={profile}", *pytest_args]
    return run_command(argv, report_dir=report_dir, extra_env=extra_env, timeout=timeout)


__all__ = ["SuiteRun", "run_suites", "run_command", "read_records", "run_containers", "clean_env", "REPO"]
