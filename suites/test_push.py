"""Pushing blobs and manifests (OCI distribution-spec §Push, end-4a/4b/5/6/7/11/13; Docker Registry
HTTP API V2 §Pushing An Image).

Every upload method (monolithic, single POST, streamed and chunked PATCH), session status, recovery
and cancel, cross-repository mounts, manifests and indexes by tag and digest, and a real-client
round trip with skopeo. Everything pushed is read back and verified against its digest.
"""

from __future__ import annotations

import pytest

from regconform.checks import (
    Deviation,
    expect_answer,
    expect_equal,
    expect_true,
    note_expectation,
    observe,
)
from regconform.clients.base import Endpoint, Workspace
from regconform.clients.skopeo import (
    CopiedImage,
    docker_reference,
    remote_options,
    run_skopeo,
    skopeo_path,
    transport_for,
    write_layout,
)
from regconform.content.images import pseudo_random_bytes, push_image, push_index
from regconform.registry.digests import sha256_digest
from regconform.registry.errors import ClientError, DigestMismatch

pytestmark = pytest.mark.workflow("push")

CHUNK = 1000
# Never pushed by anyone: mounting it must not succeed.
NEVER_PUSHED = sha256_digest(b"regconform: a blob nobody ever pushed")


def blob_data(seed: str, size: int = 2500) -> bytes:
    return pseudo_random_bytes(f"push-{seed}", size)


# -- helpers: reading back and the headers every upload answer carries --------------------------------------


def expect_blob_stored(registry, repo, data, exp, what):
    """The blob is served in `repo` and hashes to its digest (client.pull_blob verifies it)."""
    note_expectation(exp)
    digest = sha256_digest(data)
    try:
        got = registry.pull_blob(repo, digest)
    except (ClientError, DigestMismatch) as exc:
        raise Deviation(f"{what}: reading back blob {digest} from {repo} failed [{exp.profile}: {exp.key}]: {exc}") from None
    expect_equal(len(got), len(data), exp, f"size of blob {digest} read back after {what}")


def expect_range(resp, end, exp, what):
    """`Range: 0-<end>` (OCI §Pushing a blob in chunks: the last byte stored, inclusive)."""
    expect_equal(resp.headers.get("range"), f"0-{end}", exp, f"Range of {what}")


def expect_digest_header(resp, digest, exp, what):
    """Docker-Content-Digest names `digest`; when the profile does not require the header, only if present."""
    got = resp.headers.get("docker-content-digest")
    if got is None and "docker-content-digest" not in exp.headers:
        return
    expect_equal(got, digest, exp, f"Docker-Content-Digest of {what}")


def stream_parts(data, size=700):
    """A request body without a length: httpx sends it with Transfer-Encoding: chunked."""
    return (data[i:i + size] for i in range(0, len(data), size))


def streamed_patch(registry, location, data):
    """PATCH without Content-Range or Content-Length (the Docker API's stream upload)."""
    return registry.request("PATCH", location, headers={"Content-Type": "application/octet-stream"},
                            content=stream_parts(data))


def open_session(registry, repo, expect):
    resp = registry.start_upload(repo)
    expect_answer(resp, expect("push.upload-start"), "POST /blobs/uploads/ (open an upload session)")
    return resp.headers["location"]


def push_blobs(registry, repo, image, expect):
    exp = expect("push.monolithic")
    for blob in image.blobs:
        expect_answer(registry.push_blob(repo, blob.data, blob.digest), exp, f"push of {image.name} blob {blob.digest}")


# -- blob uploads ---------------------------------------------------------------------------------------------


@pytest.mark.spec("distribution-spec end-4a + end-6: POST then PUT; Docker Registry API V2 §Monolithic Upload")
def test_monolithic_upload_post_then_put_creates_the_blob(registry, repo, expect):
    """POST opens a session (202, Location); PUT <location>?digest= with the whole blob answers 201 with Location and Docker-Content-Digest."""
    data = blob_data("monolithic")
    digest = sha256_digest(data)
    location = open_session(registry, repo, expect)
    exp = expect("push.monolithic")
    resp = registry.finish_upload(location, digest, data)
    expect_answer(resp, exp, "PUT <location>?digest= with the whole blob")
    expect_digest_header(resp, digest, exp, "the closing PUT")
    expect_blob_stored(registry, repo, data, exp, "a monolithic upload")


