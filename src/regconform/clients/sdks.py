"""Library clients driven in-process: oras-py (PyPI `oras`) and python-dxf (PyPI `python-dxf`).

Both get the credentials as objects (never argv), TLS verified with the run's CA file (`tls_verify`
/ `tlsverify` = the CA path) unless --insecure, plain HTTP only for an http:// registry. What they
read is bounded: manifests to MANIFEST_CAP, blobs streamed and capped at BLOB_CAP.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json

from regconform.clients.base import Client, ClientCannot, ClientFailed, Pulled, Workspace

MANIFEST_CAP = 4 * 1024 * 1024  # distribution's own manifest limit
BLOB_CAP = 64 * 1024 * 1024


class SdkClient(Client):
    """An in-process library (its own exceptions, e.g. requests' TLS errors, reach the suite as they are)."""

    module = ""
    distribution = ""

    @classmethod
    def missing(cls) -> str | None:
        if importlib.util.find_spec(cls.module) is None:
            return f"the Python package {cls.distribution} is not installed (pip install {cls.distribution}; ./setup.sh installs it)"
        return None

    def version(self) -> str:
        return f"{self.distribution} {importlib.metadata.version(self.distribution)}"

    def tls(self) -> bool | str:
        if not self.endpoint.verify:
            return False
        return str(self.endpoint.ca) if self.endpoint.ca else True


class OrasClient(SdkClient):
    """oras-py: artifacts (files as layers) pushed with a subject; any manifest and its blobs pulled."""

    name = "oras-py"
    module = "oras"
    token_auth = False  # measured: oras-py 0.2.43 with set_basic_auth gets 401 from a token-auth registry
    distribution = "oras"

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ws)
        import oras.provider

        backend = "basic" if self.endpoint.username else "token"
        self.registry = oras.provider.Registry(self.endpoint.host, insecure=not self.endpoint.tls, tls_verify=self.tls(),
                                               auth_backend=backend)
        if self.endpoint.username:
            self.registry.auth.set_basic_auth(self.endpoint.username, self.endpoint.password or "")

    def push_artifact(self, repo: str, tag: str, subject_repo_ref: str, payload: bytes) -> str:
        """`Registry.push(files=..., subject=...)`: an artifact whose subject is `subject_repo_ref` (repo@digest)."""
        import oras.oci

        scratch = self.ws.scratch("oras-push")
        path = scratch / "payload.txt"
        path.write_bytes(payload)
        subject = self.registry.get_manifest(f"{self.endpoint.host}/{subject_repo_ref}")
        sub_digest = subject_repo_ref.rsplit("@", 1)[1]
        raw = self._raw_manifest(subject_repo_ref)
        subj = oras.oci.Subject(subject.get("mediaType") or "application/vnd.oci.image.manifest.v1+json", sub_digest, len(raw))
        import os

        cwd = os.getcwd()
        try:
            os.chdir(scratch)  # oras-py wants files relative to the working directory
            resp = self.registry.push(target=self.endpoint.ref(repo, tag), files=["payload.txt"], subject=subj, quiet=True)
        finally:
            os.chdir(cwd)
        if resp.status_code not in (200, 201):
            raise ClientFailed(f"oras-py push answered {resp.status_code}")
        return resp.headers.get("Docker-Content-Digest", "")

    def _raw_manifest(self, repo_ref: str, accept: str | None = None) -> bytes:
        container = self.registry.get_container(f"{self.endpoint.host}/{repo_ref}")
        self.registry.auth.load_configs(container)
        import oras.defaults

        types = accept or ", ".join([*oras.defaults.default_manifest_accepted_media_types,
                                     "application/vnd.oci.image.index.v1+json",
                                     "application/vnd.docker.distribution.manifest.list.v2+json",
                                     "application/vnd.docker.distribution.manifest.v2+json"])
        url = f"{self.registry.prefix}://{container.manifest_url()}"
        resp = self.registry.do_request(url, "GET", headers={"Accept": types}, stream=True)
        if resp.status_code != 200:
            raise ClientFailed(f"oras-py GET manifest {repo_ref}: {resp.status_code}")
        body = _bounded(resp, MANIFEST_CAP, "manifest")
        return body

    def pull(self, repo: str, ref: str, platform: str | None = None) -> Pulled:
        sep = "@" if ref.startswith("sha256:") else ":"
        top = self._raw_manifest(f"{repo}{sep}{ref}")
        manifests = {_digest(top): top}
        blobs: dict[str, bytes] = {}
        doc = json.loads(top)
        picked = None
        children = doc.get("manifests", []) if isinstance(doc, dict) else []
        images = [doc] if not children else []
        for child in children:
            plat = child.get("platform", {})
            if platform and f"{plat.get('os')}/{plat.get('architecture')}" != platform:
                continue
            body = self._raw_manifest(f"{repo}@{child['digest']}")
            manifests[_digest(body)] = body
            picked = picked or _digest(body)
            images.append(json.loads(body))
        container = self.registry.get_container(self.endpoint.ref(repo, ref))
        for image in images:
            for desc in [image.get("config", {}), *image.get("layers", [])]:
                if desc.get("digest"):
                    resp = self.registry.get_blob(container, desc["digest"], stream=True)
                    if resp.status_code != 200:
                        raise ClientFailed(f"oras-py GET blob {desc['digest']}: {resp.status_code}")
                    blobs[desc["digest"]] = _bounded(resp, BLOB_CAP, "blob")
        return Pulled(None if platform else _digest(top), manifests=manifests, blobs=blobs,
                      platform_digest=picked if platform else None)


