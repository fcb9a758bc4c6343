"""Registry authentication for httpx: Basic, and Bearer tokens per the Docker token spec.

The client answers the registry's `WWW-Authenticate` challenge: Basic credentials, or a token
fetched from the challenge's realm (with service and scope), cached per scope until it expires.
Once the registry has said which scheme it wants, credentials go with the first request
(a cached token, or one fetched for the scope the request needs), so a streamed upload never
needs a retry it could not replay. Credentials and tokens live only in memory; the recorder
redacts the headers that carry them, token requests are never recorded, and every credential
and token is given to the scrubber (scrub.py) the moment it is known.

The token service is as hostile as the registry: its requests carry the same timeouts and
User-Agent, its answer is read within limits.MAX_TOKEN_ANSWER, redirects are followed within
limits.MAX_REDIRECTS (Basic credentials never to another origin), and when no token comes back
`failure` says what actually happened (a realm that is not http(s), an answer that is not JSON,
a redirect, a refusal), so no message blames the credentials for something else.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import httpx

from regconform import USER_AGENT
from regconform.registry import limits, scrub
from regconform.registry.names import repository_of

REDIRECTS = frozenset({301, 302, 303, 307, 308})

_PARAM = re.compile(r'(\w+)="([^"]*)"')
# The token spec: a token without `expires_in` is valid for 60 s.
DEFAULT_TOKEN_LIFETIME = 60
# Refetch a little before expiry, so a token never expires in flight.
EXPIRY_MARGIN = 10


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def guessed_scope(request: httpx.Request) -> str:
    """The scope a request needs (as distribution names it), to send a token before the registry asks."""
    repo, _ = repository_of(str(request.url))
    if repo is None:
        return "registry:catalog:*" if request.url.path.rstrip("/").endswith("/_catalog") else ""
    if request.method in ("GET", "HEAD"):
        return f"repository:{repo}:pull"
    if request.method == "DELETE":
        return f"repository:{repo}:delete"
    scope = f"repository:{repo}:pull,push"
    if (source := request.url.params.get("from")) and request.url.params.get("mount"):
        scope += f" repository:{source}:pull"  # a cross-repository mount also reads the source
    return scope


def scope_key(scope: str) -> str:
    """One cache key per scope, whatever the order: 2.8 lists actions in Go map order (push,pull or pull,push)."""
    items = []
    for item in scope.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        items.append(f"{kind}:{name}:{','.join(sorted(actions.split(',')))}")
    return " ".join(sorted(items))


@dataclass
class _Token:
    value: str = field(repr=False)
    expires: float = 0.0  # time.monotonic() deadline

    @property
    def fresh(self) -> bool:
        return time.monotonic() < self.expires


class RegistryAuth(httpx.Auth):
    """Answers Basic and Bearer challenges; `username=None` fetches anonymous tokens only."""

    # Only token answers are read (in _fetch): reading every answer here would break streamed
    # GETs, and answers that break off mid-body, before the caller sees them.
    requires_response_body = False

    def __init__(self, username: str | None = None, password: str | None = None,
                 limits_: limits.Limits | None = None) -> None:
        scrub.remember_credentials(username, password)
        self.limits = limits_ or limits.Limits()
        self.failure: str | None = None  # why the last token request gave no token (None: it gave one)
        self.username = username
        self._basic = httpx.BasicAuth(username, password or "") if username else None
        self._tokens: dict[str, _Token] = {}
        self._scheme: str | None = None  # "basic" or "bearer", once the registry has said
        self._bearer: dict[str, str] = {}  # realm and service of the last Bearer challenge
        self.token_fetches = 0  # how many token requests were sent (caching is observable)

    def __repr__(self) -> str:  # never the password
        return f"RegistryAuth(username={self.username!r})"

    # -- the flow httpx drives ------------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = guessed_scope(request)
        if self._scheme == "basic" and self._basic is not None:
            request = next(self._basic.auth_flow(request))
        elif self._scheme == "bearer":
            token = self._cached(scope)
            if token is None:
                token = yield from self._fetch(scope)
            if token is not None:
                request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401 or "www-authenticate" not in response.headers:
            return
        scheme, params = parse_challenge(response.headers["www-authenticate"])
        sent = request.headers.get("Authorization", "")
        if scheme == "basic":
            self._scheme = "basic"
            if self._basic is None or sent.lower().startswith("basic "):
                return  # no credentials, or the registry refused them: the 401 stands
            yield next(self._basic.auth_flow(request))
            return
        if scheme != "bearer" or "realm" not in params:
            return
        self._scheme = "bearer"
        self._bearer = {k: params[k] for k in ("realm", "service") if k in params}
        wanted = params.get("scope", scope)
        token = yield from self._fetch(wanted)
        if token is not None and sent == f"Bearer {token}":
            return  # the token service gave the token the registry just refused: its 401 stands
        if token is None:
            # httpx answers the last response it saw: send the request once more (without
            # credentials) so the caller gets the registry's 401, not the token service's refusal.
            request.headers.pop("Authorization", None)
            yield request
            return
        self._tokens[scope_key(scope)] = self._tokens[scope_key(wanted)]
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    # -- tokens -----------------------------------------------------------------------------------

    def _cached(self, scope: str) -> str | None:
        token = self._tokens.get(scope_key(scope))
        return token.value if token is not None and token.fresh else None

    def token_request(self, scope: str) -> httpx.Request:
        """GET <realm>?service=...&scope=... (one `scope` parameter per scope), Basic credentials if any."""
        params: list[tuple[str, str]] = []
        if "service" in self._bearer:
            params.append(("service", self._bearer["service"]))
        params += [("scope", s) for s in scope.split()]
        if self.username:
            params.append(("account", self.username))
        # The realm's own query string is kept (distribution and containerd keep it too).
        url = httpx.URL(self._bearer["realm"]).copy_merge_params(params)
        request = self._plain_request(url)
        return next(self._basic.auth_flow(request)) if self._basic is not None else request

    def _plain_request(self, url: httpx.URL) -> httpx.Request:
        return httpx.Request("GET", url, headers={"User-Agent": USER_AGENT},
                             extensions={"timeout": self.limits.httpx_timeout().as_dict()})

    def _fetch(self, scope: str) -> Generator[httpx.Request, httpx.Response, str | None]:
        """Ask the token service (following redirects within the bound); the token, or None and `failure`."""
        realm = self._bearer.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            self.failure = (f"the registry's Bearer challenge names a token realm that is not an http(s) URL "
                            f"({scrub.terminal_safe(realm[:200])!r}); no token was requested")
            return None
        self.token_fetches += 1
        request = self.token_request(scope)
        hops: list[str] = []
        while True:
            response = yield request
            if response.status_code not in REDIRECTS or "location" not in response.headers:
                break
            target = request.url.join(response.headers["location"])
            hops.append(f"{response.status_code} → {target.copy_with(query=None)}")
            try:
                self._read(response, "a redirect of the token service")
            except limits.LimitExceeded as exc:
                self.failure = str(exc)
                return None
            if target.scheme not in ("http", "https") or len(hops) > self.limits.max_redirects:
                self.failure = (f"the token service redirected {' then '.join(hops)}; the harness follows at most "
                                f"{self.limits.max_redirects} http(s) redirects, so no token")
                return None
            same = (target.scheme, target.host, target.port) == (request.url.scheme, request.url.host, request.url.port)
            auth_header = request.headers.get("Authorization") if same else None
            request = self._plain_request(target)
            if auth_header:
                request.headers["Authorization"] = auth_header  # Basic credentials never go to another origin
        try:
            body = self._read(response, f"the token service {request.url.copy_with(query=None)}")
        except limits.LimitExceeded as exc:
            self.failure = str(exc)
            return None
        return self._accept(scope, response.status_code, body, request.url, hops)

    def _read(self, response: httpx.Response, what: str) -> bytes:
        """A token service's answer within limits.MAX_TOKEN_ANSWER. httpx reads every answer an auth flow
        saw once the flow moves on: the bounded body is kept as the answer's content, so it never reads more."""
        try:
            body = limits.read_body(response, self.limits, limits.MAX_TOKEN_ANSWER, what)
        except limits.LimitExceeded:
            response._content = b""  # noqa: SLF001 - see above
            response.close()
            raise
        response._content = body  # noqa: SLF001 - see above
        return body

    def _accept(self, scope: str, status: int, body: bytes, url: httpx.URL, hops: tuple[str, ...] | list[str] = ()) -> str | None:
        where = f"the token service {url.copy_with(query=None)}" + (f" (after {', '.join(hops)})" if hops else "")
        if status != 200:
            self.failure = f"{where} refused the request ({status})"
            return None
        try:
            doc = limits.loads(body)
        except (ValueError, UnicodeDecodeError):
            self.failure = f"{where} answered 200 with a body that is not JSON ({len(body)} bytes)"
            return None
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            self.failure = f"{where} answered 200 without a token"
            return None
        scrub.remember(value, doc.get("refresh_token") if isinstance(doc.get("refresh_token"), str) else None)
        if len(value) > limits.MAX_TOKEN:
            self.failure = f"{where} answered a token of {len(value)} bytes, more than the {limits.MAX_TOKEN} the harness accepts"
            return None
        lifetime = doc.get("expires_in")
        lifetime = lifetime if isinstance(lifetime, int) and lifetime > 0 else DEFAULT_TOKEN_LIFETIME
        self._tokens[scope_key(scope)] = _Token(value, time.monotonic() + max(lifetime - EXPIRY_MARGIN, 1))
        self.failure = None
        return value

    def token_for(self, http: httpx.Client, scope: str) -> str | None:
        """A token for exactly `scope` (auth checks narrow scopes on purpose); None if refused.

        Learns the realm from an unauthenticated `GET /v2/` when no challenge was seen yet.
        """
        if not self._bearer:
            scheme, params = parse_challenge(http.get("/v2/", auth=None).headers.get("www-authenticate", ""))
            if scheme != "bearer" or "realm" not in params:
                return None
            self._scheme = "bearer"
            self._bearer = {k: params[k] for k in ("realm", "service") if k in params}
        flow = self._fetch(scope)
        try:
            request = next(flow)
            while True:
                request = flow.send(http.send(request, auth=None, stream=True))
        except StopIteration as done:
            return done.value


class StaticToken(httpx.Auth):
    """Sends one given bearer token with every request and never fetches another."""

    def __init__(self, token: str) -> None:
        scrub.remember(token)
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
