"""Pulling manifests: Docker-Content-Digest, Content-Length, Content-Type, Accept (OCI end-3)."""

import pytest

from regconform.checks import expect_answer, expect_equal
from regconform.client import sha256_digest

pytestmark = pytest.mark.workflow("pull")


def manifests_of(pushed):
    """(label, reference, manifest bytes, media type) for every manifest pushed, by tag and digest."""
    images = pushed.images
    for obj in (images.alpha, images.index):
        yield f"{obj.name} by tag", obj.tags[0], obj.manifest, obj.media_type
        yield f"{obj.name} by digest", obj.digest, obj.manifest, obj.media_type


@pytest.mark.spec("distribution-spec end-3: GET /v2/<name>/manifests/<reference>")
def test_manifest_get_digest_header_is_digest_of_bytes_served(registry, pushed, expect):
    """Docker-Content-Digest on GET equals the sha256 of the exact bytes served."""
    exp = expect("manifests.digest-header")
    for label, ref, body, media_type in manifests_of(pushed):
        resp = registry.get_manifest(pushed.repo, ref)
        expect_answer(resp, exp, f"GET manifest {label}")
        expect_equal(resp.headers["docker-content-digest"], sha256_digest(resp.content), exp,
                     f"Docker-Content-Digest of GET {label} vs sha256 of the body")
        expect_equal(resp.content, body, exp, f"bytes served for {label} vs bytes pushed")
        expect_equal(resp.headers.get("content-type"), media_type, exp, f"Content-Type of GET {label}")


@pytest.mark.spec("distribution-spec end-3: HEAD /v2/<name>/manifests/<reference>")
def test_manifest_head_carries_digest_length_and_type(registry, pushed, expect):
    """HEAD answers the same digest, Content-Length and Content-Type as GET, without a body."""
    exp = expect("manifests.digest-header")
    for label, ref, body, media_type in manifests_of(pushed):
        resp = registry.head_manifest(pushed.repo, ref)
        expect_answer(resp, exp, f"HEAD manifest {label}")
        expect_equal(resp.headers["docker-content-digest"], sha256_digest(body), exp,
                     f"Docker-Content-Digest of HEAD {label}")
        expect_equal(resp.headers.get("content-length"), str(len(body)), exp, f"Content-Length of HEAD {label}")
        expect_equal(resp.headers.get("content-type"), media_type, exp, f"Content-Type of HEAD {label}")


@pytest.mark.spec("distribution-spec end-7: PUT /v2/<name>/manifests/<reference>")
def test_manifest_put_answers_digest_of_bytes_sent(registry, repo, fixtures, expect):
    """PUT answers 201 with Location and Docker-Content-Digest equal to the sha256 of the sent bytes."""
    from regconform.images import push_image

    exp = expect("manifests.put-digest-header")
    image = fixtures.alpha
    push_image(registry, repo, image, tags=())
    resp = registry.put_manifest(repo, "put-check", image.manifest, image.media_type)
    expect_answer(resp, exp, "PUT manifest by tag")
    expect_equal(resp.headers["docker-content-digest"], image.digest, exp, "Docker-Content-Digest of PUT")


@pytest.mark.spec("distribution-spec end-3: Accept negotiation")
def test_manifest_get_without_accept(registry, pushed, expect, fmt):
    """GET by tag with no Accept header: the outcome the profile records for this media type."""
    exp = expect(f"manifests.get-without-accept.{fmt}")
    resp = registry.get_manifest(pushed.repo, pushed.images.alpha.tags[0], accept=None)
    expect_answer(resp, exp, f"GET {fmt} manifest by tag without Accept")
    if resp.status_code == 200:
        expect_equal(resp.headers.get("docker-content-digest"), sha256_digest(resp.content), exp,
                     "Docker-Content-Digest without Accept")
