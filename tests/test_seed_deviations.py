"""Every seed check can fail: one deviation mode per behaviour turns exactly the matching checks red.

Each mode puts a FaultProxy with rules between the suites and a real registry, runs the seed
checks against the proxy in a subprocess (`pytest suites --registry-url <proxy>`), and asserts
from behaviour.json that exactly the expected checks failed, with a reason naming the deviation,
and that every other seed check still passed. The clean proxy keeps all of them green.

Garbage collection runs on a registry of its own (`gc_upstream`, fixed port so `docker restart`
keeps the URL) and only the GC checks run there (-k): GC must never run on a registry other
checks are using.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from faultproxy import Request, Response, Rule

from regconform.content.images import FORMATS, fixture_set
from regconform.registry.digests import sha256_digest
from regconform.registry.media import ALL_MANIFEST_TYPES

pytestmark = pytest.mark.selftest_slow

# The seed checks other than GC: behaviours 1 (tags), 2 (digest header), 3 (delete), 4 (delete by tag).
SEED_CHECKS = [
    "test_tags_list_names_every_pushed_tag",
    "test_tags_list_follows_deletions",
    "test_manifest_get_digest_header_is_digest_of_bytes_served",
    "test_manifest_head_carries_digest_length_and_type",
    "test_manifest_put_answers_digest_of_bytes_sent",
    "test_manifest_get_without_accept",
    "test_delete_manifest_by_digest_answers_202_and_removes_it_with_its_tags",
    "test_delete_manifest_twice_answers_404",
    "test_delete_manifest_by_tag_is_rejected_and_deletes_nothing",
]
GC_CHECKS = [
    "test_gc_removes_blobs_only_the_deleted_image_used",
    "test_gc_delete_untagged_removes_untagged_manifests_and_their_blobs",
    "test_gc_delete_untagged_and_the_images_a_tagged_index_references",
]
MANIFEST_BY_DIGEST = r"^/v2/.+/manifests/sha256:[0-9a-f]{64}$"
MANIFEST_BY_TAG = r"^/v2/.+/manifests/(?!sha256:)[^/?]+$"
WRONG_DIGEST = "sha256:" + "0" * 64


def k_expression(names: list[str]) -> str:
    return " or ".join(names)


def node_ids(names: list[str]) -> list[str]:
    """Node ids of checks run once per fixture format (every seed check is parametrized by `fmt`)."""
    return sorted(f"{name}[{fmt}]" for name in names for fmt in FORMATS)


def short(node_id: str) -> str:
    return node_id.rsplit("::", 1)[-1]


@dataclass
class Mode:
    """A deviation: rules for the proxy, the checks it must turn red, what their reasons must say."""

    name: str
    rules: list[Rule]
    red: list[str]
    reason: list[str]  # regexes, all of which each red check's reason must match (case-insensitive)
    did_something: Callable[[], bool] | None = None  # beyond rule hits (a transform may leave answers alone)
    notes: dict[str, object] = field(default_factory=dict)


# -- behaviour 1: tag listing -------------------------------------------------------------------------


def tags_missing() -> Mode:
    """tags/list leaves out the index's tag."""
    hidden = {t for fmt in FORMATS for t in fixture_set(fmt).index.tags}
    dropped: list[str] = []

    def hide(resp: Response) -> Response:
        if resp.status != 200:
            return resp
        doc = json.loads(resp.body)
        kept = [t for t in doc.get("tags") or [] if t not in hidden]
        if kept == (doc.get("tags") or []):
            return resp
        dropped.append(doc["name"])
        return replace(resp, body=json.dumps({**doc, "tags": kept}).encode())

    return Mode("tags/list missing a tag", [Rule(r"/tags/list", method="GET", transform=hide)],
                red=["test_tags_list_names_every_pushed_tag"],
                reason=[r"tags listed after push", "|".join(map(re.escape, sorted(hidden)))],
                did_something=lambda: bool(dropped))


