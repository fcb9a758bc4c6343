"""Fixtures of the mirror suites: the mirror pair, a client for each side, fixture images on the upstream.

Without --mirror-url every check runs on the embedded topologies (see regconform.targets.mirrors):
the pairs "open" and "auth", and the routed mirror (nginx in front of both caches) by each route:
"routed-hub", "routed-quay" (name prefixes), "routed-ns-quay" (`ns` query parameter),
"routed-host-hub" (hub alone on a port of its own, as dockerd's registry-mirrors needs). With
--mirror-url on each upstream of the deployment named (--upstream-url: variant "external";
--upstream NAME=URL: "external-NAME"), names mapped by --mirror-prefix / --mirror-ns.
Fixture images go to the upstream only, and there only on embedded pairs or with --push-fixtures.
Every check's record says which upstream it used, and how the mirror named it (observation "route").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from regconform import __version__
from regconform.checks import observe
from regconform.content.images import FixtureSet, push_fixture_set
from regconform.errors import SetupError
from regconform.fixtures import _auth, make_client, on_exchange
from regconform.registry.client import RegistryClient
from regconform.settings import Settings
from regconform.targets.mirrors import (
    VARIANTS,
    EmbeddedMirror,
    ExternalMirror,
    MirrorClient,
    MirrorPair,
    Route,
    external_routes,
)
from regconform.targets.mirrors.routed import (
    ROUTED_VARIANTS,
    RoutedMirror,
    upstream_named,
)
from regconform.targets.mirrors.routes import SINGLE

EMBEDDED_VARIANTS = [*VARIANTS, *ROUTED_VARIANTS]


def routes_of(config: pytest.Config) -> list[Route]:
    """The upstreams of the deployment at --mirror-url, as the options name them (exit 2 on bad input)."""
    try:
        return external_routes(config.getoption("--upstream-url"), config.getoption("--upstream") or [],
                               config.getoption("--mirror-prefix") or [], config.getoption("--mirror-ns") or [],
                               config.getoption("--upstream-username"), os.environ)
    except SetupError as exc:
        pytest.exit(f"regconform: {exc}", returncode=2)


def external_variant(route: Route) -> str:
    return "external" if route.name == SINGLE else f"external-{route.name}"


def _variants(config: pytest.Config) -> list[str]:
    if config.getoption("--mirror-url"):
        return [external_variant(route) for route in routes_of(config)]
    return list(EMBEDDED_VARIANTS)


def variant_kind(variant: str) -> str:
    """What `mirror_variants` markers name: open, auth (the routed routes by their upstream's pair), external."""
    if variant in ROUTED_VARIANTS:
        return upstream_named(ROUTED_VARIANTS[variant][0]).variant
    return "external" if variant.startswith("external") else variant


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mirror_variants(*kinds): run a mirror check only on pairs of these kinds "
                                       "(open, auth, external; a routed route counts as its upstream's kind)")
    config.addinivalue_line("markers", "mirror_routed: run a mirror check only where names are mapped "
                                       "(a prefix or ns: the routed routes, or --mirror-prefix / --mirror-ns)")


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A run against one registry (--registry-url, no --mirror-url) has no mirror to check: the mirror
    checks leave the run. Checks of images named with --image exist only when images are named."""
    ours = [item for item in items if HERE in Path(item.path).resolve().parents]
    if config.getoption("--registry-url") and not config.getoption("--mirror-url"):
        dropped = ours
    elif not config.getoption("--image"):
        dropped = [item for item in ours if "image_ref" in getattr(item, "fixturenames", ())]
    else:
        dropped = []
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [item for item in items if id(item) not in gone]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mirror_pair" in metafunc.fixturenames:
        variants = _variants(metafunc.config)
        if marker := metafunc.definition.get_closest_marker("mirror_variants"):
            variants = [v for v in variants if variant_kind(v) in marker.args]
        metafunc.parametrize("mirror_pair", variants, indirect=True, scope="session")
    if "image_ref" in metafunc.fixturenames:
        refs = metafunc.config.getoption("--image") or []
        metafunc.parametrize("image_ref", refs, ids=refs)


def start_embedded_pair(settings: Settings, variant: str, credentials_via: str) -> EmbeddedMirror:
    from regconform.targets.engine import docker_client
    from regconform.targets.imagebuild import resolve_registry_image

    image = resolve_registry_image(docker_client(), settings.registry_image, pull=settings.pull)
    return EmbeddedMirror(image, settings.run_id, variant, credentials_via=credentials_via)


class EmbeddedTopologies:
    """The session's embedded pairs and routed mirror, started when a check first needs them, closed at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pairs: dict[str, EmbeddedMirror] = {}
        self.routed: RoutedMirror | None = None

    def pair(self, variant: str) -> EmbeddedMirror:
        if variant not in self.pairs:
            # How the mirror is given the upstream's credentials is a fact of the registry family.
            via = self.settings.profile.expect("mirror.upstream-auth")["credentials"]
            self.pairs[variant] = start_embedded_pair(self.settings, variant, via)
        return self.pairs[variant]

    def get(self, variant: str) -> MirrorPair:
        if variant not in ROUTED_VARIANTS:
            return self.pair(variant)
        if self.routed is None:
            self.routed = RoutedMirror(self.pair)
        return self.routed.pair(variant)

    def close(self) -> None:
        if self.routed is not None:
            self.routed.close()
        for pair in self.pairs.values():
            pair.close()


