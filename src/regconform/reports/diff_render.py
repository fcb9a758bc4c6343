"""A behaviour diff as a person reads it: identical changes collapsed into one counted line, ordered by
weight, the summary of distinct changes (not allowed first) heading every format, then the detail per
workflow and check. Text here; Markdown and HTML from templates/diff.*.j2, with the same structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regconform.reports.diff import CATEGORIES, Change, blocking

EXAMPLES = 2
ALLOWED_SHOWN = 2  # text summary: the heaviest lines of each allow-list reason (all of them in the detail)
SUMMARY_LINES = 60  # ... while the summary fits one screen


@dataclass
class CheckChanges:
    check: str
    changes: list[Change]


@dataclass
class Collapsed:
    """Identical changes (one signature, one allow decision), counted: one line of the summary."""

    category: str
    signature: str
    allowed_by: str | None
    changes: list[Change]

    @property
    def checks(self) -> list[str]:
        return list(dict.fromkeys(c.check for c in self.changes))

    def count(self) -> str:
        """`×400 exchanges in 120 checks`, `×3 checks`, `1 check`."""
        checks = len(self.checks)
        in_checks = f"{checks} check{'s' if checks != 1 else ''}"
        if self.changes[0].per_exchange:
            n = len(self.changes)
            return f"×{n} exchange{'s' if n != 1 else ''} in {in_checks}"
        return f"×{in_checks}" if checks > 1 else in_checks

    def examples(self) -> list[str]:
        return [_short_check(c) for c in self.checks[:EXAMPLES]]

    def line(self) -> str:
        more = ", …" if len(self.checks) > EXAMPLES else ""
        return f"{self.signature} — {self.count()} (e.g. {', '.join(self.examples())}{more})"


def _short_check(check: str) -> str:
    """`suites/test_pull.py::test_x[docker]` → `test_pull::test_x[docker]`."""
    module, _, name = check.rpartition("::")
    return f"{module.rsplit('/', 1)[-1].removesuffix('.py')}::{name}" if module else name


def collapse(changes: list[Change]) -> list[Collapsed]:
    """Distinct changes, not allowed first, then by weight (CATEGORIES), then the most frequent first."""
    groups: dict[tuple[str, str | None], Collapsed] = {}
    for change in changes:
        key = (change.signature(), change.allowed_by)
        if key not in groups:
            groups[key] = Collapsed(change.category, key[0], change.allowed_by, [])
        groups[key].changes.append(change)
    return sorted(groups.values(), key=lambda g: (g.allowed_by is not None, CATEGORIES.index(g.category),
                                                  -len(g.checks), -len(g.changes), g.signature))


def by_reason(summary: list[Collapsed]) -> dict[str, list[Collapsed]]:
    """The allowed lines under their allow-list reason, reasons in the order of their heaviest line."""
    out: dict[str, list[Collapsed]] = {}
    for g in summary:
        if g.allowed_by is not None:
            out.setdefault(g.allowed_by, []).append(g)
    return out


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


FORMATS = ("text", "markdown", "html", "summary")


def render(changes: list[Change], old: dict[str, Any], new: dict[str, Any], fmt: str = "text") -> str:
    """`text`, `markdown`, `html`: the summary of distinct changes, then every change per check;
    `summary`: the text summary alone (one screen)."""
    summary = collapse(changes)
    context = {"groups": grouped(changes), "old": _side(old), "new": _side(new), "total": len(changes),
               "blocking": len(blocking(changes)), "summary": summary,
               "distinct_blocking": sum(1 for g in summary if g.allowed_by is None),
               "refused": [g for g in summary if g.allowed_by is None], "reasons": by_reason(summary)}
    if fmt in ("text", "summary"):
        return _render_text(**context, detail=fmt == "text")
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    from regconform.reports.writers import TEMPLATES

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html.j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    name = {"markdown": "diff.md.j2", "html": "diff.html.j2"}[fmt]
    return env.get_template(name).render(**context)


def _render_text(groups: dict[str, list[CheckChanges]], old: str, new: str, total: int, blocking: int,
                 summary: list[Collapsed], distinct_blocking: int, detail: bool, **_: object) -> str:
    lines = [f"behaviour diff: OLD {old}", f"                NEW {new}"]
    if not total:
        return "\n".join([*lines, "no behaviour changed"]) + "\n"
    lines.append(f"{len(summary)} distinct change(s), {distinct_blocking} not allowed "
                 f"({total} change(s), {blocking} not allowed)")
    refused = [g for g in summary if g.allowed_by is None]
    if refused:
        lines.append(f"\nNOT ALLOWED ({len(refused)}):")
        lines += [f"  ✗ [{g.category}] {g.line()}" for g in refused]
    reasons = by_reason(summary)
    if reasons:
        lines.append(f"\nallowed ({len(summary) - len(refused)}, {len(reasons)} reason(s)):")
    # One screen: two lines per reason while the summary fits SUMMARY_LINES, else the heaviest one.
    block = _allowed_block(reasons, ALLOWED_SHOWN)
    if len("\n".join(lines + block).splitlines()) > SUMMARY_LINES:
        block = _allowed_block(reasons, 1)
    lines += block
    if not detail:
        return "\n".join(lines) + "\n"
    lines.append(f"\ndetail: {total} change(s), {blocking} not allowed")
    for workflow, checks in groups.items():
        lines.append(f"\n[{workflow}]")
        for item in checks:
            lines.append(f"  {item.check}")
            for change in item.changes:
                mark = f"  (allowed: {change.allowed_by})" if change.allowed_by else ""
                lines.append(f"    - {change.describe()}{mark}")
    return "\n".join(lines) + "\n"


def _allowed_block(reasons: dict[str, list[Collapsed]], shown: int) -> list[str]:
    lines = []
    for reason, part in reasons.items():
        more = f" [+{len(part) - shown} more distinct change(s) in the detail]" if len(part) > shown else ""
        lines.append(f"  {reason}{more}")
        lines += [f"    ✓ [{g.category}] {g.line()}" for g in part[:shown]]
    return lines
