"""Garbage collection: blobs only deleted manifests used go away; shared ones stay.

Runs `registry garbage-collect` and restarts the registry. Garbage collection marks registry-wide,
so every check pushes content of its own (`own_fixtures`, the fixture variant of the check): its
answer is then the same on a registry full of other images as on an empty one, and the checks share
one GC registry per worker (or the external registry, given --gc-command and --restart-command).
"""

import re

import httpx
import pytest

from regconform.checks import expect_answer, expect_equal, expect_true, observe
from regconform.content.images import push_image, push_index

pytestmark = [pytest.mark.workflow("garbage-collection"), pytest.mark.needs_gc]


def own_digests(fixtures):
    """Every digest of a fixture set: its manifests and blobs."""
    images = fixtures.images
    return {fixtures.index.digest, *(img.digest for img in images), *(b.digest for img in images for b in img.blobs)}


# How 2.8 says its --delete-untagged mark phase met a repository without tags (and gave up on everything).
# The output interleaves stdout and stderr, so the name may run into other text: compare prefixes.
TAGLESS_ABORT = re.compile(r"failed to retrieve tags unknown repository name=([a-z0-9._/-]{1,300})")


def collect_garbage(reg, fixtures, expect, delete_untagged=False):
    result = reg.target.garbage_collect(delete_untagged=delete_untagged)
    observe("gc_exit_code", result.returncode)
    # What GC says it deletes of the check's own content, sorted: its log order varies from run to run,
    # and what else it deletes depends on what else the registry holds (other checks, other users).
    eligible = re.findall(r"(blob|manifest) eligible for deletion: (\S+)", result.output)
    own = own_digests(fixtures)
    observe("gc_eligible", sorted({f"{kind} {digest}" for kind, digest in eligible if digest in own}))
    if result.returncode != 0 and delete_untagged and (named := TAGLESS_ABORT.search(result.output)):
        skip_if_aborted_on_a_foreign_tagless_repository(named.group(1), expect)
    assert result.returncode == 0, f"registry garbage-collect exited {result.returncode}: {result.output[-500:]}"
    return result


def skip_if_aborted_on_a_foreign_tagless_repository(name, expect):
    """Where independence is impossible: a repository without tags elsewhere in the registry makes a
    registry the profile records as aborting collect nothing, so this check cannot judge its own content."""
    exp = expect("gc.delete-untagged-tagless-repository")
    if exp["aborts"]:
        pytest.skip(f"garbage-collect --delete-untagged aborted on repository {name!r}, which has no tags, and so "
                    f"collected nothing: this check cannot judge its own content on this registry "
                    f"[{exp.profile}: {exp.key}: {exp.note}]")
    expect_true(False, f"garbage-collect --delete-untagged aborted on repository {name!r}, which has no tags", exp)


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
def test_gc_removes_blobs_only_the_deleted_image_used(gc_registry, repo, own_fixtures, expect):
    """Delete alpha (sharing its base layer with beta), collect, restart: alpha's own blobs 404, the rest 200."""
    client = gc_registry.client
    alpha, beta = own_fixtures.alpha, own_fixtures.beta
    push_image(client, repo, alpha)
    push_image(client, repo, beta)
    expect_answer(client.delete_manifest(repo, alpha.digest), expect("manifests.delete-by-digest"), "DELETE alpha")
    collect_garbage(gc_registry, own_fixtures, expect)
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
def test_gc_delete_untagged_removes_untagged_manifests_and_their_blobs(gc_registry, repo, own_fixtures, expect):
    """An image pushed by digest only (untagged) is collected with --delete-untagged; tagged beta stays."""
    require_delete_untagged(gc_registry)
    client = gc_registry.client
    alpha, beta = own_fixtures.alpha, own_fixtures.beta
    push_image(client, repo, alpha, tags=())
    push_image(client, repo, beta)
    collect_garbage(gc_registry, own_fixtures, expect, delete_untagged=True)
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
def test_gc_delete_untagged_and_the_images_a_tagged_index_references(gc_registry, repo, own_fixtures, expect):
    """A tagged index over untagged images, GC --delete-untagged, restart: the index resolves; its images as the profile records."""
    require_delete_untagged(gc_registry)
    client = gc_registry.client
    index = own_fixtures.index
    push_index(client, repo, index)  # the images go by digest only: the index's tag is their only root
    collect_garbage(gc_registry, own_fixtures, expect, delete_untagged=True)
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


@pytest.mark.spec("distribution docs: garbage collection --delete-untagged (a repository without tags)")
def test_gc_delete_untagged_with_a_repository_without_tags(gc_registry, repo, own_fixtures, expect):
    """A repository holding only an image pushed by digest: GC --delete-untagged collects it, or aborts as the profile records."""
    require_delete_untagged(gc_registry)
    client = gc_registry.client
    alpha = own_fixtures.alpha
    push_image(client, repo, alpha, tags=())  # by digest only: the repository never gets a tags directory
    exp = expect("gc.delete-untagged-tagless-repository")
    try:
        result = gc_registry.target.garbage_collect(delete_untagged=True)
        observe("gc_exit_code", result.returncode)
        named = TAGLESS_ABORT.search(result.output)
        observe("aborted_on_its_repository", bool(named) and named.group(1).startswith(repo))
        if named and not named.group(1).startswith(repo):
            skip_if_aborted_on_a_foreign_tagless_repository(named.group(1), expect)
        aborted = result.returncode != 0
        expect_equal(aborted, exp["aborts"], exp, "garbage-collect --delete-untagged aborted with a repository "
                     f"without tags (exit {result.returncode}: {result.output.strip()[-200:]!r})")
        if not aborted:
            client = gc_registry.restart()
            expect_answer(client.get_manifest(repo, alpha.digest), expect("manifests.deleted-manifest-gone"),
                          "GET the untagged image of the repository without tags after GC --delete-untagged")
    finally:
        # A tag gives the repository its tags directory (deleting the manifest again leaves it), so
        # later --delete-untagged runs on this registry do not meet a repository without tags.
        client = gc_registry.client
        push_image(client, repo, alpha, tags=("with-a-tag",))
        client.delete_manifest(repo, alpha.digest)
