"""The fixtures the suites use: the registry under test, its client, fresh repositories, pushed
fixture images, the profile's expectations. The GC, restart and deletion-disabled registries are in
fixtures_gc.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from regconform import __version__
from regconform.content.images import FixtureSet, Format, fixture_set, push_fixture_set
from regconform.errors import SetupError
from regconform.profiles import Expectation, Profile
from regconform.registry.client import RegistryClient
from regconform.registry.exchange import Exchange
from regconform.reports import guard, record
from regconform.settings import SETTINGS, Settings, is_worker
from regconform.targets import Target, embedded_target, registry_env
from regconform.targets.external import ExternalTarget


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def profile(settings: Settings) -> Profile:
    return settings.profile


def _auth(settings: Settings) -> Any:
    if not settings.username:
        return None
    from regconform.registry.auth import RegistryAuth

    return RegistryAuth(settings.username, settings.password)


def make_client(settings: Settings, url: str, auth: Any = "settings") -> RegistryClient:
    """A client for one target, wired to the check record, fenced to the run's namespace, within the run's limits."""
    # `auth`: the run's credentials unless a check asks for others (None: none at all).
    return RegistryClient(url, auth=_auth(settings) if auth == "settings" else auth, verify=settings.verify, on_exchange=on_exchange,
                          namespace=settings.namespace, limits_=settings.limits,
                          blob_redirects=bool(settings.profile.checks.get("blobs.redirect", {}).get("follow", True)))


def on_exchange(ex: Exchange) -> None:
    """Every exchange goes to the check's record and, as one step with attachments, to Allure."""
    record.on_exchange(ex)
    if record.current() is not None:
        from regconform.reports.writers import allure_exchange_step

        allure_exchange_step(ex)


_resolved_images: dict[tuple[str, bool], str] = {}


def start_embedded(settings: Settings, env: dict[str, str]) -> Target:
    image = settings.registry_image
    if settings.backend == "docker":
        key = (settings.registry_image, settings.pull)
        if key not in _resolved_images:  # once per session, not per private registry
            from regconform.settings import reap_orphans_quietly
            from regconform.targets.engine import docker_client

            reap_orphans_quietly()  # containers of runs killed outright, before this run adds its own
            from regconform.targets.imagebuild import resolve_registry_image

            _resolved_images[key] = resolve_registry_image(docker_client(), settings.registry_image, pull=settings.pull,
                                                           binary=settings.registry_binary)
        image = _resolved_images[key]
    return embedded_target(settings.backend, image, settings.run_id, env, settings.registry_binary)


@pytest.fixture(scope="session")
def target(settings: Settings, pytestconfig: pytest.Config) -> Iterator[Target]:
    """The registry under test: external by URL, else one embedded registry per xdist worker."""
    if settings.registry_url:
        from regconform.targets.preflight import check_external

        try:  # `pytest suites` gets the one-line errors of `regconform run`
            check_external(settings.registry_url, username=settings.username, password=settings.password,
                           ca_cert=settings.ca_cert, insecure=settings.insecure, timeout=settings.timeout)
        except SetupError as exc:
            guard.state.stopped = f"{guard.ENVIRONMENT_PREFIX}{exc}"  # the reports say why nothing ran
            pytest.exit(f"regconform: {guard.bounded_text(str(exc), 500)}", returncode=2)
        tgt: Target = ExternalTarget(settings.registry_url, settings.gc_command, settings.restart_command,
                                     verify=settings.verify,
                                     gc_delete_untagged=pytestconfig.getoption("--gc-delete-untagged"))
    else:
        try:
            tgt = start_embedded(settings, registry_env(True, settings.registry_env))
        except SetupError as exc:
            pytest.exit(f"regconform: {exc}", returncode=2)
    info = {"url": tgt.url, "target": tgt.description, "profile": settings.profile.name,
            "backend": "external" if settings.registry_url else settings.backend, "harness": __version__,
            "registry": settings.registry_label, "registry_env": settings.registry_env,
            "namespace": settings.namespace, "run_id": settings.run_id}
    settings.target_info = info
    if is_worker(pytestconfig):
        pytestconfig.workeroutput["regconform_target"] = info  # type: ignore[attr-defined]
    try:
        yield tgt
    finally:
        tgt.stop()


