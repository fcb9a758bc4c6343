"""The content matrix: kinds of OCI content every workflow runs over (as the OCI conformance
program on distribution-spec main does, its `OCI_DATA_*` settings), deterministic like the
fixture sets of `images.py`.

A kind is a list of blobs and manifests (children first, the kind's own manifest last), pushed
in that order, and the descriptors it references but deliberately never pushes (a sparse index's
children, non-distributable layers). `KINDS` holds them all, keyed by name; the suites
parametrize over `KIND_NAMES` and each profile records per kind (`kinds.<name>`) whether the
registry accepts it.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from regconform.content.images import (
    EMPTY_CONFIG,
    Blob,
    canonical_json,
    make_layer,
    pseudo_random_bytes,
)
from regconform.registry import media
from regconform.registry.client import RegistryClient
from regconform.registry.digests import digest_of

NON_DISTRIBUTABLE_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
ARTIFACT_TYPE = "application/vnd.regconform.kind.v1"
REFERRER_TYPE = "application/vnd.regconform.kind-referrer.v1"
# OCI §Pushing Manifests: clients and registries SHOULD support manifests of at least 4 megabytes.
NEAR_LIMIT = 4 * 1024 * 1024 - 2000
# The workflows every kind runs through (suites/test_content_kinds.py), named in each check's record.
WORKFLOWS = ("push", "pull", "content-discovery", "referrers", "content-management")


@dataclass(frozen=True)
class Content(Blob):
    """A blob or a manifest of a kind: bytes, media type, digest algorithm, and what it is within its
    kind (config, layer, child manifest, ...) for messages."""

    role: str = "blob"


@dataclass(frozen=True)
class Kind:
    """One kind of content: blobs and manifests to push (the last manifest is the kind's own)."""

    name: str
    description: str
    blobs: tuple[Content, ...]
    manifests: tuple[Content, ...]
    absent: tuple[Content, ...] = ()  # referenced, never pushed (sparse children, foreign layers)
    workflows: tuple[str, ...] = WORKFLOWS

    @property
    def top(self) -> Content:
        return self.manifests[-1]

    @property
    def tag(self) -> str:
        return f"kind-{self.name}"


def _manifest(doc: dict[str, object], media_type: str = media.OCI_MANIFEST, *, algorithm: str = "sha256",
              role: str = "manifest", raw: bytes | None = None) -> Content:
    return Content(raw if raw is not None else canonical_json(doc), media_type, algorithm, role)


def _diff_id(layer: Content) -> str:
    """sha256 of the uncompressed layer (image-spec: diff_ids are of the uncompressed tar)."""
    return digest_of(gzip.decompress(layer.data) if layer.data[:2] == b"\x1f\x8b" else layer.data)


def _config(seed: str, layers: tuple[Content, ...], algorithm: str = "sha256", extra: dict[str, object] | None = None) -> Content:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.regconform.kind": seed}},
        "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layers]},
        "created": "2020-01-01T00:00:00Z",
        **(extra or {}),
    }
    return Content(canonical_json(doc), media.OCI_CONFIG, algorithm, "config")


def _layer(seed: str, algorithm: str = "sha256", media_type: str = media.OCI_LAYER) -> Content:
    return Content(make_layer(f"kind-{seed}", size=2048).data, media_type, algorithm, "layer")


def _image(seed: str, *, algorithm: str = "sha256", extra: dict[str, object] | None = None,
           arch: str = "amd64") -> tuple[tuple[Content, ...], Content]:
    """(blobs, manifest) of a plain one-layer OCI image."""
    layer = _layer(seed, algorithm)
    config = _config(f"{seed}-{arch}", (layer,), algorithm)
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": config.descriptor(),
           "layers": [layer.descriptor()], **(extra or {})}
    return (config, layer), _manifest(doc, algorithm=algorithm, role=f"image manifest {seed}")


def _index(manifests: list[tuple[Content, str]], **extra: object) -> Content:
    doc = {"schemaVersion": 2, "mediaType": media.OCI_INDEX,
           "manifests": [m.descriptor(platform={"architecture": arch, "os": "linux"}) if arch else m.descriptor()
                         for m, arch in manifests], **extra}
    return _manifest(doc, media.OCI_INDEX, role="image index")


def subject_descriptor(content: Content) -> dict[str, object]:
    return {"mediaType": content.media_type, "digest": content.digest, "size": content.size}


# -- the kinds -------------------------------------------------------------------------------------------