def tags_stale_after_delete() -> Mode:
    """tags/list keeps listing tags of deleted manifests (every tag ever pushed to the repository)."""
    pushed: dict[str, list[str]] = {}
    stale: list[str] = []

    def note_tag(req: Request) -> Request:
        name, _, tag = req.path.removeprefix("/v2/").partition("/manifests/")
        if tag not in pushed.setdefault(name, []):
            pushed[name].append(tag)
        return req

    def keep_old(resp: Response) -> Response:
        if resp.status != 200:
            return resp
        doc = json.loads(resp.body)
        tags = doc.get("tags") or []
        missing = [t for t in pushed.get(doc["name"], []) if t not in tags]
        if not missing:
            return resp
        stale.extend(missing)
        return replace(resp, body=json.dumps({**doc, "tags": tags + missing}).encode())

    rules = [Rule(MANIFEST_BY_TAG, method="PUT", rewrite=note_tag), Rule(r"/tags/list", method="GET", transform=keep_old)]
    return Mode("tags/list keeps tags of deleted manifests", rules,
                red=["test_tags_list_follows_deletions"], reason=[r"tags listed after deleting beta and the index"],
                did_something=lambda: bool(stale))


def tags_empty_list_not_null() -> Mode:
    """With no tag left, tags/list answers `"tags": []` where 2.8.2 answers `"tags": null`."""

    def empty_list(resp: Response) -> Response:
        if resp.status != 200:
            return resp
        doc = json.loads(resp.body)
        return replace(resp, body=json.dumps({**doc, "tags": []}).encode()) if doc.get("tags") is None else resp

    return Mode('tags/list answers [] instead of null', [Rule(r"/tags/list", method="GET", transform=empty_list)],
                red=["test_tags_list_follows_deletions"], reason=[r"tags field with no tag left", r"expected 'null'",
                                                                  re.escape("got []")])


# -- behaviour 2: digest header --------------------------------------------------------------------------


def digest_dropped(method: str) -> Mode:
    red = {"GET": "test_manifest_get_digest_header_is_digest_of_bytes_served",
           "HEAD": "test_manifest_head_carries_digest_length_and_type",
           "PUT": "test_manifest_put_answers_digest_of_bytes_sent"}[method]
    return Mode(f"no Docker-Content-Digest on manifest {method}",
                [Rule(r"/manifests/", method=method, drop_headers=("Docker-Content-Digest",))],
                red=[red], reason=[r"no docker-content-digest header", method])


def digest_wrong() -> Mode:
    rules = [Rule(r"/manifests/", method=m, set_headers={"Docker-Content-Digest": WRONG_DIGEST}) for m in ("GET", "HEAD")]
    return Mode("wrong Docker-Content-Digest on manifest GET and HEAD", rules,
                red=["test_manifest_get_digest_header_is_digest_of_bytes_served",
                     "test_manifest_head_carries_digest_length_and_type"],
                reason=[r"Docker-Content-Digest of (GET|HEAD)", re.escape(WRONG_DIGEST)])


def head_headers_wrong(header: str, value: str) -> Mode:
    return Mode(f"wrong {header} on manifest HEAD", [Rule(r"/manifests/", method="HEAD", set_headers={header: value})],
                red=["test_manifest_head_carries_digest_length_and_type"],
                reason=[rf"{header} of HEAD", re.escape(repr(value))])


def get_body_altered() -> Mode:
    """GET serves other bytes (a trailing newline) under the digest of the stored manifest."""

    def add_newline(resp: Response) -> Response:
        return replace(resp, body=resp.body + b"\n") if resp.status == 200 else resp

    return Mode("manifest bytes changed on GET", [Rule(r"/manifests/", method="GET", transform=add_newline)],
                red=["test_manifest_get_digest_header_is_digest_of_bytes_served"],
                reason=[r"Docker-Content-Digest of GET .* vs sha256 of the body"])


