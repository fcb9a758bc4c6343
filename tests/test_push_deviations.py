"""The push, negative-push and error-envelope checks can fail: each deviation mode turns exactly the
matching checks red, with a reason naming the deviation; a clean proxy keeps them as recorded.

As in test_pull_deviations: a FaultProxy with the mode's rules in front of a real registry, one
suite module run against it, its behaviour.json compared with the clean run of that module. A mode
names the checks it turns red by test name (every variant) or by node name (`test_x[variant]`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from deviations import (
    Mode,
    assert_clean,
    assert_mode,
    clean_baseline,
    short,
)
from faultproxy import Request, Response, Rule
from suiterun import SuiteRun

from regconform.clients.skopeo import skopeo_path
from regconform.registry.digests import sha256_digest

pytestmark = pytest.mark.selftest_slow

PUSH, NEGATIVE, ERRORS = "test_push.py", "test_push_negative.py", "test_errors.py"
UPLOADS = r"^/v2/.+/blobs/uploads/"
SESSION = r"^/v2/.+/blobs/uploads/[^/?]+"
MANIFESTS = r"^/v2/.+/manifests/"
# The wrong digest test_push_negative sends on purpose.
NEGATIVE_WRONG_DIGEST = "sha256:" + "d1" * 32
ENVELOPE_CASES = ["manifest-unknown", "blob-unknown", "blob-digest-malformed", "tags-unknown-repository",
                  "blob-digest-mismatch", "blob-digest-missing", "manifest-blob-unknown", "manifest-invalid",
                  "manifest-digest-mismatch", "manifest-oversized", "upload-unknown", "upload-id-invalid",
                  "manifest-delete-unknown", "blob-delete-unknown"]
HARNESS_AGENTS = ("regconform/", "python-httpx/")
ENVELOPE_CHECK = "test_error_answer_carries_the_error_envelope"


def registry_answer(status: int, req: Request, headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
    return Response(status, {"Docker-Distribution-Api-Version": "registry/2.0", "Content-Length": str(len(body)),
                             **(headers or {})}, body, req)


def repo_of(path: str) -> str:
    return re.match(r"^/v2/(.+?)/(blobs|manifests)/", path)[1]  # type: ignore[index]


# -- push ---------------------------------------------------------------------------------------------------


def mount_lies() -> Mode:
    """Every mount answers 201 (blob mounted) without asking the registry: the blob never reaches the target."""
    mode = Mode("mount answers 201 without mounting", [],
                ["test_cross_repository_mount", "test_mount_of_an_unknown_blob_opens_a_session",
                 "test_location_on_every_201_and_202_is_usable"],
                [r"mount"], module=PUSH)

    def lie(req: Request) -> Response:
        digest = re.search(r"mount=(sha256(?::|%3A)[0-9a-f]{64})", req.path)[1].replace("%3A", ":")  # type: ignore[index]
        repo = repo_of(req.path)
        mode.changed.append(digest)
        return registry_answer(201, req, {"Location": f"/v2/{repo}/blobs/{digest}", "Docker-Content-Digest": digest})

    # Only mounts from the suites' own source repositories: skopeo also tries mounts from repositories
    # its blob-info cache remembers (earlier runs), which would make its outcome depend on that cache.
    mode.rules = [Rule(UPLOADS + r"\?.*mount=.*from=[^&]*%2Fsource(&|$)", method="POST", respond=lie)]
    return mode


def chunk_range_off_by_one() -> Mode:
    """PATCH answers with Content-Range in the request report one byte more than stored."""
    mode = Mode("chunk PATCH answers a Range one byte too long", [],
                ["test_chunked_patch_upload_with_content_range", "test_chunked_upload_with_final_chunk_in_put",
                 "test_out_of_order_chunk", "test_upload_recovery_via_get_on_the_session"],
                [r"Range of", r"expected '0-\d+'"], module=PUSH)

    def lengthen(resp: Response) -> Response:
        assert resp.request is not None
        if resp.status != 202 or "content-range" not in resp.request.headers or "range" not in resp.headers:
            return resp
        end = int(resp.headers["range"].split("-", 1)[1])
        headers = resp.headers.copy()
        headers["Range"] = f"0-{end + 1}"
        mode.changed.append(headers["Range"])
        return replace(resp, headers=headers)

    mode.rules = [Rule(SESSION, method="PATCH", transform=lengthen)]
    return mode


def session_status_range_wrong() -> Mode:
    """GET on an upload session (204) reports one byte more than stored."""
    mode = Mode("upload status answers a Range one byte too long", [],
                ["test_upload_recovery_via_get_on_the_session", "test_upload_status_reports_the_stored_range"],
                [r"Range of"], module=PUSH)

    def lengthen(resp: Response) -> Response:
        if resp.status != 204 or "range" not in resp.headers:
            return resp
        headers = resp.headers.copy()
        headers["Range"] = f"0-{int(resp.headers['range'].split('-', 1)[1]) + 1}"
        mode.changed.append(headers["Range"])
        return replace(resp, headers=headers)

    mode.rules = [Rule(SESSION, method="GET", transform=lengthen)]
    return mode


def mount_without_location() -> Mode:
    return Mode("mount 201 without Location",
                [Rule(UPLOADS + r"\?.*mount=.*from=[^&]*%2Fsource(&|$)", method="POST", transform=lambda r: _drop_location_if(r, 201))],
                ["test_cross_repository_mount", "test_location_on_every_201_and_202_is_usable"],
                [r"(no location header|201 without a Location header)"], module=PUSH)


def manifest_put_without_location() -> Mode:
    return Mode("manifest PUT 201 without Location",
                [Rule(MANIFESTS, method="PUT", transform=lambda r: _drop_location_if(r, 201))],
                ["test_manifest_put_by_tag", "test_manifest_put_by_digest", "test_index_push",
                 "test_location_on_every_201_and_202_is_usable"],
                [r"(no location header|201 without a Location header)"], module=PUSH)


def _drop_location_if(resp: Response, status: int) -> Response:
    if resp.status != status or "location" not in resp.headers:
        return resp
    headers = resp.headers.copy()
    del headers["location"]
    return replace(resp, headers=headers)


def cancel_ignored() -> Mode:
    """DELETE on an upload session answers 204 but cancels nothing."""
    return Mode("upload cancel answers 204 and cancels nothing",
                [Rule(SESSION, method="DELETE", respond=lambda req: registry_answer(204, req))],
                ["test_upload_cancel"], [r"cancelled session", r"expected 404 BLOB_UPLOAD_UNKNOWN", r"got 20[24]"], module=PUSH)


def base_endpoint_missing() -> Mode:
    """GET /v2/ answers 404 to real clients: the checks' own requests never need it, skopeo does.

    The harness's own GET /v2/ (client and preflight: regconform/..., python-httpx/...) still reaches
    the registry, else the run would stop before any check.
    """
    mode = Mode("GET /v2/ answers 404 to clients", [],
                ["test_skopeo_pushes_what_the_harness_reads_back", "test_skopeo_reads_what_the_harness_pushed"],
                [r"skopeo (copy|inspect)", r"failed \(exit"], module=PUSH)

    def hide(req: Request) -> Request:
        if req.headers.get("user-agent", "").startswith(HARNESS_AGENTS):
            return req
        mode.changed.append(req.headers.get("user-agent", ""))
        return replace(req, path="/v2-hidden/")  # not a route: the registry answers 404

    mode.rules = [Rule(r"^/v2/?$", method="GET", rewrite=hide)]
    return mode


# -- negative push -----------------------------------------------------------------------------------------


def digest_not_verified() -> Mode:
    """Closing an upload with a digest the bytes do not hash to answers 201 instead of 400 DIGEST_INVALID."""
    mode = Mode("blob digest not verified on upload", [], ["test_blob_put_with_wrong_digest_is_rejected"],
                [r"PUT \?digest=" + re.escape(NEGATIVE_WRONG_DIGEST), r"expected 400 DIGEST_INVALID", r"got 201"], module=NEGATIVE)

    def accept(resp: Response) -> Response:
        if resp.status != 400:
            return resp
        assert resp.request is not None
        mode.changed.append(resp.request.path)
        return registry_answer(201, resp.request, {"Location": f"/v2/{repo_of(resp.request.path)}/blobs/{NEGATIVE_WRONG_DIGEST}",
                                                   "Docker-Content-Digest": NEGATIVE_WRONG_DIGEST})

    mode.rules = [Rule(SESSION + r"\?.*digest=" + re.escape(NEGATIVE_WRONG_DIGEST), method="PUT", transform=accept)]
    return mode


def uppercase_name_accepted() -> Mode:
    """An upload to a repository name with uppercase letters opens a session (202) instead of being refused."""

    def accept(req: Request) -> Response:
        return registry_answer(202, req, {"Location": req.path.split("?", 1)[0] + "regconform-fake-session", "Range": "0-0"})

    return Mode("uppercase repository name accepted",
                [Rule(r"^/v2/[^?]*[A-Z][^?]*/blobs/uploads/$", method="POST", respond=accept)],
                ["test_invalid_repository_name_is_rejected[uppercase]"], [r"for the name", r"\(uppercase\)", r"got 202"], module=NEGATIVE)


def oversized_manifest_accepted() -> Mode:
    """A manifest over 4 MiB answers 201 (the proxy accepts it for the registry)."""
    mode = Mode("oversized manifest accepted", [], ["test_oversized_manifest_is_refused"],
                [r"PUT of a \d+-byte", r"expected 400 MANIFEST_INVALID", r"got 201"], module=NEGATIVE)

    def accept(resp: Response) -> Response:
        req = resp.request
        if req is None or resp.status != 400 or len(req.body) <= 4 * 1024 * 1024:
            return resp
        digest = sha256_digest(req.body)
        mode.changed.append(digest)
        return registry_answer(201, req, {"Location": req.path, "Docker-Content-Digest": digest})

    mode.rules = [Rule(MANIFESTS, method="PUT", transform=accept)]
    return mode


# -- error envelopes ----------------------------------------------------------------------------------------


def _edit_errors(edit: Callable[[Response], Response | None], mode_changed: list[str]) -> Callable[[Response], Response]:
    def transform(resp: Response) -> Response:
        if not 400 <= resp.status < 500 or not resp.body.startswith(b"{"):
            return resp
        edited = edit(resp)
        if edited is None:
            return resp
        mode_changed.append(f"{resp.status}")
        return edited
    return transform


def error_body_not_json() -> Mode:
    mode = Mode("error bodies are plain text", [], [f"{ENVELOPE_CHECK}[{c}]" for c in ENVELOPE_CASES],
                [r"breaks the envelope", r"not JSON"], module=ERRORS)
    text = b"something went wrong"
    mode.rules = [Rule(r"^/v2/", transform=_edit_errors(
        lambda r: replace(r, body=text, headers=_with(r.headers, **{"Content-Type": "text/plain", "Content-Length": str(len(text))})),
        mode.changed))]
    return mode


def error_content_type_wrong() -> Mode:
    mode = Mode("error answers with Content-Type text/html", [], [f"{ENVELOPE_CHECK}[{c}]" for c in ENVELOPE_CASES],
                [r"breaks the envelope", r"Content-Type 'text/html' instead of application/json"], module=ERRORS)
    mode.rules = [Rule(r"^/v2/", transform=_edit_errors(
        lambda r: replace(r, headers=_with(r.headers, **{"Content-Type": "text/html"})), mode.changed))]
    return mode


def error_code_outside_the_list() -> Mode:
    """MANIFEST_UNKNOWN is answered as MANIFEST_MISSING, a code no spec lists."""
    mode = Mode("error code outside the spec's list", [],
                [f"{ENVELOPE_CHECK}[manifest-unknown]", f"{ENVELOPE_CHECK}[manifest-delete-unknown]"],
                [r"MANIFEST_MISSING is not in the spec's list"], module=ERRORS)

    def rename(resp: Response) -> Response | None:
        if b"MANIFEST_UNKNOWN" not in resp.body:
            return None
        return replace(resp, body=resp.body.replace(b"MANIFEST_UNKNOWN", b"MANIFEST_MISSING"))

    mode.rules = [Rule(MANIFESTS, transform=_edit_errors(rename, mode.changed))]
    return mode


def _with(headers, **values: str):
    out = headers.copy()
    for name, value in values.items():
        out[name] = value
    return out


MODES: dict[str, Callable[[], Mode]] = {
    "mount-lies": mount_lies,
    "chunk-range-off-by-one": chunk_range_off_by_one,
    "session-status-range-wrong": session_status_range_wrong,
    "mount-without-location": mount_without_location,
    "manifest-put-without-location": manifest_put_without_location,
    "cancel-ignored": cancel_ignored,
    "base-endpoint-missing": base_endpoint_missing,
    "digest-not-verified": digest_not_verified,
    "uppercase-name-accepted": uppercase_name_accepted,
    "oversized-manifest-accepted": oversized_manifest_accepted,
    "error-body-not-json": error_body_not_json,
    "error-content-type-wrong": error_content_type_wrong,
    "error-code-outside-the-list": error_code_outside_the_list,
}
CHANGES_ANSWERS = {"mount-lies", "base-endpoint-missing", "oversized-manifest-accepted", "chunk-range-off-by-one", "session-status-range-wrong", "digest-not-verified",
                   "error-body-not-json", "error-content-type-wrong", "error-code-outside-the-list"}


class Baselines(dict):  # type: ignore[type-arg]
    """module → its clean run through a proxy without rules, made on first use and shared by the modes."""

    def __init__(self, upstream_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.upstream_url = upstream_url
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, module: str) -> SuiteRun:
        run = clean_baseline(self.upstream_url, module, self.tmp_path_factory.mktemp(module.removesuffix(".py")))
        self[module] = run
        return run


@pytest.fixture(scope="module")
def baselines(upstream, tmp_path_factory) -> Baselines:
    return Baselines(upstream.url, tmp_path_factory)


@pytest.mark.parametrize("module", [PUSH, NEGATIVE, ERRORS])
def test_clean_proxy_keeps_the_push_and_error_checks_as_recorded(module, baselines):
    """Through a proxy without rules every check of the module passes, or is unsupported as the profile records."""
    run = baselines[module]
    assert_clean(run)
    outcomes = set(run.outcomes().values())
    assert outcomes <= {"passed", "unsupported", "skipped"}, run.tail()
    assert "passed" in outcomes, run.tail()
    # with skopeo installed (setup.sh does it) the interoperability checks must really run, not skip
    if module == PUSH and skopeo_path() is not None:
        skopeo = {short(i): o for i, o in run.outcomes("skopeo").items()}
        assert skopeo and set(skopeo.values()) == {"passed"}, skopeo


@pytest.mark.parametrize("mode_name", list(MODES))
def test_push_deviation_turns_exactly_its_checks_red(mode_name, baselines, fault_proxy, run_suites):
    """Each deviation: exactly its checks fail (every listed variant), naming the deviation; the rest as when clean."""
    if mode_name == "base-endpoint-missing" and skopeo_path() is None:
        pytest.skip("skopeo is not installed (./setup.sh installs it): only a real client notices a missing /v2/")
    mode = MODES[mode_name]()
    baseline = baselines[mode.module]
    proxy = fault_proxy(mode.rules)
    run = run_suites(proxy.url, "-k", mode.module, "--ignore=suites/mirror")
    assert_mode(run, mode, baseline, proxy)
    if mode_name in CHANGES_ANSWERS:
        assert mode.changed, f"{mode.name}: the rules fired but never changed an answer"

