"""The pytest plugin: options, fixtures, markers and the per-check behaviour record, in one module.

Loaded by the repository's conftest.py and by `regconform run` (`-p regconform.plugin`).
Every option also reads an environment variable (REGCONFORM_<NAME>), so CI files stay short.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from regconform import __version__, record
from regconform.checks import Unsupported
from regconform.client import Exchange, RegistryClient, tls_verify
from regconform.errors import SetupError
from regconform.images import FORMATS, FixtureSet, Format, fixture_set, push_fixture_set
from regconform.profiles import Expectation, Profile, ProfileError, load_profile
from regconform.targets import CapabilityMissing, ExternalTarget, Target, embedded_target, registry_env

OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--registry-url", {"help": "test an existing registry at this URL instead of starting one"}),
    ("--registry-image", {"default": "registry:2", "help": "image of the embedded registry (default registry:2)"}),
    ("--backend", {"default": "docker", "choices": ["docker", "process"], "help": "how the embedded registry runs"}),
    ("--profile", {"default": "distribution-2.8", "help": "expected behaviour: a profile name, or a directory holding profile.toml and one TOML file per workflow"}),
    ("--namespace", {"help": "repository prefix for everything the run creates (default regconform-<run id>)"}),
    ("--report-dir", {"default": "reports", "help": "where behaviour.json and the other reports go"}),
    ("--gc-command", {"help": "shell command that garbage-collects the external registry"}),
    ("--restart-command", {"help": "shell command that restarts the external registry"}),
    ("--deletion-disabled-url", {"help": "with --registry-url: a registry of the same kind with deletion disabled, "
                                         "for the deletion-disabled checks (embedded runs start their own)"}),
    ("--username", {"help": "registry user (password from REGCONFORM_PASSWORD)"}),
    ("--ca-cert", {"help": "CA bundle to verify the registry's TLS certificate"}),
]
FLAGS = [
    ("--insecure", "do not verify the registry's TLS certificate"),
    ("--pull", "allow pulling --registry-image from its registry when it is not present locally"),
    ("--keep", "keep what the run pushed to an external registry"),
    ("--require-gc", "with --registry-url: refuse to run (instead of skipping the GC checks) without "
                     "--gc-command and --restart-command"),
    ("--gc-delete-untagged", "with --gc-command: also run the GC checks that append --delete-untagged, which "
                             "deletes every untagged manifest of the whole registry, not only the run's"),
]
MARKERS = [
    "workflow(name): the Distribution API workflow a check belongs to (pull, push, content-discovery, ...)",
    "spec(section): the spec section (OCI distribution-spec or Docker Registry API V2) a check verifies",
    "needs_gc: the check runs garbage collection and restarts the registry (own registry)",
    "readonly: the check only reads `pushed`, so it shares one push per worker and format (writes to it are refused)",
]


def env_name(option: str) -> str:
    return "REGCONFORM_" + option.lstrip("-").replace("-", "_").upper()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("regconform", "registry conformance")
    for name, kw in OPTIONS:
        default = os.environ.get(env_name(name), kw.get("default"))
        group.addoption(name, **{**kw, "default": default, "help": f"{kw['help']} [{env_name(name)}]"})
    for name, help_text in FLAGS:
        group.addoption(name, action="store_true", default=os.environ.get(env_name(name), "") not in ("", "0", "false"),
                        help=f"{help_text} [{env_name(name)}]")
    # Repeatable, so not in OPTIONS; the environment variable holds space-separated KEY=VALUE pairs.
    group.addoption("--registry-env", action="append", metavar="KEY=VALUE",
                    default=os.environ.get(env_name("--registry-env"), "").split(),
                    help="extra environment of the embedded registry under test, e.g. "
                         f"REGISTRY_STORAGE_DELETE_ENABLED=false (repeatable) [{env_name('--registry-env')}]")
    # Mirror deployments (suites/mirror, `regconform mirror`): options live with the topology.
    from regconform.mirror import add_mirror_options

    add_mirror_options(group)


def parse_registry_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--registry-env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


@dataclass
class Settings:
    registry_url: str | None
    registry_image: str
    backend: str
    profile: Profile
    namespace: str
    report_dir: Path
    gc_command: str | None
    restart_command: str | None
    username: str | None
    password: str | None = field(repr=False)  # never in a repr, a traceback or a report
    ca_cert: str | None
    insecure: bool
    pull: bool
    keep: bool
    run_id: str
    registry_env: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    target_info: dict[str, Any] = field(default_factory=dict)

    @property
    def verify(self) -> bool | ssl.SSLContext:
        return tls_verify(self.ca_cert, self.insecure)

    @property
    def registry_label(self) -> str:
        """What the run tested, stable across runs (no port): the URL, or the image and its extra env."""
        if self.registry_url:
            return self.registry_url.rstrip("/")
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.registry_env.items()))
        return f"{self.registry_image} {extra}".strip()


SETTINGS = pytest.StashKey[Settings]()


def _run_id(config: pytest.Config) -> str:
    worker_input = getattr(config, "workerinput", None)
    if worker_input and "regconform_run_id" in worker_input:
        return worker_input["regconform_run_id"]
    return os.environ.get("REGCONFORM_RUN_ID") or uuid.uuid4().hex[:10]


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    opt = config.getoption
    try:
        profile = load_profile(opt("--profile"))
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    run_id = _run_id(config)
    config.stash[SETTINGS] = Settings(
        registry_url=opt("--registry-url"),
        registry_image=opt("--registry-image"),
        backend=opt("--backend"),
        profile=profile,
        namespace=(opt("--namespace") or f"regconform-{run_id}").strip("/"),
        report_dir=Path(opt("--report-dir")),
        gc_command=opt("--gc-command"),
        restart_command=opt("--restart-command"),
        username=opt("--username"),
        password=os.environ.get("REGCONFORM_PASSWORD"),
        ca_cert=opt("--ca-cert"),
        insecure=opt("--insecure"),
        pull=opt("--pull"),
        keep=opt("--keep"),
        run_id=run_id,
        registry_env=parse_registry_env(opt("--registry-env") or []),
    )
    _check_target_options(config.stash[SETTINGS], opt("--require-gc"))
    # Ctrl-C and SIGTERM both unwind through fixture teardown, which removes the containers.
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if not _is_worker(config) and not config.getoption("--registry-url") and opt("--backend") == "docker":
        _reap_orphans_quietly()


def _check_target_options(settings: Settings, require_gc: bool) -> None:
    """Options that cannot work, as one-line usage errors before any check runs."""
    from regconform.preflight import check_namespace

    try:
        check_namespace(settings.namespace)
    except SetupError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        settings.verify  # noqa: B018 - loads --ca-cert
    except (OSError, ssl.SSLError) as exc:
        raise pytest.UsageError(f"--ca-cert {settings.ca_cert!r} is not a readable CA bundle: {exc}") from None
    if require_gc and settings.registry_url:
        missing = [name for name, value in (("--gc-command", settings.gc_command),
                                            ("--restart-command", settings.restart_command)) if not value]
        if missing:
            raise pytest.UsageError(f"--require-gc: no {' and no '.join(missing)} for the registry at "
                                    f"{settings.registry_url} (set them, or REGCONFORM_GC_COMMAND / "
                                    "REGCONFORM_RESTART_COMMAND, or drop --require-gc)")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _reap_orphans_quietly() -> None:
    from regconform.targets import reap_orphans

    try:
        reap_orphans()
    except SetupError:
        pass  # no engine: the registry fixture says so, with the fix, when a check needs it


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the controller's run id (one namespace, one report)."""
    node.workerinput["regconform_run_id"] = node.config.stash[SETTINGS].run_id


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fmt" in metafunc.fixturenames:
        metafunc.parametrize("fmt", FORMATS, ids=list(FORMATS))


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def profile(settings: Settings) -> Profile:
    return settings.profile


