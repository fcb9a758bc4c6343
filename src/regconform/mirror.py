"""Mirror (pull-through cache) deployments: an upstream registry and a mirror in front of it.

Two kinds of pair:

- `EmbeddedMirror`: testcontainers starts two real registries on a private Docker network: the
  upstream (deletion enabled) and a mirror whose `proxy.remoteurl` (REGISTRY_PROXY_REMOTEURL) points
  at the upstream's network alias. Variant "auth": the upstream requires basic auth (bcrypt
  htpasswd file, mounted read-only) and the mirror holds the credentials, either as
  proxy.username/password ("proxy-config") or in the remote URL's userinfo ("remoteurl"): which one
  a registry family honours for a basic-auth upstream is a profile fact (`mirror.upstream-auth`).
  Both are published on 127.0.0.1 only; containers and network are removed on close, also when
  start-up fails half-way.
- `ExternalMirror`: a deployment addressed by URL (the CI gate). The upstream can only be stopped
  through commands the user gives explicitly.

The fixtures are pushed to the upstream only; the mirror is only ever read (and probed with writes it
must refuse).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from regconform.checks import Deviation, expect_answer, expect_equal
from regconform.client import sha256_digest
from regconform.errors import SetupError
from regconform.profiles import Expectation
from regconform.targets import (PID_LABEL, RUN_LABEL, ContainerTarget, free_port, owned_workdir, registry_env,
                                wait_until_ready)

UPSTREAM_ALIAS = "upstream"
MIRROR_ALIAS = "mirror"
PROXY_USER = "regconform-proxy"
HTPASSWD_IN_CONTAINER = "/auth/htpasswd"
# Where distribution 2.x keeps the proxy's expiry schedule (under the storage root).
SCHEDULER_STATE = "/var/lib/registry/scheduler-state.json"
STORAGE_ROOT = "/var/lib/registry/docker/registry/v2"
VARIANTS = ("open", "auth")
WORKDIR_PREFIX = "regconform-mirror-"
CREDENTIAL_WIRINGS = ("proxy-config", "remoteurl")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class MirrorPair:
    """An upstream and a mirror of it. Subclasses say how (and whether) the upstream can be stopped."""

    mirror_url: str
    upstream_url: str
    variant: str
    description: str
    upstream_credentials: Credentials | None = None
    can_stop_upstream: bool = False
    can_read_cache_state: bool = False

    def stop_upstream(self) -> None:
        raise SetupError(f"{self.description}: cannot stop the upstream")

    def start_upstream(self) -> None:
        raise SetupError(f"{self.description}: cannot start the upstream")

    def cache_state(self) -> dict[str, Any] | None:
        """The mirror's cache expiry schedule, where it can be read (embedded distribution only)."""
        return None

    def holds_blob(self, repo: str, digest: str) -> bool | None:
        """Whether the mirror's storage links the blob into the repository; None where it cannot be seen."""
        return None

    def close(self) -> None:
        """Embedded pairs remove themselves; external ones are left as they are."""

    def info(self) -> dict[str, Any]:
        return {"variant": self.variant, "mirror": self.mirror_url, "upstream": self.upstream_url,
                "target": self.description, "upstream_auth": self.upstream_credentials is not None,
                "can_stop_upstream": self.can_stop_upstream}


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd entry (distribution only accepts bcrypt), made by Apache's htpasswd."""
    if not shutil.which("htpasswd"):
        raise SetupError("htpasswd not found: install apache2-utils (./setup.sh does)")
    proc = subprocess.run(["htpasswd", "-Bbn", username, password], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"htpasswd failed: {proc.stderr.strip()}")
    return proc.stdout.strip() + "\n"


