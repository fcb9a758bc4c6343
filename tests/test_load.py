"""`regconform load`: real Locust runs against a real registry (embedded, or behind the fault proxy).

- a short run on the embedded registry writes a complete load.json and load.html and leaves no container;
- `--compare` flags a registry slowed by the fault proxy (50 ms per request) and nothing for a report
  against itself; errors injected by the proxy are counted by status code;
- the pieces without a registry (mix, endpoint names, comparison rules) on fixed inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from faultproxy import Rule
from suiterun import REPO, clean_env

from regconform.load import figures as load

REGCONFORM = [sys.executable, "-m", "regconform.cli"]


def run_load(report_dir: Path, *args: str, run_id: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = clean_env({"REGCONFORM_RUN_ID": run_id or f"loadtest-{uuid.uuid4().hex[:8]}"})
    return subprocess.run([*REGCONFORM, "load", "--report-dir", str(report_dir), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def report(report_dir: Path) -> dict[str, Any]:
    return json.loads((report_dir / "load.json").read_text())


def containers_of(run_id: str) -> list[str]:
    proc = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.regconform.run={run_id}"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.split()


def test_load_on_the_embedded_registry_writes_its_report(tmp_path: Path) -> None:
    run_id = f"loadtest-{uuid.uuid4().hex[:8]}"
    # 60/40 rather than the default 80/20: on a busy machine 5 s may hold only a few dozen operations,
    # and every push endpoint must show up.
    proc = run_load(tmp_path, "--users", "4", "--duration", "5", "--mix", "pull=60,push=40", run_id=run_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = report(tmp_path)
    assert doc["users"] == 4 and doc["mix"] == {"pull": 60, "push": 40}
    assert 4 <= doc["elapsed_s"] <= 15, doc["elapsed_s"]
    assert doc["namespace"] == f"regconform-{run_id}/load"
    totals = doc["totals"]
    assert totals["requests"] > 50 and totals["failures"] == 0 and doc["errors"] == {}
    assert totals["requests_per_s"] > 0 and totals["mb_per_s"] > 0
    # What a pull and a push send, each as an endpoint of its own.
    for endpoint in ("GET /v2/<name>/manifests/<tag>", "GET /v2/<name>/blobs/<digest>", "HEAD /v2/<name>/blobs/<digest>",
                     "POST /v2/<name>/blobs/uploads/", "PUT /v2/<name>/blobs/uploads/<session>",
                     "PUT /v2/<name>/manifests/<tag>"):
        assert doc["endpoints"][endpoint]["requests"] > 0, (endpoint, sorted(doc["endpoints"]))
    for figures in (totals, *doc["endpoints"].values(), *doc["operations"].values()):
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"], figures
    assert doc["operations"]["pull"]["requests"] > 0 and doc["operations"]["push"]["requests"] > 0
    # Pulls include the large image: bytes moved are at least one 1 MiB layer per few pulls.
    assert doc["endpoints"]["GET /v2/<name>/blobs/<digest>"]["bytes"] > 1 << 20
    assert doc["timeline"] and all(s["t"] > 0 for s in doc["timeline"])
    html = (tmp_path / "load.html").read_text()
    assert "<svg" in html and "GET /v2/&lt;name&gt;/blobs/&lt;digest&gt;" in html
    assert "requests" in proc.stdout and str(tmp_path / "load.json") in proc.stdout
    assert containers_of(run_id) == []


def test_compare_flags_a_registry_slowed_by_the_proxy(tmp_path: Path, fault_proxy: Any) -> None:
    clean = fault_proxy([])
    slowed = fault_proxy([Rule(path=".*", delay=0.05)])
    before, after = tmp_path / "before", tmp_path / "after"
    for url, where in ((clean.url, before), (slowed.url, after)):
        # Two users: the proxy and the registry stay far from saturation, so the clean run is fast.
        proc = run_load(where, "--registry-url", url, "--users", "2", "--duration", "5")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    a, b = report(before), report(after)
    # The delay is a floor for every request through the slowed proxy, on top of what the clean one takes.
    assert b["totals"]["p50_ms"] >= max(50.0, a["totals"]["p50_ms"] * 1.2), (a["totals"], b["totals"])

    flagged = subprocess.run([*REGCONFORM, "load", "--compare", str(before / "load.json"), str(after / "load.json"),
                              "--threshold", "20"], capture_output=True, text=True, env=clean_env(), cwd=REPO)
    assert flagged.returncode == 1, flagged.stdout + flagged.stderr
    lines = flagged.stdout.splitlines()
    assert any(line.startswith("FLAG totals") and "p50_ms" in line for line in lines), flagged.stdout

    same = subprocess.run([*REGCONFORM, "load", "--compare", str(before / "load.json"), str(before / "load.json")],
                          capture_output=True, text=True, env=clean_env(), cwd=REPO)
    assert same.returncode == 0 and "nothing flagged" in same.stdout, same.stdout + same.stderr


def test_errors_are_counted_by_status_code(tmp_path: Path, fault_proxy: Any) -> None:
    proxy = fault_proxy([Rule(path=r"/pull-large/blobs/sha256:", method="GET", status=500)])
    proc = run_load(tmp_path, "--registry-url", proxy.url, "--users", "2", "--duration", "3", "--mix", "pull=1")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # failures make the run exit 1
    doc = report(tmp_path)
    assert doc["errors"].get("500", 0) > 0, doc["errors"]
    blob = doc["endpoints"]["GET /v2/<name>/blobs/<digest>"]
    assert 0 < blob["failures"] < blob["requests"]  # only the large image's blobs fail
    assert doc["operations"]["pull"]["failures"] > 0 and "push" not in doc["operations"]
    assert "500" in (tmp_path / "load.html").read_text()


# -- without a registry -------------------------------------------------------------------------------


def test_mix_endpoints_and_errors_without_a_registry() -> None:
    assert load.parse_mix("pull=80,push=20") == {"pull": 80, "push": 20}
    assert load.parse_mix("push=1") == {"push": 1}
    for bad in ("pull=80,delete=20", "pull", "pull=x", "pull=0,push=0", ""):
        with pytest.raises(load.LoadUsageError):
            load.parse_mix(bad)
    digest = "sha256:" + "a" * 64
    assert load.endpoint_of("/v2/") == "/v2/"
    assert load.endpoint_of(f"/v2/a/b/blobs/{digest}") == "/v2/<name>/blobs/<digest>"
    assert load.endpoint_of("/v2/a/b/blobs/uploads/") == "/v2/<name>/blobs/uploads/"
    assert load.endpoint_of("/v2/a/b/blobs/uploads/0c1e-55?_state=x&digest=y") == "/v2/<name>/blobs/uploads/<session>"
    assert load.endpoint_of(f"/v2/a/manifests/{digest}") == "/v2/<name>/manifests/<digest>"
    assert load.endpoint_of("/v2/a/manifests/v1") == "/v2/<name>/manifests/<tag>"
    assert not load.counts_as_error("HEAD", "/v2/<name>/blobs/<digest>", 404)  # "do you have it?" before a push
    assert load.counts_as_error("GET", "/v2/<name>/blobs/<digest>", 404)
    assert load.counts_as_error("PUT", "/v2/<name>/manifests/<tag>", 500)
    assert load.errors_by_status([("GET", "x", "StatusError('HTTP 500')", 3), ("PULL", "y", "ConnectError('refused')", 1),
                                  ("PUT", "z", "StatusError('HTTP 500')", 2)]) == {"500": 5, "ConnectError": 1}
    assert load.percentile({1.0: 50, 2.0: 45, 30.0: 5}, 0.5) == 1.0
    assert load.percentile({1.0: 50, 2.0: 45, 30.0: 5}, 0.95) == 2.0
    assert load.percentile({1.0: 50, 2.0: 45, 30.0: 5}, 0.99) == 30.0


def _figures(rps: float, p50: float, requests: int = 100, failures: int = 0) -> dict[str, Any]:
    return {"requests": requests, "failures": failures, "error_rate": failures / requests, "requests_per_s": rps,
            "bytes": 0, "mb_per_s": 0.0, "p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "max_ms": p50 * 4}


def test_comparison_rules_without_a_registry() -> None:
    base = {"totals": _figures(100, 10), "endpoints": {"GET x": _figures(50, 10)}, "operations": {}}
    assert not any(f.flagged for f in load.compare(base, base))
    # 15 % slower: under a 20 % threshold, over a 10 % one.
    slower = {"totals": _figures(87, 11.5), "endpoints": {"GET x": _figures(43.5, 11.5)}, "operations": {}}
    assert not any(f.flagged for f in load.compare(base, slower, threshold=20))
    flagged = {(f.scope, f.figure) for f in load.compare(base, slower, threshold=10) if f.flagged}
    assert ("totals", "requests_per_s") in flagged and ("GET x", "p50_ms") in flagged
    # A rise of 50 % that is only 0.5 ms is noise, not a regression.
    tiny = {"totals": _figures(100, 1.0), "endpoints": {}, "operations": {}}
    tinier = {"totals": _figures(100, 1.5), "endpoints": {}, "operations": {}}
    assert not any(f.flagged and f.figure == "p50_ms" for f in load.compare(tiny, tinier))
    # Errors: a rate up by more than one point is flagged whatever the threshold.
    failing = {"totals": _figures(100, 10, failures=5), "endpoints": {}, "operations": {}}
    assert ("totals", "error_rate") in {(f.scope, f.figure) for f in load.compare(base, failing, 50) if f.flagged}
    # Endpoints with too few requests are left out (their percentiles are noise).
    few = {"totals": _figures(100, 10), "endpoints": {"GET x": _figures(50, 90, requests=5)}, "operations": {}}
    assert not any(f.scope == "GET x" for f in load.compare(base, few))


def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    for args in (["--mix", "pull=80,delete=20"], ["--users", "0"], ["--duration", "99999"],
                 ["--registry-url", "ftp://127.0.0.1:1"]):
        proc = subprocess.run([*REGCONFORM, "load", "--report-dir", str(tmp_path), *args], capture_output=True,
                              text=True, env=clean_env(), cwd=REPO, timeout=60)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("regconform: error: "), proc.stderr
    proc = subprocess.run([*REGCONFORM, "load", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                          capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 2 and "cannot read load report" in proc.stderr, proc.stderr