@pytest.fixture(scope="session")
def embedded_topologies(settings: Settings) -> Iterator[EmbeddedTopologies]:
    topologies = EmbeddedTopologies(settings)
    try:
        yield topologies
    finally:
        topologies.close()


@pytest.fixture(scope="session")
def mirror_pair(request: pytest.FixtureRequest, settings: Settings) -> Iterator[MirrorPair]:
    """The mirror and its upstream, one per variant (the upstream is running between checks)."""
    config = request.config
    external = bool(config.getoption("--mirror-url"))
    if external:
        route = next(r for r in routes_of(config) if external_variant(r) == request.param)
        single = len(routes_of(config)) == 1
        pair: MirrorPair = ExternalMirror(
            config.getoption("--mirror-url"), route, variant=request.param,
            stop_command=config.getoption("--upstream-stop-command") if single else None,
            start_command=config.getoption("--upstream-start-command") if single else None, verify=settings.verify)
        label = f"mirror {pair.mirror_url} of " + ", ".join(f"{r.name} {r.upstream_url}" for r in routes_of(config))
    else:
        try:
            pair = request.getfixturevalue("embedded_topologies").get(request.param)
        except SetupError as exc:
            pytest.exit(f"regconform: {exc}", returncode=2)
        label = f"embedded mirrors ({', '.join(_variants(config))}) of {settings.registry_image}"
    info = {**pair.info(), "registry": label, "url": pair.mirror_url, "profile": settings.profile.name,
            "harness": __version__, "backend": "external" if external else settings.backend,
            "namespace": settings.namespace, "run_id": settings.run_id}
    variants = {**settings.target_info.get("mirror_variants", {}), request.param: pair.info()}
    settings.target_info = {**info, "mirror_variants": variants}
    if hasattr(config, "workerinput"):
        config.workeroutput["regconform_target"] = settings.target_info  # type: ignore[attr-defined]
    yield pair  # embedded topologies close at the end of the session, external ones are left as they are


@pytest.fixture(autouse=True)
def route_in_report(request: pytest.FixtureRequest) -> None:
    """Every check's record names the upstream it used and how the mirror named it (prefix, ns)."""
    if "mirror_pair" in request.fixturenames:
        observe("route", request.getfixturevalue("mirror_pair").route.describe())
    if request.node.get_closest_marker("mirror_routed") and "mirror_pair" in request.fixturenames:
        pair = request.getfixturevalue("mirror_pair")
        if not (pair.prefix or pair.ns):
            pytest.skip("the mirror names this upstream's repositories as the upstream does (no prefix, no ns)")


