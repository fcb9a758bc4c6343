"""Registry authentication for httpx: Basic, and Bearer tokens per the Docker token spec.

The client answers the registry's `WWW-Authenticate` challenge: Basic credentials, or a token
fetched from the challenge's realm (with service and scope), cached per scope until it expires.
Once the registry has said which scheme it wants, credentials go with the first request
(a cached token, or one fetched for the scope the request needs), so a streamed upload never
needs a retry it could not replay. Credentials and tokens live only in memory; the recorder
redacts the headers that carry them, and token requests are never recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import httpx

from regconform.client import repository_of

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

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
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
        request = httpx.Request("GET", self._bearer["realm"], params=params)
        return next(self._basic.auth_flow(request)) if self._basic is not None else request

    def _fetch(self, scope: str) -> Generator[httpx.Request, httpx.Response, str | None]:
        if not self._bearer.get("realm", "").startswith(("http://", "https://")):
            return None
        self.token_fetches += 1
        response = yield self.token_request(scope)
        response.read()  # sync flows may read here; the client is synchronous
        return self._accept(scope, response)

    def _accept(self, scope: str, response: httpx.Response) -> str | None:
        if response.status_code != 200:
            return None
        try:
            doc = response.json()
        except ValueError:
            return None
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            return None
        lifetime = doc.get("expires_in")
        lifetime = lifetime if isinstance(lifetime, int) and lifetime > 0 else DEFAULT_TOKEN_LIFETIME
        self._tokens[scope_key(scope)] = _Token(value, time.monotonic() + max(lifetime - EXPIRY_MARGIN, 1))
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
        self.token_fetches += 1
        return self._accept(scope, http.send(self.token_request(scope), auth=None))


class StaticToken(httpx.Auth):
    """Sends one given bearer token with every request and never fetches another."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
