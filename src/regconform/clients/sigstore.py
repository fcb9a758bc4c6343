"""@sigstore/oci (npm), run with Node from the project's own folder (clients/node, `npm ci` in setup.sh).

The job (image, digest, credentials, artifacts) goes to the script on stdin, never argv; TLS trust is
the run's CA through NODE_EXTRA_CA_CERTS. @sigstore/oci 0.6 speaks plain HTTP to `localhost` and
`127.0.0.1` whatever the registry serves (registry.js: "Use http for localhost registries") and
HTTPS to every other host: a TLS registry on loopback is out of its reach (the check says so).
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import httpx

from regconform.clients.base import Client, ClientCannot, ClientFailed
from regconform.resources import PACKAGE

NODE_DIR = PACKAGE / "clients" / "node"
SCRIPT = NODE_DIR / "attach.js"


class SigstoreOciClient(Client):
    name = "@sigstore/oci"
    binary = "node"
    install = "Node 20 and `npm ci --prefix src/regconform/clients/node` (./setup.sh does both)"

    @classmethod
    def missing(cls) -> str | None:
        if shutil.which("node") is None:
            return "node is not installed (apt-get install nodejs; ./setup.sh needs it)"
        if not (NODE_DIR / "node_modules" / "@sigstore" / "oci").is_dir():
            return f"@sigstore/oci is not installed in {NODE_DIR} (./setup.sh runs npm ci there)"
        return None

    def version(self) -> str:
        doc = json.loads((NODE_DIR / "node_modules" / "@sigstore" / "oci" / "package.json").read_text())
        node = self.run(["node", "--version"], self.ws.scratch("node-version")).stdout.strip()
        return f"@sigstore/oci {doc.get('version')} (node {node})"

    def env(self, scratch: Path) -> dict[str, str]:
        env = {**super().env(scratch), "NODE_PATH": str(NODE_DIR / "node_modules")}
        if self.endpoint.ca is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(self.endpoint.ca)
        if self.endpoint.tls and self.endpoint.insecure:
            env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
        return env

    def attach(self, repo: str, digest: str, artifacts: list[tuple[str, bytes, dict[str, str]]]) -> list[dict]:
        """attachArtifactToImage once per (mediaType, payload, annotations); returns the descriptors it reports."""
        if self.endpoint.tls and httpx.URL(self.endpoint.url).host in ("127.0.0.1", "localhost"):
            raise ClientCannot("@sigstore/oci 0.6 always uses plain HTTP for localhost/127.0.0.1, so it cannot reach a TLS registry there")
        job = {"image": f"{self.endpoint.host}/{repo}", "digest": digest, "username": self.endpoint.username or "",
               "password": self.endpoint.password or "",
               "artifacts": [{"mediaType": mt, "payload": base64.b64encode(p).decode(), "annotations": a}
                             for mt, p, a in artifacts]}
        scratch = self.ws.scratch("sigstore")
        result = self.run(["node", str(SCRIPT)], scratch, stdin=json.dumps(job), timeout=120)
        try:
            doc = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
        except ValueError:
            doc = {}
        if not result.ok or "descriptors" not in doc:
            raise ClientFailed(f"@sigstore/oci attach: {doc.get('error') or result.describe()}")
        return doc["descriptors"]


__all__ = ["SigstoreOciClient", "NODE_DIR"]