def accept_ignored() -> Mode:
    """A GET without Accept is served as if it accepted every manifest type (2.8.2 refuses it)."""

    def add_accept(req: Request) -> Request:
        if req.headers.get("accept", "*/*") != "*/*":  # httpx sends */* when a client names no type
            return req
        headers = req.headers.copy()
        headers["Accept"] = ", ".join(ALL_MANIFEST_TYPES)
        return replace(req, headers=headers)

    return Mode("GET without Accept served anyway", [Rule(MANIFEST_BY_TAG, method="GET", rewrite=add_accept)],
                red=["test_manifest_get_without_accept"], reason=[r"without Accept", r"got 200"])


# -- behaviour 3: delete semantics ---------------------------------------------------------------------


def delete_answers_200() -> Mode:
    return Mode("DELETE by digest answers 200", [Rule(MANIFEST_BY_DIGEST, method="DELETE", status=200)],
                red=["test_delete_manifest_by_digest_answers_202_and_removes_it_with_its_tags",
                     "test_delete_manifest_twice_answers_404"],
                reason=[r"DELETE", r"expected 202", r"got 200"])


def delete_with_body() -> Mode:
    def add_body(resp: Response) -> Response:
        return replace(resp, body=b'{"deleted": true}') if resp.status == 202 else resp

    return Mode("DELETE by digest answers 202 with a body",
                [Rule(MANIFEST_BY_DIGEST, method="DELETE", transform=add_body)],
                red=["test_delete_manifest_by_digest_answers_202_and_removes_it_with_its_tags"],
                reason=[r"body of the DELETE answer", re.escape("deleted")])


def second_delete_202() -> Mode:
    flipped: list[int] = []

    def accept_again(resp: Response) -> Response:
        if resp.status != 404:
            return resp
        flipped.append(resp.status)
        return Response(202, {"Docker-Distribution-Api-Version": "registry/2.0"}, b"", resp.request)

    return Mode("second DELETE answers 202", [Rule(MANIFEST_BY_DIGEST, method="DELETE", transform=accept_again)],
                red=["test_delete_manifest_twice_answers_404"], reason=[r"second DELETE", r"got 202"],
                did_something=lambda: bool(flipped))


# -- behaviour 4: delete by tag ---------------------------------------------------------------------------


def delete_by_tag_accepted(upstream: str) -> Mode:
    """DELETE by tag is turned into DELETE by the tag's digest, so it really deletes (202)."""

    def by_digest(req: Request) -> Request:
        head = httpx.head(upstream + req.path, headers={"Host": req.headers["host"], "Accept": ", ".join(ALL_MANIFEST_TYPES)})
        digest = head.headers.get("docker-content-digest")
        if head.status_code != 200 or not digest:
            return req
        return replace(req, path=req.path.rsplit("/", 1)[0] + "/" + digest)

    return Mode("DELETE by tag accepted", [Rule(MANIFEST_BY_TAG, method="DELETE", rewrite=by_digest)],
                red=["test_delete_manifest_by_tag_is_rejected_and_deletes_nothing"],
                reason=[r"DELETE manifest by tag", r"expected 400 DIGEST_INVALID", r"got 202"])


DISABLED_CHECKS = [
    "test_every_delete_is_refused_when_deletion_is_disabled",
    "test_delete_by_tag_does_not_succeed_when_deletion_is_disabled",
]


def disabled_delete_by_digest_accepted() -> Mode:
    """Deletion disabled, yet DELETE by digest answers 202 (nothing is deleted: the proxy answers itself)."""
    return Mode("DELETE by digest answers 202 with deletion disabled",
                [Rule(MANIFEST_BY_DIGEST, method="DELETE", respond=lambda req: Response(202, {}, b""))],
                red=["test_every_delete_is_refused_when_deletion_is_disabled"],
                reason=[r"DELETE manifest by digest with deletion disabled", r"expected 405 UNSUPPORTED", r"got 202"])


