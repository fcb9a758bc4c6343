"""The clients matrix through TLS with a CA and through htpasswd, each client configured its own way.

- TLS: a registry serving a certificate from a CA made per run; the suites get `--ca-cert`, the
  clients that CA (docker certs.d, containers --cert-dir, ctr hosts.toml `ca`, oras/dxf the CA file).
  Every check passes, except two measured client limits on a loopback TLS registry, which skip and say
  why: @sigstore/oci speaks plain HTTP to 127.0.0.1, and `docker manifest push` does too.
- A CA the registry's certificate was not signed by: every client that verifies refuses (proof that
  verification is on); dockerd does not, because it treats 127.0.0.0/8 as an insecure registry
  (its registry/config.go), and that is asserted too, so a change in dockerd shows.
- htpasswd: every check passes, and the password (and its base64 with the user) appears in no
  process's argv while the run goes (sampled from /proc), in no report file and in no output.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest
from authregistries import htpasswd_registry, leaked, tls_registry, write_tls

from regconform.clients.base import ClientFailed, Endpoint, Workspace
from regconform.clients.catalog import CLIENTS
from regconform.content.images import fixture_set, push_index
from regconform.registry.client import RegistryClient

pytestmark = pytest.mark.selftest_slow

SUITE = ["-k", "test_clients.py"]
STRICT_TLS = ("podman", "buildah", "ctr", "skopeo", "oras-py", "python-dxf")


def needs_all_clients() -> None:
    missing = {n: r for n, c in CLIENTS.items() if (r := c.missing())}
    if missing:
        pytest.skip(f"clients missing: {missing}")


class ArgvWatch:
    """Samples every process's command line while a run goes, looking for secrets."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s.encode() for s in secrets]
        self.found: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples += 1
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                        argv = f.read()
                except OSError:
                    continue
                for i, secret in enumerate(self.secrets):
                    if secret in argv:
                        self.found.append(f"pid {entry.name}: secret #{i} in {argv[:80]!r}")
            self._stop.wait(0.05)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def assert_all_passed_but(run, skipped: dict[str, str]) -> None:
    outcomes = run.outcomes("test_clients.py")
    assert len(outcomes) > 70, run.tail()
    bad = {i: o for i, o in outcomes.items() if o != "passed" and not any(s in i for s in skipped)}
    assert not bad, {i: run.reason(i)[:300] for i in bad}
    for name, why in skipped.items():
        for check_id in run.ids(name):
            assert run.outcome(check_id) == "skipped" and why in run.reason(check_id), run.reason(check_id)


def test_matrix_through_tls_with_the_runs_ca(tmp_path, run_suites):
    needs_all_clients()
    with tls_registry(tmp_path / "tls") as reg:
        run = run_suites(reg.url, *SUITE, f"--ca-cert={reg.ca}", timeout=1500)
    # measured client limits on a loopback TLS registry: the checks skip and say so (the shape's pull cells too)
    assert_all_passed_but(run, {"test_sigstore_attaches_two_artifacts": "always uses plain HTTP for localhost/127.0.0.1",
                                "test_client_push[docker-manifest-list]": "docker manifest push (CLI 28.2) sends plain HTTP",
                                "test_client_pulls[docker-manifest-list-": "docker manifest push (CLI 28.2) sends plain HTTP"})


def test_insecure_turns_verification_off_for_every_client(tmp_path, run_suites):
    """`--insecure` without a CA: the harness and every client skip verification (the only way to), so the cells pass."""
    needs_all_clients()
    with tls_registry(tmp_path / "tls") as reg:
        run = run_suites(reg.url, "-k", "test_client_pulls_fixtures and oci", "--insecure", timeout=900)
    assert set(run.outcomes("test_client_pulls_fixtures").values()) == {"passed"}, run.tail()
    assert len(run.outcomes("test_client_pulls_fixtures")) == 7


def test_clients_refuse_a_certificate_from_another_ca(tmp_path):
    """With a CA that did not sign the registry's certificate, each verifying client fails on the certificate."""
    needs_all_clients()
    other = write_tls(tmp_path / "other").ca
    with tls_registry(tmp_path / "tls") as reg:
        fixtures = fixture_set("oci")
        with RegistryClient(reg.url, verify=reg.target.verify) as harness:
            push_index(harness, "tls/check", fixtures.index)
        ws = Workspace(Endpoint(reg.url, ca=other))
        outcome = {}
        try:
            for name in (*STRICT_TLS, "docker"):
                client = CLIENTS[name](ws)
                try:
                    client.pull("tls/check", "multi")
                    outcome[name] = "accepted"
                except (ClientFailed, OSError, Exception) as exc:  # noqa: BLE001 - the SDKs raise their own errors
                    text = str(exc).lower()
                    outcome[name] = "refused: certificate" if any(w in text for w in ("certificate", "x509", "ssl")) else f"refused: {text[:200]}"
                finally:
                    client.close()
        finally:
            ws.close()
    assert outcome == {**{n: "refused: certificate" for n in STRICT_TLS}, "docker": "accepted"}, outcome


def test_matrix_through_htpasswd_never_shows_the_password(tmp_path, run_suites):
    needs_all_clients()
    with htpasswd_registry(tmp_path / "auth") as reg:
        secrets = [reg.password, base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()]
        with ArgvWatch(secrets) as watch:
            run = run_suites(reg.url, *SUITE, f"--username={reg.username}", extra_env={"REGCONFORM_PASSWORD": reg.password},
                             timeout=1500)
    # a measured client policy: python-dxf sends no credentials over plain HTTP, so its checks skip and say so
    assert_all_passed_but(run, {"python-dxf": "python-dxf refuses to send credentials over plain HTTP"})
    assert watch.samples > 10
    assert watch.found == []
    assert leaked(secrets, Path(run.report_dir), run.stdout, run.stderr) == []
