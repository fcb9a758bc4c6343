"""The credential-boundary check catches a mirror that forwards upstream credentials to a foreign realm.

- Fault proxy as the mirror: in front of a distribution 2.8.2 mirror that never sends credentials to a
  realm (they are in its remote URL, for the upstream only), addressed by URL with --realm-url. Clean,
  the check is green under a profile recording "sends none"; with a rule that forwards the upstream
  credentials to the realm on every manifest GET (what a mirror affected by CVE-2026-33540 does), it
  is red, naming the realm and the scheme.
- Real mirrors (embedded, local processes): Debian's 2.8.2 holding proxy.username/password sends them
  (red under distribution-3, which records the 3.1.0 fix); v3.1.1 sends none (green under distribution-3).
No report of any run carries the password.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faultproxy import FaultProxy, Request, Rule
from suiterun import SuiteRun, run_command

from regconform.resources import CHECKOUT
from regconform.targets.mirrors.realm import HostileUpstreamMirror

pytestmark = pytest.mark.selftest_slow

V3 = CHECKOUT.parent / "shared" / "registries" / "registry-v3.1.1"
CHECK = "test_credentials_not_sent_to_foreign_realm"


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstreamMirror]:
    topology = HostileUpstreamMirror(credentials_via="remoteurl")
    try:
        yield topology
    finally:
        topology.close()


def no_leak_profile(folder: Path) -> Path:
    folder.mkdir()
    (folder / "profile.toml").write_text('name = "no-foreign-realm-credentials"\nextends = "distribution-2.8"\n')
    (folder / "mirror.toml").write_text('[checks."mirror.credentials.foreign-realm"]\nsends_credentials = false\n'
                                        'note = "a mirror never sends upstream credentials to another origin"\n')
    return folder


def run_check(report_dir: Path, *args: str) -> SuiteRun:
    argv = [sys.executable, "-m", "pytest", "suites/mirror", "-p", "no:cacheprovider", "-q", "-rfEs", "-k", CHECK,
            f"--report-dir={report_dir}", *args]
    return run_command(argv, report_dir=report_dir, timeout=300)


def by_url(topology: HostileUpstreamMirror, mirror_url: str, report_dir: Path) -> SuiteRun:
    return run_check(report_dir, f"--mirror-url={mirror_url}", f"--upstream-url={topology.upstream_url}",
                     f"--realm-url={topology.realm_url}", f"--profile={no_leak_profile(report_dir.parent / 'profile')}")


def forward_credentials(topology: HostileUpstreamMirror):
    """Before passing a manifest GET on, send the upstream credentials to the realm, as a leaky mirror does."""

    def rewrite(request: Request) -> Request:
        creds = topology.credentials
        httpx.get(f"{topology.realm.realm}?service=regconform-upstream", auth=(creds.username, creds.password),
                  timeout=5)
        return request

    return rewrite


def assert_no_secret(report_dir: Path, password: str) -> None:
    for path in report_dir.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(errors="replace"), path


def test_clean_proxy_as_mirror_sends_no_credentials(hostile, tmp_path):
    with FaultProxy(hostile.mirror_url) as proxy:
        run = by_url(hostile, proxy.url, tmp_path / "run")
    assert run.returncode == 0, run.tail()
    assert run.outcome(CHECK) == "passed", run.tail()
    observed = run.record(CHECK)["observations"]["foreign_realm"]
    assert observed["with_upstream_credentials"] == 0, observed
    assert_no_secret(tmp_path, hostile.credentials.password)


def test_mirror_forwarding_credentials_to_foreign_realm_is_caught(hostile, tmp_path):
    rules = [Rule(r"/manifests/", method="GET", rewrite=forward_credentials(hostile))]
    with FaultProxy(hostile.mirror_url, rules) as proxy:
        run = by_url(hostile, proxy.url, tmp_path / "run")
        assert proxy.hits, "the rule never fired"
    assert run.returncode == 1, run.tail()
    assert run.outcome(CHECK) == "failed", run.tail()
    reason = run.reason(CHECK)
    for word in ("sent the upstream credentials (Basic) to the token realm <origin>",  # reports mask origins
                 "another origin than the upstream", "expected sends_credentials=False",
                 "no-foreign-realm-credentials: mirror.credentials.foreign-realm"):
        assert word in reason, f"{word!r} not in {reason!r}"
    assert_no_secret(tmp_path, hostile.credentials.password)


def test_real_2_8_mirror_sends_credentials_to_foreign_realm(tmp_path):
    """Debian's 2.8.2 with proxy.username/password, judged by distribution-3 (the 3.1.0 fix): red."""
    run = run_check(tmp_path, "--profile=distribution-3")
    assert run.returncode == 1, run.tail()
    assert "sent the upstream credentials (Basic) to the token realm" in run.reason(CHECK), run.reason(CHECK)
    assert "distribution-3: mirror.credentials.foreign-realm" in run.reason(CHECK)


def test_real_2_8_mirror_is_recorded_unsupported(tmp_path):
    """Under its own profile 2.8.2's leak is reported as unsupported (never as a pass), naming the CVE."""
    run = run_check(tmp_path, "--profile=distribution-2.8")
    assert run.returncode == 0, run.tail()
    record = run.record(CHECK)
    assert record["outcome"] == "unsupported", record
    assert "CVE-2026-33540" in (record["reason"] or ""), record["reason"]


@pytest.mark.skipif(not V3.is_file(), reason=f"{V3} is absent (see ../shared/registries/README.md)")
def test_v3_1_1_mirror_sends_no_credentials(tmp_path):
    run = run_check(tmp_path, "--profile=distribution-3", f"--mirror-binary={V3}")
    assert run.returncode == 0, run.tail()
    assert run.outcome(CHECK) == "passed", run.tail()
    assert run.record(CHECK)["observations"]["foreign_realm"]["requests"] == 0
