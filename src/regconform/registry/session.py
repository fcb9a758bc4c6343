"""The exchange layer under the API client: one keep-alive connection pool, every exchange bounded and recorded.

Each request is sent within the limits of `limits.py` (body caps after decompression, the transfer
deadline, JSON depth, redirect hops), follows blob redirects without carrying the registry's
Authorization to another origin, waits out a 429's Retry-After within a budget, refuses any
repository outside the run's namespace, and is recorded (credentials redacted) for the reports.
The API operations themselves are in `client.py`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any, Self

import httpx

from regconform import USER_AGENT
from regconform.registry import limits, transport
from regconform.registry.errors import ClientError, UnsafeLocation
from regconform.registry.exchange import (
    Exchange,
    redact_headers,
    request_excerpt_of,
    response_excerpt_of,
)
from regconform.registry.names import repository_of

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


class RegistrySession:
    """Bounded, recorded exchanges with one registry (the state every API operation shares)."""

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

    def __enter__(self) -> Self:
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

    def bearer_token(self, scope: str) -> str | None:
        """A token from the registry's token service for exactly `scope` (auth checks narrow scopes)."""
        from regconform.registry.auth import RegistryAuth

        auth = self.http.auth
        return auth.token_for(self.http, scope) if isinstance(auth, RegistryAuth) else None


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


def tls_verify(ca_cert: str | None, insecure: bool) -> bool | ssl.SSLContext:
    """httpx `verify=`: off with --insecure, a context trusting --ca-cert, else the default CAs.

    Raises OSError / ssl.SSLError for an unreadable or malformed CA file.
    """
    if insecure:
        return False
    if ca_cert:
        return ssl.create_default_context(cafile=ca_cert)
    return True