def sha512_image() -> Kind:
    blobs, manifest = _image("sha512", algorithm="sha512")
    return Kind("sha512-image", "image whose blobs and manifest are addressed by sha512 digests", blobs, (manifest,))


def nested_index() -> Kind:
    blobs_a, image_a = _image("nested-a")
    blobs_b, image_b = _image("nested-b", arch="arm64")
    inner = _index([(image_a, "amd64"), (image_b, "arm64")])
    outer = _manifest({"schemaVersion": 2, "mediaType": media.OCI_INDEX,
                       "manifests": [inner.descriptor()]}, media.OCI_INDEX, role="index of indexes")
    return Kind("nested-index", "image index whose child is an image index", (*blobs_a, *blobs_b),
                (image_a, image_b, inner, outer))


def sparse_index() -> Kind:
    blobs, pushed = _image("sparse-pushed")
    _, missing = _image("sparse-missing", arch="arm64")
    index = _index([(pushed, "amd64"), (missing, "arm64")])
    return Kind("sparse-index", "image index one of whose children is never pushed", blobs, (pushed, index),
                absent=(missing,))


def artifact_no_layers() -> Kind:
    config = Content(canonical_json({"regconform": "artifact config"}), "application/vnd.regconform.config.v1+json",
                     role="artifact config")
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
           "config": config.descriptor(), "layers": []}
    return Kind("artifact-no-layers", "artifact manifest with artifactType and an empty layer list", (config,),
                (_manifest(doc, role="artifact manifest"),))


def artifact_empty_config() -> Kind:
    empty = Content(EMPTY_CONFIG.data, media.OCI_EMPTY, role="empty config")
    payload = Content(b"regconform artifact payload", "application/vnd.regconform.payload", role="payload")
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
           "config": empty.descriptor(), "layers": [payload.descriptor()]}
    return Kind("artifact-empty-config", "config-less artifact: the empty descriptor as config, artifactType set",
                (empty, payload), (_manifest(doc, role="artifact manifest"),))


def data_field() -> Kind:
    layer = _layer("data-field")
    config = _config("data-field", (layer,))
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
           "config": config.descriptor(data=base64.b64encode(config.data).decode()),
           "layers": [layer.descriptor(data=base64.b64encode(layer.data).decode())]}
    return Kind("data-field", "descriptors carrying their content in the `data` field", (config, layer),
                (_manifest(doc, role="image manifest with data fields"),))


def non_distributable() -> Kind:
    pushed = _layer("nondist-base")
    foreign = _layer("nondist-foreign", media_type=NON_DISTRIBUTABLE_LAYER)
    config = _config("nondist", (pushed, foreign))
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": config.descriptor(),
           "layers": [pushed.descriptor(),
                      foreign.descriptor(urls=[f"https://layers.example.invalid/{foreign.digest}"])]}
    return Kind("non-distributable", "image with a non-distributable layer (urls, never pushed)", (config, pushed),
                (_manifest(doc, role="image manifest with a foreign layer"),), absent=(foreign,))


def empty_blob() -> Kind:
    empty = Content(b"", media.OCI_LAYER, role="zero-byte layer")
    config = _config("empty-blob", (empty,))
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": config.descriptor(),
           "layers": [empty.descriptor()]}
    return Kind("empty-blob", "image whose layer is a zero-byte blob", (config, empty),
                (_manifest(doc, role="image manifest"),))


def no_layers() -> Kind:
    config = _config("no-layers", ())
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": config.descriptor(), "layers": []}
    return Kind("no-layers", "image manifest with an empty layer list", (config,), (_manifest(doc, role="image manifest"),))


def custom_fields() -> Kind:
    """Unknown fields and annotations in manifest and config, in an order and spacing no canonical
    encoder produces: a registry must store and serve exactly these bytes."""
    layer = _layer("custom")
    config = _config("custom", (layer,), extra={"org.regconform.custom": {"nested": [1, 2.50, None, "ü"]}})
    layers = json.dumps([layer.descriptor(annotations={"z.last": "1", "a.first": "2"})], indent=3)
    raw = ('{\n  "schemaVersion" : 2,\n  "mediaType" : "' + media.OCI_MANIFEST + '",\n'
           '  "zCustomField" : {"kept": "byte for byte", "number": 1.0e3},\n'
           '  "config" : ' + json.dumps(config.descriptor()) + ',\n'
           '  "layers" : ' + layers + ',\n'
           '  "annotations" : {"org.regconform.z": "last\\u00e9", "org.regconform.a": "first \\"quoted\\""}\n}\n')
    return Kind("custom-fields", "custom fields and annotations, non-canonical JSON kept byte for byte", (config, layer),
                (_manifest({}, raw=raw.encode(), role="image manifest with custom fields"),))


