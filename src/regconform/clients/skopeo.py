"""Real-client interoperability: OCI image layouts on disk and the skopeo command line.

The harness writes its fixture images as an OCI image layout (image-spec §Image Layout) so that
skopeo can push them, and reads back the layouts skopeo writes. Skopeo runs as a subprocess;
`skopeo_path()` is None when it is not installed (the checks then skip and say why).

Credentials reach skopeo only as an auth file (`--authfile`/`--src-authfile`/`--dest-authfile`,
mode 0600 in the clients' workspace), never as `--creds` on argv; TLS is verified with the run's CA
(`--cert-dir`) unless --insecure; `--tls-verify=false` otherwise only for a plain-HTTP registry.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from regconform.clients.base import Client, Endpoint, Pulled, Workspace
from regconform.content.images import Image, Index, canonical_json
from regconform.registry.digests import sha256_digest

REF_NAME = "org.opencontainers.image.ref.name"


def _write_blob(root: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def write_oci_layout(root: Path, obj: Image | Index, tag: str) -> None:
    """An OCI image layout holding `obj` (an image, or an index with its images) under `tag`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    images = obj.images if isinstance(obj, Index) else (obj,)
    for image in images:
        for blob in image.blobs:
            _write_blob(root, blob.data)
        _write_blob(root, image.manifest)
    _write_blob(root, obj.manifest)
    top = {"mediaType": obj.media_type, "digest": obj.digest, "size": len(obj.manifest), "annotations": {REF_NAME: tag}}
    (root / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": [top]}))


def write_dir_layout(root: Path, obj: Image | Index) -> None:
    """skopeo's `dir:` layout (containers/image directory transport 1.1) holding `obj`.

    Docker schema2 images need it: skopeo 1.9 finds only OCI media types in an OCI layout's index.json.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "version").write_text("Directory Transport Version: 1.1\n")
    images = obj.images if isinstance(obj, Index) else (obj,)
    for image in images:
        for blob in image.blobs:
            (root / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
        if isinstance(obj, Index):
            (root / f"{image.digest.split(':', 1)[1]}.manifest.json").write_bytes(image.manifest)
    (root / "manifest.json").write_bytes(obj.manifest)


def transport_for(fmt: str) -> str:
    """The skopeo transport that holds a fixture format on disk: `oci` for OCI, `dir` for Docker schema2."""
    return "oci" if fmt == "oci" else "dir"


def write_layout(root: Path, obj: Image | Index, tag: str) -> str:
    """Write `obj` in the layout of its format; returns the skopeo source reference."""
    if obj.format == "oci":
        write_oci_layout(root, obj, tag)
        return f"oci:{root}:{tag}"
    write_dir_layout(root, obj)
    return f"dir:{root}"


@dataclass(frozen=True)
class CopiedImage:
    """What skopeo wrote to disk (`oci:<root>:<tag>` or `dir:<root>`): the top manifest and blobs by digest."""

    root: Path
    transport: str
    tag: str = ""

    @property
    def reference(self) -> str:
        return f"oci:{self.root}:{self.tag}" if self.transport == "oci" else f"dir:{self.root}"

    def manifest(self) -> bytes | None:
        if self.transport == "dir":
            path = self.root / "manifest.json"
            return path.read_bytes() if path.is_file() else None
        index = json.loads((self.root / "index.json").read_text())
        for desc in index.get("manifests", []):
            if desc.get("annotations", {}).get(REF_NAME) == self.tag:
                return self.blob(desc["digest"])
        return None

    def blob(self, digest: str) -> bytes | None:
        """A blob, or (dir transport) an image manifest of a list, by digest."""
        hexpart = digest.split(":", 1)[1]
        candidates = ([self.root / "blobs" / "sha256" / hexpart] if self.transport == "oci"
                      else [self.root / hexpart, self.root / f"{hexpart}.manifest.json"])
        return next((p.read_bytes() for p in candidates if p.is_file()), None)


def skopeo_path() -> str | None:
    return shutil.which("skopeo")


def docker_reference(base_url: str, repo: str, tag: str) -> str:
    """`docker://host:port/repo:tag` for skopeo, from the registry's base URL."""
    url = httpx.URL(base_url)
    return f"docker://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}/{repo}:{tag}"


def remote_options(endpoint: Endpoint, ws: Workspace, side: str = "") -> list[str]:
    """skopeo's options for one registry side (`side`: "src", "dest" or "" for inspect/delete)."""
    flag = f"--{side}-" if side else "--"
    opts = [f"{flag}authfile", str(ws.auth_file)]
    if not endpoint.verify:
        return [*opts, f"{flag}tls-verify=false"]
    return [*opts, f"{flag}tls-verify=true", f"{flag}cert-dir", str(ws.cert_dir)]


def run_skopeo(*args: str, ws: Workspace, scratch: Path | None = None, timeout: float = 180):  # noqa: ANN201 - a RunResult
    """Run skopeo, bounded in time and in what it writes under `scratch` (a workspace dir: put its output there)."""
    binary = skopeo_path()
    if binary is None:
        raise FileNotFoundError("skopeo is not installed (./setup.sh installs it)")
    return SkopeoClient(ws).run([binary, *args], scratch or ws.scratch("skopeo"), timeout=timeout)


class SkopeoClient(Client):
    name = "skopeo"
    binary = "skopeo"
    install = "apt-get install skopeo (./setup.sh installs it)"

    def env(self, scratch: Path) -> dict[str, str]:
        conf = self.ws.root / "registries.conf"
        if not conf.exists():
            conf.write_text('unqualified-search-registries = []\n')
        return {**super().env(scratch), "CONTAINERS_REGISTRIES_CONF": str(conf)}

    def skopeo(self, *args: str, scratch: Path | None = None) -> str:
        scratch = scratch or self.ws.scratch("skopeo")
        return self.must(self.run(["skopeo", *args], scratch)).stdout

    def push_copy_all(self, repo: str, tag: str, obj: Image | Index) -> str | None:
        """`skopeo copy --all --preserve-digests` of a harness layout (every byte kept)."""
        scratch = self.ws.scratch("skopeo-push")
        source = write_layout(scratch / "layout", obj, tag)
        self.skopeo("copy", "--all", "--preserve-digests", *remote_options(self.endpoint, self.ws, "dest"), source,
                    f"docker://{self.endpoint.ref(repo, tag)}", scratch=scratch)
        return obj.digest

    def pull(self, repo: str, ref: str, platform: str | None = None) -> Pulled:
        scratch = self.ws.scratch("skopeo-pull")
        which = ["--all"]
        if platform:
            os_, arch = platform.split("/", 1)
            which = ["--override-os", os_, "--override-arch", arch]
        self.skopeo("copy", *which, "--preserve-digests", *remote_options(self.endpoint, self.ws, "src"),
                    f"docker://{self.endpoint.ref(repo, ref)}", f"dir:{scratch / 'out'}", scratch=scratch)
        out = scratch / "out"
        top = (out / "manifest.json").read_bytes()
        manifests = {sha256_digest(top): top}
        blobs = {}
        for path in out.iterdir():
            if path.name.endswith(".manifest.json"):
                body = path.read_bytes()
                manifests[sha256_digest(body)] = body
            elif re.fullmatch(r"[0-9a-f]{64}", path.name):
                blobs[f"sha256:{path.name}"] = path.read_bytes()
        digest = sha256_digest(top)
        return Pulled(None if platform else digest, manifests=manifests, blobs=blobs,
                      platform_digest=digest if platform else None)

    def inspect(self, repo: str, ref: str) -> bytes:
        return self.skopeo("inspect", "--raw", *remote_options(self.endpoint, self.ws), f"docker://{self.endpoint.ref(repo, ref)}").encode()

    def delete(self, repo: str, ref: str) -> None:
        self.skopeo("delete", *remote_options(self.endpoint, self.ws), f"docker://{self.endpoint.ref(repo, ref)}")


__all__ = ["write_oci_layout", "write_dir_layout", "write_layout", "transport_for", "CopiedImage", "skopeo_path",
           "docker_reference", "run_skopeo", "remote_options", "SkopeoClient"]
