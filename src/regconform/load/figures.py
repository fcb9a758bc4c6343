"""Everything of a load run that needs no Locust: the mix, endpoint names, what counts as an error,
percentiles, the report document (load.json), its HTML rendering and the comparison of two reports."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regconform.errors import SetupError

SCHEMA_VERSION = 1
OPERATIONS = ("pull", "push")
DEFAULT_MIX = "pull=80,push=20"
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
MAX_USERS = 1000
MAX_DURATION = 3600.0
# Per-user bound on operations: the run also stops by itself should the clock never run out.
MAX_OPERATIONS_PER_USER = 100_000
MB = 1_000_000


class LoadUsageError(SetupError):
    """A load option is malformed (exit code 2, one line)."""


def parse_mix(text: str) -> dict[str, int]:
    """`pull=80,push=20` → {"pull": 80, "push": 20}; weights are relative, at least one positive."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or name not in OPERATIONS or not weight.strip().isdigit():
            raise LoadUsageError(f"--mix {text!r}: expected operation=weight pairs with operations {', '.join(OPERATIONS)}, "
                                 "e.g. pull=80,push=20")
        mix[name] = int(weight)
    if not mix or sum(mix.values()) == 0:
        raise LoadUsageError(f"--mix {text!r}: no operation has a positive weight")
    return mix


_ENDPOINTS = [
    (re.compile(r"^/v2/$"), "/v2/"),
    (re.compile(r"^/v2/_catalog$"), "/v2/_catalog"),
    (re.compile(r"^/v2/.+/blobs/uploads/$"), "/v2/<name>/blobs/uploads/"),
    (re.compile(r"^/v2/.+/blobs/uploads/[^/]+$"), "/v2/<name>/blobs/uploads/<session>"),
    (re.compile(r"^/v2/.+/blobs/[a-z0-9+._-]+:[a-zA-Z0-9=_-]+$"), "/v2/<name>/blobs/<digest>"),
    (re.compile(r"^/v2/.+/manifests/[a-z0-9+._-]+:[a-zA-Z0-9=_-]+$"), "/v2/<name>/manifests/<digest>"),
    (re.compile(r"^/v2/.+/manifests/[^/]+$"), "/v2/<name>/manifests/<tag>"),
    (re.compile(r"^/v2/.+/tags/list$"), "/v2/<name>/tags/list"),
    (re.compile(r"^/v2/.+/referrers/[^/]+$"), "/v2/<name>/referrers/<digest>"),
]


def endpoint_of(path: str) -> str:
    """The API endpoint a request path belongs to, with names, digests and sessions as placeholders."""
    path = path.split("?", 1)[0]
    for pattern, name in _ENDPOINTS:
        if pattern.match(path):
            return name
    return "<other>"


def counts_as_error(method: str, endpoint: str, status: int) -> bool:
    """4xx/5xx, except the 404 of `HEAD blob` every pushing client uses to ask whether a blob exists."""
    if method == "HEAD" and endpoint == "/v2/<name>/blobs/<digest>" and status == 404:
        return False
    return status >= 400


def bucket_response_time(ms: float) -> float:
    """Locust's histogram key: 0.1 ms steps below 10 ms (loopback answers take about 1 ms; Locust's
    own whole-millisecond buckets would hide a 30 % rise), 2 significant digits above."""
    if ms < 10:
        return round(ms, 1)
    digits = -int(math.floor(math.log10(ms))) + 1
    return round(ms, digits)


def percentile(response_times: Mapping[Any, int], fraction: float) -> float:
    """The response time below which `fraction` of the requests in the histogram fall."""
    total = sum(response_times.values())
    if total == 0:
        return 0.0
    wanted = fraction * total
    seen = 0
    for value in sorted(response_times, key=float):
        seen += response_times[value]
        if seen >= wanted:
            return float(value)
    return float(max(response_times, key=float))


