"""Registries the suites run against: embedded (container or local process) or external (by URL).

Every target is reached through 127.0.0.1 (or the URL the user names). Embedded targets are
started on demand and always removed: by their owner on teardown, and, should a run be killed
outright, by `reap_orphans` on the next start (containers carry the owning pid as a label).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from regconform.errors import SetupError

STARTUP_TIMEOUT = 30.0


class CapabilityMissing(Exception):
    """The target cannot do what a check needs (e.g. run garbage collection)."""


@dataclass
class GcResult:
    returncode: int
    output: str


@dataclass
class Target:
    """A registry under test. Subclasses add lifecycle and maintenance operations."""

    url: str
    description: str
    env: dict[str, str] = field(default_factory=dict)

    can_gc = False
    can_restart = False
    # `garbage-collect --delete-untagged` may run: true for registries the harness starts itself.
    can_gc_delete_untagged = True

    def garbage_collect(self, delete_untagged: bool = False) -> GcResult:
        raise CapabilityMissing(f"{self.description}: no way to run garbage collection (give --gc-command)")

    def restart(self) -> None:
        raise CapabilityMissing(f"{self.description}: no way to restart the registry (give --restart-command)")

    def stop(self) -> None:
        """Embedded targets remove themselves; external ones are left as they are."""


def wait_until_ready(url: str, timeout: float = STARTUP_TIMEOUT, verify: bool | str = True) -> None:
    """Poll `GET /v2/` until it answers 200 or 401 (a registry with auth is ready too)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    pause = 0.01
    # One client for every poll (a new one per poll loads the CA bundle each time); short pauses
    # first, since a local registry is usually up within a few tens of milliseconds.
    with httpx.Client(timeout=2, verify=verify) as http:
        while time.monotonic() < deadline:
            try:
                resp = http.get(f"{url}/v2/")
                if resp.status_code in (200, 401):
                    return
                last = f"status {resp.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(pause)
            pause = min(pause * 1.5, 0.2)
    raise SetupError(f"registry at {url} did not answer GET /v2/ within {timeout:.0f} s ({last})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise them (a second one raises at once).

    Interrupted inside `docker create`, the daemon still creates the container but testcontainers
    never learns its id, so nobody would remove it. Only the main thread can install handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if pending:
            raise KeyboardInterrupt(f"signal {signum}")
        pending.append(signum)

    watched = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    previous = {s: signal.signal(s, hold) for s in watched}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if pending and previous[pending[0]] is not signal.SIG_IGN:
        handler = previous[pending[0]]
        if callable(handler):
            handler(pending[0], None)
        raise KeyboardInterrupt(f"signal {pending[0]}")


def registry_env(delete_enabled: bool = True, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"REGISTRY_STORAGE_DELETE_ENABLED": "true" if delete_enabled else "false"}
    env.update(extra or {})
    return env
