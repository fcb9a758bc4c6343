"""Deterministic fixture images: the same bytes on every run, Docker schema2 and OCI.

A fixture set holds two images that share their base layer (so garbage collection can be
checked for shared and unique blobs), several tags, and an image index / manifest list over
both images. Pushing goes through the one API client.

A *variant* of the set (`fixture_set(fmt, variant=...)`) has every blob and manifest of its own:
each layer seed and the config carry the variant token. Checks whose answer depends on what else
the registry holds (garbage collection marks registry-wide) use the variant of their own check id
(`check_variant`), so no other check, nor any other content pushed from the plain set, shares a
blob with them; the token is a hash of the check id only, so two runs push the same bytes and
their reports diff cleanly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from regconform.registry import media
from regconform.registry.client import RegistryClient
from regconform.registry.digests import digest_of, sha256_digest

Format = Literal["docker", "oci"]
FORMATS: tuple[Format, ...] = ("docker", "oci")


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str
    algorithm: str = "sha256"  # what the digest is computed with (the content kinds use sha512 too)

    @property
    def digest(self) -> str:
        return digest_of(self.data, self.algorithm)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Image:
    """A single-platform image: config, layers and the manifest that binds them."""

    name: str
    format: Format
    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes
    media_type: str
    tags: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class Index:
    """An OCI image index or Docker manifest list over images of the same format."""

    name: str
    format: Format
    images: tuple[Image, ...]
    manifest: bytes
    media_type: str
    tags: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


@dataclass(frozen=True)
class FixtureSet:
    format: Format
    alpha: Image
    beta: Image
    index: Index
    shared_layer: Blob = field(repr=False)

    @property
    def images(self) -> tuple[Image, Image]:
        return (self.alpha, self.beta)


def canonical_json(doc: object) -> bytes:
    """Stable bytes: sorted keys, no whitespace, so digests never drift between runs."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def pseudo_random_bytes(seed: str, size: int) -> bytes:
    """Incompressible but reproducible content (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_layer(seed: str, size: int = 4096, media_type: str = media.OCI_LAYER) -> Blob:
    """A gzipped tar holding one file, with every timestamp fixed so the bytes are stable."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = pseudo_random_bytes(seed, size)
        info = tarfile.TarInfo(name=f"regconform/{seed}.bin")
        info.size = len(content)
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return Blob(packed.getvalue(), media_type)


def _diff_id(layer: Blob) -> str:
    return sha256_digest(gzip.decompress(layer.data))


def make_image(name: str, fmt: Format, layer_seeds: list[str], tags: tuple[str, ...] = (),
               arch: str = "amd64", layer_size: int = 4096, variant: str | None = None) -> Image:
    """An image; with `variant`, every layer seed and the config carry it (no blob shared with other variants)."""
    layer_type = media.OCI_LAYER if fmt == "oci" else media.DOCKER_LAYER
    seeds = [f"{variant}-{seed}" if variant else seed for seed in layer_seeds]
    layers = tuple(make_layer(seed, size=layer_size, media_type=layer_type) for seed in seeds)
    labels = {"org.regconform.fixture": name, **({"org.regconform.variant": variant} if variant else {})}
    config_doc = {
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layers]},
        "created": "2020-01-01T00:00:00Z",
    }
    config = Blob(canonical_json(config_doc), media.OCI_CONFIG if fmt == "oci" else media.DOCKER_CONFIG)
    manifest_type = media.OCI_MANIFEST if fmt == "oci" else media.DOCKER_MANIFEST
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return Image(name, fmt, config, layers, canonical_json(manifest_doc), manifest_type, tags)


def make_index(name: str, fmt: Format, images: tuple[Image, ...], tags: tuple[str, ...] = ()) -> Index:
    index_type = media.OCI_INDEX if fmt == "oci" else media.DOCKER_MANIFEST_LIST
    archs = ["amd64", "arm64", "riscv64", "s390x"]
    doc = {
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [
            {"mediaType": img.media_type, "digest": img.digest, "size": len(img.manifest),
             "platform": {"architecture": archs[i % len(archs)], "os": "linux"}}
            for i, img in enumerate(images)
        ],
    }
    return Index(name, fmt, images, canonical_json(doc), index_type, tags)


@lru_cache(maxsize=256)
def fixture_set(fmt: Format, variant: str | None = None) -> FixtureSet:
    """alpha and beta share the `base` layer; the index spans both. A variant shares nothing with the plain set."""
    alpha = make_image("alpha", fmt, ["base", f"{fmt}-alpha"], tags=("v1", "latest", "stable"), variant=variant)
    beta = make_image("beta", fmt, ["base", f"{fmt}-beta"], tags=("v2",), arch="arm64", variant=variant)
    index = make_index("multi", fmt, (alpha, beta), tags=("multi",))
    return FixtureSet(fmt, alpha, beta, index, alpha.layers[0])


