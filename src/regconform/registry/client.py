"""The one Distribution API client: every HTTP exchange of the harness goes through here.

It is explicit (one method per API operation, no magic), records every exchange for the
reports, redacts credentials before recording, verifies the digests of what it pulls and
streams large blobs instead of holding them in memory. Every answer is read within the limits
of `limits.py` (body caps after decompression, the transfer deadline, JSON depth, redirect hops):
a registry can make a check fail, never make the harness hang or swell.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import httpx

from regconform import USER_AGENT
from regconform.registry import limits, transport
from regconform.registry.digests import hasher_for, sha256_digest, verify_digest
from regconform.registry.errors import ClientError, DigestMismatch, UnsafeLocation
from regconform.registry.exchange import (
    Exchange,
    redact_headers,
    request_excerpt_of,
    response_excerpt_of,
)
from regconform.registry.media import ALL_MANIFEST_TYPES
from regconform.registry.names import repository_of

DEFAULT_CHUNK = 8 * 1024 * 1024
# Bytes per write of a streamed request body: small pieces keep the peak memory of a 1 GiB push flat
# (each piece is copied once more on its way to the socket; 8 MiB copies fragmented the heap).
STREAM_PIECE = 1024 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Answer(httpx.Response):
    """A registry's answer, read whole within the limits; `json()` refuses nesting beyond limits.MAX_JSON_DEPTH
    (limits.JSONTooDeep, a ValueError: "not valid JSON" to every caller, never a RecursionError)."""

    def json(self, **kwargs: Any) -> Any:
        try:
            return limits.loads(self.content)
        except limits.JSONTooDeep as exc:
            raise limits.JSONTooDeep(f"{self.request.method} {self.request.url.path}: the registry answered {exc}; "
                                     "a deviation (no Distribution document nests that deep)") from None


def answer_of(resp: httpx.Response, body: bytes) -> Answer:
    """An Answer holding the (already decoded) body, with the headers exactly as the registry sent them."""
    headers = httpx.Headers(resp.headers.multi_items())
    plain = httpx.Headers([(k, v) for k, v in headers.multi_items() if k.lower() != "content-encoding"])
    out = Answer(resp.status_code, headers=plain, content=body, request=resp.request)
    out.headers = headers  # content= would have decoded a gzip body a second time
    return out


def origin_of(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


class RegistryClient:
    """Explicit Distribution API client over one keep-alive httpx connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        verify: bool | str = True,
        timeout: float | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        namespace: str | None = None,
        limits_: limits.Limits | None = None,
        blob_redirects: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = httpx.URL(self.base_url)
        self.limits = limits_ or limits.Limits(timeout or limits.DEFAULT_TIMEOUT)
        from regconform.registry.auth import RegistryAuth

        if isinstance(auth, RegistryAuth):
            auth.limits = self.limits  # the token service under the same limits
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            transport=transport.bounded_transport(verify),
            timeout=self.limits.httpx_timeout(),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        )
        # Blob GET/HEAD redirects (S3/CDN-backed registries) are followed within limits.MAX_REDIRECTS
        # unless the profile says a redirect is a deviation (then it is not followed).
        self.blob_redirects = blob_redirects
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
        # Repositories of the run's namespace this client read or wrote: real clients (docker, sigstore, ...)
        # push into them behind the harness's back, so cleanup also deletes what their tags point to.
        self.touched_repos: set[str] = set()
        # A 429 with Retry-After is waited out and retried while the waits fit in this many seconds
        # (OCI §Error Codes; 0: every 429 reaches the caller, as checks of rate limiting need).
        self.retry_after_budget = limits.RETRY_AFTER_BUDGET

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_for(self, location: str) -> httpx.URL:
        """Resolve a Location; refuse any origin but the registry's own (the message names both)."""
        url = self.origin.join(location)
        if (url.scheme, url.host, url.port) != (self.origin.scheme, self.origin.host, self.origin.port):
            raise UnsafeLocation(f"the registry pointed to {_origin_words(url)}, another origin than its own "
                                 f"({origin_of(self.origin)}); the harness does not follow it")
        return url

    def _record(self, resp: httpx.Response, started: float, request_size: int, *, hops: list[str] | None = None,
                first: httpx.Request | None = None, excerpt: str | None = None, size: int | None = None) -> None:
        if not self.record:
            return
        req = first or resp.request
        if size is None:  # the bytes received (after decoding); for HEAD, the size the registry declares
            size = (len(resp.content) if hasattr(resp, "_content") and req.method != "HEAD"
                    else limits.declared_length(resp) or 0)
        ex = Exchange(
            method=req.method,
            url=str(req.url),
            status=resp.status_code,
            request_headers=redact_headers(req.headers.multi_items()),
            response_headers=redact_headers(resp.headers.multi_items()),
            request_body_size=request_size,
            response_body_size=size,
            response_excerpt=response_excerpt_of(resp) if excerpt is None else excerpt,
            duration_ms=(time.perf_counter() - started) * 1000,
            request_excerpt=request_excerpt_of(req),
            redirects=hops or [],
        )
        self.exchanges.append(ex)
        if self.on_exchange:
            self.on_exchange(ex)

    def _send(self, request: httpx.Request, *, follow: bool = False) -> tuple[httpx.Response, list[str]]:
        """Send (streamed: nothing read yet); follow redirects within the bound when `follow`.

        The registry's Authorization never goes to another origin (OCI: clients MUST NOT forward it
        across hosts); every hop is returned as "307 → URL" for the exchange. Timeouts name the
        request and the wait.
        """
        hops: list[str] = []
        current = request
        resp = self._timed(lambda: self.http.send(current, stream=True), current)
        while follow and resp.status_code in REDIRECTS and "location" in resp.headers:
            target = resp.request.url.join(resp.headers["location"])
            hops.append(f"{resp.status_code} → {target}")
            resp.close()
            if target.scheme not in ("http", "https"):
                raise ClientError(f"{request.method} {request.url}: redirected to a {target.scheme!r} URL, which "
                                  "the harness never follows")
            if len(hops) > self.limits.max_redirects:
                raise limits.LimitExceeded(f"{request.method} {request.url}: more than {self.limits.max_redirects} "
                                           f"redirects ({' ; '.join(hops)})", request=request)
            same_origin = origin_of(target) == origin_of(self.origin)
            headers = [(k, v) for k, v in current.headers.multi_items()
                       if same_origin or k.lower() not in ("authorization", "host")]
            current = self.http.build_request(current.method, target, headers=headers)
            if not same_origin:
                current.headers.pop("Authorization", None)
            resp = self._timed(lambda: self.http.send(current, stream=True, auth=None if not same_origin else
                                                      httpx.USE_CLIENT_DEFAULT), current)
        return resp, hops

    def _timed(self, send: Callable[[], httpx.Response], request: httpx.Request) -> httpx.Response:
        """`send` within the limits; a GET/HEAD whose kept-alive connection was closed unanswered is sent
        once more (RFC 9112 §9.3.1: servers may close idle connections; the retry goes on a new one)."""
        budget = self.limits.head_deadline()
        with transport.answer_head_deadline(budget) as deadline:
            try:
                try:
                    return send()
                except httpx.RemoteProtocolError as exc:
                    if request.method not in ("GET", "HEAD") or "without sending a response" not in str(exc):
                        raise
                    return send()
            except httpx.TimeoutException as exc:
                if deadline.expired:
                    raise type(exc)(f"{request.method} {request.url}: the answer's status line and headers were not "
                                    f"complete after {budget:.1f} s (bytes kept coming, below the minimum throughput "
                                    f"of {limits.describe_size(self.limits.min_throughput)}/s after "
                                    f"{self.limits.timeout:g} s of grace); the harness gave up", request=request) from None
                raise self._named_timeout(exc, request) from None

    def _named_timeout(self, exc: httpx.TimeoutException, request: httpx.Request) -> httpx.TimeoutException:
        """`exc` again, naming the request, what it waited for (e.g. the token service) and how long."""
        failed = exc.request if exc._request is not None else request  # noqa: SLF001 - .request raises when unset
        what = f"{request.method} {request.url}"
        if origin_of(failed.url) != origin_of(request.url) or failed.url.path != request.url.path:
            what += f" (waiting for {failed.method} {failed.url.copy_with(query=None)}, e.g. the token service)"
        return type(exc)(f"{what}: no answer within {self.limits.timeout:g} s ({type(exc).__name__}, "
                         "the --timeout of every wait)", request=request)

    def _read(self, resp: httpx.Response, cap: int, started: float, size: int, *, hops: list[str],
              first: httpx.Request) -> Answer:
        """The whole body within `cap`; an answer beyond a limit is recorded (as far as it went) and raised."""
        what = f"{first.method} {first.url}"
        try:
            body = b"" if first.method == "HEAD" else limits.read_body(resp, self.limits, cap, what)
        except limits.LimitExceeded as exc:
            self._record(resp, started, size, hops=hops, first=first, excerpt=f"<{exc}>")
            raise
        except httpx.TimeoutException as exc:
            self._record(resp, started, size, hops=hops, first=first, excerpt=f"<no more bytes within "
                         f"{self.limits.timeout:g} s>")
            raise type(exc)(f"{what}: the answer stalled (no bytes within {self.limits.timeout:g} s, "
                            f"{type(exc).__name__})", request=first) from None
        finally:
            resp.close()
        answer = answer_of(resp, body)
        self._record(answer, started, size, hops=hops, first=first)
        return answer

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        params: dict[str, Any] | None = None,
        cap: int | None = None,
    ) -> Answer:
        """One exchange, read whole within `cap` (default limits.MAX_BODY); blob GET/HEAD follow redirects."""
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            url = self.url_for(url)
        repo, kind = repository_of(str(url))
        self._guard(repo, params)
        if repo and self.namespace is not None:
            self.touched_repos.add(repo)  # inside the namespace (the guard said so): swept at cleanup
        if repo in self.read_only and method not in ("GET", "HEAD"):
            raise ClientError(f"refusing {method} on {repo!r}: it is a shared read-only fixture repository "
                              "(a check that changes content needs its own, e.g. the `pushed` fixture without @readonly)")
        size = len(content) if isinstance(content, bytes | bytearray) else int((headers or {}).get("Content-Length", 0))
        follow = self.blob_redirects and method in ("GET", "HEAD") and kind == "blobs"
        # 429 with Retry-After: wait and ask again, within the budget (a streamed body cannot be sent twice).
        budget = self.retry_after_budget if content is None or isinstance(content, bytes | bytearray) else 0.0
        while True:
            started = time.perf_counter()
            req = self.http.build_request(method, url, headers=headers, content=content, params=params)
            streamed, hops = self._send(req, follow=follow)
            resp = self._read(streamed, cap or self.limits.max_body, started, size, hops=hops, first=req)
            wait = retry_after_seconds(resp.headers.get("retry-after")) if resp.status_code == 429 else None
            if wait is None or wait > budget:
                break
            budget -= wait
            time.sleep(wait)
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

        Bounded: limits.CLEANUP_BUDGET in all, and the first request the registry does not answer
        in time (or at all) ends the cleanup; the rest is listed as left behind.
        """
        self.read_only.clear()  # the session is over: shared fixture repositories go too
        left: list[str] = []
        deadline = time.monotonic() + limits.CLEANUP_BUDGET
        self._adopt_tagged(deadline)
        work = [(self.delete_manifest, "manifest", item) for item in sorted(self.pushed_manifests)]
        work += [(self.delete_blob, "blob", item) for item in sorted(self.pushed_blobs)]
        for index, (delete, kind, (repo, digest)) in enumerate(work):
            if time.monotonic() > deadline:
                left += [f"{k} {r}@{d}: cleanup budget of {limits.CLEANUP_BUDGET:g} s spent" for _, k, (r, d) in work[index:]]
                break
            try:
                status = delete(repo, digest).status_code
            except (httpx.TimeoutException, httpx.NetworkError) as exc:
                left += [f"{kind} {repo}@{digest}: the registry stopped answering ({type(exc).__name__})"]
                left += [f"{k} {r}@{d}: skipped, the registry stopped answering" for _, k, (r, d) in work[index + 1:]]
                break
            except (httpx.HTTPError, ClientError) as exc:
                left.append(f"{kind} {repo}@{digest}: {type(exc).__name__}")
                continue
            if status not in (200, 202, 404):
                left.append(f"{kind} {repo}@{digest}: DELETE answered {status}")
        self.pushed_manifests.clear()
        self.pushed_blobs.clear()
        return left

    def _adopt_tagged(self, deadline: float) -> None:
        """Every tag in the repositories this client touched (all in the run's namespace) joins what cleanup deletes."""
        for repo in sorted(self.touched_repos):
            if time.monotonic() > deadline:
                return
            try:
                resp = self.list_tags(repo)
                tags = resp.json().get("tags") if resp.status_code == 200 else None
                for tag in (tags or [])[:limits.MAX_OBSERVED_ITEMS] if isinstance(tags, list) else []:
                    head = self.head_manifest(repo, str(tag))
                    if head.status_code == 200 and (digest := head.headers.get("docker-content-digest")):
                        self.pushed_manifests.add((repo, digest))
            except (httpx.HTTPError, ClientError, ValueError, AttributeError):
                return  # the registry stopped answering sensibly: what is known is still removed
        self.touched_repos.clear()

    def bearer_token(self, scope: str) -> str | None:
        """A token from the registry's token service for exactly `scope` (auth checks narrow scopes)."""
        from regconform.registry.auth import RegistryAuth

        auth = self.http.auth
        return auth.token_for(self.http, scope) if isinstance(auth, RegistryAuth) else None

    # -- base -----------------------------------------------------------------------------

    def ping(self) -> httpx.Response:
        return self.request("GET", "/v2/")

    # -- blobs ----------------------------------------------------------------------------

    def head_blob(self, repo: str, digest: str) -> httpx.Response:
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}")

    def get_blob(self, repo: str, digest: str, *, headers: dict[str, str] | None = None,
                 size: int | None = None) -> Answer:
        """GET a blob into memory: never more than `size` bytes (the size expected), else limits.MAX_BLOB_BUFFERED."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers, cap=size or limits.MAX_BLOB_BUFFERED)

    def get_blob_tolerant(self, repo: str, digest: str, *,
                          headers: dict[str, str] | None = None) -> tuple[Answer, str | None]:
        """GET a blob, keeping the answer even when its body breaks off (a registry may announce a
        Content-Length it never sends). Returns the answer holding the bytes that did arrive, and the
        transport error, or None."""
        self._guard(repository_of(f"/v2/{repo}/blobs/")[0], None)
        started = time.perf_counter()
        body = bytearray()
        error: str | None = None
        req = self.http.build_request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers)
        streamed, hops = self._send(req, follow=self.blob_redirects)
        try:
            for part in limits.iter_body(streamed, self.limits, limits.MAX_BLOB_BUFFERED, f"GET {req.url}"):
                body += part
        except httpx.RemoteProtocolError as exc:
            error = str(exc)
        finally:
            streamed.close()
        # A complete Response object (headers as sent, the bytes received) so checks can read it.
        resp = answer_of(streamed, bytes(body))
        self._record(resp, started, 0, hops=hops, first=req)
        return resp, error

    def pull_blob(self, repo: str, digest: str, size: int | None = None) -> bytes:
        """GET a blob and verify it hashes to its digest."""
        resp = self.get_blob(repo, digest, size=size)
        if resp.status_code != 200:
            raise ClientError(f"GET blob {digest} in {repo}: {resp.status_code}")
        verify_digest(resp.content, digest, f"blob {digest} in {repo}")
        return resp.content

    def stream_blob(self, repo: str, digest: str, sink: IO[bytes] | None = None, size: int | None = None) -> int:
        """Stream a blob without holding it in memory; verify the digest; return its size.

        Never more than `size` bytes are read (the size expected, e.g. from the manifest's descriptor),
        else limits.MAX_BLOB_STREAMED; the transfer deadline bounds the time. Pieces are hashed as they
        arrive (no re-chunking, which only copies). Hashing on a helper thread was tried: GIL hand-offs
        made it slower on a busy 2-core machine.
        """
        self._guard(repo, None)
        h = hasher_for(digest)
        received = 0
        started = time.perf_counter()
        req = self.http.build_request("GET", f"/v2/{repo}/blobs/{digest}")
        resp, hops = self._send(req, follow=self.blob_redirects)
        if resp.status_code != 200:
            self._read(resp, limits.MAX_BODY, started, 0, hops=hops, first=req)
            raise ClientError(f"GET blob {digest} in {repo}: {resp.status_code}")
        try:
            for part in limits.iter_body(resp, self.limits, size or limits.MAX_BLOB_STREAMED, f"GET {req.url}"):
                h.update(part)
                received += len(part)
                if sink is not None:
                    sink.write(part)
        except limits.LimitExceeded as exc:
            self._record(resp, started, 0, hops=hops, first=req, excerpt=f"<{exc}>", size=received)
            raise
        finally:
            resp.close()
        self._record(resp, started, 0, hops=hops, first=req, excerpt=f"<{received} bytes streamed>", size=received)
        got = f"{h.name}:{h.hexdigest()}"
        if got != digest:
            raise DigestMismatch(f"blob {digest} in {repo} hashes to {got}")
        return received

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


def _origin_words(url: httpx.URL) -> str:
    """An origin in words the report normaliser keeps (it replaces URLs of the run, not these)."""
    return f"host {url.host} port {url.port or (443 if url.scheme == 'https' else 80)} ({url.scheme})"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a Retry-After (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) asks to wait; None if unusable."""
    if not value or len(value) > 64:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 1 << 20))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


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