def _auth(settings: Settings) -> Any:
    if not settings.username:
        return None
    from regconform.auth import RegistryAuth

    return RegistryAuth(settings.username, settings.password)


def make_client(settings: Settings, url: str, auth: Any = "settings") -> RegistryClient:
    """A client for one target, wired to the check record and fenced to the run's namespace."""
    # `auth`: the run's credentials unless a check asks for others (None: none at all).
    return RegistryClient(url, auth=_auth(settings) if auth == "settings" else auth, verify=settings.verify, on_exchange=_on_exchange,
                          namespace=settings.namespace)


def _on_exchange(ex: Exchange) -> None:
    """Every exchange goes to the check's record and, as one step with attachments, to Allure."""
    record.on_exchange(ex)
    if record.current() is not None:
        from regconform.report import allure_exchange_step

        allure_exchange_step(ex)


_resolved_images: dict[tuple[str, bool], str] = {}


def start_embedded(settings: Settings, env: dict[str, str]) -> Target:
    image = settings.registry_image
    if settings.backend == "docker":
        key = (settings.registry_image, settings.pull)
        if key not in _resolved_images:  # once per session, not per private registry
            from regconform.engine import docker_client
            from regconform.imagebuild import resolve_registry_image

            _resolved_images[key] = resolve_registry_image(docker_client(), settings.registry_image, pull=settings.pull)
        image = _resolved_images[key]
    return embedded_target(settings.backend, image, settings.run_id, env)


