"""The upgrade corpus: one of every kind of content the fixtures know, pushed to the old registry.

Built with the one fixture builder (`regconform.content.images`) and pushed through the one client.
What it holds, under `<namespace>/`:

| repository | content |
| --- | --- |
| `docker` | schema2 images alpha (v1, latest, stable) and beta (v2), a manifest list (multi) |
| `oci` | OCI images and index as above; two artifacts whose subject is alpha (untagged, by digest) and the referrers tag schema index (`sha256-<hex of alpha>`); an untagged image; an image deleted by digest (it had tag `gone`) |
| `emptied` | one image whose manifest was deleted: the repository has no tag left |
| `paged` | one image under more tags than one page (`PAGE` per page) |
| `large` | an image whose layer of `LARGE_SIZE` bytes was streamed in chunks |
| `orphan` | a blob no manifest references |
| `upload` | an upload session left half-finished (the first chunk stored) |

`Corpus` says what must survive (live manifests and blobs, tags), what must stay deleted, and
which blobs garbage collection may remove (those only deleted manifests, or no manifest, reference).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from regconform.content.images import (
    Image,
    Index,
    PushError,
    fixture_set,
    make_artifact,
    make_image,
    make_referrers_index,
    pseudo_random_bytes,
    push_fixture_set,
    push_image,
    push_index,
)
from regconform.registry.client import RegistryClient
from regconform.registry.digests import sha256_digest

PAGE = 50
PAGED_TAGS = 2 * PAGE + 7  # more than two pages
LARGE_SIZE = 24 * 1024 * 1024
LARGE_CHUNK = 8 * 1024 * 1024
UPLOAD_SIZE = 300_000
UPLOAD_FIRST = 100_000
ARTIFACT_TYPES = ("application/vnd.regconform.sbom", "application/vnd.regconform.signature")


@dataclass
class Upload:
    """A session left half-finished: the bytes it will hold, how many are stored, where it continues."""

    repo: str
    location: str  # path and query only: the origin changes with the upgrade
    data: bytes = field(repr=False)
    stored: int

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)


@dataclass
class Corpus:
    namespace: str
    repos: list[str] = field(default_factory=list)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> tag -> digest
    manifests: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, digest) -> what it is
    blobs: dict[tuple[str, str], str] = field(default_factory=dict)  # live (repo, digest) -> what it is
    deleted: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (repo, digest) -> its former tags
    garbage: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, digest) -> why GC may remove it
    emptied: list[str] = field(default_factory=list)  # repositories whose every tag was deleted
    blob_only: list[str] = field(default_factory=list)  # repositories holding blobs and no manifest
    subjects: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (repo, subject) -> artifacts
    upload: Upload | None = None

    def repo(self, name: str) -> str:
        full = f"{self.namespace}/{name}"
        if full not in self.repos:
            self.repos.append(full)
            self.tags[full] = {}
        return full

    def add(self, repo: str, item: Image | Index, tags: tuple[str, ...], what: str) -> None:
        self.manifests[(repo, item.digest)] = what
        for tag in tags:
            self.tags[repo][tag] = item.digest
        for image in item.images if isinstance(item, Index) else (item,):
            self.manifests.setdefault((repo, image.digest), f"{image.name} image of {what}")
            for blob in image.blobs:
                self.blobs.setdefault((repo, blob.digest), f"blob of {image.name} ({what})")

    def live_digests(self) -> set[str]:
        return {digest for _, digest in self.blobs}

    def garbage_digests(self) -> set[str]:
        return {digest for _, digest in self.garbage}

    def as_dict(self) -> dict[str, object]:
        return {"namespace": self.namespace, "repositories": self.repos,
                "tags": self.tags, "manifests": [{"repo": r, "digest": d, "what": w} for (r, d), w in self.manifests.items()],
                "blobs": [{"repo": r, "digest": d, "what": w} for (r, d), w in self.blobs.items()],
                "deleted": [{"repo": r, "digest": d, "tags": t} for (r, d), t in self.deleted.items()],
                "garbage": [{"repo": r, "digest": d, "why": w} for (r, d), w in self.garbage.items()], "emptied": self.emptied, "blob_only": self.blob_only,
                "subjects": [{"repo": r, "subject": s, "artifacts": a} for (r, s), a in self.subjects.items()],
                "upload": None if self.upload is None else {"repo": self.upload.repo, "stored": self.upload.stored,
                                                            "size": len(self.upload.data)}}


def _expect(resp_status: int, wanted: tuple[int, ...], what: str) -> None:
    if resp_status not in wanted:
        raise PushError(f"upgrade corpus: {what} answered {resp_status}")


def push_corpus(client: RegistryClient, namespace: str) -> Corpus:
    """Push everything to the old registry; raise PushError when it refuses what a client must push."""
    corpus = Corpus(namespace)
    for fmt in ("docker", "oci"):
        repo = corpus.repo(fmt)
        fixtures = fixture_set(fmt)  # type: ignore[arg-type]
        push_fixture_set(client, repo, fixtures)
        for image in fixtures.images:
            corpus.add(repo, image, image.tags, f"{fmt} image {image.name}")
        corpus.add(repo, fixtures.index, fixtures.index.tags, f"{fmt} index {fixtures.index.name}")
    _push_oci_extras(client, corpus)
    _push_emptied(client, corpus)
    _push_paged(client, corpus)
    _push_large(client, corpus)
    _push_orphan(client, corpus)
    corpus.upload = _leave_upload(client, corpus.repo("upload"))
    return corpus


def _push_oci_extras(client: RegistryClient, corpus: Corpus) -> None:
    repo = corpus.repo("oci")
    subject = fixture_set("oci").alpha
    artifacts = tuple(make_artifact(f"upgrade-{kind.rsplit('.', 1)[-1]}", subject, kind) for kind in ARTIFACT_TYPES)
    for artifact in artifacts:
        push_image(client, repo, artifact, tags=())
        corpus.add(repo, artifact, (), f"artifact {artifact.name} (subject {subject.digest})")
    schema = make_referrers_index(subject, artifacts)
    push_index(client, repo, schema)
    corpus.add(repo, schema, schema.tags, "referrers tag schema index")
    corpus.subjects[(repo, subject.digest)] = [a.digest for a in artifacts]
    untagged = make_image("untagged", "oci", ["base", "oci-untagged"])
    push_image(client, repo, untagged, tags=())
    corpus.add(repo, untagged, (), "untagged image")
    gone = make_image("deleted", "oci", ["base", "oci-deleted"])
    _delete_after_push(client, corpus, repo, gone, ("gone",))


def _delete_after_push(client: RegistryClient, corpus: Corpus, repo: str, image: Image, tags: tuple[str, ...]) -> None:
    push_image(client, repo, image, tags=tags)
    _expect(client.delete_manifest(repo, image.digest).status_code, (202,), f"DELETE {repo}@{image.digest}")
    corpus.deleted[(repo, image.digest)] = list(tags)
    live = corpus.live_digests()
    for blob in image.blobs:
        if blob.digest not in live:
            corpus.garbage[(repo, blob.digest)] = f"blob of the deleted manifest {image.digest} in {repo}"


def _push_emptied(client: RegistryClient, corpus: Corpus) -> None:
    repo = corpus.repo("emptied")
    corpus.emptied.append(repo)
    _delete_after_push(client, corpus, repo, make_image("emptied", "docker", ["emptied"]), ("only",))


def _push_paged(client: RegistryClient, corpus: Corpus) -> None:
    repo = corpus.repo("paged")
    image = make_image("paged", "oci", ["paged"])
    tags = tuple(f"t{i:03d}" for i in range(PAGED_TAGS))
    push_image(client, repo, image, tags=tags)
    corpus.add(repo, image, tags, f"image under {len(tags)} tags")


def _push_large(client: RegistryClient, corpus: Corpus) -> None:
    repo = corpus.repo("large")
    image = make_image("large", "oci", ["large"], layer_size=LARGE_SIZE)
    layer = image.layers[0]
    resp = client.push_blob_stream(repo, io.BytesIO(layer.data), layer.digest, chunk_size=LARGE_CHUNK)
    _expect(resp.status_code, (201,), f"streamed push of {layer.digest} ({layer.size} bytes) to {repo}")
    push_image(client, repo, image, tags=("v1",))  # the layer is there: HEAD 200 skips it
    corpus.add(repo, image, ("v1",), f"image with a {layer.size}-byte layer pushed in chunks")


def _push_orphan(client: RegistryClient, corpus: Corpus) -> None:
    repo = corpus.repo("orphan")
    corpus.blob_only.append(repo)
    data = pseudo_random_bytes("upgrade-orphan", 10_000)
    _expect(client.push_blob(repo, data).status_code, (201,), f"blob push to {repo}")
    digest = sha256_digest(data)
    corpus.blobs[(repo, digest)] = "blob no manifest references"
    corpus.garbage[(repo, digest)] = f"blob in {repo} that no manifest references"


def _leave_upload(client: RegistryClient, repo: str) -> Upload:
    data = pseudo_random_bytes("upgrade-upload", UPLOAD_SIZE)
    started = client.start_upload(repo)
    _expect(started.status_code, (202,), f"POST {repo}/blobs/uploads/")
    resp = client.upload_chunk(started.headers["location"], data[:UPLOAD_FIRST], start=0)
    _expect(resp.status_code, (202,), f"PATCH of the first {UPLOAD_FIRST} bytes to {repo}")
    parts = urlsplit(resp.headers["location"])
    return Upload(repo, parts.path + (f"?{parts.query}" if parts.query else ""), data, UPLOAD_FIRST)
