"""The run's reports, all made from one list of check records.

- `behaviour.json`: one record per check with the facts that define behaviour, normalised so two
  runs diff cleanly (no ports, run namespaces, upload ids, timestamps or durations);
- `exchanges.json`: every exchange of every check in full (redacted), with the run's details;
- `report.html` (self-contained) and `summary.md`, rendered from `templates/`;
- Allure: labels, parameters and one step per exchange while checks run, `environment.properties`
  at the end (written by the controller, never by an xdist worker).

Credentials never reach any of them: the client redacts `Authorization` and token bodies before
an exchange is recorded, everything here starts from recorded exchanges, and every file's text
passes the secret scrubber (registry/scrub.py) once more as it is written. Whatever a registry
sent, the writers survive it: records are cut to limits.MAX_JSON_DEPTH before anything walks them,
summary.md escapes every value for Markdown and for HTML inside Markdown, report.html autoescapes.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from regconform import __version__, resources
from regconform.clients.matrix import client_matrix, client_versions
from regconform.errors import SetupError
from regconform.profiles import Profile
from regconform.registry import limits
from regconform.registry.exchange import Exchange
from regconform.registry.names import repository_of
from regconform.registry.scrub import scrub, scrub_value, terminal_safe

SCHEMA_VERSION = 2
OUTCOMES = ("failed", "error", "unsupported", "skipped", "passed")  # report order: what needs reading first
TEMPLATES = resources.TEMPLATES

# -- Allure (called from the plugin inside the check's own process) ------------------------------


def allure_labels(workflow: str, title: str, variant: str | None, spec: str | None, registry: str, profile: str) -> None:
    """Epic = workflow, feature = behaviour, story = the behaviour per variant (docker/oci); the target
    and profile are parameters, so runs against different registries or profiles get different
    history ids and never merge in Allure."""
    import allure

    allure.dynamic.epic(workflow)
    allure.dynamic.feature(title)
    allure.dynamic.story(f"{title} [{variant}]" if variant else title)
    if spec:
        allure.dynamic.label("spec", spec)
    allure.dynamic.parameter("registry", registry)
    allure.dynamic.parameter("profile", profile)


def allure_title(title: str, variant: str | None) -> None:
    import allure

    allure.dynamic.title(f"{title} [{variant}]" if variant else title)


def exchange_title(ex: Exchange) -> str:
    codes = " ".join(ex.error_codes())
    return f"{ex.method} {ex.path} → {ex.status}{' ' + codes if codes else ''}"


def request_text(ex: Exchange) -> str:
    lines = [f"{ex.method} {ex.url}", *(f"{k}: {v}" for k, v in sorted(ex.request_headers.items()))]
    return "\n".join(lines) + "\n\n" + (ex.request_excerpt or f"<{ex.request_body_size} bytes of body>") + "\n"


def response_text(ex: Exchange) -> str:
    lines = [f"{ex.status}", *(f"{k}: {v}" for k, v in sorted(ex.response_headers.items()))]
    return "\n".join(lines) + "\n\n" + (ex.response_excerpt or f"<{ex.response_body_size} bytes of body>") + "\n"


def allure_exchange_step(ex: Exchange) -> None:
    """One Allure step per HTTP exchange, request and response (already redacted) attached."""
    import allure

    with allure.step(exchange_title(ex)):
        allure.attach(request_text(ex), name="request", attachment_type=allure.attachment_type.TEXT)
        allure.attach(response_text(ex), name="response", attachment_type=allure.attachment_type.TEXT)


def write_allure_environment(allure_dir: Path, target: dict[str, Any]) -> Path:
    props = {
        "registry": target.get("registry", ""),
        "registry.target": target.get("target", ""),
        # Embedded registries get a new port per run (and per xdist worker): only an external URL says something.
        "registry.url": target.get("url", "") if target.get("backend") == "external" else "(embedded)",
        "Docker-Distribution-Api-Version": target.get("api_version") or "(not sent)",
        "profile": target.get("profile", ""),
        "backend": target.get("backend", ""),
        "harness": target.get("harness", __version__),
        **{f"client.{name}": version for name, version in (target.get("clients") or {}).items()},
    }
    allure_dir.mkdir(parents=True, exist_ok=True)
    path = allure_dir / "environment.properties"
    path.write_text("".join(f"{_prop_escape(k, True)}={_prop_escape(str(v))}\n" for k, v in props.items()))
    return path


def _prop_escape(text: str, key: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return re.sub(r"([=: ])", r"\\\1", text) if key else text


# -- normalisation: what differs between two runs of the same registry is not behaviour -----------

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_STATE = re.compile(r"_state=[^&\s\"'>]+")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


class Normaliser:
    """Replaces a check's run-specific names with placeholders, the same way in every run.

    Repositories the check touched become `<repo>`, `<repo-2>`, ... in order of first use; any
    other repository under the run's namespace becomes `<ns>/<other>`; origins (host:port) become
    `<origin>`; upload ids, `_state` tokens and timestamps become placeholders too.
    """

    def __init__(self, namespace: str | None, exchanges: Iterable[dict[str, Any]]) -> None:
        repos: list[str] = []
        for ex in exchanges:
            url = ex.get("url", "")
            for name in [repository_of(url)[0], *parse_qs(urlsplit(url).query).get("from", [])]:
                if name and name not in repos:
                    repos.append(name)
        own = [(name, "<repo>" if i == 0 else f"<repo-{i + 1}>") for i, name in enumerate(repos)]
        own += [(quote(name, safe=""), label) for name, label in own]
        # Longest first, so a repository named after another plus a suffix is replaced whole.
        self.own = sorted(own, key=lambda r: len(r[0]), reverse=True)
        self.namespaces = [namespace, quote(namespace, safe="")] if namespace else []
        # Other checks' repositories (e.g. in a catalog page) depend on which checks ran before, on
        # which worker: only "some other repository of this run" is stable.
        alternatives = "|".join(re.escape(n) for n in self.namespaces)
        self.foreign = re.compile(rf"(?:{alternatives})(?:(?:/|%2F)(?!(?:blobs|manifests|tags|referrers)/)[a-z0-9._-]+)+") if namespace else None

    def text(self, value: str) -> str:
        for old, new in self.own:
            value = value.replace(old, new)
        if self.foreign is not None:
            value = self.foreign.sub("<ns>/<other>", value)
        value = _ORIGIN.sub("<origin>", value)
        value = _STATE.sub("_state=<state>", value)
        value = _UUID.sub("<uuid>", value)
        return _TIME.sub("<time>", value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value


# -- behaviour.json ----------------------------------------------------------------------------


def check_record(raw: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """The stable, diffable record of one check (the raw record also carries its exchanges)."""
    norm = Normaliser(namespace, raw.get("exchanges", []))
    return {
        "id": raw["id"],
        "workflow": raw["workflow"],
        "spec": raw.get("spec"),
        "title": raw.get("title") or raw["id"],
        "outcome": raw["outcome"],
        "reason": norm.text(raw["reason"]) if raw.get("reason") else None,
        "phase": raw.get("phase", "call"),
        "expectations": raw.get("expectations", {}),
        "observations": norm.value(raw.get("observations", {})),
        "facts": [_stable_fact(f) for f in norm.value(raw.get("facts", []))],
    }


_CONTENT = re.compile(r"^(GET|HEAD) /v2/.+/(blobs|manifests)/")


def _stable_fact(fact: dict[str, Any]) -> dict[str, Any]:
    """Content-Length is behaviour for blobs and manifests served (their bytes are fixed) and for
    empty answers; other bodies (errors, tag lists, catalogs) name the run's repositories, so
    their length changes from run to run and is kept as `<n>`."""
    headers = fact.get("headers", {})
    length = headers.get("content-length")
    if length in (None, "0") or (_CONTENT.match(fact["request"]) and fact.get("status", 0) < 400):
        return fact
    return {**fact, "headers": {**headers, "content-length": "<n>"}}


def api_version(records: list[dict[str, Any]]) -> str | None:
    """The Docker-Distribution-Api-Version the registry sent (first one seen)."""
    for rec in records:
        for ex in rec.get("exchanges", []):
            if value := ex.get("response_headers", {}).get("docker-distribution-api-version"):
                return str(value)
    return None


def stable_target(target: dict[str, Any], profile: Profile, version: str | None) -> dict[str, Any]:
    """What was tested, without what changes from run to run (port, run id, namespace)."""
    return {
        "registry": target.get("registry") or target.get("target") or "",
        "target": target.get("target", ""),
        "backend": target.get("backend", ""),
        "registry_env": dict(sorted((target.get("registry_env") or {}).items())),
        "profile": profile.name,
        "api_version": version,
    }


def count_outcomes(checks: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rec in checks:
        counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
    return dict(sorted(counts.items()))


def per_workflow(checks: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    names = sorted({c["workflow"] for c in checks})
    return {name: count_outcomes(c for c in checks if c["workflow"] == name) for name in names}


def behaviour_document(records: list[dict[str, Any]], target: dict[str, Any], profile: Profile,
                       run: dict[str, Any] | None = None) -> dict[str, Any]:
    namespace = target.get("namespace")
    checks = sorted((check_record(r, namespace) for r in records), key=lambda c: c["id"])
    partial = {"run": run} if run else {}  # only a partial run says so: complete runs diff as before
    return {
        **partial,
        "schema": SCHEMA_VERSION,
        "harness": __version__,
        "profile": profile.name,
        "target": stable_target(target, profile, api_version(records)),
        "summary": count_outcomes(checks),  # {outcome: n}, as readers of earlier files expect
        "workflows": per_workflow(checks),
        "checks": checks,
    }


def exchanges_document(records: list[dict[str, Any]], target: dict[str, Any]) -> dict[str, Any]:
    """Full detail, run-specific by nature: kept out of behaviour.json so that one diffs cleanly."""
    return {
        "schema": SCHEMA_VERSION,
        "run": {k: target.get(k) for k in ("url", "target", "namespace", "run_id", "backend", "registry")},
        "checks": {r["id"]: r.get("exchanges", []) for r in sorted(records, key=lambda r: r["id"])},
    }


# -- human-readable reports ----------------------------------------------------------------------


def describe_expectation(exp: dict[str, Any]) -> str:
    """`202`, `404 MANIFEST_UNKNOWN`, `405 UNSUPPORTED (unsupported)`, then headers and check-specific values."""
    head = "/".join(map(str, exp["status"])) if exp.get("status") else "any status"
    if exp.get("error"):
        head += f" {exp['error']}"
    extras = [name if value == "*" else f"{name}: {value}" for name, value in exp.get("headers", {}).items()]
    extras += [f"{name}={json.dumps(value)}" for name, value in exp.get("values", {}).items()]
    text = ", ".join([head, *extras])
    return text if exp.get("supported", True) else f"{text} (unsupported)"


def describe_fact(fact: dict[str, Any]) -> str:
    codes = " ".join(fact.get("errors", []))
    return f"{fact['request']} → {fact['status']}{' ' + codes if codes else ''}"


def observed_lines(check: dict[str, Any]) -> list[str]:
    """What the check itself saw (fixture pushes left out): one line per exchange, repeats folded."""
    lines: list[str] = []
    for fact in check["facts"]:
        if fact.get("setup"):
            continue
        line = describe_fact(fact)
        if lines and lines[-1].split(" ×")[0] == line:
            count = int(lines[-1].split(" ×")[1]) + 1 if " ×" in lines[-1] else 2
            lines[-1] = f"{line} ×{count}"
        else:
            lines.append(line)
    for name, value in check["observations"].items():
        lines.append(f"{name} = {json.dumps(value)[:200]}")
    return lines


def _outcome_rank(outcome: str) -> int:
    return OUTCOMES.index(outcome) if outcome in OUTCOMES else len(OUTCOMES)


# What can start emphasis, code, a link or an image, strike text or split a table cell.
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]()!|~])")


def _one_line(value: Any) -> str:
    return " ".join(terminal_safe(str(value)).split())


def markdown_text(value: Any) -> str:
    """Any value as inert Markdown text: one line (a newline cannot end a table row), HTML escaped
    (`<script>` and `<img onerror>` stay text), the punctuation of emphasis, code, links and tables
    backslash-escaped (a backtick cannot close code, `|` cannot split a cell, `](javascript:` makes no link)."""
    return html.escape(_MD_PUNCTUATION.sub(r"\\\1", _one_line(value)), quote=False)


def markdown_code(value: Any) -> str:
    """Any value as one inline code span: fenced by more backticks than it holds (it cannot close early);
    HTML inside code is text. Not for table cells (use markdown_text there)."""
    text = _one_line(value)
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html.j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["expectation"] = describe_expectation
    env.filters["fact"] = describe_fact
    env.filters["md"] = markdown_text
    env.filters["mdcode"] = markdown_code
    env.globals["clients_matrix"] = client_matrix
    return env


def render_context(doc: dict[str, Any], exchanges: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    checks = sorted(doc["checks"], key=lambda c: (_outcome_rank(c["outcome"]), c["workflow"], c["id"]))
    rows = [{**c, "observed": observed_lines(c)} for c in checks]
    failing = [{**c, "exchanges": exchanges.get(c["id"], [])} for c in checks if c["outcome"] in ("failed", "error")]
    return {
        "doc": doc,
        "rows": rows,
        "failing": failing,
        "unsupported": [c for c in checks if c["outcome"] == "unsupported"],
        "skipped": [c for c in checks if c["outcome"] == "skipped"],
        "outcomes": OUTCOMES,
        "workflows": sorted(doc["workflows"]),
    }


def render_html(doc: dict[str, Any], exchanges: dict[str, list[dict[str, Any]]]) -> str:
    return _environment().get_template("report.html.j2").render(**render_context(doc, exchanges))


def render_summary(doc: dict[str, Any]) -> str:
    return _environment().get_template("summary.md.j2").render(**render_context(doc, {}))


REPORT_FILES = ("behaviour.json", "exchanges.json", "report.html", "summary.md")


def check_report_dir(report_dir: Path) -> None:
    """--report-dir must be a directory the run can write its reports into: a SetupError line otherwise."""
    if report_dir.exists() and not report_dir.is_dir():
        raise SetupError(f"--report-dir {str(report_dir)!r} is a file, not a directory")
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        probe = report_dir / f".regconform-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        for name in REPORT_FILES:  # an immutable or read-only report of an earlier run
            if (report_dir / name).exists():
                with open(report_dir / name, "a"):
                    pass
    except OSError as exc:
        raise SetupError(f"--report-dir {str(report_dir)!r}: the reports cannot be written there "
                         f"({exc.strerror or type(exc).__name__})") from None


def _write(path: Path, text: str) -> None:
    path.write_text(scrub(text), "utf-8")  # the last line of defence: no known secret is ever written


def write_reports(report_dir: Path, records: list[dict[str, Any]], target: dict[str, Any], profile: Profile,
                  allure_dir: Path | None = None, run: dict[str, Any] | None = None) -> Path:
    """Write every report of a run; returns the path of behaviour.json. `run`: how a partial run ended."""
    report_dir.mkdir(parents=True, exist_ok=True)
    # Whatever a registry sent, nothing below walks deeper than the limit (no RecursionError).
    records = [limits.bounded(scrub_value(r), limits.MAX_JSON_DEPTH + 8) for r in records]
    doc = behaviour_document(records, target, profile, run)
    full = exchanges_document(records, target)
    path = report_dir / "behaviour.json"
    _write(path, json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    _write(report_dir / "exchanges.json", json.dumps(full, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    _write(report_dir / "report.html", render_html(doc, full["checks"]))
    _write(report_dir / "summary.md", render_summary(doc))
    if allure_dir is not None:
        write_allure_environment(allure_dir, {**target, "profile": profile.name, "api_version": doc["target"]["api_version"],
                                              "clients": client_versions(doc["checks"])})
    return path
