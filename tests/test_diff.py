"""`regconform diff` and `regconform compare`: every kind of behaviour change found, the allow-list,
exit codes, and two real configurations whose differences are known (deletion enabled vs disabled),
compared by image + registry env and by URL.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest
from reportruns import output, regconform

from regconform.reports.diff import Change, compare, load_allow_list
from regconform.reports.writers import SCHEMA_VERSION

# -- documents made by hand: each kind of change on its own ---------------------------------------

DELETE = "DELETE /v2/<repo>/manifests/v1"


def check(cid: str, workflow: str = "content-management", outcome: str = "passed", **extra: object) -> dict:
    facts = [{"request": "PUT /v2/<repo>/manifests/v1", "status": 201, "setup": True,
              "headers": {"docker-content-digest": "sha256:aa", "location": "<origin>/v2/<repo>/manifests/sha256:aa"}},
             {"request": DELETE, "status": 400, "errors": ["DIGEST_INVALID"],
              "headers": {"content-type": "application/json; charset=utf-8"}}]
    return {"id": cid, "workflow": workflow, "spec": None, "title": cid, "outcome": outcome, "reason": None,
            "phase": "call", "expectations": {"manifests.delete-by-tag": {"status": [400], "supported": True}},
            "observations": {"tags": ["v1"]}, "facts": facts, **extra}


def document(*checks: dict) -> dict:
    return {"schema": SCHEMA_VERSION, "harness": "0", "profile": "distribution-2.8",
            "target": {"registry": "registry:2", "target": "", "backend": "docker", "registry_env": {},
                       "profile": "distribution-2.8", "api_version": "registry/2.0"},
            "summary": {}, "workflows": {}, "checks": list(checks)}


OLD = document(check("suites/test_a.py::test_delete"), check("suites/test_b.py::test_list", workflow="content-discovery"),
               check("suites/test_c.py::test_gone"))


def changed(new: dict, allow: list | None = None) -> list[tuple[str, str, str, object, object]]:
    return [(c.check.split("::")[-1], c.kind, c.where, c.old, c.new) for c in compare(OLD, new, allow)]


def test_identical_documents_have_no_change() -> None:
    assert compare(OLD, copy.deepcopy(OLD)) == []


def test_status_error_and_header_changes_are_found() -> None:
    new = copy.deepcopy(OLD)
    fact = new["checks"][0]["facts"][1]
    fact.update(status=405, errors=["UNSUPPORTED"])
    fact["headers"]["content-length"] = "<n>"
    del fact["headers"]["content-type"]
    assert changed(new) == [
        ("test_delete", "status", DELETE, 400, 405),
        ("test_delete", "error", DELETE, ["DIGEST_INVALID"], ["UNSUPPORTED"]),
        ("test_delete", "header", "content-length", None, "<n>"),
        ("test_delete", "header", "content-type", "application/json; charset=utf-8", None),
    ]
    text = [c.describe() for c in compare(OLD, new)]
    assert text[0] == f"status of {DELETE}: 400 → 405"
    assert text[2] == f"header content-length on {DELETE}: absent → present: none → <n>"
    assert text[3].startswith(f"header content-type on {DELETE}: present → absent")


def test_supported_to_unsupported_and_outcome_changes_are_found() -> None:
    new = copy.deepcopy(OLD)
    new["checks"][1]["outcome"] = "unsupported"
    new["checks"][0]["outcome"] = "failed"
    found = compare(OLD, new)
    assert [(c.workflow, c.kind, c.old, c.new) for c in found] == [
        ("content-discovery", "outcome", "passed", "unsupported"),
        ("content-management", "outcome", "passed", "failed"),
    ]
    assert found[0].describe() == "outcome: passed → unsupported (supported → unsupported)"


def test_added_removed_exchanges_observations_and_profile_changes_are_found() -> None:
    new = copy.deepcopy(OLD)
    new["checks"] = [c for c in new["checks"] if not c["id"].endswith("test_gone")]
    new["checks"].append(check("suites/test_d.py::test_new", outcome="skipped"))
    first = new["checks"][0]
    first["facts"].append({"request": "GET /v2/<repo>/tags/list", "status": 200})
    first["observations"]["tags"] = None
    first["expectations"]["manifests.delete-by-tag"] = {"status": [202], "supported": True}
    assert changed(new) == [
        ("test_delete", "exchange", "GET /v2/<repo>/tags/list", None, ["GET /v2/<repo>/tags/list → 200"]),
        ("test_delete", "observation", "tags", ["v1"], None),
        ("test_delete", "expectation", "manifests.delete-by-tag", {"status": [400], "supported": True},
         {"status": [202], "supported": True}),
        ("test_gone", "removed", "", "passed", None),
        ("test_new", "added", "", None, "skipped"),
    ]


def test_allow_list_permits_named_changes_only(tmp_path: Path) -> None:
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\ncheck = "suites/test_a.py::*"\nkind = ["status", "error"]\n'
                     'where = "DELETE *"\nreason = "deletion disabled on purpose"\n')
    new = copy.deepcopy(OLD)
    new["checks"][0]["facts"][1].update(status=405, errors=["UNSUPPORTED"])
    new["checks"][0]["outcome"] = "failed"
    found = compare(OLD, new, load_allow_list(allow))
    assert [(c.kind, c.allowed_by) for c in found] == [
        ("outcome", None), ("status", "deletion disabled on purpose"), ("error", "deletion disabled on purpose")]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(OLD))
    doc = copy.deepcopy(OLD)
    doc["checks"][0]["facts"][1]["status"] = 405
    new.write_text(json.dumps(doc))
    return old, new


def test_cli_exit_codes_and_formats(files: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = files
    same = regconform("diff", str(old), str(old))
    assert (same.returncode, same.stdout.splitlines()[-1]) == (0, "no behaviour changed")
    text = regconform("diff", str(old), str(new))
    assert text.returncode == 1 and "[content-management]" in text.stdout
    assert f"    - status of {DELETE}: 400 → 405" in text.stdout
    md = regconform("diff", str(old), str(new), "--format", "markdown", "-o", str(tmp_path / "d.md"))
    assert md.returncode == 1 and md.stdout == ""
    assert "#### content-management" in (tmp_path / "d.md").read_text()
    html = regconform("diff", str(old), str(new), "--format", "html")
    assert html.stdout.startswith("<!DOCTYPE html>") and 'data-kind="status"' in html.stdout and "http" not in html.stdout
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\ncheck = "*test_delete"\nkind = "status"\n')
    allowed = regconform("diff", str(old), str(new), "--allow", str(allow))
    assert allowed.returncode == 0 and "(allowed: allow *test_delete)" in allowed.stdout


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not JSON"),
    ('{"checks": 3}', "not a regconform behaviour.json"),
    ('{"schema": 1, "checks": []}', "schema 1; this regconform reads schema"),
])
def test_bad_input_is_one_line_and_exit_2(files: tuple[Path, Path], tmp_path: Path, content: str | None,
                                           message: str) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    proc = regconform("diff", str(files[0]), str(bad))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regconform: error: ") and message in lines[0]


def test_bad_allow_list_is_one_line_and_exit_2(files: tuple[Path, Path], tmp_path: Path) -> None:
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\ncheck = "*"\nkind = "colour"\n')
    proc = regconform("diff", str(files[0]), str(files[1]), "--allow", str(allow))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "unknown kind 'colour'" in proc.stderr


# -- two real configurations: deletion enabled (A) vs disabled (B) -----------------------------------

COMPARED = "test_api_version_check or test_delete_manifest_by_digest_answers or test_delete_manifest_by_tag_is_rejected"
DIGEST_CHECK = "suites/test_content_management.py::test_delete_manifest_by_digest_answers_202_and_removes_it_with_its_tags"
TAG_CHECK = "suites/test_content_management.py::test_delete_manifest_by_tag_is_rejected_and_deletes_nothing"


def assert_deletion_disabled_diff(report_dir: Path) -> None:
    """Exactly the known differences: every DELETE answers 405 UNSUPPORTED instead of 202 (by digest)
    or 400 DIGEST_INVALID (by tag); the checks stop there; the version check does not change."""
    old = json.loads((report_dir / "a" / "behaviour.json").read_text())
    new = json.loads((report_dir / "b" / "behaviour.json").read_text())
    changes = compare(old, new)
    by_check: dict[str, list[Change]] = {}
    for c in changes:
        by_check.setdefault(c.check, []).append(c)
    assert sorted(by_check) == sorted(f"{base}[{fmt}]" for base in (DIGEST_CHECK, TAG_CHECK) for fmt in ("docker", "oci"))
    for cid, found in by_check.items():
        kinds = [(c.kind, c.where if c.kind != "exchange" else c.where.split()[0]) for c in found]
        deleted = next(c.where for c in found if c.kind == "status")
        assert deleted.startswith("DELETE /v2/<repo>/manifests/")
        assert (found[0].kind, found[0].old, found[0].new) == ("outcome", "passed", "failed")
        statuses = [(c.old, c.new) for c in found if c.kind == "status"]
        errors = [(c.old, c.new) for c in found if c.kind == "error"]
        if cid.startswith(DIGEST_CHECK):
            assert statuses == [(202, 405)] and errors == [(None, ["UNSUPPORTED"])]
            # 202 came with an empty body; 405 with a JSON error; then the GETs of the deleted manifest never ran.
            assert kinds == [("outcome", ""), ("status", deleted), ("error", deleted), ("header", "content-length"),
                             ("header", "content-type"), ("exchange", "GET")]
        else:
            assert statuses == [(400, 405)] and errors == [(["DIGEST_INVALID"], ["UNSUPPORTED"])]
            # The rejected delete is followed by HEADs proving nothing was deleted: not reached with 405.
            assert kinds == [("outcome", ""), ("status", deleted), ("error", deleted), ("exchange", "HEAD")]
    text = (report_dir / "diff.txt").read_text()
    assert "20 change(s), 20 not allowed" in text and "status of DELETE /v2/<repo>/manifests/v1: 400 → 405" in text
    assert (report_dir / "diff.md").is_file() and (report_dir / "diff.html").is_file()


@pytest.mark.selftest_slow
def test_compare_images_deletion_enabled_vs_disabled(tmp_path: Path) -> None:
    proc = regconform("compare", "--image", "registry:2", "--env-b", "REGISTRY_STORAGE_DELETE_ENABLED=false",
                      "--report-dir", str(tmp_path), "-k", COMPARED)
    assert proc.returncode == 1, output(proc)
    assert_deletion_disabled_diff(tmp_path)
    new = json.loads((tmp_path / "b" / "behaviour.json").read_text())
    assert new["target"]["registry"] == "registry:2 REGISTRY_STORAGE_DELETE_ENABLED=false"
    assert new["target"]["registry_env"] == {"REGISTRY_STORAGE_DELETE_ENABLED": "false"}
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\ncheck = "suites/test_content_management.py::test_delete_*"\n'
                     'reason = "deletion is disabled on B"\n')
    allowed = regconform("diff", str(tmp_path / "a" / "behaviour.json"), str(tmp_path / "b" / "behaviour.json"),
                         "--allow", str(allow))
    assert allowed.returncode == 0 and "20 change(s), 0 not allowed" in allowed.stdout


@pytest.mark.selftest_slow
def test_compare_registry_urls_deletion_enabled_vs_disabled(tmp_path: Path) -> None:
    from regconform.targets.base import registry_env
    from regconform.targets.container import ContainerTarget
    from regconform.targets.engine import docker_client
    from regconform.targets.imagebuild import resolve_registry_image

    image = resolve_registry_image(docker_client(), "registry:2")
    run_id = f"selftest-compare-{uuid.uuid4().hex[:8]}"
    enabled = ContainerTarget(image, registry_env(True), run_id)
    try:
        disabled = ContainerTarget(image, registry_env(False), run_id)
        try:
            proc = regconform("compare", "--registry-url", enabled.url, "--registry-url", disabled.url,
                              "--report-dir", str(tmp_path), "-k", COMPARED)
        finally:
            disabled.stop()
    finally:
        enabled.stop()
    assert proc.returncode == 1, output(proc)
    assert_deletion_disabled_diff(tmp_path)


def test_compare_usage_errors_are_one_line() -> None:
    for args in (["compare"], ["compare", "--registry-url", "http://127.0.0.1:1"],
                 ["compare", "--registry-url", "http://127.0.0.1:1", "--registry-url", "http://127.0.0.1:2",
                  "--image", "registry:2"]):
        proc = regconform(*args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)


def test_registry_env_usage_errors_are_one_line() -> None:
    for args, message in ((["--registry-url", "http://127.0.0.1:1", "--registry-env", "A=B"], "cannot apply to --registry-url"),
                          (["--registry-env", "NOVALUE"], "expected KEY=VALUE")):
        proc = regconform("run", *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (args, proc.stderr)


# -- a diff a person reads: collapse, weight order, one structure in every format --------------------


def many_checks(n: int, content_type: str, delete_status: int = 400) -> dict:
    """n checks, each with the JSON answer of a DELETE by tag (one exchange carrying content-type)."""
    out = []
    for i in range(n):
        c = check(f"suites/test_many.py::test_{i:03d}")
        c["facts"][1]["headers"]["content-type"] = content_type
        c["facts"][1]["status"] = delete_status
        c["facts"][1]["request"] = f"DELETE /v2/<repo>/manifests/tag{i}"
        out.append(c)
    return document(*out)


def test_identical_changes_collapse_into_one_line_with_a_count() -> None:
    from regconform.reports.diff_render import collapse, render

    old, new = many_checks(120, "application/json; charset=utf-8"), many_checks(120, "application/json", 202)
    changes = compare(old, new)
    assert len(changes) == 240
    summary = collapse(changes)
    assert [(g.category, g.signature, g.count()) for g in summary] == [
        ("status", "status of DELETE /v2/<repo>/manifests/<tag>: 400 → 202", "×120 exchanges in 120 checks"),
        ("header value", "header content-type: application/json; charset=utf-8 → application/json",
         "×120 exchanges in 120 checks")]
    text = render(changes, old, new, "summary")
    assert text.splitlines()[2] == "2 distinct change(s), 2 not allowed (240 change(s), 240 not allowed)"
    assert "  ✗ [status] status of DELETE /v2/<repo>/manifests/<tag>: 400 → 202 — ×120 exchanges in 120 checks " \
           "(e.g. test_many::test_000, test_many::test_001, …)" in text
    assert len(text.splitlines()) == 7  # header (3), a blank line, NOT ALLOWED, two lines


def test_summary_orders_by_weight_and_puts_not_allowed_first(tmp_path: Path) -> None:
    from regconform.reports.diff import CATEGORIES
    from regconform.reports.diff_render import collapse

    new = copy.deepcopy(OLD)
    first = new["checks"][0]
    first["outcome"] = "failed"
    first["facts"][1].update(status=405, errors=["UNSUPPORTED"])
    first["facts"][1]["headers"]["content-type"] = "text/plain"
    first["facts"][1]["headers"]["docker-content-digest"] = "sha256:bb"
    first["facts"].append({"request": "GET /v2/<repo>/tags/list?n=2&last=a", "status": 200})
    first["observations"]["tags"] = ["v2"]
    first["expectations"]["manifests.delete-by-tag"]["status"] = [202]
    summary = collapse(compare(OLD, new))
    assert [g.category for g in summary] == list(CATEGORIES[:4]) + list(CATEGORIES[5:])  # no body shape recorded
    assert summary[3].signature == ("exchanges from GET /v2/<repo>/tags/list?n&last on: none → "
                                    "[1] GET /v2/<repo>/tags/list?n&last → 200")
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\ncheck = "*test_delete"\nkind = "outcome"\nreason = "known"\n')
    allowed = collapse(compare(OLD, new, load_allow_list(allow)))
    assert (allowed[-1].category, allowed[-1].allowed_by) == ("outcome", "known")
    assert all(g.allowed_by is None for g in allowed[:-1])


def test_allow_rule_values_and_request_shapes(tmp_path: Path) -> None:
    old, new = many_checks(3, "application/json; charset=utf-8"), many_checks(3, "text/html", 202)
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\ncheck = "*"\nkind = "header"\nwhere = "content-type"\nold = "*charset=utf-8"\n'
                     'new = "application/json"\nreason = "charset"\n'
                     '[[allow]]\ncheck = "*"\nkind = "status"\nwhere = "DELETE /v2/<repo>/manifests/<tag>"\n'
                     'old = "400"\nnew = "202"\nreason = "untag"\n')
    found = compare(old, new, load_allow_list(allow))
    assert {(c.kind, c.allowed_by) for c in found} == {("status", "untag"), ("header", None)}  # text/html: not charset


def test_request_shape() -> None:
    from regconform.reports.diff import request_shape

    assert request_shape("DELETE /v2/<repo>/manifests/v1") == "DELETE /v2/<repo>/manifests/<tag>"
    assert request_shape("GET /v2/<repo>/blobs/sha256:ab") == "GET /v2/<repo>/blobs/<digest>"
    assert request_shape("PATCH /v2/<repo>/blobs/uploads/<uuid>?_state=<state>") == \
        "PATCH /v2/<repo>/blobs/uploads/<uuid>?_state"
    assert request_shape("GET /v2/<repo>/tags/list?n=3&last=page-02") == "GET /v2/<repo>/tags/list?n&last"


def test_every_format_shares_the_structure_and_hostile_values_stay_one_escaped_line() -> None:
    from regconform.reports.diff_render import render

    new = copy.deepcopy(OLD)
    new["checks"][0]["observations"]["tags"] = "<script>alert(1)</script>\n\x1b[31mred\r\n" + "x" * 500
    new["checks"][0]["facts"][1]["status"] = 405
    changes = compare(OLD, new)
    summary = render(changes, OLD, new, "summary")
    line = next(li for li in summary.splitlines() if "observation of tags" in li)
    assert "\\x1b" in line and len(line) < 400 and "\x1b" not in summary
    text = render(changes, OLD, new, "text")
    assert text.startswith(summary) and "\ndetail: 2 change(s), 2 not allowed" in text
    md = render(changes, OLD, new, "markdown")
    assert md.index("#### Not allowed (2)") < md.index("<details><summary>Every change, per check (2)</summary>")
    assert "❌ **status** `status of DELETE /v2/<repo>/manifests/<tag>: 400 → 405` — ×1 exchange in 1 check" in md
    html = render(changes, OLD, new, "html")
    assert html.index('class="summary"') < html.index("Every change, per check")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('<tr class="distinct"') == 2 and html.count('<tr class="change"') == 2


def test_a_shipped_allow_list_by_name(files: tuple[Path, Path]) -> None:
    from regconform.resources import ALLOWLISTS

    rules = load_allow_list(Path("distribution-2.8-to-3.1"))
    assert rules == load_allow_list(ALLOWLISTS / "distribution-2.8-to-3.1.toml") and len(rules) >= 12
    assert all(rule.reason for rule in rules)  # every known change names its source
    proc = regconform("diff", str(files[0]), str(files[1]), "--allow", "no-such-list")
    assert proc.returncode == 2 and "allow-list no-such-list: no such file" in proc.stderr
