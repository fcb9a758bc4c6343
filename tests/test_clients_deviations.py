"""Client-visible defects turn exactly the matrix cells of the clients that reject them red.

A fault proxy in front of a real registry makes manifest answers wrong in a way real clients notice
and a lenient reader does not; the clients workflow runs against it (the harness fixtures pulled by
every client, OCI format), and each cell is red or green as that client behaves. Which client rejects
what was measured here (docker 28.2.2 CLI / dockerd 20.10.24, podman 4.3.1, buildah 1.28.2, ctr 1.6.20,
skopeo 1.9.3, oras 0.2.43, python-dxf 12.1.1) and is written below as the expected sets.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from faultproxy import Request, Rule

from regconform.clients.catalog import CLIENTS
from regconform.registry.digests import sha256_digest

pytestmark = pytest.mark.selftest_slow

PULLERS = ("docker", "podman", "buildah", "ctr", "skopeo", "oras-py", "python-dxf")
SELECTION = ["-k", "test_client_pulls_fixtures and oci"]


def needs_all_clients() -> None:
    missing = {n: r for n in PULLERS if (r := CLIENTS[n].missing())}
    if missing:
        pytest.skip(f"clients missing: {missing}")


def cells(run) -> dict[str, str]:
    """puller → outcome of its fixture-pull cell."""
    found = {}
    for check_id, outcome in run.outcomes("test_client_pulls_fixtures").items():
        puller = check_id.split("[", 1)[1].rstrip("]").split("-", 1)[1]
        found[puller] = outcome
    return found


def on_manifests(path: str, **headers: str) -> list[Rule]:
    return [Rule(path, method=m, set_headers=headers) for m in ("GET", "HEAD")]


def test_manifest_served_as_application_json_fails_every_strict_client(fault_proxy, run_suites):
    """Content-Type application/json on every manifest answer (by tag and by digest: dockerd trusts only the
    by-digest one): docker, podman, buildah, ctr and skopeo refuse; oras-py and python-dxf read on."""
    needs_all_clients()
    proxy = fault_proxy(on_manifests(r"/manifests/", **{"Content-Type": "application/json"}))
    run = run_suites(proxy.url, *SELECTION)
    got = cells(run)
    strict = {"docker", "podman", "buildah", "ctr", "skopeo"}
    assert got == {p: "failed" if p in strict else "passed" for p in PULLERS}, run.tail()
    for puller in strict:
        reason = run.reason(f"test_client_pulls_fixtures[oci-{puller}]")
        assert f"{puller} pull of the harness fixture" in reason, reason
        assert "Content-Type 'application/json' on a manifest whose mediaType is" in reason, reason


def test_wrong_docker_content_digest_fails_only_ctr(fault_proxy, run_suites):
    """A Docker-Content-Digest that is not the manifest's: only containerd resolves by it (then fetches by digest and fails)."""
    needs_all_clients()
    wrong = sha256_digest(b"regconform: not this manifest")
    proxy = fault_proxy(on_manifests(r"/manifests/(v1|multi)$", **{"Docker-Content-Digest": wrong}))
    run = run_suites(proxy.url, *SELECTION)
    got = cells(run)
    assert got == {p: "failed" if p == "ctr" else "passed" for p in PULLERS}, run.tail()
    reason = run.reason("test_client_pulls_fixtures[oci-ctr]")
    assert f"Docker-Content-Digest {wrong} on a manifest whose bytes hash to" in reason, reason


def test_mount_answered_as_a_new_upload_fails_the_docker_mount_check(fault_proxy, run_suites):
    """POST ?mount=&from= opens an upload session (202) instead of mounting: dockerd uploads every layer
    again, so the mount check (2.8 mounts, as measured) turns red and names what docker said."""
    needs_all_clients()

    def no_mount(req: Request) -> Request:
        return replace(req, path=re.sub(r"[?&](mount|from)=[^&]*", "", req.path))

    proxy = fault_proxy([Rule(r"/blobs/uploads/\?.*mount=", method="POST", rewrite=no_mount)])
    run = run_suites(proxy.url, "-k", "test_docker_push_mounts_layers_from_another_repository")
    assert run.outcomes("test_clients.py") == {
        "suites/test_clients.py::test_docker_push_mounts_layers_from_another_repository": "failed"}, run.tail()
    reason = run.reason("test_docker_push_mounts")
    assert "docker says it mounted all 2 layers from" in reason and "it said: nothing" in reason, reason
