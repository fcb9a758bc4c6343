"""What the plugin does so every output survives a hostile registry, and says how the run ended.

- `sanitise_exception`: before pytest (or Allure, or junit) turns a check's exception into text,
  its message is scrubbed of every known secret, its control characters are escaped and its length
  is bounded (limits.MAX_MESSAGE), so the terminal, junit.xml and the Allure results get that text.
- `RunState`: an unreachable registry is an environment failure of the run, not a deviation per
  check: checks that fail because the registry cannot be reached at all are `error`s with an
  "environment:" reason, and after UNREACHABLE_AFTER of them in a row the run stops (exit 2 when no
  check could complete). An interrupted or stopped run writes reports that say they are partial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from regconform.registry import limits
from regconform.registry.scrub import safe, scrub

# The registry cannot be reached at all (refused, unroutable, no answer to connect): not a deviation.
ENVIRONMENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
UNREACHABLE_AFTER = 3
ENVIRONMENT_PREFIX = "environment: "


def bounded_text(text: str, limit: int = limits.MAX_MESSAGE) -> str:
    text = safe(text)
    return text if len(text) <= limit else text[:limit] + f" <… cut: {len(text)} characters in all>"


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a __str__ that fails is itself hostile: keep the type only
        return type(exc).__name__


def sanitise_exception(exc: BaseException) -> None:
    """Scrub, escape and bound an exception's message in place (its type and traceback stay).

    The message, its cause and context chain (pytest shows them too). An exception whose text does not
    come from `args` (e.g. CalledProcessError prints its argv) gets a same-named subclass that prints
    the clean text.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        _sanitise_one(current)
        current = current.__cause__ or current.__context__


def _sanitise_one(exc: BaseException) -> None:
    text = _text(exc)
    clean = bounded_text(text)
    if clean == text:
        return
    try:
        exc.args = (clean,)
    except (AttributeError, TypeError):
        pass
    if isinstance(getattr(exc, "message", None), str):  # some libraries keep a copy
        exc.message = clean  # type: ignore[attr-defined]
    if _text(exc) == clean:
        return
    cls = type(exc)
    shown = type(cls.__name__, (cls,), {"__str__": lambda self: clean, "__module__": cls.__module__,
                                        "__qualname__": cls.__qualname__})
    try:
        exc.__class__ = shown
    except TypeError:  # a built-in exception type: its text comes from args, handled above
        pass


def sanitise_longrepr(longrepr: Any) -> None:
    """Scrub the text pytest shows of a failure in place: the arguments and locals it prints of each
    frame (a client library's `password = '...'`), the source lines and the messages."""
    for reprtraceback, reprcrash, _ in getattr(longrepr, "chain", ()) or ():
        if reprcrash is not None and isinstance(getattr(reprcrash, "message", None), str):
            reprcrash.message = bounded_text(reprcrash.message)
        for entry in getattr(reprtraceback, "reprentries", ()):
            if getattr(entry, "lines", None):
                entry.lines = [safe(line) for line in entry.lines]
            funcargs = getattr(entry, "reprfuncargs", None)
            if funcargs is not None:
                funcargs.args = [(name, safe(str(value))) for name, value in funcargs.args]
            locals_ = getattr(entry, "reprlocals", None)
            if locals_ is not None:
                locals_.lines = [safe(line) for line in locals_.lines]


def is_environment_failure(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ENVIRONMENT_ERRORS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


@dataclass
class RunState:
    """Per process: consecutive environment failures, and why the run stopped (if it did)."""

    in_a_row: int = 0
    environment: str | None = None  # the first environment failure, as one line
    stopped: str | None = None
    completed: int = 0  # checks whose call phase ran to a verdict about the registry
    seen: set[str] = field(default_factory=set)

    def after_call(self, nodeid: str, excinfo: Any) -> str | None:
        """Count a finished call; returns the environment reason when the check failed for that cause."""
        exc = excinfo.value if excinfo is not None else None
        if exc is not None and is_environment_failure(exc):
            self.in_a_row += 1
            reason = f"{ENVIRONMENT_PREFIX}the registry could not be reached ({bounded_text(str(exc), 300)})"
            self.environment = self.environment or reason
            if self.in_a_row >= UNREACHABLE_AFTER:
                self.stopped = (f"the registry stopped answering: {UNREACHABLE_AFTER} checks in a row could not "
                                f"reach it ({self.environment.removeprefix(ENVIRONMENT_PREFIX)})")
            return reason
        self.in_a_row = 0
        if nodeid not in self.seen:
            self.seen.add(nodeid)
            self.completed += 1
        return None


# The run's state in this process (reset when a session starts; `regconform compare` runs several).
state = RunState()


def stop_reason(exitstatus: int, shouldstop: Any, shouldfail: Any, state: RunState) -> str | None:
    """Why a run ended before every selected check ran (None: it did not stop early)."""
    if state.stopped:
        return state.stopped
    if int(exitstatus) == 2:
        return "interrupted (Ctrl-C or SIGTERM)"
    if shouldfail:
        return f"stopped early by pytest ({shouldfail})"
    if shouldstop:
        return f"stopped early by pytest ({shouldstop})"
    return None


def run_summary(ran: int, selected: int, reason: str | None) -> dict[str, Any] | None:
    """behaviour.json's `run` entry: only when the run is partial (complete runs keep their files as they were)."""
    if reason is None and (selected <= 0 or ran >= selected):
        return None
    return {"complete": False, "ran": ran, "selected": selected,
            "stopped": reason or f"only {ran} of {selected} checks reported"}


def scrub_tree(folder: Path) -> int:
    """Scrub every file under `folder` in place (Allure results are written while checks run); the count changed."""
    changed = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        clean = scrub(text)
        if clean != text:
            path.write_text(clean, "utf-8")
            changed += 1
    return changed
