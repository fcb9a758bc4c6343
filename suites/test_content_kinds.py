"""The content matrix: every kind of `regconform.content.kinds` through push, pull (tag, digest,
HEAD, the Accept matrix, every blob), content discovery, referrers (API and tag schema) and
content management (OCI distribution-spec §Pull, §Push, §Content Discovery, §Content Management).

Each check is parametrized by kind and pushes the kind into a repository of its own. Where the
profile records that the registry refuses a kind (`kinds.<name>`, `supported = false` with the
recorded answer), every check of that kind confirms the refusal and reports `unsupported`; a
registry that accepts what its profile records as refused is a deviation, as is the reverse.
"""

import json

import pytest

from regconform.checks import (
    accept_matrix,
    describe_answer,
    end_if_unavailable,
    expect_answer,
    expect_equal,
    expect_true,
    observe,
)
from regconform.content.images import referrers_tag
from regconform.content.kinds import (
    KIND_NAMES,
    KINDS,
    REFERRER_TYPE,
    Content,
    push_kind,
    referrer_of,
)
from regconform.registry import media
from regconform.registry.digests import names_bytes

kinds = pytest.mark.parametrize("kind", KIND_NAMES)


def push_as_recorded(registry, repo, kind, expect):
    """Push the kind; on a refusal (or an acceptance the profile records as a refusal) end the check
    through `expect_answer`: a deviation, or `unsupported` when the profile records exactly that answer."""
    exp = expect(f"kinds.{kind.name}")
    observe("kind", {"name": kind.name, "description": kind.description, "workflows": list(kind.workflows)})
    answers = push_kind(registry, repo, kind)
    observe("push", [f"{a.what}: {describe_answer(a.response)}" for a in answers])
    last = answers[-1]
    end_if_unavailable(last.response, exp, f"{last.what} (kind {kind.name})")
    if last.response.status_code != 201 or not exp.supported:
        expect_answer(last.response, exp, f"{last.what} (kind {kind.name})")
    return exp, answers


def served_digest_ok(header, manifest: Content, by_digest: bool):
    """By digest the header is that digest; by tag, a digest of the bytes in the algorithm the registry chose
    (OCI §Pulling manifests: it MAY differ from the one the client used)."""
    return header == manifest.digest if by_digest else names_bytes(header, manifest.data)


@kinds
@pytest.mark.workflow("push")
@pytest.mark.spec("distribution-spec §Push: end-4a/end-6 blobs, end-7a manifests by digest and by tag")
def test_kind_push(registry, repo, expect, kind):
    """The kind is pushed (blobs, manifests children first, its own by digest and by tag): every answer 201 with
    Docker-Content-Digest of what was sent."""
    kind = KINDS[kind]
    exp, answers = push_as_recorded(registry, repo, kind, expect)
    for answer in answers:
        expect_answer(answer.response, exp, answer.what)
        header = answer.response.headers.get("docker-content-digest")
        by_tag = answer.what.endswith(f" as {kind.tag}")
        ok = served_digest_ok(header, kind.top, False) if by_tag else header == answer.digest
        expect_true(ok, f"{answer.what}: Docker-Content-Digest {header!r}, expected {answer.digest}", exp)


