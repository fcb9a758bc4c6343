"""Real registries with authentication or TLS, for the self-tests: htpasswd, token (with the
fixture token issuer) and HTTPS with a certificate generated per run.

Each is the local registry image in a container published on 127.0.0.1 (ContainerTarget), its
credentials or certificates in a temporary folder mounted read-only; passwords and keys are
generated per run and never appear on a command line.
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fixtures.tokenissuer import Account, TokenIssuer
from regconform.targets.base import registry_env
from regconform.targets.container import ContainerTarget

MOUNT = "/regconform-auth"


def registry_image() -> str:
    from regconform.targets.engine import docker_client
    from regconform.targets.imagebuild import resolve_registry_image

    return resolve_registry_image(docker_client(), "registry:2")


def new_password() -> str:
    return "pw-" + secrets.token_urlsafe(18)


def write_htpasswd(folder: Path, users: dict[str, str]) -> Path:
    """bcrypt entries via `htpasswd -niB` (password on stdin, never in argv)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for user, password in users.items():
        out = subprocess.run(["htpasswd", "-niB", user], input=password, capture_output=True, text=True, check=True)
        lines.append(out.stdout.strip())
    path = folder / "htpasswd"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # give to --ca-cert
    cert: Path
    key: Path


def write_tls(folder: Path) -> TlsFiles:
    """A CA and a server certificate for IP 127.0.0.1 signed by it (openssl, per run)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert, ext = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                             "server.pem", "server.ext"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *argv: subprocess.run(list(argv), check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=regconform test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    for path in (key, cert, ca):
        path.chmod(0o644)  # readable by the registry in the container
    return TlsFiles(ca, cert, key)


def _volume(folder: Path) -> list[tuple[str, str, str]]:
    folder.chmod(0o755)  # the registry in the container reads it
    return [(str(folder), MOUNT, "ro")]


@dataclass
class AuthRegistry:
    target: ContainerTarget
    username: str
    password: str
    issuer: TokenIssuer | None = None
    ca: Path | None = None

    @property
    def url(self) -> str:
        return self.target.url


@contextmanager
def htpasswd_registry(folder: Path, *, tls: bool = False) -> Iterator[AuthRegistry]:
    user, password = "regconform-user", new_password()
    write_htpasswd(folder, {user: password})
    env = registry_env(True, {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "regconform",
                              "REGISTRY_AUTH_HTPASSWD_PATH": f"{MOUNT}/htpasswd"})
    tls_files = None
    if tls:
        tls_files = write_tls(folder)
        env.update(_tls_env())
    target = ContainerTarget(registry_image(), env, f"auth-{uuid.uuid4().hex[:8]}", volumes=_volume(folder),
                             scheme="https" if tls else "http",
                             verify=_context(tls_files.ca) if tls_files else True)
    try:
        yield AuthRegistry(target, user, password, ca=tls_files.ca if tls_files else None)
    finally:
        target.stop()


@contextmanager
def token_registry(folder: Path, *, anonymous_actions: frozenset[str] = frozenset()) -> Iterator[AuthRegistry]:
    """distribution with `auth.token`, a token issuer on 127.0.0.1 with a full user and a pull-only one."""
    user, password = "regconform-user", new_password()
    issuer = TokenIssuer(accounts={user: Account(password), "reader": Account(new_password(), frozenset({"pull"}))},
                         anonymous_actions=anonymous_actions).start()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        issuer.write_bundle(folder)
        env = registry_env(True, issuer.registry_env(f"{MOUNT}/token-root.pem"))
        target = ContainerTarget(registry_image(), env, f"auth-{uuid.uuid4().hex[:8]}", volumes=_volume(folder))
        try:
            yield AuthRegistry(target, user, password, issuer=issuer)
        finally:
            target.stop()
    finally:
        issuer.stop()


@contextmanager
def tls_registry(folder: Path) -> Iterator[AuthRegistry]:
    """HTTPS without auth, serving a certificate for 127.0.0.1 from a CA generated per run."""
    tls_files = write_tls(folder)
    target = ContainerTarget(registry_image(), registry_env(True, _tls_env()), f"tls-{uuid.uuid4().hex[:8]}",
                             volumes=_volume(folder), scheme="https", verify=_context(tls_files.ca))
    try:
        yield AuthRegistry(target, "", "", ca=tls_files.ca)
    finally:
        target.stop()


def _tls_env() -> dict[str, str]:
    return {"REGISTRY_HTTP_TLS_CERTIFICATE": f"{MOUNT}/server.pem", "REGISTRY_HTTP_TLS_KEY": f"{MOUNT}/server.key"}


def _context(ca: Path):  # noqa: ANN202 - ssl.SSLContext
    import ssl

    return ssl.create_default_context(cafile=str(ca))


# -- running regconform as users do: a subprocess, its one-line errors and its reports -----------

REPO_ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without REGCONFORM_* (or outer xdist) settings, plus `extra`."""
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REGCONFORM_", "PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "regconform.cli", "run", *args], cwd=cwd, env=env or clean_env(),
                          input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=timeout)


def run_pytest(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", *args], cwd=cwd,
                          env=env or clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def outcomes(report_dir: Path) -> dict[str, dict[str, object]]:
    """Check id → record (outcome, reason, ...) from the run's behaviour.json."""
    import json

    doc = json.loads((report_dir / "behaviour.json").read_text())
    return {c["id"]: c for c in doc["checks"]}


def leaked(secrets_: list[str], report_dir: Path, *outputs: str) -> list[str]:
    """Where any of the secrets appears: report files (by name) or the process output."""
    found = []
    for path in sorted(p for p in report_dir.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        found += [f"{path.name}: secret #{i}" for i, s in enumerate(secrets_) if s in text]
    for n, out in enumerate(outputs):
        found += [f"output {n}: secret #{i}" for i, s in enumerate(secrets_) if s in out]
    return found
