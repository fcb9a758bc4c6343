"""Real clients pulling through the mirror, each configured the way its users configure a mirror and
isolated so that a failing mirror leaves it nowhere else to pull from. Each pulls the multi-arch
index by tag and by digest; the digests must be the upstream's."""

import json
import subprocess

import httpx
import pytest

from regconform.checks import expect_equal, expect_true, observe
from regconform.targets.mirrors.podman import PodmanThroughMirror

pytestmark = pytest.mark.workflow("mirror")


def upstream_index_digest(upstream, mirrored):
    resp = upstream.head_manifest(mirrored.repo, mirrored.images.index.tags[0])
    return resp.headers.get("docker-content-digest")


@pytest.mark.spec("podman: registries.conf [[registry.mirror]] pulling a multi-arch index through the mirror")
def test_podman_pulls_index_through_mirror(mirror_pair, upstream, mirrored, expect):
    """podman, whose registries.conf names the mirror (prefix as its path) and an unreachable primary, pulls
    the index by tag, by digest and for the other platform: the index digest is the upstream's, each
    image its platform's."""
    if mirror_pair.ns:
        pytest.skip("podman sends no ns= (containerd does: the ctr check)")
    exp = expect("mirror.client-pull")
    index = mirrored.images.index
    want = upstream_index_digest(upstream, mirrored)
    expect_equal(want, index.digest, exp, "precondition: the upstream's digest of the index")
    netloc = httpx.URL(mirror_pair.mirror_url).netloc.decode()
    location = f"{netloc}/{mirror_pair.prefix.rstrip('/')}" if mirror_pair.prefix else netloc
    podman = PodmanThroughMirror(f"{mirror_pair.route_name}.regconform.invalid", location,
                                 insecure=mirror_pair.mirror_url.startswith("http://"))
    other_arch = json.loads(index.manifest)["manifests"][1]["platform"]["architecture"]
    pulls = {}
    try:
        first, second = index.images
        for label, reference, arch, image in (("by tag", f"{mirrored.repo}:{index.tags[0]}", None, first),
                                              ("by digest", f"{mirrored.repo}@{index.digest}", None, first),
                                              (f"by tag for {other_arch}", f"{mirrored.repo}:{index.tags[0]}",
                                               other_arch, second)):
            result = podman.pull(reference, arch)
            pulls[label] = {"exit": result.returncode, "digest": result.digest, "config": result.config,
                            "through_mirror": result.used_mirror}
            expect_true(result.returncode == 0, f"podman pull {label} of {reference} through the mirror "
                        f"{location} exited {result.returncode}: {result.stderr}", exp)
            expect_true(result.used_mirror, f"podman pull {label}: its log does not name the mirror {location}", exp)
            expect_equal(result.digest, want, exp, f"digest podman recorded for {reference} ({label})")
            expect_equal(result.config, image.config.digest, exp,
                         f"image ID podman pulled {label} (the config of {image.name}, its platform's image)")
    finally:
        observe("podman", pulls)
        podman.close()


def _daemons():
    return pytest.importorskip("regconform.clients.daemons",
                               reason="regconform.clients.daemons (private dockerd/containerd) is not on this branch")


def _run(argv, env, timeout=300):
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, (proc.stdout + proc.stderr).strip()[-600:], proc.stdout