@kinds
@pytest.mark.workflow("pull")
@pytest.mark.spec("distribution-spec end-2/end-3: GET and HEAD of manifests and blobs; Accept negotiation")
def test_kind_pull(registry, repo, expect, kind):
    """The kind's manifest by tag and digest (GET byte for byte, HEAD with Content-Length), the Accept matrix,
    every pushed blob (verified against its digest, sha512 too); what it never pushed is 404."""
    kind = KINDS[kind]
    push_as_recorded(registry, repo, kind, expect)
    top = kind.top
    exp = expect("manifests.digest-header")
    for label, ref in (("tag", kind.tag), ("digest", top.digest)):
        got = registry.get_manifest(repo, ref)
        expect_answer(got, exp, f"GET {kind.name} manifest by {label}")
        expect_equal(got.content, top.data, exp, f"bytes served for the {kind.name} manifest by {label}")
        expect_equal(got.headers.get("content-type"), top.media_type, exp, f"Content-Type of GET {kind.name} by {label}")
        header = got.headers.get("docker-content-digest")
        expect_true(served_digest_ok(header, top, label == "digest"),
                    f"Docker-Content-Digest of GET {kind.name} by {label} is {header!r}, not a digest of the bytes served", exp)
        head = registry.head_manifest(repo, ref)
        expect_answer(head, exp, f"HEAD {kind.name} manifest by {label}")
        expect_equal(head.headers.get("content-length"), str(top.size), exp, f"Content-Length of HEAD {kind.name} by {label}")
        expect_equal(head.headers.get("docker-content-digest"), header, exp, f"Docker-Content-Digest of HEAD vs GET {kind.name} by {label}")
    matrix = expect("manifests.accept-negotiation")
    shape = "oci-index" if top.media_type == media.OCI_INDEX else "oci-image"
    observed, wrong = accept_matrix(registry, repo, [("tag", kind.tag), ("digest", top.digest)], shape, top.data,
                                    None, matrix)
    observe("accept_matrix", observed)
    expect_true(not wrong, f"Accept negotiation for the {kind.name} manifest deviates: " + "; ".join(wrong), matrix)
    exp_get, exp_head = expect("blobs.get"), expect("blobs.head")
    for blob in kind.blobs:
        got = registry.get_blob(repo, blob.digest)
        expect_answer(got, exp_get, f"GET {blob.role} blob {blob.digest}")
        expect_equal(got.content, blob.data, exp_get, f"bytes served for the {blob.role} blob {blob.digest}")
        expect_equal(got.headers.get("docker-content-digest"), blob.digest, exp_get, f"Docker-Content-Digest of GET blob {blob.digest}")
        head = registry.head_blob(repo, blob.digest)
        expect_answer(head, exp_head, f"HEAD {blob.role} blob {blob.digest}")
        expect_equal(head.headers.get("content-length"), str(blob.size), exp_head, f"Content-Length of HEAD blob {blob.digest}")
    for absent in kind.absent:  # the registry must not make up what was never pushed
        if absent.media_type in media.ALL_MANIFEST_TYPES:
            expect_answer(registry.head_manifest(repo, absent.digest), expect("manifests.unknown"),
                          f"HEAD of the never-pushed {absent.role}")
        else:
            expect_answer(registry.get_blob(repo, absent.digest), expect("blobs.unknown"), f"GET of the never-pushed {absent.role}")


@kinds
@pytest.mark.workflow("content-discovery")
@pytest.mark.spec("distribution-spec end-8a: GET /v2/<name>/tags/list")
def test_kind_listed(registry, repo, expect, kind):
    """The tags list of the kind's repository names exactly its one tag (children are pushed by digest only)."""
    kind = KINDS[kind]
    push_as_recorded(registry, repo, kind, expect)
    exp = expect("tags.list")
    resp = registry.list_tags(repo)
    expect_answer(resp, exp, f"GET tags/list of the {kind.name} repository")
    try:
        tags = json.loads(resp.content).get("tags")
    except (ValueError, AttributeError):
        tags = None
    observe("tags", tags)
    expect_equal(tags, [kind.tag], exp, f"tags listed for the {kind.name} repository")


def push_referrer(registry, repo, kind):
    blobs, artifact = referrer_of(kind)
    answers = push_kind(registry, repo, kind, blobs=blobs, manifests=(artifact,), tag=f"referrer-{kind.name}")
    last = answers[-1]
    expect_equal(last.response.status_code, 201, None, f"setup: {last.what} answered {describe_answer(last.response)}")
    return artifact