def check_variant(check_id: str) -> str:
    """The variant token of one check (`<module file>::<test name>[<params>]`): stable across runs and
    registries, different for every check and format."""
    return "v" + hashlib.sha256(check_id.encode()).hexdigest()[:12]


EMPTY_CONFIG = Blob(b"{}", media.OCI_EMPTY)


def make_artifact(name: str, subject: Image | Index, artifact_type: str, payload: bytes | None = None,
                  annotations: dict[str, str] | None = None) -> Image:
    """An OCI 1.1 artifact manifest (empty config, one payload layer) whose `subject` is another manifest."""
    layer = Blob(payload if payload is not None else f"regconform artifact {name}".encode(), "application/vnd.regconform.payload")
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY_CONFIG.descriptor(),
        "layers": [layer.descriptor()],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.manifest)},
        "annotations": {"org.regconform.artifact": name, **(annotations or {})},
    }
    return Image(name, "oci", EMPTY_CONFIG, (layer,), canonical_json(doc), media.OCI_MANIFEST)


def referrer_descriptor(artifact: Image) -> dict[str, object]:
    """The descriptor a referrers list holds for an artifact: artifactType and annotations copied from it."""
    doc = json.loads(artifact.manifest)
    out: dict[str, object] = {"mediaType": artifact.media_type, "digest": artifact.digest, "size": len(artifact.manifest)}
    out["artifactType"] = doc.get("artifactType") or doc["config"]["mediaType"]
    if doc.get("annotations"):
        out["annotations"] = doc["annotations"]
    return out


def referrers_tag(digest: str) -> str:
    """The referrers tag schema (distribution-spec §Referrers Tag Schema): the algorithm truncated to 32
    characters, `-`, the encoded part truncated to 64, every character a tag cannot hold replaced by `-`."""
    algorithm, _, encoded = digest.partition(":")
    return re.sub(r"[^a-zA-Z0-9._-]", "-", f"{algorithm[:32]}-{encoded[:64]}")


def make_referrers_index(subject: Image | Index, artifacts: tuple[Image, ...]) -> Index:
    """The image index a client pushes under the referrers tag when the registry has no referrers API."""
    doc = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [referrer_descriptor(a) for a in artifacts]}
    return Index(f"referrers-of-{subject.name}", "oci", artifacts, canonical_json(doc), media.OCI_INDEX,
                 tags=(referrers_tag(subject.digest),))


class PushError(AssertionError):
    """Pushing a fixture failed: the registry did not accept what a client must be able to push."""


def push_image(client: RegistryClient, repo: str, image: Image, tags: tuple[str, ...] | None = None) -> None:
    """Push blobs (skipping those already present), then the manifest under each tag (or by digest)."""
    for blob in image.blobs:
        if client.head_blob(repo, blob.digest).status_code == 200:
            continue
        resp = client.push_blob(repo, blob.data, blob.digest)
        if resp.status_code != 201:
            raise PushError(f"blob push of {blob.digest} to {repo} answered {resp.status_code}: {resp.text[:200]}")
    _put_manifest(client, repo, image.manifest, image.media_type, image.tags if tags is None else tags, image.digest)


def push_index(client: RegistryClient, repo: str, index: Index, tags: tuple[str, ...] | None = None) -> None:
    for img in index.images:
        push_image(client, repo, img, tags=())
    _put_manifest(client, repo, index.manifest, index.media_type, index.tags if tags is None else tags, index.digest)


def push_fixture_set(client: RegistryClient, repo: str, fixtures: FixtureSet) -> None:
    push_image(client, repo, fixtures.alpha)
    push_image(client, repo, fixtures.beta)
    # alpha and beta are in the repo now; push_index would HEAD their blobs and PUT them again
    # (8 of 29 requests, run for every check that needs a fresh push).
    index = fixtures.index
    _put_manifest(client, repo, index.manifest, index.media_type, index.tags, index.digest)


def _put_manifest(client: RegistryClient, repo: str, body: bytes, media_type: str,
                  tags: tuple[str, ...], digest: str) -> None:
    for ref in tags or (digest,):
        resp = client.put_manifest(repo, ref, body, media_type)
        if resp.status_code != 201:
            raise PushError(f"manifest PUT {repo}:{ref} answered {resp.status_code}: {resp.text[:200]}")
