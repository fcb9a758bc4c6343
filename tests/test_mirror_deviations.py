"""The mirror checks catch a broken mirror: the fault proxy placed AS the mirror (in front of a real one).

One embedded pair (upstream + distribution 2.8 mirror) for the module. The mirror suites run
against a FaultProxy in front of the mirror as an existing deployment (`--mirror-url` = the proxy,
upstream stop/start through `docker stop/start`): once clean (every check green), once with three
deviation modes at the same time, each rule confined to the repositories of the checks it must
turn red (wrong bytes, an accepted push, cached content lost while the upstream is down). Exactly
those checks fail, each with a message naming its deviation; every other check stays green.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faultproxy import FaultProxy, Request, Response, Rule
from suiterun import SuiteRun, run_command

from regconform.targets.engine import docker_client
from regconform.targets.imagebuild import resolve_registry_image
from regconform.targets.mirrors import EmbeddedMirror

pytestmark = pytest.mark.selftest_slow


@pytest.fixture(scope="module")
def pair() -> Iterator[EmbeddedMirror]:
    # Not via tests/conftest.py: suites/mirror has a conftest module of the same name.
    image = resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    pair = EmbeddedMirror(image, f"selftest-mirror-{uuid.uuid4().hex[:8]}", "open")
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


# Each deviation mode: its rules, the checks it must turn red, and words their messages must carry.
WRONG_BYTES = [Rule(r"test-pull-by-digest-serves[^/]*/blobs/sha256:", method="GET", transform=corrupt),
               Rule(r"test-pull-by-tag-serves[^/]*/manifests/(?!sha256:)", method="GET", transform=corrupt),
               Rule(r"test-skopeo-copies[^/]*/blobs/sha256:", method="GET", transform=corrupt),
               Rule(r"test-head-through-mirror[^/]*/manifests/", method="HEAD",
                    set_headers={"Docker-Content-Digest": "sha256:" + "2" * 64})]
ACCEPTS_PUSH = [Rule(r"/blobs/uploads/$", method="POST", respond=accept(202, {"Docker-Upload-UUID": "fault-session"})),
                Rule(r"/manifests/pushed-to-mirror$", method="PUT",
                     respond=accept(201, {"Docker-Content-Digest": "sha256:" + "1" * 64}))]
# A mirror whose answers drift from the upstream's in what it lists, and in its errors.
WRONG_LISTS = [Rule(r"test-tags-list-through[^/]*/tags/list", method="GET", body=b'{"name":"x","tags":["v1"]}'),
               Rule(r"^/v2/_catalog", method="GET", body=b'{"repositories":[]}', drop_headers=("Link",))]
WRONG_ERRORS = [Rule(r"test-unknown-tag-and[^/]*/manifests/no-such-tag", method="GET", status=502),
                Rule(r"test-uncached-content-while[^/]*/manifests/sha256:", method="GET", status=503)]
REFUSES_NO_DELETE = [Rule(r"test-deletes-refused[^/]*/manifests/sha256:", method="DELETE", respond=accept(202, {}))]


class StaleTag:
    """Keeps serving a tag's first answer: a mirror that never re-validates tags with the upstream."""

    def __init__(self) -> None:
        self.first: dict[str, Response] = {}  # by request path: each repository's tag on its own

    def __call__(self, response: Response) -> Response:
        if response.status != 200 or response.request is None:
            return response
        first = self.first.setdefault(response.request.path, response)
        return Response(200, first.headers, first.body, response.request)


