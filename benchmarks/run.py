#!/usr/bin/env python
"""regconform benchmarks: `.venv/bin/python benchmarks/run.py` (one command; not timed tests).

Every figure is printed as a ratio against a baseline measured in the same run, with the raw
numbers, and checked against its target:

1. suite wall time: `regconform run` on the embedded registry, serial (the baseline) and -n 2;
   targets: serial under 30 s (container starts included), -n 2 at least 1.6x faster.
2. client overhead: the harness client's round trip (GET /v2/, GET of a small blob) against a
   raw keep-alive httpx loop on the same registry; target at most 1.3x.
3. large blob: a 1 GiB blob pushed (chunked, monolithic) and pulled through the harness client,
   each in a fresh child process whose peak RSS is measured, against curl on the same registry
   and file; targets: peak RSS under 150 MiB, throughput at least 70 % of curl's.
4. load: `regconform load` (8 users, 20 s) on the embedded registry; compared with the last run.
5. hostile front: the harness client, each case in a fresh child process, against a front that sends
   an endless blob, a blob declaring 20 GiB, a 256 MiB gzip bomb as a tag list, a 4 KiB blob dripped
   at 10 B/s, and a server that never answers; figures (no targets): peak RSS and the time until the
   client gives up at one of its limits (registry/limits.py, --timeout 3 here), with the limit it names.

Results go to benchmarks/results/latest.json and are appended to benchmarks/history.jsonl; every
figure is compared with the previous history entry, so a run says what got slower.
Loops are bounded in count; the 1 GiB file lives in a temporary directory and is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
HISTORY = REPO / "benchmarks" / "history.jsonl"
VENV_BIN = Path(sys.executable).parent
GIB = 1 << 30
MIB = 1 << 20
SLOWER_FLAG_PCT = 20.0  # a figure worse than the previous run's by more than this is called out

TARGETS = {
    "suite.serial_s": ("<", 30.0),
    "suite.speedup": (">=", 1.6),
    "client.ping_ratio": ("<=", 1.3),
    "client.blob_ratio": ("<=", 1.3),
    "blob.push_chunked_vs_curl": (">=", 0.7),
    "blob.push_monolithic_vs_curl": (">=", 0.7),
    "blob.pull_vs_curl": (">=", 0.7),
    "blob.peak_rss_mib": ("<", 150.0),
}
# Which direction is better, for the comparison with the previous run.
HIGHER_IS_BETTER = {"suite.speedup", "blob.push_chunked_vs_curl", "blob.push_monolithic_vs_curl", "blob.pull_vs_curl",
                    "blob.pull_vs_curl_sha256", "blob.curl_pull_sha256_mb_s",
                    "blob.curl_push_mb_s", "blob.curl_pull_mb_s", "blob.push_chunked_mb_s",
                    "blob.push_monolithic_mb_s", "blob.pull_mb_s", "load.requests_per_s", "load.mb_per_s"}


def out(line: str = "") -> None:
    print(line, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_env(run_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGCONFORM_", "PYTEST_"))}
    env["REGCONFORM_RUN_ID"] = run_id
    if "REGCONFORM_REGISTRY_IMAGE" in os.environ:
        env["REGCONFORM_REGISTRY_IMAGE"] = os.environ["REGCONFORM_REGISTRY_IMAGE"]
    return env


def leftover_containers(run_id: str) -> int:
    proc = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.regconform.run={run_id}"],
                          capture_output=True, text=True)
    return len(proc.stdout.split())


# -- 1. suite wall time -----------------------------------------------------------------------------


def run_suites(workers: str | None, report_dir: Path) -> dict[str, Any]:
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    argv = [str(VENV_BIN / "regconform"), "run", f"--report-dir={report_dir}"]
    if workers:
        argv += ["-n", workers]
    started, cpu, load_before = time.perf_counter(), children_cpu(), loadavg()[0]
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(run_id), cwd=REPO, timeout=900)
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu  # pytest and its xdist workers (not the registries, which dockerd runs)
    summary: dict[str, int] = {}
    outcomes: dict[str, str] = {}
    behaviour = report_dir / "behaviour.json"
    if behaviour.exists():
        doc = json.loads(behaviour.read_text())
        summary = doc.get("summary", {})
        outcomes = {c["id"]: c["outcome"] for c in doc.get("checks", [])}
    return {"wall_s": round(wall, 2), "harness_cpu_s": round(cpu, 2), "loadavg": [load_before, loadavg()[0]],
            "exit": proc.returncode, "summary": summary, "outcomes": outcomes,
            "leftover_containers": leftover_containers(run_id), "tail": proc.stdout.strip().splitlines()[-1:]}


def bench_suite(tmp: Path) -> dict[str, Any]:
    out("== 1. suite wall time: regconform run on the embedded registry (baseline: serial) ==")
    serial = run_suites(None, tmp / "serial")
    parallel = run_suites("2", tmp / "parallel")
    speedup = serial["wall_s"] / parallel["wall_s"] if parallel["wall_s"] else 0.0
    same = serial["outcomes"] == parallel["outcomes"]
    for label, r in (("serial", serial), ("-n 2", parallel)):
        out(f"  {label:7} {r['wall_s']:7.2f} s  harness cpu {r['harness_cpu_s']:6.2f} s  load avg {r['loadavg'][0]} -> "
            f"{r['loadavg'][1]}  exit {r['exit']}  {r['summary']}  containers left: {r['leftover_containers']}")
    out(f"  -n 2 / serial wall time: {parallel['wall_s'] / serial['wall_s']:.2f}  (speedup {speedup:.2f}x)")
    out(f"  per-check outcomes identical serial vs -n 2: {same}"
        + ("" if same else f" ({len(set(serial['outcomes'].items()) ^ set(parallel['outcomes'].items()))} differ)"))
    return {"suite.serial_s": serial["wall_s"], "suite.parallel_s": parallel["wall_s"], "suite.speedup": round(speedup, 2),
            "suite.serial_harness_cpu_s": serial["harness_cpu_s"], "suite.parallel_harness_cpu_s": parallel["harness_cpu_s"],
            "suite.checks": sum(serial["summary"].values()), "suite.outcomes_identical": same,
            "suite.serial_summary": serial["summary"], "suite.parallel_summary": parallel["summary"],
            "suite.leftover_containers": serial["leftover_containers"] + parallel["leftover_containers"]}


# -- shared: one embedded registry for sections 2 and 3 ---------------------------------------------


def start_registry(run_id: str) -> Any:
    from regconform.targets.base import registry_env
    from regconform.targets.container import ContainerTarget
    from regconform.targets.engine import docker_client
    from regconform.targets.imagebuild import resolve_registry_image

    image = resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    return ContainerTarget(image, registry_env(True), run_id)


# -- 2. client overhead -----------------------------------------------------------------------------


def per_request_ms(fn: Any, n: int) -> tuple[float, float]:
    """Wall and CPU milliseconds per call (CPU time shows the client's own cost on a busy machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000, (time.process_time() - cpu) / n * 1000


def bench_client(url: str, rounds: int = 7, per_round: int = 100) -> dict[str, Any]:
    from regconform.registry.client import RegistryClient
    from regconform.reports import record

    out("== 2. client overhead: harness RegistryClient vs a raw keep-alive httpx loop (baseline: raw) ==")
    repo = "regconform-bench/client"
    blob = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    # The harness client as the suites use it: recording on, a check record collecting the exchanges.
    harness = RegistryClient(url, on_exchange=record.on_exchange, namespace="regconform-bench")
    assert harness.push_blob(repo, blob, digest).status_code == 201
    raw = httpx.Client(base_url=url, headers={"User-Agent": "regconform/0.1"})
    blob_path = f"/v2/{repo}/blobs/{digest}"
    cases = {
        "ping": (lambda: raw.get("/v2/"), lambda: harness.ping()),
        "blob": (lambda: raw.get(blob_path).content, lambda: harness.get_blob(repo, digest).content),
    }
    results: dict[str, Any] = {}
    try:
        for name, (raw_fn, harness_fn) in cases.items():
            raw_fn(), harness_fn()  # warm both connections
            raw_ms, harness_ms = [], []
            for _ in range(rounds):  # interleaved, so machine load hits both alike
                raw_ms.append(per_request_ms(raw_fn, per_round))
                record.begin()
                harness_ms.append(per_request_ms(harness_fn, per_round))
                record.end()
                harness.exchanges.clear()
            r, h = statistics.median(w for w, _ in raw_ms), statistics.median(w for w, _ in harness_ms)
            rc, hc = statistics.median(c for _, c in raw_ms), statistics.median(c for _, c in harness_ms)
            label = "GET /v2/" if name == "ping" else "GET blob (4 KiB)"
            out(f"  {label:17} raw httpx {r:6.3f} ms  harness {h:6.3f} ms  ratio {h / r:.2f}   "
                f"client CPU per request: raw {rc:.3f} ms, harness {hc:.3f} ms, ratio {hc / rc:.2f}  "
                f"({rounds} interleaved rounds x {per_round} requests, medians)")
            results[f"client.{name}_raw_ms"] = round(r, 3)
            results[f"client.{name}_harness_ms"] = round(h, 3)
            results[f"client.{name}_ratio"] = round(h / r, 3)
            results[f"client.{name}_cpu_ratio"] = round(hc / rc, 3)
    finally:
        raw.close()
        harness.close()
    return results


# -- 3. large blob ----------------------------------------------------------------------------------


def make_blob(directory: Path, size: int) -> tuple[Path, str]:
    path = directory / "blob.bin"
    h = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            part = os.urandom(min(8 * MIB, left))
            h.update(part)
            f.write(part)
            left -= len(part)
    return path, "sha256:" + h.hexdigest()


def child_transfer(mode: str, url: str, path: str, digest: str, repo: str) -> None:
    """Runs in a fresh process (`--child`): one transfer through the harness client; prints JSON."""
    from regconform.registry.client import RegistryClient

    if mode.startswith("hostile-"):
        child_hostile(mode.removeprefix("hostile-"), url, float(path))
        return
    client = RegistryClient(url, namespace="regconform-bench", timeout=600)
    started = time.perf_counter()
    if mode == "pull":
        size = client.stream_blob(repo, digest, size=os.path.getsize(path))  # hashes as it reads: verified
        ok = size == os.path.getsize(path)
    else:
        with open(path, "rb") as source:
            resp = client.push_blob_stream(repo, source, digest, monolithic=(mode == "push-monolithic"))
        ok = resp.status_code == 201
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "ok": ok, "peak_rss_mib": round(peak_kib / 1024, 1)}))


