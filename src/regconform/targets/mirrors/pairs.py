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
from typing import Any

from regconform.errors import SetupError
from regconform.targets.base import free_port, registry_env, wait_until_ready
from regconform.targets.container import PID_LABEL, RUN_LABEL, ContainerTarget
from regconform.targets.mirrors.routes import SINGLE, Credentials, Route
from regconform.targets.ownership import owned_workdir

UPSTREAM_ALIAS = "upstream"
MIRROR_ALIAS = "mirror"
PROXY_USER = "regconform-proxy"
# The upstream's user: a name found nowhere else (not in repository names), so an answer naming it echoes it.
UPSTREAM_USER = "mirror-upstream-user"
HTPASSWD_IN_CONTAINER = "/auth/htpasswd"
# Where distribution 2.x keeps the proxy's expiry schedule (under the storage root).
SCHEDULER_STATE = "/var/lib/registry/scheduler-state.json"
STORAGE_ROOT = "/var/lib/registry/docker/registry/v2"
VARIANTS = ("open", "auth")
WORKDIR_PREFIX = "regconform-mirror-"
CREDENTIAL_WIRINGS = ("proxy-config", "remoteurl")


class MirrorPair:
    """An upstream and a mirror of it. Subclasses say how (and whether) the upstream can be stopped."""

    mirror_url: str
    upstream_url: str
    variant: str
    description: str
    upstream_credentials: Credentials | None = None
    can_stop_upstream: bool = False
    can_read_cache_state: bool = False
    # How the mirror names the upstream's repositories (routes.Route): the pairs' own mirrors add nothing.
    route_name: str = SINGLE
    prefix: str = ""
    ns: str | None = None

    @property
    def route(self) -> Route:
        return Route(self.route_name, self.upstream_url, self.prefix, self.ns, self.upstream_credentials)

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
        return {"variant": self.variant, "mirror": self.mirror_url, "target": self.description,
                "can_stop_upstream": self.can_stop_upstream, **self.route.describe()}


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
            self.upstream_credentials = Credentials(UPSTREAM_USER, secrets.token_urlsafe(16))
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
    """An existing deployment: a mirror and one of its upstreams (a route), by URL."""

    def __init__(self, mirror_url: str, route: Route, *, variant: str = "external",
                 stop_command: str | None = None, start_command: str | None = None, verify: object = True) -> None:
        self.variant = variant
        self.mirror_url, self.upstream_url = mirror_url.rstrip("/"), route.upstream_url
        self.route_name, self.prefix, self.ns = route.name, route.prefix, route.ns
        via = "".join(f", {k} {v}" for k, v in (("prefix", route.prefix), ("ns", route.ns)) if v)
        self.description = f"mirror at {self.mirror_url} of {self.upstream_url}{via}"
        self.upstream_credentials = route.credentials
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
