"""`regconform mirror` as a CI gate against an existing mirror deployment addressed by URL.

The deployment is an embedded pair (upstream + distribution 2.8 mirror) this module starts; the
gate only knows its URLs. Exit codes as `regconform run`: 0 as the profile says, 1 a deviation,
2 usage or environment error (one line on stderr).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy, Response, Rule
from suiterun import SuiteRun, run_command
from test_mirror_routed import routed  # noqa: F401 - the routed topology fixture, for the gate by URL

from regconform.content.images import fixture_set, push_fixture_set
from regconform.registry.auth import RegistryAuth
from regconform.registry.client import RegistryClient
from regconform.targets.engine import docker_client
from regconform.targets.imagebuild import resolve_registry_image
from regconform.targets.mirrors import EmbeddedMirror

pytestmark = pytest.mark.selftest_slow

APP = "selftest-mirror/app"


@pytest.fixture(scope="module")
def pair() -> Iterator[EmbeddedMirror]:
    # Not via tests/conftest.py: suites/mirror has a conftest module of the same name.
    image = resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    pair = EmbeddedMirror(image, f"selftest-mirror-{uuid.uuid4().hex[:8]}", "open")
    try:
        with RegistryClient(pair.upstream_url) as upstream:  # an image the deployment already serves
            push_fixture_set(upstream, APP, fixture_set("docker"))
        yield pair
    finally:
        pair.close()


def gate(report_dir: Path, *args: str) -> SuiteRun:
    argv = [sys.executable, "-m", "regconform.cli", "mirror", f"--report-dir={report_dir}", *args]
    return run_command(argv, report_dir=report_dir, timeout=400)


def test_gate_passes_on_a_healthy_mirror(pair, tmp_path):
    """Fixtures pushed to the upstream, named images, upstream stop/start by command: exit 0, full reports."""
    assert pair.upstream is not None
    cid = pair.upstream.container_id
    run = gate(tmp_path, f"--mirror-url={pair.mirror_url}", f"--upstream-url={pair.upstream_url}", "--push-fixtures",
               "--image", f"{APP}:v1", "--image", f"{APP}:multi",
               f"--upstream-stop-command=docker stop -t 2 {cid}", f"--upstream-start-command=docker start {cid}")
    assert run.returncode == 0, run.tail()
    assert (tmp_path / "junit.xml").is_file() and (tmp_path / "behaviour.json").is_file()
    named = run.outcomes("test_named_image_served_as_upstream")
    assert sorted(named.values()) == ["passed", "passed"], named
    for check in ("test_pull_by_tag", "test_pull_by_digest", "test_cached_content_served_while_upstream_down",
                  "test_blob_upload_refused", "test_tag_moved_upstream"):
        assert set(run.outcomes(check).values()) == {"passed"}, (check, run.outcomes(check), run.tail())
    assert run.failed_ids() == []


def test_gate_without_push_fixtures_writes_nothing(pair, tmp_path):
    """Read-only: only the named image is checked, fixture checks are skipped, nothing reaches the upstream."""
    namespace = "selftest-readonly"
    run = gate(tmp_path, f"--mirror-url={pair.mirror_url}", f"--upstream-url={pair.upstream_url}",
               f"--namespace={namespace}", "--image", f"{APP}:multi")
    assert run.returncode == 0, run.tail()
    assert run.outcome("test_named_image_served_as_upstream") == "passed"
    assert set(run.outcomes("test_pull_by_tag").values()) == {"skipped"}
    with RegistryClient(pair.upstream_url) as upstream, RegistryClient(pair.mirror_url) as mirror:
        for client in (upstream, mirror):
            repos = json.loads(client.catalog().content)["repositories"] or []
            assert not [r for r in repos if r.startswith(namespace)], repos


def test_gate_fails_on_a_mirror_serving_wrong_bytes(pair, tmp_path):
    """Every blob corrupted by the mirror: the named-image check fails, exit 1, junit records the failure."""

    def corrupt(response: Response) -> Response:
        if response.status != 200 or not response.body:
            return response
        return Response(200, response.headers, response.body[:-1] + bytes([response.body[-1] ^ 0xFF]), response.request)

    with FaultProxy(pair.mirror_url, [Rule(r"/blobs/sha256:", method="GET", transform=corrupt)]) as proxy:
        run = gate(tmp_path, f"--mirror-url={proxy.url}", f"--upstream-url={pair.upstream_url}", "--image", f"{APP}:v1")
    assert run.returncode == 1, run.tail()
    assert run.outcome("test_named_image_served_as_upstream") == "failed"
    assert "hashes to" in run.reason("test_named_image_served_as_upstream"), run.reason("test_named_image")
    assert "failures=\"1\"" in (tmp_path / "junit.xml").read_text()


@pytest.mark.parametrize("args, message", [
    (["--mirror-url=http://127.0.0.1:9"], "give both --mirror-url and --upstream-url"),
    (["--mirror-prefix=hub/"], "--mirror-prefix needs --mirror-url"),
    (["--mirror-url=http://127.0.0.1:9", "--upstream=hub"], "--upstream 'hub': expected NAME=URL"),
    (["--mirror-url=http://127.0.0.1:9", "--upstream=hub=ftp://x"], "is not an http:// or https:// URL"),
    (["--mirror-url=http://127.0.0.1:9", "--upstream=a=http://127.0.0.1:9", "--upstream=b=http://127.0.0.1:9",
      "--mirror-prefix=a/"], "with several upstreams say which one it is for"),
    (["--mirror-url=http://127.0.0.1:9", "--upstream=a=http://127.0.0.1:9", "--upstream=b=http://127.0.0.1:9"],
     "addressed alike on the mirror"),
    (["--mirror-url=http://127.0.0.1:9", "--upstream-url=http://127.0.0.1:9", "--mirror-prefix=Bad Prefix"],
     "not a repository name prefix"),
    (["--realm-url=http://127.0.0.1:9"], "--realm-url needs --mirror-url"),
    (["--mirror-binary=/nonexistent/registry"], "is not an executable file"),
    (["--image", "a:b"], "--image needs --mirror-url and --upstream-url"),
    (["--mirror-url=http://127.0.0.1:9", "--upstream-url=http://127.0.0.1:9"], "cannot connect"),
    (["--profile=oci-1.1"], "records no mirror behaviour"),
])
def test_gate_usage_errors_exit_2_with_one_line(tmp_path, args, message):
    run = gate(tmp_path, *args)
    assert run.returncode == 2, run.tail()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regconform: error:") and message in lines[0], run.stderr


@pytest.fixture(scope="module")
def auth_pair() -> Iterator[EmbeddedMirror]:
    """An upstream that requires basic auth; the mirror holds the credentials as 2.8 honours them."""
    image = resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    pair = EmbeddedMirror(image, f"selftest-mirror-{uuid.uuid4().hex[:8]}", "auth", credentials_via="remoteurl")
    try:
        assert pair.upstream_credentials is not None
        with RegistryClient(pair.upstream_url, auth=RegistryAuth(pair.upstream_credentials.username,
                                                                 pair.upstream_credentials.password)) as upstream:
            push_fixture_set(upstream, APP, fixture_set("oci"))
        yield pair
    finally:
        pair.close()


def test_gate_with_an_auth_protected_upstream(auth_pair, tmp_path):
    """--upstream-username (password from the environment): the mirror serves without client credentials."""
    assert auth_pair.upstream_credentials is not None
    creds = auth_pair.upstream_credentials
    urls = [f"--mirror-url={auth_pair.mirror_url}", f"--upstream-url={auth_pair.upstream_url}"]
    refused = gate(tmp_path / "no-credentials", *urls)
    assert refused.returncode == 2 and "--upstream-username" in refused.stderr, refused.tail()
    run = run_command([sys.executable, "-m", "regconform.cli", "mirror", f"--report-dir={tmp_path / 'ok'}", *urls,
                       f"--upstream-username={creds.username}", "--push-fixtures", "--image", f"{APP}:multi",
                       "-k", "auth or named or pull_by_tag"],
                      report_dir=tmp_path / "ok", extra_env={"REGCONFORM_UPSTREAM_PASSWORD": creds.password}, timeout=400)
    assert run.returncode == 0, run.tail()
    assert set(run.outcomes("test_mirror_pulls_from_auth_upstream").values()) == {"passed"}, run.outcomes()
    assert run.outcome("test_named_image_served_as_upstream") == "passed"
    for path in (tmp_path / "ok").rglob("*"):  # behaviour.json, exchanges.json, junit, Allure: no secret anywhere
        if path.is_file():
            assert creds.password not in path.read_text(errors="replace"), path


# -- the routed topology (nginx in front of two caches), addressed by URL -------------------------

ROUTED_SELECTION = "pull_by_tag or accept_negotiation or unmapped or podman or oci_namespace or head_by_digest"


def test_gate_on_the_routed_mirror_by_prefix(routed, tmp_path):
    """`regconform mirror --mirror-url NGINX --mirror-prefix hub/ --upstream-url HUB`: exit 0; the reports
    say which upstream and prefix each check used."""
    hub = routed.pairs["hub"]
    run = gate(tmp_path, f"--mirror-url={routed.url}", "--mirror-prefix=hub/", f"--upstream-url={hub.upstream_url}",
               "--push-fixtures", "-k", ROUTED_SELECTION)
    assert run.returncode == 0, run.tail()
    assert run.failed_ids() == [], run.tail()
    for check in ("test_pull_by_tag", "test_accept_negotiation", "test_unmapped_names", "test_podman_pulls"):
        assert set(run.outcomes(check).values()) == {"passed"}, (check, run.outcomes(check), run.tail())
    route = run.record("test_pull_by_tag_serves_upstream_manifests[external-docker]")["observations"]["route"]
    assert (route["upstream"], route["prefix"], route["ns"]) == ("upstream", "hub/", None), route


def test_gate_on_the_routed_mirror_by_ns(routed, tmp_path):
    """The basic-auth upstream selected with --mirror-ns (ns= on every request, as containerd sends it):
    exit 0, OCI-Namespace answered, no secret in any report."""
    quay = routed.pairs["quay"]
    creds = quay.upstream_credentials
    assert creds is not None
    argv = [sys.executable, "-m", "regconform.cli", "mirror", f"--report-dir={tmp_path}", f"--mirror-url={routed.url}",
            "--mirror-ns=quay.regconform.test", f"--upstream-url={quay.upstream_url}",
            f"--upstream-username={creds.username}", "--push-fixtures", "-k", ROUTED_SELECTION]
    run = run_command(argv, report_dir=tmp_path, extra_env={"REGCONFORM_UPSTREAM_PASSWORD": creds.password}, timeout=400)
    assert run.returncode == 0, run.tail()
    assert set(run.outcomes("test_oci_namespace_header").values()) == {"passed"}, run.outcomes()
    assert set(run.outcomes("test_accept_negotiation").values()) == {"passed"}, run.outcomes()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert creds.password not in path.read_text(errors="replace"), path
