"""The pull checks can fail: each deviation mode turns exactly the matching pull checks red.

A FaultProxy with the mode's rules sits between the suites and a real registry; the whole pull
module runs against it (`pytest suites --registry-url <proxy> -k test_pull.py`), and the run's
behaviour.json must show exactly the mode's checks failed, with a reason naming the deviation,
while every other check kept the outcome it has through a clean proxy (passed, or unsupported).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from deviations import (
    Mode,
    assert_clean,
    assert_mode,
    base_name,
    clean_baseline,
)
from faultproxy import Request, Response, Rule
from suiterun import SuiteRun

from regconform.registry.media import ALL_MANIFEST_TYPES

pytestmark = pytest.mark.selftest_slow

PULL = "test_pull.py"
MANIFESTS = r"^/v2/.+/manifests/"
BLOBS = r"^/v2/.+/blobs/sha256:"
WRONG_DIGEST = "sha256:" + "f" * 64


def range_bytes_wrong() -> Mode:
    """206 answers carry other bytes than the range asked for (same length, shifted by one)."""
    mode = Mode("Range answers the wrong bytes", [], ["test_blob_range_read_answers_206_with_the_requested_bytes"],
                [r"bytes served for Range"])

    def shift(resp: Response) -> Response:
        if resp.status != 206 or not resp.body:
            return resp
        mode.changed.append(resp.request.path if resp.request else "")
        return replace(resp, body=bytes((b + 1) % 256 for b in resp.body))

    mode.rules = [Rule(BLOBS, method="GET", transform=shift)]
    return mode


def content_type_wrong() -> Mode:
    return Mode("manifest GET answers Content-Type application/json",
                [Rule(MANIFESTS, method="GET", set_headers={"Content-Type": "application/json"})],
                ["test_manifest_get_digest_header_is_digest_of_bytes_served"], [r"Content-Type of GET", "application/json"])


def etag_wrong() -> Mode:
    return Mode("manifest Etag is not the digest",
                [Rule(MANIFESTS, method=m, set_headers={"Etag": f'"{WRONG_DIGEST}"'}) for m in ("GET", "HEAD")],
                ["test_manifest_etag_is_the_quoted_digest"], [r"Etag of (GET|HEAD)", re.escape(WRONG_DIGEST)])


def if_none_match_ignored() -> Mode:
    """The registry ignores If-None-Match on manifests (always answers in full)."""

    def drop_condition(req: Request) -> Request:
        headers = req.headers.copy()
        headers.pop("If-None-Match", None)
        return replace(req, headers=headers)

    return Mode("If-None-Match ignored on manifests", [Rule(MANIFESTS, rewrite=drop_condition)],
                ["test_manifest_if_none_match_with_its_etag_answers_304"], [r"If-None-Match", r"expected 304", r"got 200"])


def unknown_blob_served() -> Mode:
    """An unknown blob is answered 200 with some bytes."""

    def serve(req: Request) -> Response:
        return Response(200, {"Content-Type": "application/octet-stream", "Docker-Distribution-Api-Version": "registry/2.0"},
                        b"not the blob you asked for", req)

    return Mode("unknown blob answered 200", [Rule(BLOBS + "0{64}$", respond=serve)],
                ["test_unknown_blob_answers_404_blob_unknown"], [r"unknown blob", r"expected 404 BLOB_UNKNOWN", r"got 200"])


def unsatisfiable_range_complete() -> Mode:
    """A registry whose 416 arrives whole, where the profile records 2.8's broken answer."""
    mode = Mode("416 answer complete", [], ["test_blob_unsatisfiable_range_answers_416"],
                [r"arrived complete", r"profile records a broken one"])

    def mend(resp: Response) -> Response:
        if resp.status != 416:
            return resp
        mode.changed.append("416")
        headers = resp.headers.copy()
        headers["Content-Length"] = str(len(resp.body))
        return replace(resp, headers=headers, broken=False)

    mode.rules = [Rule(BLOBS, method="GET", transform=mend)]
    return mode


def accept_ignored() -> Mode:
    """Every manifest request is answered as if it accepted every type: the negotiation matrix changes."""

    def accept_all(req: Request) -> Request:
        headers = req.headers.copy()
        headers["Accept"] = ", ".join(ALL_MANIFEST_TYPES)
        return replace(req, headers=headers)

    return Mode("Accept ignored (every type served)", [Rule(MANIFESTS, rewrite=accept_all)],
                ["test_accept_negotiation_matrix", "test_manifest_get_without_accept"],
                [r"(Accept negotiation for the .* deviates|without Accept)", r"(got 200|expected 400|expected 404)"])


def malformed_digest_400() -> Mode:
    """A registry that answers a malformed manifest digest 400 (OCI) where 2.8's 500 is recorded."""

    def refuse(req: Request) -> Response:
        body = b'{"errors":[{"code":"DIGEST_INVALID","message":"invalid digest"}]}'
        return Response(400, {"Content-Type": "application/json"}, body, req)

    return Mode("malformed manifest digest answered 400", [Rule(MANIFESTS + r"sha256:(abc|z+)$", respond=refuse)],
                ["test_manifest_with_malformed_digest_answers_as_profile_says"],
                [r"malformed digest", r"expected 500 UNKNOWN", r"got 400 DIGEST_INVALID"])


