"""Continuity: the new version serves everything the old one stored, as the old one served it.

Each check compares what B serves with the snapshot of what A served (digests recomputed from the
bytes on both sides) and names every loss in one line ("tag v1 of ns/docker lost",
"blob sha256:… of ns/oci changed bytes"). Where versions may differ (listing order, whether an
emptied repository stays listed, whether a half-finished upload survives), B's profile decides.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regconform.profiles import Profile, ProfileError
from regconform.registry.client import RegistryClient
from regconform.upgrade.corpus import Corpus
from regconform.upgrade.state import (
    Listing,
    Served,
    Snapshot,
    error_code,
    read_blob,
    take_snapshot,
)

MAX_LOSSES_SHOWN = 40


@dataclass
class Verdict:
    key: str
    title: str
    checked: int = 0
    losses: list[str] = field(default_factory=list)
    skipped: str | None = None
    note: str = ""

    @property
    def outcome(self) -> str:
        return "skipped" if self.skipped else ("failed" if self.losses else "passed")

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "outcome": self.outcome, "checked": self.checked,
                "losses": self.losses, "skipped": self.skipped, "note": self.note}


def _short(served: Served) -> str:
    return f"{served.status}{' ' + served.error if served.error else ''}"


def _compare_served(what: str, before: Served, after: Served) -> str | None:
    """None when B serves what A served; else one line naming the loss."""
    if before.status != 200:
        return None  # A did not serve it either: nothing to lose
    if after.status != 200:
        return f"{what} lost (GET: {_short(after)})"
    if after.error == "changed bytes":
        return f"{what} changed bytes (they hash to {after.sha256})"
    if after.sha256 != before.sha256:
        return f"{what} changed bytes (sha256 {before.sha256} → {after.sha256})"
    return None


def _pairs(before: dict[str, dict[str, Served]], after: dict[str, dict[str, Served]]) -> Iterator[tuple[str, str, Served, Served]]:
    """(repo, reference, what A served, what B served) for everything A was asked for."""
    for repo, refs in before.items():
        for ref, served in refs.items():
            yield repo, ref, served, after.get(repo, {}).get(ref, Served(0, error="not read"))


def check_manifests(corpus: Corpus, a: Snapshot, b: Snapshot) -> list[Verdict]:
    by_tag = Verdict("manifests-by-tag", "every tag serves the manifest bytes A served")
    for repo, tag, before, after in _pairs(a.tags, b.tags):
        by_tag.checked += 1
        if before.status == 200 and after.status == 200 and after.sha256 != before.sha256:
            by_tag.losses.append(f"tag {tag} of {repo} now serves {after.sha256} (A served {before.sha256})")
        elif loss := _compare_served(f"tag {tag} of {repo}", before, after):
            by_tag.losses.append(loss)
    by_digest = Verdict("manifests-by-digest", "every manifest by digest: the same bytes, hashing to its digest")
    for repo, digest, before, after in _pairs(a.manifests, b.manifests):
        by_digest.checked += 1
        if loss := _compare_served(f"manifest {digest} of {repo}", before, after):
            by_digest.losses.append(loss)
        elif after.status == 200 and after.sha256 != digest:
            by_digest.losses.append(f"manifest {digest} of {repo} changed bytes (they hash to {after.sha256})")
    return [by_tag, by_digest]


def check_blobs(corpus: Corpus, a: Snapshot, b: Snapshot) -> Verdict:
    verdict = Verdict("blobs", "every blob byte-identical (streamed, digest recomputed)")
    for repo, digest, before, after in _pairs(a.blobs, b.blobs):
        verdict.checked += 1
        if loss := _compare_served(f"blob {digest} of {repo}", before, after):
            verdict.losses.append(loss)
        elif after.status == 200 and after.size != before.size:
            verdict.losses.append(f"blob {digest} of {repo} changed size ({before.size} → {after.size} bytes)")
    return verdict


def _order_problem(names: list[str], order: str) -> str | None:
    if order == "lexical" and names != sorted(names):
        return "not in lexical order"
    return None


def check_listings(corpus: Corpus, a: Snapshot, b: Snapshot, profile: Profile) -> list[Verdict]:
    tags_order = _profile_value(profile, "tags.list", "order", "any")
    tags = Verdict("tags-list", "tags/list of every repository holds the same names", note=f"order: {tags_order} ({profile.name})")
    for repo, before in a.tag_lists.items():
        tags.checked += 1
        after = b.tag_lists.get(repo, Listing(0, None, error="not read"))
        old, new = set(before.names or []), set(after.names or [])
        if old and after.status != 200:
            tags.losses.append(f"repository {repo} lost (tags/list: {after.status}{' ' + after.error if after.error else ''})")
            continue
        tags.losses += [f"tag {t} of {repo} lost from tags/list" for t in sorted(old - new)]
        tags.losses += [f"tag {t} of {repo} appeared in tags/list (A did not list it)" for t in sorted(new - old)]
        if after.names and len(after.names) != len(new):
            tags.losses.append(f"tags/list of {repo} names a tag more than once")
        if after.names and (problem := _order_problem(after.names, tags_order)):
            tags.losses.append(f"tags/list of {repo} {problem}, as {profile.name} requires")
        if after.error and after.status == 200:
            tags.losses.append(f"tags/list of {repo}: {after.error}")
    catalog = Verdict("catalog", "_catalog lists the same repositories",
                      note=f"order: {_profile_value(profile, 'catalog.list', 'order', 'any')} ({profile.name})")
    before, after = a.catalog or Listing(0, None), b.catalog or Listing(0, None)
    catalog.checked = len(before.names or [])
    if before.status == 200:
        expected = set(before.names or [])
        # B's profile: whether a repository with no manifest left, or with only a blob, is listed.
        if not _profile_value(profile, "catalog.emptied-repository", "listed", True):
            expected -= set(corpus.emptied)
        if not _profile_value(profile, "upgrade.catalog-blob-only-repository", "listed", True):
            expected -= set(corpus.blob_only)
        got = set(after.names or [])
        if after.status != 200:
            catalog.losses.append(f"_catalog answered {after.status}{' ' + after.error if after.error else ''}")
        catalog.losses += [f"repository {r} lost from _catalog" for r in sorted(expected - got)]
        catalog.losses += [f"repository {r} appeared in _catalog (A did not list it)"
                           for r in sorted(got - set(before.names or []))]
        order = _profile_value(profile, "catalog.list", "order", "any")
        if after.names and (problem := _order_problem(after.names, order)):
            catalog.losses.append(f"_catalog {problem}, as {profile.name} requires")
    return [tags, catalog]


def check_deleted(a: Snapshot, b: Snapshot) -> Verdict:
    verdict = Verdict("deleted-stays-deleted", "what A had deleted stays deleted (by digest and by former tag)")
    for repo, ref, before, after in _pairs(a.deleted, b.deleted):
        verdict.checked += 1
        if before.status == 404 and after.status != 404:
            kind = "deleted manifest" if ref.startswith("sha256:") else "deleted tag"
            verdict.losses.append(f"{kind} {ref} of {repo} resurrected (GET: {_short(after)}, A answered 404)")
    return verdict


def check_referrers(a: Snapshot, b: Snapshot) -> Verdict:
    verdict = Verdict("referrers", "every artifact is still found from its subject (referrers API or tag schema)")
    for key, before in a.referrers.items():
        verdict.checked += 1
        after = b.referrers.get(key, {"via": None, "digests": []})
        repo, _, subject = key.partition("@")
        for digest in sorted(set(before["digests"]) - set(after["digests"])):
            how = after["via"] or "neither the referrers API nor the referrers tag schema"
            verdict.losses.append(f"artifact {digest} of subject {subject} in {repo} lost: not found by {how}")
    return verdict


def check_upload(client: RegistryClient, corpus: Corpus, profile: Profile) -> Verdict:
    """Continue the half-finished upload on B, and compare with what B's profile records."""
    verdict = Verdict("upload-resume", "the half-finished upload resumes or fails as the profile records")
    upload = corpus.upload
    if upload is None:
        verdict.skipped = "no upload session was left on A"
        return verdict
    try:
        exp = profile.expect("upgrade.upload-resume")
    except ProfileError as exc:
        verdict.skipped = str(exc)
        return verdict
    verdict.note = exp.note
    verdict.checked = 1
    resumes = bool(exp.get("resumes", True))
    rest = upload.data[upload.stored:]
    patch = client.upload_chunk(upload.location, rest, start=upload.stored)
    seen = f"PATCH {patch.status_code}{' ' + (error_code(patch) or '') if patch.status_code >= 400 else ''}".strip()
    if patch.status_code == 202 and "location" in patch.headers:
        put = client.finish_upload(patch.headers["location"], upload.digest)
        seen += f", PUT {put.status_code}"
        stored = read_blob(client, upload.repo, upload.digest).status == 200 if put.status_code == 201 else False
    else:
        stored = False
    if resumes and not stored:
        verdict.losses.append(f"upload session in {upload.repo} did not resume ({seen}); {profile.name} records "
                              f"that it resumes")
    elif not resumes and stored:
        verdict.losses.append(f"upload session in {upload.repo} resumed ({seen}); {profile.name} records that it fails")
    elif not resumes and exp.status and patch.status_code not in exp.status:
        verdict.losses.append(f"upload session in {upload.repo}: PATCH answered {patch.status_code}, "
                              f"{profile.name} records {exp.describe()}")
    return verdict


