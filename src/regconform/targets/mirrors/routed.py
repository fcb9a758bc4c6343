"""The embedded routed mirror: real nginx in front of one distribution pull-through cache per upstream.

Two upstreams, as multi-upstream registry:2 mirrors are run: "hub" (open) and "quay" (basic auth;
its cache holds the credentials as the profile says the registry family honours them). Each is an
`EmbeddedMirror` pair on a private Docker network of its own (the session's "open" and "auth"
pairs: the caches behind nginx are the ones checked directly too); nginx (a local process on
127.0.0.1) routes `/v2/<prefix><name>/...` and `?ns=<host>` to the pair's cache. Each route is
checked as a `RoutedPair`: the mirror URL is nginx's, names get the route's prefix or ns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regconform.errors import SetupError
from regconform.targets.base import free_port
from regconform.targets.mirrors.nginx import Nginx, NginxRoute
from regconform.targets.mirrors.pairs import EmbeddedMirror, MirrorPair


@dataclass(frozen=True)
class Upstream:
    """One upstream of the routed topology: its pair variant, its prefix and ns value."""

    name: str
    variant: str  # EmbeddedMirror variant: "open" or "auth"
    prefix: str
    ns: str
    own_port: bool = False  # also alone on a port of its own (a host-routed cache, e.g. for dockerd)


UPSTREAMS = (Upstream("hub", "open", "hub/", "hub.regconform.test", own_port=True),
             Upstream("quay", "auth", "quay/", "quay.regconform.test"))
# Check variants of the routed topology: (id, upstream, addressed by) — by prefix each, by ns the auth one,
# by a port of its own the open one (dockerd's registry-mirrors takes no path and sends no ns).
ROUTED_VARIANTS = {"routed-hub": ("hub", "prefix"), "routed-quay": ("quay", "prefix"), "routed-ns-quay": ("quay", "ns"),
                   "routed-host-hub": ("hub", "host")}


def upstream_named(name: str) -> Upstream:
    return next(u for u in UPSTREAMS if u.name == name)


class RoutedMirror:
    """nginx plus one EmbeddedMirror pair per upstream; `pair(variant)` is the view a check uses."""

    def __init__(self, pair_of: Callable[[str], EmbeddedMirror]) -> None:
        """`pair_of(variant)`: the EmbeddedMirror pair of that variant (owned, and closed, by the caller)."""
        self.pairs = {up.name: pair_of(up.variant) for up in UPSTREAMS}
        self.ports = {up.name: free_port() for up in UPSTREAMS if up.own_port}
        self.nginx = Nginx([NginxRoute(up.name, self.pairs[up.name].mirror_url.removeprefix("http://"),
                                       prefix=up.prefix, ns=up.ns, listen=self.ports.get(up.name)) for up in UPSTREAMS])
        self.url = self.nginx.url
        self.description = f"embedded routed mirror (nginx; upstreams {', '.join(u.name for u in UPSTREAMS)})"

    def pair(self, variant: str) -> RoutedPair:
        if variant not in ROUTED_VARIANTS:
            raise SetupError(f"unknown routed variant {variant!r}; known: {', '.join(ROUTED_VARIANTS)}")
        name, by = ROUTED_VARIANTS[variant]
        up = upstream_named(name)
        url = f"http://127.0.0.1:{self.ports[name]}" if by == "host" else self.url
        return RoutedPair(self, variant, self.pairs[name], url, up.prefix if by == "prefix" else "",
                          up.ns if by == "ns" else None, name)

    def close(self) -> None:
        self.nginx.close()


class RoutedPair(MirrorPair):
    """One route of the routed topology: nginx's URL, one upstream, its prefix or ns."""

    can_read_cache_state = True

    def __init__(self, topology: RoutedMirror, variant: str, inner: EmbeddedMirror, url: str, prefix: str,
                 ns: str | None, name: str) -> None:
        self.topology, self.inner, self.variant = topology, inner, variant
        self.mirror_url = url
        self.upstream_url = inner.upstream_url
        self.upstream_credentials = inner.upstream_credentials
        self.route_name, self.prefix, self.ns = name, prefix, ns
        self.can_stop_upstream = inner.can_stop_upstream
        via = f"prefix {prefix}" if prefix else f"ns={ns}" if ns else f"its own port ({url})"
        self.description = f"{topology.description}: upstream {name} by {via}"

    def stop_upstream(self) -> None:
        self.inner.stop_upstream()

    def start_upstream(self) -> None:
        self.inner.start_upstream()
        self.upstream_url = self.inner.upstream_url

    def cache_state(self) -> dict[str, Any] | None:
        return self.inner.cache_state()

    def holds_blob(self, repo: str, digest: str) -> bool | None:
        return self.inner.holds_blob(repo, digest)  # nginx strips the prefix: the cache stores upstream names

    def info(self) -> dict[str, Any]:
        return {**super().info(), "cache": self.inner.mirror_url}

    def close(self) -> None:
        """The topology is shared by its routes: closed once, at the end of the session."""