def referrers_listed(resp, exp, what):
    """The descriptors (by digest) of a referrers answer, after checking it is an image index."""
    expect_answer(resp, exp, f"GET referrers of {what}")
    expect_equal(resp.headers.get("content-type"), media.OCI_INDEX, exp, f"Content-Type of the referrers of {what}")
    try:
        listed = {d.get("digest"): d for d in json.loads(resp.content)["manifests"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        listed = None
    expect_true(listed is not None, f"the referrers answer for {what} is no image index: {resp.text[:200]!r}", exp)
    return listed


@kinds
@pytest.mark.workflow("referrers")
@pytest.mark.spec("distribution-spec end-12a: GET /v2/<name>/referrers/<digest>")
def test_kind_referrers(registry, repo, expect, kind):
    """An artifact whose subject is the kind's manifest is listed by the referrers API (artifactType, annotations)."""
    kind = KINDS[kind]
    push_as_recorded(registry, repo, kind, expect)
    artifact = push_referrer(registry, repo, kind)
    exp = expect("referrers.list")
    resp = registry.referrers(repo, kind.top.digest)
    end_if_unavailable(resp, exp, f"GET referrers of the {kind.name} manifest")
    listed = referrers_listed(resp, exp, f"the {kind.name} manifest")
    observe("referrers", sorted(map(str, listed)))
    expect_true(artifact.digest in listed,
                f"the referrers of the {kind.name} manifest do not list its referrer {artifact.digest}", exp)
    got = listed[artifact.digest]
    expect_equal(got.get("artifactType"), REFERRER_TYPE, exp, f"artifactType of the referrer of {kind.name}")
    expect_equal(got.get("annotations"), json.loads(artifact.data)["annotations"], exp,
                 f"annotations of the referrer of {kind.name}")
    subject = json.loads(kind.top.data).get("subject")
    if subject:  # the kind refers to a manifest itself (an index with a subject): it is listed there too
        listed = referrers_listed(registry.referrers(repo, subject["digest"]), exp, f"{kind.name}'s subject")
        expect_true(kind.top.digest in listed, f"the referrers of {kind.name}'s subject do not list {kind.top.digest}", exp)


@kinds
@pytest.mark.workflow("referrers")
@pytest.mark.spec("distribution-spec §Referrers Tag Schema: <alg ≤ 32>-<encoded ≤ 64>, invalid characters → '-'")
def test_kind_referrers_tag_schema(registry, repo, expect, kind):
    """The client fallback for the kind: an image index under the referrers tag of its digest is stored and served."""
    kind = KINDS[kind]
    push_as_recorded(registry, repo, kind, expect)
    artifact = push_referrer(registry, repo, kind)
    doc = json.loads(artifact.data)
    index = Content(json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [
        {**artifact.descriptor(), "artifactType": doc["artifactType"], "annotations": doc["annotations"]}]},
        sort_keys=True, separators=(",", ":")).encode(), media.OCI_INDEX, role="referrers index")
    tag = referrers_tag(kind.top.digest)
    observe("referrers_tag", tag)
    expect_stored_under_referrers_tag(registry, repo, tag, index, expect("referrers.tag-schema"))


@kinds
@pytest.mark.workflow("content-management")
@pytest.mark.spec("distribution-spec end-9/end-10: DELETE of manifests and blobs")
def test_kind_delete(registry, repo, expect, kind):
    """DELETE of the kind's manifest by digest (then by digest and tag it is gone) and of one of its blobs."""
    kind = KINDS[kind]
    push_as_recorded(registry, repo, kind, expect)
    top = kind.top
    exp = expect("manifests.delete-by-digest")
    expect_answer(registry.delete_manifest(repo, top.digest), exp, f"DELETE of the {kind.name} manifest by digest")
    gone = expect("manifests.deleted-manifest-gone")
    expect_answer(registry.get_manifest(repo, top.digest), gone, f"GET of the deleted {kind.name} manifest by digest")
    expect_answer(registry.get_manifest(repo, kind.tag), gone, f"GET of the tag of the deleted {kind.name} manifest")
    blob = kind.blobs[-1]
    expect_answer(registry.delete_blob(repo, blob.digest), expect("blobs.delete"), f"DELETE of the {blob.role} blob {blob.digest}")
    expect_answer(registry.head_blob(repo, blob.digest), expect("blobs.deleted-gone"), f"HEAD of the deleted {blob.role} blob")


@pytest.mark.workflow("referrers")
@pytest.mark.spec("distribution-spec §Referrers Tag Schema: a sha512 subject → sha512-<first 64 of 128 hex>")
def test_referrers_tag_schema_truncates_a_sha512_subject(registry, repo, expect):
    """A referrer of a sha512-addressed subject (which need not exist): its fallback index goes under the truncated
    tag `sha512-<64 hex>` (71 characters, a valid tag), stored and served as pushed."""
    subject = KINDS["sha512-image"].top
    tag = referrers_tag(subject.digest)
    observe("referrers_tag", tag)
    expect_equal(len(tag), len("sha512-") + 64, None, f"length of the referrers tag {tag}")
    index = Content(json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": []},
                               separators=(",", ":")).encode(), media.OCI_INDEX, role="empty referrers index")
    expect_stored_under_referrers_tag(registry, repo, tag, index, expect("referrers.tag-schema"))


def expect_stored_under_referrers_tag(registry, repo, tag, index, exp):
    """The referrers tag schema's fallback: the index PUT under `tag` is stored (201) and served as pushed."""
    put = registry.put_manifest(repo, tag, index.data, index.media_type)
    expect_equal(put.status_code, 201, exp, f"PUT of the referrers index under {tag}")
    got = registry.get_manifest(repo, tag)
    expect_answer(got, exp, f"GET referrers tag {tag}")
    expect_equal(got.content, index.data, exp, f"bytes served under {tag}")
