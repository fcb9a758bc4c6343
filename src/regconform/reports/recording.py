"""The per-check behaviour record: begun before each check, shipped from xdist workers with the test
report, collected on the controller, and written as the run's reports when the session ends.

Whatever a registry sent, what pytest prints and every report survive it (reports/guard.py): the
exception of a failed check is scrubbed, escaped and bounded before any text is made of it; a check
that could not reach the registry at all is an environment error, not a deviation; a partial run
says so in its reports.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regconform.checks import Unsupported
from regconform.reports import guard, record
from regconform.settings import SETTINGS, is_worker


def _marker_arg(item: pytest.Item, name: str) -> str | None:
    mark = item.get_closest_marker(name)
    return str(mark.args[0]) if mark and mark.args else None


SETUP_EXCHANGES = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    record.begin()
    settings = item.config.stash[SETTINGS]
    from regconform.reports.writers import allure_labels

    allure_labels(_workflow_of(item), _title_of(item), _variant_of(item), _marker_arg(item, "spec"),
                  settings.registry_label, settings.profile.name)


def pytest_runtest_call(item: pytest.Item) -> None:
    from regconform.reports.writers import allure_title

    allure_title(_title_of(item), _variant_of(item))  # after setup: allure-pytest names the test there


def _variant_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    if call.excinfo is not None:  # before any report, junit or Allure text is made of it
        guard.sanitise_exception(call.excinfo.value)
    report = yield
    if call.when == "call" or (call.when == "setup" and call.excinfo is not None):
        if reason := guard.state.after_call(item.nodeid, call.excinfo):
            setattr(report, ENV_ATTR, reason)
        if guard.state.stopped:
            item.session.shouldstop = guard.state.stopped
    report.sections = [(title, guard.bounded_text(text, 20000)) for title, text in report.sections]
    guard.sanitise_longrepr(report.longrepr)
    if call.excinfo is not None and call.excinfo.errisinstance(Unsupported):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"unsupported: {call.excinfo.value}")
        report.user_properties.append(("regconform_outcome", "unsupported"))
    rec = record.current()
    if rec is not None and call.when == "setup":
        item.stash[SETUP_EXCHANGES] = len(rec.exchanges)
    if rec is not None and (call.when == "call" or report.outcome != "passed"):
        # An attribute, not user_properties: it travels from xdist workers but stays out of junit.xml.
        setattr(report, RECORD_ATTR, json.dumps(_record_of(item, rec)))
    if call.when == "teardown":
        record.end()
    return report


RECORD_ATTR = "regconform_record"
ENV_ATTR = "regconform_environment"  # the check failed because the registry could not be reached


def _workflow_of(item: pytest.Item) -> str:
    module = item.module.__name__.rsplit(".", 1)[-1] if hasattr(item, "module") and item.module else ""
    return _marker_arg(item, "workflow") or module.removeprefix("test_").replace("_", "-")


def _title_of(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None)
    return doc.strip().splitlines()[0] if doc and doc.strip() else item.name


def _record_of(item: pytest.Item, rec: record.CheckRecord) -> dict[str, Any]:
    facts = rec.observed_facts()
    for fact in facts[:item.stash.get(SETUP_EXCHANGES, len(facts))]:
        fact["setup"] = True  # made by fixtures (pushing the fixture images), not by the check itself
    return {
        "id": item.nodeid,
        "workflow": _workflow_of(item),
        "spec": _marker_arg(item, "spec"),
        "title": _title_of(item),
        "expectations": rec.expectations,
        "observations": rec.observations,
        "facts": facts,
        "exchanges": [ex.as_dict() for ex in rec.exchanges],
    }


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    # Collection reports (e.g. an import error) have no user_properties.
    if ("regconform_outcome", "unsupported") in getattr(report, "user_properties", ()):
        return "unsupported", "U", "UNSUPPORTED"
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect records on the controller (or the only process): workers ship them as a report attribute.

    One record per check: a failing teardown after a passing call replaces the call's record.
    """
    value = getattr(report, RECORD_ATTR, None)
    if value is None:
        return
    doc = json.loads(value)
    doc["outcome"] = _outcome(report)
    doc["reason"] = _reason(report)
    if environment := getattr(report, ENV_ATTR, None):
        doc["outcome"], doc["reason"] = "error", environment
    doc["phase"] = report.when
    if doc["id"] not in _collected or doc["outcome"] != "passed":
        _collected[doc["id"]] = doc


_collected: dict[str, dict[str, Any]] = {}
_target_info: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _collected.clear()  # several runs in one process (tests, `regconform compare`) never mix records
    _target_info.clear()
    guard.state.__init__()  # type: ignore[misc]


def _outcome(report: pytest.TestReport) -> str:
    if ("regconform_outcome", "unsupported") in report.user_properties:
        return "unsupported"
    if report.when != "call" and report.failed:
        return "error"
    return report.outcome


def _reason(report: pytest.TestReport) -> str | None:
    if report.passed:
        return None
    if isinstance(report.longrepr, tuple):
        return guard.bounded_text(str(report.longrepr[2]))
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return guard.bounded_text(str(crash.message))
    return guard.bounded_text(str(report.longrepr)) if report.longrepr else None


def pytest_testnodedown(node: Any, error: Any) -> None:
    info = getattr(node, "workeroutput", {}).get("regconform_target")
    if info:
        _target_info.update(info)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if is_worker(session.config) or SETTINGS not in session.config.stash:
        return
    settings = session.config.stash[SETTINGS]
    info = {**settings.target_info, **_target_info}
    allure_dir = getattr(session.config.option, "allure_report_dir", None)
    if allure_dir:
        guard.scrub_tree(Path(allure_dir))  # written while checks ran: scrubbed once more at the end
    records = [_collected[k] for k in sorted(_collected)]
    stopped = guard.stop_reason(exitstatus, session.shouldstop, session.shouldfail, guard.state)
    run = guard.run_summary(len(records), int(getattr(session, "testscollected", 0) or 0), stopped)
    if not _collected and not info and run is None:
        return
    from regconform.reports.writers import write_reports

    # The reports of an interrupted run are written whole: a further Ctrl-C or SIGTERM while they are
    # written (bounded work) is ignored rather than leaving half a report and a traceback.
    held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        write_reports(settings.report_dir, records, info, settings.profile,
                      allure_dir=Path(allure_dir) if allure_dir else None, run=run)
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)
    environment = [r for r in records if (r.get("reason") or "").startswith(guard.ENVIRONMENT_PREFIX)]
    if environment and not any(r["outcome"] in ("passed", "failed") for r in records):
        session.exitstatus = 2  # no check could complete: an environment failure, not deviations
