"""Real clients, both directions: a pushed-by × pulled-by interoperability matrix (workflow `clients`).

Each client pushes images in the shapes it really produces (docker push of a multi-layer image,
`docker manifest` lists, podman's and buildah's own images and `manifest push --all` indexes, ctr
push of an index, `skopeo copy --all --preserve-digests`); the harness reads every digest back and
verifies the bytes; then every other client pulls each one back (one check per matrix cell, so a
defect turns exactly the cells it breaks red). The harness's own fixtures are pulled by each client,
`linux/arm64` selection must pick the arm64 child, @sigstore/oci attaches two artifacts and oras-py
pushes one with a subject (found by the referrers API or the tag schema, as the profile says), and
deletion goes through skopeo and python-dxf with what happens recorded in the profile.

Clients reach the registry only through their own configuration: credentials in 0600 files in a
private workspace (or stdin), TLS verified with the run's CA (--insecure is the only way off).
A client missing here skips its checks with the reason.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from regconform.checks import (
    Deviation,
    end_if_unavailable,
    expect_equal,
    expect_true,
    note_expectation,
    observe,
)
from regconform.clients.base import (
    Client,
    ClientCannot,
    ClientFailed,
    Endpoint,
    Workspace,
)
from regconform.clients.catalog import CLIENTS
from regconform.content.images import (
    fixture_set,
    push_image,
    push_index,
    referrers_tag,
)
from regconform.errors import SetupError
from regconform.registry.digests import sha256_digest
from regconform.registry.errors import ClientError, DigestMismatch

pytestmark = pytest.mark.workflow("clients")

# shape → (client, method, what it is). Every shape is pushed once per run (the first check that needs it).
SHAPES: dict[str, tuple[str, str, str]] = {
    "docker-image": ("docker", "push_image", "docker push of a two-layer image"),
    "docker-manifest-list": ("docker", "push_list", "docker manifest create/annotate/push of a list"),
    "podman-image": ("podman", "push_image", "podman push of its own OCI image"),
    "podman-manifest-all": ("podman", "push_list", "podman manifest push --all"),
    "buildah-manifest-all": ("buildah", "push_list", "buildah manifest push --all"),
    "ctr-index": ("ctr", "push_index", "ctr images push of an index (all platforms)"),
    "skopeo-copy-all": ("skopeo", "push_copy_all", "skopeo copy --all --preserve-digests"),
}
PULLERS = ("docker", "podman", "buildah", "ctr", "skopeo", "oras-py", "python-dxf")
ARM64 = "linux/arm64"


# -- the clients' environment: one workspace and one instance per client for the session -----------------


class Clients:
    """Clients by name, started on first use (docker and ctr start private daemons), all closed at the end."""

    def __init__(self, endpoint: Endpoint, token_auth: bool = False) -> None:
        self.ws = Workspace(endpoint)
        self.token_auth = token_auth  # the registry answers /v2/ with a Bearer challenge
        self.started: dict[str, Client] = {}
        self.failed: dict[str, str] = {}
        self.versions: dict[str, str] = {}

    def get(self, name: str) -> Client:
        cls = CLIENTS[name]
        if reason := cls.missing():
            pytest.skip(f"{name}: {reason}")
        if self.token_auth and self.ws.endpoint.username and not cls.token_auth:
            pytest.skip(f"{name}: the registry uses token auth, and the way the harness hands {name} credentials "
                        "without argv cannot do the token flow")
        if name in self.failed:
            pytest.fail(f"{name} could not be started: {self.failed[name]}", pytrace=False)
        if name not in self.started:
            try:
                self.started[name] = cls(self.ws)
                self.versions[name] = self.started[name].version()
            except (ClientFailed, SetupError) as exc:  # e.g. its private daemon did not start: fail every check of it at once
                self.failed[name] = str(exc)
                pytest.fail(f"{name} could not be started: {exc}", pytrace=False)
        return self.started[name]

    def close(self) -> None:
        """Close every client (each stops what it started) even when one fails, then remove the workspace."""
        with contextlib.ExitStack() as stack:
            stack.callback(self.ws.close)
            for client in self.started.values():
                stack.callback(client.close)


@pytest.fixture(scope="session")
def clients(settings, registry) -> Iterator[Clients]:
    with registry.http.stream("GET", "/v2/", auth=None) as answer:  # the challenge only, never the body
        bearer = answer.headers.get("www-authenticate", "").lower().startswith("bearer")
    env = Clients(Endpoint.from_settings(settings, registry.base_url), token_auth=bearer)
    try:
        yield env
    finally:
        env.close()


def versions(clients: Clients, *names: str) -> dict[str, str]:
    return {n: clients.versions.get(n, "?") for n in names}


def client_call(what: str, fn, *args, registry=None, repo: str = "", ref: str = ""):  # noqa: ANN001, ANN201
    """A client's refusal is the registry's deviation as that client sees it: the message quotes the client,
    and (for a pull) says what the harness sees wrong in the manifest as served."""
    try:
        return fn(*args)
    except ClientCannot as exc:
        pytest.skip(str(exc))
    except Deviation:
        raise
    except Exception as exc:  # noqa: BLE001 - ClientFailed, or what a library client (requests, dxf, oras) raises
        said = str(exc) if isinstance(exc, ClientFailed) else f"{type(exc).__name__}: {str(exc)[:500]}"
        seen = f" — the harness sees: {diagnose_manifest(registry, repo, ref)}" if registry is not None else ""
        raise Deviation(f"{what}: {said}{seen}") from None


def diagnose_manifest(registry, repo: str, ref: str) -> str:
    """What real clients reject in a manifest answer and a lenient reader ignores: Content-Type vs mediaType, the digest header."""
    resp = registry.get_manifest(repo, ref)
    if resp.status_code != 200:
        return f"GET /v2/{repo}/manifests/{ref} answers {resp.status_code}"
    found = []
    content_type = resp.headers.get("content-type", "").split(";")[0].strip()
    try:
        media_type = json.loads(resp.content).get("mediaType")
    except (ValueError, AttributeError):
        media_type = None
    if media_type and content_type != media_type:
        found.append(f"Content-Type {content_type!r} on a manifest whose mediaType is {media_type!r}")
    header = resp.headers.get("docker-content-digest")
    if header and header != sha256_digest(resp.content):
        found.append(f"Docker-Content-Digest {header} on a manifest whose bytes hash to {sha256_digest(resp.content)}")
    return "; ".join(found) or "nothing wrong in the manifest answer"


# -- reading back: the harness verifies every digest a client pushed ----------------------------------------


class Shape:
    """One shape as the registry holds it: the top manifest and everything under it, by digest."""

    def __init__(self, repo: str, tag: str) -> None:
        self.repo, self.tag = repo, tag
        self.top = ""
        self.media_type = ""
        self.manifests: dict[str, bytes] = {}
        self.blobs: set[str] = set()
        self.children: list[str] = []
        self.error = ""
        self.skipped = ""


def read_back(registry, repo: str, tag: str, exp, what: str) -> Shape:
    """GET the tag, then every child manifest and blob by digest; each must hash to its digest."""
    shape = Shape(repo, tag)
    resp = registry.get_manifest(repo, tag)
    expect_true(resp.status_code == 200, f"{what}: GET /v2/{repo}/manifests/{tag} answered {resp.status_code}", exp)
    shape.top = sha256_digest(resp.content)
    shape.media_type = resp.headers.get("content-type", "")
    served = resp.headers.get("docker-content-digest")
    expect_equal(served, shape.top, exp, f"{what}: Docker-Content-Digest of the manifest by tag")
    todo = [(shape.top, resp.content)]
    while todo:
        digest, body = todo.pop()
        shape.manifests[digest] = body
        doc = json.loads(body)
        for child in doc.get("manifests", []):
            shape.children.append(child["digest"])
            try:
                todo.append((child["digest"], registry.pull_manifest(repo, child["digest"])))
            except (ClientError, DigestMismatch) as exc:
                raise Deviation(f"{what}: child manifest {child['digest']}: {exc}") from None
        for desc in [doc.get("config", {}), *doc.get("layers", [])]:
            if desc.get("digest"):
                try:
                    registry.pull_blob(repo, desc["digest"])
                except (ClientError, DigestMismatch) as exc:
                    raise Deviation(f"{what}: blob {desc['digest']}: {exc}") from None
                shape.blobs.add(desc["digest"])
    registry.pushed_manifests.update((repo, d) for d in shape.manifests)
    registry.pushed_blobs.update((repo, d) for d in shape.blobs)
    return shape


@pytest.fixture(scope="session")
def client_pushes() -> dict[str, Shape]:
    """Shape name → what its client pushed (pushed once per run, by the first check that needs it)."""
    return {}


def pushed_shape(name: str, clients: Clients, registry, namespace: str, client_pushes: dict[str, Shape], exp) -> Shape:
    """The shape pushed by its client (once per run) and read back by the harness."""
    if name in client_pushes:
        shape = client_pushes[name]
        if shape.skipped:
            pytest.skip(f"not pushed: {shape.skipped}")
        if shape.error:
            pytest.fail(f"not pulled: pushing {name} failed: {shape.error}", pytrace=False)
        return shape
    client_name, method, what = SHAPES[name]
    client = clients.get(client_name)
    repo, tag = f"{namespace}/clients-{name}", "pushed"
    args = (repo, tag) + ((fixture_set("oci").index,) if method in ("push_index", "push_copy_all") else ())
    try:
        reported = client_call(f"{what} to {repo}:{tag}", getattr(client, method), *args)
        shape = read_back(registry, repo, tag, exp, f"{what}, read back by the harness")
        if reported:
            expect_equal(shape.top, reported, exp, f"{what}: digest the client reported vs the one the registry serves")
    except pytest.skip.Exception as exc:
        client_pushes[name] = Shape(repo, tag)
        client_pushes[name].skipped = str(exc)
        raise
    except BaseException as exc:
        client_pushes[name] = Shape(repo, tag)
        client_pushes[name].error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise
    client_pushes[name] = shape
    return shape


# -- pushes -------------------------------------------------------------------------------------------------


@pytest.mark.spec("interoperability: each client's push, read back digest by digest; distribution-spec §Push, §Pull")
@pytest.mark.parametrize("shape", list(SHAPES))
def test_client_push(shape, clients, registry, namespace, client_pushes, expect):
    """A real client pushes the shape it produces; the harness reads the tag, every child manifest and blob back and verifies each digest."""
    exp = expect("clients.push")
    got = pushed_shape(shape, clients, registry, namespace, client_pushes, exp)
    client_name = SHAPES[shape][0]
    observe("matrix_push", {"shape": shape, "client": client_name, "version": clients.versions.get(client_name, "?"),
                            "media_type": got.media_type, "manifests": len(got.manifests), "blobs": len(got.blobs)})
    top = json.loads(got.manifests[got.top])
    observe("top_has_media_type_field", "mediaType" in top)
    if shape.endswith(("-list", "-all", "-index")):
        expect_true(len(got.children) >= 2, f"{SHAPES[shape][2]}: expected an index/list with 2 or more children, got {len(got.children)}", exp)
    elif shape == "docker-image":
        expect_true(len(top.get("layers", [])) >= 2, f"docker push: expected 2 layers, the registry holds {len(top.get('layers', []))}", exp)


@pytest.mark.spec("distribution-spec §Mounting a blob from another repository, as docker push does it")
def test_docker_push_mounts_layers_from_another_repository(clients, registry, namespace, client_pushes, repo, expect):
    """docker pushes its image again into another repository: dockerd mounts the layers from the first (it says
    "Mounted from"), and the harness reads the manifest and every blob back from the second."""
    exp = expect("clients.docker-mount")
    shape = pushed_shape("docker-image", clients, registry, namespace, client_pushes, expect("clients.push"))
    docker = clients.get("docker")
    observe("versions", versions(clients, "docker"))
    digest, mounted = client_call(f"docker push of {shape.repo}:{shape.tag} into {repo}",
                                  docker.push_to_another_repository, shape.repo, shape.tag, repo)
    observe("mounted_from", sorted(set(mounted)))
    layers = len(json.loads(shape.manifests[shape.top]).get("layers", []))
    if exp["mounted"] != "any":  # the OCI profile: mounting is a MAY, an upload instead is as good
        expect_equal(len(mounted) == layers and set(mounted) == {shape.repo}, exp["mounted"], exp,
                     f"docker says it mounted all {layers} layers from {shape.repo} (it said: {sorted(set(mounted)) or 'nothing'})")
    again = read_back(registry, repo, shape.tag, exp, "the image docker pushed into a second repository")
    expect_equal(again.top, shape.top, exp, "digest of the image in the second repository")
    if digest:
        expect_equal(digest, shape.top, exp, "digest docker reports for the second push")


@pytest.mark.spec("OCI image-spec §mediaType (SHOULD be set) and distribution-spec §Pulling manifests: Content-Type from the push")
def test_podman_oci_manifest_media_type(clients, registry, namespace, client_pushes, expect):
    """podman's OCI manifest: the registry serves it with the Content-Type it was pushed with, whether or not the body names its mediaType (the profile records which)."""
    exp = expect("clients.podman-oci-manifest")
    shape = pushed_shape("podman-image", clients, registry, namespace, client_pushes, expect("clients.push"))
    doc = json.loads(shape.manifests[shape.top])
    observe("media_type_field", doc.get("mediaType"))
    expect_equal(shape.media_type, exp["content_type"], exp, "Content-Type of podman's manifest as served")
    expect_equal("mediaType" in doc, exp["media_type_field"], exp, "podman's OCI manifest names its mediaType")


