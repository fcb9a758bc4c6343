"""What distribution-spec main (after v1.1.1) adds to §Pushing blobs and §Pushing a blob in chunks:
the `digest-algorithm` parameter (end-4c), 400 for an unsupported digest algorithm, the final chunk
out of order on the closing PUT (416), and `OCI-Chunk-Min-Length` on the POST answer."""

from __future__ import annotations

import pytest

from regconform.checks import (
    Deviation,
    expect_answer,
    expect_equal,
    expect_true,
    observe,
    unsupported,
)
from regconform.content.images import pseudo_random_bytes
from regconform.registry.digests import (
    digest_of,
    names_bytes,
    sha256_digest,
    sha512_digest,
)
from regconform.registry.errors import ClientError, DigestMismatch

pytestmark = pytest.mark.workflow("push")

CHUNK = 1000
UNKNOWN_ALGORITHM = "regconform0"  # registered nowhere: no registry can support it
# An algorithm with a valid digest syntax that OCI registers nowhere (image-spec §Digests).
UNREGISTERED_DIGEST = "md5:" + "0" * 32


def data_of(seed: str, size: int = 2500) -> bytes:
    return pseudo_random_bytes(f"chunks-{seed}", size)


def chunk_headers(start: int, data: bytes) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(data) - 1}",
            "Content-Length": str(len(data))}


@pytest.mark.spec("distribution-spec §Pushing a blob in chunks: POST ?digest-algorithm=sha512 (end-4c)")
def test_chunked_upload_with_digest_algorithm_sha512(registry, repo, expect):
    """POST ?digest-algorithm=sha512, PATCH chunks, PUT ?digest=sha512:…: 201 with that digest; the blob reads
    back by its sha512 digest and verifies."""
    exp = expect("push.digest-algorithm-sha512")
    data = data_of("sha512")
    digest = sha512_digest(data)
    started = registry.start_upload(repo, params={"digest-algorithm": "sha512"})
    expect_answer(started, exp, "POST /blobs/uploads/?digest-algorithm=sha512")
    if started.status_code != 202:
        unsupported(exp, f"POST ?digest-algorithm=sha512 answered {started.status_code}: sha512 is not supported")
    location = started.headers["location"]
    for start in range(0, len(data), CHUNK):
        resp = registry.upload_chunk(location, data[start:start + CHUNK], start=start)
        expect_equal(resp.status_code, 202, exp, f"PATCH chunk {start}- of a sha512 upload")
        location = resp.headers["location"]
    done = registry.finish_upload(location, digest)
    observe("closing_put", done.status_code)
    expect_true(done.status_code in exp["complete"], f"closing PUT ?digest={digest[:20]}… answered "
                f"{done.status_code}, expected {exp['complete']}", exp)
    if done.status_code != 201:
        return
    header = done.headers.get("docker-content-digest")
    observe("closing_put_digest", header)
    expect_true(header is None or names_bytes(header, data), f"Docker-Content-Digest of the closing PUT is {header!r}, "
                "no digest of the blob", exp)
    try:
        got = registry.pull_blob(repo, digest)
    except (ClientError, DigestMismatch) as exc:
        raise Deviation(f"reading back the sha512 blob {digest[:20]}… failed [{exp.profile}: {exp.key}]: {exc}") from None
    expect_equal(got, data, exp, "bytes of the sha512 blob read back")


