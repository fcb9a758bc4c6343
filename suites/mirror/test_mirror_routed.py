"""Pulling through a mirror as clients do: Accept negotiation, Range, ETag, names the mirror does not map.

Every check runs on each route (upstream) of the mirror; the routed ones (a prefix or `ns`) also on
what a mirror must refuse: a name under no prefix it maps, a prefix it does not know.
"""

import httpx
import pytest

from regconform.checks import Deviation, expect_answer, expect_equal, observe
from regconform.content.images import push_image
from regconform.registry.client import RegistryClient
from regconform.registry.digests import sha256_digest
from regconform.registry.media import (
    ALL_MANIFEST_TYPES,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from regconform.targets.mirrors.compare import wait_until_held

pytestmark = pytest.mark.workflow("mirror")

# The other format's type of the same kind: what a client that does not know this manifest's format asks for.
OTHER_TYPE = {DOCKER_MANIFEST: OCI_MANIFEST, OCI_MANIFEST: DOCKER_MANIFEST,
              DOCKER_MANIFEST_LIST: OCI_INDEX, OCI_INDEX: DOCKER_MANIFEST_LIST}


def accept_matrix(media_type: str) -> list[tuple[str, tuple[str, ...] | None]]:
    """Accept headers in the order a cache meets them: the broad one first (it fills the cache), then
    narrower ones a cache that ignores Accept would answer from what it holds."""
    return [("every manifest type", ALL_MANIFEST_TYPES), ("its own type only", (media_type,)),
            ("the other format's type only", (OTHER_TYPE[media_type],)), ("no Accept header", None),
            ("*/*", ("*/*",))]


def answer_of(resp: httpx.Response) -> dict[str, object]:
    """What negotiation decides: status, media type, digest of the bytes (the body only when served)."""
    served = resp.status_code == 200
    return {"status": resp.status_code, "content_type": resp.headers.get("content-type") if served else None,
            "digest": sha256_digest(resp.content) if served and resp.content else None}


def accepted(content_type: str | None, accept: tuple[str, ...] | None) -> bool:
    if accept is None or "*/*" in accept or content_type is None:
        return True
    return content_type.split(";")[0].strip() in accept


@pytest.mark.spec("OCI distribution-spec: pulling manifests (Accept) through a pull-through cache")
def test_accept_negotiation_through_mirror(mirror, upstream, mirrored, expect):
    """Each manifest by tag and by digest under each Accept: the mirror answers as the upstream does and
    never serves a manifest type the client did not accept where the upstream does not."""
    exp = expect("mirror.accept")
    images = mirrored.images
    matrix: dict[str, dict[str, object]] = {}
    for obj in (images.alpha, images.index):
        for ref_kind, ref in (("tag", obj.tags[0]), ("digest", obj.digest)):
            for label, accept in accept_matrix(obj.media_type):
                what = f"GET manifest {obj.name} ({obj.media_type}) by {ref_kind} with Accept: {label}"
                via_mirror = mirror.get_manifest(mirrored.repo, ref, accept=accept)
                via_upstream = upstream.get_manifest(mirrored.repo, ref, accept=accept)
                got, want = answer_of(via_mirror), answer_of(via_upstream)
                matrix[f"{obj.name} by {ref_kind}, {label}"] = got
                if not accepted(got["content_type"], accept) and accepted(want["content_type"], accept):
                    raise Deviation(f"{what}: the mirror served {got['content_type']}, which the client did not "
                                    f"accept; the upstream answered {want['status']} {want['content_type']} "
                                    f"[{exp.profile}: {exp.key}]")
                expect_equal(got, want, exp, f"{what}: the mirror's answer vs the upstream's")
    observe("accept_matrix", matrix)


@pytest.mark.spec("OCI distribution-spec: HEAD manifests by digest through a pull-through cache")
def test_head_by_digest_after_pull(mirror, upstream, mirrored, expect):
    """After a pull, HEAD by digest (as clients check what they hold) answers the upstream's metadata and no body."""
    exp = expect("mirror.pull-through")
    for obj in (mirrored.images.alpha, mirrored.images.index):
        mirror.pull_manifest(mirrored.repo, obj.digest)
        via_mirror = mirror.head_manifest(mirrored.repo, obj.digest)
        expect_answer(via_mirror, exp, f"HEAD manifest {obj.name} by digest through the mirror, after a pull")
        via_upstream = upstream.head_manifest(mirrored.repo, obj.digest)
        for header in ("docker-content-digest", "content-length", "content-type"):
            expect_equal(via_mirror.headers.get(header), via_upstream.headers.get(header), exp,
                         f"{header} of HEAD manifest {obj.name} by digest, mirror vs upstream")
        expect_equal(len(via_mirror.content), 0, exp, f"body bytes of HEAD manifest {obj.name} through the mirror")


def _range_answer(resp: httpx.Response, blob: bytes, start: int, end: int, exp, what: str) -> str:
    """A Range answer: 206 with exactly those bytes and their Content-Range, or 200 with the whole blob."""
    expect_answer(resp, exp, what)
    if resp.status_code == 206:
        expect_equal(resp.headers.get("content-range"), f"bytes {start}-{end}/{len(blob)}", exp, f"Content-Range of {what}")
        expect_equal(resp.content, blob[start:end + 1], exp, f"bytes of {what}")
    else:
        expect_equal(sha256_digest(resp.content), sha256_digest(blob), exp, f"bytes of {what} (the whole blob)")
    return str(resp.status_code)


@pytest.mark.spec("RFC 9110 Range on GET /v2/<name>/blobs/<digest> through a pull-through cache")
def test_range_request_through_mirror(mirror_pair, mirror, upstream, mirrored, expect):
    """A byte range of a layer before the mirror holds it and after: statuses as the profile records, the
    exact bytes either way (206 the range, 200 the whole blob)."""
    layer = mirrored.images.alpha.layers[-1]
    start, end = 10, min(len(layer.data) - 1, 1033)
    rng = {"Range": f"bytes={start}-{end}"}
    up = _range_answer(upstream.get_blob(mirrored.repo, layer.digest, headers=rng), layer.data, start, end,
                       expect("mirror.range.upstream"), "GET blob with Range on the upstream")
    before = mirror.get_blob(mirrored.repo, layer.digest, headers=rng)
    first = _range_answer(before, layer.data, start, end, expect("mirror.range.uncached"),
                          "GET blob with Range through the mirror, before it holds the blob")
    mirror.pull_blob(mirrored.repo, layer.digest)
    wait_until_held(mirror_pair, mirrored.repo, {layer.digest}, expect("mirror.cache.served-upstream-down")["settle_seconds"])
    after = mirror.get_blob(mirrored.repo, layer.digest, headers=rng)
    second = _range_answer(after, layer.data, start, end, expect("mirror.range.cached"),
                           "GET blob with Range through the mirror, after a full pull")
    observe("range_status", {"upstream": up, "mirror_uncached": first, "mirror_cached": second})


@pytest.mark.spec("RFC 9110 ETag / If-None-Match on manifests through a pull-through cache")
def test_etag_through_mirror(mirror, upstream, mirrored, expect):
    """A manifest's ETag through the mirror is the upstream's; If-None-Match with it answers as the profile records."""
    exp_tag, exp_304 = expect("mirror.etag"), expect("mirror.etag.if-none-match")
    alpha = mirrored.images.alpha
    for ref_kind, ref in (("tag", alpha.tags[0]), ("digest", alpha.digest)):
        via_mirror = mirror.get_manifest(mirrored.repo, ref)
        expect_answer(via_mirror, exp_tag, f"GET manifest alpha by {ref_kind} through the mirror")
        etag = via_mirror.headers.get("etag")
        expect_equal(etag, upstream.get_manifest(mirrored.repo, ref).headers.get("etag"), exp_tag,
                     f"ETag of manifest alpha by {ref_kind}, mirror vs upstream")
        again = mirror.get_manifest(mirrored.repo, ref, headers={"If-None-Match": etag or '"none"'})
        expect_answer(again, exp_304, f"GET manifest alpha by {ref_kind} with If-None-Match: its ETag, through the mirror")
        if again.status_code == 304:
            expect_equal(len(again.content), 0, exp_304, f"body bytes of the 304 for alpha by {ref_kind}")


@pytest.mark.mirror_routed
@pytest.mark.spec("Registry Proxying: a name the mirror maps to no upstream")
def test_unmapped_names_not_served(mirror, mirror_pair, mirrored, settings, expect):
    """The route's image under a prefix the mirror does not know, and without this route's prefix or ns:
    the mirror answers as the profile records and never serves the upstream's manifest."""
    exp = expect("mirror.unmapped-name")
    alpha = mirrored.images.alpha
    with RegistryClient(mirror.base_url, verify=settings.verify, on_exchange=mirror.on_exchange) as raw:
        cases = [("under a prefix no upstream has", f"regconform-unmapped/{mirrored.repo}", None)]
        if mirror_pair.prefix:
            cases.append(("without the route's prefix", mirrored.repo, None))
        if mirror_pair.ns:
            cases.append(("with an ns value no upstream has", mirrored.repo, "regconform-unmapped.invalid"))
        answers = {}
        for label, name, ns in cases:
            resp = raw.request("GET", f"/v2/{name}/manifests/{alpha.tags[0]}", params={"ns": ns} if ns else None,
                               headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)})
            answers[label] = resp.status_code
            if resp.status_code == 200 and sha256_digest(resp.content) == alpha.digest:
                raise Deviation(f"GET manifest {alpha.tags[0]} {label} ({name}): the mirror served the upstream's "
                                f"manifest {alpha.digest} [{exp.profile}: {exp.key}]")
            expect_answer(resp, exp, f"GET manifest {alpha.tags[0]} {label} ({name}) through the mirror")
    observe("unmapped", answers)


