"""containerd's `ctr` driving a private containerd (clients/daemons.py).

Registry config through `--hosts-dir` only: hosts.toml with `ca` (the run's CA; verification on
unless --insecure), and for htpasswd registries an `Authorization: Basic` header in that 0600 file
(ctr's `--user user:password` would put the secret on argv; without a password it prompts on a TTY).
Plain HTTP is the hosts.toml `server = "http://…"` of that one host.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from regconform.clients.base import Client, Pulled, Workspace
from regconform.clients.daemons import PrivateContainerd
from regconform.clients.skopeo import write_oci_layout
from regconform.content.images import Index

CONTENT_CAP = 64 * 1024 * 1024  # what is read back from the content store per pull


class CtrClient(Client):
    name = "ctr"
    binary = "ctr"
    install = "apt-get install containerd (./setup.sh installs it)"
    token_auth = False  # credentials go as a static `Authorization: Basic` header in hosts.toml (never argv)

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ws)
        self.daemon = PrivateContainerd()
        headers = {"Authorization": f"Basic {self.endpoint.basic()}"} if self.endpoint.username else None
        self.daemon.write_host(self.endpoint.host, scheme=self.endpoint.scheme, ca=self.endpoint.ca,
                               skip_verify=self.endpoint.tls and self.endpoint.insecure, headers=headers)

    @classmethod
    def missing(cls) -> str | None:
        return super().missing() or PrivateContainerd.unavailable()

    def env(self, scratch: Path) -> dict[str, str]:
        return {**super().env(scratch), **{k: v for k, v in self.daemon.cli_env().items() if k.startswith("CONTAINERD_")}}

    def stores(self) -> tuple[Path, ...]:
        return (self.daemon.root / "root",)

    def ctr(self, *args: str, what: str = "ctr") -> str:
        return self.must(self.run(["ctr", *args], self.ws.scratch(what))).stdout

    def version(self) -> str:
        return "ctr " + self.ctr("version", what="ctr-version").split("Version:", 1)[-1].split()[0]

    def push_index(self, repo: str, tag: str, index: Index) -> str | None:
        """The harness's fixture index imported from an OCI archive (all platforms), then `ctr images push`."""
        scratch = self.ws.scratch("ctr-import")
        layout = scratch / "layout"
        write_oci_layout(layout, index, tag)
        archive = scratch / "image.tar"
        with tarfile.open(archive, "w") as tar:
            for path in sorted(layout.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
        local = f"regconform.local/{repo}"
        self.ctr("images", "import", "--all-platforms", "--no-unpack", "--base-name", local, str(archive), what="ctr-import")
        remote = self.endpoint.ref(repo, tag)
        self.ctr("images", "push", "--hosts-dir", str(self.daemon.hosts_dir), remote, f"{local}:{tag}", what="ctr-push")
        self.ctr("images", "rm", f"{local}:{tag}", what="ctr-rm")
        return index.digest

    def pull(self, repo: str, ref: str, platform: str | None = None) -> Pulled:
        name = self.endpoint.ref(repo, ref)
        self.ctr("images", "pull", "--hosts-dir", str(self.daemon.hosts_dir), *(["--platform", platform] if platform else []),
                 name, what="ctr-pull")
        line = self.ctr("images", "ls", f"name=={name}", what="ctr-ls").splitlines()
        digest = next((w for w in (line[1].split() if len(line) > 1 else []) if w.startswith("sha256:")), None)
        manifests, blobs = self._walk(digest) if digest else ({}, {})
        self.ctr("images", "rm", "--sync", name, what="ctr-rm")
        children = [d for d in manifests if d != digest]
        return Pulled(digest, manifests=manifests, blobs=blobs,
                      platform_digest=children[0] if platform and len(children) == 1 else None)

    def _walk(self, top: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """What the content store holds under `top`: manifests and blobs, bounded by CONTENT_CAP in all."""
        manifests: dict[str, bytes] = {}
        blobs: dict[str, bytes] = {}
        todo, total = [(top, True)], 0
        while todo:
            digest, is_manifest = todo.pop(0)
            body = self._content(digest)
            if body is None:
                continue  # not fetched (another platform)
            total += len(body)
            if total > CONTENT_CAP:
                break
            if not is_manifest:
                blobs[digest] = body
                continue
            manifests[digest] = body
            doc = json.loads(body)
            todo += [(m["digest"], True) for m in doc.get("manifests", [])]
            todo += [(b["digest"], False) for b in [doc.get("config", {}), *doc.get("layers", [])] if b.get("digest")]
        return manifests, blobs

    def _content(self, digest: str) -> bytes | None:
        scratch = self.ws.scratch("ctr-get")
        result = self.run(["sh", "-c", 'exec ctr content get "$1" > "$2/out"', "sh", digest, str(scratch)], scratch)
        return (scratch / "out").read_bytes() if result.ok else None

    def close(self) -> None:
        self.daemon.stop()


__all__ = ["CtrClient"]
