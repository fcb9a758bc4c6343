"""The one Distribution API client: every HTTP exchange of the harness goes through here.

It is explicit (one method per API operation, no magic), records every exchange for the
reports, redacts credentials before recording, verifies the digests of what it pulls and
streams large blobs instead of holding them in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import httpx

from regconform.media import ALL_MANIFEST_TYPES

SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
REDACTED = "<redacted>"
BODY_EXCERPT_LIMIT = 2048
DEFAULT_CHUNK = 8 * 1024 * 1024
# Bytes per write of a streamed request body: small pieces keep the peak memory of a 1 GiB push flat
# (each piece is copied once more on its way to the socket; 8 MiB copies fragmented the heap).
STREAM_PIECE = 1024 * 1024


class ClientError(Exception):
    """A problem of the harness talking to the registry (not a registry deviation)."""


class UnsafeLocation(ClientError):
    """The registry pointed the client at another origin; the harness never follows it."""


class DigestMismatch(AssertionError):
    """Content served under a digest does not hash to that digest."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Exchange:
    """One request and its answer, as the reports show it (credentials already redacted)."""

    method: str
    url: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    request_body_size: int
    response_body_size: int
    response_excerpt: str
    duration_ms: float
    request_excerpt: str = ""  # JSON bodies sent (manifests), bounded; never form bodies

    @property
    def path(self) -> str:
        return httpx.URL(self.url).raw_path.decode()

    def error_codes(self) -> list[str]:
        return error_codes_of(self.response_excerpt)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "request_headers": self.request_headers,
            "response_headers": self.response_headers,
            "request_body_size": self.request_body_size,
            "response_body_size": self.response_body_size,
            "response_excerpt": self.response_excerpt,
            "duration_ms": round(self.duration_ms, 2),
            "request_excerpt": self.request_excerpt,
        }


def error_codes_of(body: str | bytes) -> list[str]:
    """Codes of a Distribution error envelope `{"errors":[{"code":...}]}`; [] if not one."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return []
    return [e.get("code") for e in doc["errors"] if isinstance(e, dict) and "code" in e]


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        key = k.lower()
        value = REDACTED if key in SECRET_HEADERS else v
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def redact_body(text: str) -> str:
    """Token endpoint answers carry bearer tokens: never keep them."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if isinstance(doc, dict) and any(k in doc for k in ("token", "access_token", "refresh_token")):
        for k in ("token", "access_token", "refresh_token"):
            if k in doc:
                doc[k] = REDACTED
        return json.dumps(doc)
    return text


def _excerpt(resp: httpx.Response) -> str:
    ctype = resp.headers.get("content-type", "")
    if not resp.is_stream_consumed and not hasattr(resp, "_content"):
        return ""
    body = resp.content[:BODY_EXCERPT_LIMIT]
    if "json" in ctype or "text" in ctype or ctype == "" or "manifest" in ctype or "index" in ctype:
        return redact_body(body.decode("utf-8", "replace"))
    return f"<{len(resp.content)} bytes of {ctype}>"


def _request_excerpt(req: httpx.Request) -> str:
    """The manifest or other JSON a request sent, for the reports; blobs and form bodies are left out."""
    ctype = req.headers.get("content-type", "")
    if not ("json" in ctype or "manifest" in ctype or "index" in ctype):
        return ""
    try:
        body = req.content
    except httpx.RequestNotRead:  # streamed: not kept
        return ""
    return redact_body(body[:BODY_EXCERPT_LIMIT].decode("utf-8", "replace"))


