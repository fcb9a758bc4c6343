"""Pushes a registry must refuse (OCI distribution-spec §Push, end-6/end-7 failures, error codes code-4..8;
Docker Registry HTTP API V2 §Errors): wrong or missing digests, manifests that reference missing
content or do not parse, invalid names and tags, oversized manifests. A refused push stores nothing.
"""

from __future__ import annotations

import json

import pytest

from regconform.checks import expect_answer, expect_equal, observe
from regconform.content.images import (
    canonical_json,
    fixture_set,
    pseudo_random_bytes,
    push_image,
)
from regconform.registry.digests import sha256_digest
from regconform.registry.exchange import error_codes_of

pytestmark = pytest.mark.workflow("push")

# Digests the negative checks send: fixed, so a fault proxy can aim at exactly these requests.
WRONG_DIGEST = "sha256:" + "d1" * 32
MALFORMED_DIGEST = "sha256:not-hex"
OVERSIZED = 4 * 1024 * 1024 + 1024   # above the 4 MiB manifests must fit in
NEAR_LIMIT = 4 * 1024 * 1024 - 2000  # OCI: SHOULD accept at least 4 megabytes


def blob_data(seed: str) -> bytes:
    return pseudo_random_bytes(f"negative-{seed}", 1500)


def push_blobs(registry, repo, image):
    for blob in image.blobs:
        resp = registry.push_blob(repo, blob.data, blob.digest)
        expect_equal(resp.status_code, 201, None, f"setup: push of {image.name} blob {blob.digest}")


def expect_not_stored(registry, repo, reference, exp, what):
    expect_equal(registry.head_manifest(repo, reference).status_code, 404, exp, f"HEAD {reference} after {what} (it was stored)")


def padded_manifest(image, size):
    """The image's manifest with an annotation that brings it to exactly `size` bytes."""
    doc = json.loads(image.manifest)
    doc["annotations"] = {"org.regconform.pad": ""}
    filler = size - len(canonical_json(doc))
    doc["annotations"]["org.regconform.pad"] = "x" * filler
    body = canonical_json(doc)
    assert len(body) == size
    return body


# -- blobs ------------------------------------------------------------------------------------------------


@pytest.mark.spec("distribution-spec end-6: PUT with a digest that does not match → 400 DIGEST_INVALID")
def test_blob_put_with_wrong_digest_is_rejected(registry, repo, expect):
    """Closing an upload with a digest the bytes do not hash to: 400 DIGEST_INVALID; neither digest is stored."""
    data = blob_data("wrong-digest")
    exp = expect("push.blob-digest-mismatch")
    resp = registry.push_blob(repo, data, WRONG_DIGEST)
    expect_answer(resp, exp, f"PUT ?digest={WRONG_DIGEST} with other bytes")
    for digest in (WRONG_DIGEST, sha256_digest(data)):
        expect_equal(registry.head_blob(repo, digest).status_code, 404, exp,
                     f"HEAD {digest} after the refused upload (the registry stored it although the digest is wrong)")


@pytest.mark.spec("distribution-spec end-6: PUT without ?digest=")
def test_blob_put_without_digest_is_rejected(registry, repo, expect):
    """Closing an upload with no digest parameter: 400 DIGEST_INVALID."""
    data = blob_data("no-digest")
    started = registry.start_upload(repo)
    expect_equal(started.status_code, 202, None, "setup: POST /blobs/uploads/")
    resp = registry.request("PUT", started.headers["location"], headers={"Content-Type": "application/octet-stream"},
                            content=data)
    expect_answer(resp, expect("push.blob-digest-missing"), "closing PUT without ?digest=")


@pytest.mark.spec("distribution-spec end-6: malformed digest")
def test_blob_put_with_malformed_digest_is_rejected(registry, repo, expect):
    """Closing an upload with a digest that does not parse: 400 DIGEST_INVALID."""
    resp = registry.push_blob(repo, blob_data("malformed"), MALFORMED_DIGEST)
    expect_answer(resp, expect("push.blob-digest-malformed"), f"PUT ?digest={MALFORMED_DIGEST}")


# -- manifests -----------------------------------------------------------------------------------------------


