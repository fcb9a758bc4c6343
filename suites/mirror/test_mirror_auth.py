"""A mirror of an upstream that requires credentials: the mirror holds them, its clients need none."""

import pytest

from regconform.checks import expect_answer, expect_true
from regconform.content.images import fixture_set, push_image
from regconform.targets.mirrors import same_as_upstream

pytestmark = pytest.mark.workflow("mirror")


@pytest.mark.mirror_variants("auth", "external")
@pytest.mark.spec("Docker Registry pull-through cache: proxy credentials for the remote registry")
def test_mirror_pulls_from_auth_upstream_without_client_credentials(mirror_pair, mirror, upstream, anonymous_upstream,
                                                                   mirrored, expect):
    """The mirror pulls from an upstream that requires auth; a client of the mirror sends no credentials."""
    if mirror_pair.upstream_credentials is None:
        pytest.skip("the upstream needs no credentials (give --upstream-username for one that does)")
    anonymous = anonymous_upstream.ping()
    expect_true(anonymous.status_code == 401,
                f"precondition: the upstream refuses anonymous clients (GET /v2/ answered {anonymous.status_code})")
    expect_answer(mirror.ping(), expect("mirror.client-needs-no-credentials"), "GET /v2/ on the mirror without credentials")
    exp = expect("mirror.upstream-auth")
    for obj in (mirrored.images.alpha, mirrored.images.index):
        tag = obj.tags[0]
        same_as_upstream(mirror.get_manifest(mirrored.repo, tag), upstream.get_manifest(mirrored.repo, tag), exp,
                         f"GET manifest {obj.name} by tag {tag} (upstream requires auth)", obj.digest)
    blob = mirrored.images.alpha.config
    same_as_upstream(mirror.get_blob(mirrored.repo, blob.digest), upstream.get_blob(mirrored.repo, blob.digest), exp,
                     "GET config blob of alpha (upstream requires auth)", blob.digest)


@pytest.mark.spec("Docker Registry pull-through cache: proxy.username/proxy.password with a basic-auth upstream")
def test_proxy_config_credentials_with_basic_auth_upstream(own_mirror_pair, repo, expect):
    """A mirror given proxy.username/password for an upstream with basic auth (htpasswd): can it pull?"""
    exp = expect("mirror.upstream-auth.proxy-config")
    fixtures = fixture_set("docker")  # one format is enough: the answer depends on credentials only
    own = own_mirror_pair("auth", "proxy-config")
    push_image(own.upstream, repo, fixtures.alpha)
    tag = fixtures.alpha.tags[0]
    resp = own.mirror.get_manifest(repo, tag)
    if resp.status_code == 200:
        same_as_upstream(resp, own.upstream.get_manifest(repo, tag), exp, f"GET manifest by tag {tag}",
                         fixtures.alpha.digest)
    expect_answer(resp, exp, f"GET manifest by tag {tag} through a mirror holding proxy.username/password")
