"""Pulling through a mirror (pull-through cache): the upstream's bytes and digests, tags, catalog, errors."""

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from regconform.checks import expect_answer, expect_equal, expect_true, observe
from regconform.targets.mirrors import (
    parse_image_ref,
    same_as_upstream,
    same_head_as_upstream,
)

pytestmark = pytest.mark.workflow("mirror")


def tagged(images):
    """(label, tag, digest) of every manifest the fixture set tags: schema2/OCI images and the index/list."""
    for obj in (images.alpha, images.beta, images.index):
        yield f"{obj.name} ({obj.media_type})", obj.tags[0], obj.digest


@pytest.mark.spec("Docker Registry pull-through cache: GET /v2/<name>/manifests/<tag> through the mirror")
def test_pull_by_tag_serves_upstream_manifests(mirror, upstream, mirrored, expect):
    """Manifests pulled by tag through the mirror: the upstream's bytes, Docker-Content-Digest and media type."""
    exp = expect("mirror.pull-through")
    for label, tag, digest in tagged(mirrored.images):
        same_as_upstream(mirror.get_manifest(mirrored.repo, tag), upstream.get_manifest(mirrored.repo, tag), exp,
                         f"GET manifest {label} by tag {tag}", digest)


@pytest.mark.spec("Docker Registry pull-through cache: GET manifests and blobs by digest through the mirror")
def test_pull_by_digest_serves_upstream_manifests_and_blobs(mirror, upstream, mirrored, expect):
    """Manifests and every blob pulled by digest through the mirror: the upstream's bytes and digests."""
    exp = expect("mirror.pull-through")
    images = mirrored.images
    for label, _, digest in tagged(images):
        same_as_upstream(mirror.get_manifest(mirrored.repo, digest), upstream.get_manifest(mirrored.repo, digest), exp,
                         f"GET manifest {label} by digest", digest)
    for image in images.images:
        for blob in image.blobs:
            same_as_upstream(mirror.get_blob(mirrored.repo, blob.digest), upstream.get_blob(mirrored.repo, blob.digest),
                             exp, f"GET blob {blob.digest[:19]} ({blob.media_type}) of {image.name}", blob.digest)


@pytest.mark.spec("Docker Registry pull-through cache: HEAD manifests by tag and blobs by digest through the mirror")
def test_head_through_mirror_answers_upstream_metadata(mirror, upstream, mirrored, expect):
    """HEAD, as clients resolve a tag and probe blobs, before anything is cached: the upstream's
    Docker-Content-Digest and Content-Length."""
    exp = expect("mirror.pull-through")
    images = mirrored.images
    for label, tag, _ in tagged(images):
        same_head_as_upstream(mirror.head_manifest(mirrored.repo, tag), upstream.head_manifest(mirrored.repo, tag), exp,
                              f"HEAD manifest {label} by tag {tag}")
    for image in images.images:
        for blob in image.blobs:
            same_head_as_upstream(mirror.head_blob(mirrored.repo, blob.digest), upstream.head_blob(mirrored.repo, blob.digest),
                                  exp, f"HEAD blob {blob.digest[:19]} ({blob.media_type}) of {image.name}")


@pytest.mark.spec("Docker Registry pull-through cache: existing images named with --image")
def test_named_image_served_as_upstream(readers, image_ref, expect):
    """An existing image (--image): the mirror serves its manifests and blobs as the upstream does."""
    exp = expect("mirror.pull-through")
    mirror, upstream = readers
    repo, ref = parse_image_ref(image_ref)
    top_up = upstream.get_manifest(repo, ref)
    same_as_upstream(mirror.get_manifest(repo, ref), top_up, exp, f"GET manifest {image_ref}")
    doc = json.loads(top_up.content)
    manifests = [doc]
    for child in doc.get("manifests", []):  # an index / manifest list: every platform's manifest
        via_up = upstream.get_manifest(repo, child["digest"])
        same_as_upstream(mirror.get_manifest(repo, child["digest"]), via_up, exp,
                         f"GET manifest {child['digest'][:19]} of {image_ref}", child["digest"])
        manifests.append(json.loads(via_up.content))
    blobs = {d["digest"]: d.get("size") for m in manifests for d in [m.get("config", {}), *m.get("layers", [])] if d}
    for digest, size in sorted(blobs.items()):
        served = mirror.stream_blob(repo, digest)  # verifies the bytes hash to the digest
        head = upstream.head_blob(repo, digest)
        expect_answer(head, exp, f"HEAD blob {digest[:19]} of {image_ref} on the upstream")
        expect_equal(served, int(head.headers.get("content-length", -1)), exp,
                     f"size of blob {digest[:19]} of {image_ref}: mirror vs upstream")
        if size is not None:
            expect_equal(served, size, exp, f"size of blob {digest[:19]} vs its descriptor")
    observe("checked", {"manifests": len(manifests), "blobs": len(blobs)})


