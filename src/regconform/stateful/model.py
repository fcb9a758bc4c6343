"""The reference model: what a registry must hold after a sequence of operations, per repository.

Pure data, no HTTP. Every place where registries may differ is read from the profile (`Behaviour`);
the model never asks which registry it models. Where the profile admits several answers (delete by
tag: 202 or 400; a mount: 201 or 202), the answer the registry gave decides the effect, and the
profile decides which answers are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from regconform.content.images import Blob, Format, Image, Index, make_image, make_index
from regconform.profiles import Expectation, Profile

REPOS = ("a", "b")  # two: collisions (a tag moved, a blob in the other repository) come often
TAGS = ("t0", "t1", "t2")
LAYER_SIZE = 600  # small blobs: the model's point is state, not bytes


# -- content ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """A manifest the model can push: its bytes, type, and what it references."""

    name: str
    kind: str  # "image" or "index"
    body: bytes
    media_type: str
    digest: str
    blobs: tuple[str, ...] = ()      # blob digests an image references
    children: tuple[str, ...] = ()   # manifest digests an index references
    default_platform: str | None = None  # digest of an index's linux/amd64 image


@dataclass(frozen=True)
class Pool:
    """The content of one sequence: three images (two share a layer) and an index over two of them."""

    fmt: Format
    blobs: tuple[Blob, ...]
    images: tuple[Manifest, ...]
    indexes: tuple[Manifest, ...]

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return self.images + self.indexes

    def blob(self, digest: str) -> Blob:
        return next(b for b in self.blobs if b.digest == digest)

    def manifest(self, digest: str) -> Manifest:
        return next(m for m in self.manifests if m.digest == digest)


def _image(img: Image) -> Manifest:
    return Manifest(img.name, "image", img.manifest, img.media_type, img.digest, tuple(b.digest for b in img.blobs))


def _index(idx: Index) -> Manifest:
    return Manifest(idx.name, "index", idx.manifest, idx.media_type, idx.digest,
                    children=tuple(i.digest for i in idx.images), default_platform=idx.images[0].digest)


def make_pool(fmt: Format, salt: str = "") -> Pool:
    """Deterministic content; `salt` gives a sequence blobs of its own (garbage collection is registry-wide)."""
    s = f"stateful{salt}"
    images = (make_image(f"{s}-m0", fmt, [f"{s}-l0"], layer_size=LAYER_SIZE),
              make_image(f"{s}-m1", fmt, [f"{s}-l0"], arch="arm64", layer_size=LAYER_SIZE),
              make_image(f"{s}-m2", fmt, [f"{s}-l1"], layer_size=LAYER_SIZE))
    index = make_index(f"{s}-i0", fmt, images[:2])
    blobs: dict[str, Blob] = {}
    for img in images:
        for blob in img.blobs:
            blobs.setdefault(blob.digest, blob)
    return Pool(fmt, tuple(blobs.values()), tuple(_image(i) for i in images), (_index(index),))


# -- what the profile says ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """The profile's answers to every question the model asks."""

    profile: Profile

    def expect(self, key: str) -> Expectation:
        """The expectation, as a check to run (an 'unsupported' record still fixes the answer)."""
        return replace(self.profile.expect(key), supported=True)

    @property
    def tag_order(self) -> str:
        return str(self.profile.expect("tags.list").get("order", "any"))

    @property
    def tags_paginate(self) -> bool:
        return self.profile.expect("tags.paginate").supported

    @property
    def empty_tags(self) -> Any:
        """What tags/list holds for a repository whose tags were all removed: None (JSON null) or []."""
        value = self.profile.expect("tags.list-after-all-deleted").get("tags", [])
        return None if value == "null" else value

    @property
    def catalog_lists(self) -> str:
        return str(self.profile.expect("stateful.catalog-membership")["lists"])

    @property
    def catalog_pages_from_last(self) -> bool:
        """`_catalog?last=<prefix>` starts right after the prefix only when names come in lexical order."""
        return self.profile.expect("catalog.list").get("order") == "lexical"

    @property
    def gc_keeps(self) -> str:
        return str(self.profile.expect("stateful.gc")["keeps"])

    def outcome(self, cell: str) -> list[str]:
        """Accept negotiation: the profile's outcomes for `<fmt>-<kind>.<tag|digest>.<accept>`."""
        from regconform.checks import expected_outcomes

        return expected_outcomes(self.profile.expect("manifests.accept-negotiation"), cell)


