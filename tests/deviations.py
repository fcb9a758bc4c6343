"""Shared assertions of the deviation self-tests: a fault mode turns exactly its checks red."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faultproxy import FaultProxy, Rule
from suiterun import SuiteRun, run_suites


def base_name(node_id: str) -> str:
    return node_id.rsplit("::", 1)[-1].split("[", 1)[0]


def short(node_id: str) -> str:
    return node_id.rsplit("::", 1)[-1]


def clean_baseline(upstream_url: str, selection: str, report_dir: Path, *args: str) -> SuiteRun:
    """The selection through a proxy without rules: what every check does when nothing deviates."""
    with FaultProxy(upstream_url, []) as proxy:
        run = run_suites(proxy.url, "-k", selection, "--ignore=suites/mirror", *args, report_dir=report_dir)
        assert proxy.hits == []
    return run


def assert_clean(run: SuiteRun) -> None:
    assert run.returncode == 0, run.tail()
    assert run.records, run.tail()
    assert not run.failed_ids(), run.tail()


def assert_exactly_red(run: SuiteRun, baseline: SuiteRun, proxy: FaultProxy, *, name: str, red: Sequence[str],
                       reasons: Sequence[str], is_red: Callable[[str], bool]) -> None:
    """Exactly the named checks red (every variant), each reason matching every pattern and failing
    as a Deviation; every other check as in the clean run; some rule fired; the run exits 1."""
    got = {short(i): o for i, o in run.outcomes().items()}
    expected = {short(i): o for i, o in baseline.outcomes().items()}
    assert sorted(got) == sorted(expected), f"{name}: not the same checks as the clean run\n{run.tail()}"
    want_red = sorted(n for n in expected if is_red(n))
    named = {n for n in red if any(n in (node, base_name(node)) for node in expected)}
    assert named == set(red), f"{name}: red checks missing from the run: {set(red) - named}"
    got_red = sorted(short(i) for i in run.failed_ids())
    assert got_red == want_red, f"{name}: expected exactly {want_red} red, got {got_red}\n{run.tail()}"
    for node, outcome in got.items():
        if node not in want_red:
            assert outcome == expected[node], f"{name}: {node} was {outcome}, clean {expected[node]}\n{run.tail()}"
    for node in want_red:
        reason = run.reason(node)
        for pattern in reasons:
            assert re.search(pattern, reason, re.IGNORECASE), f"{name}: reason of {node} lacks /{pattern}/: {reason}"
        assert "Deviation" in reason and "Traceback" not in reason, f"{name}: {node} did not fail as a deviation: {reason}"
    assert proxy.hits, f"{name}: no rule fired"
    assert run.returncode == 1, f"{name}: a run with red checks must exit 1, got {run.returncode}"


@dataclass
class Mode:
    """A deviation: proxy rules, the checks it must turn red, and regexes every red check's reason must match.

    `red` names checks (test names: every variant; or node names with their [variant]), or is a predicate
    over a short node id and the clean run's outcomes by short node id. `changed`: transforms note here that
    they really changed an answer. `module`: the suite module it shows in, where a test file covers several.
    """

    name: str
    rules: list[Rule]
    red: list[str] | Callable[[str, dict[str, str]], bool]
    reason: list[str]
    changed: list[str] = field(default_factory=list)
    module: str = ""

    def is_red(self, node: str, clean: dict[str, str]) -> bool:
        if callable(self.red):
            return self.red(node, clean)
        return node in self.red or base_name(node) in self.red

    def red_checks(self, baseline: SuiteRun) -> list[str]:
        """The checks of the clean run this mode must turn red (names as given, or those the predicate picks)."""
        if not callable(self.red):
            return list(self.red)
        clean = {short(i): o for i, o in baseline.outcomes().items()}
        return sorted(n for n in clean if self.red(n, clean))


def assert_mode(run: SuiteRun, mode: Mode, baseline: SuiteRun, proxy: FaultProxy) -> None:
    """`assert_exactly_red` for a Mode."""
    clean = {short(i): o for i, o in baseline.outcomes().items()}
    assert_exactly_red(run, baseline, proxy, name=mode.name, red=mode.red_checks(baseline), reasons=mode.reason,
                       is_red=lambda node: mode.is_red(node, clean))
