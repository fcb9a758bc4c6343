"""Registries the suites run against: embedded (container or local process) or external (by URL).

Every target is reached through 127.0.0.1 (or the URL the user names). Embedded targets are
started on demand and always removed: by their owner on teardown, and, should a run be killed
outright, by `reap_orphans` on the next start (containers carry the owning pid as a label).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from regconform.errors import SetupError

RUN_LABEL = "org.regconform.run"
PID_LABEL = "org.regconform.owner-pid"
# One value per container: finds a container whose `docker create` was interrupted before its id came back.
TARGET_LABEL = "org.regconform.target"
CONTAINER_PORT = 5000
PROCESS_WORKDIR_PREFIX = "regconform-registry-"
STARTUP_TIMEOUT = 30.0


class CapabilityMissing(Exception):
    """The target cannot do what a check needs (e.g. run garbage collection)."""


@dataclass
class GcResult:
    returncode: int
    output: str


@dataclass
class Target:
    """A registry under test. Subclasses add lifecycle and maintenance operations."""

    url: str
    description: str
    env: dict[str, str] = field(default_factory=dict)

    can_gc = False
    can_restart = False
    # `garbage-collect --delete-untagged` may run: true for registries the harness starts itself.
    can_gc_delete_untagged = True

    def garbage_collect(self, delete_untagged: bool = False) -> GcResult:
        raise CapabilityMissing(f"{self.description}: no way to run garbage collection (give --gc-command)")

    def restart(self) -> None:
        raise CapabilityMissing(f"{self.description}: no way to restart the registry (give --restart-command)")

    def stop(self) -> None:
        """Embedded targets remove themselves; external ones are left as they are."""


def wait_until_ready(url: str, timeout: float = STARTUP_TIMEOUT, verify: bool | str = True) -> None:
    """Poll `GET /v2/` until it answers 200 or 401 (a registry with auth is ready too)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    pause = 0.01
    # One client for every poll (a new one per poll loads the CA bundle each time); short pauses
    # first, since a local registry is usually up within a few tens of milliseconds.
    with httpx.Client(timeout=2, verify=verify) as http:
        while time.monotonic() < deadline:
            try:
                resp = http.get(f"{url}/v2/")
                if resp.status_code in (200, 401):
                    return
                last = f"status {resp.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(pause)
            pause = min(pause * 1.5, 0.2)
    raise SetupError(f"registry at {url} did not answer GET /v2/ within {timeout:.0f} s ({last})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- embedded: a container started by testcontainers ------------------------------------------


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise them (a second one raises at once).

    Interrupted inside `docker create`, the daemon still creates the container but testcontainers
    never learns its id, so nobody would remove it. Only the main thread can install handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if pending:
            raise KeyboardInterrupt(f"signal {signum}")
        pending.append(signum)

    watched = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    previous = {s: signal.signal(s, hold) for s in watched}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if pending and previous[pending[0]] is not signal.SIG_IGN:
        handler = previous[pending[0]]
        if callable(handler):
            handler(pending[0], None)
        raise KeyboardInterrupt(f"signal {pending[0]}")


class ContainerTarget(Target):
    """registry:2 (or the local equivalent) in a container published on 127.0.0.1."""

    can_gc = True
    can_restart = True

    def __init__(self, image: str, env: dict[str, str], run_id: str, *, network: object | None = None,
                 aliases: list[str] | None = None, scheme: str = "http", volumes: list[tuple[str, str, str]] | None = None,
                 verify: bool | str = True, host_port: int | None = None) -> None:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        # Ryuk needs an image that cannot be pulled here; the harness cleans up itself.
        testcontainers_config.ryuk_disabled = True
        self.scheme, self.verify = scheme, verify
        self.target_label = uuid.uuid4().hex
        self.container = DockerContainer(image, labels={RUN_LABEL: run_id, PID_LABEL: str(os.getpid()),
                                                        TARGET_LABEL: self.target_label})
        # Published on loopback only, on a port Docker picks (testcontainers would bind 0.0.0.0);
        # a fixed host_port keeps the URL stable across stop_upstream/start_again.
        self.container.ports[f"{CONTAINER_PORT}/tcp"] = ("127.0.0.1", host_port)  # type: ignore[assignment]
        for key, value in env.items():
            self.container.with_env(key, value)
        for host, bind, mode in volumes or []:
            self.container.with_volume_mapping(host, bind, mode)
        if network is not None:
            self.container.with_network(network).with_network_aliases(*(aliases or []))
        super().__init__(url="", description=f"container {image}", env=dict(env))
        try:
            with signals_deferred():
                self.container.start()
            self._refresh_url()
            wait_until_ready(self.url, verify=verify)
        except BaseException:
            self.stop()
            self._remove_unassigned()
            raise

    def _refresh_url(self) -> None:
        port = self.container.get_docker_client().port(self.container.get_container_id(), CONTAINER_PORT)
        self.url = f"{self.scheme}://127.0.0.1:{port}"

    @property
    def container_id(self) -> str:
        return self.container.get_container_id()

    def exec(self, *argv: str) -> GcResult:
        result = self.container.get_wrapped_container().exec_run(list(argv))
        return GcResult(result.exit_code, result.output.decode(errors="replace"))

    def garbage_collect(self, delete_untagged: bool = False) -> GcResult:
        argv = ["registry", "garbage-collect", "/etc/docker/registry/config.yml"]
        if delete_untagged:
            argv.append("--delete-untagged")
        return self.exec(*argv)

    def restart(self) -> None:
        self.container.get_wrapped_container().restart(timeout=5)
        self._refresh_url()  # the published port may change on restart
        wait_until_ready(self.url, verify=self.verify)

    def stop_upstream(self) -> None:
        """Stop without removing (mirror checks need the upstream to vanish and come back)."""
        self.container.get_wrapped_container().stop(timeout=2)

    def start_again(self) -> None:
        self.container.get_wrapped_container().start()
        self._refresh_url()
        wait_until_ready(self.url, verify=self.verify)

    def stop(self) -> None:
        try:
            self.container.stop(force=True, delete_volume=True)
        except Exception:  # noqa: BLE001 - already gone is fine; orphans are reaped on next start
            pass

    def _remove_unassigned(self) -> None:
        """Remove the container by its own label when testcontainers never got its id (failed `docker create`)."""
        if self.container._container is not None:  # noqa: SLF001 - known: stop() removed it
            return
        from regconform.engine import docker_client

        try:
            for c in docker_client(timeout=30).containers.list(
                    all=True, filters={"label": f"{TARGET_LABEL}={self.target_label}"}):
                c.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - best effort; reap_orphans removes it once this process is gone
            pass


def reap_orphans() -> int:
    """Remove regconform containers whose owning process is gone (a run killed with SIGKILL)."""
    import docker.errors

    from regconform.engine import docker_client

    client = docker_client(timeout=30)
    removed = 0
    # sparse: no inspect per container, which races with other runs removing theirs (404).
    for c in client.containers.list(all=True, filters={"label": PID_LABEL}, sparse=True):
        pid = int((c.attrs.get("Labels") or {}).get(PID_LABEL, "0"))
        if pid and _pid_alive(pid):
            continue
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        removed += 1
    # Networks (mirror topologies) carry the same label; removed once their containers are gone.
    for net in client.networks.list(filters={"label": PID_LABEL}):
        pid = int(net.attrs.get("Labels", {}).get(PID_LABEL, "0"))
        if pid and _pid_alive(pid):
            continue
        try:
            net.remove()
        except Exception:  # noqa: BLE001 - still in use by a foreign container: leave it
            continue
    return removed


def remove_run_containers(run_id: str) -> int:
    from regconform.engine import docker_client

    client = docker_client(timeout=30)
    found = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    for c in found:
        c.remove(force=True, v=True)
    return len(found)


def owned_workdir(prefix: str) -> str:
    """A temporary directory named after its owning process, after removing those of dead owners."""
    reap_owned_workdirs(prefix)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def reap_owned_workdirs(prefix: str) -> None:
    """Remove directories a run killed outright left behind (the owner's pid is in the name)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*")):
        pid = os.path.basename(path)[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# -- embedded: a local registry process --------------------------------------------------------


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: a preexec hook that has the kernel send SIGTERM to the registry when the harness dies,
    even by SIGKILL (a killed run can tear nothing down; a container is reaped later, a process not).

    prctl is looked up here, in the parent: the hook itself only makes the call (fork-safe enough).
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return hook


class ProcessTarget(Target):
    """The registry binary run directly (Debian's docker-registry or any `registry` on PATH)."""

    can_gc = True
    can_restart = True

    def __init__(self, env: dict[str, str], binary: str | None = None) -> None:
        from regconform.imagebuild import CONFIG, registry_binary

        found = binary or registry_binary()
        if not found:
            raise SetupError("no registry binary on PATH for --backend process: install Debian's docker-registry (./setup.sh does)")
        self.binary = found
        self.config = str(CONFIG)
        self.workdir = owned_workdir(PROCESS_WORKDIR_PREFIX)
        port = free_port()
        self.proc_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
            **env,
            "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": os.path.join(self.workdir, "data"),
        }
        super().__init__(url=f"http://127.0.0.1:{port}", description=f"process {found}", env=dict(env))
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.log = open(os.path.join(self.workdir, "registry.log"), "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([self.binary, "serve", self.config], env=self.proc_env,
                                     stdout=self.log, stderr=self.log, start_new_session=True,
                                     preexec_fn=_die_with_parent())
        wait_until_ready(self.url)

    def _terminate(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def garbage_collect(self, delete_untagged: bool = False) -> GcResult:
        argv = [self.binary, "garbage-collect", self.config]
        if delete_untagged:
            argv.append("--delete-untagged")
        proc = subprocess.run(argv, env=self.proc_env, capture_output=True, text=True)
        return GcResult(proc.returncode, proc.stdout + proc.stderr)

    def restart(self) -> None:
        self._terminate()
        self._start()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- external: a registry the user runs ---------------------------------------------------------


class ExternalTarget(Target):
    """A registry named by URL. Maintenance only through commands the user gives explicitly."""

    def __init__(self, url: str, gc_command: str | None = None, restart_command: str | None = None,
                 verify: object = True, gc_delete_untagged: bool = False) -> None:
        super().__init__(url=url.rstrip("/"), description=f"registry at {url}")
        self.gc_command, self.restart_command = gc_command, restart_command
        self.verify = verify  # httpx verify= (bool or ssl.SSLContext), for the readiness poll
        self.can_gc = gc_command is not None
        self.can_restart = restart_command is not None
        # --delete-untagged deletes every untagged manifest of the whole registry (on 2.8 also the
        # images of every multi-arch index), far beyond the run's namespace: only when asked for.
        self.can_gc_delete_untagged = self.can_gc and gc_delete_untagged

    def garbage_collect(self, delete_untagged: bool = False) -> GcResult:
        if not self.gc_command:
            return super().garbage_collect(delete_untagged)
        cmd = self.gc_command + (" --delete-untagged" if delete_untagged else "")
        proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return GcResult(proc.returncode, proc.stdout + proc.stderr)

    def restart(self) -> None:
        if not self.restart_command:
            super().restart()
            return
        proc = subprocess.run(self.restart_command, shell=True, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"--restart-command exited {proc.returncode}: {proc.stderr.strip()[:200]}")
        wait_until_ready(self.url, verify=self.verify)  # type: ignore[arg-type]


def registry_env(delete_enabled: bool = True, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"REGISTRY_STORAGE_DELETE_ENABLED": "true" if delete_enabled else "false"}
    env.update(extra or {})
    return env


def embedded_target(backend: str, image: str, run_id: str, env: dict[str, str]) -> Target:
    if backend == "process":
        return ProcessTarget(env)
    return ContainerTarget(image, env, run_id)


__all__ = ["Target", "ContainerTarget", "ProcessTarget", "ExternalTarget", "GcResult", "CapabilityMissing",
           "reap_orphans", "remove_run_containers", "registry_env", "embedded_target"]
