"""Registry authentication for httpx: Basic, and Bearer tokens per the Docker token spec.

The client answers the registry's `WWW-Authenticate` challenge: Basic credentials, or a token
fetched from the challenge's realm (with service and scope), cached per scope. Credentials and
tokens live only in memory; the recorder redacts the headers that carry them.
"""

from __future__ import annotations

import re
from collections.abc import Generator

import httpx

from regconform.client import repository_of

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def guessed_scope(request: httpx.Request) -> str:
    """The scope a request needs, to reuse a cached token before the registry asks."""
    repo, _ = repository_of(str(request.url))
    if repo is None:
        return "registry:catalog:*" if "/_catalog" in request.url.path else ""
    if request.method in ("GET", "HEAD"):
        return f"repository:{repo}:pull"
    if request.method == "DELETE":
        return f"repository:{repo}:delete"
    return f"repository:{repo}:pull,push"


class RegistryAuth(httpx.Auth):
    requires_response_body = True

    def __init__(self, username: str, password: str, verify: bool | str = True) -> None:
        self._basic = httpx.BasicAuth(username, password)
        self._tokens: dict[str, str] = {}
        self._use_basic = False

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = guessed_scope(request)
        if scope in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        elif self._use_basic:
            request = next(self._basic.auth_flow(request))
        response = yield request
        if response.status_code != 401 or "www-authenticate" not in response.headers:
            return
        scheme, params = parse_challenge(response.headers["www-authenticate"])
        if scheme == "basic":
            self._use_basic = True
            yield next(self._basic.auth_flow(request))
            return
        if scheme != "bearer" or "realm" not in params:
            return
        token_request = httpx.Request("GET", params["realm"],
                                      params={k: v for k, v in params.items() if k in ("service", "scope")})
        token_response = yield next(self._basic.auth_flow(token_request))
        if token_response.status_code != 200:
            return
        doc = token_response.json()
        token = doc.get("token") or doc.get("access_token")
        if not token:
            return
        for key in {params.get("scope", ""), scope}:
            self._tokens[key] = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
