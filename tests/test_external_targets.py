"""The suites against real registries reached by URL, as users run them: `regconform run` or
`pytest suites` in a subprocess, against the plain registry, htpasswd, token auth (the fixture
token issuer) and TLS. Subsets (-k) keep it fast; each registry is a container removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from authregistries import (
    AuthRegistry,
    clean_env,
    htpasswd_registry,
    leaked,
    outcomes,
    registry_image,
    run_cli,
    run_pytest,
    tls_registry,
    token_registry,
)

from regconform.targets.base import free_port, registry_env
from regconform.targets.container import ContainerTarget

pytestmark = pytest.mark.selftest_slow

SUBSET = "base or pull or content_management"
AUTH_SUBSET = f"{SUBSET} or auth"


def failed(report_dir: Path) -> list[str]:
    return [f"{cid}: {c['reason']}" for cid, c in outcomes(report_dir).items() if c["outcome"] in ("failed", "error")]


def passed_in(report_dir: Path, workflow: str) -> list[str]:
    return [cid for cid, c in outcomes(report_dir).items() if c["workflow"] == workflow and c["outcome"] == "passed"]


@pytest.fixture(scope="module")
def plain() -> Iterator[ContainerTarget]:
    target = ContainerTarget(registry_image(), registry_env(True), f"ext-{uuid.uuid4().hex[:8]}")
    yield target
    target.stop()


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with htpasswd_registry(tmp_path_factory.mktemp("htpasswd")) as reg:
        yield reg


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with token_registry(tmp_path_factory.mktemp("token")) as reg:
        yield reg


def test_suites_pass_against_the_embedded_registry_reached_by_url(plain: ContainerTarget, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = run_cli("--registry-url", plain.url, "-k", AUTH_SUBSET, "--report-dir", str(reports), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not failed(reports)
    assert passed_in(reports, "pull") and passed_in(reports, "content-management")
    auth = [c for c in outcomes(reports).values() if c["workflow"] == "auth"]
    assert auth and all(c["outcome"] == "skipped" and "does not require authentication" in str(c["reason"]) for c in auth)


def test_pytest_suites_take_every_setting_from_the_environment(plain: ContainerTarget, tmp_path: Path) -> None:
    """`pytest suites` with REGCONFORM_* only: the URL, a namespace prefix and the report folder."""
    namespace = f"envns-{uuid.uuid4().hex[:6]}"
    env = clean_env(REGCONFORM_REGISTRY_URL=plain.url, REGCONFORM_NAMESPACE=namespace,
                    REGCONFORM_REPORT_DIR=str(tmp_path / "reports"))
    proc = run_pytest("suites", "-k", "base or test_manifest_put", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not failed(tmp_path / "reports") and passed_in(tmp_path / "reports", "pull")
    repos = httpx.get(f"{plain.url}/v2/_catalog", params={"n": 1000}).json()["repositories"]
    assert any(r.startswith(f"{namespace}/") for r in repos), repos


def test_htpasswd_registry_with_the_password_on_stdin(htpasswd: AuthRegistry, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = run_cli("--registry-url", htpasswd.url, "--username", htpasswd.username, "--password-stdin",
                   "-k", AUTH_SUBSET, "--report-dir", str(reports), cwd=tmp_path, stdin=htpasswd.password + "\n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not failed(reports)
    auth = {cid.split("::")[-1]: c["outcome"] for cid, c in outcomes(reports).items() if c["workflow"] == "auth"}
    # Basic auth has no token scopes: those two skip, the rest must pass.
    assert auth == {
        "test_every_endpoint_answers_401_with_a_challenge_without_credentials": "passed",
        "test_wrong_credentials_are_refused_with_401": "passed",
        "test_invalid_token_is_refused": "skipped",
        "test_token_without_push_scope_cannot_push_or_delete": "skipped",
        "test_anonymous_pull_only_where_configured_and_never_push": "passed",
    }
    assert not leaked([htpasswd.password], reports, proc.stdout, proc.stderr)


def test_token_registry_with_the_password_in_the_environment(token: AuthRegistry, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    before = len(token.issuer.requests)  # type: ignore[union-attr]
    proc = run_cli("--registry-url", token.url, "--username", token.username, "-k", AUTH_SUBSET, "-n", "2",
                   "--report-dir", str(reports), cwd=tmp_path, env=clean_env(REGCONFORM_PASSWORD=token.password))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not failed(reports)
    assert len(passed_in(reports, "auth")) == 5
    issuer = token.issuer
    assert issuer is not None and issuer.issued
    assert not leaked([token.password, *issuer.issued], reports, proc.stdout, proc.stderr)
    # Tokens are cached per scope: far fewer token requests than registry requests.
    exchanges = sum(len(c.get("facts", [])) for c in outcomes(reports).values())
    token_requests = len(issuer.requests) - before
    assert 0 < token_requests < exchanges / 3, (token_requests, exchanges)


def test_anonymous_pull_is_a_profile_setting(tmp_path: Path) -> None:
    """A token service granting anonymous pull: the default profile (401) flags it, a profile saying 200 passes."""
    with token_registry(tmp_path / "reg", anonymous_actions=frozenset({"pull"})) as reg:
        env = clean_env(REGCONFORM_PASSWORD=reg.password)
        common = ("--registry-url", reg.url, "--username", reg.username, "-k", "anonymous_pull")
        strict = run_cli(*common, "--report-dir", str(tmp_path / "strict"), cwd=tmp_path, env=env)
        assert strict.returncode == 1, strict.stdout[-2000:]
        assert "auth.anonymous-pull" in strict.stdout and "anonymous GET manifest" in strict.stdout
        profile = tmp_path / "anonymous-pull"
        profile.mkdir()
        (profile / "profile.toml").write_text('name = "anonymous-pull"\nextends = "distribution-2.8"\n')
        (profile / "auth.toml").write_text('[checks."auth.anonymous-pull"]\nstatus = 200\n')
        lenient = run_cli(*common, "--profile", str(profile), "--report-dir", str(tmp_path / "lenient"), cwd=tmp_path, env=env)
        assert lenient.returncode == 0, lenient.stdout[-2000:]
        assert passed_in(tmp_path / "lenient", "auth")


def test_tls_registry_with_ca_cert_and_insecure(tmp_path: Path) -> None:
    with tls_registry(tmp_path / "tls") as reg:
        assert reg.url.startswith("https://127.0.0.1:")
        proc = run_cli("--registry-url", reg.url, "--ca-cert", str(reg.ca), "-k", SUBSET,
                       "--report-dir", str(tmp_path / "ca"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert not failed(tmp_path / "ca") and passed_in(tmp_path / "ca", "pull")
        insecure = run_cli("--registry-url", reg.url, "--insecure", "-k", "base", "--report-dir", str(tmp_path / "insecure"),
                           cwd=tmp_path)
        assert insecure.returncode == 0, insecure.stdout[-2000:]
        unverified = run_cli("--registry-url", reg.url, "-k", "base", "--report-dir", str(tmp_path / "none"), cwd=tmp_path)
        assert unverified.returncode == 2
        assert unverified.stderr.count("\n") == 1 and "CERTIFICATE_VERIFY_FAILED" in unverified.stderr
        assert unverified.stderr.startswith(f"regconform: error: TLS failure talking to {reg.url}")


def test_htpasswd_over_tls(tmp_path: Path) -> None:
    with htpasswd_registry(tmp_path / "reg", tls=True) as reg:
        proc = run_cli("--registry-url", reg.url, "--ca-cert", str(reg.ca), "--username", reg.username,
                       "--password-stdin", "-k", "base or auth", "--report-dir", str(tmp_path / "r"), cwd=tmp_path,
                       stdin=reg.password)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert len(passed_in(tmp_path / "r", "auth")) == 3


def test_gc_checks_skip_without_commands_and_run_with_them(tmp_path: Path) -> None:
    """No --gc-command: the GC checks are skipped with that reason (never passed); with the commands they run."""
    target = ContainerTarget(registry_image(), registry_env(True), f"gc-{uuid.uuid4().hex[:8]}", host_port=free_port())
    try:
        skipped = run_cli("--registry-url", target.url, "--report-dir", str(tmp_path / "skip"), cwd=tmp_path,
                          env=clean_env(REGCONFORM_MARKEXPR="needs_gc"))  # -m through its environment variable
        assert skipped.returncode == 0, skipped.stdout[-2000:]
        assert not passed_in(tmp_path / "skip", "pull")  # -m selected the GC checks only
        gc = [c for c in outcomes(tmp_path / "skip").values() if c["workflow"] == "garbage-collection"]
        assert gc and all(c["outcome"] == "skipped" and "--gc-command" in str(c["reason"]) for c in gc)
        cid = target.container_id
        namespace = f"gcns-{uuid.uuid4().hex[:6]}"
        ran = run_cli("--registry-url", target.url, "-k", "gc", "--report-dir", str(tmp_path / "ran"), "--require-gc",
                      "--namespace", namespace,
                      "--gc-command", f"docker exec {cid} registry garbage-collect /etc/docker/registry/config.yml",
                      "--restart-command", f"docker restart -t 2 {cid}", "--gc-delete-untagged", cwd=tmp_path)
        assert ran.returncode == 0, ran.stdout[-3000:]
        gc = [c for c in outcomes(tmp_path / "ran").values() if c["workflow"] == "garbage-collection"]
        assert gc and all(c["outcome"] == "passed" for c in gc), [(c["id"], c["outcome"], c["reason"]) for c in gc]
        # What the GC checks pushed (before and after the restart) is removed at the end too.
        repos = [r for r in httpx.get(f"{target.url}/v2/_catalog").json()["repositories"] if r.startswith(namespace)]
        assert repos
        for repo in repos:
            tags = httpx.get(f"{target.url}/v2/{repo}/tags/list")
            assert tags.status_code == 404 or not tags.json().get("tags"), (repo, tags.text)
    finally:
        target.stop()


def test_tokens_are_cached_per_scope_and_refetched_after_expiry(tmp_path: Path) -> None:
    """One token per scope while it is fresh; a new one once it expires (lifetime 12 s - 10 s margin)."""
    import time

    from regconform.content.images import fixture_set, push_image
    from regconform.registry.auth import RegistryAuth
    from regconform.registry.client import RegistryClient

    with token_registry(tmp_path / "reg") as reg:
        assert reg.issuer is not None
        reg.issuer.lifetime = 12
        auth = RegistryAuth(reg.username, reg.password)
        with RegistryClient(reg.url, auth=auth) as client:
            image = fixture_set("docker").alpha
            push_image(client, "cache/a", image)
            pushed = auth.token_fetches  # the push scope and the pull scope (push_image checks blobs first)
            for _ in range(5):
                assert client.get_manifest("cache/a", image.digest).status_code == 200
                assert client.head_blob("cache/a", image.layers[0].digest).status_code == 200
            assert auth.token_fetches == pushed  # both scopes cached
            scopes = [r["scopes"] for r in reg.issuer.requests]
            assert ["repository:cache/a:pull"] in scopes and ["repository:cache/a:pull,push"] in scopes
            time.sleep(2.5)
            assert client.get_manifest("cache/a", image.digest).status_code == 200
            assert auth.token_fetches == pushed + 1  # expired: fetched again, before the registry refused it
            assert "RegistryAuth(username='regconform-user')" == repr(auth) and reg.password not in repr(auth)


def test_restart_checks_need_only_the_restart_command(tmp_path: Path) -> None:
    """--restart-command alone: the check that restarts runs and passes; the GC checks skip naming what is missing."""
    target = ContainerTarget(registry_image(), registry_env(True), f"rst-{uuid.uuid4().hex[:8]}", host_port=free_port())
    try:
        reports = tmp_path / "restart"
        proc = run_cli("--registry-url", target.url, "-k", "after_restart or garbage_collection", "--report-dir",
                       str(reports), "--restart-command", f"docker restart -t 2 {target.container_id}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        got = outcomes(reports)
        restart = [c for cid, c in got.items() if "after_restart" in cid]
        assert len(restart) == 2 and all(c["outcome"] == "passed" for c in restart), restart
        gc = [c for c in got.values() if c["workflow"] == "garbage-collection"]
        assert gc and all(c["outcome"] == "skipped" and "--gc-command" in str(c["reason"]) for c in gc), gc
    finally:
        target.stop()


def test_deletion_disabled_checks_on_an_external_target(plain: ContainerTarget, tmp_path: Path) -> None:
    """Without --deletion-disabled-url they skip, naming the option; with it they run there and pass; a URL that
    is not a registry is one line on stderr and exit 2."""
    selection = ("-k", "deletion_is_disabled or deletion_disabled_error")
    skipped = run_cli("--registry-url", plain.url, *selection, "--report-dir", str(tmp_path / "skip"), cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stdout[-2000:]
    got = outcomes(tmp_path / "skip")
    assert len(got) == 5 and all(c["outcome"] == "skipped" and "--deletion-disabled-url" in str(c["reason"])
                                 for c in got.values()), got
    disabled = ContainerTarget(registry_image(), registry_env(False), f"dd-{uuid.uuid4().hex[:8]}")
    try:
        ran = run_cli("--registry-url", plain.url, *selection, "--deletion-disabled-url", disabled.url,
                      "--report-dir", str(tmp_path / "ran"), cwd=tmp_path)
        assert ran.returncode == 0, ran.stdout[-3000:]
        got = outcomes(tmp_path / "ran")
        assert len(got) == 5 and all(c["outcome"] == "passed" for c in got.values()), got
    finally:
        disabled.stop()
    bad = run_cli("--registry-url", plain.url, *selection, "--deletion-disabled-url", f"http://127.0.0.1:{free_port()}",
                  "--report-dir", str(tmp_path / "bad"), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "--deletion-disabled-url" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_gc_and_restart_checks_on_an_external_target_need_a_serial_run(plain: ContainerTarget, tmp_path: Path) -> None:
    """With -n 2 the other worker would meet a registry being collected or restarted: skipped with that reason."""
    cid = plain.container_id
    proc = run_cli("--registry-url", plain.url, "-n", "2", "-k", "garbage_collection or after_restart",
                   "--gc-command", f"docker exec {cid} registry garbage-collect /etc/docker/registry/config.yml",
                   "--restart-command", f"docker restart -t 2 {cid}", "--report-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]
    got = outcomes(tmp_path / "r")
    # Every GC and restart check of the selection (10 on this commit's suites, more as they grow).
    assert len(got) >= 10 and all(c["outcome"] == "skipped" and "serial run" in str(c["reason"]) for c in got.values()), got