RED = {
    "test_tags_list_through_mirror": ["tags listed by the mirror vs by the upstream", "mirror.tags-list", "['v1']"],
    "test_catalog_through_mirror": ["repositories the mirror's catalog lists", "mirror.catalog",
                                    "'pulled': False"],
    "test_unknown_tag_and_blob_through_mirror": ["GET manifest by unknown tag through the mirror",
                                                 "expected 404 MANIFEST_UNKNOWN", "mirror.unknown-tag", "got 502"],
    "test_uncached_content_while_upstream_down": ["GET uncached manifest by digest, upstream down",
                                                  "expected 500 UNKNOWN", "mirror.upstream-down.uncached-manifest",
                                                  "got 503"],
    "test_cached_tags_while_upstream_down": ["(pulled before), upstream down", "expected 200",
                                             "mirror.cache.tag-upstream-down", "got 404"],
    "test_tag_moved_upstream": ["after the upstream moved it to beta", "mirror.tag-move"],
    "test_deletes_refused": ["DELETE manifest on the mirror", "expected 405 UNSUPPORTED",
                             "mirror.write.manifest-delete", "got 202"],
    "test_pull_by_digest_serves": ["the mirror served", "hashing to", "mirror.pull-through"],
    "test_pull_by_tag_serves": ["the mirror served", "hashing to", "mirror.pull-through"],
    "test_head_through_mirror_answers": ["HEAD manifest", "docker-content-digest", "mirror vs upstream",
                                         "mirror.pull-through", "sha256:" + "2" * 64],
    "test_skopeo_copies_index_through_mirror": ["skopeo copy --all", "exited 1", "mirror.pull-through"],
    "test_blob_upload_refused": ["POST blob upload on the mirror", "expected 405 UNSUPPORTED",
                                 "mirror.write.blob-upload", "got 202"],
    "test_manifest_put_refused": ["PUT manifest on the mirror", "expected 405 UNSUPPORTED",
                                  "mirror.write.manifest-put", "got 201"],
    "test_cached_content_served_while_upstream_down": ["upstream down", "expected 200",
                                                       "mirror.cache.served-upstream-down", "got 404"],
}
# Checks an external deployment cannot run (embedded pair, upstream credentials): skipped, never passed.
SKIPPED = ("test_cache_expiry_of_pulled_content", "test_mirror_pulls_from_auth_upstream",
           "test_proxy_config_credentials_with_basic_auth_upstream",
           # names are not mapped on this deployment, it has one upstream and no hostile realm, and the
           # mirror holds no upstream credentials: tests/test_mirror_routed*.py make these fail
           "test_unmapped_names_not_served", "test_oci_namespace_header", "test_routes_reach_their_own_upstreams",
           "test_credentials_not_sent_to_foreign_realm", "test_error_answers_do_not_echo_upstream_credentials")