@pytest.mark.spec("distribution-spec §Pushing blobs: an unsupported digest algorithm SHOULD answer 400 (end-4c, end-6)")
def test_unsupported_digest_algorithm_answers_400(registry, repo, expect):
    """POST ?digest-algorithm=<unknown> and a closing PUT ?digest=md5:…: each answered as the profile records (OCI main: 400)."""
    resp = registry.start_upload(repo, params={"digest-algorithm": UNKNOWN_ALGORITHM})
    observe("post_answer", resp.status_code)
    expect_answer(resp, expect("push.digest-algorithm-unsupported"), f"POST ?digest-algorithm={UNKNOWN_ALGORITHM}")
    if resp.status_code == 202:
        registry.cancel_upload(resp.headers["location"])
    data = data_of("md5")
    session = registry.start_upload(repo)
    expect_equal(session.status_code, 202, None, "setup: POST /blobs/uploads/")
    done = registry.finish_upload(session.headers["location"], UNREGISTERED_DIGEST, data)
    observe("put_answer", done.status_code)
    expect_answer(done, expect("push.digest-unsupported-algorithm"), f"closing PUT ?digest={UNREGISTERED_DIGEST}")


@pytest.mark.spec("distribution-spec §Pushing a blob in chunks: final chunk out of order on the closing PUT → 416 (end-6)")
def test_final_chunk_out_of_order_on_put(registry, repo, expect):
    """After PATCH 0-999, a closing PUT carrying bytes 2000-2499 (Content-Range 2000-2499): OCI main 416; the
    blob is not stored either way unless the profile records the registry appending it."""
    exp = expect("push.final-chunk-out-of-order")
    data = data_of("final-out-of-order")
    started = registry.start_upload(repo)
    expect_equal(started.status_code, 202, None, "setup: POST /blobs/uploads/")
    first = registry.upload_chunk(started.headers["location"], data[:CHUNK], start=0)
    expect_equal(first.status_code, 202, None, "setup: PATCH 0-999")
    tail = data[2 * CHUNK:]
    resp = registry.request("PUT", registry.with_query(first.headers["location"], digest=sha256_digest(data)),
                            headers=chunk_headers(2 * CHUNK, tail), content=tail)
    observe("put_answer", resp.status_code)
    expect_answer(resp, exp, f"closing PUT with Content-Range {2 * CHUNK}-{len(data) - 1} while the session holds 0-{CHUNK - 1}")
    stored = registry.head_blob(repo, sha256_digest(data)).status_code
    expect_equal(stored, 404, exp, "HEAD of the blob after an out-of-order final chunk (it must not be stored)")


@pytest.mark.spec("distribution-spec §Pushing a blob in chunks: OCI-Chunk-Min-Length")
def test_chunk_min_length_is_honoured(registry, repo, expect):
    """The POST's OCI-Chunk-Min-Length (or its absence) is what chunks may be: chunks of that size (or, none
    announced, of 512 bytes) with a shorter final chunk are accepted and the blob is stored."""
    exp = expect("push.chunk-min-length")
    started = registry.start_upload(repo)
    expect_answer(started, exp, "POST /blobs/uploads/")
    announced = started.headers.get("oci-chunk-min-length")
    observe("oci_chunk_min_length", announced)
    if announced is None:
        expect_true(exp["announced"] in ("optional", "absent"), "POST answered no OCI-Chunk-Min-Length "
                    "although the profile records one", exp)
        size = 512
    else:
        expect_true(exp["announced"] != "absent", f"POST answered OCI-Chunk-Min-Length: {announced[:40]!r}, the "
                    "profile records none", exp)
        expect_true(announced.isdigit() and 0 < int(announced) <= exp["max"], f"OCI-Chunk-Min-Length "
                    f"{announced[:40]!r} is not a size in bytes up to {exp['max']}", exp)
        size = int(announced)
    data = pseudo_random_bytes("chunks-min-length", 2 * size + size // 2 + 1)
    location = started.headers["location"]
    for start in range(0, len(data), size):
        resp = registry.upload_chunk(location, data[start:start + size], start=start)
        expect_equal(resp.status_code, 202, exp, f"PATCH of a {min(size, len(data) - start)}-byte chunk at {start} "
                     f"(chunk size {size})")
        location = resp.headers["location"]
    done = registry.finish_upload(location, digest_of(data))
    expect_equal(done.status_code, 201, exp, "closing PUT of the chunked upload")
