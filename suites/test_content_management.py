"""Content management: deleting manifests, tags and blobs (OCI distribution-spec §Content Management,
end-9/end-10), with deletion enabled and disabled."""

import pytest

from regconform.checks import expect_answer, expect_equal, expect_true, observe
from regconform.registry.digests import sha256_digest

pytestmark = pytest.mark.workflow("content-management")


@pytest.mark.spec("distribution-spec end-9: DELETE /v2/<name>/manifests/<digest>")
def test_delete_manifest_by_digest_answers_202_and_removes_it_with_its_tags(registry, pushed, expect):
    """DELETE by digest: 202 with an empty body; the manifest and every tag on it are gone."""
    image = pushed.images.alpha
    resp = registry.delete_manifest(pushed.repo, image.digest)
    exp = expect("manifests.delete-by-digest")
    expect_answer(resp, exp, "DELETE manifest by digest")
    if exp["body"] == "empty":
        expect_equal(resp.content, b"", exp, "body of the DELETE answer")
    gone = expect("manifests.deleted-manifest-gone")
    expect_answer(registry.get_manifest(pushed.repo, image.digest), gone, "GET deleted manifest by digest")
    for tag in image.tags:
        expect_answer(registry.get_manifest(pushed.repo, tag), gone, f"GET tag {tag!r} of the deleted manifest")


@pytest.mark.spec("distribution-spec end-9: DELETE /v2/<name>/manifests/<digest>")
def test_delete_manifest_twice_answers_404(registry, pushed, expect):
    """A second DELETE of the same digest answers 404 MANIFEST_UNKNOWN."""
    digest = pushed.images.beta.digest
    expect_answer(registry.delete_manifest(pushed.repo, digest), expect("manifests.delete-by-digest"), "first DELETE")
    expect_answer(registry.delete_manifest(pushed.repo, digest), expect("manifests.delete-again"), "second DELETE")


@pytest.mark.spec("distribution-spec end-9: DELETE /v2/<name>/manifests/<tag>")
def test_delete_manifest_by_tag_is_rejected_and_deletes_nothing(registry, pushed, expect):
    """DELETE by tag answers as the profile says; when rejected, the tag and manifest still resolve."""
    image = pushed.images.alpha
    exp = expect("manifests.delete-by-tag")
    resp = registry.delete_manifest(pushed.repo, image.tags[0])
    expect_answer(resp, exp, f"DELETE manifest by tag {image.tags[0]!r}")
    if resp.status_code >= 400:
        for ref in (image.tags[0], image.digest):
            still = registry.head_manifest(pushed.repo, ref)
            expect_equal(still.status_code, 200, exp, f"HEAD {ref} after the rejected delete by tag (it deleted anyway)")
    else:  # a tag delete removes the tag only (OCI §Deleting tags): other tags and the digest still resolve
        expect_equal(registry.head_manifest(pushed.repo, image.tags[0]).status_code, 404, exp,
                     f"HEAD {image.tags[0]!r} after DELETE by tag answered {resp.status_code}")
        for ref in (*image.tags[1:], image.digest):
            expect_equal(registry.head_manifest(pushed.repo, ref).status_code, 200, exp,
                         f"HEAD {ref} after deleting only the tag {image.tags[0]!r}")


@pytest.mark.spec("distribution-spec end-9: deletion disabled")
def test_every_delete_is_refused_when_deletion_is_disabled(deletion_disabled_registry, repo, fixtures, expect):
    """With deletion disabled: DELETE by digest, by tag and of a blob all answer 405 UNSUPPORTED and delete nothing."""
    from regconform.content.images import push_image

    reg = deletion_disabled_registry
    image = fixtures.alpha
    push_image(reg.client, repo, image)
    exp = expect("manifests.delete-disabled")
    attempts = [
        ("DELETE manifest by digest", reg.client.delete_manifest(repo, image.digest)),
        (f"DELETE manifest by tag {image.tags[0]!r}", reg.client.delete_manifest(repo, image.tags[0])),
        ("DELETE blob", reg.client.delete_blob(repo, image.layers[1].digest)),
    ]
    for what, resp in attempts:
        expect_answer(resp, exp, f"{what} with deletion disabled")
    for ref in (image.digest, *image.tags):
        expect_equal(reg.client.head_manifest(repo, ref).status_code, 200, exp,
                     f"HEAD {ref} after refused deletes (something was deleted)")
    expect_equal(reg.client.head_blob(repo, image.layers[1].digest).status_code, 200, exp,
                 "HEAD blob after refused delete (it was deleted)")


@pytest.mark.spec("distribution-spec end-9: DELETE of an unknown manifest")
def test_delete_unknown_manifest_answers_404_manifest_unknown(registry, pushed, expect):
    """DELETE of a digest the repository does not hold: 404 MANIFEST_UNKNOWN."""
    expect_answer(registry.delete_manifest(pushed.repo, "sha256:" + "2" * 64), expect("manifests.delete-unknown"),
                  "DELETE of an unknown manifest digest")


