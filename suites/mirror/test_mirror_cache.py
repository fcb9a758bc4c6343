"""The mirror's cache: content served while the upstream is down, tag moves, expiry."""

import json
import re
from datetime import datetime, timezone

import pytest

from regconform.checks import expect_answer, expect_equal, expect_true, observe
from regconform.content.images import push_image
from regconform.registry.digests import sha256_digest
from regconform.targets.mirrors import wait_for
from regconform.targets.mirrors.compare import wait_until_held

pytestmark = pytest.mark.workflow("mirror")


def pull_through(mirror, mirrored):
    """What a client pulls: alpha and the index by tag, every manifest and blob by digest."""
    images = mirrored.images
    for obj in (images.alpha, images.index):
        mirror.get_manifest(mirrored.repo, obj.tags[0])
    for obj in (images.alpha, images.beta, images.index):
        mirror.pull_manifest(mirrored.repo, obj.digest)
    for image in images.images:
        for blob in image.blobs:
            mirror.pull_blob(mirrored.repo, blob.digest)


def settle(mirror_pair, mirrored, exp):
    """Wait until the mirror holds every blob of the fixture set (as long as the profile says it takes)."""
    blobs = {blob.digest for image in mirrored.images.images for blob in image.blobs}
    wait_until_held(mirror_pair, mirrored.repo, blobs, exp["settle_seconds"])


@pytest.mark.spec("Docker Registry pull-through cache: cached content while the upstream is unreachable")
def test_cached_content_served_while_upstream_down(mirror_pair, mirror, mirrored, upstream_down, expect):
    """After one pull, manifests and blobs by digest are served from the mirror's cache with the upstream down."""
    exp = expect("mirror.cache.served-upstream-down")
    images = mirrored.images
    pull_through(mirror, mirrored)
    settle(mirror_pair, mirrored, exp)
    with upstream_down():
        for obj in (images.alpha, images.beta, images.index):
            resp = mirror.get_manifest(mirrored.repo, obj.digest)
            expect_answer(resp, exp, f"GET cached manifest {obj.name} by digest, upstream down")
            expect_equal(sha256_digest(resp.content), obj.digest, exp, f"bytes of cached manifest {obj.name}")
            expect_equal(resp.headers.get("docker-content-digest"), obj.digest, exp,
                         f"Docker-Content-Digest of cached manifest {obj.name}")
        for image in images.images:
            for blob in image.blobs:
                resp = mirror.get_blob(mirrored.repo, blob.digest)
                expect_answer(resp, exp, f"GET cached blob {blob.digest[:19]} of {image.name}, upstream down")
                expect_equal(sha256_digest(resp.content), blob.digest, exp, f"bytes of cached blob {blob.digest[:19]}")


@pytest.mark.spec("Docker Registry pull-through cache: tags while the upstream is unreachable")
def test_cached_tags_while_upstream_down(mirror, mirrored, upstream_down, expect):
    """With the upstream down: a tag pulled before, and the tag list, as the profile records."""
    exp_tag, exp_list = expect("mirror.cache.tag-upstream-down"), expect("mirror.cache.tags-list-upstream-down")
    alpha, index = mirrored.images.alpha, mirrored.images.index
    pull_through(mirror, mirrored)
    with upstream_down():
        resp = mirror.get_manifest(mirrored.repo, alpha.tags[0])
        tags = mirror.list_tags(mirrored.repo)
    expect_answer(resp, exp_tag, f"GET manifest by tag {alpha.tags[0]} (pulled before), upstream down")
    if exp_tag["serves"] == "last-resolved":
        expect_equal(resp.headers.get("docker-content-digest"), alpha.digest, exp_tag,
                     f"digest served for tag {alpha.tags[0]} with the upstream down")
    expect_answer(tags, exp_list, "GET tags/list through the mirror, upstream down")
    listed = sorted(json.loads(tags.content).get("tags") or [])
    observe("tags_upstream_down", listed)
    want = {"pulled-tags": sorted({alpha.tags[0], index.tags[0]}), "none": []}.get(exp_list["lists"])
    expect_equal(listed, want, exp_list, "tags the mirror lists with the upstream down")