@dataclass
class Entry:
    """One line of Locust's statistics, in the terms of the report (duck-typed from StatsEntry)."""

    method: str
    name: str
    requests: int
    failures: int
    bytes: int
    response_times: dict[float, int]
    max_ms: float

    @classmethod
    def of(cls, stats_entry: Any) -> Entry:
        return cls(stats_entry.method, stats_entry.name, stats_entry.num_requests, stats_entry.num_failures,
                   stats_entry.total_content_length, dict(stats_entry.response_times),
                   float(stats_entry.max_response_time or 0))


def _figures(requests: int, failures: int, nbytes: int, times: Mapping[Any, int], elapsed: float,
             max_ms: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests": requests,
        "failures": failures,
        "error_rate": round(failures / requests, 4) if requests else 0.0,
        "requests_per_s": round(requests / elapsed, 2) if elapsed else 0.0,
        "bytes": nbytes,
        "mb_per_s": round(nbytes / MB / elapsed, 3) if elapsed else 0.0,
    }
    for key, fraction in PERCENTILES.items():
        value = percentile(times, fraction)
        # Histogram buckets round (676 ms lands in 680): no percentile is above the largest time seen.
        out[f"{key}_ms"] = round(min(value, max_ms) if max_ms else value, 2)
    out["max_ms"] = round(max_ms, 2)
    return out


def _merge(entries: Iterable[Entry]) -> tuple[int, int, int, dict[float, int], float]:
    requests = failures = nbytes = 0
    times: dict[float, int] = {}
    max_ms = 0.0
    for e in entries:
        requests += e.requests
        failures += e.failures
        nbytes += e.bytes
        max_ms = max(max_ms, e.max_ms)
        for k, v in e.response_times.items():
            times[k] = times.get(k, 0) + v
    return requests, failures, nbytes, times, max_ms


def errors_by_status(errors: Iterable[tuple[str, str, str, int]]) -> dict[str, int]:
    """(method, name, error text, count) → {"500": n, "ConnectError": m}: status codes or exception names."""
    out: dict[str, int] = {}
    for _, _, text, count in errors:
        m = re.search(r"\bHTTP (\d{3})\b", text)  # Locust keeps errors as repr(): "StatusError('HTTP 500 ...')"
        key = m[1] if m else re.split(r"[(:]", text, maxsplit=1)[0].strip() or "error"
        out[key] = out.get(key, 0) + count
    return dict(sorted(out.items()))


