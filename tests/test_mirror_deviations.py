"""The mirror checks catch a broken mirror: the fault proxy placed AS the mirror (in front of a real one).

One embedded pair (upstream + distribution 2.8 mirror) for the module; each deviation mode is a
FaultProxy in front of the mirror, and the mirror suites run against it as an external deployment
(`--mirror-url` = the proxy, upstream stop/start through `docker stop/start`). Every mode turns
exactly the matching checks red, with a message naming the deviation; the clean proxy stays green.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import SELFTEST_RUN_ID, registry_image
from faultproxy import FaultProxy, Request, Response, Rule
from regconform.mirror import EmbeddedMirror
from suiterun import SuiteRun, run_command

pytestmark = pytest.mark.selftest_slow


@pytest.fixture(scope="module")
def pair() -> Iterator[EmbeddedMirror]:
    pair = EmbeddedMirror(registry_image(), SELFTEST_RUN_ID, "open")
    try:
        yield pair
    finally:
        pair.close()


def run_mirror_suites(pair: EmbeddedMirror, mirror_url: str, report_dir: Path, *args: str) -> SuiteRun:
    """The mirror suites against `mirror_url` as an existing deployment of `pair`'s upstream."""
    assert pair.upstream is not None
    cid = pair.upstream.container_id
    argv = [sys.executable, "-m", "pytest", "suites/mirror", "-p", "no:cacheprovider", "-q", "-rfEs",
            f"--mirror-url={mirror_url}", f"--upstream-url={pair.upstream_url}", "--push-fixtures",
            f"--upstream-stop-command=docker stop -t 2 {cid}", f"--upstream-start-command=docker start {cid}",
            f"--report-dir={report_dir}", "--profile=distribution-2.8", *args]
    return run_command(argv, report_dir=report_dir, timeout=400)


def corrupt(response: Response) -> Response:
    """Same length, one byte flipped: what a mirror with a damaged cache would serve."""
    if response.status != 200 or not response.body:
        return response
    body = response.body[:-1] + bytes([response.body[-1] ^ 0xFF])
    return Response(response.status, response.headers, body, response.request)


def is_down(url: str) -> bool:
    parsed = httpx.URL(url)
    try:
        socket.create_connection((parsed.host, parsed.port or 80), timeout=0.5).close()
        return False
    except OSError:
        return True


def lose_cache_while(upstream_url: str):
    """Answer not-found for content the mirror holds, whenever the upstream is unreachable."""

    def transform(response: Response) -> Response:
        if not is_down(upstream_url):
            return response
        code = "BLOB_UNKNOWN" if "/blobs/" in (response.request.path if response.request else "") else "MANIFEST_UNKNOWN"
        body = json.dumps({"errors": [{"code": code, "message": "lost by the fault proxy"}]}).encode()
        return Response(404, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body,
                        response.request)

    return transform


def accept(status: int, headers: dict[str, str]):
    """Answer as a registry that took the write; an upload Location stays in the request's repository."""

    def respond(request: Request) -> Response:
        extra = {"Location": request.path.split("?")[0] + "fault-session"} if request.method == "POST" else {}
        return Response(status, {**headers, **extra, "Content-Length": "0"}, b"", request)

    return respond


def red_and_green(run: SuiteRun, red: list[str], green: list[str], naming: list[str]) -> None:
    for name in red:
        ids = run.ids(name)
        assert ids, f"no check matches {name!r}: {run.ids()}\n{run.tail()}"
        for check in ids:
            assert run.records[check]["outcome"] == "failed", f"{check}: {run.records[check]['outcome']}\n{run.tail()}"
            reason = run.records[check]["reason"] or ""
            for word in naming:
                assert word in reason, f"{check}: {word!r} not in {reason!r}"
    for name in green:
        ids = run.ids(name)
        assert ids, f"no check matches {name!r}: {run.ids()}\n{run.tail()}"
        for check in ids:
            assert run.records[check]["outcome"] == "passed", f"{check}: {run.records[check]}\n{run.tail()}"
    assert run.returncode == 1, run.tail()


def test_clean_proxy_as_mirror_passes_every_check(pair, tmp_path):
    """Transparent proxy in front of the mirror: every mirror check passes, the run exits 0."""
    with FaultProxy(pair.mirror_url) as proxy:
        run = run_mirror_suites(pair, proxy.url, tmp_path)
    assert run.returncode == 0, run.tail()
    assert run.failed_ids() == [], run.tail()
    passed = run.passed_ids()
    for check in ("test_pull_by_tag", "test_pull_by_digest", "test_cached_content_served_while_upstream_down",
                  "test_uncached_content_while_upstream_down", "test_tag_moved_upstream", "test_blob_upload_refused",
                  "test_manifest_put_refused", "test_deletes_refused", "test_catalog_through_mirror"):
        assert any(check in i for i in passed), f"{check} did not pass: {run.outcomes()}"


def test_mirror_serving_wrong_bytes_is_caught(pair, tmp_path):
    """Corrupted blobs (by digest) and manifests (by tag): the pull-through checks fail naming the hashes."""
    rules = [Rule(r"test-pull-by-digest-serves[^/]*/blobs/sha256:", method="GET", transform=corrupt),
             Rule(r"test-pull-by-tag-serves[^/]*/manifests/(?!sha256:)", method="GET", transform=corrupt)]
    with FaultProxy(pair.mirror_url, rules) as proxy:
        run = run_mirror_suites(pair, proxy.url, tmp_path, "-k", "pull_by or tags_list or unknown_tag")
    red_and_green(run, ["test_pull_by_digest", "test_pull_by_tag"], ["test_tags_list", "test_unknown_tag"],
                  ["the mirror served", "hashing to", "mirror.pull-through"])


def test_mirror_accepting_a_push_is_caught(pair, tmp_path):
    """A mirror that accepts a blob upload and a manifest PUT: the write checks fail naming the status."""
    rules = [Rule(r"/blobs/uploads/$", method="POST",
                  respond=accept(202, {"Docker-Upload-UUID": "fault-session"})),
             Rule(r"/manifests/pushed-to-mirror$", method="PUT",
                  respond=accept(201, {"Docker-Content-Digest": "sha256:" + "1" * 64}))]
    with FaultProxy(pair.mirror_url, rules) as proxy:
        run = run_mirror_suites(pair, proxy.url, tmp_path, "-k", "refused")
    red_and_green(run, ["test_blob_upload_refused"], ["test_deletes_refused"],
                  ["expected 405 UNSUPPORTED", "mirror.write.blob-upload", "got 202"])
    red_and_green(run, ["test_manifest_put_refused"], [], ["expected 405 UNSUPPORTED", "mirror.write.manifest-put",
                                                           "got 201"])


def test_mirror_losing_cached_content_is_caught(pair, tmp_path):
    """Cached manifests and blobs answered 404 while the upstream is down: the caching check fails."""
    rules = [Rule(r"test-cached-content-served[^/]*/(manifests|blobs)/sha256:", method="GET",
                  transform=lose_cache_while(pair.upstream_url))]
    with FaultProxy(pair.mirror_url, rules) as proxy:
        run = run_mirror_suites(pair, proxy.url, tmp_path, "-k", "upstream_down")
    red_and_green(run, ["test_cached_content_served_while_upstream_down"],
                  ["test_cached_tags_while_upstream_down", "test_uncached_content_while_upstream_down"],
                  ["upstream down", "mirror.cache.served-upstream-down", "got 404"])