@pytest.mark.spec("distribution-spec end-7: manifest referencing an unknown blob → MANIFEST_BLOB_UNKNOWN (code-5)")
def test_manifest_referencing_a_missing_blob_is_rejected(registry, repo, fixtures, expect):
    """A manifest whose layer was never pushed: 400 MANIFEST_BLOB_UNKNOWN naming it; the tag does not exist afterwards."""
    image = fixtures.alpha
    missing = image.layers[1]
    for blob in image.blobs:
        if blob is not missing:
            expect_equal(registry.push_blob(repo, blob.data).status_code, 201, None, f"setup: push of blob {blob.digest}")
    exp = expect("push.manifest-blob-unknown")
    resp = registry.put_manifest(repo, "missing-blob", image.manifest, image.media_type)
    observe("errors", resp.text[:600])
    expect_answer(resp, exp, f"PUT {image.media_type} whose layer {missing.digest} was never pushed")
    expect_not_stored(registry, repo, "missing-blob", exp, "the refused manifest")


@pytest.mark.spec("distribution-spec end-7: index referencing an unknown manifest → MANIFEST_BLOB_UNKNOWN")
def test_index_referencing_a_missing_manifest_is_rejected(registry, repo, fixtures, expect):
    """An index / manifest list naming an image that was never pushed: refused as the profile says; nothing stored."""
    index = fixtures.index
    push_image(registry, repo, index.images[0], tags=())
    exp = expect("push.index-manifest-unknown")
    resp = registry.put_manifest(repo, "missing-child", index.manifest, index.media_type)
    expect_answer(resp, exp, f"PUT {index.media_type} naming {index.images[1].digest}, never pushed")
    expect_not_stored(registry, repo, "missing-child", exp, "the refused index")