@pytest.mark.spec("distribution-spec end-4b: single POST with digest")
def test_single_post_with_digest(registry, repo, expect):
    """POST ?digest= with the blob: 201 (stored) or 202 (a session; the client then PUTs) as the profile records."""
    data = blob_data("single-post")
    digest = sha256_digest(data)
    exp = expect("push.single-post")
    resp = registry.push_blob_single(repo, data, digest)
    observe("single_post_status", resp.status_code)
    expect_answer(resp, exp, "POST /blobs/uploads/?digest= with the blob")
    if resp.status_code == 201:
        expect_digest_header(resp, digest, exp, "the single POST")
        expect_blob_stored(registry, repo, data, exp, "a single-POST upload")
        return
    # 202: the registry ignored the body and opened a session (OCI: the client SHOULD proceed with PUT).
    stored = registry.head_blob(repo, digest).status_code
    observe("blob_after_202", stored)
    expect_equal(stored, 404, exp, "HEAD of the blob after a single POST answered 202 (a 202 must not have stored it)")
    done = registry.finish_upload(resp.headers["location"], digest, data)
    expect_answer(done, expect("push.monolithic"), "PUT on the session a single POST opened")
    expect_blob_stored(registry, repo, data, exp, "a single POST completed by PUT")


@pytest.mark.spec("distribution-spec end-5: PATCH without Content-Range; Docker Registry API V2 §Stream upload")
def test_streamed_patch_upload(registry, repo, expect):
    """PATCHes with no Content-Range (chunked transfer encoding) append; each 202 carries Location and Range; PUT closes (201)."""
    data = blob_data("streamed", 3000)
    location = open_session(registry, repo, expect)
    exp = expect("push.stream-patch")
    for start, end in ((0, 1800), (1800, len(data))):
        resp = streamed_patch(registry, location, data[start:end])
        expect_answer(resp, exp, f"streamed PATCH of bytes {start}-{end - 1}")
        expect_range(resp, end - 1, exp, f"the streamed PATCH of bytes {start}-{end - 1}")
        location = resp.headers["location"]
    done = registry.finish_upload(location, sha256_digest(data))
    exp_done = expect("push.upload-complete")
    expect_answer(done, exp_done, "closing PUT after streamed PATCHes")
    expect_digest_header(done, sha256_digest(data), exp_done, "the closing PUT")
    expect_blob_stored(registry, repo, data, exp_done, "a streamed upload")


