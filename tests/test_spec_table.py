"""scripts/spec_table.py: the README table from behaviour.json (no registry needed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("spec_table", REPO / "scripts" / "spec_table.py")
spec_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(spec_table)  # type: ignore[union-attr]


def check(node: str, outcome: str = "passed", workflow: str = "pull", **extra: object) -> dict:
    return {"id": f"suites/test_pull.py::{node}", "workflow": workflow, "spec": "distribution-spec end-2",
            "title": "A title.", "outcome": outcome, "phase": "call", "reason": extra.pop("reason", None),
            "expectations": extra.pop("expectations", {"blobs.range": {"supported": True, "status": [206]}}),
            "observations": extra.pop("observations", {})}


DOC = {
    "profile": "distribution-2.8",
    "target": {"target": "container regconform/registry:2.8.2-debian"},
    "checks": [
        check("test_range[docker]"),
        check("test_range[oci]"),
        check("test_gone", outcome="unsupported",
              expectations={"referrers.list": {"supported": False, "status": [404], "note": "no referrers API"}}),
        check("test_broken", outcome="failed", reason="regconform.checks.Deviation: got 500 | boom"),
        check("test_matrix[oci-image]", observations={"accept_matrix": {"oci-image.tag.none": "404 MANIFEST_UNKNOWN"}}),
        check("test_mirror", workflow="mirror"),
    ],
}


def test_alike_variants_share_a_row_and_outcomes_read_plainly():
    rows = spec_table.rows(DOC, {"mirror"})
    by_variants = {r[4]: r for r in rows}
    assert by_variants["docker, oci"][3].startswith("as recorded — `blobs.range`: 206")
    assert any("**unsupported** — `referrers.list`: 404 — no referrers API" in r[3] for r in rows)
    assert any(r[3].startswith("**DEVIATION**: regconform.checks.Deviation: got 500") for r in rows)
    assert any("accept_matrix [tag.none: 404 MANIFEST_UNKNOWN]" in r[3] for r in rows)
    assert all(r[0] != "mirror" for r in rows)


def test_table_escapes_pipes_and_counts_outcomes():
    text = spec_table.table(DOC, {"mirror"})
    assert "(1 failed, 3 passed, 1 unsupported; workflows left out: mirror)" in text
    assert "got 500 \\| boom" in text
    assert text.count("\n| pull |") == 4


def test_write_replaces_only_its_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Before\nkeep\n\n{spec_table.HEADING}\n\nold table\n\n## After\nkeep too\n")
    behaviour = tmp_path / "behaviour.json"
    behaviour.write_text(json.dumps(DOC))
    assert spec_table.main([str(behaviour), "--write", str(readme), "--exclude-workflow", "mirror"]) == 0
    text = readme.read_text()
    assert "old table" not in text and "| workflow | check | spec section |" in text
    assert text.index("## Before") < text.index(spec_table.HEADING) < text.index("## After")
    assert "keep too" in text and text.count(spec_table.HEADING) == 1


def test_unreadable_behaviour_is_a_one_line_error(tmp_path, capsys):
    assert spec_table.main([str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith("spec_table: error: cannot read")
