"""Credential boundaries of a mirror that holds upstream credentials.

- Token realms on another origin (distribution CVE-2026-33540, GHSA-3p65-76g6-3w7r): the upstream's
  Bearer challenge names a realm that is not the upstream's; a mirror must not send it the upstream
  credentials (distribution ≥ 3.1.0 binds realms to the upstream's host or registrable domain).
- Error answers: a mirror passes upstream errors on (2.8 puts the upstream URL in error details);
  the upstream password must never be in them, the user name as the profile records.
"""

import pytest

from regconform.checks import (
    Deviation,
    Unsupported,
    expect_equal,
    note_expectation,
    observe,
)
from regconform.targets.mirrors.realm import read_records

pytestmark = pytest.mark.workflow("mirror")


@pytest.mark.spec("distribution CVE-2026-33540: proxy credentials and a token realm on another origin")
def test_credentials_not_sent_to_foreign_realm(hostile_mirror, repo, expect):
    """Pulling through a mirror whose upstream names a token realm on another origin: whether the
    upstream credentials reach that realm, as the profile records (never, from 3.1.0)."""
    exp = expect("mirror.credentials.foreign-realm")
    note_expectation(exp)
    answers = {}
    for what, resp in (("GET manifest by tag", hostile_mirror.client.get_manifest(repo, "latest")),
                       ("GET blob", hostile_mirror.client.get_blob(repo, "sha256:" + "0" * 63 + "1"))):
        answers[what] = resp.status_code
    records = read_records(hostile_mirror.realm_url)
    sent = [r for r in records if r["carries_credentials"]]
    observe("foreign_realm", {"requests": len(records), "with_upstream_credentials": len(sent),
                              "schemes": sorted({r["authorization"] or "none" for r in records}),
                              "mirror_answers": answers})
    if bool(sent) != exp["sends_credentials"]:
        did = (f"sent the upstream credentials ({sent[0]['authorization']}) to the token realm "
               f"{hostile_mirror.realm_url}, another origin than the upstream, {len(sent)} time(s)" if sent
               else f"sent no credentials to the foreign realm ({len(records)} request(s) reached it)")
        raise Deviation(f"pulling through the mirror of a token-auth upstream: the mirror {did}; expected "
                        f"sends_credentials={exp['sends_credentials']} [{exp.profile}: {exp.key}] ({exp.note})")
    if not exp.supported:
        raise Unsupported(f"the mirror sends the upstream credentials to a token realm on another origin, as "
                          f"profile {exp.profile} records ({exp.note})")


@pytest.mark.mirror_variants("auth", "external")
@pytest.mark.spec("Docker Registry pull-through cache: error answers and the upstream credentials")
def test_error_answers_do_not_echo_upstream_credentials(mirror_pair, mirror, mirrored, upstream_down, expect):
    """Error answers of the mirror (unknown content; uncached content with the upstream down) never
    carry the upstream password; whether they name the upstream user is recorded in the profile."""
    creds = mirror_pair.upstream_credentials
    if creds is None:
        pytest.skip("the mirror holds no upstream credentials here")
    exp = expect("mirror.credentials.error-echo")
    alpha = mirrored.images.alpha
    unknown = "sha256:" + "0" * 63 + "1"
    mirror.record = False  # an answer that leaked the password must not reach exchanges.json either
    try:
        answers = [("GET unknown blob", mirror.get_blob(mirrored.repo, unknown)),
                   ("GET manifest by unknown tag", mirror.get_manifest(mirrored.repo, "no-such-tag"))]
        with upstream_down():
            answers += [("GET uncached manifest by digest, upstream down",
                         mirror.get_manifest(mirrored.repo, alpha.digest)),
                        ("GET uncached blob, upstream down", mirror.get_blob(mirrored.repo, alpha.config.digest))]
    finally:
        mirror.record = True
    echoed = {}
    for what, resp in answers:
        text = resp.text + "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
        if creds.password in text:
            raise Deviation(f"{what} through the mirror answered {resp.status_code} with the upstream password in "
                            f"its {'body' if creds.password in resp.text else 'headers'} [{exp.profile}: {exp.key}]")
        echoed[what] = creds.username in text
    observe("username_echoed", echoed)
    expect_equal(any(echoed.values()), exp["echoes_username"], exp,
                 "whether the mirror's error answers name the upstream user")
