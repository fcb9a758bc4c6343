"""The pushed-by × pulled-by matrix of the clients workflow, from the check records (for report.html, summary.md, Allure).

Each matrix check records `matrix_cell` ({pushed_by, pulled_by}) and `versions` ({client: version});
this module only arranges them. Nothing in it comes from the registry except outcomes.
"""

from __future__ import annotations

from typing import Any

SYMBOL = {"passed": "ok", "failed": "FAIL", "error": "ERROR", "skipped": "skip", "unsupported": "unsupported"}


def client_matrix(checks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """{rows, columns, cells: {(row, column): {outcome, id}}, versions} or None when no matrix check ran."""
    rows: list[str] = []
    columns: list[str] = []
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    versions: dict[str, str] = {}
    for check in checks:
        obs = check.get("observations") or {}
        cell = obs.get("matrix_cell")
        versions.update({str(k): str(v) for k, v in (obs.get("versions") or {}).items() if v and v != "?"})
        if not isinstance(cell, dict):
            continue
        row, column = str(cell.get("pushed_by")), str(cell.get("pulled_by"))
        if row not in rows:
            rows.append(row)
        if column not in columns:
            columns.append(column)
        cells[(row, column)] = {"outcome": check["outcome"], "id": check["id"],
                                "symbol": SYMBOL.get(check["outcome"], check["outcome"])}
    if not cells:
        return None
    return {"rows": rows, "columns": columns, "cells": cells, "versions": dict(sorted(versions.items()))}


def client_versions(checks: list[dict[str, Any]]) -> dict[str, str]:
    found = client_matrix(checks)
    return found["versions"] if found else {}


__all__ = ["client_matrix", "client_versions"]