def mirror_client_for(settings: Settings, pair: MirrorPair, namespace: str | None) -> MirrorClient:
    """A client of the mirror naming repositories as the upstream does (the pair's prefix and ns added)."""
    return MirrorClient(pair.mirror_url, prefix=pair.prefix, ns=pair.ns, auth=_auth(settings), verify=settings.verify,
                        on_exchange=on_exchange, namespace=namespace)


def upstream_client_for(settings: Settings, pair: MirrorPair, namespace: str | None) -> RegistryClient:
    auth = None
    if pair.upstream_credentials:
        from regconform.registry.auth import RegistryAuth

        auth = RegistryAuth(pair.upstream_credentials.username, pair.upstream_credentials.password)
    return RegistryClient(pair.upstream_url, auth=auth, verify=settings.verify, on_exchange=on_exchange,
                          namespace=namespace)


@pytest.fixture(scope="session")
def upstream(settings: Settings, mirror_pair: MirrorPair) -> Iterator[RegistryClient]:
    """Client of the upstream (with its credentials), fenced to the run's namespace."""
    client = upstream_client_for(settings, mirror_pair, settings.namespace)
    try:
        yield client
    finally:
        if mirror_pair.variant.startswith("external") and not settings.keep:
            client.record = False
            client.remove_pushed()
        client.close()


@pytest.fixture(scope="session")
def mirror(settings: Settings, mirror_pair: MirrorPair) -> Iterator[RegistryClient]:
    """Client of the mirror: no upstream credentials (a mirror's clients need none)."""
    client = mirror_client_for(settings, mirror_pair, settings.namespace)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def anonymous_upstream(settings: Settings, mirror_pair: MirrorPair) -> Iterator[RegistryClient]:
    """Client of the upstream without credentials (to show the upstream really requires them)."""
    client = RegistryClient(mirror_pair.upstream_url, verify=settings.verify, on_exchange=on_exchange,
                            namespace=settings.namespace)
    try:
        yield client
    finally:
        client.close()


@dataclass
class OwnPair:
    pair: EmbeddedMirror
    upstream: RegistryClient
    mirror: RegistryClient


@pytest.fixture
def own_mirror_pair(settings: Settings, pytestconfig: pytest.Config) -> Iterator[Callable[[str, str], OwnPair]]:
    """Factory for an embedded pair of a check's own (e.g. another credential wiring), removed afterwards."""
    if pytestconfig.getoption("--mirror-url") or settings.registry_url:
        pytest.skip("starts a mirror pair of its own: embedded only")
    started: list[OwnPair] = []

    def start(variant: str, credentials_via: str) -> OwnPair:
        pair = start_embedded_pair(settings, variant, credentials_via)
        own = OwnPair(pair, upstream_client_for(settings, pair, settings.namespace),
                      make_client(settings, pair.mirror_url))
        started.append(own)
        return own

    yield start
    for own in started:
        own.upstream.close()
        own.mirror.close()
        own.pair.close()


@pytest.fixture(scope="session")
def readers(settings: Settings, mirror_pair: MirrorPair) -> Iterator[tuple[RegistryClient, RegistryClient]]:
    """(mirror, upstream) clients for images the user names with --image: outside the run's
    namespace, so unfenced; the checks only ever GET and HEAD through them."""
    m = mirror_client_for(settings, mirror_pair, None)
    u = upstream_client_for(settings, mirror_pair, None)
    try:
        yield m, u
    finally:
        m.close()
        u.close()


@dataclass(frozen=True)
class Mirrored:
    """A fixture set on the upstream, not yet pulled through the mirror."""

    repo: str
    images: FixtureSet


@pytest.fixture
def mirrored(mirror_pair: MirrorPair, upstream: RegistryClient, repo: str, fixtures: FixtureSet,
             pytestconfig: pytest.Config) -> Mirrored:
    if mirror_pair.variant.startswith("external") and not pytestconfig.getoption("--push-fixtures"):
        pytest.skip("needs fixture images on the upstream: give --push-fixtures (or name existing images with --image)")
    push_fixture_set(upstream, repo, fixtures)
    return Mirrored(repo, fixtures)


@dataclass
class UpstreamSwitch:
    """Stops the upstream for a block of a check and always starts it again."""

    pair: MirrorPair

    def __enter__(self) -> UpstreamSwitch:
        self.pair.stop_upstream()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pair.start_upstream()


