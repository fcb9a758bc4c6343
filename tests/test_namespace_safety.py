"""A run against a registry holding other people's repositories never reads, writes or deletes
them, and removes what it pushed (unless --keep).

The registry gets foreign repositories first (pushed with a client without namespace): one with
the very fixture images the suites push (same blobs, same tags), and ones whose names share the
run's prefix (`<ns>-evil/...`, `<ns>x/...`). Then the full suites run against it by URL. Proof:
every foreign tag, manifest and blob is byte-for-byte the same afterwards, and the registry's own
access log shows no request naming a foreign repository during the run.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from authregistries import registry_image, run_cli

from regconform.content.images import fixture_set, push_fixture_set, push_image
from regconform.registry.client import RegistryClient
from regconform.registry.errors import ClientError
from regconform.registry.media import ALL_MANIFEST_TYPES
from regconform.targets.base import registry_env
from regconform.targets.container import ContainerTarget

NAMESPACE = f"regconform-safety-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def shared_registry() -> Iterator[ContainerTarget]:
    target = ContainerTarget(registry_image(), registry_env(True), f"safety-{uuid.uuid4().hex[:8]}")
    yield target
    target.stop()


def foreign_repositories() -> list[str]:
    return ["library/foreign-docker", "team/foreign-oci", f"{NAMESPACE}-evil/app", f"{NAMESPACE}x/app",
            NAMESPACE.rsplit("-", 1)[0] + "/app"]


def push_foreign(client: RegistryClient) -> None:
    docker, oci = fixture_set("docker"), fixture_set("oci")
    push_fixture_set(client, "library/foreign-docker", docker)
    push_fixture_set(client, "team/foreign-oci", oci)
    for repo in foreign_repositories()[2:]:
        push_image(client, repo, docker.alpha)
        push_image(client, repo, oci.beta)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(client: RegistryClient, repos: list[str]) -> dict[str, object]:
    """Everything a foreign repository serves: tags, each manifest (by tag and by digest, children
    of indexes too) with status, digest header, type and bytes, and each blob's bytes."""
    snap: dict[str, object] = {}
    for repo in repos:
        tags = client.list_tags(repo).json().get("tags") or []
        snap[f"{repo} tags"] = sorted(tags)
        pending = list(tags)
        seen: set[str] = set()
        blobs: set[str] = set()
        while pending:
            ref = pending.pop()
            if ref in seen:
                continue
            seen.add(ref)
            resp = client.get_manifest(repo, ref, accept=ALL_MANIFEST_TYPES)
            snap[f"{repo} manifest {ref}"] = (resp.status_code, resp.headers.get("docker-content-digest"),
                                              resp.headers.get("content-type"), _sha(resp.content))
            if resp.status_code != 200:
                continue
            doc = json.loads(resp.content)
            pending += [m["digest"] for m in doc.get("manifests", [])]
            if "digest" not in ref:
                pending.append(resp.headers["docker-content-digest"])
            blobs |= {d["digest"] for d in [doc.get("config", {}), *doc.get("layers", [])] if "digest" in d}
        for digest in sorted(blobs):
            resp = client.get_blob(repo, digest)
            snap[f"{repo} blob {digest}"] = (resp.status_code, _sha(resp.content), len(resp.content))
    return snap


def all_repositories(client: RegistryClient) -> list[str]:
    repos: list[str] = []
    resp = client.catalog(n=1000)
    while resp is not None:
        assert resp.status_code == 200, resp.text
        repos += resp.json()["repositories"]
        resp = client.follow_link(resp)
    return repos


def test_the_client_fence_refuses_foreign_repositories_before_sending() -> None:
    client = RegistryClient("http://127.0.0.1:9", namespace="ns")  # port 9: nothing is ever sent
    for repo in ("other/app", "ns-evil/app", "nsx", "n"):
        with pytest.raises(ClientError, match="outside the run's namespace"):
            client.get_manifest(repo, "latest")
    with pytest.raises(ClientError, match="outside the run's namespace"):
        client.mount_blob("ns/app", "sha256:" + "0" * 64, from_repo="other/app")


def test_full_run_leaves_foreign_repositories_untouched_and_removes_its_own(shared_registry: ContainerTarget,
                                                                            tmp_path: Path) -> None:
    with RegistryClient(shared_registry.url) as owner:  # no namespace: the registry's other users
        push_foreign(owner)
        repos = foreign_repositories()
        before = snapshot(owner, repos)
        assert len([k for k in before if " blob " in k]) >= 10
        time.sleep(1.5)  # the access log has 1 s resolution: keep the snapshots out of the run's window
        started = time.time()
        proc = run_cli("--registry-url", shared_registry.url, "--namespace", NAMESPACE,
                       "--report-dir", str(tmp_path / "reports"), cwd=tmp_path)
        ended = time.time()
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        time.sleep(1.5)
        log = shared_registry.container.get_wrapped_container().logs(since=int(started), until=int(ended) + 1).decode()
        uris = [m[1] for m in re.finditer(r'http\.request\.uri="?([^" ]+)', log)]
        assert len(uris) > 100  # the run is in the window
        for repo in repos:
            assert f"/v2/{repo}/" not in log, f"the run sent a request to foreign repository {repo}"
        outside = [u for u in uris if u != "/v2/" and not u.startswith(("/v2/_catalog", f"/v2/{NAMESPACE}/"))]
        assert not outside, f"requests outside the namespace: {outside[:3]}"

        after = snapshot(owner, repos)
        assert after == before
        catalog = all_repositories(owner)
        assert set(repos) <= set(catalog)

        # What the run pushed is gone (2.8 keeps listing emptied repositories in _catalog).
        own = [r for r in catalog if r.startswith(f"{NAMESPACE}/")]
        assert own
        digests = {obj.digest for fmt in ("docker", "oci") for fs in [fixture_set(fmt)]
                   for obj in (*fs.images, fs.index)}
        blobs = {blob.digest for fmt in ("docker", "oci") for image in fixture_set(fmt).images for blob in image.blobs}
        for repo in own:
            tags = owner.list_tags(repo)
            assert tags.status_code == 404 or not tags.json().get("tags"), (repo, tags.text)
            for digest in digests:
                assert owner.head_manifest(repo, digest).status_code == 404, (repo, digest)
            for digest in blobs:
                assert owner.head_blob(repo, digest).status_code == 404, (repo, digest)


def test_keep_leaves_what_the_run_pushed(shared_registry: ContainerTarget, tmp_path: Path) -> None:
    namespace = f"{NAMESPACE}-keep"
    proc = run_cli("--registry-url", shared_registry.url, "--namespace", namespace, "--keep", "-k",
                   "test_tags_list_names_every_pushed_tag", "--report-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    with RegistryClient(shared_registry.url) as owner:
        kept = [r for r in all_repositories(owner) if r.startswith(f"{namespace}/")]
        assert kept and any(owner.list_tags(r).json().get("tags") for r in kept)


def test_the_snapshot_sees_a_change_to_a_foreign_repository(shared_registry: ContainerTarget) -> None:
    """Control: the comparison above is not blind. Deleting one foreign manifest changes the snapshot."""
    with RegistryClient(shared_registry.url) as owner:
        repo = f"{NAMESPACE}x/app"
        push_image(owner, repo, fixture_set("docker").alpha)
        before = snapshot(owner, [repo])
        assert owner.delete_manifest(repo, fixture_set("docker").alpha.digest).status_code == 202
        assert snapshot(owner, [repo]) != before
