"""The routed-mirror checks catch a broken multi-upstream mirror: the fault proxy placed AS the mirror.

One embedded routed topology for the module (nginx in front of an open and a basic-auth distribution
2.8 cache). The mirror suites run against a FaultProxy in front of nginx, as a deployment addressed
by URL with three upstreams: hub (prefix hub/), quay (prefix quay/) and quay again by ns
(`--mirror-ns`), the basic-auth upstream's credentials from the environment. Once clean (every
selected check green), once with three deviation modes at the same time, each rule confined to one
route and the checks it must turn red: a mirror that ignores Accept (hub), one that maps a prefix to
the wrong upstream (quay/ → hub), one that serves a stale tag under one prefix only (hub). Exactly
those checks fail, each with a message naming its deviation; the same checks of the other routes
stay green.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from deviations import assert_exactly_red
from faultproxy import FaultProxy, Request, Rule
from suiterun import SuiteRun, run_command
from test_mirror_deviations import StaleTag, corrupt, not_found

from regconform.registry.media import ALL_MANIFEST_TYPES
from regconform.targets.engine import docker_client
from regconform.targets.imagebuild import resolve_registry_image
from regconform.targets.mirrors import EmbeddedMirror
from regconform.targets.mirrors.routed import RoutedMirror, upstream_named

pytestmark = pytest.mark.selftest_slow

SELECTION = "accept_negotiation or routes_reach or tag_moved or pull_by_tag or unmapped or oci_namespace"


@pytest.fixture(scope="module")
def routed() -> Iterator[RoutedMirror]:
    image = resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    run_id = f"selftest-routed-{uuid.uuid4().hex[:8]}"
    pairs: dict[str, EmbeddedMirror] = {}

    def pair_of(variant: str) -> EmbeddedMirror:
        pairs[variant] = EmbeddedMirror(image, run_id, variant, credentials_via="remoteurl")  # as 2.8 honours it
        return pairs[variant]

    topology = None
    try:
        topology = RoutedMirror(pair_of)
        yield topology
    finally:
        if topology is not None:
            topology.close()
        for pair in pairs.values():
            pair.close()


def run_routed(topology: RoutedMirror, mirror_url: str, report_dir: Path, *args: str,
               selection: str = SELECTION) -> SuiteRun:
    """The mirror suites against `mirror_url` as a deployment of the topology's upstreams, by URL."""
    hub, quay = topology.pairs["hub"], topology.pairs["quay"]
    assert quay.upstream_credentials is not None
    argv = [sys.executable, "-m", "pytest", "suites/mirror", "-p", "no:cacheprovider", "-q", "-rfEs",
            f"--mirror-url={mirror_url}", f"--upstream=hub={hub.upstream_url}", f"--upstream=quay={quay.upstream_url}",
            f"--upstream=quayns={quay.upstream_url}", "--mirror-prefix=hub=hub/", "--mirror-prefix=quay=quay/",
            f"--mirror-ns=quayns={upstream_named('quay').ns}", "--push-fixtures", f"--report-dir={report_dir}",
            "--profile=distribution-2.8", "-k", selection, *args]
    env = {}
    for name in ("QUAY", "QUAYNS"):
        env[f"REGCONFORM_UPSTREAM_{name}_USERNAME"] = quay.upstream_credentials.username
        env[f"REGCONFORM_UPSTREAM_{name}_PASSWORD"] = quay.upstream_credentials.password
    return run_command(argv, report_dir=report_dir, timeout=600, extra_env=env)


@pytest.fixture(scope="module")
def clean_run(routed: RoutedMirror, tmp_path_factory: pytest.TempPathFactory) -> tuple[SuiteRun, FaultProxy]:
    with FaultProxy(routed.url) as proxy:
        return run_routed(routed, proxy.url, tmp_path_factory.mktemp("clean")), proxy


def ignore_accept(request: Request) -> Request:
    """Forward every manifest GET as if the client accepted every type."""
    headers = request.headers.copy()
    headers["Accept"] = ", ".join(ALL_MANIFEST_TYPES)
    return replace(request, headers=headers)


def to_prefix(prefix: str):
    def rewrite(request: Request) -> Request:
        return replace(request, path=re.sub(r"^/v2/[^/]+/", f"/v2/{prefix}", request.path, count=1))

    return rewrite


# Each rule confined to one route (its prefix) and to the repositories of the check it must turn red.
RULES = [
    Rule(r"^/v2/hub/.*test-accept-negotiation[^/]*/manifests/", method="GET", rewrite=ignore_accept),
    Rule(r"^/v2/quay/.*test-routes-reach[^/]*/manifests/", method="GET", rewrite=to_prefix("hub/")),
    Rule(r"^/v2/hub/.*test-tag-moved-upstream[^/]*/manifests/v1$", method="GET", transform=StaleTag()),
]
RED = {
    "test_accept_negotiation_through_mirror[external-hub": ["which the client did not accept", "mirror.accept",
                                                            "by tag with Accept: the other format's type only"],
    "test_routes_reach_their_own_upstreams": ["for upstream quay (prefix 'quay/'", "served from upstream hub",
                                              "mirror.pull-through"],
    "test_tag_moved_upstream[external-hub": ["after the upstream moved it to beta", "mirror.tag-move"],
}


def is_red(node: str) -> bool:
    return any(node.startswith(check) for check in RED)


