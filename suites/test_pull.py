"""Pulling manifests and blobs (OCI distribution-spec end-2/end-3; Docker Registry API V2 §Pulling An Image).

Digest, length, type and Etag headers, conditional requests, unknown and malformed references,
Range reads, and the Accept negotiation matrix over the four manifest types.
"""


import pytest

from regconform.checks import (
    accept_matrix,
    expect_answer,
    expect_equal,
    expect_true,
    observe,
)
from regconform.registry.digests import sha256_digest

# Every check here only reads `pushed`: one push per worker and format serves them all.
pytestmark = [pytest.mark.workflow("pull"), pytest.mark.readonly]


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
    from regconform.content.images import push_image

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


# -- manifests: Etag and conditional requests -------------------------------------------------------------


@pytest.mark.spec("Docker Registry API V2: Pulling an Image Manifest (Etag); distribution-spec end-3")
def test_manifest_etag_is_the_quoted_digest(registry, pushed, expect):
    """GET and HEAD carry an Etag that is the quoted manifest digest (as the profile requires it)."""
    exp = expect("manifests.etag")
    for label, ref, body, _ in manifests_of(pushed):
        for method in (registry.get_manifest, registry.head_manifest):
            resp = method(pushed.repo, ref)
            expect_answer(resp, exp, f"{resp.request.method} manifest {label}")
            etag = resp.headers.get("etag")
            observe(f"etag {resp.request.method} {label}", etag)
            if etag is None and exp["etag"] == "optional-quoted-digest":
                continue
            expect_equal(etag, f'"{sha256_digest(body)}"', exp, f"Etag of {resp.request.method} manifest {label}")


@pytest.mark.spec("Docker Registry API V2: Pulling an Image Manifest (If-None-Match); RFC 9110 §13.1.2")
def test_manifest_if_none_match_with_its_etag_answers_304(registry, pushed, expect):
    """If-None-Match naming the manifest's Etag: 304 Not Modified with no body, by tag and by digest, GET and HEAD."""
    exp = expect("manifests.if-none-match")
    for label, ref, body, _ in manifests_of(pushed):
        condition = {"If-None-Match": f'"{sha256_digest(body)}"'}
        for method in (registry.get_manifest, registry.head_manifest):
            resp = method(pushed.repo, ref, headers=condition)
            expect_answer(resp, exp, f"{resp.request.method} manifest {label} with If-None-Match its digest")
            if resp.status_code == 304:
                expect_equal(resp.content, b"", exp, f"body of the 304 answer for {label}")


@pytest.mark.spec("Docker Registry API V2: Pulling an Image Manifest (If-None-Match); RFC 9110 §13.1.2")
def test_manifest_if_none_match_with_another_etag_answers_200(registry, pushed, expect):
    """If-None-Match naming some other Etag: the manifest is served in full."""
    exp = expect("manifests.if-none-match-other")
    image = pushed.images.alpha
    resp = registry.get_manifest(pushed.repo, image.digest, headers={"If-None-Match": f'"sha256:{"0" * 64}"'})
    expect_answer(resp, exp, "GET manifest with If-None-Match of another digest")
    expect_equal(resp.content, image.manifest, exp, "bytes served under a non-matching If-None-Match")


# -- manifests and blobs that do not exist ----------------------------------------------------------------

UNKNOWN_DIGEST = "sha256:" + "0" * 64
MALFORMED_DIGESTS = ("sha256:abc", "sha256:" + "z" * 64)


@pytest.mark.spec("distribution-spec end-3: 404 MANIFEST_UNKNOWN")
def test_unknown_manifest_answers_404_manifest_unknown(registry, pushed, expect):
    """GET and HEAD of a tag or digest the repository does not hold: 404 MANIFEST_UNKNOWN."""
    exp = expect("manifests.unknown")
    for ref in ("no-such-tag", UNKNOWN_DIGEST):
        expect_answer(registry.get_manifest(pushed.repo, ref), exp, f"GET unknown manifest {ref}")
        expect_answer(registry.head_manifest(pushed.repo, ref), exp, f"HEAD unknown manifest {ref}")