@pytest.mark.spec("OCI distribution-spec, Registry Proxying: OCI-Namespace answers the ns a registry used")
def test_oci_namespace_header(mirror, mirror_pair, mirrored, expect):
    """Where the mirror is addressed with ns=: it answers OCI-Namespace with that value (spec: SHOULD)."""
    if not mirror_pair.ns:
        pytest.skip("the mirror is not addressed with ns= for this upstream")
    exp = expect("mirror.ns.oci-namespace")
    alpha = mirrored.images.alpha
    for what, resp in (("GET /v2/", mirror.ping()),
                       (f"GET manifest by tag {alpha.tags[0]}", mirror.get_manifest(mirrored.repo, alpha.tags[0])),
                       ("GET config blob", mirror.get_blob(mirrored.repo, alpha.config.digest))):
        expect_answer(resp, exp, f"{what} with ns={mirror_pair.ns} through the mirror")
        expect_equal(resp.headers.get("oci-namespace"), mirror_pair.ns, exp, f"OCI-Namespace of {what}")


@pytest.mark.spec("Registry Proxying: each name prefix (or ns) reaches its own upstream")
def test_routes_reach_their_own_upstreams(all_routes, repo, fixtures, expect):
    """The same repository and tag on every upstream, a different image on each: through the mirror each
    route serves its own upstream's image (a mirror mapping a prefix to the wrong upstream serves another)."""
    exp = expect("mirror.pull-through")
    if len(all_routes) < 2:
        pytest.skip("the mirror has one upstream here (give several with --upstream NAME=URL)")
    # One image per upstream (two routes may reach one upstream: by prefix and by ns).
    upstreams = list(dict.fromkeys(route.upstream.base_url for route in all_routes))
    image_of = {url: (fixtures.alpha, fixtures.beta)[i % 2] for i, url in enumerate(upstreams)}
    name_of = {route.upstream.base_url: route.name for route in reversed(all_routes)}
    for url in upstreams:
        route = next(r for r in all_routes if r.upstream.base_url == url)
        push_image(route.upstream, repo, image_of[url], tags=("route",))
    served = {}
    for route in all_routes:
        resp = route.mirror.get_manifest(repo, "route")
        label = f"upstream {route.name} (prefix {route.prefix!r}, ns {route.ns!r})"
        expect_answer(resp, exp, f"GET manifest {repo}:route through the mirror for {label}")
        got, want = sha256_digest(resp.content), image_of[route.upstream.base_url]
        served[label] = got
        if got != want.digest:
            others = [name_of[url] for url, image in image_of.items() if image.digest == got]
            raise Deviation(f"GET manifest {repo}:route for {label}: the mirror served {got}, its upstream holds "
                            f"{want.name} {want.digest}" + (f" (served from upstream {', '.join(others)})" if others
                                                           else "") + f" [{exp.profile}: {exp.key}]")
    observe("served", served)