def harness_transfer(mode: str, url: str, path: Path, digest: str, repo: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, url, str(path), digest, repo],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"harness {mode} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def curl_push(url: str, path: Path, digest: str, repo: str) -> float:
    """What a real client does: POST for a session, then one PUT of the whole file with the digest."""
    started = time.perf_counter()
    post = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-D", "-", "-X", "POST", f"{url}/v2/{repo}/blobs/uploads/"],
                          capture_output=True, text=True, check=True)
    location = next(line.split(":", 1)[1].strip() for line in post.stdout.splitlines()
                    if line.lower().startswith("location:"))
    target = location if location.startswith("http") else url + location
    target += ("&" if "?" in target else "?") + f"digest={digest}"
    # --upload-file streams the file (a PUT); curl 7.88 refuses `--data-binary @file` for 1 GiB: "out of memory".
    put = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--upload-file", str(path),
                          "-H", "Content-Type: application/octet-stream", target],
                         capture_output=True, text=True, check=True)
    if put.stdout.strip() != "201":
        raise RuntimeError(f"curl PUT answered {put.stdout.strip()}")
    return time.perf_counter() - started


def curl_pull(url: str, digest: str, repo: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/v2/{repo}/blobs/{digest}"],
                          capture_output=True, text=True, check=True)
    if proc.stdout.strip() != "200":
        raise RuntimeError(f"curl GET answered {proc.stdout.strip()}")
    return time.perf_counter() - started