@pytest.mark.spec("containerd: ctr --hosts-dir with a hosts.toml mirror (override_path for a prefix; ns= sent as is)")
def test_ctr_pulls_index_through_mirror(mirror_pair, upstream, mirrored, settings, expect):
    """ctr on a private containerd, its hosts.toml naming only the mirror (a prefix as the API path with
    override_path; the ns route by the image's host, which containerd sends as ns=) and an unreachable
    server: the index by tag (every platform) and by digest, with the upstream's digests."""
    daemons = _daemons()
    exp = expect("mirror.client-pull")
    index = mirrored.images.index
    want = upstream_index_digest(upstream, mirrored)
    expect_equal(want, index.digest, exp, "precondition: the upstream's digest of the index")
    mirror_url = mirror_pair.mirror_url.rstrip("/")
    host_url = f"{mirror_url}/v2/{mirror_pair.prefix.rstrip('/')}" if mirror_pair.prefix else mirror_url
    # containerd sends the image's registry host as ns= to a mirror: for the ns route that host is the ns value.
    source = mirror_pair.ns or f"{mirror_pair.route_name}.regconform.invalid"
    pulls = {}
    with daemons.PrivateContainerd() as ctrd:
        folder = ctrd.hosts_dir / source
        folder.mkdir(mode=0o700, parents=True)
        lines = ['server = "http://127.0.0.1:9"', "", f'[host."{host_url}"]', '  capabilities = ["pull", "resolve"]']
        if mirror_pair.prefix:
            lines.append("  override_path = true")
        if settings.ca_cert:
            lines.append(f"  ca = {json.dumps(str(settings.ca_cert))}")
        if settings.insecure:
            lines.append("  skip_verify = true")
        (folder / "hosts.toml").write_text("\n".join(lines) + "\n")
        env = ctrd.cli_env()
        try:
            for label, ref, extra in (("by tag, every platform", f"{source}/{mirrored.repo}:{index.tags[0]}",
                                       ["--all-platforms"]),
                                      ("by digest", f"{source}/{mirrored.repo}@{index.digest}", [])):
                code, out, _ = _run(["ctr", "images", "pull", "--hosts-dir", str(ctrd.hosts_dir), *extra, ref], env)
                listed = _run(["ctr", "images", "ls", f"name=={ref}"], env)[2].splitlines()[1:]
                digest = listed[0].split()[2] if listed and len(listed[0].split()) > 2 else None
                pulls[label] = {"exit": code, "digest": digest}
                expect_true(code == 0, f"ctr images pull {label} of {ref} through the mirror {host_url} exited "
                            f"{code}: {out}", exp)
                expect_equal(digest, want, exp, f"digest ctr recorded for {ref} ({label})")
            for image in index.images:  # --all-platforms: every platform's manifest and blobs came through
                code, out, _ = _run(["ctr", "content", "get", image.digest], env)
                expect_true(code == 0, f"ctr holds no manifest {image.digest} of {image.name} after --all-platforms: "
                            f"{out}", exp)
        finally:
            observe("ctr", {"host": host_url.replace(mirror_url, "<mirror>"), "source": source, "pulls": pulls})


@pytest.mark.spec("dockerd: daemon.json registry-mirrors pulling a multi-arch index through the mirror")
def test_dockerd_pulls_index_through_mirror(mirror_pair, upstream, mirrored, settings, expect):
    """A private dockerd whose daemon.json names the mirror in registry-mirrors pulls docker.io/<repo>
    by tag and by digest: RepoDigests hold the upstream's index digest, the image is its platform's."""
    if mirror_pair.prefix or mirror_pair.ns:
        pytest.skip("dockerd's registry-mirrors takes no path and sends no ns=: a mirror of docker.io names only")
    daemons = _daemons()
    exp = expect("mirror.client-pull")
    index = mirrored.images.index
    want = upstream_index_digest(upstream, mirrored)
    mirror_url = mirror_pair.mirror_url.rstrip("/")
    pulls = {}
    with daemons.PrivateDockerd(daemon_json={"registry-mirrors": [mirror_url], "debug": True}) as dockerd:
        if settings.ca_cert:
            dockerd.trust_ca(httpx.URL(mirror_url).netloc.decode(), settings.ca_cert)
        env = dockerd.cli_env()
        try:
            for label, ref in (("by tag", f"docker.io/{mirrored.repo}:{index.tags[0]}"),
                               ("by digest", f"docker.io/{mirrored.repo}@{index.digest}")):
                code, out, _ = _run(["docker", "pull", "--quiet", ref], env)
                inspect = _run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}} {{json .Id}}", ref],
                               env)[2].split()
                digests, image_id = (json.loads(inspect[0]), json.loads(inspect[1])) if len(inspect) == 2 else ([], None)
                pulls[label] = {"exit": code, "repo_digests": digests, "id": image_id}
                expect_true(code == 0, f"docker pull {label} of {ref} through the mirror exited {code}: {out}", exp)
                expect_true(f"{mirrored.repo}@{want}" in digests, f"docker pull {label}: RepoDigests {digests} lack "
                            f"the upstream's index digest {want}", exp)
                expect_equal(image_id, index.images[0].config.digest, exp, f"image ID dockerd pulled {label}")
            log = dockerd.log_path.read_text(errors="replace")
            expect_true(mirror_url in log, f"dockerd's debug log does not name the mirror {mirror_url}", exp)
        finally:
            observe("dockerd", pulls)