def disabled_delete_by_tag_accepted() -> Mode:
    """Deletion disabled, yet DELETE by tag answers 202 (distribution 3.0.0-3.1.0, CVE-2026-41888)."""
    return Mode("DELETE by tag answers 202 with deletion disabled",
                [Rule(MANIFEST_BY_TAG, method="DELETE", respond=lambda req: Response(202, {}, b""))],
                red=DISABLED_CHECKS, reason=[r"DELETE (manifest )?by tag", r"deletion disabled", r"202"])


# -- behaviour 5: blobs after garbage collection ----------------------------------------------------------


def deleted_blobs_served() -> Mode:
    """After GC and restart, blobs the registry removed are still answered 200 with their bytes.

    Only for blobs a pushed manifest referenced (a push first asks HEAD whether the blob exists:
    answering 200 then would skip the upload, which is a different fault).
    """
    known: dict[str, bytes] = {}  # blob digest -> the bytes uploaded (each GC check pushes a variant of its own)
    committed: set[tuple[str, str]] = set()  # (repository, blob digest) a pushed manifest references
    served: list[str] = []

    def note_blob(req: Request) -> Request:
        digest = parse_qs(urlsplit(req.path).query).get("digest", [""])[0]
        if digest == sha256_digest(req.body):
            known[digest] = req.body
        return req

    def note_references(req: Request) -> Request:
        repo = req.path.split("/manifests/", 1)[0]
        committed.update((repo, m.decode()) for m in re.findall(rb"sha256:[0-9a-f]{64}", req.body))
        return req

    def keep_serving(resp: Response) -> Response:
        assert resp.request is not None
        repo, _, digest = resp.request.path.partition("/blobs/")
        if resp.status != 404 or (repo, digest) not in committed or digest not in known:
            return resp
        served.append(digest)
        data = known[digest]
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                   "Docker-Content-Digest": digest, "Docker-Distribution-Api-Version": "registry/2.0"}
        return Response(200, headers, data, resp.request)

    rules = [Rule(r"/manifests/", method="PUT", rewrite=note_references),
             Rule(r"/blobs/uploads/.*[?&]digest=", method="PUT", rewrite=note_blob),
             Rule(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$", transform=keep_serving)]
    return Mode("deleted blobs still served after GC", rules, red=GC_CHECKS,
                reason=[r"(HEAD|GET) (config )?blob", r"expected 404 BLOB_UNKNOWN", r"got 200"],
                did_something=lambda: bool(served))


def index_images_kept() -> Mode:
    """After GC --delete-untagged the untagged images of a tagged index are still served (v3 behaviour, not 2.8's).

    Only in repositories an index was pushed to: elsewhere an untagged image must still go.
    """
    manifests: dict[str, tuple[str, bytes]] = {}  # digest -> (media type, bytes) of every manifest pushed
    children: dict[str, set[str]] = {}  # repository -> digests the indexes pushed there list
    served: list[str] = []

    def note_index(req: Request) -> Request:
        repo = req.path.split("/manifests/", 1)[0]
        manifests[sha256_digest(req.body)] = (req.headers.get("content-type", ""), req.body)
        listed = json.loads(req.body).get("manifests") if req.body.startswith(b"{") else None
        if isinstance(listed, list):
            children.setdefault(repo, set()).update(str(m.get("digest")) for m in listed)
        return req

    def keep_children(resp: Response) -> Response:
        assert resp.request is not None
        repo, _, digest = resp.request.path.partition("/manifests/")
        if resp.status != 404 or digest not in children.get(repo, ()) or digest not in manifests:
            return resp
        served.append(digest)
        media_type, body = manifests[digest]
        headers = {"Content-Type": media_type, "Content-Length": str(len(body)),
                   "Docker-Content-Digest": digest, "Docker-Distribution-Api-Version": "registry/2.0"}
        return Response(200, headers, body, resp.request)

    rules = [Rule(r"/manifests/", method="PUT", rewrite=note_index),
             Rule(MANIFEST_BY_DIGEST, method="GET", transform=keep_children),
             Rule(MANIFEST_BY_DIGEST, method="HEAD", transform=keep_children)]
    return Mode("untagged images of a tagged index kept by GC --delete-untagged", rules,
                red=["test_gc_delete_untagged_and_the_images_a_tagged_index_references"],
                reason=[r"GET image \w+ \(untagged, referenced by the tagged index\)", r"expected 404 MANIFEST_UNKNOWN",
                        r"got 200"],
                did_something=lambda: bool(served))


# -- the self-tests ------------------------------------------------------------------------------------


def assert_mode(run, mode: Mode, checks: list[str], proxy) -> None:
    want_red = node_ids(mode.red)
    got = {short(i): o for i, o in run.outcomes().items()}
    assert sorted(got) == node_ids(checks), f"{mode.name}: the run did not record every seed check\n{run.tail()}"
    red = sorted(short(i) for i in run.failed_ids())
    assert red == want_red, f"{mode.name}: expected exactly {want_red} red, got {red}\n{run.tail()}"
    for check in checks:
        for node in node_ids([check]):
            if node not in want_red:
                assert got[node] == "passed", f"{mode.name}: {node} should pass, was {got[node]}\n{run.tail()}"
    for node in want_red:
        reason = run.reason(node)
        for pattern in mode.reason:
            assert re.search(pattern, reason, re.IGNORECASE), f"{mode.name}: reason of {node} lacks /{pattern}/: {reason}"
        assert "Traceback" not in reason and "KeyError" not in reason, f"{mode.name}: {node} crashed: {reason}"
    assert proxy.hits, f"{mode.name}: no rule fired"
    if mode.did_something is not None:
        assert mode.did_something(), f"{mode.name}: the rules fired but never changed an answer"
    assert run.returncode == 1, f"{mode.name}: a run with red checks must exit 1, got {run.returncode}"


def test_clean_proxy_keeps_the_seed_checks_green(fault_proxy, run_suites):
    """Through a proxy without rules, every seed check passes (the proxy itself is transparent)."""
    proxy = fault_proxy()
    run = run_suites(proxy.url, "-k", k_expression(SEED_CHECKS), "--ignore=suites/mirror")
    assert run.returncode == 0, run.tail()
    assert sorted(short(i) for i in run.passed_ids()) == node_ids(SEED_CHECKS), run.tail()
    assert proxy.hits == []


MODES: dict[str, Callable[[str], Mode]] = {
    "tags-missing": lambda up: tags_missing(),
    "tags-stale-after-delete": lambda up: tags_stale_after_delete(),
    "tags-empty-list-not-null": lambda up: tags_empty_list_not_null(),
    "digest-dropped-get": lambda up: digest_dropped("GET"),
    "digest-dropped-head": lambda up: digest_dropped("HEAD"),
    "digest-dropped-put": lambda up: digest_dropped("PUT"),
    "digest-wrong": lambda up: digest_wrong(),
    "head-content-length-wrong": lambda up: head_headers_wrong("Content-Length", "7"),
    "head-content-type-wrong": lambda up: head_headers_wrong("Content-Type", "application/octet-stream"),
    "get-body-altered": lambda up: get_body_altered(),
    "accept-ignored": lambda up: accept_ignored(),
    "delete-200": lambda up: delete_answers_200(),
    "delete-body": lambda up: delete_with_body(),
    "second-delete-202": lambda up: second_delete_202(),
    "delete-by-tag-accepted": delete_by_tag_accepted,
}


@pytest.mark.parametrize("mode_name", list(MODES))
def test_deviation_turns_exactly_the_matching_check_red(mode_name, upstream, fault_proxy, run_suites):
    """Each deviation mode: exactly its checks fail (both formats), naming the deviation; the rest stay green."""
    mode = MODES[mode_name](upstream.url)
    proxy = fault_proxy(mode.rules)
    run = run_suites(proxy.url, "-k", k_expression(SEED_CHECKS), "--ignore=suites/mirror")
    assert_mode(run, mode, SEED_CHECKS, proxy)


def test_gc_checks_pass_through_a_clean_proxy(gc_upstream, fault_proxy, run_suites):
    """GC on an external target (--gc-command/--restart-command) through a clean proxy: green."""
    proxy = fault_proxy(upstream_url=gc_upstream.url)
    run = run_suites(proxy.url, "-k", k_expression(GC_CHECKS), "--ignore=suites/mirror", *gc_upstream.options)
    assert run.returncode == 0, run.tail()
    assert sorted(short(i) for i in run.passed_ids()) == node_ids(GC_CHECKS), run.tail()
    facts = [run.record(f"{GC_CHECKS[0]}[{fmt}]")["observations"] for fmt in FORMATS]
    # 2.8.2's stale descriptor cache, recorded (not failed) between GC and restart
    assert all(obs.get("stale_cache") is True for obs in facts), facts


@pytest.mark.parametrize("mode_factory", [deleted_blobs_served, index_images_kept], ids=["blobs-served", "index-images-kept"])
def test_gc_deviation_turns_its_checks_red(mode_factory, gc_upstream, fault_proxy, run_suites):
    """A registry that keeps serving collected blobs (or keeps an index's untagged images) after GC fails its checks."""
    mode = mode_factory()
    proxy = fault_proxy(mode.rules, upstream_url=gc_upstream.url)
    run = run_suites(proxy.url, "-k", k_expression(GC_CHECKS), "--ignore=suites/mirror", *gc_upstream.options)
    assert_mode(run, mode, GC_CHECKS, proxy)


@pytest.mark.parametrize("mode_factory", [disabled_delete_by_digest_accepted, disabled_delete_by_tag_accepted],
                         ids=["delete-by-digest-accepted", "delete-by-tag-accepted"])
def test_deletion_disabled_deviation_turns_its_checks_red(mode_factory, upstream, disabled_upstream, fault_proxy,
                                                          run_suites):
    """With deletion disabled (--deletion-disabled-url behind the proxy), a DELETE that answers 202 fails its checks."""
    clean = fault_proxy()
    for mode in (None, mode_factory()):
        proxy = fault_proxy(mode.rules if mode else [], upstream_url=disabled_upstream.url)
        run = run_suites(clean.url, "-k", k_expression(DISABLED_CHECKS), "--ignore=suites/mirror",
                         f"--deletion-disabled-url={proxy.url}")
        if mode is None:  # the clean proxy first: the same checks green
            assert run.returncode == 0, run.tail()
            assert sorted(short(i) for i in run.passed_ids()) == node_ids(DISABLED_CHECKS), run.tail()
        else:
            assert_mode(run, mode, DISABLED_CHECKS, proxy)


def test_delete_untagged_gc_needs_consent_on_an_external_registry(gc_upstream, run_suites):
    """Without --gc-delete-untagged the --delete-untagged checks skip (it would reach beyond the run's namespace)."""
    untagged = [name for name in GC_CHECKS if "delete_untagged" in name]
    options = [o for o in gc_upstream.options if o != "--gc-delete-untagged"]
    run = run_suites(gc_upstream.url, "-k", k_expression(untagged), "--ignore=suites/mirror", *options)
    assert run.returncode == 0, run.tail()
    assert sorted(short(i) for i in run.ids()) == node_ids(untagged), run.tail()
    for node in run.ids():
        assert run.outcome(node) == "skipped" and "--gc-delete-untagged" in run.reason(node), run.record(node)