@pytest.fixture(scope="session")
def target(settings: Settings, pytestconfig: pytest.Config) -> Iterator[Target]:
    """The registry under test: external by URL, else one embedded registry per xdist worker."""
    if settings.registry_url:
        from regconform.preflight import check_external

        try:  # `pytest suites` gets the one-line errors of `regconform run`
            check_external(settings.registry_url, username=settings.username, password=settings.password,
                           ca_cert=settings.ca_cert, insecure=settings.insecure)
        except SetupError as exc:
            pytest.exit(f"regconform: {exc}", returncode=2)
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
    if _is_worker(pytestconfig):
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


@pytest.fixture
def private_registry(settings: Settings) -> Iterator[Callable[..., PrivateRegistry]]:
    """Factory for registries of a check's own (GC, restarts, deletion disabled), removed afterwards."""
    started: list[PrivateRegistry] = []

    def start(delete_enabled: bool = True, env: dict[str, str] | None = None) -> PrivateRegistry:
        if settings.registry_url:
            pytest.skip("needs an embedded registry of its own; the target is an external URL")
        tgt = start_embedded(settings, registry_env(delete_enabled, env))
        priv = PrivateRegistry(tgt, make_client(settings, tgt.url), settings)
        started.append(priv)
        return priv

    yield start
    for priv in started:
        priv.client.close()
        priv.target.stop()


@pytest.fixture(scope="session")
def shared_registries() -> Iterator[dict[str, Target]]:
    """Embedded registries started once per worker for checks that share them (by purpose), removed at the end."""
    started: dict[str, Target] = {}
    try:
        yield started
    finally:
        for tgt in started.values():
            tgt.stop()


@pytest.fixture
def deletion_disabled_registry(settings: Settings, private_registry: Callable[..., PrivateRegistry],
                               pytestconfig: pytest.Config, shared_registries: dict[str, Target]) -> Iterator[PrivateRegistry]:
    """A registry with deletion disabled: the one --deletion-disabled-url names, else one embedded registry
    per worker shared by these checks (each writes only its own repo and none restarts it, as with the URL)."""
    if url := pytestconfig.getoption("--deletion-disabled-url"):
        yield PrivateRegistry(ExternalTarget(url), make_client(settings, url), settings)
        return
    if settings.registry_url:
        yield private_registry(delete_enabled=False)  # skips: an external target has no embedded registries
        return
    if "deletion-disabled" not in shared_registries:
        shared_registries["deletion-disabled"] = start_embedded(settings, registry_env(False))
    tgt = shared_registries["deletion-disabled"]
    reg = PrivateRegistry(tgt, make_client(settings, tgt.url), settings)
    try:
        yield reg
    finally:
        reg.client.close()


@pytest.fixture
def gc_registry(settings: Settings, private_registry: Callable[..., PrivateRegistry],
                target: Target) -> Iterator[PrivateRegistry]:
    """A registry on which garbage collection and restarts may run without disturbing other checks."""
    if not settings.registry_url:
        yield private_registry()
        return
    if not (target.can_gc and target.can_restart):
        pytest.skip("garbage collection checks need --gc-command and --restart-command for an external registry")
    priv = PrivateRegistry(target, make_client(settings, target.url), settings)
    yield priv
    if not settings.keep:  # an external registry: remove what the check pushed, as `registry` does
        priv.client.record = False
        priv.client.remove_pushed()
    priv.client.close()


# -- behaviour record ------------------------------------------------------------------------------


