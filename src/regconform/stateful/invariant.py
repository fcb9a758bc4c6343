"""The invariant of every stateful step, per repository the step touched: the registry serves what the
model holds and nothing else.

Every manifest the model holds is served byte-identical by digest (its Content-Type as pushed), every
other one the sequence ever named is 404; every tag points where the model says; every blob linked
is served (fresh ones read whole) and no other; tags/list equals the model (order and pagination as
the profile says); each open upload session reports the bytes it holds. A mix-in of RegistryMachine
(machine.py), which provides the model, the pool, the client and the profile's behaviour.
"""

from __future__ import annotations

import json

import httpx

from regconform.checks import Deviation
from regconform.registry.media import ALL_MANIFEST_TYPES
from regconform.stateful.model import TAGS, Session

PAGE = 2  # tags/list page size, where the profile says the registry paginates
MAX_PAGES = len(TAGS) + 2  # a tags/list that keeps sending Link is cut off here


class ServedAsModelled:
    """The checks behind RegistryMachine's invariant (attributes and helpers are the machine's)."""

    def check_repository(self, repo: str) -> None:
        held = self.model.repos[repo]
        name = self.path(repo)
        seen = self.seen[repo]
        for m in self.pool.manifests:
            if m.digest not in seen:
                continue
            if m.digest in held.manifests:
                got = self.client.get_manifest(name, m.digest, accept=ALL_MANIFEST_TYPES)
                self.expect(got, "manifests.digest-header", f"GET {self.label(m.digest)} in {repo}, which the model holds")
                self.same(got.headers.get("docker-content-digest"), m.digest, f"digest of GET {self.label(m.digest)} in {repo}")
                self.same(got.content == m.body, True, f"bytes of {self.label(m.digest)} served by {repo} are the ones pushed")
                self.same(got.headers.get("content-type"), m.media_type, f"Content-Type of {self.label(m.digest)} in {repo}")
            else:
                resp = self.client.head_manifest(name, m.digest, accept=ALL_MANIFEST_TYPES)
                self.same(resp.status_code, 404, f"HEAD {self.label(m.digest)} in {repo}, which the model does not hold")
        for tag in TAGS:
            if tag not in seen:
                continue
            resp = self.client.head_manifest(name, tag, accept=ALL_MANIFEST_TYPES)
            if tag in held.tags:
                self.same((resp.status_code, resp.headers.get("docker-content-digest")), (200, held.tags[tag]),
                          f"HEAD tag {tag} in {repo} (status, digest; the model: {self.label(held.tags[tag])})")
            else:
                self.same(resp.status_code, 404, f"HEAD tag {tag} in {repo}, which the model does not hold")
        for i, b in enumerate(self.pool.blobs):
            if b.digest not in seen or (b.digest not in self.named and not self.everything):
                continue
            if self.model.serves_blob(repo, b.digest) and (repo, b.digest) in self.fresh_blobs:
                got = self.client.get_blob(name, b.digest)
                self.same((got.status_code, got.headers.get("docker-content-digest"), got.content == b.data),
                          (200, b.digest, True), f"GET blob{i} in {repo}, which the model links there (status, digest, same bytes)")
                continue
            resp = self.client.head_blob(name, b.digest)
            if self.model.serves_blob(repo, b.digest):
                self.same((resp.status_code, resp.headers.get("docker-content-digest")), (200, b.digest),
                          f"HEAD blob{i} in {repo}, which the model links there (status, digest)")
            else:
                self.same(resp.status_code, 404, f"HEAD blob{i} in {repo}, which the model does not link there")
        self.check_tags(repo, None)
        if self.b.tags_paginate:
            self.check_tags(repo, PAGE)
        for session in self.model.sessions.values():
            if session.repo == repo:
                self.check_session(session)

    def check_tags(self, repo: str, page: int | None) -> None:
        held = self.model.repos[repo]
        name = self.path(repo)
        resp = self.client.list_tags(name, n=page)
        if not held.ever_tagged:
            self.expect(resp, "stateful.tags-never-tagged", f"tags/list of {repo}, which never held a tag")
            if resp.status_code == 200:
                self.same(json_object(resp, "tags/list").get("tags") or [], [], f"tags/list of {repo}, which never held a tag")
            return
        self.expect(resp, "tags.list", f"tags/list of {repo}")
        pages = [resp]
        while page and (nxt := self.client.follow_link(pages[-1])) is not None:
            if len(pages) >= MAX_PAGES:
                raise Deviation(f"tags/list of {repo} with n={page}: still a Link after {MAX_PAGES} pages")
            self.expect(nxt, "tags.list", f"tags/list page {len(pages) + 1} of {repo}")
            pages.append(nxt)
        docs = [json_object(p, "tags/list") for p in pages]
        want = sorted(held.tags)
        if not want and len(docs) == 1:
            empty = self.b.empty_tags
            self.same(docs[0].get("tags"), empty, f"tags/list of {repo}, whose tags were all removed "
                                                  f"[{self.b.profile.name}: tags.list-after-all-deleted]")
            return
        got = [t for d in docs for t in (d.get("tags") or [])]
        if page and any(len(d.get("tags") or []) > page for d in docs):
            raise Deviation(f"tags/list of {repo} with n={page}: a page holds more than {page} tags: {docs}")
        order = self.b.tag_order if not page else "lexical"
        if order == "lexical":
            self.same(got, want, f"tags/list of {repo} (in lexical order) [{self.b.profile.name}: tags.list]")
        else:
            self.same(len(got), len(set(got)), f"tags/list of {repo} lists no tag twice: {got}")
            self.same(sorted(got), want, f"tags/list of {repo} (any order) [{self.b.profile.name}: tags.list]")

    def check_session(self, session: Session) -> None:
        resp = self.client.upload_status(session.location)
        exp = self.b.expect("push.upload-status")
        self.expect(resp, "push.upload-status", f"status of {session}")
        want = f"0-{session.offset - 1}" if session.offset else exp.get("empty_range")
        if want not in (None, "*"):  # "*": the profile admits any Range for a session without bytes (oci-1.1)
            self.same(resp.headers.get("range"), want, f"Range of {session} holding {session.offset} bytes")
        session.location = resp.headers.get("location") or session.location


def json_object(resp: httpx.Response, what: str) -> dict:
    try:
        doc = json.loads(resp.content)
    except ValueError:
        raise Deviation(f"{what} answered {resp.status_code} with a body that is not JSON: {resp.text[:120]!r}") from None
    if not isinstance(doc, dict):
        raise Deviation(f"{what} answered a JSON {type(doc).__name__}, not an object")
    return doc