@pytest.mark.parametrize("body", ["not-json", "truncated"])
@pytest.mark.spec("distribution-spec end-7: malformed manifest → MANIFEST_INVALID (code-6)")
def test_malformed_manifest_is_rejected(registry, repo, fixtures, expect, body):
    """A manifest body that is not JSON, or JSON cut short: 400 MANIFEST_INVALID."""
    image = fixtures.alpha
    push_blobs(registry, repo, image)
    sent = b"{this is not json" if body == "not-json" else image.manifest[: len(image.manifest) // 2]
    exp = expect("push.manifest-invalid")
    expect_answer(registry.put_manifest(repo, "malformed", sent, image.media_type), exp, f"PUT of a {body} {image.media_type}")
    expect_not_stored(registry, repo, "malformed", exp, "the refused manifest")


@pytest.mark.spec("distribution-spec end-7: PUT by a digest the bytes do not hash to")
def test_manifest_put_by_mismatched_digest_is_rejected(registry, repo, fixtures, expect):
    """PUT /manifests/<digest> whose body hashes to something else: 400 (code per profile); neither digest resolves."""
    image = fixtures.alpha
    push_blobs(registry, repo, image)
    exp = expect("push.manifest-digest-mismatch")
    resp = registry.put_manifest(repo, WRONG_DIGEST, image.manifest, image.media_type)
    expect_answer(resp, exp, f"PUT /manifests/{WRONG_DIGEST} with a {image.media_type} hashing to {image.digest}")
    for ref in (WRONG_DIGEST, image.digest):
        expect_not_stored(registry, repo, ref, exp, "the refused PUT by a mismatched digest")


# -- names and tags -------------------------------------------------------------------------------------------

INVALID_NAME_PARTS = {"uppercase": "Upper", "double-dot": "a..b", "leading-dash": "-lead", "trailing-separator": "end_"}


def expect_refusal_body(resp, exp, what):
    """`body = "text"` in the profile: the refusal is not an error envelope (e.g. a router's plain 404)."""
    if exp.get("body") == "text":
        expect_equal(error_codes_of(resp.content), [], exp, f"error codes in the body of {what}")


@pytest.mark.parametrize("kind", list(INVALID_NAME_PARTS))
@pytest.mark.spec("distribution-spec §Pulling manifests: <name> grammar; NAME_INVALID (code-8)")
def test_invalid_repository_name_is_rejected(registry, repo, expect, kind):
    """Upload and manifest PUT to a name outside the grammar: NAME_INVALID, or as the profile records."""
    name = f"{repo}/{INVALID_NAME_PARTS[kind]}"
    image = fixture_set("oci").alpha
    exp = expect("push.name-invalid")
    attempts = [("POST /blobs/uploads/", registry.start_upload(name)),
                ("PUT manifest", registry.put_manifest(name, "v1", image.manifest, image.media_type))]
    for what, resp in attempts:
        what = f"{what} for the name {name!r} ({kind})"
        if resp.status_code not in exp.status:
            expect_answer(resp, exp, what)  # the deviation, named
        expect_refusal_body(resp, exp, what)
    for what, resp in attempts:
        # every answer is confirmed above: an expectation the profile marks unsupported ends the check here
        expect_answer(resp, exp, f"{what} for the name {name!r} ({kind})")


@pytest.mark.spec("Docker Registry API V2 §Overview: a name is at most 255 characters; NAME_INVALID")
def test_repository_name_longer_than_255_characters_is_rejected(registry, repo, expect):
    """A name of 256 characters (every component short): refused as the profile records."""
    name = repo
    while len(name) < 256:
        name += "/" + "n" * min(40, 255 - len(name))
    name = name[:256]
    assert len(name) == 256 and not name.endswith("/")
    exp = expect("push.name-too-long")
    resp = registry.start_upload(name)
    observe("name_length", len(name))
    expect_answer(resp, exp, "POST /blobs/uploads/ for a name of 256 characters")


INVALID_TAGS = {"leading-dash": "-tag", "too-long": "t" * 129, "bang": "tag!", "leading-dot": ".tag"}


@pytest.mark.parametrize("kind", list(INVALID_TAGS))
@pytest.mark.spec("distribution-spec §Pulling manifests: tag grammar [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
def test_invalid_tag_is_rejected(registry, repo, expect, kind):
    """A manifest PUT by a tag outside the grammar is refused (TAG_INVALID, or as the profile records); no such tag appears."""
    image = fixture_set("oci").alpha
    push_blobs(registry, repo, image)
    tag = INVALID_TAGS[kind]
    exp = expect("push.tag-invalid")
    resp = registry.put_manifest(repo, tag, image.manifest, image.media_type)
    what = f"PUT manifest by the tag {tag[:20]!r}{'...' if len(tag) > 20 else ''} ({kind})"
    if resp.status_code in exp.status:
        expect_refusal_body(resp, exp, what)
    tags = registry.list_tags(repo)
    listed = (tags.json().get("tags") or []) if tags.status_code == 200 else []
    expect_equal(tag in listed, False, exp, f"tag listed after {what}")
    expect_answer(resp, exp, what)


# -- manifest size ---------------------------------------------------------------------------------------------


@pytest.mark.spec("distribution-spec end-7: manifest size limit (SHOULD 413)")
def test_oversized_manifest_is_refused(registry, repo, fixtures, expect):
    """A manifest over 4 MiB: refused as the profile records (OCI: SHOULD 413); nothing stored."""
    image = fixtures.alpha
    push_blobs(registry, repo, image)
    body = padded_manifest(image, OVERSIZED)
    exp = expect("push.manifest-oversized")
    resp = registry.put_manifest(repo, "oversized", body, image.media_type)
    expect_answer(resp, exp, f"PUT of a {len(body)}-byte {image.media_type}")
    if resp.status_code >= 400:
        expect_not_stored(registry, repo, sha256_digest(body), exp, "the refused oversized manifest")


@pytest.mark.spec("distribution-spec end-7: SHOULD support manifests of at least 4 megabytes")
def test_manifest_just_under_4_mib_is_accepted(registry, repo, fixtures, expect):
    """A manifest of 4 MiB minus 2000 bytes is stored and served back byte for byte."""
    image = fixtures.alpha
    push_blobs(registry, repo, image)
    body = padded_manifest(image, NEAR_LIMIT)
    exp = expect("push.manifest-near-limit")
    resp = registry.put_manifest(repo, "near-limit", body, image.media_type)
    expect_answer(resp, exp, f"PUT of a {len(body)}-byte {image.media_type}")
    got = registry.get_manifest(repo, sha256_digest(body))
    expect_equal(got.status_code, 200, exp, "GET of the large manifest by digest")
    expect_equal(sha256_digest(got.content), sha256_digest(body), exp, "digest of the large manifest served")
