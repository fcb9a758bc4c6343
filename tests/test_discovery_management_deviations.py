"""The discovery, management and referrers checks can fail: each deviation mode turns exactly the
matching checks red, with a reason naming the deviation; a clean proxy keeps them as recorded.

As in test_pull_deviations: a FaultProxy with the mode's rules in front of a real registry, the
workflow's module run against it, behaviour.json compared with the clean run. The deletion-disabled
checks run against a second registry with deletion disabled (`--deletion-disabled-url`), the
layer-digest check that restarts the registry against `gc_upstream` (restartable, fixed port).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from deviations import assert_clean, clean_baseline
from faultproxy import FaultProxy, Request, Response, Rule
from suiterun import SuiteRun
from test_pull_deviations import BLOBS, MANIFESTS, Mode, assert_mode

from regconform.content.images import FORMATS, check_variant, fixture_set

pytestmark = pytest.mark.selftest_slow

DISCOVERY, MANAGEMENT, REFERRERS = "test_content_discovery.py", "test_content_management.py", "test_referrers.py"
CATALOG = r"^/v2/_catalog"
TAG_REF = r"^/v2/(?P<repo>.+)/manifests/(?P<tag>(?!sha256:)[^/?]+)$"
# The restart check pushes the fixture variant of its own check id (fixtures_gc.own_fixtures).
RESTART_CHECK = "test_content_management.py::test_delete_of_a_layer_digest_under_manifests_after_restart"
LAYER_DIGESTS = {fixture_set(fmt, variant).beta.layers[1].digest for fmt in FORMATS
                 for variant in (None, check_variant(f"{RESTART_CHECK}[{fmt}]"))}


def json_answer(status: int, doc: object, req: Request, ctype: str = "application/json") -> Response:
    return Response(status, {"Content-Type": ctype, "Docker-Distribution-Api-Version": "registry/2.0"},
                    json.dumps(doc).encode(), req)


def edit_json(resp: Response, edit: Callable[[dict], dict | None]) -> Response:
    """The answer with its JSON body edited (edit returns None to leave it alone)."""
    if resp.status != 200:
        return resp
    doc = edit(json.loads(resp.body))
    return resp if doc is None else replace(resp, body=json.dumps(doc).encode())


# -- content discovery -------------------------------------------------------------------------------------


def catalog_drops_repository() -> Mode:
    """_catalog leaves out every repository named .../r1."""
    mode = Mode("_catalog drops a repository", [], ["test_catalog_lists_pushed_repositories", "test_catalog_paginates_with_n_and_link"],
                [r"repositories (_catalog lists|collected over every _catalog page)"])

    def drop(doc: dict) -> dict | None:
        names = doc.get("repositories") or []
        kept = [n for n in names if not n.endswith("/r1")]
        if kept == names:
            return None
        mode.changed.append("r1")
        return {**doc, "repositories": kept}

    mode.rules = [Rule(CATALOG, method="GET", transform=lambda resp: edit_json(resp, drop))]
    return mode


def catalog_link_missing() -> Mode:
    return Mode("_catalog without Link", [Rule(CATALOG, method="GET", drop_headers=("Link",))],
                ["test_catalog_paginates_with_n_and_link"], [r"is full, more names follow, and it has no Link header"])


def catalog_link_wrong() -> Mode:
    """The Link of a _catalog page asks for n=3 where the client asked n=2."""

    def widen(resp: Response) -> Response:
        link = resp.headers.get("link")
        if not link or "n=2" not in link:
            return resp
        headers = resp.headers.copy()
        headers["Link"] = link.replace("n=2", "n=3")
        return replace(resp, headers=headers)

    return Mode("_catalog Link with the wrong n", [Rule(CATALOG, method="GET", transform=widen)],
                ["test_catalog_paginates_with_n_and_link"], [r"_catalog\?n=2 page \d holds 3 names"])


def catalog_forgets_emptied() -> Mode:
    """A registry that drops a repository from _catalog once its last manifest is deleted (2.8 keeps it)."""
    mode = Mode("_catalog drops emptied repositories", [], ["test_catalog_after_every_manifest_is_deleted"],
                [r"emptied", r"expected True", r"got False"])

    def drop(doc: dict) -> dict | None:
        names = doc.get("repositories") or []
        kept = [n for n in names if not n.endswith("/emptied")]
        return None if kept == names else {**doc, "repositories": kept}

    mode.rules = [Rule(CATALOG, method="GET", transform=lambda resp: edit_json(resp, drop))]
    return mode


def tags_paginated() -> Mode:
    """tags/list honours n (serves n tags), where the profile records that 2.8 ignores it."""

    def truncate(resp: Response) -> Response:
        assert resp.request is not None
        match = re.search(r"[?&]n=(\d+)", resp.request.path)
        if not match:
            return resp
        return edit_json(resp, lambda doc: {**doc, "tags": (doc.get("tags") or [])[:int(match[1])]})

    return Mode("tags/list honours n", [Rule(r"/tags/list\?", method="GET", transform=truncate)],
                ["test_tags_list_paginates_with_n_and_link", "test_tags_list_last_starts_after_the_named_tag",
                 "test_tags_list_n_zero_answers_an_empty_list_without_link"],
                [r"the profile records that n/last are ignored"])


def unknown_repository_tags_200() -> Mode:
    def empty_list(req: Request) -> Response:
        return json_answer(200, {"name": req.path.split("/v2/", 1)[1].rsplit("/tags/list", 1)[0], "tags": []}, req)

    return Mode("tags/list of an unknown repository answers 200",
                [Rule(r"tags-list-of-unknown-repository[^/]*/tags/list", respond=empty_list)],
                ["test_tags_list_of_unknown_repository_answers_404_name_unknown"], [r"expected 404 NAME_UNKNOWN", r"got 200"])


# -- content management ------------------------------------------------------------------------------------


def blob_delete_deletes_nothing() -> Mode:
    """DELETE of a blob answers 202 without deleting anything (never reaches the registry)."""
    return Mode("blob DELETE deletes nothing",
                [Rule(BLOBS, method="DELETE", respond=lambda req: Response(202, {"Content-Length": "0"}, b"", req))],
                ["test_delete_blob_answers_202_and_the_blob_is_gone", "test_delete_unknown_blob_answers_404_blob_unknown"],
                [r"(deleted blob|second DELETE of the blob|unknown blob)", r"expected 404 BLOB_UNKNOWN", r"got (200|202)"])


def unknown_manifest_delete_202() -> Mode:
    return Mode("DELETE of an unknown manifest answers 202",
                [Rule(MANIFESTS + "sha256:2{64}$", method="DELETE", respond=lambda req: Response(202, {}, b"", req))],
                ["test_delete_unknown_manifest_answers_404_manifest_unknown"], [r"unknown manifest", r"got 202"])


def layer_digest_delete_404() -> Mode:
    """DELETE /manifests/<layer digest> answered 404 (as OCI would have it) where 2.8's 202 is recorded."""
    layers = "|".join(d.split(":")[1] for d in LAYER_DIGESTS)
    refuse = lambda req: json_answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}, req)  # noqa: E731
    return Mode("DELETE of a layer digest under manifests/ answers 404",
                [Rule(MANIFESTS + f"sha256:({layers})$", method="DELETE", respond=refuse)],
                ["test_delete_of_a_layer_digest_under_manifests"], [r"layer digest under manifests", r"expected 202", r"got 404"])


