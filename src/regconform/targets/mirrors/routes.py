"""How a mirror names an upstream's repositories: a prefix, an `ns` query parameter, or nothing.

A mirror serving several upstreams selects one by a name prefix (`/v2/<prefix><name>/...`, as
nginx-routed registry:2 caches, Harbor proxy-cache projects and host-prefixed caches do) or by the
`ns` query parameter containerd sends (OCI distribution-spec, "Registry Proxying"). A `Route` is
one upstream as the mirror exposes it; `MirrorClient` is a client of the mirror that takes the
upstream's repository names and adds the route's prefix and `ns` on the wire, so every check
names repositories as the upstream does.

External deployments: `--upstream NAME=URL` (repeatable) with `--mirror-prefix [NAME=]P` and
`--mirror-ns [NAME=]VALUE`; credentials of upstream NAME from REGCONFORM_UPSTREAM_<NAME>_USERNAME
and REGCONFORM_UPSTREAM_<NAME>_PASSWORD (never on the command line). `--upstream-url` is the
single upstream named "upstream" (user --upstream-username, password REGCONFORM_UPSTREAM_PASSWORD).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from regconform.errors import SetupError
from regconform.registry.client import RegistryClient
from regconform.registry.names import repository_of

SINGLE = "upstream"  # the name of the upstream given with --upstream-url
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_PREFIX = re.compile(r"^([a-z0-9]+([._-][a-z0-9]+)*/)*$")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # never in a repr, a traceback or a report


@dataclass(frozen=True)
class Route:
    """One upstream as a mirror exposes it."""

    name: str
    upstream_url: str
    prefix: str = ""
    ns: str | None = None
    credentials: Credentials | None = None

    def mirror_name(self, repo: str) -> str:
        return self.prefix + repo

    def describe(self) -> dict[str, Any]:
        """What the reports say about the route (no credentials: only whether there are any)."""
        return {"upstream": self.name, "upstream_url": self.upstream_url, "prefix": self.prefix, "ns": self.ns,
                "upstream_auth": self.credentials is not None}


class MirrorClient(RegistryClient):
    """A client of a mirror that takes the upstream's repository names: the route's prefix is added to
    every path the client builds (Locations the mirror hands out are used as given) and `ns`, where the
    route has one, is sent on every request as containerd sends it. The run's namespace fence applies
    to the upstream's names."""

    def __init__(self, base_url: str, *, prefix: str = "", ns: str | None = None, **kw: Any) -> None:
        super().__init__(base_url, **kw)
        self.prefix, self.ns = prefix, ns

    def request(self, method: str, url: str | httpx.URL, *, params: dict[str, Any] | None = None,
                **kw: Any) -> Any:
        if isinstance(url, str) and url.startswith("/v2/") and self.prefix:
            repo, _ = repository_of(url)
            if repo is not None:
                url = "/v2/" + self.prefix + url[len("/v2/"):]
        if self.ns is not None:
            params = {**(params or {}), "ns": self.ns}
        return super().request(method, url, params=params, **kw)

    def _guard(self, repo: str | None, params: dict[str, Any] | None) -> None:
        if repo is not None and self.prefix and repo.startswith(self.prefix):
            repo = repo[len(self.prefix):]
        super()._guard(repo, params)


def env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def _credentials_from_env(name: str, env: Mapping[str, str]) -> Credentials | None:
    key = f"REGCONFORM_UPSTREAM_{env_key(name)}"
    user = env.get(f"{key}_USERNAME")
    if not user:
        return None
    return Credentials(user, env.get(f"{key}_PASSWORD", ""))


def _by_name(values: list[str], names: list[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` entries, or one bare VALUE when there is exactly one upstream."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep:
            if len(names) != 1:
                raise SetupError(f"{option} {value!r}: with several upstreams say which one it is for (NAME=VALUE)")
            name, rest = names[0], value
        if name not in names:
            raise SetupError(f"{option} {value!r}: no upstream named {name!r} (known: {', '.join(names)})")
        if name in out:
            raise SetupError(f"{option}: upstream {name!r} given twice")
        out[name] = rest
    return out


def external_routes(upstream_url: str | None, upstreams: list[str], prefixes: list[str], namespaces: list[str],
                    upstream_username: str | None, env: Mapping[str, str]) -> list[Route]:
    """The routes of a deployment named on the command line; bad input raises SetupError (exit 2)."""
    if upstream_url and upstreams:
        raise SetupError("give either --upstream-url (one upstream) or --upstream NAME=URL (repeatable), not both")
    named: dict[str, str] = {}
    if upstream_url:
        named[SINGLE] = upstream_url
    for entry in upstreams:
        name, sep, url = entry.partition("=")
        if not sep or not _NAME.match(name):
            raise SetupError(f"--upstream {entry!r}: expected NAME=URL (NAME: lower-case letters, digits, . _ -)")
        if name in named:
            raise SetupError(f"--upstream: the name {name!r} is given twice")
        named[name] = url
    for name, url in named.items():
        if not url.startswith(("http://", "https://")):
            raise SetupError(f"upstream {name}: {url!r} is not an http:// or https:// URL")
    names = list(named)
    by_prefix = _by_name(prefixes, names, "--mirror-prefix")
    by_ns = _by_name(namespaces, names, "--mirror-ns")
    for name, prefix in by_prefix.items():
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        if not _PREFIX.match(prefix):
            raise SetupError(f"--mirror-prefix {prefix!r}: not a repository name prefix (e.g. hub/ or quay.io/)")
        by_prefix[name] = prefix
    seen: dict[tuple[str, str | None], str] = {}
    routes = []
    for name, url in named.items():
        creds = _credentials_from_env(name, env)
        if name == SINGLE and upstream_username:
            creds = Credentials(upstream_username, env.get("REGCONFORM_UPSTREAM_PASSWORD", ""))
        route = Route(name, url.rstrip("/"), by_prefix.get(name, ""), by_ns.get(name), creds)
        key = (route.prefix, route.ns)
        if key in seen:
            raise SetupError(f"upstreams {seen[key]} and {name} are addressed alike on the mirror: give each its own "
                             "--mirror-prefix or --mirror-ns")
        seen[key] = name
        routes.append(route)
    return routes


__all__ = ["Credentials", "Route", "MirrorClient", "external_routes", "SINGLE", "env_key"]
