"""Hostile registries for the self-tests: fault-proxy rules that attack the harness, and a silent server.

Each `Rule` factory plays one part of issue 11 in front of a real registry (the FaultProxy):
an endless or over-declared blob body, a gzip bomb, a 30 MB tag list, a drip, JSON nested 900
deep, Markdown/HTML/ANSI injection in error codes, an echo of the Authorization header, blob
redirects to another origin, token realms that are not http(s), redirect or answer no JSON, and
upload Locations on a foreign origin. `SilentServer` accepts connections and never answers
(a token service or registry that froze). `ArgvWatch` samples the argv of every process on the
machine while a run goes on, to prove no secret ever reaches a command line.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from faultproxy import Headers, Request, Response, Rule

BLOB_GET = r"/blobs/sha256:[0-9a-f]{64}$"
TAGS = r"/tags/list"
INJECTION = ("\x1b]0;pwned\x07\x1b[2J<script>alert(1)</script><img src=x onerror=alert(2)>"
             "`code` | cell\nnew line [click](javascript:alert(3)) \u202etxet")
HEADER_INJECTION = "registry/2.0 <script>alert(1)</script> `code` | cell [x](javascript:alert(3))"


def endless(piece: bytes = b"\0" * 65536) -> Iterator[bytes]:
    while True:
        yield piece


def drip(total: int = 4096, per_second: int = 10) -> Iterator[bytes]:
    """`total` bytes at `per_second` bytes a second (the issue's 4 KB layer at 10 B/s)."""
    for _ in range(0, total, per_second):
        time.sleep(1)
        yield b"x" * per_second


def dripping_head(seconds_apart: float = 1.0, lines: int = 120) -> Iterator[bytes]:
    """A status line, then one header line every `seconds_apart` s: each wait is short, the head never ends."""
    yield b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    for i in range(lines):
        time.sleep(seconds_apart)
        yield f"X-Drip-{i}: x\r\n".encode()


def gzip_bomb(decompressed: int = 256 << 20) -> bytes:
    """`decompressed` zero bytes, gzip-compressed (256 MiB → about 250 KB)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        zeros = b"\0" * (1 << 20)
        for _ in range(decompressed >> 20):
            gz.write(zeros)
    return out.getvalue()


def nested(depth: int = 900) -> bytes:
    return b'{"name": "x", "tags": ' + b"[" * depth + b"]" * depth + b"}"


def big_tag_list(count: int = 2_000_000) -> bytes:
    """About 30 MB: `count` tags of 14 characters."""
    return json.dumps({"name": "x", "tags": [f"tag-{i:010d}" for i in range(count)]}).encode()


def _answer(status: int, headers: dict[str, str], body: bytes = b"", stream: Iterator[bytes] | None = None):  # noqa: ANN202
    return lambda req: Response(status, Headers(headers), body, req, stream=stream)


def endless_blob() -> Rule:
    return Rule(BLOB_GET, method="GET", respond=lambda req: Response(
        200, Headers({"content-type": "application/octet-stream"}), b"", req, stream=endless()))


def declared_20_gib_blob() -> Rule:
    return Rule(BLOB_GET, method="GET", respond=lambda req: Response(
        200, Headers({"content-type": "application/octet-stream", "content-length": str(20 << 30)}), b"", req,
        stream=endless()))


def dripping_blob() -> Rule:
    return Rule(BLOB_GET, method="GET", respond=lambda req: Response(
        200, Headers({"content-type": "application/octet-stream", "content-length": "4096"}), b"", req,
        stream=drip()))


def dripping_head_tags() -> Rule:
    return Rule(TAGS, method="GET", respond=lambda req: Response(200, Headers(), b"", req, raw=dripping_head()))


def gzip_bomb_tags(bomb: bytes) -> Rule:
    return Rule(TAGS, method="GET", respond=_answer(200, {"content-type": "application/json",
                                                          "content-encoding": "gzip"}, bomb))


def big_tags(body: bytes) -> Rule:
    return Rule(TAGS, method="GET", respond=_answer(200, {"content-type": "application/json"}, body))


def extra_tags(count: int) -> Rule:
    """The registry's own tag list plus `count` tags nobody pushed (a large but well-formed answer)."""
    def extend(resp: Response) -> Response:
        if resp.status != 200:
            return resp
        doc = json.loads(resp.body)
        doc["tags"] = (doc.get("tags") or []) + [f"tag-{i:010d}" for i in range(count)]
        return Response(200, resp.headers.copy(), json.dumps(doc).encode(), resp.request)

    return Rule(TAGS, method="GET", transform=extend)


def nested_tags(depth: int = 900) -> Rule:
    return Rule(TAGS, method="GET", respond=_answer(200, {"content-type": "application/json"}, nested(depth)))


def nested_error(depth: int = 900) -> Rule:
    """A 404 whose error detail nests `depth` levels."""
    body = b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "x", "detail": ' + b"[" * depth + b"]" * depth + b"}]}"
    return Rule(r"/manifests/", method="GET", status=404, body=body, set_headers={"content-type": "application/json"})


def injected_error_code() -> Rule:
    """Every 404 carries an error code made to break terminals, Markdown and HTML; every answer an API
    version header made to break Markdown and HTML (headers cannot carry control characters)."""
    body = json.dumps({"errors": [{"code": INJECTION, "message": INJECTION}]}).encode()

    def inject(resp: Response) -> Response:
        headers = resp.headers.copy()
        headers["docker-distribution-api-version"] = HEADER_INJECTION
        if resp.status != 404:
            return Response(resp.status, headers, resp.body, resp.request)
        headers["content-type"] = "application/json"
        return Response(404, headers, body, resp.request)

    return Rule(r"/v2/", transform=inject)


def echo_authorization() -> Rule:
    """The request's Authorization copied into a response header and into every JSON body."""
    def echo(resp: Response) -> Response:
        sent = resp.request.headers.get("authorization", "") if resp.request else ""
        if not sent:
            return resp
        headers = resp.headers.copy()
        headers["x-echo-authorization"] = sent
        body = resp.body
        if "json" in headers.get("content-type", "") and body.strip().startswith(b"{"):
            body = body.strip()[:-1] + (b", " if body.strip() != b"{}" else b"") + json.dumps(
                {"echo": sent, "password": sent.split(" ", 1)[-1]}).encode()[1:]
        return Response(resp.status, headers, body, resp.request)

    return Rule(r"/v2/", transform=echo)


def redirect_blobs_to(cdn_url: str) -> Rule:
    """Blob GETs answered 307 to the same path on another origin (an S3/CDN-backed registry)."""
    return Rule(BLOB_GET, method="GET", respond=lambda req: Response(
        307, Headers({"location": cdn_url.rstrip("/") + req.path, "content-length": "0"}), b"", req))


def bearer_challenge(realm: str) -> Rule:
    """Every request without credentials gets a Bearer challenge naming `realm`."""
    def challenge(req: Request) -> Response:
        return Response(401, Headers({"content-type": "application/json",
                                      "www-authenticate": f'Bearer realm="{realm}",service="hostile"'}),
                        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', req)

    return Rule(r"^/v2/", respond=challenge)


def token_answer(status: int, headers: dict[str, str], body: bytes) -> Rule:
    return Rule(r"^/token", respond=_answer(status, headers, body))


def foreign_upload_location(origin: str = "http://registry.elsewhere.invalid:5000") -> Rule:
    """Upload sessions whose Location points at another origin."""
    def move(resp: Response) -> Response:
        location = resp.headers.get("location")
        if resp.status != 202 or not location:
            return resp
        headers = resp.headers.copy()
        path = location.split("://", 1)[-1].split("/", 1)[-1] if "://" in location else location.lstrip("/")
        headers["location"] = f"{origin}/{path}"
        return Response(resp.status, headers, resp.body, resp.request)

    return Rule(r"/blobs/uploads/", method="POST", transform=move)


class _Background:
    """A daemon thread running `_loop` until the `with` block ends; `_close` releases what it holds."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def __enter__(self):  # noqa: ANN204 - the subclass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._close()


class SilentServer(_Background):
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (a frozen token service)."""

    def __init__(self) -> None:
        super().__init__()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []

    def _loop(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)

    def _close(self) -> None:
        for conn in self._held:
            conn.close()
        self._sock.close()


class ArgvWatch(_Background):
    """Samples /proc/*/cmdline of every process while active; `hits` lists each argv holding a secret."""

    def __init__(self, secrets: list[str], interval: float = 0.1) -> None:
        super().__init__()
        self.secrets = [s.encode() for s in secrets if s]
        self.interval = interval
        self.hits: list[str] = []
        self.samples = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or entry.name == str(os.getpid()):
                    continue
                try:
                    argv = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if any(s in argv for s in self.secrets):
                    self.hits.append(f"pid {entry.name}: {argv[:80]!r}…")
            self.samples += 1
            self._stop.wait(self.interval)


__all__ = ["ArgvWatch", "SilentServer", "INJECTION", "BLOB_GET", "TAGS"]