def curl_pull_verified(url: str, digest: str, repo: str) -> float:
    """curl piped into sha256sum: a pull that checks the digest, as the harness does (context, not the baseline)."""
    started = time.perf_counter()
    proc = subprocess.run(f"curl -sS '{url}/v2/{repo}/blobs/{digest}' | sha256sum", shell=True, capture_output=True,
                          text=True, check=True)
    if "sha256:" + proc.stdout.split()[0] != digest:
        raise RuntimeError("curl | sha256sum: digest mismatch")
    return time.perf_counter() - started


def bench_blob(url: str, tmp: Path, size: int, rounds: int) -> dict[str, Any]:
    out(f"== 3. large blob: {size / GIB:g} GiB through the harness client vs curl (baseline: curl; "
        f"{rounds} interleaved rounds, medians) ==")
    path, digest = make_blob(tmp, size)
    mb = size / 1e6
    kinds = ("curl-push", "push-chunked", "push-monolithic", "curl-pull", "curl-pull-sha256", "pull")
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    try:
        for r in range(rounds):
            for kind in runs:
                cpu = children_cpu()
                if kind == "curl-push":
                    run = {"seconds": curl_push(url, path, digest, f"regconform-bench/curl-{r}"), "ok": True}
                elif kind == "curl-pull":
                    run = {"seconds": curl_pull(url, digest, f"regconform-bench/curl-{r}"), "ok": True}
                elif kind == "curl-pull-sha256":
                    run = {"seconds": curl_pull_verified(url, digest, f"regconform-bench/curl-{r}"), "ok": True}
                else:
                    repo = f"regconform-bench/{'push-monolithic' if kind == 'pull' else kind}-{r}"
                    run = harness_transfer(kind, url, path, digest, repo)
                run["cpu_s"] = children_cpu() - cpu
                if not run["ok"]:
                    raise RuntimeError(f"{kind} did not complete: {run}")
                runs[kind].append(run)
    finally:
        path.unlink(missing_ok=True)

    def med(kind: str, key: str = "seconds") -> float:
        return statistics.median(r[key] for r in runs[kind])

    res: dict[str, Any] = {"blob.size_bytes": size, "blob.rounds": rounds}
    for kind, key in (("curl-push", "curl_push"), ("curl-pull", "curl_pull"), ("curl-pull-sha256", "curl_pull_sha256"),
                      ("push-chunked", "push_chunked"),
                      ("push-monolithic", "push_monolithic"), ("pull", "pull")):
        res[f"blob.{key}_mb_s"] = round(mb / med(kind), 1)
        res[f"blob.{key}_cpu_s"] = round(med(kind, "cpu_s"), 2)
    res["blob.push_chunked_vs_curl"] = round(res["blob.push_chunked_mb_s"] / res["blob.curl_push_mb_s"], 3)
    res["blob.push_monolithic_vs_curl"] = round(res["blob.push_monolithic_mb_s"] / res["blob.curl_push_mb_s"], 3)
    res["blob.pull_vs_curl"] = round(res["blob.pull_mb_s"] / res["blob.curl_pull_mb_s"], 3)
    res["blob.pull_vs_curl_sha256"] = round(res["blob.pull_mb_s"] / res["blob.curl_pull_sha256_mb_s"], 3)
    peaks = {kind: max(r["peak_rss_mib"] for r in runs[kind]) for kind in ("push-chunked", "push-monolithic", "pull")}
    res["blob.peak_rss_mib"] = max(peaks.values())
    res["blob.peak_rss_by_mode_mib"] = peaks
    rows = [("push", "curl (POST + PUT --upload-file)", "curl-push", "curl_push", None),
            ("push", "harness chunked (8 MiB PATCHes)", "push-chunked", "push_chunked", "blob.push_chunked_vs_curl"),
            ("push", "harness monolithic (streamed PUT)", "push-monolithic", "push_monolithic", "blob.push_monolithic_vs_curl"),
            ("pull", "curl (GET -o /dev/null)", "curl-pull", "curl_pull", None),
            ("pull", "curl | sha256sum (context only)", "curl-pull-sha256", "curl_pull_sha256", None),
            ("pull", "harness stream_blob (sha256 checked)", "pull", "pull", "blob.pull_vs_curl")]
    for op, label, kind, key, ratio in rows:
        base = res["blob.curl_push_mb_s"] if op == "push" else res["blob.curl_pull_mb_s"]
        line = (f"  {op}  {label:37} {med(kind):6.2f} s  {res[f'blob.{key}_mb_s']:7.1f} MB/s  "
                f"{res[f'blob.{key}_mb_s'] / base:.2f} of curl  cpu {res[f'blob.{key}_cpu_s']:.2f} s")
        if kind in peaks:
            line += f"  peak RSS {peaks[kind]} MiB"
        each = ", ".join(f"{x['seconds']:.2f}" for x in runs[kind])
        out(f"{line}  (runs: {each} s)")
    out(f"  pull  harness vs curl | sha256sum (both verify the digest): {res['blob.pull_vs_curl_sha256']:.2f}")
    return res


