"""Referrers (OCI distribution-spec 1.1 §Listing Referrers, end-12a/12b; §Pushing Manifests with Subject;
§Referrers Tag Schema). A registry without the referrers API is recorded as such (404), never a crash."""

import json

import pytest

from regconform.checks import (
    end_if_unavailable,
    expect_answer,
    expect_equal,
    expect_true,
    observe,
)
from regconform.content.images import (
    fixture_set,
    make_artifact,
    make_referrers_index,
    push_image,
    push_index,
    referrer_descriptor,
)
from regconform.registry import media

pytestmark = pytest.mark.workflow("referrers")

SBOM = "application/vnd.regconform.sbom.v1+json"
SIGNATURE = "application/vnd.regconform.signature.v1"


def subject_and_artifacts():
    subject = fixture_set("oci").alpha
    return subject, (make_artifact("sbom", subject, SBOM), make_artifact("signature", subject, SIGNATURE))


def push_blobs(registry, repo, image):
    for blob in image.blobs:
        expect_equal(registry.push_blob(repo, blob.data, blob.digest).status_code, 201, None,
                     f"push of blob {blob.digest} for {image.name}")


def push_subject_with_referrers(registry, repo):
    subject, artifacts = subject_and_artifacts()
    push_image(registry, repo, subject)
    for artifact in artifacts:
        push_image(registry, repo, artifact, tags=())
    return subject, artifacts


def referrers_index(resp, exp, what):
    """The image index of a referrers answer, after checking it is one (Content-Type and body)."""
    expect_equal(resp.headers.get("content-type"), media.OCI_INDEX, exp, f"Content-Type of {what}")
    try:
        doc = json.loads(resp.content)
    except ValueError:
        doc = None
    expect_true(isinstance(doc, dict) and isinstance(doc.get("manifests"), list),
                f"{what} is not an image index: {resp.text[:200]!r}", exp)
    expect_equal(doc.get("mediaType"), media.OCI_INDEX, exp, f"mediaType of {what}")
    observe("referrers", doc["manifests"])
    return doc["manifests"]


def by_digest(descriptors):
    return {d.get("digest"): d for d in descriptors}


@pytest.mark.spec("distribution-spec §Pushing Manifests with Subject (MUST accept a missing subject)")
def test_manifest_with_subject_is_accepted_before_its_subject_exists(registry, repo, expect):
    """An artifact whose subject is not in the repository (yet) is accepted: 201."""
    exp = expect("referrers.subject-missing")
    _, (artifact, _) = subject_and_artifacts()
    push_blobs(registry, repo, artifact)
    resp = registry.put_manifest(repo, artifact.digest, artifact.manifest, artifact.media_type)
    expect_answer(resp, exp, "PUT of an artifact whose subject does not exist")


@pytest.mark.spec("distribution-spec §Pushing Manifests with Subject: OCI-Subject header")
def test_manifest_put_with_subject_answers_oci_subject(registry, repo, expect):
    """PUT of an artifact with a subject: 201 with `OCI-Subject: <subject digest>` when the registry processes subjects."""
    exp = expect("referrers.oci-subject")
    subject, (artifact, _) = subject_and_artifacts()
    push_image(registry, repo, subject)
    push_blobs(registry, repo, artifact)
    resp = registry.put_manifest(repo, artifact.digest, artifact.manifest, artifact.media_type)
    observe("oci_subject", resp.headers.get("oci-subject"))
    end_if_unavailable(resp, exp, "PUT of an artifact with a subject")
    if not exp.supported:
        expect_true("oci-subject" not in resp.headers, f"PUT answered OCI-Subject: {resp.headers.get('oci-subject')} "
                    "although the profile records no subject processing", exp)
    expect_answer(resp, exp, "PUT of an artifact with a subject")
    expect_equal(resp.headers.get("oci-subject"), subject.digest, exp, "OCI-Subject of the PUT")


