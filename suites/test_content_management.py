"""Content management: deleting manifests (OCI distribution-spec §Deleting Manifests, end-9)."""

import pytest

from regconform.checks import expect_answer, expect_equal

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


@pytest.mark.spec("distribution-spec end-9: deletion disabled")
def test_every_delete_is_refused_when_deletion_is_disabled(private_registry, repo, fixtures, expect):
    """With deletion disabled: DELETE by digest, by tag and of a blob all answer 405 UNSUPPORTED and delete nothing."""
    from regconform.images import push_image

    reg = private_registry(delete_enabled=False)
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
