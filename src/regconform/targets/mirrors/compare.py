"""Comparisons shared by the mirror checks: the mirror's answer against the upstream's."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from regconform.checks import Deviation, expect_answer, expect_equal
from regconform.profiles import Expectation
from regconform.registry.digests import sha256_digest


def same_as_upstream(via_mirror: httpx.Response, via_upstream: httpx.Response, exp: Expectation, what: str,
                     digest: str | None = None) -> None:
    """The mirror's answer carries the upstream's bytes, Docker-Content-Digest and media type."""
    expect_answer(via_mirror, exp, f"{what} through the mirror")
    if via_upstream.status_code != 200:
        raise Deviation(f"{what} on the upstream answered {via_upstream.status_code}: cannot compare the mirror with it")
    body = via_mirror.content
    if body != via_upstream.content:
        raise Deviation(f"{what}: the mirror served {len(body)} bytes hashing to {sha256_digest(body)}, the upstream "
                        f"{len(via_upstream.content)} bytes hashing to {sha256_digest(via_upstream.content)} "
                        f"[{exp.profile}: {exp.key}]")
    expect_equal(via_mirror.headers.get("docker-content-digest"), via_upstream.headers.get("docker-content-digest"),
                 exp, f"Docker-Content-Digest of {what}, mirror vs upstream")
    if digest is not None:
        expect_equal(sha256_digest(body), digest, exp, f"sha256 of the bytes the mirror served for {what}")
    if via_upstream.headers.get("content-type", "").startswith("application/vnd."):
        expect_equal(via_mirror.headers.get("content-type"), via_upstream.headers.get("content-type"), exp,
                     f"Content-Type of {what}, mirror vs upstream")


def same_head_as_upstream(via_mirror: httpx.Response, via_upstream: httpx.Response, exp: Expectation, what: str) -> None:
    """A HEAD through the mirror answers the upstream's Docker-Content-Digest and Content-Length."""
    expect_answer(via_mirror, exp, f"{what} through the mirror")
    if via_upstream.status_code != 200:
        raise Deviation(f"{what} on the upstream answered {via_upstream.status_code}: cannot compare the mirror with it")
    for header in ("docker-content-digest", "content-length"):
        expect_equal(via_mirror.headers.get(header), via_upstream.headers.get(header), exp,
                     f"{header} of {what}, mirror vs upstream")


def wait_for(probe: Callable[[], object], timeout: float, interval: float = 0.5) -> object:
    """Poll until probe() returns something truthy (or the timeout passes); returns the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = probe()
    return value




def parse_image_ref(ref: str) -> tuple[str, str]:
    """`repo:tag` or `repo@sha256:...` → (repo, reference). The registry host is given by URL, not here."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def wait_until_held(pair: object, repo: str, digests: set[str], seconds: float) -> None:
    """Give a mirror the time its profile says it takes to store blobs it served (2.8 stores a blob in
    the background, fetching it from the upstream a second time). Where the mirror's storage can be
    seen (embedded pairs), wait until every blob is linked instead (at most five times as long)."""
    holds = pair.holds_blob  # type: ignore[attr-defined]
    if holds(repo, next(iter(digests))) is None:
        time.sleep(seconds)
    else:
        wait_for(lambda: all(holds(repo, d) for d in digests), timeout=seconds * 5)