class EmbeddedMirror(MirrorPair):
    """Upstream and mirror registries in containers on a private network of their own."""

    can_stop_upstream = True

    def __init__(self, image: str, run_id: str, variant: str = "open", credentials_via: str = "proxy-config") -> None:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.network import Network

        if variant not in VARIANTS:
            raise SetupError(f"unknown mirror variant {variant!r}; known: {', '.join(VARIANTS)}")
        if credentials_via not in CREDENTIAL_WIRINGS:
            raise SetupError(f"unknown credential wiring {credentials_via!r}; known: {', '.join(CREDENTIAL_WIRINGS)}")
        testcontainers_config.ryuk_disabled = True
        self.variant, self.credentials_via = variant, credentials_via
        via = f", credentials via {credentials_via}" if variant == "auth" else ""
        self.description = f"embedded mirror pair ({variant}{via}) of {image}"
        self.can_read_cache_state = True
        self.upstream: ContainerTarget | None = None
        self.mirror: ContainerTarget | None = None
        # The htpasswd file is bind-mounted, so it lives as long as the pair; the owner's pid in the
        # name lets a later run remove what a killed run left behind.
        self.workdir = owned_workdir(WORKDIR_PREFIX)
        labels = {RUN_LABEL: run_id, PID_LABEL: str(os.getpid())}
        self.network = Network(docker_network_kw={"labels": labels})
        self._network_created = False
        try:
            self.network.create()
            self._network_created = True
            self._start(image, run_id)
        except BaseException:
            self.close()
            raise

    def _start(self, image: str, run_id: str) -> None:
        upstream_env = registry_env(delete_enabled=True)
        mirror_env = registry_env(delete_enabled=True, extra={
            "REGISTRY_PROXY_REMOTEURL": f"http://{UPSTREAM_ALIAS}:5000"})
        volumes: list[tuple[str, str, str]] = []
        if self.variant == "auth":
            self.upstream_credentials = Credentials("regconform", secrets.token_urlsafe(16))
            path = os.path.join(self.workdir, "htpasswd")
            with open(path, "w") as fh:
                fh.write(htpasswd_line(self.upstream_credentials.username, self.upstream_credentials.password))
            os.chmod(path, 0o644)
            os.chmod(self.workdir, 0o755)
            volumes.append((path, HTPASSWD_IN_CONTAINER, "ro"))
            upstream_env.update({"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "regconform-upstream",
                                 "REGISTRY_AUTH_HTPASSWD_PATH": HTPASSWD_IN_CONTAINER})
            creds = self.upstream_credentials
            if self.credentials_via == "remoteurl":
                # Go's HTTP client sends userinfo of the URL as Basic credentials on every request.
                mirror_env["REGISTRY_PROXY_REMOTEURL"] = f"http://{creds.username}:{creds.password}@{UPSTREAM_ALIAS}:5000"
            else:
                mirror_env.update({"REGISTRY_PROXY_USERNAME": creds.username, "REGISTRY_PROXY_PASSWORD": creds.password})
        # A fixed host port: the upstream keeps its URL when it is stopped and started again.
        self.upstream = ContainerTarget(image, upstream_env, run_id, network=self.network, aliases=[UPSTREAM_ALIAS],
                                        volumes=volumes, host_port=free_port())
        self.mirror = ContainerTarget(image, mirror_env, run_id, network=self.network, aliases=[MIRROR_ALIAS])
        self.upstream_url, self.mirror_url = self.upstream.url, self.mirror.url

    def stop_upstream(self) -> None:
        assert self.upstream is not None
        self.upstream.stop_upstream()

    def start_upstream(self) -> None:
        assert self.upstream is not None
        self.upstream.start_again()
        self.upstream_url = self.upstream.url  # start_again re-reads the published port

    def _read_file(self, path: str) -> bytes | None:
        """A file out of the mirror container (the image has no shell), None if it does not exist."""
        assert self.mirror is not None
        try:
            stream, _ = self.mirror.container.get_wrapped_container().get_archive(path)
        except Exception:  # noqa: BLE001 - docker answers 404: not there (yet)
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            return member.read() if member else None

    def cache_state(self) -> dict[str, Any] | None:
        data = self._read_file(SCHEDULER_STATE)
        return json.loads(data) if data else None

    def holds_blob(self, repo: str, digest: str) -> bool | None:
        algo, _, hexpart = digest.partition(":")
        return self._read_file(f"{STORAGE_ROOT}/repositories/{repo}/_layers/{algo}/{hexpart}/link") is not None

    def close(self) -> None:
        for target in (self.mirror, self.upstream):
            if target is not None:
                target.stop()
        if self._network_created:
            try:
                self.network.remove()
            except Exception:  # noqa: BLE001 - reaped by the next run's reap_orphans
                pass
            self._network_created = False
        shutil.rmtree(self.workdir, ignore_errors=True)


class ExternalMirror(MirrorPair):
    """An existing deployment: a mirror and its upstream, by URL."""

    def __init__(self, mirror_url: str, upstream_url: str, *, upstream_credentials: Credentials | None = None,
                 stop_command: str | None = None, start_command: str | None = None, verify: object = True) -> None:
        self.variant = "external"
        self.mirror_url, self.upstream_url = mirror_url.rstrip("/"), upstream_url.rstrip("/")
        self.description = f"mirror at {self.mirror_url} of {self.upstream_url}"
        self.upstream_credentials = upstream_credentials
        self.stop_command, self.start_command, self.verify = stop_command, start_command, verify
        self.can_stop_upstream = bool(stop_command and start_command)

    def _run(self, what: str, command: str | None) -> None:
        if not command:
            raise SetupError(f"{self.description}: no {what} given")
        proc = subprocess.run(command, shell=True, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"{what} exited {proc.returncode}: {proc.stderr.strip()[:200]}")

    def stop_upstream(self) -> None:
        self._run("--upstream-stop-command", self.stop_command)

    def start_upstream(self) -> None:
        self._run("--upstream-start-command", self.start_command)
        wait_until_ready(self.upstream_url, verify=self.verify)  # type: ignore[arg-type]


