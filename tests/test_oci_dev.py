"""The checks for distribution-spec main (profile oci-dev) can fail, and the client honours Retry-After.

Deviation modes: a FaultProxy in front of a real 2.8.2 makes it answer differently from what its
profile records, and exactly the matching check turns red (tests/deviations.py). The order and
rate-limit checks also run under profiles that expect another order or a rate limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from deviations import (
    Mode,
    assert_clean,
    assert_mode,
    base_name,
    clean_baseline,
)
from faultproxy import FaultProxy, Request, Response, Rule
from suiterun import SuiteRun

from regconform.content.images import pseudo_random_bytes
from regconform.profiles import load_profile
from regconform.registry.client import RegistryClient
from regconform.registry.session import retry_after_seconds
from regconform.registry.digests import sha256_digest

SELECTION = "test_push_chunks or test_push_tag_parameters or test_tags_order or test_rate_limit"
WRONG_DIGEST = "sha256:" + "c" * 64
# The burst's tags/list requests (the run's own /v2/ probes must not meet the injected 429s).
RATE_LIMITED_TAGS = r"test-rate-limited-answers-carry[^/]*/tags/list"  # repo slugs are cut at 40

# -- the client honours Retry-After -----------------------------------------------------------------------


def too_many(retry_after: str | None) -> Callable[[Request], Response]:
    def answer(req: Request) -> Response:
        headers = {"Content-Type": "application/json", **({"Retry-After": retry_after} if retry_after else {})}
        return Response(429, headers, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', req)
    return answer


def test_retry_after_is_parsed_as_seconds_or_http_date():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0  # a date in the past: retry now
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("9" * 100) is None  # unbounded input is not parsed


@pytest.mark.parametrize(("retry_after", "budget", "statuses"), [
    ("1", 10.0, [429, 200]),        # waited out, then the real answer
    ("3600", 10.0, [429]),          # beyond the budget: the 429 reaches the caller at once
    ("1", 0.0, [429]),              # budget 0 (rate-limit checks): never waits
    (None, 10.0, [429]),            # no Retry-After: nothing to honour
])
def test_client_waits_out_retry_after_within_its_budget(upstream, retry_after, budget, statuses):
    rule = Rule(r"^/v2/$", respond=too_many(retry_after), times=1)
    with FaultProxy(upstream.url, [rule]) as proxy, RegistryClient(proxy.url) as client:
        client.retry_after_budget = budget
        resp = client.ping()
        assert [ex.status for ex in client.exchanges] == statuses
        assert resp.status_code == statuses[-1]


# -- deviation modes under distribution-2.8 ----------------------------------------------------------------


def final_chunk_416() -> Mode:
    """The closing PUT with an out-of-order Content-Range is answered 416 (as OCI main wants; 2.8 is recorded 400)."""
    def refuse(req: Request) -> Response:
        return Response(416, {"Content-Type": "application/json", "Range": "0-999"},
                        b'{"errors":[{"code":"RANGE_INVALID","message":"out of order"}]}', req)

    digest = sha256_digest(pseudo_random_bytes("chunks-final-out-of-order", 2500))  # the check's blob
    return Mode("final chunk answered 416", [Rule(rf"/blobs/uploads/.*digest={digest}", method="PUT", respond=refuse)],
                ["test_final_chunk_out_of_order_on_put"],
                [r"closing PUT with Content-Range 2000-2499", r"expected 400 DIGEST_INVALID", r"got 416"])


def digest_algorithm_refused() -> Mode:
    def refuse(req: Request) -> Response:
        return Response(400, {"Content-Type": "application/json"},
                        b'{"errors":[{"code":"DIGEST_INVALID","message":"unsupported algorithm"}]}', req)

    return Mode("unknown digest-algorithm answered 400", [Rule(r"digest-algorithm=regconform0", method="POST", respond=refuse)],
                ["test_unsupported_digest_algorithm_answers_400"], [r"digest-algorithm=regconform0", r"expected 202", r"got 400"])


def sha512_put_digest_wrong() -> Mode:
    return Mode("sha512 closing PUT answers a digest of other bytes",
                [Rule(r"digest=sha512:", method="PUT", set_headers={"Docker-Content-Digest": WRONG_DIGEST})],
                ["test_chunked_upload_with_digest_algorithm_sha512"], [r"Docker-Content-Digest of the closing PUT", r"no digest of the blob"])


def chunk_min_length_announced() -> Mode:
    return Mode("OCI-Chunk-Min-Length announced", [Rule(r"/blobs/uploads/$", method="POST", set_headers={"OCI-Chunk-Min-Length": "1024"})],
                ["test_chunk_min_length_is_honoured"], [r"OCI-Chunk-Min-Length: '1024'", r"profile records none"])


def small_chunks_refused() -> Mode:
    """512-byte chunks are refused although no minimum was announced."""
    def refuse(req: Request) -> Response:
        return Response(416, {"Content-Type": "application/json"}, b'{"errors":[{"code":"SIZE_INVALID","message":"too small"}]}', req)

    rule = Rule(r"chunk-min-length-is-honoured[^/]*/blobs/uploads/", method="PATCH", respond=refuse)
    return Mode("512-byte chunks refused", [rule], ["test_chunk_min_length_is_honoured"], [r"PATCH of a 512-byte chunk at 0", r"got 416"])


def oci_tag_announced() -> Mode:
    """The PUT with tag parameters answers OCI-Tag although 2.8 creates no tag."""
    return Mode("OCI-Tag announced", [Rule(r"/manifests/sha256:[0-9a-f]{64}\?tag=", method="PUT", set_headers={"OCI-Tag": "multi-00"})],
                ["test_manifest_put_with_tag_parameters"], [r"announced OCI-Tag \['multi-00'\]", r"profile records no support"])


def tag_left_out() -> Mode:
    def drop(resp: Response) -> Response:
        if resp.status != 200:
            return resp
        doc = json.loads(resp.body)
        doc["tags"] = [t for t in doc.get("tags") or [] if t != "Zulu"]
        return replace(resp, body=json.dumps(doc).encode())

    return Mode("tags list leaves a tag out", [Rule(r"tags-list-order-with-mixed-case[^/]*/tags/list", method="GET", transform=drop)],
                ["test_tags_list_order_with_mixed_case"], [r"not the 10 tags pushed"])


def rate_limited() -> Mode:
    return Mode("429 although no rate limit is recorded", [Rule(RATE_LIMITED_TAGS, respond=too_many("1"), times=3)],
                ["test_rate_limited_answers_carry_retry_after"], [r"answered 429", r"profile records no rate limit"])


MODES: dict[str, Callable[[], Mode]] = {
    "final-chunk-416": final_chunk_416,
    "digest-algorithm-refused": digest_algorithm_refused,
    "sha512-put-digest-wrong": sha512_put_digest_wrong,
    "chunk-min-length-announced": chunk_min_length_announced,
    "small-chunks-refused": small_chunks_refused,
    "oci-tag-announced": oci_tag_announced,
    "tag-left-out": tag_left_out,
    "rate-limited": rate_limited,
}


@pytest.fixture(scope="module")
def baseline(upstream, tmp_path_factory) -> Iterator[SuiteRun]:
    yield clean_baseline(upstream.url, SELECTION, tmp_path_factory.mktemp("oci-dev-clean"))


@pytest.mark.selftest_slow
def test_clean_proxy_keeps_the_oci_main_checks_as_recorded(baseline):
    assert_clean(baseline)
    outcomes = {base_name(i): o for i, o in baseline.outcomes().items()}
    assert outcomes == {
        "test_chunked_upload_with_digest_algorithm_sha512": "passed",
        "test_unsupported_digest_algorithm_answers_400": "unsupported",
        "test_final_chunk_out_of_order_on_put": "unsupported",
        "test_chunk_min_length_is_honoured": "passed",
        "test_manifest_put_with_tag_parameters": "unsupported",
        "test_tags_list_order_with_mixed_case": "passed",
        "test_rate_limited_answers_carry_retry_after": "unsupported",
    }, baseline.tail()


@pytest.mark.selftest_slow
@pytest.mark.parametrize("mode_name", list(MODES))
def test_oci_main_deviation_turns_exactly_its_check_red(mode_name, baseline, fault_proxy, run_suites):
    mode = MODES[mode_name]()
    proxy = fault_proxy(mode.rules)
    run = run_suites(proxy.url, "-k", SELECTION, "--ignore=suites/mirror")
    assert_mode(run, mode, baseline, proxy)


# -- the same checks under profiles that expect another order, or a rate limit ------------------------------


def profile_dir(tmp_path: Path, parent: str, body: str) -> Path:
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "profile.toml").write_text(f'name = "selftest"\nextends = "{parent}"\n')
    (folder / "override.toml").write_text(body)
    load_profile(str(folder))  # fails here, not in the child run, if malformed
    return folder


@pytest.mark.selftest_slow
@pytest.mark.parametrize(("order", "served", "outcome"), [
    ("asciibetical", "asciibetical", "passed"),
    ("asciibetical", "casefold", "failed"),
    ("lexical", "casefold", "passed"),
    ("lexical", "asciibetical", "failed"),
    ("lexical-or-asciibetical", "casefold", "passed"),
    ("lexical-or-asciibetical", "reversed", "failed"),
])
def test_tag_order_check_tells_the_orders_apart(order, served, outcome, tmp_path, fault_proxy, run_suites):
    """tags.order: the proxy serves the list sorted one way; the check passes only for the order the profile names."""
    sorters = {"asciibetical": sorted, "casefold": lambda t: sorted(t, key=lambda s: (s.casefold(), s)),
               "reversed": lambda t: sorted(t, reverse=True)}

    def resort(resp: Response) -> Response:
        doc = json.loads(resp.body)
        doc["tags"] = sorters[served](doc["tags"])
        return replace(resp, body=json.dumps(doc).encode())

    folder = profile_dir(tmp_path, "distribution-2.8", f'[checks."tags.order"]\nstatus = 200\norder = "{order}"\n')
    proxy = fault_proxy([Rule(r"/tags/list", method="GET", transform=resort)])
    run = run_suites(proxy.url, "-k", "test_tags_order", profile=str(folder))
    assert run.outcome("test_tags_list_order_with_mixed_case") == outcome, run.tail()
    if outcome == "failed":
        assert f"is not {order}" in run.reason("test_tags_list_order_with_mixed_case")


@pytest.mark.selftest_slow
@pytest.mark.parametrize(("retry_after", "outcome"), [("1", "passed"), (None, "failed"), ("soon", "failed")])
def test_retry_after_check_under_oci_dev(retry_after, outcome, fault_proxy, run_suites):
    """oci-dev: a 429 with a usable Retry-After passes, without one (or an unusable one) it is red."""
    proxy = fault_proxy([Rule(RATE_LIMITED_TAGS, respond=too_many(retry_after), times=2)])
    run = run_suites(proxy.url, "-k", "test_rate_limit", profile="oci-dev")
    assert run.outcome("test_rate_limited_answers_carry_retry_after") == outcome, run.tail()
    if outcome == "failed":
        assert "retry-after" in run.reason("test_rate_limited_answers_carry_retry_after").lower()
