"""The one image builder: registry:2 made locally from Debian's docker-registry (distribution 2.8.2).

This machine cannot pull from Docker Hub, and the harness never tries unless asked (--pull):
a pull attempt is traffic to a public address. The image mirrors the upstream one: the binary
at /bin/registry, the upstream default config at /etc/docker/registry/config.yml, port 5000,
storage at /var/lib/registry, `registry garbage-collect` reachable by `docker exec`.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from regconform.errors import SetupError

UPSTREAM_IMAGE = "registry:2"
LOCAL_IMAGE = "regconform/registry:2.8.2-debian"
CONFIG = Path(__file__).resolve().parents[2] / "fixtures" / "registry" / "config.yml"
RUNTIME_FILES = ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")


def registry_binary() -> str | None:
    """Debian names it docker-registry; upstream builds name it registry."""
    return shutil.which("docker-registry") or shutil.which("registry")


def ensure_registry_binary() -> str:
    if binary := registry_binary():
        return binary
    subprocess.run(["apt-get", "install", "-y", "-qq", "docker-registry"], check=True, stdout=subprocess.DEVNULL)
    if binary := registry_binary():
        return binary
    raise SetupError("Debian's docker-registry package did not provide a registry binary")


def _shared_libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts and parts[0].startswith("/") else None
        if path and path.startswith("/"):
            libs.append(path)
    return libs


def _rootfs_tar(binary: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for d in ("bin", "etc", "etc/docker", "etc/docker/registry", "lib", "lib/x86_64-linux-gnu",
                  "lib64", "var", "var/lib", "var/lib/registry"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        tar.add(binary, arcname="bin/registry")
        for lib in sorted(set(_shared_libraries(binary)) | {f for f in RUNTIME_FILES if Path(f).exists()}):
            tar.add(str(Path(lib).resolve()), arcname=lib.lstrip("/"))
        tar.add(str(CONFIG), arcname="etc/docker/registry/config.yml")
    return buf.getvalue()


def build_local_image(client: docker.DockerClient, tag: str = LOCAL_IMAGE) -> str:
    """`docker import` a rootfs holding the registry binary, its libc and the upstream config."""
    binary = ensure_registry_binary()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    changes = [
        'ENTRYPOINT ["/bin/registry"]',
        'CMD ["serve", "/etc/docker/registry/config.yml"]',
        "ENV PATH=/bin",
        "EXPOSE 5000",
        "VOLUME /var/lib/registry",
        f'LABEL org.regconform.source="Debian docker-registry: {version}"',
    ]
    args = ["docker", "import", *sum((["--change", c] for c in changes), []), "-", tag]
    proc = subprocess.run(args, input=_rootfs_tar(binary), capture_output=True)
    if proc.returncode != 0:
        raise SetupError(f"docker import of {tag} failed: {proc.stderr.decode().strip()}")
    client.images.get(tag)
    return tag


def resolve_registry_image(client: docker.DockerClient, requested: str, *, pull: bool = False) -> str:
    """The image to run: the requested one if present (or pulled when allowed), else the local build."""
    try:
        client.images.get(requested)
        return requested
    except ImageNotFound:
        pass
    if pull:
        try:
            client.images.pull(requested)
            return requested
        except docker.errors.APIError as exc:
            if requested != UPSTREAM_IMAGE:
                raise SetupError(f"image {requested} is not present and could not be pulled: {exc.explanation}") from None
    if requested not in (UPSTREAM_IMAGE, LOCAL_IMAGE):
        raise SetupError(f"image {requested} is not present locally (pass --pull to pull it)")
    try:
        client.images.get(LOCAL_IMAGE)
        return LOCAL_IMAGE
    except ImageNotFound:
        return build_local_image(client)
