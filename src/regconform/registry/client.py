"""The one Distribution API client: one explicit method per API operation, no magic.

Every exchange goes through `session.RegistrySession` (bounded, recorded, credentials redacted);
here are the operations, the digest verification of what is pulled, blobs streamed instead of
held in memory, and the cleanup of what the client pushed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import httpx

from regconform.registry import limits
from regconform.registry.digests import hasher_for, sha256_digest, verify_digest
from regconform.registry.errors import ClientError, DigestMismatch
from regconform.registry.media import ALL_MANIFEST_TYPES
from regconform.registry.names import repository_of
from regconform.registry.session import Answer, RegistrySession, answer_of

DEFAULT_CHUNK = 8 * 1024 * 1024
# Bytes per write of a streamed request body: small pieces keep the peak memory of a 1 GiB push flat
# (each piece is copied once more on its way to the socket; 8 MiB copies fragmented the heap).
STREAM_PIECE = 1024 * 1024


class RegistryClient(RegistrySession):
    """Explicit Distribution API client over one keep-alive httpx connection pool."""

    def remove_pushed(self) -> list[str]:
        """Delete what this client pushed (manifests first, then blobs); absent content is fine.

        Returns what could not be removed (one line each), so the run can say so instead of failing.

        Bounded: limits.CLEANUP_BUDGET in all, and the first request the registry does not answer
        in time (or at all) ends the cleanup; the rest is listed as left behind.
        """
        self.read_only.clear()  # the session is over: shared fixture repositories go too
        left: list[str] = []
        deadline = time.monotonic() + limits.CLEANUP_BUDGET
        self._adopt_tagged(deadline)
        work = [(self.delete_manifest, "manifest", item) for item in sorted(self.pushed_manifests)]
        work += [(self.delete_blob, "blob", item) for item in sorted(self.pushed_blobs)]
        for index, (delete, kind, (repo, digest)) in enumerate(work):
            if time.monotonic() > deadline:
                left += [f"{k} {r}@{d}: cleanup budget of {limits.CLEANUP_BUDGET:g} s spent" for _, k, (r, d) in work[index:]]
                break
            try:
                status = delete(repo, digest).status_code
            except (httpx.TimeoutException, httpx.NetworkError) as exc:
                left += [f"{kind} {repo}@{digest}: the registry stopped answering ({type(exc).__name__})"]
                left += [f"{k} {r}@{d}: skipped, the registry stopped answering" for _, k, (r, d) in work[index + 1:]]
                break
            except (httpx.HTTPError, ClientError) as exc:
                left.append(f"{kind} {repo}@{digest}: {type(exc).__name__}")
                continue
            if status not in (200, 202, 404):
                left.append(f"{kind} {repo}@{digest}: DELETE answered {status}")
        self.pushed_manifests.clear()
        self.pushed_blobs.clear()
        return left

    def _adopt_tagged(self, deadline: float) -> None:
        """Every tag in the repositories this client touched (all in the run's namespace) joins what cleanup deletes."""
        for repo in sorted(self.touched_repos):
            if time.monotonic() > deadline:
                return
            try:
                resp = self.list_tags(repo)
                tags = resp.json().get("tags") if resp.status_code == 200 else None
                for tag in (tags or [])[:limits.MAX_OBSERVED_ITEMS] if isinstance(tags, list) else []:
                    head = self.head_manifest(repo, str(tag))
                    if head.status_code == 200 and (digest := head.headers.get("docker-content-digest")):
                        self.pushed_manifests.add((repo, digest))
            except (httpx.HTTPError, ClientError, ValueError, AttributeError):
                return  # the registry stopped answering sensibly: what is known is still removed
        self.touched_repos.clear()

    # -- base -----------------------------------------------------------------------------

    def ping(self) -> httpx.Response:
        return self.request("GET", "/v2/")

    # -- blobs ----------------------------------------------------------------------------

    def head_blob(self, repo: str, digest: str) -> httpx.Response:
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}")

    def get_blob(self, repo: str, digest: str, *, headers: dict[str, str] | None = None,
                 size: int | None = None) -> Answer:
        """GET a blob into memory: never more than `size` bytes (the size expected), else limits.MAX_BLOB_BUFFERED."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers, cap=size or limits.MAX_BLOB_BUFFERED)

    def get_blob_tolerant(self, repo: str, digest: str, *,
                          headers: dict[str, str] | None = None) -> tuple[Answer, str | None]:
        """GET a blob, keeping the answer even when its body breaks off (a registry may announce a
        Content-Length it never sends). Returns the answer holding the bytes that did arrive, and the
        transport error, or None."""
        self._guard(repository_of(f"/v2/{repo}/blobs/")[0], None)
        started = time.perf_counter()
        body = bytearray()
        error: str | None = None
        req = self.http.build_request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers)
        streamed, hops = self._send(req, follow=self.blob_redirects)
        try:
            for part in limits.iter_body(streamed, self.limits, limits.MAX_BLOB_BUFFERED, f"GET {req.url}"):
                body += part
        except httpx.RemoteProtocolError as exc:
            error = str(exc)
        finally:
            streamed.close()
        # A complete Response object (headers as sent, the bytes received) so checks can read it.
        resp = answer_of(streamed, bytes(body))
        self._record(resp, started, 0, hops=hops, first=req)
        return resp, error

    def pull_blob(self, repo: str, digest: str, size: int | None = None) -> bytes:
        """GET a blob and verify it hashes to its digest."""
        resp = self.get_blob(repo, digest, size=size)
        if resp.status_code != 200:
            raise ClientError(f"GET blob {digest} in {repo}: {resp.status_code}")
        verify_digest(resp.content, digest, f"blob {digest} in {repo}")
        return resp.content

    def stream_blob(self, repo: str, digest: str, sink: IO[bytes] | None = None, size: int | None = None) -> int:
        """Stream a blob without holding it in memory; verify the digest; return its size.

        Never more than `size` bytes are read (the size expected, e.g. from the manifest's descriptor),
        else limits.MAX_BLOB_STREAMED; the transfer deadline bounds the time. Pieces are hashed as they
        arrive (no re-chunking, which only copies). Hashing on a helper thread was tried: GIL hand-offs
        made it slower on a busy 2-core machine.
        """
        self._guard(repo, None)
        h = hasher_for(digest)
        received = 0
        started = time.perf_counter()
        req = self.http.build_request("GET", f"/v2/{repo}/blobs/{digest}")
        resp, hops = self._send(req, follow=self.blob_redirects)
        if resp.status_code != 200:
            self._read(resp, limits.MAX_BODY, started, 0, hops=hops, first=req)
            raise ClientError(f"GET blob {digest} in {repo}: {resp.status_code}")
        try:
            for part in limits.iter_body(resp, self.limits, size or limits.MAX_BLOB_STREAMED, f"GET {req.url}"):
                h.update(part)
                received += len(part)
                if sink is not None:
                    sink.write(part)
        except limits.LimitExceeded as exc:
            self._record(resp, started, 0, hops=hops, first=req, excerpt=f"<{exc}>", size=received)
            raise
        finally:
            resp.close()
        self._record(resp, started, 0, hops=hops, first=req, excerpt=f"<{received} bytes streamed>", size=received)
        got = f"{h.name}:{h.hexdigest()}"
        if got != digest:
            raise DigestMismatch(f"blob {digest} in {repo} hashes to {got}")
        return received

    def delete_blob(self, repo: str, digest: str) -> httpx.Response:
        return self.request("DELETE", f"/v2/{repo}/blobs/{digest}")

    # -- uploads --------------------------------------------------------------------------

    def start_upload(self, repo: str, *, params: dict[str, str] | None = None,
                     content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("POST", f"/v2/{repo}/blobs/uploads/", params=params, content=content, headers=headers)

    @staticmethod
    def with_query(location: str, **params: str) -> str:
        """Append to the Location's query: it carries upload state (`_state`) that must be kept."""
        extra = "&".join(f"{k}={v}" for k, v in params.items())
        return location + ("&" if "?" in location else "?") + extra

    def upload_chunk(self, location: str, data: bytes, *, start: int | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/octet-stream"}
        if start is not None:
            headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
            headers["Content-Length"] = str(len(data))
        return self.request("PATCH", location, headers=headers, content=data)

    def finish_upload(self, location: str, digest: str, data: bytes = b"") -> httpx.Response:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
        return self.request("PUT", self.with_query(location, digest=digest), headers=headers, content=data)

    def upload_status(self, location: str) -> httpx.Response:
        return self.request("GET", location)

    def cancel_upload(self, location: str) -> httpx.Response:
        return self.request("DELETE", location)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> httpx.Response:
        return self.start_upload(repo, params={"mount": digest, "from": from_repo})

    def push_blob(self, repo: str, data: bytes, digest: str | None = None) -> httpx.Response:
        """Monolithic push: POST for a session, then PUT with the whole body and the digest."""
        digest = digest or sha256_digest(data)
        started = self.start_upload(repo)
        if started.status_code != 202:
            return started
        return self.finish_upload(started.headers["location"], digest, data)

    def push_blob_single(self, repo: str, data: bytes, digest: str | None = None) -> httpx.Response:
        """Single-request push: POST with `digest` and the body."""
        digest = digest or sha256_digest(data)
        return self.start_upload(repo, params={"digest": digest}, content=data,
                                 headers={"Content-Type": "application/octet-stream"})

    def push_blob_chunked(self, repo: str, data: bytes, chunk_size: int) -> list[httpx.Response]:
        """Chunked push: PATCH with Content-Range per chunk, then a closing PUT. Returns every answer."""
        answers = [self.start_upload(repo)]
        if answers[0].status_code != 202:
            return answers
        location = answers[0].headers["location"]
        for start in range(0, len(data), chunk_size):
            resp = self.upload_chunk(location, data[start:start + chunk_size], start=start)
            answers.append(resp)
            if resp.status_code != 202:
                return answers
            location = resp.headers["location"]
        answers.append(self.finish_upload(location, sha256_digest(data)))
        return answers

    def push_blob_stream(self, repo: str, source: IO[bytes], digest: str, chunk_size: int = DEFAULT_CHUNK,
                         monolithic: bool = False) -> httpx.Response:
        """Push a large blob from a file object without holding it in memory.

        Monolithic: one PUT whose body streams from `source`. Chunked: PATCHes of `chunk_size` bytes
        (read into one reused buffer, sent in STREAM_PIECE pieces), then the closing PUT.
        """
        started = self.start_upload(repo)
        if started.status_code != 202:
            return started
        location = started.headers["location"]
        if monolithic:
            def body() -> Iterator[bytes]:
                while part := source.read(STREAM_PIECE):
                    yield part
            return self.request("PUT", self.with_query(location, digest=digest),
                                headers={"Content-Type": "application/octet-stream"}, content=body())
        offset = 0
        buffer = bytearray(chunk_size)
        while n := _fill(source, buffer):
            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + n - 1}",
                       "Content-Length": str(n)}
            resp = self.request("PATCH", location, headers=headers, content=_pieces(memoryview(buffer)[:n]))
            if resp.status_code != 202:
                return resp
            offset += n
            location = resp.headers["location"]
        return self.finish_upload(location, digest)

    # -- manifests ------------------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> httpx.Response:
        return self.request("PUT", f"/v2/{repo}/manifests/{reference}", headers={"Content-Type": media_type}, content=body)

    def get_manifest(self, repo: str, reference: str, *, accept: Iterable[str] | None = ALL_MANIFEST_TYPES,
                     headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers=self._accept(accept, headers))

    def head_manifest(self, repo: str, reference: str, *, accept: Iterable[str] | None = ALL_MANIFEST_TYPES,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("HEAD", f"/v2/{repo}/manifests/{reference}", headers=self._accept(accept, headers))

    def pull_manifest(self, repo: str, digest: str) -> bytes:
        """GET a manifest by digest and verify the bytes hash to it."""
        resp = self.get_manifest(repo, digest)
        if resp.status_code != 200:
            raise ClientError(f"GET manifest {digest} in {repo}: {resp.status_code}")
        verify_digest(resp.content, digest, f"manifest {digest} in {repo}")
        return resp.content

    def delete_manifest(self, repo: str, reference: str) -> httpx.Response:
        return self.request("DELETE", f"/v2/{repo}/manifests/{reference}")

    @staticmethod
    def _accept(accept: Iterable[str] | None, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if accept is not None:
            out["Accept"] = ", ".join(accept)
        return out

    # -- discovery ------------------------------------------------------------------------

    def list_tags(self, repo: str, *, n: int | None = None, last: str | None = None) -> httpx.Response:
        return self.request("GET", f"/v2/{repo}/tags/list", params=_page(n, last))

    def catalog(self, *, n: int | None = None, last: str | None = None) -> httpx.Response:
        return self.request("GET", "/v2/_catalog", params=_page(n, last))

    def follow_link(self, resp: httpx.Response) -> httpx.Response | None:
        """Next page from an RFC 5988 `Link: <...>; rel="next"` header, if any."""
        link = resp.links.get("next")
        if not link:
            return None
        return self.request("GET", self.url_for(link["url"]))

    def referrers(self, repo: str, digest: str, *, artifact_type: str | None = None) -> httpx.Response:
        params = {"artifactType": artifact_type} if artifact_type else None
        return self.request("GET", f"/v2/{repo}/referrers/{digest}", params=params)



def _fill(source: IO[bytes], buffer: bytearray) -> int:
    """Read from `source` until `buffer` is full or the source ends; the number of bytes read."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        part = source.read(min(STREAM_PIECE, len(buffer) - filled))
        if not part:
            break
        view[filled:filled + len(part)] = part
        filled += len(part)
    return filled


def _pieces(view: memoryview) -> Iterator[bytes]:
    for start in range(0, len(view), STREAM_PIECE):
        yield bytes(view[start:start + STREAM_PIECE])


def _page(n: int | None, last: str | None) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    if n is not None:
        params["n"] = n
    if last is not None:
        params["last"] = last
    return params or None