def check_gc(client: RegistryClient, corpus: Corpus, b: Snapshot,
             collect: Callable[[], tuple[int, str]] | None) -> Verdict:
    """GC on B, then: every live blob and manifest B served before it is still there (HEAD; their bytes
    are the other checks' business); every blob only deleted manifests, or no manifest, referenced is gone."""
    verdict = Verdict("garbage-collection", "GC on B keeps every live blob, removes only what A had deleted")
    if collect is None:
        verdict.skipped = "no way to run garbage collection on B (give --gc-command)"
        return verdict
    code, verdict.note = collect()
    if code:
        verdict.losses.append(f"garbage-collect on B exited {code}")
    garbage = corpus.garbage_digests()
    for repo, digests in b.blobs.items():
        for digest, before in digests.items():
            if before.status != 200 or digest in garbage:
                continue
            verdict.checked += 1
            if (status := client.head_blob(repo, digest).status_code) != 200:
                verdict.losses.append(f"GC on B removed blob {digest} of {repo} ({corpus.blobs[(repo, digest)]}): "
                                      f"HEAD answered {status}")
    for repo, digests in b.manifests.items():
        for digest, before in digests.items():
            if before.status != 200:
                continue
            verdict.checked += 1
            if (status := client.head_manifest(repo, digest).status_code) != 200:
                verdict.losses.append(f"GC on B removed manifest {digest} of {repo}: HEAD answered {status}")
    for (repo, digest), why in sorted(corpus.garbage.items()):
        verdict.checked += 1
        if (status := client.head_blob(repo, digest).status_code) != 404:
            verdict.losses.append(f"GC on B kept blob {digest} ({why}): HEAD answered {status}, not 404")
    return verdict


