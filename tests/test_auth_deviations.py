"""Every auth check can fail: a FaultProxy between the suites and a real token (or htpasswd)
registry makes it deviate in one way, and exactly the matching auth checks turn red with a
reason naming the deviation; through the clean proxy all five pass.

The token service stays where the registry's challenge points (127.0.0.1, not proxied): only the
registry's answers are edited.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from authregistries import (
    AuthRegistry,
    clean_env,
    htpasswd_registry,
    outcomes,
    run_cli,
    token_registry,
)
from faultproxy import FaultProxy, Request, Response, Rule

pytestmark = pytest.mark.selftest_slow

AUTH_CHECKS = {
    "every_endpoint": "test_every_endpoint_answers_401_with_a_challenge_without_credentials",
    "wrong_credentials": "test_wrong_credentials_are_refused_with_401",
    "invalid_token": "test_invalid_token_is_refused",
    "push_scope": "test_token_without_push_scope_cannot_push_or_delete",
    "anonymous": "test_anonymous_pull_only_where_configured_and_never_push",
}


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with token_registry(tmp_path_factory.mktemp("token")) as reg:
        yield reg


def auth_outcomes(reg: AuthRegistry, rules: list[Rule], tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Run the auth suite through a proxy with `rules`: check short name → (outcome, reason)."""
    with FaultProxy(reg.url, rules) as proxy:
        proc = run_cli("--registry-url", proxy.url, "--username", reg.username, "--password-stdin", "-k", "test_auth",
                       "--report-dir", str(tmp_path / "r"), cwd=tmp_path, stdin=reg.password, env=clean_env())
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr
    by_name = {cid.split("::")[-1]: (c["outcome"], str(c["reason"])) for cid, c in outcomes(tmp_path / "r").items()}
    return {short: by_name[name] for short, name in AUTH_CHECKS.items()}


def red(results: dict[str, tuple[str, str]]) -> set[str]:
    return {short for short, (outcome, _) in results.items() if outcome in ("failed", "error")}


def on_status(status: int, edit):  # noqa: ANN001, ANN202 - a Rule.transform that edits only answers with `status`
    return lambda resp: edit(resp) if resp.status == status else resp


def _drop_challenge(resp: Response) -> Response:
    headers = resp.headers.copy()
    headers.pop("www-authenticate", None)
    return replace(resp, headers=headers)


def _scope_403(resp: Response) -> Response:
    return replace(resp, status=403) if "insufficient_scope" in resp.headers.get("www-authenticate", "") else resp


def _narrow_push_scope(resp: Response) -> Response:
    headers = resp.headers.copy()
    headers["www-authenticate"] = headers.get("www-authenticate", "").replace(":pull,push", ":pull").replace(":push,pull", ":pull")
    return replace(resp, headers=headers)


def _delete_despite_scope(resp: Response) -> Response:
    if "insufficient_scope" not in resp.headers.get("www-authenticate", ""):
        return resp
    return replace(resp, status=202, headers={"content-length": "0"}, body=b"")


def _accept_forged_token(resp: Response) -> Response:
    if "invalid_token" not in resp.headers.get("www-authenticate", ""):
        return resp
    return replace(resp, status=200, headers={"content-type": "application/json", "content-length": "2"}, body=b"{}")


def test_clean_proxy_keeps_every_auth_check_green(token: AuthRegistry, tmp_path: Path) -> None:
    results = auth_outcomes(token, [], tmp_path)
    assert all(outcome == "passed" for outcome, _ in results.values()), results


def test_missing_challenge_on_manifest_answers(token: AuthRegistry, tmp_path: Path) -> None:
    results = auth_outcomes(token, [Rule(r"/manifests/", transform=on_status(401, _drop_challenge))], tmp_path)
    # Three checks read the challenge of a manifest 401: unauthenticated, wrong password, insufficient scope.
    assert red(results) == {"every_endpoint", "wrong_credentials", "push_scope"}, results
    assert "no www-authenticate header" in results["every_endpoint"][1]
    assert "challenge error of PUT manifest under a new tag with a pull-only token" in results["push_scope"][1]


def test_challenge_naming_the_wrong_scope(token: AuthRegistry, tmp_path: Path) -> None:
    results = auth_outcomes(token, [Rule(r"/manifests/", method="PUT", transform=on_status(401, _narrow_push_scope))],
                            tmp_path)
    assert red(results) == {"every_endpoint"}, results
    assert "Bearer challenge scope of PUT manifest" in results["every_endpoint"][1]


def test_insufficient_scope_answered_403(token: AuthRegistry, tmp_path: Path) -> None:
    results = auth_outcomes(token, [Rule(r"^/v2/.+", transform=on_status(401, _scope_403))], tmp_path)
    assert red(results) == {"push_scope", "anonymous"}, results
    assert "pull-only token: expected 401" in results["push_scope"][1] and "got 403" in results["push_scope"][1]


def test_delete_with_a_pull_only_token_succeeds(token: AuthRegistry, tmp_path: Path) -> None:
    results = auth_outcomes(token, [Rule(r"/manifests/sha256:", method="DELETE",
                                         transform=on_status(401, _delete_despite_scope))], tmp_path)
    assert red(results) == {"push_scope"}, results
    assert "DELETE manifest with a pull-only token: expected 401" in results["push_scope"][1]


def test_registry_that_accepts_any_password(tmp_path: Path) -> None:
    """htpasswd behind a proxy that swaps any Basic password for the right one."""
    with htpasswd_registry(tmp_path / "reg") as reg:
        right = "Basic " + base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()

        def any_password(request: Request) -> Request:
            headers = request.headers.copy()
            if headers.get("authorization", "").startswith("Basic "):
                headers["authorization"] = right
            return replace(request, headers=headers)

        results = auth_outcomes(reg, [Rule(r"^/v2/", rewrite=any_password)], tmp_path)
    assert red(results) == {"wrong_credentials"}, results
    assert "GET /v2/ with a wrong password: expected 401" in results["wrong_credentials"][1]


def test_forged_token_accepted(token: AuthRegistry, tmp_path: Path) -> None:
    results = auth_outcomes(token, [Rule(r"^/v2/$", transform=on_status(401, _accept_forged_token))], tmp_path)
    assert red(results) == {"invalid_token"}, results
    assert "GET /v2/ with a forged token: expected 401" in results["invalid_token"][1]
