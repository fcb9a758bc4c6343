"""Writing the run's reports. behaviour.json is the record every other report is made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regconform import __version__
from regconform.profiles import Profile

SCHEMA_VERSION = 1


def behaviour_document(records: list[dict[str, Any]], target: dict[str, Any], profile: Profile) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
    return {
        "schema": SCHEMA_VERSION,
        "harness": __version__,
        "profile": profile.name,
        "target": target,
        "summary": dict(sorted(counts.items())),
        "checks": records,
    }


def write_reports(report_dir: Path, records: list[dict[str, Any]], target: dict[str, Any], profile: Profile) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "behaviour.json"
    doc = behaviour_document(records, target, profile)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
