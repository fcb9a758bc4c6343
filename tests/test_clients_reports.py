"""The clients matrix in report.html and summary.md, and client versions in Allure's environment.properties.

Built from check records as a clients run writes them (no registry needed): a failed cell shows as
FAIL in its row and column, versions come from the records, and a run without the clients workflow
shows no matrix at all.
"""

from __future__ import annotations

from regconform.clients.matrix import client_matrix
from regconform.profiles import load_profile
from regconform.reports.writers import render_html, render_summary, write_reports


def cell(pushed: str, pulled: str, outcome: str = "passed") -> dict:
    return {"id": f"suites/test_clients.py::test_client_pulls[{pushed}-{pulled}]", "workflow": "clients",
            "title": "One matrix cell.", "outcome": outcome, "phase": "call", "spec": "interop",
            "reason": "regconform.checks.Deviation: ctr pull failed" if outcome == "failed" else None,
            "expectations": {}, "exchanges": [],
            "observations": {"matrix_cell": {"pushed_by": pushed, "pulled_by": pulled},
                             "versions": {"docker": "docker 28.2.2", "ctr": "ctr 1.6.20"}}}


RECORDS = [cell("docker-image", "docker"), cell("docker-image", "ctr", "failed"), cell("ctr-index", "docker")]
TARGET = {"registry": "registry:2", "target": "container", "backend": "docker"}


def test_matrix_rows_columns_and_versions():
    m = client_matrix(RECORDS)
    assert m["rows"] == ["docker-image", "ctr-index"] and m["columns"] == ["docker", "ctr"]
    assert m["cells"][("docker-image", "ctr")]["symbol"] == "FAIL"
    assert ("ctr-index", "ctr") not in m["cells"]
    assert m["versions"] == {"ctr": "ctr 1.6.20", "docker": "docker 28.2.2"}
    assert client_matrix([{**RECORDS[0], "observations": {}}]) is None


def test_reports_show_the_matrix_and_allure_the_versions(tmp_path):
    profile = load_profile("distribution-2.8")
    write_reports(tmp_path / "r", RECORDS, TARGET, profile, allure_dir=tmp_path / "allure")
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "| pushed by \\ pulled by | docker | ctr |" in summary
    assert "| docker-image | ok | FAIL |" in summary
    assert "| ctr-index | ok |  |" in summary
    html = (tmp_path / "r" / "report.html").read_text()
    assert 'id="clients-matrix"' in html and '<span class="badge failed"' in html
    props = (tmp_path / "allure" / "environment.properties").read_text()
    assert "client.docker=docker 28.2.2\n" in props and "client.ctr=ctr 1.6.20\n" in props


def test_no_matrix_without_the_clients_workflow():
    from regconform.reports.writers import behaviour_document

    other = [{**RECORDS[0], "observations": {}, "workflow": "pull", "id": "suites/test_pull.py::test_x"}]
    doc = behaviour_document(other, TARGET, load_profile("distribution-2.8"))
    assert "clients-matrix" not in render_html(doc, {})
    assert "pushed by" not in render_summary(doc)
