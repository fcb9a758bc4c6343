"""Issue 11: a registry that misbehaves on purpose gets no secret, no unbounded memory or time, no broken output.

Every case runs the real suites (a subprocess, as a user runs them) with credentials against a
real htpasswd registry behind a hostile front (tests/hostileserver.py rules on the FaultProxy), and
asserts, besides what the case is about:
- the harness stopped at one of its own limits, and says which (the reason names the limit),
- every output file is written and valid (behaviour.json against its schema, exchanges.json,
  report.html, summary.md, junit.xml, the Allure results) and bounded in size,
- neither the password nor base64 of user:password appears in any report file, stdout, stderr
  or the argv of any process on the machine while the run goes on,
- no traceback, RecursionError or raw terminal control character reaches the output.
No wall-clock assertion: the limits the harness reports are the evidence.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import hostileserver as hs
import jsonschema
import pytest
from authregistries import AuthRegistry, htpasswd_registry, leaked
from faultproxy import FaultProxy, Request, Rule
from suiterun import REPO, SuiteRun, clean_env, read_records, run_suites

SCHEMA = json.loads((REPO / "schemas" / "behaviour.schema.json").read_text())
BLOB_CHECK = "test_blob_get_serves_the_bytes_of_its_digest"
TAGS_CHECK = "test_tags_list_names_every_pushed_tag"
UNKNOWN_MANIFEST = "test_unknown_manifest_answers_404_manifest_unknown"
MONOLITHIC = "test_monolithic_upload_post_then_put_creates_the_blob"
TIMEOUT = "3"  # --timeout of the hostile runs (REGCONFORM_TIMEOUT), so give-up points come quickly
REPORT_BUDGET = 5 << 20  # bytes: a report folder stays small whatever the registry sent
OUTPUT_BUDGET = 1 << 20


@pytest.fixture(scope="module")
def auth_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with htpasswd_registry(tmp_path_factory.mktemp("htpasswd")) as reg:
        yield reg


def secrets_of(reg: AuthRegistry) -> list[str]:
    return [reg.password, base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()]


def hostile_run(reg: AuthRegistry, url: str, selection: str, tmp_path: Path, *args: str,
                env: dict[str, str] | None = None) -> tuple[SuiteRun, hs.ArgvWatch]:
    report_dir = tmp_path / "reports"
    with hs.ArgvWatch(secrets_of(reg)) as watch:
        run = run_suites(url, "-k", selection, "--ignore=suites/mirror", f"--username={reg.username}",
                         f"--junitxml={report_dir / 'junit.xml'}", f"--alluredir={report_dir / 'allure-results'}",
                         *args, report_dir=report_dir,
                         extra_env={"REGCONFORM_PASSWORD": reg.password, "REGCONFORM_TIMEOUT": TIMEOUT, **(env or {})})
    return run, watch


def assert_survived(run: SuiteRun, watch: hs.ArgvWatch, reg: AuthRegistry, *, reports: bool = True) -> None:
    """The checks every hostile case shares (see the module docstring)."""
    out = run.stdout + run.stderr
    assert watch.samples > 0
    assert watch.hits == [], f"a secret on a command line: {watch.hits}"
    assert leaked(secrets_of(reg), run.report_dir, run.stdout, run.stderr) == [], run.tail()
    for bad in ("Traceback", "RecursionError", "INTERNALERROR"):
        assert bad not in out, f"{bad} in the output:\n{run.tail()}"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out.replace("\r", "")), "raw control characters on the terminal"
    assert len(out.encode()) < OUTPUT_BUDGET, f"{len(out)} characters of output"
    if not reports:
        return
    files = {p.relative_to(run.report_dir).as_posix(): p for p in run.report_dir.rglob("*") if p.is_file()}
    for name in ("behaviour.json", "exchanges.json", "report.html", "summary.md", "junit.xml"):
        assert name in files, f"{name} not written: {sorted(files)}\n{run.tail()}"
    jsonschema.validate(json.loads(files["behaviour.json"].read_text()), SCHEMA)
    json.loads(files["exchanges.json"].read_text())
    assert files["report.html"].read_text().rstrip().endswith("</html>")
    assert files["summary.md"].read_text().startswith("### regconform")
    ET.parse(files["junit.xml"])
    assert any(n.startswith("allure-results/") for n in files), "no Allure result"
    total = sum(p.stat().st_size for p in files.values())
    assert total < REPORT_BUDGET, f"report folder of {total} bytes"


def assert_red(run: SuiteRun, check: str, pattern: str) -> None:
    """Every variant of `check` red, each reason naming the limit or deviation (`pattern`)."""
    ids = run.ids(check)
    assert ids, f"{check} did not run\n{run.tail()}"
    for node in ids:
        rec = run.records[node]
        assert rec["outcome"] in ("failed", "error"), f"{node}: {rec['outcome']}\n{run.tail()}"
        assert re.search(pattern, rec["reason"] or "", re.IGNORECASE), f"{node}: reason lacks /{pattern}/: {rec['reason']}"
    assert run.returncode == 1, f"exit {run.returncode}\n{run.tail()}"


def red_case(reg: AuthRegistry, rules: Sequence[Rule], check: str, pattern: str, tmp_path: Path,
             *args: str) -> SuiteRun:
    """The suites behind a front with `rules`: `check` red naming `pattern`, and everything survived."""
    with FaultProxy(reg.url, rules) as proxy:
        run, watch = hostile_run(reg, proxy.url, check, tmp_path, *args)
        assert proxy.hits, f"no rule fired\n{run.tail()}"
    assert_red(run, check, pattern)
    assert_survived(run, watch, reg)
    return run


# -- memory: bodies that never end, lie about their size, or explode ----------------------------------


@pytest.mark.parametrize(("name", "rule", "check", "pattern"), [
    ("endless blob body", hs.endless_blob, BLOB_CHECK, r"larger than 64 MiB"),
    ("blob declaring 20 GiB", hs.declared_20_gib_blob, BLOB_CHECK, r"declares 20 GiB.*not read"),
    ("blob dripping 10 bytes/s", hs.dripping_blob, BLOB_CHECK, r"below the minimum throughput of 256 KiB/s after 3 s"),
    ("tags/list nested 900 deep", hs.nested_tags, TAGS_CHECK, r"nested deeper than 64 levels"),
    ("tags/list head dripping a line a second", hs.dripping_head_tags, TAGS_CHECK,
     r"status line and headers were not complete after 3\.4 s"),
], ids=lambda v: v if isinstance(v, str) and " " in v else "")
def test_hostile_answer_is_cut_at_a_limit(auth_upstream: AuthRegistry, tmp_path: Path, name: str, rule, check: str,
                                       pattern: str) -> None:
    red_case(auth_upstream, [rule()], check, pattern, tmp_path)


def test_gzip_bomb_and_30_mb_tag_list_are_cut_at_the_body_cap(auth_upstream: AuthRegistry, tmp_path: Path) -> None:
    """8 MB → 8 GiB of gzip never gets decompressed beyond the 4 MiB cap; a 30 MB tag list is refused
    by its declared size; the reports stay small (bounded excerpts)."""
    for n, body_rule in enumerate((hs.gzip_bomb_tags(hs.gzip_bomb()), hs.big_tags(hs.big_tag_list()))):
        red_case(auth_upstream, [body_rule], TAGS_CHECK, r"4 MiB", tmp_path / str(n))


def test_large_answer_within_the_cap_is_recorded_as_a_bounded_excerpt(auth_upstream: AuthRegistry,
                                                                      tmp_path: Path) -> None:
    """A 3.6 MB tag list (within the cap) is read, but reports keep a 2 KiB excerpt with the true size, and
    the observed list its first 100 names and its length."""
    with FaultProxy(auth_upstream.url, [hs.extra_tags(200_000)]) as proxy:
        run, watch = hostile_run(auth_upstream, proxy.url, TAGS_CHECK, tmp_path)
    assert_red(run, TAGS_CHECK, r"tags listed after push")
    assert_survived(run, watch, auth_upstream)
    exchanges = json.loads((run.report_dir / "exchanges.json").read_text())["checks"]
    tag_answers = [ex for exs in exchanges.values() for ex in exs if "/tags/list" in ex["url"]]
    assert tag_answers and all(3 << 20 < ex["response_body_size"] < 4 << 20 for ex in tag_answers)
    assert all(f"{ex['response_body_size']} bytes in all" in ex["response_excerpt"] for ex in tag_answers)
    observed = run.record(TAGS_CHECK + "[docker]")["observations"]["tags"]
    assert len(observed) == 101 and "in all" in observed[-1]


# -- outputs: deep JSON and injected text -------------------------------------------------------------


def test_deeply_nested_error_body_is_a_deviation_not_a_crash(auth_upstream: AuthRegistry, tmp_path: Path) -> None:
    red_case(auth_upstream, [hs.nested_error()], UNKNOWN_MANIFEST, r"Deviation.*error codes none", tmp_path)


def test_injected_error_codes_are_inert_in_every_output(auth_upstream: AuthRegistry, tmp_path: Path) -> None:
    # red_case includes: no raw control character on the terminal
    run = red_case(auth_upstream, [hs.injected_error_code()], UNKNOWN_MANIFEST, r"MANIFEST_UNKNOWN", tmp_path)
    assert "\\x1b]0;pwned" in run.stdout  # shown, escaped
    md = (run.report_dir / "summary.md").read_text()
    for raw in ("<script>", "<img", "](javascript:", "`code`", "\x1b", "\u202e"):
        assert raw not in md, f"{raw!r} raw in summary.md"
    assert not re.search(r"(?<!\\)\| cell", md), "an unescaped | from the registry in summary.md"
    assert "&lt;script&gt;" in md and "\\]\\(javascript:" in md  # the API version header, escaped
    html = (run.report_dir / "report.html").read_text()
    assert "<script>alert(1)" not in html and "onerror=alert(2)>" not in html


# -- secrets: a registry that echoes the Authorization header -------------------------------------------


def test_echoed_authorization_never_reaches_an_output(auth_upstream: AuthRegistry, tmp_path: Path) -> None:
    with FaultProxy(auth_upstream.url, [hs.echo_authorization()]) as proxy:
        run, watch = hostile_run(auth_upstream, proxy.url, f"{TAGS_CHECK} or {UNKNOWN_MANIFEST} or test_api_version",
                                 tmp_path)
        echoed = [h for h in proxy.hits]
    assert echoed, "the echo rule never fired"
    assert run.records, run.tail()
    assert_survived(run, watch, auth_upstream)
    exchanges = (run.report_dir / "exchanges.json").read_text()
    assert "x-echo-authorization" in exchanges and "<redacted>" in exchanges  # recorded, scrubbed


# -- redirects ------------------------------------------------------------------------------------------


def test_blob_redirect_to_another_origin_is_followed_without_the_credentials(auth_upstream: AuthRegistry,
                                                                            tmp_path: Path) -> None:
    """A CDN origin (its own credentials, like a presigned URL) serves the blobs; the registry's Authorization
    never reaches it; the hop is recorded in the exchange."""
    arrived: list[str | None] = []
    own = "Basic " + base64.b64encode(f"{auth_upstream.username}:{auth_upstream.password}".encode()).decode()

    def sign(req: Request) -> Request:
        arrived.append(req.headers.get("authorization"))
        headers = req.headers.copy()
        headers["authorization"] = own
        return Request(req.method, req.path, headers, req.body)

    with FaultProxy(auth_upstream.url, [Rule(r".", rewrite=sign)]) as cdn, \
            FaultProxy(auth_upstream.url, [hs.redirect_blobs_to(cdn.url)]) as front:
        run, watch = hostile_run(auth_upstream, front.url, BLOB_CHECK, tmp_path)
    assert run.returncode == 0 and all(o == "passed" for o in run.outcomes(BLOB_CHECK).values()), run.tail()
    assert arrived and all(a is None for a in arrived), "the registry's Authorization went to another origin"
    assert_survived(run, watch, auth_upstream)
    exchanges = json.loads((run.report_dir / "exchanges.json").read_text())["checks"]
    hops = [ex["redirects"] for exs in exchanges.values() for ex in exs if ex.get("redirects")]
    assert hops and all(h[0].startswith("307 → " + cdn.url) for h in hops)


def test_profile_saying_blobs_are_not_redirected_makes_a_redirect_the_answer(auth_upstream: AuthRegistry,
                                                                             tmp_path: Path) -> None:
    """`blobs.redirect.follow = false`: the 307 is what the blob check judges (a deviation naming it)."""
    profile = tmp_path / "no-redirects"
    profile.mkdir()
    (profile / "profile.toml").write_text('name = "no-redirects"\nextends = "distribution-2.8"\n')
    (profile / "pull.toml").write_text('[checks."blobs.redirect"]\nfollow = false\nnote = "self-test"\n')
    red_case(auth_upstream, [hs.redirect_blobs_to("http://cdn.elsewhere.invalid")], BLOB_CHECK,
             r"expected 200 .*got 307", tmp_path, f"--profile={profile}")


def test_upload_location_on_a_foreign_origin_names_both_origins(auth_upstream: AuthRegistry, tmp_path: Path) -> None:
    red_case(auth_upstream, [hs.foreign_upload_location()], MONOLITHIC,
             r"host registry\.elsewhere\.invalid port 5000 \(http\), another origin than its own", tmp_path)


# -- token realms ---------------------------------------------------------------------------------------


def realm_cases(proxy_url: str, silent_url: str) -> list[tuple[str, Sequence[Rule], str]]:
    return [
        ("non-HTTP realm", [hs.bearer_challenge("file:///etc/passwd")], r"not an http\(s\) URL"),
        ("ftp realm", [hs.bearer_challenge("ftp://127.0.0.1/token")], r"not an http\(s\) URL"),
        ("token answer not JSON", [hs.token_answer(200, {"content-type": "text/html"}, b"<html>hi</html>"),
                                   hs.bearer_challenge(f"{proxy_url}/token")], r"not JSON"),
        ("redirecting realm", [hs.token_answer(302, {"location": "ftp://127.0.0.1/elsewhere"}, b""),
                               hs.bearer_challenge(f"{proxy_url}/token")], r"redirected 302 → ftp://"),
        ("silent token service", [hs.bearer_challenge(f"{silent_url}/token")],
         rf"token service {re.escape(silent_url)} .*did not answer within {TIMEOUT} s"),
    ]


def test_token_realm_failures_say_what_happened(auth_upstream: AuthRegistry, tmp_path: Path) -> None:
    """Each is an environment failure of the run (exit 2, one line), never "rejected the credentials"."""
    with hs.SilentServer() as silent:
        for n, (name, rules, pattern) in enumerate(realm_cases("", silent.url)):
            with FaultProxy(auth_upstream.url, []) as proxy:
                proxy.set_rules(realm_cases(proxy.url, silent.url)[n][1])
                run, watch = hostile_run(auth_upstream, proxy.url, "test_api_version", tmp_path / str(n))
            out = run.stdout + run.stderr
            assert run.returncode == 2, f"{name}: exit {run.returncode}\n{run.tail()}"
            assert re.search(pattern, out), f"{name}: output lacks /{pattern}/\n{run.tail()}"
            assert "rejected the credentials" not in out, name
            assert_survived(run, watch, auth_upstream, reports=False)
            doc = json.loads((run.report_dir / "behaviour.json").read_text())
            assert doc["run"]["stopped"].startswith("environment: "), name


def test_token_request_keeps_the_realm_query_and_sends_a_user_agent() -> None:
    from regconform.registry.auth import RegistryAuth

    auth = RegistryAuth("u", "secret-password")
    auth._bearer = {"realm": "https://auth.example/token?tenant=a&x=1", "service": "reg"}  # noqa: SLF001
    req = auth.token_request("repository:r:pull")
    assert req.url.params.get("tenant") == "a" and req.url.params.get("scope") == "repository:r:pull"
    assert req.headers["user-agent"].startswith("regconform/")
    assert req.extensions["timeout"]["read"] == auth.limits.timeout


# -- time: a registry that stops answering -------------------------------------------------------------


def test_frozen_registry_after_sigterm_ends_with_a_partial_report(auth_upstream: AuthRegistry, tmp_path: Path) -> None:
    """SIGTERM mid-run, the registry frozen: the teardown cleanup gives up at the first unanswered DELETE
    (a warning), and the reports say the run was interrupted and how many checks ran."""
    report_dir = tmp_path / "reports"
    selection = "test_monolithic_upload or test_single_post or test_streamed_patch or test_chunked_patch or test_upload_cancel"
    # Each PUT answered a second late: the run is still busy when SIGTERM comes, however fast the machine.
    with FaultProxy(auth_upstream.url, [Rule(r".", method="PUT", delay=1.0)]) as proxy, \
            hs.ArgvWatch(secrets_of(auth_upstream)) as watch:
        argv = [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q", "-rfEs", "--ignore=suites/mirror",
                f"--registry-url={proxy.url}", f"--report-dir={report_dir}", f"--username={auth_upstream.username}",
                f"--junitxml={report_dir / 'junit.xml'}", f"--alluredir={report_dir / 'allure-results'}", "-k", selection]
        proc = subprocess.Popen(argv, cwd=REPO, env=clean_env({"REGCONFORM_PASSWORD": auth_upstream.password,
                                                               "REGCONFORM_TIMEOUT": TIMEOUT}),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            pushed = 0
            while pushed < 3 and proc.poll() is None:  # wait until blobs were pushed (cleanup has work)
                pushed = sum(1 for h in proxy.hits if h.method == "PUT")
                time.sleep(0.2)
            proxy.set_rules([Rule(r".", delay=3600)])  # frozen: nothing answers any more
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=300)  # a hang guard, not a timing assertion
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    run = SuiteRun(proc.returncode, out, err, report_dir, read_records(report_dir))
    assert_survived(run, watch, auth_upstream)
    assert "stopped answering" in out + err, run.tail()
    doc = json.loads((report_dir / "behaviour.json").read_text())
    assert doc["run"]["complete"] is False and "interrupted" in doc["run"]["stopped"]
    assert doc["run"]["ran"] < doc["run"]["selected"]
    assert "Partial run" in (report_dir / "summary.md").read_text()


def test_registry_unreachable_from_the_start_is_an_environment_failure(auth_upstream: AuthRegistry,
                                                                     tmp_path: Path) -> None:
    """The preflight reaches the registry, then it goes away: a few environment errors, the run stops,
    exit 2 (no check could complete), not one deviation per check."""
    with FaultProxy(auth_upstream.url, []) as proxy:
        def vanish(resp):  # noqa: ANN001, ANN202 - after the preflight's authorized GET /v2/, the registry is gone
            if resp.status == 200:
                proxy.vanish()
            return resp

        proxy.set_rules([Rule(r"^/v2/$", transform=vanish, times=2)])
        run, watch = hostile_run(auth_upstream, proxy.url, f"{BLOB_CHECK} or {TAGS_CHECK} or {UNKNOWN_MANIFEST}",
                                 tmp_path)
    assert run.returncode == 2, run.tail()
    assert_survived(run, watch, auth_upstream)
    doc = json.loads((run.report_dir / "behaviour.json").read_text())
    assert "stopped answering" in doc["run"]["stopped"]
    errors = [c for c in doc["checks"] if c["outcome"] in ("failed", "error")]
    assert errors, doc["checks"]
    not_environment = [(c["id"], c["reason"]) for c in errors if not c["reason"].startswith("environment: ")]
    assert not not_environment, not_environment
    assert len(errors) <= 3 < doc["run"]["selected"]