class RegistryClient:
    """Explicit Distribution API client over one keep-alive httpx connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        verify: bool | str = True,
        timeout: float = 60.0,
        on_exchange: Callable[[Exchange], None] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = httpx.URL(self.base_url)
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            verify=verify,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": "regconform/0.1"},
        )
        # httpx would send `Accept: */*` on every request: "no Accept" (accept=None) must mean none.
        del self.http.headers["Accept"]
        self.exchanges: list[Exchange] = []
        self.on_exchange = on_exchange
        self.record = True
        self.namespace = namespace
        # What this client created, so a run against a shared registry can remove it afterwards.
        self.pushed_manifests: set[tuple[str, str]] = set()
        self.pushed_blobs: set[tuple[str, str]] = set()
        # Repositories shared by several checks (pushed once per session): only GET and HEAD reach them.
        self.read_only: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_for(self, location: str) -> httpx.URL:
        """Resolve a Location; refuse any origin but the registry's own."""
        url = self.origin.join(location)
        if (url.scheme, url.host, url.port) != (self.origin.scheme, self.origin.host, self.origin.port):
            raise UnsafeLocation(f"registry pointed to {url.scheme}://{url.host}:{url.port}, outside the target {self.base_url}")
        return url

    def _record(self, resp: httpx.Response, started: float, request_size: int) -> None:
        if not self.record:
            return
        req = resp.request
        ex = Exchange(
            method=req.method,
            url=str(req.url),
            status=resp.status_code,
            request_headers=redact_headers(req.headers.multi_items()),
            response_headers=redact_headers(resp.headers.multi_items()),
            request_body_size=request_size,
            response_body_size=int(resp.headers.get("content-length", len(resp.content) if resp.is_stream_consumed else 0) or 0),
            response_excerpt=_excerpt(resp),
            duration_ms=(time.perf_counter() - started) * 1000,
            request_excerpt=_request_excerpt(req),
        )
        self.exchanges.append(ex)
        if self.on_exchange:
            self.on_exchange(ex)

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            url = self.url_for(url)
        repo, kind = repository_of(str(url))
        self._guard(repo, params)
        if repo in self.read_only and method not in ("GET", "HEAD"):
            raise ClientError(f"refusing {method} on {repo!r}: it is a shared read-only fixture repository "
                              "(a check that changes content needs its own, e.g. the `pushed` fixture without @readonly)")
        started = time.perf_counter()
        resp = self.http.request(method, url, headers=headers, content=content, params=params)
        size = len(content) if isinstance(content, bytes | bytearray) else int((headers or {}).get("Content-Length", 0))
        self._record(resp, started, size)
        if resp.status_code == 201 and repo and (digest := resp.headers.get("docker-content-digest")):
            (self.pushed_manifests if kind == "manifests" else self.pushed_blobs).add((repo, digest))
        return resp

    def _guard(self, repo: str | None, params: dict[str, Any] | None) -> None:
        """Never read, write or delete a repository outside the run's namespace."""
        if self.namespace is None:
            return
        names = [repo] if repo else []
        if params and "from" in params:
            names.append(str(params["from"]))
        for name in names:
            if name != self.namespace and not name.startswith(self.namespace + "/"):
                raise ClientError(f"refusing to touch repository {name!r}: outside the run's namespace {self.namespace!r}")

    def remove_pushed(self) -> list[str]:
        """Delete what this client pushed (manifests first, then blobs); absent content is fine.

        Returns what could not be removed (one line each), so the run can say so instead of failing.
        """
        self.read_only.clear()  # the session is over: shared fixture repositories go too
        left: list[str] = []
        work = [(self.delete_manifest, "manifest", item) for item in sorted(self.pushed_manifests)]
        work += [(self.delete_blob, "blob", item) for item in sorted(self.pushed_blobs)]
        for delete, kind, (repo, digest) in work:
            try:
                status = delete(repo, digest).status_code
            except (httpx.HTTPError, ClientError) as exc:
                left.append(f"{kind} {repo}@{digest}: {type(exc).__name__}")
                continue
            if status not in (200, 202, 404):
                left.append(f"{kind} {repo}@{digest}: DELETE answered {status}")
        self.pushed_manifests.clear()
        self.pushed_blobs.clear()
        return left

    def bearer_token(self, scope: str) -> str | None:
        """A token from the registry's token service for exactly `scope` (auth checks narrow scopes)."""
        from regconform.auth import RegistryAuth

        auth = self.http.auth
        return auth.token_for(self.http, scope) if isinstance(auth, RegistryAuth) else None

    # -- base -----------------------------------------------------------------------------

    def ping(self) -> httpx.Response:
        return self.request("GET", "/v2/")

    # -- blobs ----------------------------------------------------------------------------

    def head_blob(self, repo: str, digest: str) -> httpx.Response:
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}")

    def get_blob(self, repo: str, digest: str, *, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers)

    def get_blob_tolerant(self, repo: str, digest: str, *,
                          headers: dict[str, str] | None = None) -> tuple[httpx.Response, str | None]:
        """GET a blob, keeping the answer even when its body breaks off (a registry may announce a
        Content-Length it never sends). Returns the answer holding the bytes that did arrive, and the
        transport error, or None."""
        self._guard(repository_of(f"/v2/{repo}/blobs/")[0], None)
        started = time.perf_counter()
        body = bytearray()
        error: str | None = None
        with self.http.stream("GET", f"/v2/{repo}/blobs/{digest}", headers=headers) as streamed:
            try:
                for part in streamed.iter_bytes():
                    body += part
            except httpx.RemoteProtocolError as exc:
                error = str(exc)
        # A complete Response object (headers as sent, the bytes received) so checks can read it.
        resp = httpx.Response(streamed.status_code, headers=streamed.headers, content=bytes(body), request=streamed.request)
        self._record(resp, started, 0)
        return resp, error

    def pull_blob(self, repo: str, digest: str) -> bytes:
        """GET a blob and verify it hashes to its digest."""
        resp = self.get_blob(repo, digest)
        if resp.status_code != 200:
            raise ClientError(f"GET blob {digest} in {repo}: {resp.status_code}")
        verify_digest(resp.content, digest, f"blob {digest} in {repo}")
        return resp.content

    def stream_blob(self, repo: str, digest: str, sink: IO[bytes] | None = None, chunk: int | None = None) -> int:
        """Stream a blob without holding it in memory; verify the digest; return its size.

        Pieces are hashed as they arrive (`chunk=None`: no re-chunking, which only copies). Hashing
        on a helper thread was tried: GIL hand-offs made it slower on a busy 2-core machine.
        """
        self._guard(repo, None)
        h = hashlib.sha256()
        size = 0
        started = time.perf_counter()
        with self.http.stream("GET", f"/v2/{repo}/blobs/{digest}") as resp:
            if resp.status_code != 200:
                resp.read()
                self._record(resp, started, 0)
                raise ClientError(f"GET blob {digest} in {repo}: {resp.status_code}")
            for part in resp.iter_bytes(chunk):
                h.update(part)
                size += len(part)
                if sink is not None:
                    sink.write(part)
            self._record_stream(resp, started, size)
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise DigestMismatch(f"blob {digest} in {repo} hashes to {got}")
        return size

    def _record_stream(self, resp: httpx.Response, started: float, size: int) -> None:
        if not self.record:
            return
        req = resp.request
        ex = Exchange(req.method, str(req.url), resp.status_code, redact_headers(req.headers.multi_items()),
                      redact_headers(resp.headers.multi_items()), 0, size, f"<{size} bytes streamed>",
                      (time.perf_counter() - started) * 1000)
        self.exchanges.append(ex)
        if self.on_exchange:
            self.on_exchange(ex)

    def delete_blob(self, repo: str, digest: str) -> httpx.Response:
        return self.request("DELETE", f"/v2/{repo}/blobs/{digest}")

    # -- uploads --------------------------------------------------------------------------

    def start_upload(self, repo: str, *, params: dict[str, str] | None = None,
                     content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("POST", f"/v2/{repo}/blobs/uploads/", params=params, content=content, headers=headers)

    @staticmethod
    def with_query(location: str, **params: str) -> str:
        """Append to the Location's query: it carries upload state (`_state`) that must be kept."""
        extra = "&".join(f"{k}={v}" for k, v in params.items())
        return location + ("&" if "?" in location else "?") + extra

    def upload_chunk(self, location: str, data: bytes, *, start: int | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/octet-stream"}
        if start is not None:
            headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
            headers["Content-Length"] = str(len(data))
        return self.request("PATCH", location, headers=headers, content=data)

    def finish_upload(self, location: str, digest: str, data: bytes = b"") -> httpx.Response:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
        return self.request("PUT", self.with_query(location, digest=digest), headers=headers, content=data)

    def upload_status(self, location: str) -> httpx.Response:
        return self.request("GET", location)

    def cancel_upload(self, location: str) -> httpx.Response:
        return self.request("DELETE", location)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> httpx.Response:
        return self.start_upload(repo, params={"mount": digest, "from": from_repo})

    def push_blob(self, repo: str, data: bytes, digest: str | None = None) -> httpx.Response:
        """Monolithic push: POST for a session, then PUT with the whole body and the digest."""
        digest = digest or sha256_digest(data)
        started = self.start_upload(repo)
        if started.status_code != 202:
            return started
        return self.finish_upload(started.headers["location"], digest, data)

    def push_blob_single(self, repo: str, data: bytes, digest: str | None = None) -> httpx.Response:
        """Single-request push: POST with `digest` and the body."""
        digest = digest or sha256_digest(data)
        return self.start_upload(repo, params={"digest": digest}, content=data,
                                 headers={"Content-Type": "application/octet-stream"})

    def push_blob_chunked(self, repo: str, data: bytes, chunk_size: int) -> list[httpx.Response]:
        """Chunked push: PATCH with Content-Range per chunk, then a closing PUT. Returns every answer."""
        answers = [self.start_upload(repo)]
        if answers[0].status_code != 202:
            return answers
        location = answers[0].headers["location"]
        for start in range(0, len(data), chunk_size):
            resp = self.upload_chunk(location, data[start:start + chunk_size], start=start)
            answers.append(resp)
            if resp.status_code != 202:
                return answers
            location = resp.headers["location"]
        answers.append(self.finish_upload(location, sha256_digest(data)))
        return answers

    def push_blob_stream(self, repo: str, source: IO[bytes], digest: str, chunk_size: int = DEFAULT_CHUNK,
                         monolithic: bool = False) -> httpx.Response:
        """Push a large blob from a file object without holding it in memory.

        Monolithic: one PUT whose body streams from `source`. Chunked: PATCHes of `chunk_size` bytes
        (read into one reused buffer, sent in STREAM_PIECE pieces), then the closing PUT.
        """
        started = self.start_upload(repo)
        if started.status_code != 202:
            return started
        location = started.headers["location"]
        if monolithic:
            def body() -> Iterator[bytes]:
                while part := source.read(STREAM_PIECE):
                    yield part
            return self.request("PUT", self.with_query(location, digest=digest),
                                headers={"Content-Type": "application/octet-stream"}, content=body())
        offset = 0
        buffer = bytearray(chunk_size)
        while n := _fill(source, buffer):
            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + n - 1}",
                       "Content-Length": str(n)}
            resp = self.request("PATCH", location, headers=headers, content=_pieces(memoryview(buffer)[:n]))
            if resp.status_code != 202:
                return resp
            offset += n
            location = resp.headers["location"]
        return self.finish_upload(location, digest)

    # -- manifests ------------------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> httpx.Response:
        return self.request("PUT", f"/v2/{repo}/manifests/{reference}", headers={"Content-Type": media_type}, content=body)

    def get_manifest(self, repo: str, reference: str, *, accept: Iterable[str] | None = ALL_MANIFEST_TYPES,
                     headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers=self._accept(accept, headers))

    def head_manifest(self, repo: str, reference: str, *, accept: Iterable[str] | None = ALL_MANIFEST_TYPES,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("HEAD", f"/v2/{repo}/manifests/{reference}", headers=self._accept(accept, headers))

    def pull_manifest(self, repo: str, digest: str) -> bytes:
        """GET a manifest by digest and verify the bytes hash to it."""
        resp = self.get_manifest(repo, digest)
        if resp.status_code != 200:
            raise ClientError(f"GET manifest {digest} in {repo}: {resp.status_code}")
        verify_digest(resp.content, digest, f"manifest {digest} in {repo}")
        return resp.content

    def delete_manifest(self, repo: str, reference: str) -> httpx.Response:
        return self.request("DELETE", f"/v2/{repo}/manifests/{reference}")

    @staticmethod
    def _accept(accept: Iterable[str] | None, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if accept is not None:
            out["Accept"] = ", ".join(accept)
        return out

    # -- discovery ------------------------------------------------------------------------

    def list_tags(self, repo: str, *, n: int | None = None, last: str | None = None) -> httpx.Response:
        return self.request("GET", f"/v2/{repo}/tags/list", params=_page(n, last))

    def catalog(self, *, n: int | None = None, last: str | None = None) -> httpx.Response:
        return self.request("GET", "/v2/_catalog", params=_page(n, last))

    def follow_link(self, resp: httpx.Response) -> httpx.Response | None:
        """Next page from an RFC 5988 `Link: <...>; rel="next"` header, if any."""
        link = resp.links.get("next")
        if not link:
            return None
        return self.request("GET", self.url_for(link["url"]))

    def referrers(self, repo: str, digest: str, *, artifact_type: str | None = None) -> httpx.Response:
        params = {"artifactType": artifact_type} if artifact_type else None
        return self.request("GET", f"/v2/{repo}/referrers/{digest}", params=params)


def _fill(source: IO[bytes], buffer: bytearray) -> int:
    """Read from `source` until `buffer` is full or the source ends; the number of bytes read."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        part = source.read(min(STREAM_PIECE, len(buffer) - filled))
        if not part:
            break
        view[filled:filled + len(part)] = part
        filled += len(part)
    return filled


def _pieces(view: memoryview) -> Iterator[bytes]:
    for start in range(0, len(view), STREAM_PIECE):
        yield bytes(view[start:start + STREAM_PIECE])


_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>blobs|manifests|tags|referrers)/")


def repository_of(url: str) -> tuple[str | None, str | None]:
    """The repository name and endpoint kind of an API path, or (None, None) for /v2/ and _catalog."""
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "://" in url else path
    m = _REPO_PATH.match(path.split("?", 1)[0])
    return (m["name"], m["kind"]) if m else (None, None)


def _page(n: int | None, last: str | None) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    if n is not None:
        params["n"] = n
    if last is not None:
        params["last"] = last
    return params or None


def tls_verify(ca_cert: str | None, insecure: bool) -> bool | ssl.SSLContext:
    """httpx `verify=`: off with --insecure, a context trusting --ca-cert, else the default CAs.

    Raises OSError / ssl.SSLError for an unreadable or malformed CA file.
    """
    if insecure:
        return False
    if ca_cert:
        return ssl.create_default_context(cafile=ca_cert)
    return True


def verify_digest(data: bytes, digest: str, what: str) -> None:
    algo, _, _ = digest.partition(":")
    if algo != "sha256":
        raise ClientError(f"{what}: digest algorithm {algo!r} is not verified by regconform")
    got = sha256_digest(data)
    if got != digest:
        raise DigestMismatch(f"{what} hashes to {got}")

