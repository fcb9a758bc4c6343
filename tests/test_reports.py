"""The reports of real runs against the embedded registry: every output present, behaviour.json
valid against its schema and stable from run to run, junit.xml lean, Allure labelled and stepped
per exchange, report.html self-contained, and no credential in any file of an authenticated run.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from reportruns import REPO, SUBSET, output, regconform, write_strict_profile

from regconform.reports.writers import Normaliser

SCHEMA = json.loads((REPO / "schemas" / "behaviour.schema.json").read_text())
OUTPUTS = ("behaviour.json", "exchanges.json", "junit.xml", "report.html", "summary.md",
           "allure-results/environment.properties")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def xdist_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deterministic subset on two xdist workers (records travel from the workers)."""
    out = tmp_path_factory.mktemp("xdist") / "reports"
    proc = regconform("run", "--report-dir", str(out), "-n", "2", "-k", SUBSET)
    assert proc.returncode == 0, output(proc)
    return out


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process, a profile under which the version check deviates (expects 201)."""
    base = tmp_path_factory.mktemp("failing")
    out = base / "reports"
    proc = regconform("run", "--report-dir", str(out), "--profile", str(write_strict_profile(base / "strict")),
                      "-k", SUBSET)
    assert proc.returncode == 1, output(proc)
    return out


def test_a_run_writes_every_output(xdist_run: Path) -> None:
    for name in OUTPUTS:
        assert (xdist_run / name).is_file(), name
    doc = load(xdist_run / "behaviour.json")
    assert doc["summary"] == {"passed": len(doc["checks"])} and len(doc["checks"]) >= 5
    assert {c["workflow"] for c in doc["checks"]} >= {"base", "content-discovery", "content-management"}


def test_behaviour_json_is_valid_against_its_schema(xdist_run: Path, failing_run: Path) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    validator.check_schema(SCHEMA)
    for run in (xdist_run, failing_run):
        errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(load(run / "behaviour.json"))]
        assert not errors, errors


def test_behaviour_json_records_what_each_check_saw(xdist_run: Path) -> None:
    checks = {c["id"].split("::")[-1]: c for c in load(xdist_run / "behaviour.json")["checks"]}
    tag = checks["test_delete_manifest_by_tag_is_rejected_and_deletes_nothing[docker]"]
    assert tag["workflow"] == "content-management" and tag["spec"].startswith("distribution-spec end-9")
    assert tag["expectations"]["manifests.delete-by-tag"] == {
        "error": "DIGEST_INVALID", "note": "2.8 deletes manifests by digest only", "status": [400], "supported": True}
    own = [f for f in tag["facts"] if not f.get("setup")]
    assert own[0] == {"request": "DELETE /v2/<repo>/manifests/v1", "status": 400, "errors": ["DIGEST_INVALID"],
                      "headers": {"content-length": "<n>", "content-type": "application/json; charset=utf-8",
                                  "docker-distribution-api-version": "registry/2.0"}}
    pushes = [f for f in tag["facts"] if f.get("setup")]
    assert pushes and all(f["request"].startswith(("HEAD", "POST", "PUT")) for f in pushes)
    blob_put = next(f for f in pushes if f["request"].startswith("PUT /v2/<repo>/blobs/uploads/"))
    assert blob_put["headers"]["location"].startswith("<origin>/v2/<repo>/blobs/sha256:")
    assert blob_put["headers"]["docker-content-digest"].startswith("sha256:")


def test_behaviour_json_holds_nothing_run_specific(xdist_run: Path) -> None:
    text = (xdist_run / "behaviour.json").read_text()
    run = load(xdist_run / "exchanges.json")["run"]
    assert run["namespace"] and run["namespace"] not in text
    assert run["url"].split("//")[1] not in text and "127.0.0.1" not in text
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
    assert "duration" not in text and "_state=<state>" in text and "/gw0/" not in text and "/master/" not in text
    # The full exchanges are kept, with the real names, in exchanges.json (one registry per worker).
    full = load(xdist_run / "exchanges.json")["checks"]
    assert all(ex["url"].startswith("http://127.0.0.1:") and f"/v2/{run['namespace']}/" in ex["url"]
               for exs in full.values() for ex in exs if ex["url"].split("/v2/")[1])


def test_exchanges_keep_the_manifests_sent_but_no_blob_bytes(xdist_run: Path) -> None:
    exchanges = [ex for exs in load(xdist_run / "exchanges.json")["checks"].values() for ex in exs]
    manifest_puts = [ex for ex in exchanges if ex["method"] == "PUT" and "/manifests/" in ex["url"]]
    blob_puts = [ex for ex in exchanges if ex["method"] == "PUT" and "/blobs/uploads/" in ex["url"]]
    assert manifest_puts and blob_puts
    assert all(json.loads(ex["request_excerpt"])["schemaVersion"] == 2 for ex in manifest_puts)
    assert all(ex["request_excerpt"] == "" and ex["request_body_size"] > 0 for ex in blob_puts)
    sent = [p.read_text() for p in (xdist_run / "allure-results").glob("*-attachment.txt")]
    assert any(a.startswith("PUT http://127.0.0.1:") and '"schemaVersion":2' in a for a in sent)


def test_two_runs_of_one_registry_diff_clean(xdist_run: Path, tmp_path: Path) -> None:
    """Same registry, other run (one process instead of two workers): `regconform diff` finds nothing."""
    proc = regconform("run", "--report-dir", str(tmp_path / "again"), "-k", SUBSET)
    assert proc.returncode == 0, output(proc)
    diff = regconform("diff", str(xdist_run / "behaviour.json"), str(tmp_path / "again" / "behaviour.json"))
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "no behaviour changed" in diff.stdout


def test_junit_xml_is_valid_and_carries_no_records(xdist_run: Path, failing_run: Path) -> None:
    for run in (xdist_run, failing_run):
        root = ET.parse(run / "junit.xml").getroot()
        cases = root.findall(".//testcase")
        assert len(cases) == len(load(run / "behaviour.json")["checks"])
        names = {p.get("name") for p in root.iter("property")}
        assert "regconform_record" not in names and "regconform" not in names
        assert (run / "junit.xml").stat().st_size < 40_000  # the records go to behaviour.json, not here
    failed = [c for c in ET.parse(failing_run / "junit.xml").getroot().findall(".//testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["test_api_version_check_answers_200_with_version_header"]


def test_allure_results_label_parameter_and_step_every_exchange(xdist_run: Path) -> None:
    allure_dir = xdist_run / "allure-results"
    results = [load(p) for p in allure_dir.glob("*-result.json")]
    checks = {c["id"]: c for c in load(xdist_run / "behaviour.json")["checks"]}
    assert len(results) == len(checks)
    for result in results:
        labels = {(lab["name"], lab["value"]) for lab in result["labels"]}
        params = {p["name"]: p["value"] for p in result["parameters"]}
        assert ("epic", "content-management") in labels or ("epic", "base") in labels or ("epic", "content-discovery") in labels
        assert any(name == "feature" for name, _ in labels) and any(name == "story" for name, _ in labels)
        assert params["registry"] == "'registry:2'" and params["profile"] == "'distribution-2.8'"
        module, name = result["fullName"].split("#")
        check = checks[f"{module.replace('.', '/')}.py::{name}{_variant(result)}"]
        own = [f for f in check["facts"] if not f.get("setup")]
        assert len(result["steps"]) == len(own), (result["name"], len(result["steps"]), len(own))
        for step, fact in zip(result["steps"], own, strict=True):
            assert step["name"].split(" → ")[1].split()[0] == str(fact["status"])
            names = [a["name"] for a in step["attachments"]]
            assert names == ["request", "response"]
            response = (allure_dir / step["attachments"][1]["source"]).read_text()
            assert response.startswith(f"{fact['status']}\n") and "docker-distribution-api-version: registry/2.0" in response
    props = dict(line.split("=", 1) for line in (allure_dir / "environment.properties").read_text().splitlines())
    assert props["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert props["profile"] == "distribution-2.8" and props["registry"] == "registry:2"
    assert props["harness"] and props["registry.target"].startswith("container ")


def _variant(result: dict) -> str:
    fmt = [p["value"].strip("'") for p in result["parameters"] if p["name"] == "fmt"]
    return f"[{fmt[0]}]" if fmt else ""


def test_report_html_is_self_contained_with_failing_checks_first(failing_run: Path) -> None:
    html = (failing_run / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script src" not in html and "@import" not in html
    rows = re.findall(r'<tr class="check" data-workflow="([^"]+)" data-outcome="([^"]+)">', html)
    checks = load(failing_run / "behaviour.json")["checks"]
    assert len(rows) == len(checks)
    assert rows[0] == ("base", "failed") and all(outcome == "passed" for _, outcome in rows[1:])
    card = html.split('<section class="card failed"', 1)[1].split("</section>", 1)[0]
    assert "GET /v2/ answers 200 and names the API version." in card
    assert "expected 201 [strict-base: base.api-version], got 200" in card
    assert "last exchange before the failure: GET http://127.0.0.1:" in card
    assert "docker-distribution-api-version: registry/2.0" in card


def test_summary_md_names_the_deviation(failing_run: Path) -> None:
    md = (failing_run / "summary.md").read_text()
    assert md.startswith("### regconform: `registry:2` against profile `strict-base`")
    assert "| base |" in md and "**Deviations**" in md
    assert "GET /v2/ answers 200 and names the API version." in md and "expected 201" in md
    assert len(md) < 4000


def test_normaliser_replaces_names_of_the_run() -> None:
    ns = "regconform-0123456789"
    own = f"{ns}/gw1/test-x-12"
    norm = Normaliser(ns, [{"url": f"http://127.0.0.1:41234/v2/{own}/blobs/uploads/?mount=sha256:aa&from={own}-src"}])
    assert norm.text(f"http://127.0.0.1:41234/v2/{own}/blobs/uploads/0c6f1e4c-3a4b-4d6e-9f00-123456789abc"
                     "?_state=abc-_=&digest=sha256:aa") == "<origin>/v2/<repo>/blobs/uploads/<uuid>?_state=<state>&digest=sha256:aa"
    assert norm.text(f"{own}-src and {own}") == "<repo-2> and <repo>"
    assert norm.text(f"</v2/_catalog?last={ns}%2Fmaster%2Ftest-y-3&n=2>") == "</v2/_catalog?last=<ns>/<other>&n=2>"
    assert norm.text('time="2026-11-27T07:03:43.742340938Z" ok') == 'time="<time>" ok'


@pytest.mark.selftest_slow
def test_no_credential_in_any_report_of_an_authenticated_run(tmp_path: Path) -> None:
    """Every suite against a registry requiring basic auth (htpasswd, bcrypt): neither the password
    nor base64(user:password) appears in any file of the report dir, Allure attachments included."""
    from authregistries import htpasswd_registry, leaked

    out = tmp_path / "reports"
    (tmp_path / "auth").mkdir()
    with htpasswd_registry(tmp_path / "auth") as reg:
        proc = regconform("run", "--registry-url", reg.url, "--username", reg.username, "--password-stdin",
                          "--report-dir", str(out), "-n", "2", stdin=reg.password + "\n")
        basic = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        secrets = [reg.password, basic]
    assert proc.returncode in (0, 1), output(proc)
    doc = load(out / "behaviour.json")
    assert sum(c["outcome"] == "passed" for c in doc["checks"]) >= 20, doc["summary"]
    # Credentials were sent (and redacted) on the exchanges and in the Allure attachments.
    assert '"authorization": "<redacted>"' in (out / "exchanges.json").read_text()
    attachments = [p.read_text() for p in (out / "allure-results").glob("*-attachment.txt")]
    assert any("authorization: <redacted>" in a for a in attachments)
    found = leaked(secrets, out, proc.stdout, proc.stderr)
    assert not found, found
    assert len(list(out.rglob("*"))) > 100
