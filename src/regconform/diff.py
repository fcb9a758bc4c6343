"""Behaviour diff of two runs (behaviour.json): what changed, check by check, grouped by workflow.

Used before an upgrade: run the suites against the old and the new registry, then
`regconform diff OLD.json NEW.json`. Every change is one `Change`; an allow-list (TOML) names the
changes that are expected, and the exit code is 1 when any other change remains.

Allow-list format (every field but `check` optional; globs as in fnmatch):

    [[allow]]
    check = "suites/test_content_management.py::test_delete_*"
    kind = ["outcome", "status", "error"]     # default: every kind
    where = "DELETE *"                        # the request line, header or observation name
    reason = "deletion is disabled on the new registry"
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

KINDS = ("added", "removed", "outcome", "status", "error", "header", "exchange", "observation", "expectation")


class DiffInputError(Exception):
    """A behaviour file or allow-list that cannot be read (one line, for the CLI)."""


@dataclass(frozen=True)
class Change:
    """One behaviour change of one check. `where`: the request line, header, observation or profile key."""

    check: str
    workflow: str
    kind: str
    where: str
    old: Any
    new: Any
    request: str = ""  # for header changes: the request whose answer carried the header
    allowed_by: str | None = None

    def describe(self) -> str:
        """One line, e.g. `status of DELETE /v2/<repo>/manifests/v1: 400 → 405`."""
        old, new = _show(self.old), _show(self.new)
        if self.kind == "added":
            return f"new check (outcome {new})"
        if self.kind == "removed":
            return f"check no longer run (was {old})"
        if self.kind == "outcome":
            note = ""
            if {self.old, self.new} == {"passed", "unsupported"}:
                note = " (supported → unsupported)" if self.new == "unsupported" else " (unsupported → supported)"
            return f"outcome: {old} → {new}{note}"
        if self.kind == "header":
            presence = ""
            if self.old is None or self.new is None:
                presence = "absent → present: " if self.old is None else "present → absent: "
            return f"header {self.where} on {self.request}: {presence}{old} → {new}"
        if self.kind == "exchange":
            return f"exchanges from {self.where}: {_lines(self.old)} → {_lines(self.new)}"
        return f"{self.kind} of {self.where}: {old} → {new}"


def _lines(value: list[str] | None, limit: int = 3) -> str:
    """A bounded list of exchanges: a check that stopped early has dozens fewer."""
    if not value:
        return "none"
    more = f" … and {len(value) - limit} more" if len(value) > limit else ""
    return f"[{len(value)}] " + "; ".join(value[:limit]) + more


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "none"
    return json.dumps(value, sort_keys=True)


# -- input ---------------------------------------------------------------------------------------


def load_behaviour(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DiffInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffInputError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DiffInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise DiffInputError(f"{path}: not a regconform behaviour.json (no 'checks' list)")
    from regconform.report import SCHEMA_VERSION

    if doc.get("schema") != SCHEMA_VERSION:
        raise DiffInputError(f"{path}: behaviour.json schema {doc.get('schema')!r}; this regconform reads schema {SCHEMA_VERSION}")
    for i, check in enumerate(doc["checks"]):
        if not isinstance(check, dict) or not all(isinstance(check.get(k), str) for k in ("id", "workflow", "outcome")):
            raise DiffInputError(f"{path}: check #{i} lacks id, workflow or outcome")
    return doc


@dataclass(frozen=True)
class AllowRule:
    check: str
    kinds: tuple[str, ...] = ()
    where: str = "*"
    reason: str = ""

    def permits(self, change: Change) -> bool:
        return (fnmatch.fnmatchcase(change.check, self.check)
                and (not self.kinds or change.kind in self.kinds)
                and fnmatch.fnmatchcase(change.where, self.where))

    def label(self) -> str:
        return self.reason or f"allow {self.check}"


def load_allow_list(path: Path) -> list[AllowRule]:
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DiffInputError(f"allow-list {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DiffInputError(f"allow-list {path}: not valid TOML ({exc})") from None
    rules = []
    for i, raw in enumerate(doc.get("allow", [])):
        if not isinstance(raw, dict) or not isinstance(raw.get("check"), str):
            raise DiffInputError(f"allow-list {path}: [[allow]] #{i + 1} needs check = \"<glob on the check id>\"")
        kinds = raw.get("kind", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if unknown := [k for k in kinds if k not in KINDS]:
            raise DiffInputError(f"allow-list {path}: [[allow]] #{i + 1}: unknown kind {unknown[0]!r} (known: {', '.join(KINDS)})")
        rules.append(AllowRule(raw["check"], tuple(kinds), str(raw.get("where", "*")), str(raw.get("reason", ""))))
    return rules


# -- comparison ----------------------------------------------------------------------------------


def compare(old: dict[str, Any], new: dict[str, Any], allow: list[AllowRule] | None = None) -> list[Change]:
    """Every behaviour change from `old` to `new`, ordered by workflow, check and position."""
    before = {c["id"]: c for c in old["checks"]}
    after = {c["id"]: c for c in new["checks"]}
    changes: list[Change] = []
    for cid in sorted(before.keys() | after.keys()):
        a, b = before.get(cid), after.get(cid)
        if a is None:
            changes.append(Change(cid, b["workflow"], "added", "", None, b["outcome"]))
        elif b is None:
            changes.append(Change(cid, a["workflow"], "removed", "", a["outcome"], None))
        else:
            changes.extend(_compare_check(a, b))
    rules = allow or []
    out = []
    for change in changes:
        rule = next((r for r in rules if r.permits(change)), None)
        out.append(replace(change, allowed_by=rule.label()) if rule else change)
    return sorted(out, key=lambda c: (c.workflow, c.check))  # stable: keeps the order within a check


def _compare_check(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    cid, wf = b["id"], b["workflow"]
    out: list[Change] = []
    if a["outcome"] != b["outcome"]:
        out.append(Change(cid, wf, "outcome", "", a["outcome"], b["outcome"]))
    out.extend(_compare_facts(cid, wf, a.get("facts", []), b.get("facts", [])))
    obs_a, obs_b = a.get("observations", {}), b.get("observations", {})
    for name in sorted(obs_a.keys() | obs_b.keys()):
        if obs_a.get(name) != obs_b.get(name):
            out.append(Change(cid, wf, "observation", name, obs_a.get(name), obs_b.get(name)))
    exp_a, exp_b = a.get("expectations", {}), b.get("expectations", {})
    for key in sorted(exp_a.keys() & exp_b.keys()):  # a key only one side reached is no profile change
        if exp_a[key] != exp_b[key]:
            out.append(Change(cid, wf, "expectation", key, exp_a.get(key), exp_b.get(key)))
    return out


def _compare_facts(cid: str, wf: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    """Exchanges are paired by request line, in order; unpaired ones are one `exchange` change per run of them."""
    out: list[Change] = []
    matcher = difflib.SequenceMatcher(None, [f["request"] for f in old], [f["request"] for f in new], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            gone = [_fact_line(f) for f in old[i1:i2]]
            came = [_fact_line(f) for f in new[j1:j2]]
            where = (old[i1:i2] or new[j1:j2])[0]["request"]
            out.append(Change(cid, wf, "exchange", where, gone or None, came or None))
            continue
        for fa, fb in zip(old[i1:i2], new[j1:j2], strict=True):
            req = fb["request"]
            if fa["status"] != fb["status"]:
                out.append(Change(cid, wf, "status", req, fa["status"], fb["status"]))
            if fa.get("errors", []) != fb.get("errors", []):
                out.append(Change(cid, wf, "error", req, fa.get("errors") or None, fb.get("errors") or None))
            ha, hb = fa.get("headers", {}), fb.get("headers", {})
            for name in sorted(ha.keys() | hb.keys()):
                if ha.get(name) != hb.get(name):
                    out.append(Change(cid, wf, "header", name, ha.get(name), hb.get(name), request=req))
    return out


def _fact_line(fact: dict[str, Any]) -> str:
    codes = " ".join(fact.get("errors", []))
    return f"{fact['request']} → {fact['status']}{' ' + codes if codes else ''}"


def blocking(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.allowed_by is None]


# -- output --------------------------------------------------------------------------------------


@dataclass
class CheckChanges:
    check: str
    changes: list[Change]


def grouped(changes: list[Change]) -> dict[str, list[CheckChanges]]:
    """workflow → checks (in order) → their changes."""
    out: dict[str, list[CheckChanges]] = {}
    for change in changes:
        checks = out.setdefault(change.workflow, [])
        if not checks or checks[-1].check != change.check:
            checks.append(CheckChanges(change.check, []))
        checks[-1].changes.append(change)
    return out


def _side(doc: dict[str, Any]) -> str:
    """`registry:2 REGISTRY_STORAGE_DELETE_ENABLED=false (profile distribution-2.8)`: the label names the env."""
    return f"{doc.get('target', {}).get('registry', '?')} (profile {doc.get('profile', '?')})"


def render(changes: list[Change], old: dict[str, Any], new: dict[str, Any], fmt: str = "text") -> str:
    context = {"groups": grouped(changes), "old": _side(old), "new": _side(new), "total": len(changes),
               "blocking": len(blocking(changes))}
    if fmt == "text":
        return _render_text(**context)
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    from regconform.report import TEMPLATES

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html.j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    name = {"markdown": "diff.md.j2", "html": "diff.html.j2"}[fmt]
    return env.get_template(name).render(**context)


def _render_text(groups: dict[str, list[CheckChanges]], old: str, new: str, total: int, blocking: int) -> str:
    lines = [f"behaviour diff: OLD {old}", f"                NEW {new}"]
    if not total:
        return "\n".join([*lines, "no behaviour changed"]) + "\n"
    lines.append(f"{total} change(s), {blocking} not allowed")
    for workflow, checks in groups.items():
        lines.append(f"\n[{workflow}]")
        for item in checks:
            lines.append(f"  {item.check}")
            for change in item.changes:
                mark = f"  (allowed: {change.allowed_by})" if change.allowed_by else ""
                lines.append(f"    - {change.describe()}{mark}")
    return "\n".join(lines) + "\n"


def diff_files(old_path: Path, new_path: Path, allow_path: Path | None = None) -> tuple[list[Change], dict[str, Any], dict[str, Any]]:
    old, new = load_behaviour(old_path), load_behaviour(new_path)
    rules = load_allow_list(allow_path) if allow_path else []
    return compare(old, new, rules), old, new