# -- state -------------------------------------------------------------------------------------------


@dataclass
class Repo:
    tags: dict[str, str] = field(default_factory=dict)         # tag -> manifest digest
    manifests: dict[str, Manifest] = field(default_factory=dict)
    blobs: set[str] = field(default_factory=set)               # linked blob digests
    ever_tagged: bool = False
    ever_linked: bool = False
    ever_manifest: bool = False


@dataclass
class Session:
    """An upload session: the blob it will hold, how many bytes it has, where to continue."""

    key: int
    repo: str
    blob: Blob
    offset: int
    location: str

    def __repr__(self) -> str:  # Hypothesis prints steps with it
        return f"session{self.key}"


@dataclass
class Model:
    repos: dict[str, Repo] = field(default_factory=lambda: {name: Repo() for name in REPOS})
    stored: set[str] = field(default_factory=set)   # blobs in the registry-wide store
    sessions: dict[int, Session] = field(default_factory=dict)
    next_session: int = 1

    def serves_blob(self, repo: str, digest: str) -> bool:
        return digest in self.repos[repo].blobs and digest in self.stored

    def missing_references(self, repo: str, manifest: Manifest) -> list[str]:
        """What a manifest push into `repo` lacks: blobs it references, or child manifests of an index."""
        held = self.repos[repo]
        return ([d for d in manifest.blobs if not self.serves_blob(repo, d)]
                + [d for d in manifest.children if d not in held.manifests])

    # -- effects ---------------------------------------------------------------------------------

    def link(self, repo: str, digest: str) -> None:
        r = self.repos[repo]
        r.blobs.add(digest)
        r.ever_linked = True
        self.stored.add(digest)

    def put_manifest(self, repo: str, manifest: Manifest, tag: str | None) -> None:
        r = self.repos[repo]
        r.manifests[manifest.digest] = manifest
        r.ever_manifest = True
        if tag is not None:
            r.tags[tag] = manifest.digest
            r.ever_tagged = True

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Deleting by digest removes the manifest and every tag pointing at it."""
        r = self.repos[repo]
        r.manifests.pop(digest, None)
        r.tags = {t: d for t, d in r.tags.items() if d != digest}

    def untag(self, repo: str, tag: str) -> None:
        self.repos[repo].tags.pop(tag, None)

    def unlink(self, repo: str, digest: str) -> None:
        self.repos[repo].blobs.discard(digest)

    def open_session(self, repo: str, blob: Blob, location: str) -> Session:
        session = Session(self.next_session, repo, blob, 0, location)
        self.sessions[session.key] = session
        self.next_session += 1
        return session

    def collect_garbage(self) -> set[str]:
        """Blobs no manifest of any repository references leave the store; returns them."""
        referenced = {d for r in self.repos.values() for m in r.manifests.values() for d in m.blobs}
        gone = self.stored - referenced
        self.stored &= referenced
        return gone

    def restart(self) -> None:
        """Sessions opened before a restart are left out of the model from then on (see README)."""
        self.sessions.clear()

    # -- listings ----------------------------------------------------------------------------------

    def listed_in_catalog(self, repo: str, lists: str) -> bool | None:
        """Whether _catalog must list the repository (None: the profile leaves it open)."""
        r = self.repos[repo]
        if lists == "linked-blob":
            return r.ever_linked
        if lists == "manifest":
            return r.ever_manifest
        return None