def build_report(entries: list[Entry], errors: list[tuple[str, str, str, int]], elapsed: float,
                 meta: dict[str, Any], timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """The load.json document: totals over HTTP requests, per endpoint, per whole operation."""
    http = [e for e in entries if e.method.lower() not in OPERATIONS]
    ops = [e for e in entries if e.method.lower() in OPERATIONS]
    requests, failures, nbytes, times, max_ms = _merge(http)
    endpoints = {f"{e.method} {e.name}": _figures(e.requests, e.failures, e.bytes, e.response_times, elapsed, e.max_ms)
                 for e in sorted(http, key=lambda e: (e.name, e.method))}
    operations = {e.method.lower(): {**_figures(e.requests, e.failures, e.bytes, e.response_times, elapsed, e.max_ms),
                                     "what": e.name} for e in ops}
    return {
        "schema": SCHEMA_VERSION,
        **meta,
        "elapsed_s": round(elapsed, 2),
        "totals": _figures(requests, failures, nbytes, times, elapsed, max_ms),
        "endpoints": endpoints,
        "operations": operations,
        "errors": errors_by_status(errors),
        "error_details": [{"request": f"{m} {n}", "error": t, "count": c} for m, n, t, c in errors],
        "timeline": timeline,
    }


# -- comparison -------------------------------------------------------------------------------------

THROUGHPUT_FIGURES = ("requests_per_s", "mb_per_s")
LATENCY_FIGURES = ("p50_ms", "p95_ms", "p99_ms")
MIN_REQUESTS = 20  # an endpoint with fewer requests in either run has no stable percentiles
MIN_LATENCY_RISE_MS = 1.0  # below this a rise is scheduling noise on a loaded machine, whatever its percentage
MIN_BYTES = MB  # throughput in MB/s is compared only where at least this much moved


@dataclass
class Finding:
    scope: str  # "totals", "operation pull", "GET /v2/<name>/blobs/<digest>"
    figure: str
    before: float
    after: float
    change_pct: float
    flagged: bool

    def line(self) -> str:
        mark = "FLAG" if self.flagged else "ok  "
        sign = "+" if self.change_pct >= 0 else ""
        return f"{mark} {self.scope:48} {self.figure:15} {self.before:>11.2f} -> {self.after:>11.2f}  ({sign}{self.change_pct:.1f} %)"


def _change(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else math.inf
    return (after - before) / before * 100


def _compare_figures(scope: str, a: dict[str, Any], b: dict[str, Any], threshold: float) -> list[Finding]:
    out = []
    for fig in THROUGHPUT_FIGURES:
        if fig == "mb_per_s" and min(a.get("bytes", 0), b.get("bytes", 0)) < MIN_BYTES:
            continue
        change = _change(a[fig], b[fig])
        out.append(Finding(scope, fig, a[fig], b[fig], change, change < -threshold))
    for fig in LATENCY_FIGURES:
        change = _change(a[fig], b[fig])
        rise = b[fig] - a[fig]
        out.append(Finding(scope, fig, a[fig], b[fig], change, change > threshold and rise >= MIN_LATENCY_RISE_MS))
    rate_a, rate_b = a.get("error_rate", 0.0), b.get("error_rate", 0.0)
    out.append(Finding(scope, "error_rate", rate_a * 100, rate_b * 100, (rate_b - rate_a) * 100,
                       rate_b - rate_a > 0.01))
    return out


def compare(before: dict[str, Any], after: dict[str, Any], threshold: float = 20.0) -> list[Finding]:
    """Every figure of `after` against `before`: throughput drops and latency rises beyond
    `threshold` percent (and error rates up by more than one point) are flagged."""
    findings = _compare_figures("totals", before["totals"], after["totals"], threshold)
    for op in OPERATIONS:
        a, b = before.get("operations", {}).get(op), after.get("operations", {}).get(op)
        if a and b and min(a["requests"], b["requests"]) >= MIN_REQUESTS:
            findings += _compare_figures(f"operation {op}", a, b, threshold)
    for name in sorted(set(before["endpoints"]) & set(after["endpoints"])):
        a, b = before["endpoints"][name], after["endpoints"][name]
        if min(a["requests"], b["requests"]) >= MIN_REQUESTS:
            findings += _compare_figures(name, a, b, threshold)
    return findings


def load_report(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read load report {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION or "totals" not in doc:
        raise SetupError(f"{path} is not a regconform load.json (schema {SCHEMA_VERSION})")
    return doc


def compare_files(before: str, after: str, threshold: float, out: Any = sys.stdout) -> int:
    """Print the comparison; 1 when something is flagged, else 0."""
    a, b = load_report(before), load_report(after)
    findings = compare(a, b, threshold)
    print(f"regconform load --compare: {before} ({a.get('target', '?')}) -> {after} ({b.get('target', '?')}); "
          f"threshold {threshold:g} %, latency rises under {MIN_LATENCY_RISE_MS:g} ms and endpoints with fewer than "
          f"{MIN_REQUESTS} requests are not flagged", file=out)
    for f in findings:
        print(f.line(), file=out)
    flagged = [f for f in findings if f.flagged]
    print(f"{len(flagged)} figure(s) flagged" if flagged else "nothing flagged", file=out)
    return 1 if flagged else 0


# -- the HTML section -------------------------------------------------------------------------------

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def _series_points(timeline: list[dict[str, Any]], key: str, figure: str, width: int, height: int,
                   t_max: float, y_max: float) -> str:
    pts = []
    for sample in timeline:
        value = sample["endpoints"].get(key, {}).get(figure)
        if value is None:
            continue
        x = sample["t"] / t_max * width if t_max else 0
        y = height - (value / y_max * height if y_max else 0)
        pts.append(f"{x:.1f},{y:.1f}")
    return " ".join(pts)


def plot_data(doc: dict[str, Any], width: int = 640, height: int = 200) -> dict[str, Any]:
    """Geometry for the inline SVG plots (the template only draws it)."""
    timeline = doc.get("timeline", [])
    keys = sorted({k for s in timeline for k in s["endpoints"]})
    t_max = max((s["t"] for s in timeline), default=0.0) or 1.0
    y_max = max((v.get("p95_ms", 0) for s in timeline for v in s["endpoints"].values()), default=0.0) or 1.0
    series = [{"name": k, "color": COLORS[i % len(COLORS)],
               "points": _series_points(timeline, k, "p95_ms", width, height, t_max, y_max)} for i, k in enumerate(keys)]
    rps_max = max((s.get("requests_per_s", 0) for s in timeline), default=0.0) or 1.0
    rps = " ".join(f"{s['t'] / t_max * width:.1f},{height - s.get('requests_per_s', 0) / rps_max * height:.1f}"
                   for s in timeline)
    bars_max = max((e["p99_ms"] for e in doc["endpoints"].values()), default=0.0) or 1.0
    bars = [{"name": name, "p50": e["p50_ms"], "p95": e["p95_ms"], "p99": e["p99_ms"],
             "w50": e["p50_ms"] / bars_max * 360, "w95": e["p95_ms"] / bars_max * 360, "w99": e["p99_ms"] / bars_max * 360}
            for name, e in doc["endpoints"].items()]
    return {"width": width, "height": height, "t_max": t_max, "y_max": y_max, "series": series,
            "rps": rps, "rps_max": rps_max, "bars": bars, "bars_max": bars_max}


def render_html(doc: dict[str, Any]) -> str:
    """`load.html`: a standalone page (also usable as a section of report.html), plots as inline SVG."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from regconform.resources import TEMPLATES

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("load.html.j2").render(doc=doc, plot=plot_data(doc))


def write_report(doc: dict[str, Any], report_dir: Path) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = report_dir / "load.json", report_dir / "load.html"
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    html_path.write_text(render_html(doc))
    return json_path, html_path


def summary_lines(doc: dict[str, Any]) -> list[str]:
    t = doc["totals"]
    lines = [f"regconform load: {doc['target']}: {doc['users']} users, {doc['elapsed_s']:.1f} s, mix {doc['mix']}",
             f"  total   {t['requests']} requests ({t['requests_per_s']:.1f}/s), {t['mb_per_s']:.2f} MB/s, "
             f"p50 {t['p50_ms']:.1f} ms p95 {t['p95_ms']:.1f} ms p99 {t['p99_ms']:.1f} ms, failures {t['failures']}"]
    for op, o in doc["operations"].items():
        lines.append(f"  {op:7} {o['requests']} operations ({o['requests_per_s']:.1f}/s), "
                     f"p50 {o['p50_ms']:.1f} ms p95 {o['p95_ms']:.1f} ms p99 {o['p99_ms']:.1f} ms, failures {o['failures']}")
    for name, e in doc["endpoints"].items():
        lines.append(f"  {name:44} {e['requests']:7} req {e['requests_per_s']:8.1f}/s {e['mb_per_s']:8.2f} MB/s "
                     f"p50 {e['p50_ms']:6.1f} p95 {e['p95_ms']:6.1f} p99 {e['p99_ms']:6.1f} ms")
    if doc["errors"]:
        lines.append("  errors: " + ", ".join(f"{k}: {v}" for k, v in doc["errors"].items()))
    return lines


