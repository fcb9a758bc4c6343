"""An embedded registry in a container (testcontainers), and the reaping of containers killed runs left."""

from __future__ import annotations

import os
import uuid

from regconform.errors import SetupError
from regconform.targets.base import GcResult, Target, signals_deferred, wait_until_ready
from regconform.targets.ownership import pid_alive

RUN_LABEL = "org.regconform.run"
PID_LABEL = "org.regconform.owner-pid"
# One value per container: finds a container whose `docker create` was interrupted before its id came back.
TARGET_LABEL = "org.regconform.target"
CONTAINER_PORT = 5000


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
        try:
            port = self.container.get_docker_client().port(self.container.get_container_id(), CONTAINER_PORT)
        except ConnectionError:  # no published port: the registry in it exited at once
            raise SetupError(f"the registry container of {self.description.removeprefix('container ')} exited at "
                             f"start: {self._last_log_line()}") from None
        self.url = f"{self.scheme}://127.0.0.1:{port}"

    def _last_log_line(self) -> str:
        """The container's last log line, bounded and printable (it is the registry's own output)."""
        try:
            logs = self.container.get_wrapped_container().logs(tail=1)
        except Exception:  # noqa: BLE001 - already gone: say so rather than fail again
            return "no log"
        line = "".join(c for c in logs.decode(errors="replace").strip() if c.isprintable())
        return repr(line[:200]) if line else "no log"

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
        from regconform.targets.engine import docker_client

        try:
            for c in docker_client(timeout=30).containers.list(
                    all=True, filters={"label": f"{TARGET_LABEL}={self.target_label}"}):
                c.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - best effort; reap_orphans removes it once this process is gone
            pass


def reap_orphans() -> int:
    """Remove regconform containers whose owning process is gone (a run killed with SIGKILL)."""
    import docker.errors

    from regconform.targets.engine import docker_client

    client = docker_client(timeout=30)
    removed = 0
    # sparse: no inspect per container, which races with other runs removing theirs (404).
    for c in client.containers.list(all=True, filters={"label": PID_LABEL}, sparse=True):
        pid = int((c.attrs.get("Labels") or {}).get(PID_LABEL, "0"))
        if pid and pid_alive(pid):
            continue
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        removed += 1
    # Networks (mirror topologies) carry the same label; removed once their containers are gone.
    for net in client.networks.list(filters={"label": PID_LABEL}):
        pid = int(net.attrs.get("Labels", {}).get(PID_LABEL, "0"))
        if pid and pid_alive(pid):
            continue
        try:
            net.remove()
        except Exception:  # noqa: BLE001 - still in use by a foreign container: leave it
            continue
    return removed


def remove_run_containers(run_id: str) -> int:
    from regconform.targets.engine import docker_client

    client = docker_client(timeout=30)
    found = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    for c in found:
        c.remove(force=True, v=True)
    return len(found)