@pytest.fixture
def upstream_down(mirror_pair: MirrorPair) -> Callable[[], UpstreamSwitch]:
    """`with upstream_down():` the upstream is stopped inside the block."""
    if not mirror_pair.can_stop_upstream:
        pytest.skip("stops the upstream: embedded pair only (or give --upstream-stop-command and --upstream-start-command)")
    if mirror_pair.variant.startswith("external") and os.environ.get("PYTEST_XDIST_WORKER"):
        # Every worker shares the one upstream: stopping it would fail the other workers' checks.
        pytest.skip("stops the shared upstream: run the upstream-down checks without -n")
    return lambda: UpstreamSwitch(mirror_pair)


@dataclass
class RouteClients:
    """One upstream of the mirror with a client for each side (for checks across every route)."""

    name: str
    prefix: str
    ns: str | None
    upstream: RegistryClient
    mirror: MirrorClient


@pytest.fixture
def all_routes(settings: Settings, pytestconfig: pytest.Config,
               request: pytest.FixtureRequest) -> Iterator[list[RouteClients]]:
    """Every route of the mirror: the routed topology's (embedded), or each --upstream of the deployment
    (needs --push-fixtures: the check pushes to every upstream)."""
    if pytestconfig.getoption("--mirror-url"):
        if not pytestconfig.getoption("--push-fixtures"):
            pytest.skip("pushes an image to every upstream: give --push-fixtures")
        pairs: list[MirrorPair] = [
            ExternalMirror(pytestconfig.getoption("--mirror-url"), route, verify=settings.verify)
            for route in routes_of(pytestconfig)]
    else:
        topologies = request.getfixturevalue("embedded_topologies")
        pairs = [topologies.get(variant) for variant in ROUTED_VARIANTS]
    out = [RouteClients(p.route_name, p.prefix, p.ns, upstream_client_for(settings, p, settings.namespace),
                        mirror_client_for(settings, p, settings.namespace)) for p in pairs]
    observe("routes", [p.route.describe() for p in pairs])
    try:
        yield out
    finally:
        for route in out:
            if pytestconfig.getoption("--mirror-url") and not settings.keep:
                route.upstream.record = False
                route.upstream.remove_pushed()
            route.upstream.close()
            route.mirror.close()


@dataclass
class HostileMirror:
    """A mirror whose upstream names a token realm on another origin, and that realm's record URL."""

    client: MirrorClient
    realm_url: str


@pytest.fixture(scope="session")
def hostile_mirror(settings: Settings, pytestconfig: pytest.Config) -> Iterator[HostileMirror]:
    """Embedded: realm, token-auth upstream and mirror (--mirror-binary) as local processes. A deployment:
    the mirror at --mirror-url, whose upstream names the realm at --realm-url."""
    from regconform.targets.mirrors.realm import HostileUpstreamMirror

    if pytestconfig.getoption("--mirror-url"):
        realm_url = pytestconfig.getoption("--realm-url")
        if not realm_url:
            pytest.skip("needs a token realm on another origin that the upstream names: embedded, or --realm-url")
        route = routes_of(pytestconfig)[0]
        client = MirrorClient(pytestconfig.getoption("--mirror-url"), prefix=route.prefix, ns=route.ns,
                              auth=_auth(settings), verify=settings.verify, on_exchange=on_exchange,
                              namespace=settings.namespace)
        try:
            yield HostileMirror(client, realm_url)
        finally:
            client.close()
        return
    binary = pytestconfig.getoption("--mirror-binary")
    if binary and not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.exit(f"regconform: --mirror-binary {binary!r} is not an executable file", returncode=2)
    try:
        topology = HostileUpstreamMirror(binary)
    except SetupError as exc:
        pytest.exit(f"regconform: {exc}", returncode=2)
    client = MirrorClient(topology.mirror_url, on_exchange=on_exchange, namespace=settings.namespace)
    try:
        yield HostileMirror(client, topology.realm_url)
    finally:
        client.close()
        topology.close()
