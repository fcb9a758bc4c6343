"""`regconform upgrade`: continuity fails naming exactly what an upgrade lost, and passes when nothing was.

The "upgrades" here are real: 2.8.2 (Debian's docker-registry, process backend) writes the corpus,
is stopped, and the next version starts on the same storage directory. Between the phases the
storage is tampered with as a broken upgrade would (a tag directory gone, a blob's bytes changed,
a repository gone, a deleted manifest's revision link back), or a fault proxy stands in front of B.
Then exactly the matching continuity checks must be red, with a message naming the loss.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import FaultProxy, Response, Rule
from reportruns import output, regconform

from regconform.content.images import fixture_set, make_image
from regconform.profiles import load_profile
from regconform.registry.client import RegistryClient
from regconform.targets.imagebuild import registry_binary
from regconform.upgrade.continuity import Verdict, run_continuity
from regconform.upgrade.corpus import Corpus, push_corpus
from regconform.upgrade.sides import SharedStorage, Side, collect_garbage
from regconform.upgrade.state import take_snapshot

ROOT = Path(__file__).resolve().parents[1]
# ../shared/registries from the project root (a git worktree under /work/wt/<name> looks one level higher too).
V3 = next((p for p in (ROOT.parent / "shared" / "registries" / "registry-v3.1.1",
                       ROOT.parents[1] / "shared" / "registries" / "registry-v3.1.1") if p.is_file()),
          ROOT.parent / "shared" / "registries" / "registry-v3.1.1")
ALLOW = ROOT / "src" / "regconform" / "allowlists" / "distribution-2.8-to-3.1.toml"
needs_v3 = pytest.mark.skipif(not V3.is_file(), reason=f"no distribution v3.1.1 binary at {V3} (../shared/registries)")
OLD = registry_binary()
pytestmark = pytest.mark.skipif(OLD is None, reason="no registry binary (Debian docker-registry) for the process backend")

Tamper = Callable[[Path, Corpus], None]


def v2(storage: Path) -> Path:
    return storage / "docker" / "registry" / "v2"


def blob_data(storage: Path, digest: str) -> Path:
    hexa = digest.split(":", 1)[1]
    return v2(storage) / "blobs" / "sha256" / hexa[:2] / hexa / "data"


def upgrade(tamper: Tamper | None = None, new: str | None = None,
            proxy_rules: Callable[[Corpus], list[Rule]] | None = None) -> tuple[dict[str, Verdict], Corpus]:
    """2.8.2 writes the corpus; `tamper` edits the storage; `new` (default 2.8.2) serves it; continuity."""
    namespace = f"upgrade-{uuid.uuid4().hex[:6]}"
    old_side, new_side = Side(str(OLD)), Side(new or str(OLD))
    storage = SharedStorage(True, namespace)
    try:
        a = storage.start(old_side)
        try:
            with RegistryClient(a.url, namespace=namespace) as client:
                corpus = push_corpus(client, namespace)
                before = take_snapshot(client, corpus)
        finally:
            a.stop()
        if tamper:
            tamper(Path(storage.path), corpus)
        b = storage.start(new_side)
        proxy = FaultProxy(b.url, proxy_rules(corpus)).start() if proxy_rules else None
        try:
            with RegistryClient(proxy.url if proxy else b.url, namespace=namespace) as client:
                verdicts, _ = run_continuity(client, corpus, before, load_profile(new_side.default_profile()),
                                             lambda: collect_garbage(b))
        finally:
            if proxy:
                proxy.stop()
            b.stop()
    finally:
        storage.close()
    assert not Path(storage.workdir).exists()
    return {v.key: v for v in verdicts}, corpus


def red(verdicts: dict[str, Verdict]) -> dict[str, list[str]]:
    return {key: v.losses for key, v in verdicts.items() if v.outcome == "failed"}


def test_clean_upgrade_keeps_everything() -> None:
    verdicts, corpus = upgrade()
    assert red(verdicts) == {}
    assert all(v.outcome == "passed" for v in verdicts.values()), {k: v.skipped for k, v in verdicts.items()}
    assert verdicts["manifests-by-tag"].checked == sum(len(t) for t in corpus.tags.values()) > 100
    assert verdicts["garbage-collection"].checked > len(corpus.garbage) >= 4


def test_a_lost_tag_is_named() -> None:
    def lose_v1(storage: Path, corpus: Corpus) -> None:
        shutil.rmtree(v2(storage) / "repositories" / corpus.namespace / "docker" / "_manifests" / "tags" / "v1")

    verdicts, corpus = upgrade(lose_v1)
    repo = f"{corpus.namespace}/docker"
    assert red(verdicts) == {"manifests-by-tag": [f"tag v1 of {repo} lost (GET: 404 MANIFEST_UNKNOWN)"],
                             "tags-list": [f"tag v1 of {repo} lost from tags/list"]}


def test_a_blob_with_changed_bytes_is_named() -> None:
    layer = fixture_set("docker").alpha.layers[1]  # alpha's own layer: in the docker repository only

    def flip(storage: Path, corpus: Corpus) -> None:
        data = bytearray(blob_data(storage, layer.digest).read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob_data(storage, layer.digest).write_bytes(bytes(data))

    verdicts, corpus = upgrade(flip)
    losses = red(verdicts)
    assert list(losses) == ["blobs"] and len(losses["blobs"]) == 1
    assert losses["blobs"][0].startswith(f"blob {layer.digest} of {corpus.namespace}/docker changed bytes (they hash to sha256:")


def test_a_lost_repository_is_named() -> None:
    def lose_oci(storage: Path, corpus: Corpus) -> None:
        shutil.rmtree(v2(storage) / "repositories" / corpus.namespace / "oci")

    verdicts, corpus = upgrade(lose_oci)
    repo = f"{corpus.namespace}/oci"
    losses = red(verdicts)
    assert sorted(losses) == ["blobs", "catalog", "manifests-by-digest", "manifests-by-tag", "referrers", "tags-list"]
    assert losses["tags-list"] == [f"repository {repo} lost (tags/list: 404 NAME_UNKNOWN)"]
    assert losses["catalog"] == [f"repository {repo} lost from _catalog"]
    assert f"tag v1 of {repo} lost (GET: 404 MANIFEST_UNKNOWN)" in losses["manifests-by-tag"]
    assert all(f" of {repo} lost" in line for key in ("manifests-by-tag", "manifests-by-digest", "blobs")
               for line in losses[key])
    subject = fixture_set("oci").alpha.digest
    assert all(line.endswith("not found by neither the referrers API nor the referrers tag schema")
               and f"subject {subject} in {repo}" in line for line in losses["referrers"])
    assert len(losses["referrers"]) == 2


def test_a_resurrected_manifest_is_named() -> None:
    deleted = make_image("deleted", "oci", ["base", "oci-deleted"])

    def resurrect(storage: Path, corpus: Corpus) -> None:
        link = (v2(storage) / "repositories" / corpus.namespace / "oci" / "_manifests" / "revisions" / "sha256"
                / deleted.digest.split(":", 1)[1] / "link")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.write_text(deleted.digest)

    verdicts, corpus = upgrade(resurrect)
    repo = f"{corpus.namespace}/oci"
    losses = red(verdicts)
    assert losses["deleted-stays-deleted"] == [f"deleted manifest {deleted.digest} of {repo} resurrected (GET: 200, A answered 404)"]
    # A manifest that is back references its blobs again: GC keeps them, and says which.
    assert sorted(losses) == ["deleted-stays-deleted", "garbage-collection"]
    assert losses["garbage-collection"] and all(f"blob of the deleted manifest {deleted.digest}" in line
                                                for line in losses["garbage-collection"])


def test_fault_proxy_in_front_of_b_changing_one_blob_is_named() -> None:
    layer = fixture_set("oci").beta.layers[1]

    def corrupt(resp: Response) -> Response:
        resp.body = resp.body[:-1] + bytes([resp.body[-1] ^ 1])
        return resp

    def rules(corpus: Corpus) -> list[Rule]:
        return [Rule(rf"/v2/{corpus.namespace}/oci/blobs/{layer.digest}$", method="GET", transform=corrupt)]

    verdicts, corpus = upgrade(proxy_rules=rules)
    assert red(verdicts) == {"blobs": [f"blob {layer.digest} of {corpus.namespace}/oci changed bytes "
                                       f"(they hash to {_flipped(layer.data)})"]}


def test_hostile_listing_names_stay_one_bounded_line() -> None:
    evil = "evil\n\x1b[31m" + "x" * 5000

    def listing(resp: Response) -> Response:
        doc = json.loads(resp.body)
        resp.body = json.dumps({**doc, "tags": [*doc["tags"], evil]}).encode()
        return resp

    def rules(corpus: Corpus) -> list[Rule]:
        return [Rule(rf"/v2/{corpus.namespace}/docker/tags/list", method="GET", transform=listing)]

    verdicts, corpus = upgrade(proxy_rules=rules)
    losses = red(verdicts)
    assert list(losses) == ["tags-list"] and len(losses["tags-list"]) == 1
    line = losses["tags-list"][0]
    assert line.startswith("tag evil \\x1b[31mxxx") and line.endswith(f" of {corpus.namespace}/docker appeared in tags/list (A did not list it)")
    assert "\n" not in line and "\x1b" not in line and len(line) < 400


def _flipped(data: bytes) -> str:
    from regconform.registry.digests import sha256_digest

    return sha256_digest(data[:-1] + bytes([data[-1] ^ 1]))


@needs_v3
def test_continuity_2_8_to_3_1_is_green() -> None:
    verdicts, corpus = upgrade(new=str(V3))
    assert red(verdicts) == {}
    assert verdicts["catalog"].outcome == "passed" and corpus.blob_only  # v3 no longer lists it: its profile says so


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args, message in ((["--from", "./nope", "--to", str(OLD)], "no such file"),
                          (["--backend", "process", "--from", str(OLD), "--to", "registry:2"],
                           "an image runs on --backend docker"),
                          (["--to", str(OLD)], "give --from and --to"),
                          (["--registry-url", "http://127.0.0.1:9", "--from", str(OLD)], "not both"),
                          (["--registry-url", "http://127.0.0.1:9"], "--upgrade-command")):
        proc = regconform("upgrade", "--report-dir", str(tmp_path), *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (args, proc.stderr)


@pytest.mark.selftest_slow
def test_upgrade_2_8_to_2_8_cli_is_green_with_an_empty_diff(tmp_path: Path) -> None:
    subset = "test_api_version_check or test_delete_manifest_by_tag or test_tags_list or test_manifest_get_without_accept"
    proc = regconform("upgrade", "--backend", "process", "--from", str(OLD), "--to", str(OLD), "--report-dir",
                      str(tmp_path), "-k", subset)
    assert proc.returncode == 0, output(proc)
    assert "continuity: green" in proc.stdout and "no behaviour changed" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after", "before", "continuity.json", "continuity.md",
                                                          "diff.html", "diff.md", "diff.txt"]
    assert json.loads((tmp_path / "continuity.json").read_text())["passed"] is True
    assert not [p for p in os.listdir("/tmp") if p.startswith(f"regconform-upgrade-{os.getpid()}-")]


@needs_v3
@pytest.mark.selftest_slow
def test_upgrade_2_8_to_3_1_cli(tmp_path: Path) -> None:
    """The full suites on 2.8.2 and v3.1.1: continuity green; exit 0 with the shipped allow-list; the
    summary fits one screen and names the known changes; without the allow-list the same diff exits 1."""
    proc = regconform("upgrade", "--backend", "process", "--from", str(OLD), "--to", str(V3), "--report-dir",
                      str(tmp_path), "--allow", str(ALLOW), timeout=1500)
    assert proc.returncode == 0, output(proc)
    assert "continuity: green" in proc.stdout
    summary = proc.stdout[proc.stdout.index("behaviour diff: OLD"):proc.stdout.rindex("regconform upgrade: continuity")]
    assert len(summary.splitlines()) <= 60, summary
    assert summary.startswith("behaviour diff: OLD docker-registry (github.com/docker/distribution 2.8.2")
    assert ", 0 not allowed (" in summary.splitlines()[2]
    for known in ("DELETE /v2/<name>/manifests/<tag> untags: 400 DIGEST_INVALID → 202",
                  "status of DELETE /v2/<repo>/manifests/<tag>: 400 → 202",
                  "tags/list honours n and last",
                  "GET of a schema2 manifest by tag without Accept: 400 MANIFEST_INVALID → 200",
                  "status of GET /v2/<repo>/manifests/<tag>: 400 → 200",
                  "DELETE /v2/<name>/manifests/<layer digest>: 202 → 500",
                  "JSON answers' Content-Type lost '; charset=utf-8'"):
        assert known in summary, known
    assert re.search(r"header content-type: application/json; charset=utf-8 → application/json — ×\d{3} exchanges in "
                     r"\d{2,3} checks", summary), summary
    bare = regconform("diff", str(tmp_path / "before" / "behaviour.json"), str(tmp_path / "after" / "behaviour.json"))
    assert bare.returncode == 1


KNOWN_CHANGES = ("test_delete_manifest_by_tag_is_rejected or test_tags_list_paginates or test_tags_list_last "
                 "or test_manifest_get_without_accept or test_api_version_check")


@needs_v3
@pytest.mark.selftest_slow
def test_upgrade_2_8_image_to_an_image_built_from_3_1(tmp_path: Path) -> None:
    """The docker backend: registry:2 (2.8.2) on a volume, then the image the builder makes of v3.1.1 on it;
    the suites of the known changes on both: exit 0 with the shipped allow-list (by name), 1 without."""
    args = ["upgrade", "--backend", "docker", "--from", "registry:2", "--to", str(V3), "-k", KNOWN_CHANGES]
    proc = regconform(*args, "--report-dir", str(tmp_path / "allowed"), "--allow", "distribution-2.8-to-3.1",
                      timeout=1500)
    assert proc.returncode == 0, output(proc)
    doc = json.loads((tmp_path / "allowed" / "continuity.json").read_text())
    assert doc["passed"] and doc["new"].startswith("registry-v3.1.1 (")
    after = json.loads((tmp_path / "allowed" / "after" / "behaviour.json").read_text())
    assert "v3.1.1" in json.dumps(after["target"]), after["target"]  # the suites ran on the image built from v3.1.1
    assert "DELETE /v2/<name>/manifests/<tag> untags: 400 DIGEST_INVALID → 202" in proc.stdout
    bare = regconform("diff", str(tmp_path / "allowed" / "before" / "behaviour.json"),
                      str(tmp_path / "allowed" / "after" / "behaviour.json"))
    assert bare.returncode == 1 and "NOT ALLOWED" in bare.stdout
    from regconform.targets.container import PID_LABEL
    from regconform.targets.engine import docker_client
    from regconform.targets.ownership import pid_alive

    left = [v.name for v in docker_client().volumes.list(filters={"label": PID_LABEL})
            if v.name.startswith("regconform-upgrade-") and not pid_alive(int(v.attrs["Labels"][PID_LABEL]))]
    assert left == []  # the shared volume went with the run that made it


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose environment or command line names `text` (a registry serving a storage directory)."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            blob = Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(pid))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_upgrade_removes_everything(tmp_path: Path, signum: int) -> None:
    from suiterun import REPO, clean_env

    proc = subprocess.Popen([sys.executable, "-m", "regconform.cli", "upgrade", "--backend", "process", "--from", str(OLD),
                             "--to", str(OLD),
                             "--continuity-only", "--report-dir", str(tmp_path)], cwd=REPO, env=clean_env(None),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # interrupted while B serves the storage A wrote
        if " B: " in line:
            break
    workdirs = glob.glob(f"/tmp/regconform-upgrade-{proc.pid}-*")
    assert len(workdirs) == 1
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.strip().splitlines() == ["regconform: error: interrupted"], err
    assert not os.path.exists(workdirs[0])
    assert _processes_mentioning(workdirs[0]) == []


@pytest.mark.selftest_slow
@pytest.mark.parametrize("auth", [False, True], ids=["open", "htpasswd"])
def test_a_deployment_upgraded_in_place(tmp_path: Path, auth: bool) -> None:
    """--registry-url and --upgrade-command: a container replaced by another on the same volume and port;
    behind htpasswd, the credentials reach the harness by --password-stdin only (never argv), and without
    them the upgrade is refused with one line (exit 2) before anything is pushed."""
    from authregistries import MOUNT, new_password, write_htpasswd
    from conftest import registry_image
    from hostileserver import ArgvWatch
    from regconform.targets.base import free_port, wait_until_ready
    from regconform.targets.container import PID_LABEL
    from regconform.targets.engine import docker_client

    client, image, port, tag = docker_client(), registry_image(), free_port(), uuid.uuid4().hex[:8]
    names, volume = [f"regconform-deploy-a-{tag}", f"regconform-deploy-b-{tag}"], f"regconform-deploy-{tag}"
    client.volumes.create(volume, labels={PID_LABEL: str(os.getpid())})
    user, password, extra = "deployer", new_password(), ""
    if auth:
        folder = tmp_path / "auth"
        folder.mkdir()
        write_htpasswd(folder, {user: password})
        folder.chmod(0o755)
        extra = (f"-e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=deploy "
                 f"-e REGISTRY_AUTH_HTPASSWD_PATH={MOUNT}/htpasswd -v {folder}:{MOUNT}:ro ")

    def run(name: str) -> str:
        return (f"docker run -d --name {name} --label {PID_LABEL}={os.getpid()} -p 127.0.0.1:{port}:5000 "
                f"-e REGISTRY_STORAGE_DELETE_ENABLED=true -e REGISTRY_HTTP_SECRET=deploy-{tag} {extra}"
                f"-v {volume}:/var/lib/registry {image}")

    try:
        subprocess.run(run(names[0]), shell=True, check=True, capture_output=True)
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)
        reports = tmp_path / "reports"
        argv = ["upgrade", "--registry-url", url, "--upgrade-command", f"docker rm -f {names[0]} && {run(names[1])}",
                "--gc-command", f"docker exec {names[1]} registry garbage-collect /etc/docker/registry/config.yml"
                f" && docker restart -t 2 {names[1]}", "--continuity-only", "--report-dir", str(reports)]
        if auth:
            refused = regconform(*argv)
            assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, output(refused)
            assert "401" in refused.stderr or "credentials" in refused.stderr, output(refused)
            assert client.containers.get(names[0]).status == "running"  # refused before the upgrade command ran
            argv += ["--username", user, "--password-stdin"]
        with ArgvWatch([password]) as watch:
            proc = regconform(*argv, stdin=password + "\n")
        assert proc.returncode == 0, output(proc)
        assert watch.samples > 0 and watch.hits == [], watch.hits
        doc = json.loads((reports / "continuity.json").read_text())
        assert doc["passed"] and {c["key"]: c["outcome"] for c in doc["checks"]}["garbage-collection"] == "passed"
        assert client.containers.get(names[1]).status == "running"
        texts = [p.read_text(errors="replace") for p in reports.rglob("*") if p.is_file()] + [proc.stdout, proc.stderr]
        assert not any(password in t for t in texts), "the password in a report or the output"
    finally:
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        client.volumes.get(volume).remove(force=True)


def test_upgrade_reads_profile_and_refuses_credentials_for_embedded_versions(tmp_path: Path) -> None:
    """--profile names both versions' profile (a bad one is one line, exit 2, before anything starts);
    --username with embedded versions is a usage error, not silently ignored."""
    bad = regconform("upgrade", "--backend", "process", "--from", str(OLD), "--to", str(OLD), "--continuity-only",
                     "--profile", str(tmp_path / "no-such-profile"), "--report-dir", str(tmp_path / "r"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, output(bad)
    assert "no-such-profile" in bad.stderr and "Traceback" not in bad.stderr
    creds = regconform("upgrade", "--backend", "process", "--from", str(OLD), "--to", str(OLD), "--continuity-only",
                       "--username", "someone", "--report-dir", str(tmp_path / "r"))
    assert creds.returncode == 2 and "apply to --registry-url" in creds.stderr, output(creds)
    assert not (tmp_path / "r" / "continuity.json").exists()