# -- referrers ----------------------------------------------------------------------------------------------


def referrers_garbage() -> Mode:
    """The referrers endpoint answers 200 with garbage where 2.8 has no such endpoint (404)."""
    garbage = lambda req: Response(200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, b"<html>oops", req)  # noqa: E731
    return Mode("referrers answer garbage", [Rule(r"/referrers/", respond=garbage)],
                ["test_referrers_lists_every_manifest_with_the_subject", "test_referrers_filter_by_artifact_type",
                 "test_referrers_of_a_manifest_without_referrers_is_an_empty_index",
                 "test_referrers_with_malformed_digest_answers_400"],
                [r"referrers", r"expected 404", r"got 200"])


def oci_subject_announced() -> Mode:
    return Mode("PUT answers OCI-Subject", [Rule(MANIFESTS, method="PUT", set_headers={"OCI-Subject": "sha256:" + "e" * 64})],
                ["test_manifest_put_with_subject_answers_oci_subject"], [r"OCI-Subject", r"profile records no subject processing"])


def referrers_tag_corrupted() -> Mode:
    """The index under the referrers tag comes back without its manifests."""
    return Mode("referrers tag index served without its manifests",
                [Rule(MANIFESTS + r"sha256-[0-9a-f]{64}$", method="GET",
                      transform=lambda resp: edit_json(resp, lambda doc: {**doc, "manifests": []}))],
                ["test_referrers_tag_schema_fallback_serves_the_index"], [r"bytes served under sha256-[0-9a-f]{64}"])


