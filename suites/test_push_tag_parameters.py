"""distribution-spec main §Pushing Manifests: `PUT /v2/<name>/manifests/<digest>?tag=a&tag=b` (end-7b).

A MAY: a registry that supports it SHOULD take at least 10 tags per request, MUST answer an `OCI-Tag`
header for each accepted tag, and MAY answer 414 (or 431) for too many. A registry that ignores the
parameters must not create the tags silently (it announces none)."""

from __future__ import annotations

import pytest

from regconform.checks import (
    describe_answer,
    expect_equal,
    expect_true,
    observe,
    unsupported,
)
from regconform.content.images import fixture_set, push_image

pytestmark = pytest.mark.workflow("push")

TAGS = tuple(f"multi-{i:02d}" for i in range(10))
TOO_MANY = 400  # 400 tags: ~4.8 KB of query, beyond what any registry needs to take


def put_with_tags(registry, repo, image, tags):
    query = "&".join(f"tag={t}" for t in tags)
    return registry.request("PUT", f"/v2/{repo}/manifests/{image.digest}?{query}",
                            headers={"Content-Type": image.media_type}, content=image.manifest)


def announced_tags(resp):
    return [t.strip() for t in resp.headers.get_list("oci-tag", split_commas=True) if t.strip()]


@pytest.mark.spec("distribution-spec end-7b: PUT /v2/<name>/manifests/<digest>?tag=…; OCI-Tag")
def test_manifest_put_with_tag_parameters(registry, repo, expect):
    """PUT by digest with 10 `tag` parameters: every accepted tag in OCI-Tag and resolving to the digest, all 10
    accepted; or, no OCI-Tag, none created (reported unsupported: the feature is a MAY)."""
    exp = expect("push.tag-parameters")
    image = fixture_set("oci").alpha
    push_image(registry, repo, image, tags=())
    resp = put_with_tags(registry, repo, image, TAGS)
    announced = announced_tags(resp)
    observe("oci_tag", announced)
    expect_true(resp.status_code in exp.status, f"PUT by digest with {len(TAGS)} tag parameters answered "
                f"{describe_answer(resp)}, expected {'/'.join(map(str, exp.status))}", exp)
    if not announced:
        created = [t for t in TAGS if registry.head_manifest(repo, t).status_code != 404]
        expect_equal(created, [], exp, "tags created although no OCI-Tag announced them")
        expect_true(exp["tag_parameters"] != "required", "the registry ignored the tag parameters (no OCI-Tag)", exp)
        unsupported(exp, "PUT by digest ignored its tag parameters: no OCI-Tag, no tag created")
    expect_true(exp.supported, f"the registry announced OCI-Tag {announced[:3]} although the profile records no support", exp)
    expect_equal(sorted(set(announced) - set(TAGS)), [], exp, "OCI-Tag names tags that were not asked for")
    expect_equal(sorted(announced), sorted(TAGS), exp, "tags accepted of 10 (SHOULD take at least 10)")
    for tag in announced:
        head = registry.head_manifest(repo, tag)
        expect_equal(head.headers.get("docker-content-digest"), image.digest, exp, f"digest of the announced tag {tag}")
    many = put_with_tags(registry, repo, image, [f"many-{i:03d}" for i in range(TOO_MANY)])
    observe("too_many_answer", many.status_code)
    expect_true(many.status_code in exp["too_many"], f"PUT by digest with {TOO_MANY} tag parameters answered "
                f"{many.status_code}, expected one of {exp['too_many']}", exp)