@pytest.fixture(scope="module")
def faulty_run(routed: RoutedMirror, clean_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[SuiteRun, FaultProxy]:
    with FaultProxy(routed.url, RULES) as proxy:
        return run_routed(routed, proxy.url, tmp_path_factory.mktemp("faulty")), proxy


def test_clean_proxy_as_routed_mirror_passes(clean_run):
    """Transparent proxy in front of nginx: every selected check on every route passes, exit 0; the
    checks that map names run on each route, the ns one answers OCI-Namespace."""
    run, proxy = clean_run
    assert run.returncode == 0, run.tail()
    assert run.failed_ids() == [], run.tail()
    outcomes = run.outcomes()
    for variant in ("external-hub", "external-quay", "external-quayns"):
        for check in ("test_accept_negotiation", "test_pull_by_tag", "test_tag_moved", "test_unmapped_names"):
            assert {o for n, o in outcomes.items() if check in n and variant + "-" in n} == {"passed"}, (check, variant)
    assert set(run.outcomes("test_oci_namespace_header[external-quayns").values()) == {"passed"}, outcomes
    assert set(run.outcomes("test_routes_reach_their_own_upstreams").values()) == {"passed"}, outcomes
    routes = run.record("test_routes_reach_their_own_upstreams[docker]")["observations"]["routes"]
    assert [(r["upstream"], r["prefix"], r["ns"]) for r in routes] == [
        ("hub", "hub/", None), ("quay", "quay/", None), ("quayns", "", "quay.regconform.test")]
    # Every check says which upstream it used.
    record = run.record("test_pull_by_tag_serves_upstream_manifests[external-quayns-docker]")
    assert record["observations"]["route"]["upstream"] == "quayns", record["observations"]
    assert proxy.hits == []


def test_faulty_routed_mirror_turns_exactly_its_checks_red(clean_run, faulty_run):
    """Ignored Accept on hub, quay/ mapped to hub, a stale tag under hub/ only: exactly those checks of those
    routes red, each naming its deviation; the same checks of the other routes as in the clean run."""
    run, proxy = faulty_run
    assert_exactly_red(run, clean_run[0], proxy, name="routed", red=[], reasons=[r"\[distribution-2\.8: mirror\."],
                       is_red=is_red)
    for check, words in RED.items():
        nodes = [n for n in run.failed_ids() if n.rsplit("::", 1)[-1].startswith(check)]
        assert nodes, (check, run.failed_ids())
        for node in nodes:
            for word in words:
                assert word in run.reason(node), f"{node}: {word!r} not in {run.reason(node)!r}"


# -- real clients through a broken mirror: they fail, with nowhere else to pull from ----------------

CLIENTS = "podman or ctr or dockerd"


def test_real_clients_through_a_broken_routed_mirror_fail(routed, tmp_path):
    """Corrupted blobs under hub/ for podman, every manifest under quay/ not found for ctr: exactly those
    client checks red (the client cannot fall back to another host), the others green; dockerd through
    hub's own port with corrupted blobs: red."""
    pytest.importorskip("regconform.clients.daemons", reason="needs the private daemons (regconform.clients.daemons)")
    rules = [Rule(r"^/v2/hub/.*test-podman-pulls[^/]*/blobs/sha256:", method="GET", transform=corrupt),
             Rule(r"^/v2/quay/.*test-ctr-pulls[^/]*/manifests/", method="GET", respond=not_found)]
    with FaultProxy(routed.url, rules) as proxy:
        run = run_routed(routed, proxy.url, tmp_path / "routed", selection=CLIENTS)
        assert proxy.hits
    assert run.returncode == 1, run.tail()
    red = {n.rsplit("::", 1)[-1] for n in run.failed_ids()}
    assert red == {f"{check}[external-{route}-{fmt}]" for check, route in (
        ("test_podman_pulls_index_through_mirror", "hub"), ("test_ctr_pulls_index_through_mirror", "quay"))
        for fmt in ("docker", "oci")}, run.tail()
    for node in run.failed_ids():
        assert ("podman pull by tag" if "podman" in node else "ctr images pull by tag") in run.reason(node)
        assert "mirror.client-pull" in run.reason(node)
    for node, outcome in run.outcomes().items():
        if node.rsplit("::", 1)[-1] not in red:  # dockerd: no path, no ns; podman: no ns
            skipped = "dockerd" in node or ("podman" in node and "quayns" in node)
            assert outcome == ("skipped" if skipped else "passed"), (node, outcome, run.tail())
    hub = routed.pairs["hub"]
    dockerd_rules = [Rule(r"test-dockerd-pulls[^/]*/blobs/sha256:", method="GET", transform=corrupt)]
    with FaultProxy(f"http://127.0.0.1:{routed.ports['hub']}", dockerd_rules) as proxy:
        argv = [sys.executable, "-m", "pytest", "suites/mirror", "-p", "no:cacheprovider", "-q", "-rfEs",
                f"--mirror-url={proxy.url}", f"--upstream-url={hub.upstream_url}", "--push-fixtures",
                f"--report-dir={tmp_path / 'dockerd'}", "-k", "dockerd and docker"]
        run = run_command(argv, report_dir=tmp_path / "dockerd", timeout=600)
    assert run.returncode == 1, run.tail()
    node = "test_dockerd_pulls_index_through_mirror[external-docker]"
    assert run.outcome(node) == "failed", run.tail()
    assert "docker pull by tag" in run.reason(node) and "mirror.client-pull" in run.reason(node), run.reason(node)
