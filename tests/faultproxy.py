"""A fault-injecting HTTP reverse proxy in front of a real registry, for the self-tests.

Every check must be able to fail: a self-test puts this proxy between the suites and a real
registry, gives it rules that make the registry deviate in one precise way (drop a header, answer
200 to a DELETE, keep serving a deleted blob, ...), runs the suites against `proxy.url`, and
asserts that exactly the matching check turns red with a message naming the deviation.

Design, kept small on purpose:
- `ThreadingHTTPServer` on 127.0.0.1 (free port), HTTP/1.1 keep-alive towards the client.
- Upstream via one `httpx.Client` (keep-alive pool, no redirects). The `Host` header is passed
  through unchanged, so the registry's absolute `Location` headers point back at the proxy.
- Bodies are buffered (fine for fixture-sized blobs). A client's chunked request body is decoded.
- An upstream answer whose body breaks off (2.8.2's stale descriptor cache after GC) is passed on
  as broken: same status and headers, the partial body, then the connection closes.

Rules: every rule whose `path` regex (searched in path+query) and `method` match a request fires,
in list order: delays add up, `rewrite`s chain, the first `respond` answers instead of the
upstream, then each rule edits the answer (`transform`, `status`, `drop_headers`, `set_headers`,
`body`). `times` limits how often a rule fires; `hits` lists every firing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy; lengths are recomputed.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
NO_BODY_STATUSES = frozenset({204, 304})


class Headers(dict):  # type: ignore[type-arg]
    """A plain dict of header name → value whose keys are stored lower-cased (HTTP names are case-insensitive).

    `headers["Docker-Content-Digest"]` and `headers["docker-content-digest"]` are the same entry.
    """

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            if key in self:
                # a repeated header (rare in registry answers) is folded as RFC 9110 §5.3 allows
                value = f"{self[key]}, {value}"
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        return super().pop(key.lower(), *default)

    def setdefault(self, key: str, default: str = "") -> str:  # type: ignore[override]
        return super().setdefault(key.lower(), default)

    def update(self, items: Any = (), **kw: str) -> None:  # type: ignore[override]
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in [*pairs, *kw.items()]:
            self[key] = value

    def copy(self) -> Headers:
        return Headers(self)


@dataclass
class Request:
    """What the client sent: method, path with query (as received), headers, body."""

    method: str
    path: str
    headers: Headers
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            self.headers = Headers(self.headers)


@dataclass
class Response:
    """An answer: from the upstream (then `request` is what was forwarded) or made by a rule.

    `broken=True` sends the headers as they are (Content-Length untouched) and the body, then closes
    the connection: a registry whose answer breaks off. `stream`: pieces written one by one after
    the headers, as they are (Content-Length untouched, no chunked framing), then the connection
    closes: an endless body, a drip, a declared size never sent (hostile self-tests). `raw`: the whole
    answer, status line and headers included, written piece by piece as it is (a head that drips).
    """

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    request: Request | None = None
    broken: bool = False
    stream: Iterable[bytes] | None = None
    raw: Iterable[bytes] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            self.headers = Headers(self.headers)


@dataclass
class Rule:
    path: str                      # regex searched in the request path+query
    method: str | None = None      # exact method, None = any
    status: int | None = None      # override the upstream status
    drop_headers: tuple[str, ...] = ()
    set_headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None      # replace the response body (Content-Length fixed up)
    transform: Callable[[Response], Response] | None = None   # edit the upstream answer
    respond: Callable[[Request], Response] | None = None      # answer without asking upstream
    rewrite: Callable[[Request], Request] | None = None       # change the request before forwarding
    delay: float = 0.0             # seconds before answering (latency injection)
    times: int | None = None       # apply at most N times, None = always

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


@dataclass(frozen=True)
class Hit:
    """One firing of a rule: which rule (its index in the rule list and the rule itself) on which request."""

    index: int
    rule: Rule
    method: str
    path: str


class FaultProxy:
    """Reverse proxy with fault rules; a context manager (`with FaultProxy(url, rules) as proxy:`)."""

    def __init__(self, upstream: str, rules: Sequence[Rule] = (), *, timeout: float = 60.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.hits: list[Hit] = []
        self._rules: list[Rule] = list(rules)
        self._fired: dict[int, int] = {}  # id(rule) -> times fired, for `times`
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.upstream, timeout=timeout, follow_redirects=False)
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None
        self._gone = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name=f"faultproxy {self.url}",
                                            kwargs={"poll_interval": 0.1}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
        self._client.close()

    def vanish(self) -> None:
        """The registry goes away for good: new connections are refused, and a request on a kept-alive
        connection is dropped unanswered (as when the host dies), so nothing is served any more."""
        self._gone = True
        self._server.socket.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- rules ------------------------------------------------------------------------------

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Replace the rules (a clean proxy: `set_rules([])`); `hits` is kept, clear it if needed."""
        with self._lock:
            self._rules = list(rules)
            self._fired.clear()

    def hit_count(self, rule: Rule) -> int:
        with self._lock:
            return sum(1 for h in self.hits if h.rule is rule)

    def _firing(self, method: str, path: str) -> list[Rule]:
        """The rules that fire on this request (consuming their `times`), recorded in `hits`."""
        fired = []
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not rule.matches(method, path):
                    continue
                count = self._fired.get(id(rule), 0)
                if rule.times is not None and count >= rule.times:
                    continue
                self._fired[id(rule)] = count + 1
                self.hits.append(Hit(index, rule, method, path))
                fired.append(rule)
        return fired

    # -- one exchange -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        rules = self._firing(request.method, request.path)
        delay = sum(r.delay for r in rules)
        if delay:
            time.sleep(delay)
        for rule in rules:
            if rule.rewrite is not None:
                request = rule.rewrite(request)
        responder = next((r.respond for r in rules if r.respond is not None), None)
        response = responder(request) if responder is not None else self.forward(request)
        if response.request is None:  # later transforms may ask what was answered
            response = replace(response, request=request)
        for rule in rules:
            response = apply_edits(rule, response)
        return response

    def forward(self, request: Request) -> Response:
        """Ask the upstream; a broken-off body is kept as such, an unreachable upstream is a 502."""
        headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP and k != "content-length"]
        upstream_req = self._client.build_request(request.method, request.path, headers=headers,
                                                  content=request.body if request.body or _has_body(request) else None)
        try:
            upstream = self._send(upstream_req)
        except httpx.HTTPError as exc:
            return Response(502, Headers({"content-type": "text/plain"}),
                            f"faultproxy: upstream {self.upstream} unreachable: {type(exc).__name__}: {exc}".encode(),
                            request)
        try:
            chunks: list[bytes] = []
            broken = False
            try:
                for chunk in upstream.iter_raw():
                    chunks.append(chunk)
            except httpx.HTTPError:  # the registry closed mid-body: pass the breakage on
                broken = True
            return Response(upstream.status_code, Headers(upstream.headers.multi_items()), b"".join(chunks),
                            request, broken=broken)
        finally:
            upstream.close()

    def _send(self, req: httpx.Request) -> httpx.Response:
        # A pooled connection the registry dropped (e.g. after `docker restart`) fails before any
        # answer: one retry on a fresh connection; anything else is the registry's answer.
        try:
            return self._client.send(req, stream=True)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
            return self._client.send(req, stream=True)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away (or idled out): nothing to report
        super().handle_error(request, client_address)