@pytest.mark.spec("distribution-spec end-5 + end-6: chunked upload with Content-Range")
def test_chunked_patch_upload_with_content_range(registry, repo, expect):
    """PATCH chunks with Content-Range: every 202 has Location and `Range: 0-<last byte>`; the closing PUT answers 201."""
    data = blob_data("chunked")
    answers = registry.push_blob_chunked(repo, data, CHUNK)
    expect_answer(answers[0], expect("push.upload-start"), "POST /blobs/uploads/")
    exp = expect("push.chunk-patch")
    chunks = answers[1:-1]
    expect_equal(len(chunks), (len(data) + CHUNK - 1) // CHUNK, exp, "chunks accepted before the first refusal")
    for i, resp in enumerate(chunks):
        end = min((i + 1) * CHUNK, len(data)) - 1
        expect_answer(resp, exp, f"PATCH chunk {i * CHUNK}-{end}")
        expect_range(resp, end, exp, f"PATCH chunk {i * CHUNK}-{end}")
    exp_done = expect("push.upload-complete")
    expect_answer(answers[-1], exp_done, "closing PUT of a chunked upload")
    expect_digest_header(answers[-1], sha256_digest(data), exp_done, "the closing PUT")
    expect_blob_stored(registry, repo, data, exp_done, "a chunked upload")


@pytest.mark.spec("distribution-spec end-6: final chunk in the closing PUT")
def test_chunked_upload_with_final_chunk_in_put(registry, repo, expect):
    """One PATCH chunk, then the closing PUT carries the rest of the blob: 201 and the whole blob is stored."""
    data = blob_data("final-in-put")
    location = open_session(registry, repo, expect)
    exp = expect("push.chunk-patch")
    resp = registry.upload_chunk(location, data[:CHUNK], start=0)
    expect_answer(resp, exp, f"PATCH chunk 0-{CHUNK - 1}")
    expect_range(resp, CHUNK - 1, exp, f"PATCH chunk 0-{CHUNK - 1}")
    done = registry.finish_upload(resp.headers["location"], sha256_digest(data), data[CHUNK:])
    exp_done = expect("push.upload-complete")
    expect_answer(done, exp_done, "closing PUT carrying the final chunk")
    expect_blob_stored(registry, repo, data, exp_done, "a chunked upload closed with the final chunk")


@pytest.mark.parametrize("disorder", ["gap", "repeat"])
@pytest.mark.spec("distribution-spec end-5: out-of-order chunk → 416")
def test_out_of_order_chunk(registry, repo, expect, disorder):
    """A chunk that does not start at the session's offset (a gap, or the previous chunk again): OCI 416; else as the profile records."""
    data = blob_data(f"out-of-order-{disorder}")
    location = open_session(registry, repo, expect)
    first = registry.upload_chunk(location, data[:CHUNK], start=0)
    expect_answer(first, expect("push.chunk-patch"), f"PATCH chunk 0-{CHUNK - 1}")
    location = first.headers["location"]
    start = 2 * CHUNK if disorder == "gap" else 0
    chunk = data[start:start + CHUNK]
    what = f"PATCH with Content-Range {start}-{start + len(chunk) - 1} while the session holds 0-{CHUNK - 1}"
    exp = expect("push.chunk-out-of-order")
    resp = registry.upload_chunk(location, chunk, start=start)
    observe("out_of_order_answer", resp.status_code)
    observe("range_after", resp.headers.get("range"))
    if resp.status_code not in exp.status:
        expect_answer(resp, exp, what)
    if exp["handling"] == "rejected":
        expect_answer(resp, exp, what)
        status = registry.upload_status(location)
        exp_status = expect("push.upload-recovery")
        expect_answer(status, exp_status, "GET on the session after the refused chunk")
        expect_range(status, CHUNK - 1, exp_status, "GET on the session after the refused chunk (it must not be stored)")
        rest = registry.upload_chunk(status.headers["location"], data[CHUNK:], start=CHUNK)
        expect_answer(rest, expect("push.chunk-patch"), f"PATCH chunk {CHUNK}-{len(data) - 1} after the refusal")
        done = registry.finish_upload(rest.headers["location"], sha256_digest(data))
        expect_answer(done, expect("push.upload-complete"), "closing PUT after the refusal")
        expect_blob_stored(registry, repo, data, exp, "an upload that recovered from a refused chunk")
        return
    # "appended": the registry ignores Content-Range and appends the chunk at its own offset.
    stored = data[:CHUNK] + chunk
    expect_range(resp, len(stored) - 1, exp, f"{what} (appended at the session's offset)")
    done = registry.finish_upload(resp.headers["location"], sha256_digest(stored))
    expect_answer(done, expect("push.upload-complete"), "closing PUT with the digest of what was appended")
    expect_blob_stored(registry, repo, stored, exp, "an upload with an appended out-of-order chunk")
    expect_answer(resp, exp, what)  # unsupported by the profile: reported as such once the facts are confirmed


@pytest.mark.spec("distribution-spec end-13: GET <location> → 204 with Range and Location (recovery)")
def test_upload_recovery_via_get_on_the_session(registry, repo, expect):
    """Mid-upload, GET on the session answers 204 with the stored Range and a Location the upload continues from."""
    data = blob_data("recovery")
    location = open_session(registry, repo, expect)
    exp_chunk = expect("push.chunk-patch")
    first = registry.upload_chunk(location, data[:CHUNK], start=0)
    expect_answer(first, exp_chunk, f"PATCH chunk 0-{CHUNK - 1}")
    exp = expect("push.upload-recovery")
    status = registry.upload_status(first.headers["location"])
    expect_answer(status, exp, "GET on the session after one chunk")
    expect_range(status, CHUNK - 1, exp, "GET on the session after one chunk")
    rest = registry.upload_chunk(status.headers["location"], data[CHUNK:], start=CHUNK)
    expect_answer(rest, exp_chunk, "PATCH of the rest at the Location the GET answered")
    expect_range(rest, len(data) - 1, exp_chunk, "PATCH of the rest")
    done = registry.finish_upload(rest.headers["location"], sha256_digest(data))
    expect_answer(done, expect("push.upload-complete"), "closing PUT after recovery")
    expect_blob_stored(registry, repo, data, exp, "an upload resumed from GET on its session")


@pytest.mark.spec("distribution-spec end-13: GET <location> of any preceding POST or PATCH")
def test_upload_status_at_an_earlier_location(registry, repo, expect):
    """GET on the Location of the POST after a chunk was stored (OCI: any preceding POST or PATCH location) → 204 with the current Range."""
    data = blob_data("stale-location")
    location = open_session(registry, repo, expect)
    first = registry.upload_chunk(location, data[:CHUNK], start=0)
    expect_answer(first, expect("push.chunk-patch"), f"PATCH chunk 0-{CHUNK - 1}")
    exp = expect("push.upload-status-earlier-location")
    status = registry.upload_status(location)
    if status.status_code == 204:
        expect_range(status, CHUNK - 1, exp, "GET on the POST's Location after one chunk")
    expect_answer(status, exp, "GET on the POST's Location after one chunk")
    registry.cancel_upload(first.headers["location"])


@pytest.mark.spec("distribution-spec end-13: GET <location> → 204; Docker Registry API V2 §Upload Progress")
def test_upload_status_reports_the_stored_range(registry, repo, expect):
    """GET on a fresh session and after a streamed PATCH: 204, Location, and Range of the bytes stored so far."""
    data = blob_data("status", 1234)
    location = open_session(registry, repo, expect)
    exp = expect("push.upload-status")
    fresh = registry.upload_status(location)
    expect_answer(fresh, exp, "GET on a fresh session")
    observe("range_of_empty_session", fresh.headers.get("range"))
    if exp["empty_range"] != "*":
        expect_equal(fresh.headers.get("range"), exp["empty_range"], exp, "Range of a session that holds no byte")
    patched = streamed_patch(registry, fresh.headers["location"], data)
    expect_answer(patched, expect("push.stream-patch"), f"streamed PATCH of {len(data)} bytes")
    status = registry.upload_status(patched.headers["location"])
    expect_answer(status, exp, f"GET on the session after {len(data)} bytes")
    expect_range(status, len(data) - 1, exp, f"GET on the session after {len(data)} bytes")
    expect_equal(status.content, b"", exp, "body of the 204 upload status")
    registry.cancel_upload(status.headers["location"])


@pytest.mark.spec("distribution-spec end-13: GET <location> of a finished upload")
def test_upload_status_of_a_finished_session(registry, repo, expect):
    """GET on the Location of an upload that was closed (201): the session is gone."""
    data = blob_data("finished")
    location = open_session(registry, repo, expect)
    done = registry.finish_upload(location, sha256_digest(data), data)
    expect_answer(done, expect("push.monolithic"), "closing PUT")
    expect_answer(registry.upload_status(location), expect("push.upload-status-finished"), "GET on the finished session")


@pytest.mark.spec("Docker Registry API V2 §Canceling an Upload; distribution-spec end-14 (after 1.1.1)")
def test_upload_cancel(registry, repo, expect):
    """DELETE on a session: 204; afterwards GET, PATCH and DELETE on it answer 404 BLOB_UPLOAD_UNKNOWN and no blob exists."""
    data = blob_data("cancel")
    location = open_session(registry, repo, expect)
    patched = registry.upload_chunk(location, data[:CHUNK], start=0)
    expect_answer(patched, expect("push.chunk-patch"), f"PATCH chunk 0-{CHUNK - 1}")
    location = patched.headers["location"]
    expect_answer(registry.cancel_upload(location), expect("push.upload-cancel"), "DELETE on the upload session")
    gone = expect("push.upload-cancelled-gone")
    expect_answer(registry.upload_status(location), gone, "GET on the cancelled session")
    expect_answer(registry.upload_chunk(location, data[CHUNK:], start=CHUNK), gone, "PATCH on the cancelled session")
    expect_answer(registry.cancel_upload(location), gone, "second DELETE on the cancelled session")
    expect_equal(registry.head_blob(repo, sha256_digest(data)).status_code, 404, gone, "HEAD of the blob of a cancelled upload")


# -- cross-repository mount -----------------------------------------------------------------------------------


@pytest.mark.spec("distribution-spec end-11: POST ?mount=<digest>&from=<repo>")
def test_cross_repository_mount(registry, repo, expect):
    """Mounting a blob of another repository: 201 with Location and Docker-Content-Digest; the blob is then readable in the target."""
    data = blob_data("mount")
    digest = sha256_digest(data)
    source, target = f"{repo}/source", f"{repo}/target"
    expect_answer(registry.push_blob(source, data), expect("push.monolithic"), "push of the blob to the source repository")
    exp = expect("push.mount")
    expect_equal(registry.head_blob(target, digest).status_code, 404, exp, "HEAD of the blob in the target before the mount")
    resp = registry.mount_blob(target, digest, source)
    observe("mount_status", resp.status_code)
    expect_answer(resp, exp, f"POST mount={digest}&from={source}")
    if resp.status_code == 202:  # the profile allows a registry that does not mount (OCI: SHOULD 202)
        registry.cancel_upload(resp.headers["location"])
        return
    expect_digest_header(resp, digest, exp, "the mount")
    expect_blob_stored(registry, target, data, exp, "a cross-repository mount")


@pytest.mark.spec("distribution-spec end-11: mount of a blob the source lacks → 202 session")
def test_mount_of_an_unknown_blob_opens_a_session(registry, repo, expect):
    """Mounting a digest the source repository lacks (or from a repository that does not exist): 202 with a usable upload session."""
    source, target = f"{repo}/source", f"{repo}/target"
    expect_answer(registry.push_blob(source, blob_data("mount-other")), expect("push.monolithic"), "push of another blob to the source")
    exp = expect("push.mount-unknown-blob")
    data = blob_data("mount-unknown")
    for digest, origin in ((NEVER_PUSHED, source), (sha256_digest(data), f"{repo}/no-such-repository")):
        resp = registry.mount_blob(target, digest, origin)
        expect_answer(resp, exp, f"POST mount={digest}&from={origin}")
        if digest == NEVER_PUSHED:
            registry.cancel_upload(resp.headers["location"])
            continue
        done = registry.finish_upload(resp.headers["location"], digest, data)
        expect_answer(done, expect("push.monolithic"), "PUT of the blob on the session the failed mount opened")
    expect_blob_stored(registry, target, data, exp, "an upload on the session of a failed mount")


# -- Location headers and existing blobs ----------------------------------------------------------------------


@pytest.mark.spec("distribution-spec §Push: Location on every 201 and 202")
def test_location_on_every_201_and_202_is_usable(registry, repo, fixtures, expect):
    """Every 201/202 of a push carries Location: a 202's answers GET with 204, a 201's serves what was pushed."""
    exp = expect("push.location")
    image = fixtures.alpha
    checked = []

    def check_session(resp, what):
        expect_true(resp.status_code == 202, f"{what} answered {resp.status_code}, not 202", exp)
        expect_true("location" in resp.headers, f"{what}: 202 without a Location header", exp)
        status = registry.upload_status(resp.headers["location"]).status_code
        expect_equal(status, 204, exp, f"GET on the Location of {what}")
        checked.append(what)
        return resp.headers["location"]

    def check_created(resp, what, body, accept=None):
        expect_true(resp.status_code == 201, f"{what} answered {resp.status_code}, not 201", exp)
        expect_true("location" in resp.headers, f"{what}: 201 without a Location header", exp)
        if accept is None:
            got = registry.request("GET", resp.headers["location"])
        else:
            got = registry.request("GET", resp.headers["location"], headers={"Accept": accept})
        expect_equal(got.status_code, 200, exp, f"GET on the Location {resp.headers['location']} of {what}")
        expect_equal(sha256_digest(got.content), sha256_digest(body), exp, f"digest of what the Location of {what} serves")
        checked.append(what)

    config, layer = image.config, image.layers[1]
    location = check_session(registry.start_upload(repo), "POST (open a session)")
    location = check_session(registry.upload_chunk(location, layer.data[:CHUNK], start=0), "PATCH of a chunk")
    check_created(registry.finish_upload(location, layer.digest, layer.data[CHUNK:]), "closing PUT", layer.data)
    check_created(registry.push_blob(repo, config.data, config.digest), "monolithic PUT", config.data)
    base = image.layers[0]
    expect_answer(registry.push_blob(f"{repo}/source", base.data), expect("push.monolithic"), "push of the base layer to the source")
    mounted = registry.mount_blob(repo, base.digest, f"{repo}/source")
    if mounted.status_code == 201:
        check_created(mounted, "mount", base.data)
    else:
        check_session(mounted, "mount answered with a session")
        registry.cancel_upload(mounted.headers["location"])
        expect_answer(registry.push_blob(repo, base.data), expect("push.monolithic"), "push of the base layer")
    single = registry.push_blob_single(repo, blob_data("location-single"))
    if single.status_code == 201:
        check_created(single, "single POST", blob_data("location-single"))
    else:
        registry.cancel_upload(check_session(single, "single POST answered with a session"))
    check_created(registry.put_manifest(repo, "location", image.manifest, image.media_type), "manifest PUT by tag",
                  image.manifest, image.media_type)
    check_created(registry.put_manifest(repo, image.digest, image.manifest, image.media_type), "manifest PUT by digest",
                  image.manifest, image.media_type)
    observe("locations_checked", checked)


@pytest.mark.spec("distribution-spec end-2: HEAD before upload (existing layer); Docker Registry API V2 §Existing Layers")
def test_existing_blob_is_recognised(registry, repo, expect):
    """After a push, HEAD on the blob answers 200 with Content-Length and Docker-Content-Digest (a client skips the upload); pushing it again answers 201."""
    data = blob_data("existing")
    digest = sha256_digest(data)
    exp = expect("push.blob-exists")
    expect_equal(registry.head_blob(repo, digest).status_code, 404, exp, "HEAD before the first push")
    expect_answer(registry.push_blob(repo, data), expect("push.monolithic"), "first push")
    head = registry.head_blob(repo, digest)
    expect_answer(head, exp, "HEAD of a pushed blob")
    expect_equal(head.headers.get("content-length"), str(len(data)), exp, "Content-Length of HEAD on the pushed blob")
    expect_digest_header(head, digest, exp, "HEAD on the pushed blob")
    again = registry.push_blob(repo, data)
    exp_again = expect("push.blob-repush")
    expect_answer(again, exp_again, "second push of the same blob")
    expect_digest_header(again, digest, exp_again, "the second push")
    expect_blob_stored(registry, repo, data, exp_again, "pushing a blob twice")


# -- manifests --------------------------------------------------------------------------------------------


def expect_manifest_stored(registry, repo, reference, body, media_type, exp, what):
    """GET by `reference` serves exactly the bytes pushed, with their media type; by digest too (verified)."""
    got = registry.get_manifest(repo, reference)
    expect_equal(got.status_code, 200, exp, f"GET manifest {reference} after {what}")
    expect_equal(got.content, body, exp, f"bytes served for {reference} after {what}")
    expect_equal(got.headers.get("content-type"), media_type, exp, f"Content-Type served for {reference}")
    try:
        registry.pull_manifest(repo, sha256_digest(body))
    except (ClientError, DigestMismatch) as exc:
        raise Deviation(f"{what}: reading back manifest {sha256_digest(body)} failed [{exp.profile}: {exp.key}]: {exc}") from None


@pytest.mark.spec("distribution-spec end-7: PUT /v2/<name>/manifests/<tag>")
def test_manifest_put_by_tag(registry, repo, fixtures, expect):
    """PUT by tag: 201, Location, Docker-Content-Digest equal to the sha256 of the bytes sent; the tag serves those bytes."""
    image = fixtures.alpha
    push_blobs(registry, repo, image, expect)
    exp = expect("push.manifest-put-tag")
    resp = registry.put_manifest(repo, "by-tag", image.manifest, image.media_type)
    expect_answer(resp, exp, f"PUT {image.media_type} by tag")
    expect_digest_header(resp, sha256_digest(image.manifest), exp, "PUT by tag")
    expect_manifest_stored(registry, repo, "by-tag", image.manifest, image.media_type, exp, "PUT by tag")


@pytest.mark.spec("distribution-spec end-7: PUT /v2/<name>/manifests/<digest>")
def test_manifest_put_by_digest(registry, repo, fixtures, expect):
    """PUT by digest: 201, Location, Docker-Content-Digest equal to the digest; GET by digest serves the same bytes."""
    image = fixtures.alpha
    push_blobs(registry, repo, image, expect)
    exp = expect("push.manifest-put-digest")
    resp = registry.put_manifest(repo, image.digest, image.manifest, image.media_type)
    expect_answer(resp, exp, f"PUT {image.media_type} by digest")
    expect_digest_header(resp, image.digest, exp, "PUT by digest")
    expect_manifest_stored(registry, repo, image.digest, image.manifest, image.media_type, exp, "PUT by digest")


@pytest.mark.spec("distribution-spec end-7: image index / Docker manifest list")
def test_index_push(registry, repo, fixtures, expect):
    """An index (OCI) or manifest list (Docker) over two images pushed by digest: 201, digest header; it and its images read back."""
    index = fixtures.index
    for image in index.images:
        push_image(registry, repo, image, tags=())
    exp = expect("push.index-put")
    resp = registry.put_manifest(repo, index.tags[0], index.manifest, index.media_type)
    expect_answer(resp, exp, f"PUT {index.media_type} by tag")
    expect_digest_header(resp, index.digest, exp, "PUT of the index")
    expect_manifest_stored(registry, repo, index.tags[0], index.manifest, index.media_type, exp, "PUT of the index")
    for image in index.images:
        expect_manifest_stored(registry, repo, image.digest, image.manifest, image.media_type, exp,
                               f"PUT of the index ({image.name} it lists)")


@pytest.mark.spec("distribution-spec §Pulling manifests: a tag is at most 128 characters")
def test_tag_of_128_characters_is_accepted(registry, repo, expect):
    """The longest valid tag (128 characters) is accepted and resolves."""
    from regconform.content.images import fixture_set

    image = fixture_set("oci").alpha
    push_blobs(registry, repo, image, expect)
    tag = "t" + "a1._-" * 25 + "zz"
    assert len(tag) == 128
    exp = expect("push.tag-max-length")
    expect_answer(registry.put_manifest(repo, tag, image.manifest, image.media_type), exp, "PUT by a 128-character tag")
    expect_manifest_stored(registry, repo, tag, image.manifest, image.media_type, exp, "PUT by a 128-character tag")


# -- real clients -------------------------------------------------------------------------------------------


def skopeo_or_skip():
    if skopeo_path() is None:
        pytest.skip("skopeo is not installed (./setup.sh installs it): the interoperability check needs a real client")


@pytest.fixture
def client_ws(settings, registry):
    """skopeo's private workspace: the run's credentials in a 0600 auth file, its CA for --cert-dir."""
    ws = Workspace(Endpoint.from_settings(settings, registry.base_url))
    yield ws
    ws.close()


def skopeo_ok(proc, what, exp):
    expect_true(proc.returncode == 0, f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}", exp)


@pytest.mark.spec("interoperability: skopeo copy <layout> docker://; distribution-spec §Push")
def test_skopeo_pushes_what_the_harness_reads_back(registry, repo, fixtures, expect, client_ws, tmp_path):
    """skopeo copies the fixture index from a layout on disk to the registry; the harness reads every manifest and blob back, byte for byte."""
    skopeo_or_skip()
    index = fixtures.index
    exp = expect("push.interop-skopeo-push")
    source = write_layout(tmp_path / "layout", index, "interop")
    dest = docker_reference(registry.base_url, repo, "interop")
    proc = run_skopeo("copy", "--all", "--preserve-digests", *remote_options(client_ws.endpoint, client_ws, "dest"),
                      source, dest, ws=client_ws)
    observe("skopeo_stderr", proc.stderr.strip()[-400:])
    # What skopeo pushed is removed with what the client pushed (external registries, unless --keep).
    registry.pushed_manifests.update((repo, m.digest) for m in (index, *index.images))
    registry.pushed_blobs.update((repo, b.digest) for image in index.images for b in image.blobs)
    skopeo_ok(proc, f"skopeo copy {source} {dest}", exp)
    resp = registry.get_manifest(repo, "interop")
    expect_answer(resp, exp, "GET of the index skopeo pushed")
    expect_manifest_stored(registry, repo, "interop", index.manifest, index.media_type, exp, "skopeo copy")
    for image in index.images:
        expect_manifest_stored(registry, repo, image.digest, image.manifest, image.media_type, exp, f"skopeo copy ({image.name})")
        for blob in image.blobs:
            expect_blob_stored(registry, repo, blob.data, exp, f"skopeo copy ({image.name} blob)")


@pytest.mark.spec("interoperability: skopeo inspect / copy docker:// <layout>; distribution-spec §Pull")
def test_skopeo_reads_what_the_harness_pushed(registry, repo, fixtures, expect, client_ws):
    """What the harness pushed, skopeo inspects (raw bytes equal) and copies to disk with every manifest and blob intact."""
    skopeo_or_skip()
    index = fixtures.index
    push_index(registry, repo, index)
    exp = expect("push.interop-skopeo-pull")
    note_expectation(exp)
    source = docker_reference(registry.base_url, repo, index.tags[0])
    inspected = run_skopeo("inspect", "--raw", *remote_options(client_ws.endpoint, client_ws), source, ws=client_ws)
    skopeo_ok(inspected, f"skopeo inspect --raw {source}", exp)
    expect_equal(sha256_digest(inspected.stdout.encode()), index.digest, exp, "digest of the manifest skopeo inspect read")
    scratch = client_ws.scratch("skopeo-copy")  # the copy counts against the client's output cap
    copied = CopiedImage(scratch / "copy", transport_for(index.format), "interop")
    proc = run_skopeo("copy", "--all", "--preserve-digests", *remote_options(client_ws.endpoint, client_ws, "src"),
                      source, copied.reference, ws=client_ws, scratch=scratch)
    skopeo_ok(proc, f"skopeo copy {source} {copied.reference}", exp)
    expect_equal(copied.manifest(), index.manifest, exp, "the index skopeo wrote to disk")
    expected = {image.digest: image.manifest for image in index.images}
    expected.update({blob.digest: blob.data for image in index.images for blob in image.blobs})
    missing = [digest for digest, body in expected.items() if copied.blob(digest) != body]
    observe("copied_files", sorted(p.name for p in copied.root.rglob("*") if p.is_file())[:40])
    expect_true(not missing, f"skopeo's copy lacks or altered: {', '.join(missing)}", exp)