@pytest.fixture(scope="module")
def faulty_run(pair: EmbeddedMirror, tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    lose_cache = [Rule(r"test-cached-content-served[^/]*/(manifests|blobs)/sha256:", method="GET",
                       transform=lose_cache_while(pair.upstream_url)),
                  Rule(r"test-cached-tags-while[^/]*/manifests/v1$", method="GET",
                       transform=lose_cache_while(pair.upstream_url))]
    stale = Rule(r"test-tag-moved-upstream[^/]*/manifests/v1$", method="GET", transform=StaleTag())
    rules = [*WRONG_BYTES, *ACCEPTS_PUSH, *lose_cache, *WRONG_LISTS, *WRONG_ERRORS, *REFUSES_NO_DELETE, stale]
    with FaultProxy(pair.mirror_url, rules) as proxy:
        return run_mirror_suites(pair, proxy.url, tmp_path_factory.mktemp("faulty"))


def expect_red(run: SuiteRun, check: str, words: list[str] | None = None) -> None:
    """Every node of `check` failed, its message carrying `words` (default: the faulty run's RED entry)."""
    words = RED[check] if words is None else words
    ids = run.ids(check)
    assert ids, f"no check matches {check!r}: {run.ids()}\n{run.tail()}"
    for node in ids:
        record = run.records[node]
        assert record["outcome"] == "failed", f"{node}: {record['outcome']} ({record['reason']})\n{run.tail()}"
        for word in words:
            assert word in (record["reason"] or ""), f"{node}: {word!r} not in {record['reason']!r}"


def test_clean_proxy_as_mirror_passes_every_check(pair, tmp_path):
    """Transparent proxy in front of the mirror: every check passes (or is skipped as external), exit 0."""
    with FaultProxy(pair.mirror_url) as proxy:
        run = run_mirror_suites(pair, proxy.url, tmp_path)
    assert run.returncode == 0, run.tail()
    assert run.failed_ids() == [], run.tail()
    for node, outcome in run.outcomes().items():
        expected = "skipped" if any(name in node for name in SKIPPED) else "passed"
        assert outcome == expected, f"{node}: {outcome}\n{run.tail()}"
    for check in RED:
        assert run.ids(check), (check, run.ids())


def test_mirror_serving_wrong_bytes_is_caught(faulty_run):
    """Corrupted blobs (by digest) and manifests (by tag): the pull-through checks fail naming the hashes;
    a real client (skopeo) refuses the corrupted blobs; a wrong digest on HEAD fails the HEAD check."""
    expect_red(faulty_run, "test_pull_by_digest_serves")
    expect_red(faulty_run, "test_pull_by_tag_serves")
    expect_red(faulty_run, "test_skopeo_copies_index_through_mirror")
    expect_red(faulty_run, "test_head_through_mirror_answers")  # a wrong digest on HEAD


def test_mirror_accepting_a_push_is_caught(faulty_run):
    """A mirror that accepts a blob upload and a manifest PUT: the write checks fail naming the status."""
    expect_red(faulty_run, "test_blob_upload_refused")
    expect_red(faulty_run, "test_manifest_put_refused")


def test_mirror_losing_cached_content_is_caught(faulty_run):
    """Cached manifests and blobs answered 404 while the upstream is down: the caching check fails."""
    expect_red(faulty_run, "test_cached_content_served_while_upstream_down")


def test_mirror_drifting_lists_and_errors_is_caught(faulty_run):
    """Tag list and catalog unlike the profile says, other errors than recorded: those checks fail."""
    for check in ("test_tags_list_through_mirror", "test_catalog_through_mirror",
                  "test_unknown_tag_and_blob_through_mirror", "test_uncached_content_while_upstream_down"):
        expect_red(faulty_run, check)


def test_mirror_with_stale_or_lost_tags_is_caught(faulty_run):
    """A tag never re-validated after it moved upstream, or lost while the upstream is down; deletes accepted."""
    for check in ("test_tag_moved_upstream", "test_cached_tags_while_upstream_down", "test_deletes_refused"):
        expect_red(faulty_run, check)


def test_every_other_check_stays_green(faulty_run):
    """Each deviation turns only its own checks red: the rest pass (external skips aside), exit 1."""
    assert faulty_run.returncode == 1, faulty_run.tail()
    red = {node for check in RED for node in faulty_run.ids(check)}
    assert set(faulty_run.failed_ids()) == red, faulty_run.tail()
    for node, outcome in faulty_run.outcomes().items():
        if node in red:
            continue
        expected = "skipped" if any(name in node for name in SKIPPED) else "passed"
        assert outcome == expected, f"{node}: {outcome} ({faulty_run.records[node]['reason']})"


# -- an upstream that requires credentials --------------------------------------------------------


@pytest.fixture(scope="module")
def auth_pair() -> Iterator[EmbeddedMirror]:
    image = resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    pair = EmbeddedMirror(image, f"selftest-mirror-{uuid.uuid4().hex[:8]}", "auth", credentials_via="remoteurl")
    try:
        yield pair
    finally:
        pair.close()


def run_auth_check(pair: EmbeddedMirror, rules: list[Rule], report_dir: Path) -> SuiteRun:
    assert pair.upstream_credentials is not None
    with FaultProxy(pair.mirror_url, rules) as proxy:
        argv = [sys.executable, "-m", "pytest", "suites/mirror", "-p", "no:cacheprovider", "-q", "-rfEs",
                f"--mirror-url={proxy.url}", f"--upstream-url={pair.upstream_url}", "--push-fixtures",
                f"--upstream-username={pair.upstream_credentials.username}", f"--report-dir={report_dir}",
                "--profile=distribution-2.8", "-k", "auth_upstream or pull_by_tag"]
        return run_command(argv, report_dir=report_dir, timeout=300,
                           extra_env={"REGCONFORM_UPSTREAM_PASSWORD": pair.upstream_credentials.password})


def not_found(request: Request) -> Response:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
    return Response(404, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body, request)


def test_mirror_without_upstream_credentials_is_caught(auth_pair, tmp_path):
    """Pulls through the mirror of an auth-protected upstream answered 404 (how a mirror lacking the
    credentials answers): the upstream-auth check fails; plain pull-through checks stay green."""
    rules = [Rule(r"test-mirror-pulls-from-auth[^/]*/manifests/", method="GET", respond=not_found)]
    run = run_auth_check(auth_pair, rules, tmp_path)
    expect_red(run, "test_mirror_pulls_from_auth_upstream",
               ["(upstream requires auth) through the mirror", "expected 200", "mirror.upstream-auth",
                "got 404 MANIFEST_UNKNOWN"])
    assert set(run.outcomes("test_pull_by_tag").values()) == {"passed"}, run.tail()


def test_mirror_requiring_client_credentials_is_caught(auth_pair, tmp_path):
    """The mirror asks its clients for credentials (401 on /v2/): the no-client-credentials check fails."""
    challenge = {"WWW-Authenticate": 'Basic realm="mirror"', "Content-Type": "application/json"}
    rules = [Rule(r"^/v2/$", method="GET", respond=lambda req: Response(401, {**challenge, "Content-Length": "2"},
                                                                         b"{}", req))]
    run = run_auth_check(auth_pair, rules, tmp_path)
    expect_red(run, "test_mirror_pulls_from_auth_upstream",
               ["GET /v2/ on the mirror without credentials", "expected 200", "mirror.client-needs-no-credentials",
                "got 401"])


# -- checks no proxy can reach: the profile says otherwise, the check fails -----------------------------


def embedded_run(report_dir: Path, profile: str, keyword: str) -> SuiteRun:
    argv = [sys.executable, "-m", "pytest", "suites/mirror", "-p", "no:cacheprovider", "-q", "-rfEs",
            f"--report-dir={report_dir}", f"--profile={profile}", "-k", keyword]
    return run_command(argv, report_dir=report_dir, timeout=300)


def test_cache_expiry_other_than_recorded_is_caught(tmp_path):
    """The TTL is read from the mirror's own schedule file: a profile recording 24 h fails the check on 2.8."""
    profile = tmp_path / "ttl-24"
    profile.mkdir()
    (profile / "profile.toml").write_text('name = "ttl-24"\nextends = "distribution-2.8"\n')
    (profile / "mirror.toml").write_text('[checks."mirror.cache.ttl"]\nttl_hours = 24\n')
    run = embedded_run(tmp_path / "run", str(profile), "expiry and open and docker")
    expect_red(run, "test_cache_expiry_of_pulled_content",
               ["expires in 168", "not the 24 h recorded", "ttl-24: mirror.cache.ttl"])


def test_proxy_credentials_answer_other_than_recorded_is_caught(tmp_path):
    """distribution-3 expects proxy.username/password to reach a basic-auth upstream: 2.8's 404 is a deviation."""
    run = embedded_run(tmp_path, "distribution-3", "proxy_config_credentials")
    expect_red(run, "test_proxy_config_credentials",
               ["through a mirror holding proxy.username/password", "expected 200",
                "distribution-3: mirror.upstream-auth.proxy-config", "got 404 MANIFEST_UNKNOWN"])