def _marker_arg(item: pytest.Item, name: str) -> str | None:
    mark = item.get_closest_marker(name)
    return str(mark.args[0]) if mark and mark.args else None


SETUP_EXCHANGES = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    record.begin()
    settings = item.config.stash[SETTINGS]
    from regconform.report import allure_labels

    allure_labels(_workflow_of(item), _title_of(item), _variant_of(item), _marker_arg(item, "spec"),
                  settings.registry_label, settings.profile.name)


def pytest_runtest_call(item: pytest.Item) -> None:
    from regconform.report import allure_title

    allure_title(_title_of(item), _variant_of(item))  # after setup: allure-pytest names the test there


def _variant_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(Unsupported):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"unsupported: {call.excinfo.value}")
        report.user_properties.append(("regconform_outcome", "unsupported"))
    rec = record.current()
    if rec is not None and call.when == "setup":
        item.stash[SETUP_EXCHANGES] = len(rec.exchanges)
    if rec is not None and (call.when == "call" or report.outcome != "passed"):
        # An attribute, not user_properties: it travels from xdist workers but stays out of junit.xml.
        setattr(report, RECORD_ATTR, json.dumps(_record_of(item, rec)))
    if call.when == "teardown":
        record.end()
    return report


RECORD_ATTR = "regconform_record"


def _workflow_of(item: pytest.Item) -> str:
    module = item.module.__name__.rsplit(".", 1)[-1] if hasattr(item, "module") and item.module else ""
    return _marker_arg(item, "workflow") or module.removeprefix("test_").replace("_", "-")


def _title_of(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None)
    return doc.strip().splitlines()[0] if doc and doc.strip() else item.name


def _record_of(item: pytest.Item, rec: record.CheckRecord) -> dict[str, Any]:
    facts = rec.observed_facts()
    for fact in facts[:item.stash.get(SETUP_EXCHANGES, len(facts))]:
        fact["setup"] = True  # made by fixtures (pushing the fixture images), not by the check itself
    return {
        "id": item.nodeid,
        "workflow": _workflow_of(item),
        "spec": _marker_arg(item, "spec"),
        "title": _title_of(item),
        "expectations": rec.expectations,
        "observations": rec.observations,
        "facts": facts,
        "exchanges": [ex.as_dict() for ex in rec.exchanges],
    }


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    # Collection reports (e.g. an import error) have no user_properties.
    if ("regconform_outcome", "unsupported") in getattr(report, "user_properties", ()):
        return "unsupported", "U", "UNSUPPORTED"
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect records on the controller (or the only process): workers ship them as a report attribute.

    One record per check: a failing teardown after a passing call replaces the call's record.
    """
    value = getattr(report, RECORD_ATTR, None)
    if value is None:
        return
    doc = json.loads(value)
    doc["outcome"] = _outcome(report)
    doc["reason"] = _reason(report)
    doc["phase"] = report.when
    if doc["id"] not in _collected or doc["outcome"] != "passed":
        _collected[doc["id"]] = doc


_collected: dict[str, dict[str, Any]] = {}
_target_info: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _collected.clear()  # several runs in one process (tests, `regconform compare`) never mix records
    _target_info.clear()


def _outcome(report: pytest.TestReport) -> str:
    if ("regconform_outcome", "unsupported") in report.user_properties:
        return "unsupported"
    if report.when != "call" and report.failed:
        return "error"
    return report.outcome


def _reason(report: pytest.TestReport) -> str | None:
    if report.passed:
        return None
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr)[:2000] if report.longrepr else None


def pytest_testnodedown(node: Any, error: Any) -> None:
    info = getattr(node, "workeroutput", {}).get("regconform_target")
    if info:
        _target_info.update(info)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_worker(session.config) or SETTINGS not in session.config.stash:
        return
    settings = session.config.stash[SETTINGS]
    info = {**settings.target_info, **_target_info}
    if not _collected and not info:
        return
    from regconform.report import write_reports

    allure_dir = getattr(session.config.option, "allure_report_dir", None)
    write_reports(settings.report_dir, [_collected[k] for k in sorted(_collected)], info, settings.profile,
                  allure_dir=Path(allure_dir) if allure_dir else None)


__all__ = ["Exchange", "CapabilityMissing", "Pushed", "PrivateRegistry", "Settings"]