def _profile_value(profile: Profile, key: str, name: str, default: Any) -> Any:
    try:
        return profile.expect(key).get(name, default)
    except ProfileError:
        return default


def run_continuity(client: RegistryClient, corpus: Corpus, before: Snapshot, profile: Profile,
                   collect: Callable[[], tuple[int, str]] | None) -> tuple[list[Verdict], Snapshot]:
    """Every continuity check of B against what A served. `collect` runs GC on B (and restarts it)."""
    after = take_snapshot(client, corpus)
    verdicts = [*check_manifests(corpus, before, after), check_blobs(corpus, before, after),
                *check_listings(corpus, before, after, profile), check_deleted(before, after),
                check_referrers(before, after), check_upload(client, corpus, profile)]
    verdicts.append(check_gc(client, corpus, after, collect))
    return verdicts, after


# -- reports -------------------------------------------------------------------------------------


def continuity_document(verdicts: list[Verdict], old: str, new: str, corpus: Corpus) -> dict[str, Any]:
    return {"old": old, "new": new, "passed": all(v.outcome != "failed" for v in verdicts),
            "checks": [v.as_dict() for v in verdicts], "corpus": corpus.as_dict()}


def render_continuity_markdown(doc: dict[str, Any]) -> str:
    lines = ["### regconform upgrade: continuity", "", f"- **old:** `{doc['old']}`", f"- **new:** `{doc['new']}`", "",
             "| check | outcome | checked | losses |", "| --- | --- | --- | --- |"]
    for v in doc["checks"]:
        outcome = v["outcome"] if v["outcome"] != "skipped" else f"skipped: {v['skipped']}"
        lines.append(f"| {v['title']} | {outcome} | {v['checked']} | {len(v['losses'])} |")
    for v in doc["checks"]:
        if v["losses"]:
            lines += ["", f"#### {v['title']}", ""]
            lines += [f"- {_md(loss)}" for loss in v["losses"][:MAX_LOSSES_SHOWN]]
            if len(v["losses"]) > MAX_LOSSES_SHOWN:
                lines.append(f"- … and {len(v['losses']) - MAX_LOSSES_SHOWN} more (continuity.json)")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "\\|").replace("`", "'")


def render_continuity_text(doc: dict[str, Any]) -> str:
    lines = [f"continuity: {'green' if doc['passed'] else 'RED'} ({doc['old']} → {doc['new']})"]
    for v in doc["checks"]:
        extra = f" — {v['skipped']}" if v["skipped"] else ""
        lines.append(f"  {v['outcome']:8} {v['title']} ({v['checked']} checked){extra}")
        lines += [f"      - {loss}" for loss in v["losses"][:MAX_LOSSES_SHOWN]]
        if len(v["losses"]) > MAX_LOSSES_SHOWN:
            lines.append(f"      - … and {len(v['losses']) - MAX_LOSSES_SHOWN} more (continuity.json)")
    return "\n".join(lines) + "\n"


def write_continuity(folder: Path, doc: dict[str, Any]) -> None:
    (folder / "continuity.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (folder / "continuity.md").write_text(render_continuity_markdown(doc))