def missing_subject_refused() -> Mode:
    """An artifact whose subject is not in the repository is refused (the spec says it MUST be accepted)."""
    refuse = lambda req: json_answer(400, {"errors": [{"code": "MANIFEST_BLOB_UNKNOWN", "message": "subject unknown"}]}, req)  # noqa: E731
    return Mode("manifest with a missing subject refused",
                [Rule(r"manifest-with-subject-is-accepted[^/]*/manifests/", method="PUT", respond=refuse)],
                ["test_manifest_with_subject_is_accepted_before_its_subject_exists"],
                [r"subject does not exist", r"expected 201", r"got 400 MANIFEST_BLOB_UNKNOWN"])


MODES: dict[str, tuple[str, Callable[[], Mode]]] = {
    "catalog-drops-repository": (DISCOVERY, catalog_drops_repository),
    "catalog-link-missing": (DISCOVERY, catalog_link_missing),
    "catalog-link-wrong": (DISCOVERY, catalog_link_wrong),
    "catalog-forgets-emptied": (DISCOVERY, catalog_forgets_emptied),
    "tags-paginated": (DISCOVERY, tags_paginated),
    "unknown-repository-tags-200": (DISCOVERY, unknown_repository_tags_200),
    "blob-delete-deletes-nothing": (MANAGEMENT, blob_delete_deletes_nothing),
    "unknown-manifest-delete-202": (MANAGEMENT, unknown_manifest_delete_202),
    "layer-digest-delete-404": (MANAGEMENT, layer_digest_delete_404),
    "referrers-garbage": (REFERRERS, referrers_garbage),
    "oci-subject-announced": (REFERRERS, oci_subject_announced),
    "referrers-tag-corrupted": (REFERRERS, referrers_tag_corrupted),
    "missing-subject-refused": (REFERRERS, missing_subject_refused),
}


@pytest.fixture(scope="module")
def baseline(upstream, tmp_path_factory) -> Callable[[str], SuiteRun]:
    """The clean run of one workflow module (computed once per module)."""
    runs: dict[str, SuiteRun] = {}

    def get(selection: str) -> SuiteRun:
        if selection not in runs:
            runs[selection] = clean_baseline(upstream.url, selection, tmp_path_factory.mktemp("clean"))
        return runs[selection]

    return get


@pytest.mark.parametrize("selection", [DISCOVERY, MANAGEMENT, REFERRERS])
def test_clean_proxy_keeps_the_checks_as_recorded(selection, baseline):
    """Through a proxy without rules every check passes or is unsupported as recorded; referrers stay unsupported."""
    run = baseline(selection)
    assert_clean(run)
    if selection == REFERRERS:
        assert run.outcome("test_referrers_lists_every_manifest_with_the_subject") == "unsupported", run.tail()
        assert run.outcome("test_referrers_tag_schema_fallback_serves_the_index") == "passed", run.tail()


@pytest.mark.parametrize("mode_name", list(MODES))
def test_deviation_turns_exactly_its_checks_red(mode_name, baseline, fault_proxy, run_suites):
    """Each deviation: exactly its checks fail, naming the deviation; every other check as in the clean run."""
    selection, factory = MODES[mode_name]
    mode = factory()
    proxy = fault_proxy(mode.rules)
    run = run_suites(proxy.url, "-k", selection, "--ignore=suites/mirror")
    assert_mode(run, mode, baseline(selection), proxy)
    if mode_name in ("catalog-drops-repository",):
        assert mode.changed, f"{mode.name}: the rules fired but never changed an answer"


# -- deletion disabled: a delete by tag must not succeed (CVE-2026-41888) -------------------------------------

