"""Operations on a registry driven by Hypothesis, every answer checked against the reference model.

`RegistryMachine` is a Hypothesis `RuleBasedStateMachine`. Each rule performs one operation through
the one API client, checks the answer against the profile and the model, and updates the model;
after every step an invariant checks the repositories the step touched: every manifest and tag the
model holds is served (byte-identical, by digest), nothing it does not hold is served, every blob
linked is served and no other, tags/list equals the model, open upload sessions hold their bytes.

Each sequence works in repositories of its own (`<namespace>/st-<fmt>-<n>/{a,b,c}`), so sequences
(and Hypothesis' replays while shrinking) never see each other's state.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from regconform.checks import ACCEPTS, Deviation, expect_answer, negotiated_outcome
from regconform.registry.client import RegistryClient
from regconform.registry.exchange import error_codes_of
from regconform.stateful.invariant import ServedAsModelled, json_object
from regconform.stateful.model import (
    REPOS,
    TAGS,
    Manifest,
    Model,
    Pool,
    Session,
    make_pool,
)
from regconform.stateful.sequence import Context, HeldBlob, HeldManifest

_SHAPE = make_pool("oci")   # the pool's shape (how many blobs and manifests) is the same for every salt
BLOBS = st.sampled_from(range(len(_SHAPE.blobs)))
IMAGES = st.sampled_from(range(len(_SHAPE.images)))
INDEXES = st.sampled_from(range(len(_SHAPE.indexes)))
MANIFEST_REFS = TAGS + tuple(m.name.rsplit("-", 1)[1] for m in _SHAPE.manifests)  # t0.. and m0 m1 m2 i0
REPO = st.sampled_from(REPOS)
SHIFT = st.sampled_from(range(1, len(REPOS)))  # which other repository


def other_repo(repo: str, shift: int) -> str:
    return REPOS[(REPOS.index(repo) + shift) % len(REPOS)]


def _rel(location: str, repo_from: str, repo_to: str) -> str:
    return location.replace(f"/v2/{repo_from}/", f"/v2/{repo_to}/", 1)


class RegistryMachine(ServedAsModelled, RuleBasedStateMachine):
    """One sequence of operations. Subclassed per run with `ctx` set (see runner.machine_for)."""

    ctx: Context
    sessions = Bundle("sessions")
    blobs_held = Bundle("blobs_held")
    manifests_held = Bundle("manifests_held")

    def __init__(self) -> None:
        super().__init__()
        ctx = self.ctx
        ctx.sequence += 1
        self.prefix = f"{ctx.namespace}/st-{ctx.fmt}-{ctx.sequence}"
        # With garbage collection, content is the sequence's own: GC acts on the whole registry.
        self.pool: Pool = make_pool(ctx.fmt, f"-{ctx.sequence}" if ctx.collect_and_restart else "")
        self.model = Model()
        self.b = ctx.behaviour
        self.dirty: set[str] = set()
        self.fresh_blobs: set[tuple[str, str]] = set()
        # Per repository, the digests and tags any operation there named: the invariant checks those
        # (a registry serving content nobody ever sent it is not what sequences find).
        self.seen: dict[str, set[str]] = {r: set() for r in REPOS}
        self.named: set[str] = set()  # what the current step named (blobs change only where named)
        self.gc_runs = 0
        self.everything = False  # after garbage collection: every blob is checked, not only those named
        ctx.recorder.begin()
        if len(ctx.client.exchanges) > 1000:  # the client keeps its own list too: bounded
            ctx.client.exchanges.clear()

    # -- plumbing ----------------------------------------------------------------------------------

    @property
    def client(self) -> RegistryClient:
        return self.ctx.client

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def step(self, text: str, *touched: str, names: tuple[str, ...] = ()) -> None:
        """A new step: the repositories it touches, and the digests and tags it names. The invariant then
        checks those repositories and every other one that holds something the step named."""
        self.ctx.recorder.step(text)
        self.dirty.update(touched)
        self.dirty.update(r for r, seen in self.seen.items() if seen & set(names))
        self.named.update(names)
        for repo in touched:
            self.seen[repo].update(names)

    def expect(self, resp: httpx.Response, key: str, what: str | None = None) -> None:
        expect_answer(resp, self.b.expect(key), what)

    @staticmethod
    def same(actual: object, expected: object, what: str) -> None:
        if actual != expected:
            raise Deviation(f"{what}: expected {expected!r} (the model), got {actual!r}")

    def label(self, digest: str) -> str:
        for m in self.pool.manifests:
            if m.digest == digest:
                return m.name.rsplit("-", 1)[1]
        for i, b in enumerate(self.pool.blobs):
            if b.digest == digest:
                return f"blob{i}"
        return digest

    def manifest_by_ref(self, ref: str) -> Manifest | None:
        return next((m for m in self.pool.manifests if m.name.endswith("-" + ref)), None)

    # -- blobs -------------------------------------------------------------------------------------

    @rule(target=blobs_held, repo=REPO, blob=BLOBS, how=st.sampled_from(["monolithic", "chunked", "streamed"]))
    def push_blob(self, repo: str, blob: int, how: str) -> HeldBlob:
        b = self.pool.blobs[blob]
        self.step(f"push blob{blob} to {repo} ({how})", repo, names=(b.digest,))
        name = self.path(repo)
        if how == "chunked":
            answers = self.client.push_blob_chunked(name, b.data, chunk_size=len(b.data) // 3 + 1)
            self.expect(answers[0], "push.upload-start")
            for resp in answers[1:-1]:
                self.expect(resp, "push.chunk-patch")
            resp = answers[-1]
            self.expect(resp, "push.upload-complete")
        elif how == "streamed":
            resp = self.client.push_blob_stream(name, io.BytesIO(b.data), b.digest, monolithic=True)
            self.expect(resp, "push.upload-complete")
        else:
            resp = self.client.push_blob(name, b.data, b.digest)
            self.expect(resp, "push.monolithic")
        self.same(resp.headers.get("docker-content-digest"), b.digest, f"Docker-Content-Digest of the {how} push of blob{blob}")
        self.model.link(repo, b.digest)
        self.fresh_blobs.add((repo, b.digest))
        return HeldBlob(repo, blob)

    @rule(target=blobs_held, held=blobs_held, shift=SHIFT)
    def mount_held_blob(self, held: HeldBlob, shift: int) -> object:
        """Mount a blob the sequence pushed into another repository."""
        repo = other_repo(held.repo, shift)
        session = self._mount(repo, held.repo, held.blob)
        return HeldBlob(repo, held.blob) if session is None else multiple()

    @rule(held=blobs_held)
    def delete_held_blob(self, held: HeldBlob) -> None:
        self.delete_blob(held.repo, held.blob)

    def _blob_of(self, held: HeldManifest, which: int) -> int | None:
        """One of the blobs a manifest the sequence pushed references (None for an index)."""
        blobs = self.pool.manifests[held.manifest].blobs
        return [b.digest for b in self.pool.blobs].index(blobs[which % len(blobs)]) if blobs else None

    @rule(held=manifests_held, which=st.integers(0, 2), shift=SHIFT)
    def mount_blob_of_held(self, held: HeldManifest, which: int, shift: int) -> None:
        """Mount a blob of an image the sequence pushed into another repository (a session, if it is gone)."""
        if (blob := self._blob_of(held, which)) is not None:
            self._mount(other_repo(held.repo, shift), held.repo, blob)

    @rule(held=manifests_held, which=st.integers(0, 2))
    def delete_blob_of_held(self, held: HeldManifest, which: int) -> None:
        """Delete a blob of an image the sequence pushed (the manifest stays and now references a missing blob)."""
        if (blob := self._blob_of(held, which)) is not None:
            self.delete_blob(held.repo, blob)

    @rule(target=sessions, repo=REPO, source=SHIFT, blob=BLOBS)
    def mount_blob(self, repo: str, source: int, blob: int) -> object:
        session = self._mount(repo, other_repo(repo, source), blob)
        return multiple() if session is None else session

    def _mount(self, repo: str, source: str, blob: int) -> Session | None:
        """A mount; the session it opened instead (202), or None when it mounted (201)."""
        b = self.pool.blobs[blob]
        self.step(f"mount blob{blob} into {repo} from {source}", repo, source, names=(b.digest,))
        resp = self.client.mount_blob(self.path(repo), b.digest, self.path(source))
        if self.model.serves_blob(source, b.digest):
            self.expect(resp, "push.mount", f"mount of blob{blob} (held by {source})")
        else:
            self.expect(resp, "push.mount-unknown-blob", f"mount of blob{blob} from {source}, which does not hold it")
        if resp.status_code == 201:
            self.model.link(repo, b.digest)
            self.fresh_blobs.add((repo, b.digest))
            return None
        return self.model.open_session(repo, b, resp.headers["location"])

    def delete_blob(self, repo: str, blob: int) -> None:
        b = self.pool.blobs[blob]
        self.step(f"delete blob{blob} from {repo}", repo, names=(b.digest,))
        resp = self.client.delete_blob(self.path(repo), b.digest)
        if self.model.serves_blob(repo, b.digest):
            self.expect(resp, "blobs.delete", f"DELETE of blob{blob}, linked in {repo}")
            self.model.unlink(repo, b.digest)
        else:
            self.expect(resp, "blobs.delete-unknown", f"DELETE of blob{blob}, not in {repo}")

    # -- upload sessions ---------------------------------------------------------------------------

    @rule(target=sessions, repo=REPO, blob=BLOBS)
    def start_upload(self, repo: str, blob: int) -> Session:
        b = self.pool.blobs[blob]
        self.step(f"start an upload of blob{blob} in {repo}", repo)
        resp = self.client.start_upload(self.path(repo))
        self.expect(resp, "push.upload-start")
        return self.model.open_session(repo, b, resp.headers["location"])

    def _live(self, session: Session) -> bool:
        return session.key in self.model.sessions

    @rule(session=sessions, size=st.integers(1, 400))
    def continue_upload(self, session: Session, size: int) -> None:
        if not self._live(session) or session.offset >= session.blob.size:
            return
        chunk = session.blob.data[session.offset:session.offset + size]
        self.step(f"PATCH {len(chunk)} bytes into {session} (at {session.offset})", session.repo)
        resp = self.client.upload_chunk(session.location, chunk, start=session.offset)
        self.expect(resp, "push.chunk-patch", f"PATCH of {session}")
        session.offset += len(chunk)
        self.same(resp.headers.get("range"), f"0-{session.offset - 1}", f"Range after PATCH of {session}")
        session.location = resp.headers["location"]

    @rule(session=consumes(sessions))
    def cancel_upload(self, session: Session) -> None:
        if not self._live(session):
            return
        self.step(f"cancel {session}", session.repo)
        self.expect(self.client.cancel_upload(session.location), "push.upload-cancel", f"DELETE of {session}")
        del self.model.sessions[session.key]
        self.expect(self.client.upload_status(session.location), "push.upload-cancelled-gone", f"status of cancelled {session}")

    @rule(target=blobs_held, session=consumes(sessions))
    def finish_upload(self, session: Session) -> object:
        if not self._live(session):
            return multiple()
        b = session.blob
        self.step(f"finish {session} (blob{self.pool.blobs.index(b)}, {b.size - session.offset} bytes in the PUT)", session.repo,
                  names=(b.digest,))
        resp = self.client.finish_upload(session.location, b.digest, b.data[session.offset:])
        self.expect(resp, "push.upload-complete", f"PUT closing {session}")
        self.same(resp.headers.get("docker-content-digest"), b.digest, f"Docker-Content-Digest closing {session}")
        del self.model.sessions[session.key]
        self.model.link(session.repo, b.digest)
        self.fresh_blobs.add((session.repo, b.digest))
        self.expect(self.client.upload_status(session.location), "push.upload-status-finished", f"status of finished {session}")
        return HeldBlob(session.repo, self.pool.blobs.index(b))

    @rule(session=sessions, shift=SHIFT, method=st.sampled_from(["GET", "PATCH", "PUT", "DELETE"]))
    def upload_elsewhere(self, session: Session, shift: int, method: str) -> None:
        """A session's Location addressed under another repository: refused, the session untouched."""
        if not self._live(session):
            return
        other = other_repo(session.repo, shift)
        self.step(f"{method} {session} (of {session.repo}) addressed under {other}", session.repo, other,
                  names=(session.blob.digest,))
        location = _rel(session.location, self.path(session.repo), self.path(other))
        rest = session.blob.data[session.offset:]
        if method == "PATCH":
            resp = self.client.upload_chunk(location, rest or b"x", start=session.offset)
        elif method == "PUT":
            resp = self.client.finish_upload(location, session.blob.digest, rest)
        else:
            resp = self.client.request(method, location)
        what = f"{method} of {session} under {other}"
        exp = self.b.expect("stateful.upload-other-repository")
        expect_answer(resp, exp, what)
        codes = error_codes_of(resp.content)
        if method != "HEAD" and not set(codes) & set(exp["errors"]):
            raise Deviation(f"{what}: expected one of {exp['errors']} [{exp.profile}: {exp.key}], got {codes or 'none'}")

    # -- manifests ---------------------------------------------------------------------------------

    def _push(self, repo: str, m: Manifest, ref: str, before: Callable[[], None] | None = None) -> object:
        """PUT a manifest by tag or digest; what the sequence holds afterwards (for later steps to draw)."""
        tag = None if ref == "digest" else ref
        how = "" if before is None else " (with what it references)"
        self.step(f"push {m.kind} {self.label(m.digest)}{how} to {repo} {'by digest' if tag is None else ':' + tag}", repo,
                  names=(m.digest, *m.blobs, *m.children, *((tag,) if tag else ())))
        if before is not None:
            before()
        resp = self.client.put_manifest(self.path(repo), tag or m.digest, m.body, m.media_type)
        missing = self.model.missing_references(repo, m)
        if missing:
            key = "push.manifest-blob-unknown" if m.kind == "image" else "push.index-manifest-unknown"
            self.expect(resp, key, f"PUT of {self.label(m.digest)} while {repo} lacks "
                                   f"{', '.join(self.label(d) for d in missing)}")
            return multiple()
        key = "push.index-put" if m.kind == "index" else (
            "push.manifest-put-digest" if tag is None else "push.manifest-put-tag")
        self.expect(resp, key, f"PUT of {self.label(m.digest)}")
        self.same(resp.headers.get("docker-content-digest"), m.digest, f"Docker-Content-Digest of PUT {self.label(m.digest)}")
        self.model.put_manifest(repo, m, tag)
        return HeldManifest(repo, self.pool.manifests.index(m), tag)

    @rule(target=manifests_held, repo=REPO, manifest=st.sampled_from(range(len(_SHAPE.manifests))), ref=st.sampled_from(TAGS + ("digest",)))
    def push_manifest(self, repo: str, manifest: int, ref: str) -> object:
        """The manifest alone (refused while the repository lacks what it references)."""
        return self._push(repo, self.pool.manifests[manifest], ref)

    def _ensure_blobs(self, repo: str, m: Manifest) -> None:
        """What a client does before a manifest PUT: HEAD each blob, push those missing."""
        for digest in m.blobs:
            head = self.client.head_blob(self.path(repo), digest)
            label = self.label(digest)
            if self.model.serves_blob(repo, digest):
                self.same(head.status_code, 200, f"HEAD {label} in {repo}, which the model links there")
                continue
            self.same(head.status_code, 404, f"HEAD {label} in {repo}, which the model does not link there")
            blob = self.pool.blob(digest)
            resp = self.client.push_blob(self.path(repo), blob.data, digest)
            self.expect(resp, "push.monolithic", f"push of {label} to {repo}")
            self.model.link(repo, digest)
            self.fresh_blobs.add((repo, digest))

    @initialize(target=manifests_held, repo=REPO, image=IMAGES, ref=st.sampled_from(TAGS + ("digest",)))
    def start_with_an_image(self, repo: str, image: int, ref: str) -> object:
        """Every sequence starts from an image in one repository (state for the other steps to act on)."""
        return self.push_image(repo, image, ref)

    @rule(target=manifests_held, repo=REPO, image=IMAGES, ref=st.sampled_from(TAGS + ("digest",)))
    def push_image(self, repo: str, image: int, ref: str) -> object:
        """As a client pushes an image: the blobs the repository lacks, then the manifest."""
        m = self.pool.images[image]
        return self._push(repo, m, ref, before=lambda: self._ensure_blobs(repo, m))

    @rule(target=manifests_held, repo=REPO, index=INDEXES, ref=st.sampled_from(TAGS + ("digest",)))
    def push_index(self, repo: str, index: int, ref: str) -> object:
        """As a client pushes an index: each image the repository lacks (blobs, manifest by digest), then the index."""
        idx = self.pool.indexes[index]

        def children() -> None:
            for digest in idx.children:
                if digest not in self.model.repos[repo].manifests:
                    child = self.pool.manifest(digest)
                    self._ensure_blobs(repo, child)
                    resp = self.client.put_manifest(self.path(repo), digest, child.body, child.media_type)
                    self.expect(resp, "push.manifest-put-digest", f"PUT of {self.label(digest)} (a child of {self.label(idx.digest)})")
                    self.model.put_manifest(repo, child, None)

        return self._push(repo, idx, ref, before=children)

    @rule(target=manifests_held, held=manifests_held, tag=st.sampled_from(TAGS))
    def retag_held(self, held: HeldManifest, tag: str) -> object:
        """Put a tag (perhaps held by another manifest) on a manifest the sequence pushed."""
        return self._push(held.repo, self.pool.manifests[held.manifest], tag)

    @rule(held=manifests_held)
    def delete_held_manifest(self, held: HeldManifest) -> None:
        self.delete_manifest(held.repo, self.pool.manifests[held.manifest].name.rsplit("-", 1)[1])

    @rule(held=manifests_held)
    def untag_held(self, held: HeldManifest) -> None:
        self.delete_tag(held.repo, held.tag or TAGS[0])

    @rule(held=manifests_held, by_tag=st.booleans(), accept=st.sampled_from(sorted(ACCEPTS)),
          method=st.sampled_from(["GET", "HEAD"]))
    def fetch_held(self, held: HeldManifest, by_tag: bool, accept: str, method: str) -> None:
        ref = held.tag if by_tag and held.tag else self.pool.manifests[held.manifest].name.rsplit("-", 1)[1]
        self.fetch_manifest(held.repo, ref, accept, method)

    def delete_manifest(self, repo: str, ref: str) -> None:
        m = self.manifest_by_ref(ref)
        assert m is not None
        self.step(f"delete {ref} from {repo} by digest", repo, names=(m.digest,))
        resp = self.client.delete_manifest(self.path(repo), m.digest)
        if m.digest in self.model.repos[repo].manifests:
            self.expect(resp, "manifests.delete-by-digest", f"DELETE of {ref}, held by {repo}")
            self.model.delete_manifest(repo, m.digest)
        else:
            self.expect(resp, "manifests.delete-unknown", f"DELETE of {ref}, not in {repo}")

    def delete_tag(self, repo: str, tag: str) -> None:
        self.step(f"delete tag {tag} from {repo}", repo, names=(tag,))
        resp = self.client.delete_manifest(self.path(repo), tag)
        if tag in self.model.repos[repo].tags:
            self.expect(resp, "manifests.delete-by-tag", f"DELETE of tag {tag}, held by {repo}")
            if resp.status_code == 202:  # the profile allows it: the tag is gone, the manifest stays
                self.model.untag(repo, tag)
        else:
            self.expect(resp, "stateful.delete-unknown-tag", f"DELETE of tag {tag}, not in {repo}")

    def fetch_manifest(self, repo: str, ref: str, accept: str, method: str) -> None:
        """HEAD or GET by tag or digest with one of the Accept sets of the negotiation matrix."""
        held = self.model.repos[repo]
        by_tag = ref in TAGS
        m = self.manifest_by_ref(ref)
        reference = ref if by_tag else m.digest  # type: ignore[union-attr]
        self.step(f"{method} {ref} from {repo} (Accept {accept})")
        fetch = self.client.get_manifest if method == "GET" else self.client.head_manifest
        resp = fetch(self.path(repo), reference, accept=ACCEPTS[accept])
        digest = held.tags.get(ref) if by_tag else (m.digest if m and m.digest in held.manifests else None)
        what = f"{method} {ref} from {repo} with Accept {accept}"
        if digest is None:
            self.expect(resp, "manifests.unknown", what + " (the model holds no such manifest)")
            return
        stored = held.manifests[digest]
        cell = f"{self.ctx.fmt}-{stored.kind}.{'tag' if by_tag else 'digest'}.{accept}"
        wanted = self.b.outcome(cell)
        default = stored.default_platform
        if any("default-platform" in w for w in wanted) and default not in held.manifests:
            return  # the image the registry would serve instead is not held: the profile records no outcome
        # a child deleted since the index was pushed cannot be what the registry serves in its place
        served_instead = held.manifests[default].body if default in held.manifests else None
        got = negotiated_outcome(resp, stored.body, served_instead)
        if method == "HEAD":
            ok = any(w.split()[0] == str(resp.status_code) for w in wanted)
        else:
            import fnmatch

            ok = any(fnmatch.fnmatchcase(got, w) for w in wanted)
        if not ok:
            exp = self.b.profile.expect("manifests.accept-negotiation")
            raise Deviation(f"{what} ({self.label(digest)}): expected {' or '.join(wanted)} "
                            f"[{exp.profile}: {exp.key} {cell}], got {got if method == 'GET' else resp.status_code}")

    # -- listings ----------------------------------------------------------------------------------

    @precondition(lambda self: self.b.catalog_pages_from_last)
    @rule()
    def catalog(self) -> None:
        lists = self.b.catalog_lists
        self.step("list the sequence's repositories in _catalog")
        resp = self.client.catalog(n=len(REPOS) + 10, last=self.prefix)
        self.expect(resp, "catalog.list")
        names = json_object(resp, "_catalog").get("repositories") or []
        ours = [n for n in names if isinstance(n, str) and n.startswith(self.prefix + "/")]
        want = sorted(self.path(r) for r in REPOS if self.model.listed_in_catalog(r, lists))
        exp = self.b.profile.expect("stateful.catalog-membership")
        if len(set(ours)) != len(ours):
            raise Deviation(f"_catalog lists a repository twice: {ours}")
        if lists == "any":
            known = {self.path(r) for r, state in self.model.repos.items() if state.ever_linked or state.ever_manifest}
            if not set(ours) <= known:
                raise Deviation(f"_catalog lists repositories the sequence never wrote to: {sorted(set(ours) - known)}")
        elif ours != want:
            raise Deviation(f"_catalog: expected {want} [{exp.profile}: {exp.key}: {lists}], got {ours}")

    # -- garbage collection ------------------------------------------------------------------------

    @precondition(lambda self: self.ctx.collect_and_restart is not None and self.gc_runs < 1
                  and self.b.gc_keeps == "referenced")
    @rule()
    def collect_garbage_and_restart(self) -> None:
        self.step("garbage-collect and restart the registry", *REPOS)
        assert self.ctx.collect_and_restart is not None
        self.ctx.collect_and_restart()
        self.gc_runs += 1
        self.model.collect_garbage()
        self.model.restart()
        self.everything = True

    def teardown(self) -> None:
        """Cancel the sessions left open (an external registry keeps them); not part of the record."""
        client = self.client
        hook, client.on_exchange = client.on_exchange, None
        try:
            for session in self.model.sessions.values():
                try:
                    client.cancel_upload(session.location)
                except httpx.HTTPError:
                    pass
        finally:
            client.on_exchange = hook

    # -- the invariant -----------------------------------------------------------------------------

    @invariant()
    def registry_holds_what_the_model_holds(self) -> None:
        if not self.dirty:
            return
        self.ctx.recorder.checking()
        for repo in sorted(self.dirty):
            self.check_repository(repo)
        self.dirty.clear()
        self.fresh_blobs.clear()
        self.named.clear()
        self.everything = False