@pytest.mark.spec("distribution-spec end-3: 404 for a repository not known")
def test_manifest_of_unknown_repository_answers_404(registry, repo, expect):
    """GET of a manifest in a repository that was never pushed: 404 with the error code the profile records."""
    exp = expect("manifests.unknown-repository")
    expect_answer(registry.get_manifest(repo, "latest"), exp, "GET manifest by tag in an unknown repository")
    expect_answer(registry.get_manifest(repo, UNKNOWN_DIGEST), exp, "GET manifest by digest in an unknown repository")


@pytest.mark.spec("distribution-spec end-3: invalid digest")
def test_manifest_with_malformed_digest_answers_as_profile_says(registry, pushed, expect):
    """GET and HEAD of a manifest by a malformed digest answer as the profile records (OCI: 400 or 404)."""
    exp = expect("manifests.invalid-digest")
    for ref in MALFORMED_DIGESTS:
        expect_answer(registry.get_manifest(pushed.repo, ref), exp, f"GET manifest by malformed digest {ref}")
        expect_answer(registry.head_manifest(pushed.repo, ref), exp, f"HEAD manifest by malformed digest {ref}")


@pytest.mark.spec("distribution-spec end-2: 404 BLOB_UNKNOWN")
def test_unknown_blob_answers_404_blob_unknown(registry, pushed, expect):
    """GET and HEAD of a blob the repository does not hold (and of a real blob in an unknown repository): 404 BLOB_UNKNOWN."""
    exp = expect("blobs.unknown")
    expect_answer(registry.get_blob(pushed.repo, UNKNOWN_DIGEST), exp, "GET unknown blob")
    expect_answer(registry.head_blob(pushed.repo, UNKNOWN_DIGEST), exp, "HEAD unknown blob")
    layer = pushed.images.alpha.layers[1].digest
    expect_answer(registry.get_blob(f"{pushed.repo}/never-pushed", layer), exp, "GET blob of another repository in an unknown repository")


@pytest.mark.spec("distribution-spec end-2: invalid digest")
def test_blob_with_malformed_digest_answers_as_profile_says(registry, pushed, expect):
    """GET and HEAD of a blob by a malformed digest answer as the profile records (OCI: 400 or 404)."""
    exp = expect("blobs.invalid-digest")
    for ref in MALFORMED_DIGESTS:
        expect_answer(registry.get_blob(pushed.repo, ref), exp, f"GET blob by malformed digest {ref}")
        expect_answer(registry.head_blob(pushed.repo, ref), exp, f"HEAD blob by malformed digest {ref}")


# -- blobs ---------------------------------------------------------------------------------------------------


@pytest.mark.spec("distribution-spec end-2: GET /v2/<name>/blobs/<digest>")
def test_blob_get_serves_the_bytes_of_its_digest(registry, pushed, expect):
    """GET of every blob of an image: 200, the exact bytes (they hash to the digest), Docker-Content-Digest and Content-Length."""
    exp = expect("blobs.get")
    for blob in pushed.images.alpha.blobs:
        resp = registry.get_blob(pushed.repo, blob.digest)
        expect_answer(resp, exp, f"GET blob {blob.digest}")
        expect_equal(sha256_digest(resp.content), blob.digest, exp, f"sha256 of the bytes served for blob {blob.digest}")
        expect_equal(resp.headers.get("docker-content-digest"), blob.digest, exp, f"Docker-Content-Digest of GET blob {blob.digest}")
        expect_equal(resp.headers.get("content-length"), str(blob.size), exp, f"Content-Length of GET blob {blob.digest}")


@pytest.mark.spec("distribution-spec end-2: HEAD /v2/<name>/blobs/<digest>")
def test_blob_head_carries_length_and_digest(registry, pushed, expect):
    """HEAD of every blob of an image: 200, Content-Length is the size, Docker-Content-Digest the digest, no body."""
    exp = expect("blobs.head")
    for blob in pushed.images.alpha.blobs:
        resp = registry.head_blob(pushed.repo, blob.digest)
        expect_answer(resp, exp, f"HEAD blob {blob.digest}")
        expect_equal(resp.headers.get("content-length"), str(blob.size), exp, f"Content-Length of HEAD blob {blob.digest}")
        expect_equal(resp.headers.get("docker-content-digest"), blob.digest, exp, f"Docker-Content-Digest of HEAD blob {blob.digest}")
        expect_equal(resp.content, b"", exp, f"body of HEAD blob {blob.digest}")