def skopeo_source_options(settings, mirror_url: str, workdir: Path) -> list[str]:
    """skopeo's options for reading from the mirror: TLS as the run's settings say, credentials from a file."""
    url = httpx.URL(mirror_url)
    opts = ["--src-tls-verify=" + ("false" if url.scheme == "http" or settings.insecure else "true")]
    if settings.ca_cert:
        certs = workdir / "certs"
        certs.mkdir()
        shutil.copy(settings.ca_cert, certs / "ca.crt")
        opts.append(f"--src-cert-dir={certs}")
    if settings.username:  # never on argv: an auth file in the check's temporary directory
        token = base64.b64encode(f"{settings.username}:{settings.password or ''}".encode()).decode()
        authfile = workdir / "auth.json"
        authfile.write_text(json.dumps({"auths": {url.netloc.decode(): {"auth": token}}}))
        opts.append(f"--src-authfile={authfile}")
    else:
        opts.append("--src-no-creds")
    return opts


@pytest.mark.spec("Docker Registry pull-through cache: a real client (skopeo) pulls through the mirror")
def test_skopeo_copies_index_through_mirror(mirror_pair, mirrored, settings, tmp_path, expect):
    """skopeo copies the index/list and every image in it through the mirror, every digest preserved."""
    exp = expect("mirror.pull-through")
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed (./setup.sh installs it)")
    if mirror_pair.ns:
        pytest.skip("skopeo sends no ns= (containerd does: the ctr check)")
    index = mirrored.images.index
    name = mirror_pair.route.mirror_name(mirrored.repo)  # skopeo names the mirror's repository, prefix and all
    source = f"docker://{httpx.URL(mirror_pair.mirror_url).netloc.decode()}/{name}:{index.tags[0]}"
    dest = tmp_path / "copy"
    proc = subprocess.run(["skopeo", "copy", "--all", "--preserve-digests",
                           *skopeo_source_options(settings, mirror_pair.mirror_url, tmp_path), source, f"dir:{dest}"],
                          capture_output=True, text=True, timeout=300)
    expect_true(proc.returncode == 0, f"skopeo copy --all of {mirrored.repo}:{index.tags[0]} from the mirror "
                f"exited {proc.returncode}: {proc.stderr.strip()[-300:]}", exp)

    def digest_of(path: Path) -> str:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()

    expect_equal(digest_of(dest / "manifest.json"), index.digest, exp, "digest of the index skopeo pulled through the mirror")
    for image in index.images:
        child = dest / f"{image.digest.split(':', 1)[1]}.manifest.json"
        expect_true(child.is_file(), f"skopeo did not get manifest {image.digest} of {image.name} through the mirror", exp)
        expect_equal(digest_of(child), image.digest, exp, f"digest of manifest {image.name} skopeo pulled")
        for blob in image.blobs:
            path = dest / blob.digest.split(":", 1)[1]
            expect_true(path.is_file(), f"skopeo did not get blob {blob.digest} of {image.name} through the mirror", exp)
            expect_equal(digest_of(path), blob.digest, exp, f"digest of blob {blob.digest[:19]} skopeo pulled")


def _tags(resp):
    return sorted(json.loads(resp.content).get("tags") or [])