def blob_length_wrong() -> Mode:
    """HEAD of a blob announces one byte more than the blob has."""

    def longer(resp: Response) -> Response:
        if resp.status != 200 or "content-length" not in resp.headers:
            return resp
        headers = resp.headers.copy()
        headers["Content-Length"] = str(int(headers["Content-Length"]) + 1)
        return replace(resp, headers=headers)

    return Mode("blob HEAD Content-Length off by one", [Rule(BLOBS, method="HEAD", transform=longer)],
                ["test_blob_head_carries_length_and_digest"], [r"Content-Length of HEAD blob"])


def blob_bytes_corrupted() -> Mode:
    """Full blob GETs serve one byte changed (same length, same headers)."""
    mode = Mode("blob bytes corrupted", [], ["test_blob_get_serves_the_bytes_of_its_digest"], [r"sha256 of the bytes served"])

    def corrupt(resp: Response) -> Response:
        if resp.status != 200 or not resp.body:
            return resp
        mode.changed.append("blob")
        return replace(resp, body=bytes([(resp.body[0] + 1) % 256]) + resp.body[1:])

    mode.rules = [Rule(BLOBS, method="GET", transform=corrupt)]
    return mode


def not_modified_always() -> Mode:
    """Any If-None-Match on a manifest gets 304, whatever Etag it names."""
    def not_modified(resp: Response) -> Response:
        conditional = resp.request is not None and "if-none-match" in resp.request.headers
        return Response(304, {"Docker-Distribution-Api-Version": "registry/2.0"}, b"", resp.request) if conditional else resp

    return Mode("304 for any If-None-Match", [Rule(MANIFESTS, method="GET", transform=not_modified)],
                ["test_manifest_if_none_match_with_another_etag_answers_200"], [r"another digest", r"got 304"])


def unknown_manifests_served() -> Mode:
    """A tag or digest the repository does not hold is answered 200 with some manifest."""

    def serve(req: Request) -> Response:
        return Response(200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                              "Docker-Content-Digest": WRONG_DIGEST}, b'{"schemaVersion":2}', req)

    return Mode("unknown manifests served", [Rule(MANIFESTS + r"(no-such-tag|sha256:0{64})$", respond=serve),
                                             Rule(r"manifest-of-unknown-repository[^/]*/manifests/latest$", respond=serve)],
                ["test_unknown_manifest_answers_404_manifest_unknown", "test_manifest_of_unknown_repository_answers_404"],
                [r"unknown (manifest|repository)", r"expected 404", r"got 200"])


def malformed_blob_digest_404() -> Mode:
    def unknown(req: Request) -> Response:
        body = b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}'
        return Response(404, {"Content-Type": "application/json"}, body, req)

    return Mode("malformed blob digest answered 404", [Rule(BLOBS + r"(abc|z+)$", respond=unknown)],
                ["test_blob_with_malformed_digest_answers_as_profile_says"],
                [r"blob by malformed digest", r"expected 400 DIGEST_INVALID", r"got 404"])


def blob_if_none_match_ignored() -> Mode:
    def drop_condition(req: Request) -> Request:
        headers = req.headers.copy()
        headers.pop("If-None-Match", None)
        return replace(req, headers=headers)

    return Mode("If-None-Match ignored on blobs", [Rule(BLOBS, rewrite=drop_condition)],
                ["test_blob_if_none_match_with_its_etag_answers_304"], [r"If-None-Match", r"expected 304", r"got 200"])


MODES: dict[str, Callable[[], Mode]] = {
    "blob-bytes-corrupted": blob_bytes_corrupted,
    "not-modified-always": not_modified_always,
    "unknown-manifests-served": unknown_manifests_served,
    "malformed-blob-digest-404": malformed_blob_digest_404,
    "blob-if-none-match-ignored": blob_if_none_match_ignored,
    "range-bytes-wrong": range_bytes_wrong,
    "content-type-wrong": content_type_wrong,
    "etag-wrong": etag_wrong,
    "if-none-match-ignored": if_none_match_ignored,
    "unknown-blob-served": unknown_blob_served,
    "unsatisfiable-range-complete": unsatisfiable_range_complete,
    "accept-ignored": accept_ignored,
    "malformed-digest-400": malformed_digest_400,
    "blob-length-wrong": blob_length_wrong,
}


@pytest.fixture(scope="module")
def pull_baseline(upstream, tmp_path_factory) -> Iterator[SuiteRun]:
    yield clean_baseline(upstream.url, PULL, tmp_path_factory.mktemp("pull-clean"))


def test_clean_proxy_keeps_the_pull_checks_as_recorded(pull_baseline):
    """Through a proxy without rules every pull check passes, or is unsupported as the profile records."""
    assert_clean(pull_baseline)
    assert {base_name(i) for i in pull_baseline.passed_ids()} >= {
        "test_blob_range_read_answers_206_with_the_requested_bytes", "test_accept_negotiation_matrix",
        "test_blob_unsatisfiable_range_answers_416"}, pull_baseline.tail()


@pytest.mark.parametrize("mode_name", list(MODES))
def test_pull_deviation_turns_exactly_its_checks_red(mode_name, pull_baseline, fault_proxy, run_suites):
    """Each pull deviation: exactly its checks fail (every variant), naming the deviation; the rest as when clean."""
    mode = MODES[mode_name]()
    proxy = fault_proxy(mode.rules)
    run = run_suites(proxy.url, "-k", PULL, "--ignore=suites/mirror")
    assert_mode(run, mode, pull_baseline, proxy)
    if mode_name in ("range-bytes-wrong", "unsatisfiable-range-complete", "blob-bytes-corrupted"):
        assert mode.changed, f"{mode.name}: the rules fired but never changed an answer"
