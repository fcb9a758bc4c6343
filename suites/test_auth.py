"""Authentication: challenges, refused credentials, token scopes (Docker Registry token spec;
OCI distribution-spec leaves auth to the registry, so the profile records what it does).

Only for targets that ask for credentials: when `GET /v2/` without credentials answers 200,
every check here is skipped with that reason.
"""

import secrets

import pytest

from regconform.checks import expect_answer, expect_equal, expect_true, observe
from regconform.content.images import fixture_set, push_image
from regconform.registry.auth import (
    RegistryAuth,
    StaticToken,
    parse_challenge,
    scope_key,
)

pytestmark = pytest.mark.workflow("auth")

NO_SUCH_DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def challenge(client_with):
    """The target's challenge to a request without credentials: (scheme, params); skips without auth."""
    resp = client_with(None).ping()
    if resp.status_code == 200:
        pytest.skip("the target does not require authentication (GET /v2/ without credentials answered 200)")
    scheme, params = parse_challenge(resp.headers.get("www-authenticate", ""))
    observe("challenge_scheme", scheme)
    return scheme, params


@pytest.fixture
def bearer(challenge):
    if challenge[0] != "bearer":
        pytest.skip(f"the target uses {challenge[0] or 'no'} challenges, not Bearer tokens: no scopes to check")
    return challenge[1]


def requests_without_credentials(client, repo):
    """(what, scope kind, answer) for every endpoint of the API, sent without credentials."""
    upload = f"/v2/{repo}/blobs/uploads/{secrets.token_hex(8)}"
    yield "GET /v2/", None, client.ping()
    yield "GET manifest", "pull", client.get_manifest(repo, "latest")
    yield "HEAD manifest", "pull", client.head_manifest(repo, "latest")
    yield "PUT manifest", "push", client.put_manifest(repo, "latest", b"{}", "application/vnd.oci.image.manifest.v1+json")
    yield "DELETE manifest", "delete", client.delete_manifest(repo, NO_SUCH_DIGEST)
    yield "GET blob", "pull", client.get_blob(repo, NO_SUCH_DIGEST)
    yield "HEAD blob", "pull", client.head_blob(repo, NO_SUCH_DIGEST)
    yield "DELETE blob", "delete", client.delete_blob(repo, NO_SUCH_DIGEST)
    yield "POST upload", "push", client.start_upload(repo)
    yield "PATCH upload", "push", client.upload_chunk(upload, b"x", start=0)
    yield "PUT upload", "push", client.finish_upload(upload, NO_SUCH_DIGEST)
    yield "GET upload status", "pull", client.upload_status(upload)
    yield "DELETE upload", "delete", client.cancel_upload(upload)
    yield "GET tags/list", "pull", client.list_tags(repo)
    yield "GET _catalog", "catalog", client.catalog()


@pytest.mark.spec("token spec: WWW-Authenticate challenge on every endpoint")
def test_every_endpoint_answers_401_with_a_challenge_without_credentials(client_with, challenge, repo, expect):
    """Without credentials, /v2/ and every endpoint answer 401 with a challenge naming realm, service and scope."""
    exp = expect("auth.unauthenticated")
    scopes = expect("auth.challenge-scope")
    scheme = challenge[0]
    expect_true(scheme in ("basic", "bearer"), f"GET /v2/ challenge scheme {scheme!r} is neither Basic nor Bearer", exp)
    for what, kind, resp in requests_without_credentials(client_with(None), repo):
        expect_answer(resp, exp, f"{what} without credentials")
        got_scheme, params = parse_challenge(resp.headers["www-authenticate"])
        expect_equal(got_scheme, scheme, exp, f"challenge scheme of {what}")
        expect_true(bool(params.get("realm")), f"challenge of {what} names no realm", exp)
        if scheme == "bearer":
            expect_true(bool(params.get("service")), f"Bearer challenge of {what} names no service", exp)
            want = scopes[kind].format(repo=repo) if kind else None
            # 2.8 lists a scope's actions in no fixed order: compared as sets (scope_key sorts them).
            got = params.get("scope")
            expect_equal(got and scope_key(got), want and scope_key(want), scopes, f"Bearer challenge scope of {what}")