@pytest.mark.spec("Docker Registry pull-through cache: GET /v2/<name>/tags/list through the mirror")
def test_tags_list_through_mirror(mirror, upstream, mirrored, expect):
    """The tag list through the mirror compared with the upstream's (as the profile records)."""
    exp = expect("mirror.tags-list")
    via_mirror = mirror.list_tags(mirrored.repo)
    expect_answer(via_mirror, exp, "GET tags/list through the mirror")
    upstream_tags = _tags(upstream.list_tags(mirrored.repo))
    observe("tags", {"mirror": _tags(via_mirror), "upstream": upstream_tags})
    if exp["matches_upstream"]:
        expect_equal(_tags(via_mirror), upstream_tags, exp, "tags listed by the mirror vs by the upstream")
    else:
        expect_true(_tags(via_mirror) != upstream_tags, "the mirror lists the upstream's tags", exp)


def _catalog(client, namespace):
    """Every repository of the catalog under the run's namespace, following Link pages."""
    names, resp = [], client.catalog(n=1000)
    first = resp
    while resp is not None and resp.status_code == 200:
        names += [r for r in json.loads(resp.content).get("repositories") or [] if r.startswith(namespace + "/")]
        resp = client.follow_link(resp)
    return first, sorted(names)


# What a catalog lists, per profile value: which of (pulled fully, manifest only, never pulled) appear.
CATALOG_LISTS = {
    "upstream": {"pulled": True, "manifest-only": True, "never-pulled": True},
    "cached": {"pulled": True, "manifest-only": True, "never-pulled": False},
    "cached-blobs": {"pulled": True, "manifest-only": False, "never-pulled": False},
}


@pytest.mark.spec("Docker Registry pull-through cache: GET /v2/_catalog through the mirror")
def test_catalog_through_mirror(mirror, upstream, mirrored, settings, expect):
    """The catalog through the mirror: repositories pulled through (fully, manifest only) vs upstream-only ones."""
    from regconform.content.images import push_image

    if mirror.prefix:
        pytest.skip("/v2/_catalog has no name prefix: a prefix-routed mirror's catalog is not the upstream's")
    exp = expect("mirror.catalog")
    alpha = mirrored.images.alpha
    repos = {"pulled": mirrored.repo, "manifest-only": f"{mirrored.repo}-manifest-only",
             "never-pulled": f"{mirrored.repo}-upstream-only"}
    for name in (repos["manifest-only"], repos["never-pulled"]):
        push_image(upstream, name, alpha)
    mirror.pull_manifest(repos["pulled"], alpha.digest)
    for blob in alpha.blobs:
        mirror.pull_blob(repos["pulled"], blob.digest)
    mirror.pull_manifest(repos["manifest-only"], alpha.digest)
    resp, listed = _catalog(mirror, settings.namespace)
    expect_answer(resp, exp, "GET /v2/_catalog through the mirror")
    _, upstream_listed = _catalog(upstream, settings.namespace)
    seen = {kind: name in listed for kind, name in repos.items()}
    observe("catalog", {"mirror": seen, "upstream": {kind: name in upstream_listed for kind, name in repos.items()}})
    expect_equal(seen, CATALOG_LISTS[exp["lists"]], exp, "repositories the mirror's catalog lists")


@pytest.mark.spec("Docker Registry pull-through cache: unknown tag and blob through the mirror")
def test_unknown_tag_and_blob_through_mirror(mirror, upstream, repo, expect):
    """A tag and a blob the upstream does not hold: the mirror answers not found."""
    missing_tag_up = upstream.get_manifest(repo, "no-such-tag")
    expect_true(missing_tag_up.status_code == 404, f"precondition: the upstream answers 404 for an unknown tag "
                f"(got {missing_tag_up.status_code})")
    expect_answer(mirror.get_manifest(repo, "no-such-tag"), expect("mirror.unknown-tag"),
                  "GET manifest by unknown tag through the mirror")
    digest = "sha256:" + "0" * 63 + "1"
    expect_answer(mirror.get_blob(repo, digest), expect("mirror.unknown-blob"), "GET unknown blob through the mirror")
