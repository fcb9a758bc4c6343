"""The docker CLI driving a private dockerd (clients/daemons.py), never the shared engine.

Credentials: the workspace's auth file as `config.json` in a private DOCKER_CONFIG (0600); TLS:
the CA in the private dockerd's `certs.d/<host:port>/ca.crt`. `docker manifest` runs in the CLI
itself: it reads the CA from the CLI's certs dir (`$XDG_CONFIG_HOME/docker/certs.d` when
ROOTLESSKIT_STATE_DIR is set, a private one here) and needs `--insecure` for plain HTTP.
Measured limits: dockerd treats 127.0.0.0/8 as an insecure registry (registry/config.go) and does
not verify a loopback certificate; `docker manifest push` sends plain HTTP to a TLS registry on
loopback, so that shape cannot be pushed there (ClientCannot: the check skips and says so).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from regconform.clients.base import (
    Client,
    ClientCannot,
    Pulled,
    Workspace,
)
from regconform.clients.daemons import PrivateDockerd
from regconform.content.images import pseudo_random_bytes

DIGEST_RE = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class DockerClient(Client):
    name = "docker"
    binary = "docker"
    install = "apt-get install docker.io (./setup.sh installs it)"

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ws)
        self.daemon = PrivateDockerd()
        Workspace.write_private(self.daemon.config_dir / "config.json", json.dumps(ws.auths()))
        self.cli_home = ws.root / "docker-cli"  # XDG_CONFIG_HOME of `docker manifest`: docker/certs.d/<host>/ca.crt
        if self.endpoint.ca is not None:
            self.daemon.trust_ca(self.endpoint.host, self.endpoint.ca)
            (self.cli_home / "docker" / "certs.d" / self.endpoint.host).mkdir(parents=True)
            shutil.copyfile(self.endpoint.ca, self.cli_home / "docker" / "certs.d" / self.endpoint.host / "ca.crt")

    @classmethod
    def missing(cls) -> str | None:
        return super().missing() or PrivateDockerd.unavailable()

    def env(self, scratch: Path) -> dict[str, str]:
        return {**super().env(scratch), **{k: v for k, v in self.daemon.cli_env().items() if k.startswith("DOCKER_")},
                "DOCKER_BUILDKIT": "0", "XDG_CONFIG_HOME": str(self.cli_home),
                "ROOTLESSKIT_STATE_DIR": str(self.cli_home / "rootlesskit")}

    def stores(self) -> tuple[Path, ...]:
        return (self.daemon.root / "data",)

    def version(self) -> str:
        out = self.must(self.run(["docker", "version", "--format", "{{.Client.Version}} / dockerd {{.Server.Version}}"],
                                 self.ws.scratch("docker-version")))
        return "docker " + out.stdout.strip()

    def docker(self, *args: str, what: str = "docker") -> str:
        return self.must(self.run(["docker", *args], self.ws.scratch(what))).stdout

    def build(self, ref: str, seed: str, layers: int = 2, platform: str | None = None) -> None:
        """A multi-layer image FROM scratch (one COPY per layer; the classic builder runs no container)."""
        ctx = self.ws.scratch("docker-build")
        lines = ["FROM scratch"]
        for i in range(layers):
            (ctx / f"f{i}.bin").write_bytes(pseudo_random_bytes(f"{seed}-{i}", 3000 + i))
            lines.append(f"COPY f{i}.bin /f{i}.bin")
        (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
        args = ["build", "-q", "-t", ref, *(["--platform", platform] if platform else []), str(ctx)]
        self.must(self.run(["docker", *args], ctx))

    def push_image(self, repo: str, tag: str) -> str | None:
        """docker push of a two-layer image; returns the digest docker reports."""
        ref = self.endpoint.ref(repo, tag)
        self.build(ref, f"docker-{repo}-{tag}")
        out = self.docker("push", ref, what="docker-push")
        m = DIGEST_RE.search(out)
        return m.group(1) if m else None

    def push_to_another_repository(self, repo: str, tag: str, to_repo: str) -> tuple[str | None, list[str]]:
        """`docker tag` + `docker push` of an image already pushed to `repo`, into `to_repo`: dockerd
        mounts the layers it knows are in `repo` (POST ?mount=&from=). Returns the digest and the
        repositories docker says it mounted from ("Mounted from <repo>")."""
        source, target = self.endpoint.ref(repo, tag), self.endpoint.ref(to_repo, tag)
        self.docker("tag", source, target, what="docker-tag")
        out = self.docker("push", target, what="docker-push")
        m = DIGEST_RE.search(out)
        return (m.group(1) if m else None), re.findall(r"Mounted from (\S+)", out)

    def _manifest_flags(self) -> list[str]:
        return ["--insecure"] if not self.endpoint.tls or self.endpoint.insecure else []

    def push_list(self, repo: str, tag: str) -> str | None:
        """`docker manifest create/annotate/push`: a Docker manifest list over two pushed images."""
        if self.endpoint.tls and self.endpoint.loopback:
            raise ClientCannot("docker manifest push (CLI 28.2) sends plain HTTP to a TLS registry on 127.0.0.0/8, "
                               "with or without --insecure (measured: 'Client sent an HTTP request to an HTTPS server')")
        refs = []
        for arch in ("amd64", "arm64"):
            ref = self.endpoint.ref(repo, f"{tag}-{arch}")
            self.build(ref, f"docker-list-{repo}-{arch}")
            self.docker("push", ref, what="docker-push")
            refs.append(ref)
        top = self.endpoint.ref(repo, tag)
        self.docker("manifest", "create", *self._manifest_flags(), top, *refs, what="docker-manifest")
        self.docker("manifest", "annotate", "--arch", "arm64", "--os", "linux", top, refs[1], what="docker-manifest")
        out = self.docker("manifest", "push", *self._manifest_flags(), "--purge", top, what="docker-manifest")
        m = re.search(r"(sha256:[0-9a-f]{64})", out)
        return m.group(1) if m else None

    def pull(self, repo: str, ref: str, platform: str | None = None) -> Pulled:
        name = self.endpoint.ref(repo, ref)
        self.docker("pull", *(["--platform", platform] if platform else []), name, what="docker-pull")
        fmt = "{{json .RepoDigests}} {{.Id}} {{.Architecture}}"
        out = self.docker("image", "inspect", "--format", fmt, name, what="docker-inspect").strip()
        digests, image_id, _arch = out.rsplit(" ", 2)
        found = [d.split("@", 1)[1] for d in json.loads(digests) if d.startswith(f"{self.endpoint.host}/{repo}@")]
        self.docker("image", "rm", "-f", name, what="docker-rm")
        return Pulled(found[0] if found else None, config_digest=image_id)

    def close(self) -> None:
        self.daemon.stop()


__all__ = ["DockerClient"]
