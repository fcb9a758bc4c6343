"""A hostile token realm, and an upstream whose Bearer challenge names it (distribution CVE-2026-33540).

A mirror holding upstream credentials (proxy.username/password) fetches tokens from the realm the
upstream's `WWW-Authenticate: Bearer realm=...` names. Before distribution 3.1.0 it did so for any
realm, on any origin, sending the upstream credentials as Basic auth (GHSA-3p65-76g6-3w7r; fix
cc5d5fa4: the realm must be on the upstream's host or registrable domain). `HostileRealm` is such
a realm on another origin: it answers every request 401 and records, per request, only the path,
the Authorization scheme and whether the credentials it is told to watch for were in it (never a
header value). Its records are served at /_regconform/records (JSON), so a run by URL can read them.

`HostileUpstreamMirror`: three local processes on 127.0.0.1: the realm, an upstream (Debian's
distribution 2.8.2) with `auth.token` whose realm is the hostile one, and a mirror of it (any
registry binary: 2.8.2 by default, or e.g. ../shared/registries/registry-v3.1.1) holding the
upstream credentials as proxy.username/password, the wiring distribution documents for token
upstreams.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from regconform.errors import SetupError
from regconform.targets.mirrors.routes import Credentials
from regconform.targets.ownership import owned_workdir
from regconform.targets.process import ProcessTarget

RECORDS_PATH = "/_regconform/records"
MAX_RECORDS = 200
HOSTILE_WORKDIR_PREFIX = "regconform-realm-"


def carries(value: str, creds: Credentials) -> bool:
    """Whether an Authorization value holds the credentials (Basic user:password, or the password as is)."""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode(errors="replace")
        except ValueError:
            decoded = ""
        if decoded == f"{creds.username}:{creds.password}" or creds.password in decoded:
            return True
    return creds.password in value


class HostileRealm:
    """A token realm on 127.0.0.1:<port> that refuses everything and notes who sent which credentials."""

    def __init__(self, watched: Credentials) -> None:
        self.watched = watched
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        realm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # nothing to stderr: paths may carry scopes
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == RECORDS_PATH:
                    with realm.lock:
                        body = json.dumps(realm.records).encode()
                    self._answer(200, body)
                    return
                realm.note(self)
                self._answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"hostile realm"}]}')

            do_POST = do_GET  # noqa: N815 - OAuth2 token requests are POSTs

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="hostile realm", daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def note(self, handler: BaseHTTPRequestHandler) -> None:
        value = handler.headers.get("Authorization") or ""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(min(length, 65536)).decode(errors="replace") if length > 0 else ""
        record = {"method": handler.command, "path": handler.path.split("?", 1)[0][:200],
                  "authorization": value.partition(" ")[0][:20] or None,
                  "carries_credentials": carries(value, self.watched) or self.watched.password in body}
        with self.lock:
            if len(self.records) < MAX_RECORDS:
                self.records.append(record)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_records(realm_url: str, verify: Any = True) -> list[dict[str, Any]]:
    """The records of a HostileRealm, by URL (bounded: at most MAX_RECORDS entries of known keys)."""
    resp = httpx.get(realm_url.rstrip("/") + RECORDS_PATH, timeout=10, verify=verify)
    if resp.status_code != 200 or len(resp.content) > 1 << 20:
        raise SetupError(f"hostile realm {realm_url}: GET {RECORDS_PATH} answered {resp.status_code}")
    keys = ("method", "path", "authorization", "carries_credentials")
    return [{k: r.get(k) for k in keys} for r in json.loads(resp.content)[:MAX_RECORDS] if isinstance(r, dict)]


def _root_certificate(folder: str) -> str:
    """A self-signed certificate for auth.token.rootcertbundle (the upstream needs one to start; the
    hostile realm issues no tokens, so nothing is ever signed with its key)."""
    if not shutil.which("openssl"):
        raise SetupError("openssl not found (./setup.sh installs it)")
    cert, key = os.path.join(folder, "root.pem"), os.path.join(folder, "root.key")
    proc = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                           "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=regconform hostile realm"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"openssl could not make the upstream's token root certificate: {proc.stderr.strip()[-200:]}")
    os.remove(key)
    return cert


class HostileUpstreamMirror:
    """Realm, token-auth upstream and mirror as local processes; `mirror_url` is what clients use."""

    def __init__(self, mirror_binary: str | None = None, credentials_via: str = "proxy-config") -> None:
        """`credentials_via`: proxy.username/password ("proxy-config", what token upstreams need) or the
        remote URL's userinfo ("remoteurl": sent to the upstream only, never to a realm)."""
        self.credentials = Credentials("hostile-realm-user", secrets.token_urlsafe(16))
        self.workdir = owned_workdir(HOSTILE_WORKDIR_PREFIX)
        self.realm: HostileRealm | None = None
        self.upstream: ProcessTarget | None = None
        self.mirror: ProcessTarget | None = None
        try:
            self.realm = HostileRealm(self.credentials)
            cert = _root_certificate(self.workdir)
            self.upstream = ProcessTarget({"REGISTRY_AUTH": "token", "REGISTRY_AUTH_TOKEN_REALM": self.realm.realm,
                                           "REGISTRY_AUTH_TOKEN_SERVICE": "regconform-upstream",
                                           "REGISTRY_AUTH_TOKEN_ISSUER": "regconform-hostile-realm",
                                           "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE": cert})
            creds = self.credentials
            if credentials_via == "remoteurl":
                host = self.upstream.url.removeprefix("http://")
                env = {"REGISTRY_PROXY_REMOTEURL": f"http://{creds.username}:{creds.password}@{host}"}
            else:
                env = {"REGISTRY_PROXY_REMOTEURL": self.upstream.url, "REGISTRY_PROXY_USERNAME": creds.username,
                       "REGISTRY_PROXY_PASSWORD": creds.password}
            self.mirror = ProcessTarget(env, binary=mirror_binary)
        except BaseException:
            self.close()
            raise
        self.mirror_url, self.upstream_url, self.realm_url = self.mirror.url, self.upstream.url, self.realm.url
        self.description = f"mirror ({self.mirror.binary}) of a token-auth upstream whose realm is on another origin"

    def close(self) -> None:
        for target in (self.mirror, self.upstream):
            if target is not None:
                target.stop()
        if self.realm is not None:
            self.realm.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