@pytest.mark.spec("Docker Registry API V2: Pulling a Layer (If-None-Match); RFC 9110 §13.1.2")
def test_blob_if_none_match_with_its_etag_answers_304(registry, pushed, expect):
    """GET of a blob with If-None-Match naming its digest answers as the profile says (304 on distribution)."""
    exp = expect("blobs.if-none-match")
    blob = pushed.images.alpha.layers[1]
    resp = registry.get_blob(pushed.repo, blob.digest, headers={"If-None-Match": f'"{blob.digest}"'})
    expect_answer(resp, exp, "GET blob with If-None-Match its digest")
    if resp.status_code == 304:
        expect_equal(resp.content, b"", exp, "body of the 304 answer for a blob")


def blob_ranges(size):
    """(Range header, first byte, last byte) for a middle slice, an open-ended tail and a suffix."""
    return [("bytes=10-19", 10, 19), (f"bytes={size - 5}-", size - 5, size - 1), ("bytes=-7", size - 7, size - 1)]


@pytest.mark.spec("distribution-spec end-2: Range (RFC 9110 §14)")
def test_blob_range_read_answers_206_with_the_requested_bytes(registry, pushed, expect):
    """Range reads of a blob: 206, Content-Range `bytes first-last/size`, and exactly those bytes."""
    exp = expect("blobs.range")
    blob = pushed.images.alpha.layers[1]
    for header, first, last in blob_ranges(blob.size):
        resp = registry.get_blob(pushed.repo, blob.digest, headers={"Range": header})
        expect_answer(resp, exp, f"GET blob with Range: {header}")
        expect_equal(resp.headers.get("content-range"), f"bytes {first}-{last}/{blob.size}", exp, f"Content-Range for Range: {header}")
        expect_equal(resp.content, blob.data[first:last + 1], exp, f"bytes served for Range: {header}")


@pytest.mark.spec("distribution-spec end-2: Range (RFC 9110 §15.5.17 416)")
def test_blob_unsatisfiable_range_answers_416(registry, pushed, expect):
    """A Range beyond the blob's end: 416 with Content-Range `bytes */size`; whether the answer is complete is recorded."""
    exp = expect("blobs.range-unsatisfiable")
    blob = pushed.images.alpha.layers[1]
    header = f"bytes={blob.size + 100}-{blob.size + 200}"
    resp, broken = registry.get_blob_tolerant(pushed.repo, blob.digest, headers={"Range": header})
    observe("content_length_announced", resp.headers.get("content-length"))
    observe("bytes_received", len(resp.content))
    observe("transport_error", broken)
    expect_answer(resp, exp, f"GET blob with Range: {header}")
    expect_equal(resp.headers.get("content-range"), f"bytes */{blob.size}", exp, f"Content-Range of the 416 for Range: {header}")
    if exp["answer"] == "broken":
        expect_true(broken is not None, f"the 416 answer arrived complete ({len(resp.content)} bytes, Content-Length "
                    f"{resp.headers.get('content-length')}), the profile records a broken one", exp)
    else:
        expect_true(broken is None, f"the 416 answer broke off: {broken} (Content-Length {resp.headers.get('content-length')}, "
                    f"{len(resp.content)} bytes received)", exp)


# -- Accept negotiation matrix ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["image", "index"])
@pytest.mark.spec("distribution-spec end-3: Accept / content negotiation")
def test_accept_negotiation_matrix(registry, pushed, expect, fmt, kind):
    """Every Accept set (none, OCI, schema2, list, index, all) by tag and by digest: what is served, as the profile records."""
    exp = expect("manifests.accept-negotiation")
    images = pushed.images
    obj = images.alpha if kind == "image" else images.index
    observed, wrong = accept_matrix(registry, pushed.repo, [("tag", obj.tags[0]), ("digest", obj.digest)],
                                    f"{fmt}-{kind}", obj.manifest, images.alpha.manifest, exp, head=True)
    observe("accept_matrix", observed)
    expect_true(not wrong, f"Accept negotiation for the {fmt} {kind} ({obj.media_type}) deviates: " + "; ".join(wrong), exp)
