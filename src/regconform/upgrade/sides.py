"""The two versions of an embedded upgrade, started one after the other on the same storage.

A side is a registry binary (process backend: the storage is a directory) or an image (docker
backend: the storage is a Docker volume, labelled with the owning pid). Both sides get the same
`REGISTRY_HTTP_SECRET`, as any multi-instance or upgraded deployment must: a registry without one
makes up a random secret at every start, and an upload's signed `_state` would not survive.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from regconform.errors import SetupError
from regconform.targets.base import Target, registry_env

UPGRADE_WORKDIR_PREFIX = "regconform-upgrade-"
STORAGE_MOUNT = "/var/lib/registry"


@dataclass(frozen=True)
class Side:
    """`--from` / `--to`: a registry binary (a path to an executable) or an image name. A binary runs as a
    process (`--backend process`) or in an image built from it (`--backend docker`, the default)."""

    spec: str
    backend: str = "process"

    @property
    def is_binary(self) -> bool:
        return "/" in self.spec and Path(self.spec).is_file()

    @property
    def in_process(self) -> bool:
        return self.is_binary and self.backend == "process"

    @property
    def label(self) -> str:
        """`registry-v3.1.1 (github.com/distribution/distribution/v3 v3.1.1)`: the name and what --version says."""
        name = Path(self.spec).name if self.is_binary else self.spec
        version = self.version().split(" ", 1)[-1] if self.is_binary else ""
        return f"{name} ({version})" if version else name

    def version(self) -> str:
        return self._version

    @cached_property
    def _version(self) -> str:
        """What `registry --version` prints (first line, bounded), or '' when it cannot be run."""
        try:
            if self.is_binary:
                out = subprocess.run([self.spec, "--version"], capture_output=True, text=True, timeout=20).stdout
            else:
                from regconform.targets.container import PID_LABEL
                from regconform.targets.engine import docker_client

                out = docker_client().containers.run(self.resolved_image(), ["--version"], remove=True,
                                                     labels={PID_LABEL: str(os.getpid())}).decode(errors="replace")
        except Exception:  # noqa: BLE001 - a version is a label; the run itself will say what is wrong
            return ""
        return out.strip().splitlines()[0][:200] if out.strip() else ""

    def default_profile(self) -> str:
        """distribution-3 for a v3 registry, else distribution-2.8 (the versions the profiles record)."""
        match = re.search(r"\bv?(\d+)\.(\d+)\.\d+", self.version())
        return "distribution-3" if match and int(match[1]) >= 3 else "distribution-2.8"

    def resolved_image(self) -> str:
        """The image to run: the one named, or the one built from the binary (the one image builder)."""
        from regconform.targets.engine import docker_client
        from regconform.targets.imagebuild import resolve_registry_image

        if self.is_binary:
            return resolve_registry_image(docker_client(), self.spec, binary=self.spec)
        return resolve_registry_image(docker_client(), self.spec)

    def suite_arguments(self) -> list[str]:
        """How `regconform run` starts a fresh registry of this version."""
        if self.in_process:
            return ["--backend", "process", "--registry-binary", str(Path(self.spec).resolve())]
        if self.is_binary:
            return ["--backend", "docker", "--registry-binary", str(Path(self.spec).resolve())]
        return ["--backend", "docker", "--registry-image", self.spec]


def check_sides(old: Side, new: Side) -> None:
    for flag, side in (("--from", old), ("--to", new)):
        if "/" in side.spec and Path(side.spec).exists() and not os.access(side.spec, os.X_OK):
            raise SetupError(f"{flag} {side.spec}: not an executable registry binary")
        if side.spec.startswith((".", "/")) and not Path(side.spec).exists():
            raise SetupError(f"{flag} {side.spec}: no such file")
        if side.backend == "process" and not side.is_binary:
            raise SetupError(f"{flag} {side.spec}: an image runs on --backend docker; the process backend needs a "
                             "registry binary")


class SharedStorage:
    """The storage both versions serve: a directory (binaries) or a Docker volume (images). Removed on close."""

    def __init__(self, binaries: bool, run_id: str) -> None:
        from regconform.targets.ownership import owned_workdir

        self.binaries = binaries
        self.run_id = run_id
        self.workdir = owned_workdir(UPGRADE_WORKDIR_PREFIX)
        self.path = os.path.join(self.workdir, "storage")
        self.secret = uuid.uuid4().hex
        self.volume: str | None = None
        if binaries:
            os.mkdir(self.path)
        else:
            from regconform.targets.container import PID_LABEL, RUN_LABEL
            from regconform.targets.engine import docker_client

            self.volume = f"regconform-upgrade-{uuid.uuid4().hex[:12]}"
            docker_client().volumes.create(self.volume, labels={RUN_LABEL: run_id, PID_LABEL: str(os.getpid())})

    def start(self, side: Side) -> Target:
        env = registry_env(True, {"REGISTRY_HTTP_SECRET": self.secret})
        if self.binaries:
            from regconform.targets.process import ProcessTarget

            return ProcessTarget(env, binary=side.spec, storage=self.path)
        from regconform.targets.base import free_port
        from regconform.targets.container import ContainerTarget

        # A fixed host port: the client keeps its URL across the restart after garbage collection.
        return ContainerTarget(side.resolved_image(), env, self.run_id, volumes=[(str(self.volume), STORAGE_MOUNT, "rw")],
                               host_port=free_port())

    def close(self) -> None:
        if self.volume:
            from regconform.targets.engine import docker_client

            try:
                docker_client().volumes.get(self.volume).remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def collect_garbage(target: Target) -> tuple[int, str]:
    """GC on the running target, then a restart (2.8 caches blob descriptors in memory): exit code, one line."""
    result = target.garbage_collect()
    target.restart()
    deleted = sum(1 for line in result.output.splitlines() if "blob eligible for deletion" in line)
    return result.returncode, f"garbage-collect exited {result.returncode}; it named {deleted} blob(s) eligible for deletion"
