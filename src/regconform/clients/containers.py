"""podman and buildah (containers/image and containers/storage), each with private storage.

Storage: `--root`/`--runroot` in the workspace, vfs driver, so the shared machine's storage is never
used. Credentials: `--authfile` (REGISTRY_AUTH_FILE too) pointing at the workspace's 0600 auth file.
TLS: `--cert-dir` with the run's CA and verification on; `--tls-verify=false` only for a plain-HTTP
registry (containers/image speaks HTTP only then) or with --insecure. A private registries.conf
(CONTAINERS_REGISTRIES_CONF) keeps /etc/containers' search lists and mirrors out of the run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from regconform.clients.base import Client, Pulled, Workspace
from regconform.content.images import pseudo_random_bytes


class ContainersTool(Client):
    """What podman and buildah share: storage, auth, TLS flags, image building, manifest lists."""

    install = "apt-get install podman buildah (./setup.sh installs them)"

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ws)
        # Short paths: podman refuses a runroot longer than 50 characters. Pulls go to storage of their own,
        # so a pull never finds what this tool built and pushed already stored under another digest.
        self.storage = ws.root / self.name[0]
        self.pull_storage = ws.root / f"{self.name[0]}p"
        self.storage.mkdir()
        self.pull_storage.mkdir()
        self.pulling = False
        self.registries_conf = ws.root / "registries.conf"
        if not self.registries_conf.exists():
            self.registries_conf.write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')

    def stores(self) -> tuple[Path, ...]:
        return (self.pull_storage if self.pulling else self.storage,)

    def global_flags(self) -> list[str]:
        where = self.pull_storage if self.pulling else self.storage
        return ["--root", str(where / "root"), "--runroot", str(where / "run"), "--storage-driver", "vfs"]

    def tls_flags(self) -> list[str]:
        if not self.endpoint.verify:
            return ["--tls-verify=false"]
        return ["--tls-verify=true", "--cert-dir", str(self.ws.cert_dir)]

    def env(self, scratch: Path) -> dict[str, str]:
        return {**super().env(scratch), "REGISTRY_AUTH_FILE": str(self.ws.auth_file),
                "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf), "BUILDAH_ISOLATION": "chroot"}

    def tool(self, *args: str, what: str = "") -> str:
        scratch = self.ws.scratch(what or self.name)
        return self.must(self.run([self.binary, *self.global_flags(), *args], scratch)).stdout

    def remote(self, command: list[str], *args: str, what: str = "") -> str:
        """A subcommand that talks to the registry: auth file and TLS flags right after it (buildah wants them there)."""
        return self.tool(*command, "--authfile", str(self.ws.auth_file), *self.tls_flags(), *args, what=what)

    def build(self, ref: str, seed: str, arch: str = "amd64") -> None:
        ctx = self.ws.scratch(f"{self.name}-build")
        lines = ["FROM scratch"]
        for i in range(2):
            (ctx / f"f{i}.bin").write_bytes(pseudo_random_bytes(f"{seed}-{i}", 3000 + i))
            lines.append(f"COPY f{i}.bin /f{i}.bin")
        (ctx / "Containerfile").write_text("\n".join(lines) + "\n")
        self.tool("build", "-q", "--arch", arch, "--os", "linux", "-f", str(ctx / "Containerfile"), "-t", ref, str(ctx),
                  what=f"{self.name}-build")

    def push_image(self, repo: str, tag: str) -> str | None:
        """The tool's own image (OCI, as podman/buildah write it), pushed by tag."""
        ref = self.endpoint.ref(repo, tag)
        self.build(ref, f"{self.name}-{repo}-{tag}")
        digest_file = self.ws.scratch(f"{self.name}-digest") / "digest"
        self.remote(["push"], "--digestfile", str(digest_file), ref, f"docker://{ref}", what=f"{self.name}-push")
        return digest_file.read_text().strip() if digest_file.is_file() else None

    def push_list(self, repo: str, tag: str) -> str | None:
        """`<tool> manifest create/add/push --all`: an index over two images of its own (amd64, arm64)."""
        top = self.endpoint.ref(repo, tag)
        listname = f"regconform-list-{repo.replace('/', '-')}-{tag}"
        self.tool("manifest", "create", listname, what=f"{self.name}-manifest")
        for arch in ("amd64", "arm64"):
            ref = self.endpoint.ref(repo, f"{tag}-{arch}")
            self.build(ref, f"{self.name}-list-{repo}-{arch}", arch=arch)
            self.tool("manifest", "add", listname, f"containers-storage:{ref}", what=f"{self.name}-manifest")
        digest_file = self.ws.scratch(f"{self.name}-digest") / "digest"
        self.remote(["manifest", "push"], "--all", "--digestfile", str(digest_file), listname, f"docker://{top}",
                    what=f"{self.name}-manifest")
        return digest_file.read_text().strip() if digest_file.is_file() else None

    def pull(self, repo: str, ref: str, platform: str | None = None) -> Pulled:
        self.pulling = True
        try:
            return self._pull(repo, ref, platform)
        finally:
            self.pulling = False

    def _pull(self, repo: str, ref: str, platform: str | None) -> Pulled:
        name = self.endpoint.ref(repo, ref)
        extra = []
        if platform:
            os_, arch = platform.split("/", 1)
            extra = ["--os", os_, "--arch", arch]
        self.remote(["pull"], "-q", *extra, f"docker://{name}", what=f"{self.name}-pull")
        out = self.tool("inspect", "--type", "image", name, what=f"{self.name}-inspect") if self.name == "buildah" \
            else self.tool("image", "inspect", name, what=f"{self.name}-inspect")
        doc = json.loads(out)
        doc = doc[0] if isinstance(doc, list) else doc
        digest = doc.get("Digest") or doc.get("FromImageDigest")
        config = doc.get("Id") or doc.get("FromImageID") or ""
        self.tool("rmi", "-f", name, what=f"{self.name}-rmi")
        return Pulled(digest, config_digest=f"sha256:{config}" if config and ":" not in config else config or None)

    def close(self) -> None:
        # vfs layers are plain files: removing the storage dir removes everything the tool stored.
        shutil.rmtree(self.storage, ignore_errors=True)
        shutil.rmtree(self.pull_storage, ignore_errors=True)


class PodmanClient(ContainersTool):
    name = "podman"
    binary = "podman"

    def global_flags(self) -> list[str]:
        where = self.pull_storage if self.pulling else self.storage
        return [*super().global_flags(), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--tmpdir", str(where / "tmp")]


class BuildahClient(ContainersTool):
    name = "buildah"
    binary = "buildah"

    def build(self, ref: str, seed: str, arch: str = "amd64") -> None:
        """buildah from scratch / copy / config / commit (buildah's own way, no Containerfile)."""
        ctx = self.ws.scratch("buildah-build")
        ctr = self.tool("from", "--arch", arch, "scratch", what="buildah-from").strip().splitlines()[-1]
        for i in range(2):
            (ctx / f"f{i}.bin").write_bytes(pseudo_random_bytes(f"{seed}-{i}", 3000 + i))
            self.tool("copy", ctr, str(ctx / f"f{i}.bin"), f"/f{i}.bin", what="buildah-copy")
        self.tool("config", "--arch", arch, "--os", "linux", ctr, what="buildah-config")
        self.tool("commit", "-q", "--rm", ctr, ref, what="buildah-commit")


__all__ = ["PodmanClient", "BuildahClient"]