def near_size_limit() -> Kind:
    blobs, manifest = _image("near-limit")
    doc = json.loads(manifest.data)
    doc["annotations"] = {"org.regconform.pad": ""}
    doc["annotations"]["org.regconform.pad"] = "x" * (NEAR_LIMIT - len(canonical_json(doc)))
    body = canonical_json(doc)
    return Kind("near-size-limit", f"image manifest of {len(body)} bytes (4 MiB less 2000)", blobs,
                (_manifest({}, raw=body, role="padded image manifest"),))


def index_with_subject() -> Kind:
    blobs, subject = _image("subject-of-index")
    blobs_child, child = _image("index-child")
    index = _index([(child, "amd64")], artifactType=ARTIFACT_TYPE, subject=subject_descriptor(subject))
    return Kind("index-with-subject", "image index with a subject (an index that refers to an image)",
                (*blobs, *blobs_child), (subject, child, index))


KIND_MAKERS: tuple[Callable[[], Kind], ...] = (
    sha512_image, nested_index, sparse_index, artifact_no_layers, artifact_empty_config, data_field,
    non_distributable, empty_blob, no_layers, custom_fields, near_size_limit, index_with_subject,
)
KINDS: dict[str, Kind] = {k.name: k for k in (make() for make in KIND_MAKERS)}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)


def referrer_of(kind: Kind) -> tuple[tuple[Content, ...], Content]:
    """(blobs, manifest) of an artifact whose subject is the kind's own manifest."""
    empty = Content(EMPTY_CONFIG.data, media.OCI_EMPTY, role="empty config")
    payload = Content(pseudo_random_bytes(f"referrer-{kind.name}", 64), "application/vnd.regconform.payload", role="payload")
    doc = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "artifactType": REFERRER_TYPE,
           "config": empty.descriptor(), "layers": [payload.descriptor()], "subject": subject_descriptor(kind.top),
           "annotations": {"org.regconform.referrer-of": kind.name}}
    return (empty, payload), _manifest(doc, role=f"referrer of {kind.name}")


# -- pushing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One push request of a kind and what the registry answered."""

    what: str
    response: httpx.Response
    digest: str


def push_blob(client: RegistryClient, repo: str, blob: Content) -> httpx.Response:
    """POST then PUT; for an algorithm other than sha256 the POST names it (`?digest-algorithm=`,
    end-4c), as OCI says a client SHOULD (registries without the parameter ignore it)."""
    params = {"digest-algorithm": blob.algorithm} if blob.algorithm != "sha256" else None
    started = client.start_upload(repo, params=params)
    if started.status_code != 202:
        return started
    return client.finish_upload(started.headers["location"], blob.digest, blob.data)


def push_kind(client: RegistryClient, repo: str, kind: Kind, *, blobs: tuple[Content, ...] | None = None,
              manifests: tuple[Content, ...] | None = None, tag: str | None = None) -> list[Answer]:
    """Push the kind: blobs, then manifests by digest (children first), then its own manifest under
    its tag. Stops at the first answer that is not 201 (the last of the list)."""
    answers: list[Answer] = []
    for blob in kind.blobs if blobs is None else blobs:
        answers.append(Answer(f"blob push of the {blob.role} {blob.digest}", push_blob(client, repo, blob), blob.digest))
        if answers[-1].response.status_code != 201:
            return answers
    todo = kind.manifests if manifests is None else manifests
    refs = [(m, m.digest) for m in todo] + [(todo[-1], tag or kind.tag)]
    for manifest, ref in refs:
        resp = client.put_manifest(repo, ref, manifest.data, manifest.media_type)
        answers.append(Answer(f"PUT of the {manifest.role} as {ref}", resp, manifest.digest))
        if resp.status_code != 201:
            return answers
    return answers


__all__ = ["Content", "Kind", "KINDS", "KIND_NAMES", "WORKFLOWS", "Answer", "push_kind", "push_blob", "referrer_of",
           "NEAR_LIMIT", "NON_DISTRIBUTABLE_LAYER", "ARTIFACT_TYPE", "REFERRER_TYPE"]
