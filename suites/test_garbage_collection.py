"""Garbage collection: blobs only deleted manifests used go away; shared ones stay.

Runs `registry garbage-collect` and restarts the registry, so every check gets a registry of its own.
"""

import re

import httpx
import pytest

from regconform.checks import expect_answer, expect_equal, observe
from regconform.images import push_image, push_index

pytestmark = [pytest.mark.workflow("garbage-collection"), pytest.mark.needs_gc]


def collect_garbage(reg, delete_untagged=False):
    result = reg.target.garbage_collect(delete_untagged=delete_untagged)
    observe("gc_exit_code", result.returncode)
    # What GC says it deletes, sorted: its log order varies from run to run, the set does not.
    eligible = re.findall(r"(blob|manifest) eligible for deletion: (\S+)", result.output)
    observe("gc_eligible", sorted(f"{kind} {digest}" for kind, digest in eligible))
    assert result.returncode == 0, f"registry garbage-collect exited {result.returncode}: {result.output[-500:]}"


def require_delete_untagged(reg):
    """--delete-untagged on an external registry reaches far beyond the run's namespace: only when allowed."""
    if not reg.target.can_gc_delete_untagged:
        pytest.skip("--delete-untagged deletes every untagged manifest of the whole registry: "
                    "give --gc-delete-untagged to allow it on an external registry")


def blob_status(client, repo, digest):
    """What HEAD and GET answer; a GET whose body never arrives is recorded as such, not raised."""
    status = {"HEAD": client.head_blob(repo, digest).status_code}
    try:
        status["GET"] = client.get_blob(repo, digest).status_code
    except httpx.RemoteProtocolError as exc:
        status["GET"] = f"broken answer: {exc}"
    return status


@pytest.mark.spec("distribution docs: garbage collection")
def test_gc_removes_blobs_only_the_deleted_image_used(gc_registry, repo, fixtures, expect):
    """Delete alpha (sharing its base layer with beta), collect, restart: alpha's own blobs 404, the rest 200."""
    client = gc_registry.client
    alpha, beta = fixtures.alpha, fixtures.beta
    push_image(client, repo, alpha)
    push_image(client, repo, beta)
    expect_answer(client.delete_manifest(repo, alpha.digest), expect("manifests.delete-by-digest"), "DELETE alpha")
    collect_garbage(gc_registry)
    unique = [alpha.config.digest, alpha.layers[1].digest]

    stale = expect("gc.served-before-restart")
    served = {d: blob_status(client, repo, d) for d in unique}
    observe("served_between_gc_and_restart", served)
    observe("stale_cache", any(s["HEAD"] == 200 for s in served.values()))
    observe("profile_says_stale_cache", stale["served"])

    client = gc_registry.restart()
    removed = expect("gc.unique-blob-removed")
    for digest in unique:
        expect_answer(client.head_blob(repo, digest), removed, f"HEAD blob {digest} only alpha used, after GC and restart")
        expect_answer(client.get_blob(repo, digest), removed, f"GET blob {digest} only alpha used, after GC and restart")
    kept = expect("gc.shared-content-kept")
    for digest in (alpha.layers[0].digest, *(b.digest for b in beta.blobs)):
        expect_answer(client.head_blob(repo, digest), kept, f"HEAD blob {digest} beta still uses, after GC")
    expect_answer(client.get_manifest(repo, beta.tags[0]), kept, "GET beta by tag after GC")
    expect_equal(client.pull_blob(repo, alpha.layers[0].digest), alpha.layers[0].data, kept, "shared layer bytes after GC")


@pytest.mark.spec("distribution docs: garbage collection --delete-untagged")
def test_gc_delete_untagged_removes_untagged_manifests_and_their_blobs(gc_registry, repo, fixtures, expect):
    """An image pushed by digest only (untagged) is collected with --delete-untagged; tagged beta stays."""
    require_delete_untagged(gc_registry)
    client = gc_registry.client
    alpha, beta = fixtures.alpha, fixtures.beta
    push_image(client, repo, alpha, tags=())
    push_image(client, repo, beta)
    collect_garbage(gc_registry, delete_untagged=True)
    client = gc_registry.restart()
    removed = expect("gc.unique-blob-removed")
    expect_answer(client.get_manifest(repo, alpha.digest), expect("manifests.deleted-manifest-gone"),
                  "GET untagged alpha manifest after GC --delete-untagged")
    for digest in (alpha.config.digest, alpha.layers[1].digest):
        expect_answer(client.get_blob(repo, digest), removed, f"GET blob {digest} only untagged alpha used")
    kept = expect("gc.shared-content-kept")
    expect_answer(client.get_manifest(repo, beta.tags[0]), kept, "GET tagged beta after GC --delete-untagged")
    for blob in beta.blobs:
        expect_answer(client.head_blob(repo, blob.digest), kept, f"HEAD blob {blob.digest} of beta after GC")


@pytest.mark.spec("distribution docs: garbage collection --delete-untagged (images an index references)")
def test_gc_delete_untagged_and_the_images_a_tagged_index_references(gc_registry, repo, fixtures, expect):
    """A tagged index over untagged images, GC --delete-untagged, restart: the index resolves; its images as the profile records."""
    require_delete_untagged(gc_registry)
    client = gc_registry.client
    index = fixtures.index
    push_index(client, repo, index)  # the images go by digest only: the index's tag is their only root
    collect_garbage(gc_registry, delete_untagged=True)
    client = gc_registry.restart()
    expect_answer(client.get_manifest(repo, index.tags[0]), expect("gc.shared-content-kept"),
                  "GET the tagged index after GC --delete-untagged")
    children = expect("gc.untagged-index-children")
    observe("index_images_after_gc", {img.name: client.head_manifest(repo, img.digest).status_code for img in index.images})
    for img in index.images:
        expect_answer(client.get_manifest(repo, img.digest), children,
                      f"GET image {img.name} (untagged, referenced by the tagged index) after GC --delete-untagged")
        expect_answer(client.head_blob(repo, img.config.digest), expect(children["blobs"]),
                      f"HEAD config blob of image {img.name} after GC --delete-untagged")
