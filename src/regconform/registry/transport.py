"""The one HTTP transport: httpx's, with a deadline on the head of every answer.

httpx bounds each wait for the next bytes (--timeout), never their sum: a registry or token service
that sends one header line every few seconds would hold a request forever. Here the sockets are
wrapped so that, while a request is being sent (`answer_head_deadline`), all reads of one answer
share one deadline: limits.Limits.head_deadline() from the first byte awaited. Bodies read after that
are bounded by limits.iter_body's throughput check instead.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx


@dataclass
class HeadDeadline:
    budget: float                 # seconds one answer's head may take, from the first read
    started: float | None = None  # when the current answer's first read began (None: still sending)
    expired: bool = False

    def bound(self, timeout: float | None) -> float | None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        left = self.started + self.budget - now
        if left <= 0:
            self.expired = True
            raise httpcore.ReadTimeout(f"the answer's head was not complete within {self.budget:.1f} s")
        return left if timeout is None else min(timeout, left)


_current: contextvars.ContextVar[HeadDeadline | None] = contextvars.ContextVar("regconform_head_deadline",
                                                                               default=None)


@contextmanager
def answer_head_deadline(budget: float) -> Iterator[HeadDeadline]:
    """Within: each answer's status line and headers (a token answer: all of it) within `budget` seconds."""
    deadline = HeadDeadline(budget)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = _current.get()
        if deadline is not None:
            timeout = deadline.bound(timeout)
            try:
                return self._inner.read(max_bytes, timeout)
            except httpcore.ReadTimeout:
                deadline.expired = deadline.expired or time.monotonic() >= deadline.started + deadline.budget
                raise
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        deadline = _current.get()
        if deadline is not None:
            deadline.started = None  # a request is being sent: the next answer's clock starts at its first read
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_transport(verify: bool | str | ssl.SSLContext = True) -> httpx.HTTPTransport:
    """httpx's transport (verification as given), its sockets under the head deadline."""
    transport = httpx.HTTPTransport(verify=verify)
    pool = transport._pool  # noqa: SLF001 - httpx offers no public way to give httpcore a network backend
    if not isinstance(pool, httpcore.ConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpx/httpcore changed: regconform cannot bound answer heads (see constraints.txt)")
    pool._network_backend = _Backend()  # noqa: SLF001
    return transport