@pytest.mark.spec("Docker Registry pull-through cache: uncached content while the upstream is unreachable")
def test_uncached_content_while_upstream_down(mirror, mirrored, upstream_down, expect):
    """With the upstream down, content never pulled: the status the mirror gives (recorded in the profile)."""
    alpha = mirrored.images.alpha
    with upstream_down():
        by_tag = mirror.get_manifest(mirrored.repo, alpha.tags[0])
        by_digest = mirror.get_manifest(mirrored.repo, alpha.digest)
        blob = mirror.get_blob(mirrored.repo, alpha.config.digest)
    observe("answers", {"tag": by_tag.status_code, "manifest": by_digest.status_code, "blob": blob.status_code})
    expect_answer(by_tag, expect("mirror.upstream-down.uncached-tag"), "GET uncached manifest by tag, upstream down")
    expect_answer(by_digest, expect("mirror.upstream-down.uncached-manifest"),
                  "GET uncached manifest by digest, upstream down")
    expect_answer(blob, expect("mirror.upstream-down.uncached-blob"), "GET uncached blob, upstream down")


@pytest.mark.spec("Docker Registry pull-through cache: a tag moved on the upstream")
def test_tag_moved_upstream(mirror, upstream, mirrored, expect):
    """A tag pulled through the mirror, then moved on the upstream: what the mirror serves for it after."""
    exp = expect("mirror.tag-move")
    alpha, beta = mirrored.images.alpha, mirrored.images.beta
    tag = alpha.tags[0]
    before = mirror.get_manifest(mirrored.repo, tag)
    expect_answer(before, exp, f"GET manifest by tag {tag} through the mirror, before the move")
    expect_equal(before.headers.get("docker-content-digest"), alpha.digest, exp, f"digest of {tag} before the move")
    push_image(upstream, mirrored.repo, beta, tags=(tag,))
    after = mirror.get_manifest(mirrored.repo, tag)
    expect_answer(after, exp, f"GET manifest by tag {tag} through the mirror, after the move")
    served = after.headers.get("docker-content-digest")
    observe("tag_move", {"before": alpha.digest, "moved_to": beta.digest, "served_after": served})
    want = {"new": beta.digest, "cached": alpha.digest}[exp["serves"]]
    expect_equal(served, want, exp, f"digest the mirror serves for {tag} after the upstream moved it to beta")
    expect_equal(sha256_digest(after.content), served, exp, f"bytes served for {tag} after the move")


def _expiry(value: str) -> datetime:
    """Go's RFC 3339 with nanoseconds → datetime (Python parses at most microseconds)."""
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(value)


@pytest.mark.spec("Docker Registry pull-through cache: expiry of cached content")
def test_cache_expiry_of_pulled_content(mirror_pair, mirror, mirrored, expect):
    """The mirror schedules what it cached for eviction after the TTL the profile records."""
    if not mirror_pair.can_read_cache_state:
        pytest.skip("reads the mirror's cache schedule: embedded pair only")
    exp = expect("mirror.cache.ttl")
    alpha = mirrored.images.alpha
    mirror.pull_manifest(mirrored.repo, alpha.digest)
    mirror.pull_blob(mirrored.repo, alpha.config.digest)
    key = f"{mirrored.repo}@{alpha.digest}"

    def entry():
        state = mirror_pair.cache_state() or {}
        return state.get(key)

    # 2.8 writes its schedule a few seconds after a change.
    found = wait_for(entry, timeout=15)
    expect_true(bool(found), f"the mirror's cache schedule has no entry for {key} 15 s after the pull", exp)
    # 2.8 spells the field "ExpiryData"; later versions may fix the name.
    expiry = found.get("ExpiryData") or found.get("Expiry")
    hours = (_expiry(expiry) - datetime.now(timezone.utc)).total_seconds() / 3600
    observe("ttl_hours", round(hours))  # whole hours: the record stays the same from run to run
    expect_true(abs(hours - exp["ttl_hours"]) < 1,
                f"cached manifest {key} expires in {hours:.2f} h, not the {exp['ttl_hours']} h recorded", exp)
