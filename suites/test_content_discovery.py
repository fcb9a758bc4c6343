"""Content discovery: listing tags (OCI distribution-spec §Listing Tags, end-8a/8b)."""

import pytest

from regconform.checks import expect_answer, expect_equal, expect_true, observe

pytestmark = pytest.mark.workflow("content-discovery")


def served_tags(registry, repo, exp):
    resp = registry.list_tags(repo)
    expect_answer(resp, exp, f"GET /v2/{repo}/tags/list")
    doc = resp.json()
    expect_equal(doc.get("name"), repo, exp, "tags/list name field")
    observe("tags", doc.get("tags"))
    return doc.get("tags")


@pytest.mark.spec("distribution-spec end-8a: GET /v2/<name>/tags/list")
def test_tags_list_names_every_pushed_tag(registry, pushed, expect):
    """Every tag pushed is listed, and nothing else."""
    exp = expect("tags.list")
    tags = served_tags(registry, pushed.repo, exp)
    wanted = {t for img in (*pushed.images.images, pushed.images.index) for t in img.tags}
    expect_true(isinstance(tags, list), f"tags/list answered tags={tags!r}, not a list", exp)
    expect_equal(sorted(tags), sorted(wanted), exp, "tags listed after push")
    if exp["order"] == "lexical":
        expect_equal(tags, sorted(tags), exp, "tags/list order")


@pytest.mark.spec("distribution-spec end-8a: GET /v2/<name>/tags/list")
def test_tags_list_follows_deletions(registry, pushed, expect):
    """Deleting a manifest removes its tags from the list; with none left the list is as the profile says."""
    images = pushed.images
    registry.delete_manifest(pushed.repo, images.index.digest)
    registry.delete_manifest(pushed.repo, images.beta.digest)
    remaining = served_tags(registry, pushed.repo, expect("tags.list"))
    expect_equal(sorted(remaining or []), sorted(images.alpha.tags), None,
                 "tags listed after deleting beta and the index")

    registry.delete_manifest(pushed.repo, images.alpha.digest)
    exp = expect("tags.list-after-all-deleted")
    resp = registry.list_tags(pushed.repo)
    expect_answer(resp, exp, "tags/list of a repository with no tag left")
    if resp.status_code == 200:
        tags = resp.json().get("tags")
        observe("tags", tags)
        expect_equal("null" if tags is None else tags, exp["tags"], exp, "tags field with no tag left")
