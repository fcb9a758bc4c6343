"""What a registry serves of the corpus: read the same way before and after the upgrade.

Every byte is hostile: listings are read page by page up to a bound, JSON bodies only below a size
bound, blobs streamed and hashed (never held), and every digest is recomputed from the bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from regconform.registry.client import RegistryClient
from regconform.reports.diff import one_line
from regconform.registry.digests import sha256_digest
from regconform.registry.errors import ClientError, DigestMismatch
from regconform.upgrade.corpus import PAGE, Corpus

MAX_PAGES = 200
MAX_JSON = 4 * 1024 * 1024


@dataclass
class Served:
    """One GET: the status, and (on 200) the sha256 of the bytes and their size."""

    status: int
    sha256: str | None = None
    size: int | None = None
    error: str | None = None  # the first error-envelope code, or a transport/verification problem


@dataclass
class Listing:
    status: int
    names: list[str] | None  # in the order served; None: no list (an error, or "tags": null)
    pages: int = 1
    error: str | None = None


@dataclass
class Snapshot:
    tags: dict[str, dict[str, Served]] = field(default_factory=dict)  # repo -> tag -> GET by tag
    manifests: dict[str, dict[str, Served]] = field(default_factory=dict)  # repo -> digest -> GET by digest
    blobs: dict[str, dict[str, Served]] = field(default_factory=dict)  # repo -> digest -> GET (streamed)
    deleted: dict[str, dict[str, Served]] = field(default_factory=dict)  # repo -> digest or tag -> GET
    tag_lists: dict[str, Listing] = field(default_factory=dict)
    catalog: Listing | None = None
    referrers: dict[str, dict[str, Any]] = field(default_factory=dict)  # "repo@subject" -> how found, digests

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_code(resp: httpx.Response) -> str | None:
    if resp.status_code < 400 or len(resp.content) > MAX_JSON:
        return None
    try:
        errors = json.loads(resp.content).get("errors")
        return one_line(str(errors[0]["code"]), 64) if errors else None
    except (ValueError, AttributeError, TypeError, KeyError, IndexError):
        return None


def json_body(resp: httpx.Response) -> Any:
    if len(resp.content) > MAX_JSON:
        return None
    try:
        return json.loads(resp.content)
    except ValueError:
        return None


def read_manifest(client: RegistryClient, repo: str, reference: str) -> Served:
    resp = client.get_manifest(repo, reference)
    if resp.status_code != 200:
        return Served(resp.status_code, error=error_code(resp))
    return Served(200, sha256_digest(resp.content), len(resp.content))


def read_blob(client: RegistryClient, repo: str, digest: str) -> Served:
    """Streamed and hashed; a body that does not hash to its digest is recorded with what it hashes to."""
    try:
        size = client.stream_blob(repo, digest)
    except DigestMismatch as exc:
        return Served(200, str(exc).rsplit(" ", 1)[-1], error="changed bytes")
    except ClientError as exc:
        status = int(str(exc).rsplit(" ", 1)[-1]) if str(exc).rsplit(" ", 1)[-1].isdigit() else 0
        return Served(status, error=str(exc)[:200])
    except httpx.HTTPError as exc:
        return Served(0, error=f"{type(exc).__name__} while reading")
    return Served(200, digest, size)


def read_listing(client: RegistryClient, first: httpx.Response) -> Listing:
    """Every page behind `Link: rel="next"`, up to MAX_PAGES; names in the order served."""
    key = "repositories" if first.request.url.path.endswith("/_catalog") else "tags"
    if first.status_code != 200:
        return Listing(first.status_code, None, error=error_code(first))
    names: list[str] | None = None
    resp: httpx.Response | None = first
    pages = 0
    while resp is not None and pages < MAX_PAGES:
        pages += 1
        if resp.status_code != 200:
            return Listing(resp.status_code, names, pages, error=error_code(resp) or "a later page failed")
        doc = json_body(resp)
        page = doc.get(key) if isinstance(doc, dict) else None
        if page is not None:
            if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
                return Listing(200, names, pages, error=f"'{key}' is not a list of names")
            names = (names or []) + [one_line(n, 300) for n in page]  # hostile names: one bounded line each
        resp = client.follow_link(resp)
    return Listing(200, names, pages, error=None if resp is None else f"more than {MAX_PAGES} pages")


def find_referrers(client: RegistryClient, repo: str, subject: str, referrers_tag: str) -> dict[str, Any]:
    """The artifacts of `subject`: the referrers API when it answers 200, else the referrers tag schema."""
    resp = client.referrers(repo, subject)
    doc = json_body(resp) if resp.status_code == 200 else None
    if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
        return {"via": "referrers API", "status": 200, "digests": _descriptor_digests(doc)}
    tagged = client.get_manifest(repo, referrers_tag)
    doc = json_body(tagged) if tagged.status_code == 200 else None
    if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
        return {"via": "referrers tag schema", "status": 200, "digests": _descriptor_digests(doc)}
    return {"via": None, "status": resp.status_code, "tag_status": tagged.status_code, "digests": []}


def _descriptor_digests(doc: dict[str, Any]) -> list[str]:
    return sorted(one_line(str(m.get("digest")), 100) for m in doc["manifests"][:1000] if isinstance(m, dict))


def take_snapshot(client: RegistryClient, corpus: Corpus) -> Snapshot:
    from regconform.content.images import referrers_tag

    snap = Snapshot()
    for repo in corpus.repos:
        snap.tags[repo] = {tag: read_manifest(client, repo, tag) for tag in corpus.tags[repo]}
        snap.tag_lists[repo] = read_listing(client, client.list_tags(repo, n=PAGE))
    for repo, digest in corpus.manifests:
        snap.manifests.setdefault(repo, {})[digest] = read_manifest(client, repo, digest)
    for repo, digest in corpus.blobs:
        snap.blobs.setdefault(repo, {})[digest] = read_blob(client, repo, digest)
    for (repo, digest), tags in corpus.deleted.items():
        for ref in (digest, *tags):
            snap.deleted.setdefault(repo, {})[ref] = read_manifest(client, repo, ref)
    # Every name of the run sorts after the bare namespace: a shared registry's other names are skipped.
    catalog = read_listing(client, client.catalog(n=PAGE, last=corpus.namespace))
    if catalog.names is not None:
        catalog.names = [n for n in catalog.names if n.startswith(corpus.namespace + "/")]
    snap.catalog = catalog
    for (repo, subject) in corpus.subjects:
        snap.referrers[f"{repo}@{subject}"] = find_referrers(client, repo, subject, referrers_tag(subject))
    return snap
