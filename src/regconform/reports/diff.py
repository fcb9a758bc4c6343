"""Behaviour diff of two runs (behaviour.json): what changed, check by check, grouped by workflow.

Used before an upgrade: run the suites against the old and the new registry, then
`regconform diff OLD.json NEW.json`. Every change is one `Change`; an allow-list (TOML) names the
changes that are expected, and the exit code is 1 when any other change remains.

Allow-list format (every field but `check` optional; globs as in fnmatch):

    [[allow]]
    check = "suites/test_content_management.py::test_delete_*"
    kind = ["outcome", "status", "error"]     # default: every kind
    where = "DELETE *"                        # the request line (or its shape), header or observation name
    old = "*charset*"                         # the old and new value as shown (globs); default any
    new = "application/json"
    reason = "deletion is disabled on the new registry"

A diff a person reads: identical changes (same kind, same request shape, same old and new value)
collapse into one line with a count and a few examples ("×400 exchanges in 120 checks"), ordered
by weight (outcome, status, error code, exchanges made, body shape, header presence, header value,
observation, profile expectation); the summary of distinct changes, not allowed first, heads every
format, and the full detail per workflow and check follows (diff_render.py).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

KINDS = ("added", "removed", "outcome", "status", "error", "header", "exchange", "body", "observation", "expectation")
# Weight order of the summary: what a change means for a client, most serious first.
CATEGORIES = ("outcome", "status", "error code", "exchanges made", "body shape", "header presence", "header value",
              "observation", "profile expectation")
_CATEGORY_OF = {"added": "outcome", "removed": "outcome", "outcome": "outcome", "status": "status",
                "error": "error code", "exchange": "exchanges made", "body": "body shape",
                "observation": "observation", "expectation": "profile expectation"}


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

    @property
    def category(self) -> str:
        if self.kind == "header":
            return "header presence" if self.old is None or self.new is None else "header value"
        return _CATEGORY_OF[self.kind]

    @property
    def per_exchange(self) -> bool:
        return self.kind in ("status", "error", "header", "body")

    def signature(self) -> str:
        """The change without where it was seen: identical signatures collapse into one summary line
        (one line: values bounded, control characters escaped)."""
        old, new = one_line(_show(self.old)), one_line(_show(self.new))
        if self.kind in ("added", "removed", "outcome"):
            return self.describe()
        if self.kind == "header":
            if self.old is None or self.new is None:
                return f"header {self.where}: {'absent → present' if self.old is None else 'present → absent'}" + (
                    f" ({new})" if self.old is None else f" (was {old})")
            return f"header {self.where}: {old} → {new}"
        if self.kind == "exchange":
            return f"exchanges from {request_shape(self.where)} on: {_shapes(self.old)} → {_shapes(self.new)}"
        return f"{self.kind} of {request_shape(self.where) if self.per_exchange else self.where}: {old} → {new}"

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


_REF = re.compile(r"/(manifests|blobs|referrers)/(?!uploads/)([^/?\s]+)")
_QUERY = re.compile(r"\?(\S*)")


def request_shape(request: str) -> str:
    """`DELETE /v2/<repo>/manifests/v1` → `DELETE /v2/<repo>/manifests/<tag>`; query values dropped
    (`?n=2&last=b` → `?n&last`): the requests of different checks that do the same thing match."""
    def ref(m: re.Match[str]) -> str:
        return f"/{m[1]}/{'<digest>' if ':' in m[2] or m[2].startswith('<') else '<tag>'}"

    def query(m: re.Match[str]) -> str:
        return "?" + "&".join(part.split("=", 1)[0] for part in m[1].split("&") if part)

    return _QUERY.sub(query, _REF.sub(ref, request))


def _shapes(value: list[str] | None) -> str:
    """Exchange lines by request shape, in order, repeats folded: bounded, comparable across checks."""
    if not value:
        return "none"
    shapes: list[str] = []
    for line in value:
        shape = request_shape(line)
        if not shapes or shapes[-1] != shape:
            shapes.append(shape)
    more = f" … and {len(shapes) - 2} more" if len(shapes) > 2 else ""
    return f"[{len(value)}] " + "; ".join(shapes[:2]) + more


SUMMARY_VALUE = 120


def one_line(text: str, limit: int = SUMMARY_VALUE) -> str:
    """A value for the summary: whitespace runs folded, control characters escaped, at most `limit` characters."""
    folded = " ".join(text.split())
    folded = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in folded)
    return folded if len(folded) <= limit else folded[:limit - 1] + "…"


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
    from regconform.reports.writers import SCHEMA_VERSION

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
    old: str = "*"
    new: str = "*"

    def permits(self, change: Change) -> bool:
        return (fnmatch.fnmatchcase(change.check, self.check)
                and (not self.kinds or change.kind in self.kinds)
                and (fnmatch.fnmatchcase(change.where, self.where)
                     or fnmatch.fnmatchcase(request_shape(change.where), self.where))
                and fnmatch.fnmatchcase(_show(change.old), self.old)
                and fnmatch.fnmatchcase(_show(change.new), self.new))

    def label(self) -> str:
        return self.reason or f"allow {self.check}"


def load_allow_list(path: Path) -> list[AllowRule]:
    """A TOML allow-list: a path, or the name of a shipped one (`distribution-2.8-to-3.1`)."""
    from regconform.resources import ALLOWLISTS

    if not path.exists() and "/" not in str(path) and (ALLOWLISTS / f"{path}.toml").is_file():
        path = ALLOWLISTS / f"{path}.toml"
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
        rules.append(AllowRule(raw["check"], tuple(kinds), str(raw.get("where", "*")), str(raw.get("reason", "")),
                               str(raw.get("old", "*")), str(raw.get("new", "*"))))
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
        if _without_note(exp_a[key]) != _without_note(exp_b[key]):  # a reworded note is no expectation change
            out.append(Change(cid, wf, "expectation", key, exp_a.get(key), exp_b.get(key)))
    return out


def _without_note(expectation: Any) -> Any:
    return {k: v for k, v in expectation.items() if k != "note"} if isinstance(expectation, dict) else expectation


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
            if fa.get("body") != fb.get("body"):  # the shape of a JSON answer, where the record has it
                out.append(Change(cid, wf, "body", req, fa.get("body"), fb.get("body")))
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


def diff_files(old_path: Path, new_path: Path, allow_path: Path | None = None) -> tuple[list[Change], dict[str, Any], dict[str, Any]]:
    old, new = load_behaviour(old_path), load_behaviour(new_path)
    rules = load_allow_list(allow_path) if allow_path else []
    return compare(old, new, rules), old, new