DISABLED = "deletion_is_disabled"


def tag_delete_goes_through() -> Mode:
    """DELETE by tag answers 202 and the tag is gone afterwards, although deletion is disabled (3.0.0-3.1.0)."""
    deleted: set[tuple[str, str]] = set()

    def untag(req: Request) -> Response:
        m = re.match(TAG_REF, req.path)
        assert m is not None
        deleted.add((m["repo"], m["tag"]))
        return Response(202, {"Content-Length": "0"}, b"", req)

    def hide(resp: Response) -> Response:
        assert resp.request is not None
        m = re.match(TAG_REF, resp.request.path)
        if m and (m["repo"], m["tag"]) in deleted:
            return json_answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}, resp.request)
        repo = resp.request.path.split("/v2/", 1)[1].rsplit("/tags/list", 1)[0]
        if resp.request.path.split("?")[0].endswith("/tags/list"):
            return edit_json(resp, lambda doc: {**doc, "tags": [t for t in doc.get("tags") or [] if (repo, t) not in deleted]})
        return resp

    return Mode("delete by tag succeeds with deletion disabled",
                [Rule(TAG_REF, method="DELETE", respond=untag), Rule(TAG_REF, method="GET", transform=hide),
                 Rule(TAG_REF, method="HEAD", transform=hide), Rule(r"/tags/list", method="GET", transform=hide)],
                ["test_delete_by_tag_does_not_succeed_when_deletion_is_disabled",
                 "test_every_delete_is_refused_when_deletion_is_disabled"],
                [r"by tag", r"(deleted a tag although deletion is disabled|expected 405 UNSUPPORTED)", r"202"])


def test_delete_by_tag_with_deletion_disabled_is_caught(upstream, disabled_upstream, fault_proxy, tmp_path_factory, run_suites):
    """Clean: both deletion-disabled checks pass. A registry that untags anyway turns exactly both red."""
    with FaultProxy(disabled_upstream.url, []) as clean:
        base = clean_baseline(upstream.url, DISABLED, tmp_path_factory.mktemp("disabled-clean"),
                              f"--deletion-disabled-url={clean.url}")
    assert_clean(base)
    assert sorted(base.outcomes().values()) == ["passed"] * 4, base.tail()
    mode = tag_delete_goes_through()
    proxy = fault_proxy(mode.rules, upstream_url=disabled_upstream.url)
    main = fault_proxy()
    run = run_suites(main.url, "-k", DISABLED, "--ignore=suites/mirror", f"--deletion-disabled-url={proxy.url}")
    assert_mode(run, mode, base, proxy)


# -- DELETE of a layer digest under manifests/, then a restart -------------------------------------------------

LAYER = "layer_digest_under_manifests"


def layer_link_kept() -> Mode:
    """DELETE /manifests/<layer digest> answers 202 but unlinks nothing (2.8 removes the repository's layer link)."""
    layers = "|".join(d.split(":")[1] for d in LAYER_DIGESTS)
    return Mode("layer digest DELETE under manifests/ unlinks nothing",
                [Rule(MANIFESTS + f"sha256:({layers})$", method="DELETE", respond=lambda req: Response(202, {"Content-Length": "0"}, b"", req))],
                ["test_delete_of_a_layer_digest_under_manifests", "test_delete_of_a_layer_digest_under_manifests_after_restart"],
                [r"(second DELETE of the layer digest|HEAD of the layer .* after the restart)", r"got (202|200)"])


def test_layer_digest_delete_quirk_is_pinned(gc_upstream, fault_proxy, tmp_path_factory, run_suites):
    """Clean: 2.8's 202 and the unlinked layer after restart are recorded as passing. A registry that unlinks nothing fails both."""
    base = clean_baseline(gc_upstream.url, LAYER, tmp_path_factory.mktemp("layer-clean"), *gc_upstream.options)
    assert_clean(base)
    assert sorted(base.outcomes().values()) == ["passed"] * 4, base.tail()
    mode = layer_link_kept()
    proxy = fault_proxy(mode.rules, upstream_url=gc_upstream.url)
    run = run_suites(proxy.url, "-k", LAYER, "--ignore=suites/mirror", *gc_upstream.options)
    assert_mode(run, mode, base, proxy)
