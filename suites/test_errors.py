"""Error answers (OCI distribution-spec §Error Codes, code-1..14; Docker Registry HTTP API V2 §Errors).

A representative error-producing request from every workflow (pull, push, discovery, management):
its 4xx answer carries `Content-Type: application/json` and the envelope
`{"errors": [{"code", "message", "detail"}]}` with a code from the spec's list, and the status and
code the profile records for that case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from regconform.checks import expect_answer, expect_true, note_expectation, observe
from regconform.content.images import (
    canonical_json,
    fixture_set,
    pseudo_random_bytes,
    push_image,
)
from regconform.registry.digests import sha256_digest

pytestmark = pytest.mark.workflow("errors")

UNKNOWN_DIGEST = "sha256:" + "e0" * 32
WRONG_DIGEST = "sha256:" + "e1" * 32
ENVELOPE_KEYS = {"code", "message", "detail"}


def seeded(registry, repo):
    """The repository holds the OCI alpha image (tag v1), so errors are about the request, not a missing repository."""
    image = fixture_set("oci").alpha
    registry.record = False  # setup, not the exchange under test
    try:
        push_image(registry, repo, image, tags=("v1",))
    finally:
        registry.record = True
    return image


def data(seed):
    return pseudo_random_bytes(f"errors-{seed}", 800)


def cancelled_session(registry, repo):
    location = registry.start_upload(repo).headers["location"]
    registry.cancel_upload(location)
    return registry.upload_status(location)


def oversized_manifest(registry, repo):
    image = seeded(registry, repo)
    doc = json.loads(image.manifest)
    doc["annotations"] = {"org.regconform.pad": "x" * (4 * 1024 * 1024 + 100)}
    return registry.put_manifest(repo, "oversized", canonical_json(doc), image.media_type)


def put_without_digest(registry, repo):
    location = registry.start_upload(repo).headers["location"]
    return registry.request("PUT", location, headers={"Content-Type": "application/octet-stream"}, content=data("no-digest"))


def manifest_by_wrong_digest(registry, repo):
    image = seeded(registry, repo)
    return registry.put_manifest(repo, WRONG_DIGEST, image.manifest, image.media_type)


# case → (workflow it comes from, request producing the error); the expectation is `errors.<case>`.
CASES: dict[str, tuple[str, Callable]] = {
    "manifest-unknown": ("pull", lambda r, repo: (seeded(r, repo), r.get_manifest(repo, "no-such-tag"))[1]),
    "blob-unknown": ("pull", lambda r, repo: (seeded(r, repo), r.get_blob(repo, UNKNOWN_DIGEST))[1]),
    "blob-digest-malformed": ("pull", lambda r, repo: (seeded(r, repo), r.get_blob(repo, "sha256:abc"))[1]),
    "tags-unknown-repository": ("content-discovery", lambda r, repo: r.list_tags(f"{repo}/never-pushed")),
    "blob-digest-mismatch": ("push", lambda r, repo: r.push_blob(repo, data("mismatch"), WRONG_DIGEST)),
    "blob-digest-missing": ("push", put_without_digest),
    "manifest-blob-unknown": ("push", lambda r, repo: r.put_manifest(repo, "v1", fixture_set("docker").alpha.manifest,
                                                                    fixture_set("docker").alpha.media_type)),
    "manifest-invalid": ("push", lambda r, repo: r.put_manifest(repo, "v1", b"{not json", fixture_set("oci").alpha.media_type)),
    "manifest-digest-mismatch": ("push", manifest_by_wrong_digest),
    "manifest-oversized": ("push", oversized_manifest),
    "upload-unknown": ("push", cancelled_session),
    "upload-id-invalid": ("push", lambda r, repo: r.upload_status(f"/v2/{repo}/blobs/uploads/not-an-upload-id")),
    "manifest-delete-unknown": ("content-management", lambda r, repo: (seeded(r, repo), r.delete_manifest(repo, UNKNOWN_DIGEST))[1]),
    "blob-delete-unknown": ("content-management", lambda r, repo: (seeded(r, repo), r.delete_blob(repo, UNKNOWN_DIGEST))[1]),
    "name-invalid": ("push", lambda r, repo: r.start_upload(f"{repo}/Not-Valid")),
}


def envelope_problems(resp, env) -> list[str]:
    """What is wrong with an error answer's form: Content-Type, JSON, the envelope, each code."""
    problems = []
    ctype = resp.headers.get("content-type")
    media_type = (ctype or "").split(";", 1)[0].strip().lower()
    if media_type != env["content_type"]:
        problems.append(f"Content-Type {ctype!r} instead of {env['content_type']}")
    try:
        doc = json.loads(resp.content)
    except ValueError:
        return [*problems, f"the body is not JSON: {resp.text[:120]!r}"]
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list) or not errors:
        return [*problems, f"no non-empty \"errors\" list in the body: {resp.text[:120]!r}"]
    for i, entry in enumerate(errors):
        if not isinstance(entry, dict):
            problems.append(f"errors[{i}] is not an object: {entry!r}")
            continue
        code = entry.get("code")
        if not isinstance(code, str) or not re.fullmatch(r"[A-Z_]+", code):
            problems.append(f"errors[{i}].code {code!r} is not an identifier of uppercase letters and underscores")
        elif code not in env["codes"]:
            problems.append(f"errors[{i}].code {code} is not in the spec's list")
        if "message" in entry and not isinstance(entry["message"], str):
            problems.append(f"errors[{i}].message is not a string: {entry['message']!r}")
        if extra := sorted(set(entry) - ENVELOPE_KEYS):
            problems.append(f"errors[{i}] has fields outside code/message/detail: {extra}")
    return problems


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.spec("distribution-spec §Error Codes; Docker Registry API V2 §Errors")
def test_error_answer_carries_the_error_envelope(registry, repo, expect, case):
    """An error-producing request answers the profile's 4xx and code, as application/json with the errors envelope."""
    workflow, send = CASES[case]
    exp = expect(f"errors.{case}")
    env = expect("errors.envelope")
    resp = send(registry, repo)
    what = f"{resp.request.method} {case} ({workflow})"
    observe("content_type", resp.headers.get("content-type"))
    observe("body", resp.text[:300])
    if exp.get("envelope", True) and resp.status_code in exp.status:
        problems = envelope_problems(resp, env)
        note_expectation(env)
        expect_true(not problems, f"{what}: the {resp.status_code} error answer breaks the envelope: " + "; ".join(problems), env)
    expect_answer(resp, exp, what)


@pytest.mark.spec("distribution-spec end-10 405; §Error Codes code-13 UNSUPPORTED")
def test_deletion_disabled_error_carries_the_error_envelope(deletion_disabled_registry, repo, expect):
    """DELETE of a blob with deletion disabled: the profile's 405 UNSUPPORTED, as application/json with the errors envelope."""
    client = deletion_disabled_registry.client
    blob = data("deletion-disabled")
    client.push_blob(repo, blob)
    resp = client.delete_blob(repo, sha256_digest(blob))
    env = expect("errors.envelope")
    exp = expect("errors.deletion-disabled")
    if resp.status_code in exp.status:
        problems = envelope_problems(resp, env)
        note_expectation(env)
        expect_true(not problems, "DELETE blob with deletion disabled: the error answer breaks the envelope: " + "; ".join(problems), env)
    expect_answer(resp, exp, "DELETE blob with deletion disabled")
