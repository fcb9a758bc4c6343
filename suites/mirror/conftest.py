"""Fixtures of the mirror suites: the mirror pair, a client for each side, fixture images on the upstream.

Without --mirror-url every check runs on two embedded pairs (variants "open" and "auth", see
regconform.mirror); with --mirror-url/--upstream-url on the deployment named (variant "external").
Fixture images go to the upstream only, and there only on embedded pairs or with --push-fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from regconform import __version__
from regconform.client import RegistryClient
from regconform.errors import SetupError
from regconform.images import FixtureSet, push_fixture_set
from regconform.mirror import VARIANTS, Credentials, EmbeddedMirror, ExternalMirror, MirrorPair
from regconform.plugin import Settings, _on_exchange, make_client


def _variants(config: pytest.Config) -> list[str]:
    return ["external"] if config.getoption("--mirror-url") else list(VARIANTS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mirror_variants(*names): run a mirror check only on these pair variants")


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
            variants = [v for v in variants if v in marker.args]
        metafunc.parametrize("mirror_pair", variants, indirect=True, scope="session")
    if "image_ref" in metafunc.fixturenames:
        refs = metafunc.config.getoption("--image") or []
        metafunc.parametrize("image_ref", refs, ids=refs)


def _external(config: pytest.Config, settings: Settings) -> ExternalMirror:
    upstream_url = config.getoption("--upstream-url")
    if not upstream_url:
        pytest.exit("regconform: --mirror-url needs --upstream-url (the registry the mirror pulls from)", returncode=2)
    creds = None
    if user := config.getoption("--upstream-username"):
        creds = Credentials(user, os.environ.get("REGCONFORM_UPSTREAM_PASSWORD", ""))
    return ExternalMirror(config.getoption("--mirror-url"), upstream_url, upstream_credentials=creds,
                          stop_command=config.getoption("--upstream-stop-command"),
                          start_command=config.getoption("--upstream-start-command"), verify=settings.verify)


def start_embedded_pair(settings: Settings, variant: str, credentials_via: str) -> EmbeddedMirror:
    from regconform.engine import docker_client
    from regconform.imagebuild import resolve_registry_image

    image = resolve_registry_image(docker_client(), settings.registry_image, pull=settings.pull)
    return EmbeddedMirror(image, settings.run_id, variant, credentials_via=credentials_via)


@pytest.fixture(scope="session")
def mirror_pair(request: pytest.FixtureRequest, settings: Settings) -> Iterator[MirrorPair]:
    """The mirror and its upstream (one pair per variant; the upstream is running between checks)."""
    config = request.config
    if request.param == "external":
        pair: MirrorPair = _external(config, settings)
    else:
        # How the mirror is given the upstream's credentials is a fact of the registry family.
        via = settings.profile.expect("mirror.upstream-auth")["credentials"]
        try:
            pair = start_embedded_pair(settings, request.param, via)
        except SetupError as exc:
            pytest.exit(f"regconform: {exc}", returncode=2)
    label = (f"mirror {pair.mirror_url} of {pair.upstream_url}" if request.param == "external"
             else f"embedded mirror pairs ({', '.join(_variants(config))}) of {settings.registry_image}")
    info = {**pair.info(), "registry": label, "url": pair.mirror_url, "profile": settings.profile.name,
            "harness": __version__,
            "backend": "external" if request.param == "external" else settings.backend,
            "namespace": settings.namespace, "run_id": settings.run_id}
    variants = {**settings.target_info.get("mirror_variants", {}), request.param: pair.info()}
    settings.target_info = {**info, "mirror_variants": variants}
    if hasattr(config, "workerinput"):
        config.workeroutput["regconform_target"] = settings.target_info  # type: ignore[attr-defined]
    try:
        yield pair
    finally:
        pair.close()


def upstream_client_for(settings: Settings, pair: MirrorPair, namespace: str | None) -> RegistryClient:
    auth = None
    if pair.upstream_credentials:
        from regconform.auth import RegistryAuth

        auth = RegistryAuth(pair.upstream_credentials.username, pair.upstream_credentials.password)
    return RegistryClient(pair.upstream_url, auth=auth, verify=settings.verify, on_exchange=_on_exchange,
                          namespace=namespace)


@pytest.fixture(scope="session")
def upstream(settings: Settings, mirror_pair: MirrorPair) -> Iterator[RegistryClient]:
    """Client of the upstream (with its credentials), fenced to the run's namespace."""
    client = upstream_client_for(settings, mirror_pair, settings.namespace)
    try:
        yield client
    finally:
        if mirror_pair.variant == "external" and not settings.keep:
            client.record = False
            client.remove_pushed()
        client.close()


@pytest.fixture(scope="session")
def mirror(settings: Settings, mirror_pair: MirrorPair) -> Iterator[RegistryClient]:
    """Client of the mirror: no upstream credentials (a mirror's clients need none)."""
    client = make_client(settings, mirror_pair.mirror_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def anonymous_upstream(settings: Settings, mirror_pair: MirrorPair) -> Iterator[RegistryClient]:
    """Client of the upstream without credentials (to show the upstream really requires them)."""
    client = RegistryClient(mirror_pair.upstream_url, verify=settings.verify, on_exchange=_on_exchange,
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
    m = make_client(settings, mirror_pair.mirror_url)
    m.namespace = None
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
    if mirror_pair.variant == "external" and not pytestconfig.getoption("--push-fixtures"):
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
    if mirror_pair.variant == "external" and os.environ.get("PYTEST_XDIST_WORKER"):
        # Every worker shares the one upstream: stopping it would fail the other workers' checks.
        pytest.skip("stops the shared upstream: run the upstream-down checks without -n")
    return lambda: UpstreamSwitch(mirror_pair)
