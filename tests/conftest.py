"""Fixtures of the harness's self-tests: a real registry to proxy, fault proxies, suite runs.

- `upstream` (session): the local registry image in a container (deletion enabled), published
  on 127.0.0.1, labelled like every regconform container so a killed run's copy is reaped.
- `fault_proxy` (factory): `fault_proxy(rules)` → a running FaultProxy in front of `upstream`
  (or `upstream=<url>`), stopped after the test.
- `disabled_upstream` (session): the same with deletion disabled (`--deletion-disabled-url`).
- `gc_upstream` (module): a registry of its own on a FIXED host port, with the `--gc-command` /
  `--restart-command` options that collect and restart it (`docker restart` keeps a fixed port,
  so the URL survives). Garbage collection must never run on the registry other checks use.
- `run_suites` (fixture) / `suiterun.run_suites` (import): the suites in a subprocess → SuiteRun.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultproxy import FaultProxy, Rule
from suiterun import SuiteRun
from suiterun import run_suites as _run_suites

from regconform.targets.base import free_port, registry_env
from regconform.targets.container import ContainerTarget

# One label value for every container the self-tests start themselves (suite runs have their own).
SELFTEST_RUN_ID = f"selftest-{uuid.uuid4().hex[:8]}"
CONFIG = "/etc/docker/registry/config.yml"


def registry_image() -> str:
    from regconform.targets.engine import docker_client
    from regconform.targets.imagebuild import resolve_registry_image

    return resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))


def start_upstream(*, delete_enabled: bool = True, env: dict[str, str] | None = None,
                   host_port: int | None = None) -> ContainerTarget:
    return ContainerTarget(registry_image(), registry_env(delete_enabled, env), SELFTEST_RUN_ID, host_port=host_port)


@pytest.fixture(scope="session")
def upstream() -> Iterator[ContainerTarget]:
    """A real registry (deletion enabled) for the self-tests to put proxies in front of."""
    target = start_upstream()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="session")
def disabled_upstream() -> Iterator[ContainerTarget]:
    """A real registry with deletion disabled (for `--deletion-disabled-url` runs)."""
    target = start_upstream(delete_enabled=False)
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture
def fault_proxy(upstream: ContainerTarget) -> Iterator[Callable[..., FaultProxy]]:
    """Factory: `fault_proxy(rules)` → a running proxy in front of `upstream`; stopped after the test."""
    started: list[FaultProxy] = []

    def start(rules: Sequence[Rule] = (), *, upstream_url: str | None = None) -> FaultProxy:
        proxy = FaultProxy(upstream_url or upstream.url, rules).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@dataclass
class GcUpstream:
    """A registry that may be garbage-collected and restarted, and the suite options that do it."""

    target: ContainerTarget

    @property
    def url(self) -> str:
        return self.target.url

    @property
    def options(self) -> list[str]:
        cid = self.target.container_id
        return [f"--gc-command=docker exec {cid} registry garbage-collect {CONFIG}",
                f"--restart-command=docker restart -t 2 {cid}", "--gc-delete-untagged"]


@pytest.fixture(scope="module")
def gc_upstream() -> Iterator[GcUpstream]:
    target = start_upstream(host_port=free_port())
    try:
        yield GcUpstream(target)
    finally:
        target.stop()


@pytest.fixture
def run_suites(tmp_path: Path) -> Callable[..., SuiteRun]:
    """`run_suites(url, *pytest_args, profile=..., extra_env=...)`, each run with its own report dir under tmp_path."""
    counter = iter(range(1, 1000))

    def run(url: str, *pytest_args: str, **kw: object) -> SuiteRun:
        kw.setdefault("report_dir", tmp_path / f"run-{next(counter)}")
        return _run_suites(url, *pytest_args, **kw)  # type: ignore[arg-type]

    return run