@pytest.mark.spec("distribution-spec end-10: DELETE /v2/<name>/blobs/<digest>")
def test_delete_blob_answers_202_and_the_blob_is_gone(registry, repo, expect):
    """DELETE of a blob: 202; then HEAD and GET 404 BLOB_UNKNOWN, and a second DELETE 404 BLOB_UNKNOWN."""
    data = b"regconform blob to delete"  # same bytes every run, so two runs' reports diff cleanly
    digest = sha256_digest(data)
    expect_equal(registry.push_blob(repo, data).status_code, 201, None, "push of the blob to delete")
    expect_answer(registry.delete_blob(repo, digest), expect("blobs.delete"), "DELETE blob")
    gone = expect("blobs.deleted-gone")
    expect_answer(registry.head_blob(repo, digest), gone, "HEAD of the deleted blob")
    expect_answer(registry.get_blob(repo, digest), gone, "GET of the deleted blob")
    expect_answer(registry.delete_blob(repo, digest), expect("blobs.delete-unknown"), "second DELETE of the blob")


@pytest.mark.spec("distribution-spec end-10: DELETE of an unknown blob")
def test_delete_unknown_blob_answers_404_blob_unknown(registry, pushed, expect):
    """DELETE of a blob digest the repository does not hold: 404 BLOB_UNKNOWN."""
    expect_answer(registry.delete_blob(pushed.repo, "sha256:" + "1" * 64), expect("blobs.delete-unknown"),
                  "DELETE of an unknown blob")


@pytest.mark.spec("distribution-spec end-9: tag deletion disabled (CVE-2026-41888)")
def test_delete_by_tag_does_not_succeed_when_deletion_is_disabled(deletion_disabled_registry, repo, fixtures, expect):
    """With deletion disabled, DELETE by tag is refused and the tag still resolves (distribution 3.0.0-3.1.0 deleted it)."""
    from regconform.content.images import push_image

    reg = deletion_disabled_registry
    image = fixtures.alpha
    push_image(reg.client, repo, image)
    exp = expect("manifests.delete-disabled-tag")
    tag = image.tags[0]
    resp = reg.client.delete_manifest(repo, tag)
    expect_true(not resp.is_success, f"DELETE by tag {tag!r} with deletion disabled answered {resp.status_code}: "
                "the registry deleted a tag although deletion is disabled", exp)
    expect_answer(resp, exp, f"DELETE manifest by tag {tag!r} with deletion disabled")
    expect_equal(reg.client.head_manifest(repo, tag).status_code, 200, exp,
                 f"HEAD {tag!r} after the refused delete by tag (the tag was deleted)")
    listed = reg.client.list_tags(repo).json().get("tags") or []
    expect_true(tag in listed, f"tags/list after the refused delete by tag lacks {tag!r}: {listed}", exp)


@pytest.mark.spec("Docker Registry API V2: Deleting an Image (DELETE of a layer digest under manifests/)")
def test_delete_of_a_layer_digest_under_manifests(registry, pushed, expect):
    """DELETE /manifests/<layer digest>: answered as the profile records; the image using the layer still resolves."""
    exp = expect("manifests.delete-layer-digest")
    image = pushed.images.beta
    layer = image.layers[1]
    resp = registry.delete_manifest(pushed.repo, layer.digest)
    expect_answer(resp, exp, "DELETE of a layer digest under manifests/")
    observe("blob_head_right_after", registry.head_blob(pushed.repo, layer.digest).status_code)
    expect_equal(registry.get_manifest(pushed.repo, image.digest).status_code, 200, exp,
                 "GET of the image whose layer digest was deleted under manifests/")
    expect_answer(registry.delete_manifest(pushed.repo, layer.digest), expect("manifests.delete-layer-digest-again"),
                  "second DELETE of the layer digest under manifests/")


@pytest.mark.spec("Docker Registry API V2: Deleting an Image (DELETE of a layer digest under manifests/)")
def test_delete_of_a_layer_digest_under_manifests_after_restart(restart_registry, repo, own_fixtures, expect):
    """After DELETE /manifests/<layer digest> and a restart (no descriptor cache): what remains of the layer, as recorded."""
    from regconform.content.images import push_image

    reg = restart_registry  # a registry this check may restart; content of its own (the cache is registry-wide)
    image = own_fixtures.beta
    layer = image.layers[1]
    push_image(reg.client, repo, image)
    exp = expect("manifests.delete-layer-digest")
    expect_answer(reg.client.delete_manifest(repo, layer.digest), exp, "DELETE of a layer digest under manifests/")
    client = reg.restart()
    after = client.head_blob(repo, layer.digest).status_code
    observe("blob_head_after_restart", after)
    expect_equal(after, exp["blob_after_restart"], exp, "HEAD of the layer (in its repository) after the restart")
    expect_equal(client.get_manifest(repo, image.digest).status_code, 200, exp,
                 "GET of the image using the layer after the restart")