# -- 4. load ----------------------------------------------------------------------------------------


def bench_load(tmp: Path, users: int, duration: int) -> dict[str, Any]:
    out(f"== 4. load: regconform load, {users} users, {duration} s, embedded registry (baseline: previous run) ==")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    report_dir = tmp / "load"
    proc = subprocess.run([str(VENV_BIN / "regconform"), "load", "--users", str(users), "--duration", str(duration),
                           "--report-dir", str(report_dir)], capture_output=True, text=True, env=child_env(run_id),
                          cwd=REPO, timeout=duration + 300)
    for line in proc.stdout.strip().splitlines()[:4]:
        out("  " + line)
    doc = json.loads((report_dir / "load.json").read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in ("load.json", "load.html"):
        shutil.copy(report_dir / name, RESULTS / name)
    t = doc["totals"]
    return {"load.exit": proc.returncode, "load.requests_per_s": t["requests_per_s"], "load.mb_per_s": t["mb_per_s"],
            "load.p50_ms": t["p50_ms"], "load.p95_ms": t["p95_ms"], "load.p99_ms": t["p99_ms"],
            "load.failures": t["failures"], "load.leftover_containers": leftover_containers(run_id)}


# -- hostile front -------------------------------------------------------------------------------------

HOSTILE_DIGEST = "sha256:" + "ab" * 32
HOSTILE_CASES = {  # case: (what the child does, path prefix the front attacks)
    "endless_blob": ("get_blob", "endless"),
    "declared_20gib_blob": ("get_blob", "declared"),
    "gzip_bomb_tags": ("list_tags", "bomb"),
    "drip_10_bytes_s": ("stream_blob", "drip"),
    "silent_server": ("ping", None),
}


def child_hostile(case: str, url: str, timeout: float) -> None:
    """One hostile case through the harness client (fresh process: its own peak RSS); prints JSON."""
    from regconform.registry.client import RegistryClient

    action, repo = HOSTILE_CASES[case]
    client = RegistryClient(url, timeout=timeout)
    started = time.perf_counter()
    try:
        if action == "get_blob":
            client.get_blob(repo, HOSTILE_DIGEST)
        elif action == "stream_blob":
            client.stream_blob(repo, HOSTILE_DIGEST, size=4096)
        elif action == "list_tags":
            client.list_tags(repo)
        else:
            client.ping()
        error = "none: the client read the whole answer"
    except Exception as exc:  # noqa: BLE001 - the figure is which limit stopped it
        error = f"{type(exc).__name__}: {exc}"[:300]
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mib": round(peak_kib / 1024, 1), "error": error}))


def bench_hostile(timeout: float = 3.0) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    import hostileserver as hs
    from faultproxy import FaultProxy, Rule

    out(f"== hostile front (harness client, --timeout {timeout:g}; peak RSS and time to give up, figures only) ==")
    rules = [Rule(r"^/v2/endless/", respond=hs.endless_blob().respond),
             Rule(r"^/v2/declared/", respond=hs.declared_20_gib_blob().respond),
             Rule(r"^/v2/drip/", respond=hs.dripping_blob().respond),
             Rule(r"^/v2/bomb/", respond=hs.gzip_bomb_tags(hs.gzip_bomb()).respond)]
    results: dict[str, Any] = {}
    with FaultProxy("http://127.0.0.1:9", rules) as front, hs.SilentServer() as silent:
        for case, (_, repo) in HOSTILE_CASES.items():
            url = front.url if repo else silent.url
            proc = subprocess.run([sys.executable, __file__, "--child", f"hostile-{case}", url, str(timeout), "-", "-"],
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"hostile {case} failed: {proc.stderr.strip()[-500:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            results[f"hostile.{case}.give_up_s"] = round(got["seconds"], 2)
            results[f"hostile.{case}.peak_rss_mib"] = got["peak_rss_mib"]
            out(f"  {case:22} gave up after {got['seconds']:6.2f} s, peak RSS {got['peak_rss_mib']:6.1f} MiB: "
                f"{got['error'][:160]}")
    return results


# -- targets, history ---------------------------------------------------------------------------------


def check_targets(results: dict[str, Any]) -> list[str]:
    lines = []
    for key, (op, limit) in TARGETS.items():
        if key not in results:
            continue
        value = results[key]
        ok = {"<": value < limit, "<=": value <= limit, ">=": value >= limit}[op]
        if ok:
            lines.append(f"  met     {key} = {value} ({op} {limit})")
        else:
            miss = (value - limit) / limit * 100
            lines.append(f"  MISSED  {key} = {value} (target {op} {limit}; off by {abs(miss):.0f} %)")
    return lines


def previous_entry() -> dict[str, Any] | None:
    if not HISTORY.exists():
        return None
    lines = [line for line in HISTORY.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def compare_with(previous: dict[str, Any], results: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in results.items():
        before = previous["results"].get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not isinstance(before, (int, float)) or not before:
            continue
        change = (value - before) / before * 100
        worse = -change if key in HIGHER_IS_BETTER else change
        mark = "SLOWER" if worse > SLOWER_FLAG_PCT else "      "
        lines.append(f"  {mark} {key:34} {before:>10} -> {value:>10}  ({change:+.1f} %)")
    return lines


def git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return proc.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: suite,client,blob,load,hostile")
    parser.add_argument("--blob-size", type=int, default=GIB, help="bytes of the large blob (default 1 GiB)")
    parser.add_argument("--blob-rounds", type=int, default=3, help="interleaved rounds of every transfer (medians)")
    parser.add_argument("--load-users", type=int, default=8)
    parser.add_argument("--load-duration", type=int, default=20)
    parser.add_argument("--no-history", action="store_true", help="do not append this run to history.jsonl")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "URL", "PATH", "DIGEST", "REPO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_transfer(*args.child)
        return 0
    skip = set(filter(None, args.skip.split(",")))
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out(f"regconform benchmarks at {git_commit()}, {started_at}; {os.cpu_count()} cores; load average {loadavg()} "
        "(other work on the machine skews every figure)")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="regconform-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "suite" not in skip:
            results.update(bench_suite(tmp))
        if {"client", "blob"} - skip:
            run_id = f"bench-{uuid.uuid4().hex[:8]}"
            target = start_registry(run_id)
            try:
                if "client" not in skip:
                    results.update(bench_client(target.url))
                if "blob" not in skip:
                    results.update(bench_blob(target.url, tmp, args.blob_size, args.blob_rounds))
            finally:
                target.stop()
            results["registry.leftover_containers"] = leftover_containers(run_id)
        if "load" not in skip:
            results.update(bench_load(tmp, args.load_users, args.load_duration))
        if "hostile" not in skip:
            results.update(bench_hostile())
    entry = {"commit": git_commit(), "at": started_at, "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
             "loadavg_end": loadavg()}, "skipped": sorted(skip), "results": results}
    out("== targets ==")
    for line in check_targets(results):
        out(line)
    previous = previous_entry()
    out("== against the previous run in benchmarks/history.jsonl ==" if previous else "== no previous run in history.jsonl ==")
    if previous:
        out(f"  previous: {previous['commit']} at {previous['at']}")
        for line in compare_with(previous, results):
            out(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    if not args.no_history:
        with HISTORY.open("a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
    out(f"results: {RESULTS / 'latest.json'}" + ("" if args.no_history else f"; appended to {HISTORY}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