@pytest.mark.spec("token spec / htpasswd: refused credentials")
def test_wrong_credentials_are_refused_with_401(client_with, challenge, settings, registry, repo, expect):
    """A wrong password gets 401 and a fresh challenge, on /v2/ and on a repository that exists."""
    push_image(registry, repo, fixture_set("docker").alpha)
    exp = expect("auth.wrong-credentials")
    wrong = client_with(RegistryAuth(settings.username or "regconform-nobody", "wrong-" + secrets.token_hex(8)))
    expect_answer(wrong.ping(), exp, "GET /v2/ with a wrong password")
    expect_answer(wrong.get_manifest(repo, "latest"), exp, "GET manifest with a wrong password")
    expect_answer(wrong.start_upload(repo), exp, "POST upload with a wrong password")


@pytest.mark.spec("token spec: invalid token")
def test_invalid_token_is_refused(client_with, bearer, expect):
    """A bearer token that is not one the token service signed gets 401 with error="invalid_token"."""
    exp = expect("auth.invalid-token")
    resp = client_with(StaticToken("regconform.invalid." + secrets.token_hex(8))).ping()
    expect_answer(resp, exp, "GET /v2/ with a forged token")
    _, params = parse_challenge(resp.headers.get("www-authenticate", ""))
    expect_equal(params.get("error"), exp["challenge_error"], exp, "challenge error for a forged token")


@pytest.mark.spec("token spec: scope of a token")
def test_token_without_push_scope_cannot_push_or_delete(client_with, bearer, registry, repo, expect):
    """A token scoped to pull pulls, but every push and delete is refused and changes nothing."""
    image = fixture_set("docker").alpha
    push_image(registry, repo, image)
    token = registry.bearer_token(f"repository:{repo}:pull")
    exp = expect("auth.insufficient-scope")
    expect_true(token is not None, "the token service gave no pull-only token for the run's own user", exp)
    reader = client_with(StaticToken(token))
    expect_answer(reader.get_manifest(repo, image.tags[0]), expect("auth.scoped-token-pulls"), "GET manifest with a pull token")
    attempts = [
        ("POST upload", reader.start_upload(repo)),
        ("PUT manifest under a new tag", reader.put_manifest(repo, "pushed-with-pull-token", image.manifest, image.media_type)),
        ("DELETE manifest", reader.delete_manifest(repo, image.digest)),
        ("DELETE blob", reader.delete_blob(repo, image.layers[0].digest)),
    ]
    for what, resp in attempts:
        expect_answer(resp, exp, f"{what} with a pull-only token")
        _, params = parse_challenge(resp.headers.get("www-authenticate", ""))
        expect_equal(params.get("error"), exp["challenge_error"], exp, f"challenge error of {what} with a pull-only token")
    expect_equal(registry.head_manifest(repo, image.digest).status_code, 200, exp, "manifest after refused deletes")
    expect_equal(registry.head_blob(repo, image.layers[0].digest).status_code, 200, exp, "blob after refused delete")
    expect_equal(registry.head_manifest(repo, "pushed-with-pull-token").status_code, 404, exp, "tag pushed with a pull token")


@pytest.mark.spec("token spec / htpasswd: anonymous access")
def test_anonymous_pull_only_where_configured_and_never_push(client_with, challenge, registry, repo, expect):
    """A client without credentials (anonymous token where Bearer) pulls only if the profile says so; it never pushes."""
    image = fixture_set("docker").alpha
    push_image(registry, repo, image)
    anonymous = client_with(RegistryAuth())
    expect_answer(anonymous.get_manifest(repo, image.tags[0]), expect("auth.anonymous-pull"), "anonymous GET manifest")
    expect_answer(anonymous.start_upload(repo), expect("auth.anonymous-push"), "anonymous POST upload")
