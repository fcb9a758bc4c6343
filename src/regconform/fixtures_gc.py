"""Fixtures of the checks that touch registry-global state: garbage collection, restarts, deletion disabled.

Garbage collection marks registry-wide, a restart empties the in-memory blob descriptor cache of
the whole registry, and deletion is a configuration of the whole registry. So:

- these checks push content of their own (`own_fixtures`: the fixture variant of the check id),
  which no other check and no other content of the registry shares; their answer is then the same
  on an empty registry as on one full of other images, and
- they may share one registry: one embedded GC registry per worker (`gc_registry`,
  `restart_registry`), one deletion-disabled registry per worker, or on an external target the
  registry itself, given `--gc-command` and `--restart-command` (GC) or `--restart-command` alone
  (restarts), and `--deletion-disabled-url` for the deletion-disabled checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from regconform.content.images import FixtureSet, Format, check_variant, fixture_set
from regconform.errors import SetupError
from regconform.fixtures import PrivateRegistry, make_client, start_embedded
from regconform.registry.client import RegistryClient
from regconform.settings import Settings
from regconform.targets.base import Target, registry_env
from regconform.targets.external import ExternalTarget


def check_id(node: pytest.Item) -> str:
    """`<module file>::<name>[<params>]`: independent of the rootdir and the run."""
    return f"{node.path.name}::{node.name}"


@pytest.fixture
def own_fixtures(fmt: Format, request: pytest.FixtureRequest) -> FixtureSet:
    """The fixture set of this check alone: every blob and manifest unique to the check, the same bytes every run."""
    return fixture_set(fmt, check_variant(check_id(request.node)))


@pytest.fixture(scope="session")
def shared_registries() -> Iterator[dict[str, Target]]:
    """Embedded registries started once per worker for checks that share them (by purpose), removed at the end."""
    started: dict[str, Target] = {}
    try:
        yield started
    finally:
        for tgt in started.values():
            tgt.stop()


def _shared(settings: Settings, shared: dict[str, Target], purpose: str, delete_enabled: bool) -> Target:
    if purpose not in shared:
        try:
            shared[purpose] = start_embedded(settings, registry_env(delete_enabled))
        except SetupError as exc:
            pytest.exit(f"regconform: {exc}", returncode=2)
    return shared[purpose]


def _require_serial_on_external(settings: Settings, what: str) -> None:
    """On an external target other workers' checks would meet a registry being collected or restarting."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if settings.registry_url and workers > 1:
        pytest.skip(f"{what} on an external registry need a serial run (no -n): with {workers} workers the other "
                    "workers' checks would meet a registry that is being collected or restarted")


def _maintained(settings: Settings, target: Target, shared: dict[str, Target]) -> Iterator[PrivateRegistry]:
    """A registry the check may collect and restart: the worker's GC registry, or the external target."""
    tgt = target if settings.registry_url else _shared(settings, shared, "gc", True)
    priv = PrivateRegistry(tgt, make_client(settings, tgt.url), settings)
    try:
        yield priv
    finally:
        # On an external registry the check removes what it pushed, as `registry` does. The worker's
        # GC registry keeps it: other checks' content is what these checks must be independent of.
        if settings.registry_url and not settings.keep:
            _remove_pushed(priv.client)
        priv.client.close()


def _remove_pushed(client: RegistryClient) -> None:
    client.record = False
    client.remove_pushed()


@pytest.fixture
def gc_registry(settings: Settings, target: Target, shared_registries: dict[str, Target]) -> Iterator[PrivateRegistry]:
    """A registry on which garbage collection and restarts may run: one per worker, or the external target."""
    if settings.registry_url and not (target.can_gc and target.can_restart):
        pytest.skip("garbage collection checks need --gc-command and --restart-command for an external registry")
    _require_serial_on_external(settings, "garbage collection checks")
    yield from _maintained(settings, target, shared_registries)


@pytest.fixture
def restart_registry(settings: Settings, target: Target, shared_registries: dict[str, Target]) -> Iterator[PrivateRegistry]:
    """A registry the check may restart (no garbage collection): the worker's GC registry, or the external
    target given --restart-command."""
    if settings.registry_url and not target.can_restart:
        pytest.skip("restart checks need --restart-command for an external registry")
    _require_serial_on_external(settings, "restart checks")
    yield from _maintained(settings, target, shared_registries)


_checked_urls: set[str] = set()


@pytest.fixture
def deletion_disabled_registry(settings: Settings, pytestconfig: pytest.Config,
                               shared_registries: dict[str, Target]) -> Iterator[PrivateRegistry]:
    """A registry with deletion disabled: the one --deletion-disabled-url names, else one embedded registry
    per worker shared by these checks (each writes only its own repo and none restarts it, as with the URL)."""
    url = pytestconfig.getoption("--deletion-disabled-url")
    if url:
        _check_reachable(settings, url)
        tgt: Target = ExternalTarget(url, verify=settings.verify)
    elif settings.registry_url:
        pytest.skip("deletion-disabled checks need a registry with deletion disabled: give --deletion-disabled-url "
                    "(the target is an external URL, so none is started)")
    else:
        tgt = _shared(settings, shared_registries, "deletion-disabled", False)
    reg = PrivateRegistry(tgt, make_client(settings, tgt.url), settings)
    try:
        yield reg
    finally:
        reg.client.close()  # nothing to remove: deletes are refused there


def _check_reachable(settings: Settings, url: str) -> None:
    """--deletion-disabled-url must be a registry the run's credentials reach: else one line, exit 2."""
    if url in _checked_urls:
        return
    from regconform.targets.preflight import check_external

    try:
        check_external(url, username=settings.username, password=settings.password, ca_cert=settings.ca_cert,
                       insecure=settings.insecure)
    except SetupError as exc:
        pytest.exit(f"regconform: --deletion-disabled-url: {exc}", returncode=2)
    _checked_urls.add(url)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an external registry the GC checks run first, in their own order.

    The rest of the run would leave repositories without tags (images pushed by digest only), and a
    registry whose `garbage-collect --delete-untagged` aborts on those (2.8.2) could then no longer
    judge any GC check. A repository without tags that was there before the run is the registry's
    own state: the checks say so in their reason (gc.delete-untagged-tagless-repository).
    """
    if config.getoption("--registry-url"):
        items.sort(key=lambda item: item.get_closest_marker("needs_gc") is None)  # stable: order kept within each part