class DxfClient(SdkClient):
    """python-dxf: manifests by alias, blobs streamed (dxf verifies their digests), alias deletion."""

    name = "python-dxf"
    module = "dxf"
    distribution = "python-dxf"

    def dxf(self, repo: str):  # noqa: ANN201 - a dxf.DXF
        import dxf

        if self.endpoint.username and not self.endpoint.tls:
            raise ClientCannot("python-dxf refuses to send credentials over plain HTTP (DXFAuthInsecureError: Auth requires HTTPS)")

        user, password = self.endpoint.username, self.endpoint.password

        def auth(client, response) -> None:  # noqa: ANN001
            client.authenticate(user, password, response=response)

        return dxf.DXF(self.endpoint.host, repo, auth=auth if user else None, insecure=not self.endpoint.tls,
                       tlsverify=self.tls(), timeout=60)

    def pull(self, repo: str, ref: str, platform: str | None = None) -> Pulled:
        client = self.dxf(repo)
        text, resp = client.get_manifest_and_response(ref)
        top = resp.content[:MANIFEST_CAP]
        manifests = {_digest(top): top}
        doc = json.loads(top)
        picked = None
        images = [doc]
        if isinstance(doc, dict) and "manifests" in doc:
            images = []
            for child in doc["manifests"]:
                plat = child.get("platform", {})
                if platform and f"{plat.get('os')}/{plat.get('architecture')}" != platform:
                    continue
                _text, child_resp = client.get_manifest_and_response(child["digest"])
                body = child_resp.content[:MANIFEST_CAP]
                manifests[_digest(body)] = body
                picked = picked or _digest(body)
                images.append(json.loads(body))
        blobs = {}
        for image in images:
            for desc in [image.get("config", {}), *image.get("layers", [])]:
                if desc.get("digest"):
                    data, total = bytearray(), 0
                    for chunk in client.pull_blob(desc["digest"]):
                        total += len(chunk)
                        if total > BLOB_CAP:
                            raise ClientFailed(f"python-dxf: blob {desc['digest']} larger than {BLOB_CAP} bytes")
                        data += chunk
                    blobs[desc["digest"]] = bytes(data)
        return Pulled(None if platform else _digest(top), manifests=manifests, blobs=blobs,
                      platform_digest=picked if platform else None)

    def delete(self, repo: str, ref: str) -> list[str]:
        """`del_alias`: dxf resolves the alias to its digest and deletes that manifest (every tag on it goes)."""
        return list(self.dxf(repo).del_alias(ref))


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _bounded(resp, cap: int, what: str) -> bytes:  # noqa: ANN001 - a requests.Response
    data = bytearray()
    for chunk in resp.iter_content(65536):
        data += chunk
        if len(data) > cap:
            resp.close()
            raise ClientFailed(f"oras-py: {what} larger than {cap} bytes")
    return bytes(data)


__all__ = ["OrasClient", "DxfClient", "MANIFEST_CAP", "BLOB_CAP"]