# -- the matrix: every client pulls what every client pushed -----------------------------------------------


def verify_pulled(pulled, shape_top: str, children: list[str], known: set[str], exp, what: str) -> None:
    resolved = pulled.digest or pulled.platform_digest
    expect_true(resolved in {shape_top, *children},
                f"{what}: the client resolved {resolved}, not the pushed {shape_top} (or one of its children)", exp)
    altered = pulled.altered()
    expect_true(not altered, f"{what}: bytes that do not hash to their digest: {', '.join(altered)}", exp)
    unknown = sorted((set(pulled.manifests) | set(pulled.blobs)) - known)
    expect_true(not unknown, f"{what}: the client got content the registry does not hold under the tag: {', '.join(unknown)}", exp)


@pytest.mark.spec("interoperability: pushed by one real client, pulled by another; distribution-spec §Pull")
@pytest.mark.parametrize("puller", PULLERS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_client_pulls(shape, puller, clients, registry, namespace, client_pushes, expect):
    """One matrix cell: `puller` pulls what `shape`'s client pushed; the digest it resolves and every byte it exposes are checked."""
    exp = expect("clients.pull")
    pusher = SHAPES[shape][0]
    observe("matrix_cell", {"pushed_by": shape, "pulled_by": puller})
    pushed = pushed_shape(shape, clients, registry, namespace, client_pushes, expect("clients.push"))
    client = clients.get(puller)
    observe("versions", versions(clients, pusher, puller))
    pulled = client_call(f"{puller} pull of {pushed.repo}:{pushed.tag} (pushed by {SHAPES[shape][2]})",
                         client.pull, pushed.repo, pushed.tag, registry=registry, repo=pushed.repo, ref=pushed.tag)
    known = set(pushed.manifests) | pushed.blobs
    verify_pulled(pulled, pushed.top, pushed.children, known, exp, f"{puller} pulled what {pusher} pushed ({shape})")


@pytest.mark.spec("interoperability: the harness's fixtures (OCI and Docker schema2, image and index) pulled by each client")
@pytest.mark.parametrize("puller", PULLERS)
def test_client_pulls_fixtures(puller, fmt, clients, registry, repo, expect):
    """The harness pushes its fixture image and index; the client pulls both and gets exactly those digests and bytes."""
    exp = expect("clients.fixture-pull")
    observe("matrix_cell", {"pushed_by": f"harness fixtures ({fmt})", "pulled_by": puller})
    fixtures = fixture_set(fmt)
    push_index(registry, repo, fixtures.index)
    push_image(registry, repo, fixtures.alpha)
    client = clients.get(puller)
    observe("versions", versions(clients, puller))
    known = {fixtures.index.digest, *(i.digest for i in fixtures.images),
             *(b.digest for i in fixtures.images for b in i.blobs)}
    for obj in (fixtures.alpha, fixtures.index):
        tag = obj.tags[0]
        pulled = client_call(f"{puller} pull of the harness fixture {repo}:{tag} ({fmt})", client.pull, repo, tag,
                             registry=registry, repo=repo, ref=tag)
        children = [i.digest for i in fixtures.images] if obj is fixtures.index else []
        verify_pulled(pulled, obj.digest, children, known, exp, f"{puller} pulled fixture {obj.name} ({fmt})")


@pytest.mark.spec("image-spec §Image Index platform; clients pick the child for --platform linux/arm64")
@pytest.mark.parametrize("puller", PULLERS)
def test_client_platform_selection(puller, clients, registry, repo, expect):
    """`linux/arm64` from the fixture index (amd64 alpha, arm64 beta): the client stores beta, never alpha."""
    exp = expect("clients.platform")
    observe("matrix_cell", {"pushed_by": f"harness index, --platform {ARM64}", "pulled_by": puller})
    fixtures = fixture_set("oci")
    push_index(registry, repo, fixtures.index)
    client = clients.get(puller)
    observe("versions", versions(clients, puller))
    pulled = client_call(f"{puller} pull --platform {ARM64} of {repo}:multi", client.pull, repo, "multi", ARM64,
                         registry=registry, repo=repo, ref="multi")
    beta, alpha = fixtures.beta, fixtures.alpha
    picked = pulled.platform_digest or (beta.digest if pulled.config_digest == beta.config.digest else
                                        alpha.digest if pulled.config_digest == alpha.config.digest else None)
    observe("picked", picked)
    expect_equal(picked, beta.digest, exp, f"the child {puller} picked for {ARM64}")
    expect_true(alpha.digest not in pulled.manifests, f"{puller} fetched the amd64 child for {ARM64}", exp)


# -- referrers through real clients -------------------------------------------------------------------------


def referrers_of(registry, repo: str, digest: str, found_by: str, exp) -> list[dict]:
    """The referrers of `digest` where the profile says they are: the API or the tag schema."""
    if found_by == "api":
        resp = registry.referrers(repo, digest)
        end_if_unavailable(resp, exp, f"GET /v2/{repo}/referrers/{digest}")
        expect_true(resp.status_code == 200, f"GET /v2/{repo}/referrers/{digest} answered {resp.status_code}", exp)
    else:
        resp = registry.get_manifest(repo, referrers_tag(digest))
        expect_true(resp.status_code == 200, f"the referrers tag {referrers_tag(digest)} answered {resp.status_code}", exp)
    return list(json.loads(resp.content).get("manifests", []))


def client_and_image(clients: Clients, name: str, registry, repo: str):  # noqa: ANN201
    """The client, and the fixture image alpha (tags v1, latest, stable) pushed by the harness for it to work on."""
    client = clients.get(name)
    image = fixture_set("oci").alpha
    push_image(registry, repo, image)
    observe("versions", versions(clients, name))
    return client, image


@pytest.mark.spec("distribution-spec §Listing Referrers / §Referrers Tag Schema, through @sigstore/oci")
def test_sigstore_attaches_two_artifacts(clients, registry, repo, expect):
    """@sigstore/oci attaches two artifacts to an image; both are found again (API or tag schema, as the profile says), each a manifest whose subject is the image."""
    exp = expect("clients.sigstore-referrers")
    client, image = client_and_image(clients, "@sigstore/oci", registry, repo)
    arts = [("application/vnd.dev.sigstore.bundle.v0.3+json", b'{"regconform": "bundle"}', {"regconform": "one"}),
            ("application/vnd.in-toto+json", b'{"regconform": "attestation"}', {"regconform": "two"})]
    descs = client_call(f"@sigstore/oci attach to {repo}@{image.digest}", client.attach, repo, image.digest, arts)
    registry.pushed_manifests.update((repo, d["digest"]) for d in descs)
    found = referrers_of(registry, repo, image.digest, exp["found_by"], exp)
    observe("referrers", [{"digest": d.get("digest"), "artifactType": d.get("artifactType")} for d in found])
    for desc, (media_type, _payload, _ann) in zip(descs, arts):
        expect_true(any(f.get("digest") == desc["digest"] for f in found),
                    f"artifact {desc['digest']} ({media_type}) attached by @sigstore/oci not among the referrers ({exp['found_by']})", exp)
        body = registry.pull_manifest(repo, desc["digest"])
        expect_equal(json.loads(body).get("subject", {}).get("digest"), image.digest, exp, f"subject of {media_type} artifact")


@pytest.mark.spec("distribution-spec §Pushing Manifests with Subject, through oras-py")
def test_oras_pushes_with_subject(clients, registry, repo, expect):
    """oras-py pushes an artifact with a subject; the registry stores the subject and lists it where the profile says."""
    exp = expect("clients.oras-subject")
    client, image = client_and_image(clients, "oras-py", registry, repo)
    client_call("oras-py push with subject", client.push_artifact, repo, "oras-artifact", f"{repo}@{image.digest}",
                b"regconform oras-py artifact\n")
    resp = registry.get_manifest(repo, "oras-artifact")
    expect_true(resp.status_code == 200, f"the artifact oras-py pushed: GET by tag answered {resp.status_code}", exp)
    digest = sha256_digest(resp.content)
    registry.pushed_manifests.add((repo, digest))
    doc = json.loads(resp.content)
    expect_equal(doc.get("subject", {}).get("digest"), image.digest, exp, "subject of the artifact oras-py pushed")
    found = referrers_of(registry, repo, image.digest, exp["found_by"], exp) if exp["found_by"] != "none" else []
    observe("referrers", [f.get("digest") for f in found])
    if exp["found_by"] != "none":
        expect_true(any(f.get("digest") == digest for f in found), f"oras-py's artifact {digest} not among the referrers ({exp['found_by']})", exp)


# -- deletion through clients -------------------------------------------------------------------------------


def remaining_tags(registry, repo: str, tags: tuple[str, ...]) -> list[str]:
    return [t for t in tags if registry.get_manifest(repo, t).status_code == 200]


@pytest.mark.spec("distribution-spec §Deleting tags / manifests, through skopeo delete and python-dxf del_alias")
@pytest.mark.parametrize("deleter", ["skopeo", "python-dxf"])
def test_client_deletes_tag(deleter, clients, registry, repo, expect):
    """A client deletes one of three tags on an image; the profile records what goes with it (skopeo and dxf delete the manifest by digest, so every tag on it)."""
    exp = expect(f"clients.delete-{deleter}")
    client, image = client_and_image(clients, deleter, registry, repo)  # tags v1, latest, stable on one manifest
    client_call(f"{deleter} delete of {repo}:{image.tags[0]}", client.delete, repo, image.tags[0])
    left = remaining_tags(registry, repo, image.tags)
    observe("tags_after", left)
    by_digest = registry.get_manifest(repo, image.digest).status_code
    observe("manifest_after", by_digest)
    expect_equal(left, list(exp["tags_after"]), exp, f"tags left after {deleter} deleted {image.tags[0]}")
    expect_equal(by_digest, exp["manifest_after"], exp, f"GET of the manifest by digest after {deleter} delete")
    note_expectation(exp)