def _has_body(request: Request) -> bool:
    return request.method in ("POST", "PUT", "PATCH")


def apply_edits(rule: Rule, response: Response) -> Response:
    """One rule's edits of an answer: transform, then status, dropped and set headers, body."""
    if rule.transform is not None:
        response = rule.transform(response)
    if rule.status is None and not rule.drop_headers and not rule.set_headers and rule.body is None:
        return response
    headers = response.headers.copy()
    for name in rule.drop_headers:
        headers.pop(name, None)
    for name, value in rule.set_headers.items():
        headers[name] = value
    body = response.body
    if rule.body is not None:
        body = rule.body
        headers["content-length"] = str(len(body))
    return replace(response, status=rule.status if rule.status is not None else response.status,
                   headers=headers, body=body)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as registries and their clients use
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus delayed ACKs
        # stall some answers by ~40 ms, which would blur the latency the load self-tests inject.
        disable_nagle_algorithm = True
        timeout = 60  # an idle keep-alive connection does not hold a thread forever

        def _serve(self) -> None:
            if proxy._gone:  # noqa: SLF001 - see FaultProxy.vanish
                self.close_connection = True
                return
            request = Request(self.command, self.path, Headers(self.headers.items()), self._read_body())
            response = proxy.handle(request)
            self._write(response)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _read_chunked(self) -> bytes:
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()

        def _write(self, response: Response) -> None:
            head = self.command == "HEAD"
            no_body = head or response.status in NO_BODY_STATUSES or 100 <= response.status < 200
            headers = response.headers.copy()
            for name in HOP_BY_HOP:
                headers.pop(name, None)
            if response.raw is not None:
                self.close_connection = True
                self._write_pieces(response.raw)
                return
            if response.stream is not None:
                self._write_stream(response, headers)
                return
            if not response.broken and not head and response.status not in NO_BODY_STATUSES:
                headers["content-length"] = str(len(response.body))
            self.send_response_only(response.status)
            for name, value in headers.items():
                self.send_header(name, value)
            if response.broken:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not no_body:
                self.wfile.write(response.body)
            self.wfile.flush()

        def _write_stream(self, response: Response, headers: Headers) -> None:
            self.send_response_only(response.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            self._write_pieces(response.stream or ())

        def _write_pieces(self, pieces: Iterable[bytes]) -> None:
            try:
                for piece in pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()
            except (ConnectionError, TimeoutError, OSError):
                pass  # the client gave up: what a hostile registry wants to see

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: pytest shows failures
            pass

    return Handler


__all__ = ["FaultProxy", "Rule", "Request", "Response", "Headers", "Hit", "apply_edits"]