# -- comparisons shared by the mirror checks --------------------------------------------------------


def same_as_upstream(via_mirror: httpx.Response, via_upstream: httpx.Response, exp: Expectation, what: str,
                     digest: str | None = None) -> None:
    """The mirror's answer carries the upstream's bytes, Docker-Content-Digest and media type."""
    expect_answer(via_mirror, exp, f"{what} through the mirror")
    if via_upstream.status_code != 200:
        raise Deviation(f"{what} on the upstream answered {via_upstream.status_code}: cannot compare the mirror with it")
    body = via_mirror.content
    if body != via_upstream.content:
        raise Deviation(f"{what}: the mirror served {len(body)} bytes hashing to {sha256_digest(body)}, the upstream "
                        f"{len(via_upstream.content)} bytes hashing to {sha256_digest(via_upstream.content)} "
                        f"[{exp.profile}: {exp.key}]")
    expect_equal(via_mirror.headers.get("docker-content-digest"), via_upstream.headers.get("docker-content-digest"),
                 exp, f"Docker-Content-Digest of {what}, mirror vs upstream")
    if digest is not None:
        expect_equal(sha256_digest(body), digest, exp, f"sha256 of the bytes the mirror served for {what}")
    if via_upstream.headers.get("content-type", "").startswith("application/vnd."):
        expect_equal(via_mirror.headers.get("content-type"), via_upstream.headers.get("content-type"), exp,
                     f"Content-Type of {what}, mirror vs upstream")


def same_head_as_upstream(via_mirror: httpx.Response, via_upstream: httpx.Response, exp: Expectation, what: str) -> None:
    """A HEAD through the mirror answers the upstream's Docker-Content-Digest and Content-Length."""
    expect_answer(via_mirror, exp, f"{what} through the mirror")
    if via_upstream.status_code != 200:
        raise Deviation(f"{what} on the upstream answered {via_upstream.status_code}: cannot compare the mirror with it")
    for header in ("docker-content-digest", "content-length"):
        expect_equal(via_mirror.headers.get(header), via_upstream.headers.get(header), exp,
                     f"{header} of {what}, mirror vs upstream")


def wait_for(probe: Callable[[], object], timeout: float, interval: float = 0.5) -> object:
    """Poll until probe() returns something truthy (or the timeout passes); returns the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = probe()
    return value


# -- pytest options (registered by regconform.plugin; `regconform mirror` passes them) -----------

MIRROR_OPTIONS: list[tuple[str, str]] = [
    ("--mirror-url", "mirror (pull-through cache) to check, instead of the embedded mirror pair"),
    ("--upstream-url", "the registry the mirror at --mirror-url pulls from"),
    ("--upstream-username", "user for the upstream (password from REGCONFORM_UPSTREAM_PASSWORD)"),
    ("--upstream-stop-command", "shell command that stops the upstream (enables the upstream-down checks)"),
    ("--upstream-start-command", "shell command that starts the upstream again"),
]


def _env(option: str) -> str:
    return "REGCONFORM_" + option.lstrip("-").replace("-", "_").upper()


def add_mirror_options(group: Any) -> None:
    for name, help_text in MIRROR_OPTIONS:
        group.addoption(name, default=os.environ.get(_env(name)), help=f"{help_text} [{_env(name)}]")
    group.addoption("--image", action="append", default=os.environ.get("REGCONFORM_IMAGE", "").split() or None,
                    help="existing image (repo:tag or repo@digest) the mirror must serve as the upstream does; "
                         "repeatable [REGCONFORM_IMAGE, space-separated]")
    group.addoption("--push-fixtures", action="store_true",
                    default=os.environ.get("REGCONFORM_PUSH_FIXTURES", "") not in ("", "0", "false"),
                    help="push fixture images to the upstream (never to the mirror) [REGCONFORM_PUSH_FIXTURES]")


def parse_image_ref(ref: str) -> tuple[str, str]:
    """`repo:tag` or `repo@sha256:...` → (repo, reference). The registry host is given by URL, not here."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


__all__ = ["MirrorPair", "EmbeddedMirror", "ExternalMirror", "Credentials", "parse_image_ref", "VARIANTS",
           "CREDENTIAL_WIRINGS", "add_mirror_options", "same_as_upstream", "same_head_as_upstream", "wait_for"]
