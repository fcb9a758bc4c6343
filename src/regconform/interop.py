"""Real-client interoperability: OCI image layouts on disk and the skopeo command line.

The harness writes its fixture images as an OCI image layout (image-spec §Image Layout) so that
skopeo can push them, and reads back the layouts skopeo writes. Skopeo runs as a subprocess;
`skopeo_path()` is None when it is not installed (the checks then skip and say why).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from regconform.client import sha256_digest
from regconform.images import Image, Index, canonical_json

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


def run_skopeo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run skopeo with the given arguments; the caller judges the result (exit code, output)."""
    binary = skopeo_path()
    if binary is None:
        raise FileNotFoundError("skopeo is not installed (./setup.sh installs it)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)


__all__ = ["write_oci_layout", "write_dir_layout", "write_layout", "transport_for", "CopiedImage", "skopeo_path", "docker_reference", "run_skopeo"]