@pytest.mark.spec("distribution-spec end-12a: GET /v2/<name>/referrers/<digest>")
def test_referrers_lists_every_manifest_with_the_subject(registry, repo, expect):
    """GET referrers of an image with two artifacts: an image index listing both, with artifactType and annotations."""
    exp = expect("referrers.list")
    subject, artifacts = push_subject_with_referrers(registry, repo)
    resp = registry.referrers(repo, subject.digest)
    end_if_unavailable(resp, exp, "GET referrers of the subject")
    expect_answer(resp, exp, "GET referrers of the subject")
    listed = by_digest(referrers_index(resp, exp, "the referrers answer"))
    expect_equal(sorted(listed), sorted(a.digest for a in artifacts), exp, "digests the referrers list holds")
    for artifact in artifacts:
        want = referrer_descriptor(artifact)
        got = listed[artifact.digest]
        for field in ("mediaType", "size", "artifactType", "annotations"):
            expect_equal(got.get(field), want[field], exp, f"{field} of the referrer {artifact.name}")


@pytest.mark.spec("distribution-spec end-12b: GET /v2/<name>/referrers/<digest>?artifactType=")
def test_referrers_filter_by_artifact_type(registry, repo, expect):
    """?artifactType=<sbom>: only the SBOM, with `OCI-Filters-Applied: artifactType` (or, unfiltered, no such header)."""
    exp = expect("referrers.filter")
    subject, artifacts = push_subject_with_referrers(registry, repo)
    resp = registry.referrers(repo, subject.digest, artifact_type=SBOM)
    end_if_unavailable(resp, exp, "GET referrers filtered by artifactType")
    expect_answer(resp, exp, "GET referrers filtered by artifactType")
    listed = by_digest(referrers_index(resp, exp, "the filtered referrers answer"))
    applied = resp.headers.get("oci-filters-applied")
    if applied is None and exp["filtering"] == "optional":
        expect_equal(sorted(listed), sorted(a.digest for a in artifacts), exp, "unfiltered referrers (no OCI-Filters-Applied)")
        return
    expect_equal(applied, "artifactType", exp, "OCI-Filters-Applied of the filtered answer")
    expect_equal(sorted(listed), [artifacts[0].digest], exp, "referrers left by the artifactType filter")


@pytest.mark.spec("distribution-spec end-12a: no referrers -> empty index")
def test_referrers_of_a_manifest_without_referrers_is_an_empty_index(registry, repo, expect):
    """GET referrers of an image nothing refers to: 200 and an image index with no manifests (never 404)."""
    exp = expect("referrers.empty")
    subject = fixture_set("oci").beta
    push_image(registry, repo, subject)
    resp = registry.referrers(repo, subject.digest)
    end_if_unavailable(resp, exp, "GET referrers of a manifest without referrers")
    expect_answer(resp, exp, "GET referrers of a manifest without referrers")
    expect_equal(referrers_index(resp, exp, "the referrers answer"), [], exp, "manifests of the empty referrers list")


@pytest.mark.spec("distribution-spec end-12a: 400 for an invalid digest")
def test_referrers_with_malformed_digest_answers_400(registry, repo, expect):
    """GET referrers of a malformed digest: 400 Bad Request."""
    push_image(registry, repo, fixture_set("oci").beta)
    exp, resp = expect("referrers.invalid-digest"), registry.referrers(repo, "sha256:abc")
    end_if_unavailable(resp, exp, "GET referrers of a malformed digest")
    expect_answer(resp, exp, "GET referrers of a malformed digest")


@pytest.mark.spec("distribution-spec §Referrers Tag Schema (sha256-<hex> tag holding an image index)")
def test_referrers_tag_schema_fallback_serves_the_index(registry, repo, expect):
    """The client fallback: an image index under tag `sha256-<hex of subject>` is stored and served as pushed."""
    exp = expect("referrers.tag-schema")
    subject, artifacts = push_subject_with_referrers(registry, repo)
    fallback = make_referrers_index(subject, artifacts)
    push_index(registry, repo, fallback)
    tag = fallback.tags[0]
    observe("referrers_tag", tag)
    resp = registry.get_manifest(repo, tag)
    expect_answer(resp, exp, f"GET referrers tag {tag}")
    expect_equal(resp.content, fallback.manifest, exp, f"bytes served under {tag}")
    listed = by_digest(referrers_index(resp, exp, f"the index under {tag}"))
    expect_equal(sorted(listed), sorted(a.digest for a in artifacts), exp, f"referrers listed under {tag}")