@pytest.fixture(scope="session")
def registry(settings: Settings, target: Target) -> Iterator[RegistryClient]:
    """The API client for the registry under test (one keep-alive pool per worker)."""
    client = make_client(settings, target.url)
    try:
        yield client
    finally:
        if settings.registry_url and not settings.keep:
            client.record = False
            client.read_only.clear()
            if left := client.remove_pushed():
                import warnings

                warnings.warn(f"regconform: {len(left)} pushed item(s) could not be removed from "
                              f"{settings.registry_url}, e.g. {left[0]}", stacklevel=1)
        client.close()


@pytest.fixture
def client_with(settings: Settings, target: Target) -> Iterator[Callable[[Any], RegistryClient]]:
    """Factory for auth checks: `client_with(auth)` is a client of the target with other credentials
    (an httpx.Auth, or None for none at all), recorded and fenced like `registry`; closed afterwards."""
    made: list[RegistryClient] = []

    def make(auth: Any) -> RegistryClient:
        made.append(make_client(settings, target.url, auth=auth))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def namespace(settings: Settings, worker_id: str) -> str:
    return f"{settings.namespace}/{worker_id}"


_repo_counter = iter(range(1, 1 << 30))


@pytest.fixture
def repo(namespace: str, request: pytest.FixtureRequest) -> str:
    """A fresh repository name for this check, unique per run, worker and check."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower()).strip("-")[:40]
    return f"{namespace}/{slug}-{next(_repo_counter)}"


@pytest.fixture
def expect(profile: Profile) -> Callable[[str], Expectation]:
    """`expect("key")`: the profile's expectation for a behaviour (recorded for the reports)."""
    from regconform.checks import note_expectation

    def lookup(key: str) -> Expectation:
        exp = profile.expect(key)
        note_expectation(exp)
        return exp

    return lookup


@pytest.fixture
def fixtures(fmt: Format) -> FixtureSet:
    return fixture_set(fmt)


@dataclass(frozen=True)
class Pushed:
    repo: str
    images: FixtureSet


@pytest.fixture(scope="session")
def shared_pushes() -> dict[str, Pushed]:
    """Fixture sets pushed once per worker (by format) for checks marked `readonly`."""
    return {}


@pytest.fixture
def pushed(request: pytest.FixtureRequest, registry: RegistryClient, repo: str, fixtures: FixtureSet,
           namespace: str, shared_pushes: dict[str, Pushed]) -> Pushed:
    """The fixture set (two images sharing a layer, their tags, an index) pushed to a fresh repo.

    A check marked `readonly` gets the set pushed once per worker and format instead (pushing it
    for every check was the largest share of suite time); the client refuses any write to it.
    """
    if request.node.get_closest_marker("readonly") is None:
        push_fixture_set(registry, repo, fixtures)
        return Pushed(repo, fixtures)
    if fixtures.format not in shared_pushes:
        shared = f"{namespace}/shared-{fixtures.format}"
        # Setup shared by many checks: kept out of whichever check happens to run first.
        registry.record = False
        try:
            push_fixture_set(registry, shared, fixtures)
        finally:
            registry.record = True
        registry.read_only.add(shared)
        shared_pushes[fixtures.format] = Pushed(shared, fixtures)
    return shared_pushes[fixtures.format]


@dataclass
class PrivateRegistry:
    target: Target
    client: RegistryClient
    settings: Settings

    def restart(self) -> RegistryClient:
        """Restart the registry; a new client, since the published port can change."""
        self.target.restart()
        old = self.client
        old.close()
        self.client = make_client(self.settings, self.target.url)
        # Content pushed before the restart is still there: the new client removes it at the end.
        self.client.pushed_manifests |= old.pushed_manifests
        self.client.pushed_blobs |= old.pushed_blobs
        return self.client
