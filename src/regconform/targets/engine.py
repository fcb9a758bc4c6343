"""Finding (and, for setup only, starting) a Docker engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import docker
from docker.errors import DockerException

from regconform.errors import SetupError

DOCKERD_LOG = "/var/log/regconform-dockerd.log"


def docker_client(timeout: int = 120) -> docker.DockerClient:
    """A client for a reachable engine, or a one-line SetupError saying how to get one."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise SetupError(
            f"no Docker engine reachable at {where} ({type(exc).__name__}); run ./setup.sh "
            "(as root it installs docker.io and starts dockerd) or use --backend process"
        ) from None


def engine_reachable() -> bool:
    try:
        docker_client(timeout=5)
        return True
    except SetupError:
        return False


def ensure_engine() -> None:
    """Start Debian's dockerd (vfs storage) when no engine is reachable; never when one is."""
    if engine_reachable():
        return
    if os.geteuid() != 0:
        raise SetupError("no Docker engine is reachable and starting one needs root: run ./setup.sh as root, or start Docker yourself")
    if not shutil.which("dockerd"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "docker.io"], check=True, env=env, stdout=subprocess.DEVNULL)
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.Popen(["dockerd", "--storage-driver=vfs"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine_reachable():
            return
        time.sleep(0.5)
    raise SetupError(f"dockerd did not become reachable within 60 s; see {DOCKERD_LOG}")
