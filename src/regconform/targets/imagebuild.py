"""The one image builder: a registry image made locally from a registry binary.

By default the binary is Debian's docker-registry (distribution 2.8.2), standing in for registry:2:
this machine cannot pull from Docker Hub, and the harness never tries unless asked (--pull): a pull
attempt is traffic to a public address. Any distribution-compatible binary (--registry-binary: a
patched build, a fork, distribution v3) makes an image the same way, named after what it holds:
`regconform/registry:<version>-<sha12>` (version from `binary --version`, the first 12 hex digits
of the binary's sha256). The image mirrors the upstream one: the binary at /bin/registry, the
upstream default config at /etc/docker/registry/config.yml, port 5000, storage at
/var/lib/registry, `registry garbage-collect` reachable by `docker exec`. A dynamically linked
binary brings the libraries `ldd` names; a static one (Go with CGO_ENABLED=0) needs none.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from regconform.errors import SetupError
from regconform.resources import REGISTRY_CONFIG

UPSTREAM_IMAGE = "registry:2"
LOCAL_IMAGE = "regconform/registry:2.8.2-debian"
IMAGE_REPOSITORY = "regconform/registry"
CONFIG = REGISTRY_CONFIG
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


VERSION_TIMEOUT = 10.0
VERSION_OUTPUT_LIMIT = 4096  # bytes of `--version` output read; the rest is not looked at
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class RegistryBinary:
    """A registry binary as the harness names it: path, what `--version` says, and its sha256."""

    path: str
    version_line: str  # first line of `--version` without argv[0]: printable, at most 200 characters
    version: str  # the line's last word, made tag-safe: "v3.1.1", "2.8.2-ds1"
    sha256: str

    @property
    def image(self) -> str:
        """The image made from it, named after what it holds."""
        return f"{IMAGE_REPOSITORY}:{self.version}-{self.sha256[:12]}"

    @property
    def label(self) -> str:
        """What a report calls it (stable across runs and machines: no path)."""
        return f"registry binary {self.version} sha256:{self.sha256[:12]}"


def _version_output(path: str) -> tuple[int, str]:
    """`path --version`: exit code and at most VERSION_OUTPUT_LIMIT bytes of output, within VERSION_TIMEOUT."""
    try:
        proc = subprocess.Popen([path, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise SetupError(f"--registry-binary {path!r} cannot be run: {exc.strerror}") from None
    try:
        assert proc.stdout is not None
        out = proc.stdout.read(VERSION_OUTPUT_LIMIT)
        code = proc.wait(VERSION_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise SetupError(f"--registry-binary {path!r}: `--version` did not finish within {VERSION_TIMEOUT:.0f} s") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    return code, out.decode("ascii", errors="replace")


def inspect_binary(path: str) -> RegistryBinary:
    """Check that `path` is a registry binary (it runs and answers `--version`) and name it."""
    if not os.path.isfile(path):
        raise SetupError(f"--registry-binary {path!r} is not a file")
    if not os.access(path, os.X_OK):
        raise SetupError(f"--registry-binary {path!r} is not executable (chmod +x it)")
    code, out = _version_output(path)
    first = "".join(c for c in (out.splitlines() or [""])[0] if c.isprintable())[:200].strip()
    words = first.split()
    # distribution prints "<argv0> <Go module path> <version>", e.g. "registry github.com/distribution/distribution/v3 v3.1.1"
    if code != 0 or len(words) < 3 or "/" not in words[1]:
        raise SetupError(f"--registry-binary {path!r} is not a registry binary: `--version` exited {code} "
                         f"with {first[:80]!r} (a distribution registry prints '<name> <module> <version>')")
    version = _TAG_UNSAFE.sub("-", words[-1]).strip(".-")[:60] or "unknown"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return RegistryBinary(os.path.abspath(path), " ".join(words[1:]), version, digest.hexdigest())


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
        # A static binary (ldd names nothing) needs no libc; a dynamic one its libraries and loader.
        if libs := _shared_libraries(binary):
            for lib in sorted(set(libs) | {f for f in RUNTIME_FILES if Path(f).exists()}):
                tar.add(str(Path(lib).resolve()), arcname=lib.lstrip("/"))
        tar.add(str(CONFIG), arcname="etc/docker/registry/config.yml")
    return buf.getvalue()


def build_local_image(client: docker.DockerClient, tag: str = LOCAL_IMAGE) -> str:
    """registry:2's stand-in, from Debian's docker-registry."""
    binary = inspect_binary(ensure_registry_binary())
    return _import_image(client, binary, tag, f"Debian docker-registry: {binary.version_line}")


def image_for_binary(client: docker.DockerClient, path: str) -> str:
    """The image made from a registry binary (built once; its name says which binary it holds)."""
    binary = inspect_binary(path)
    try:
        client.images.get(binary.image)
        return binary.image
    except ImageNotFound:
        return _import_image(client, binary, binary.image, binary.version_line)


def _import_image(client: docker.DockerClient, binary: RegistryBinary, tag: str, source: str) -> str:
    """`docker import` a rootfs holding the registry binary, its libraries if any, and the upstream config."""
    changes = [
        'ENTRYPOINT ["/bin/registry"]',
        'CMD ["serve", "/etc/docker/registry/config.yml"]',
        "ENV PATH=/bin",
        "EXPOSE 5000",
        "VOLUME /var/lib/registry",
        f'LABEL org.regconform.source="{source.replace(chr(34), "")}"',
        f"LABEL org.regconform.binary-sha256={binary.sha256}",
    ]
    args = ["docker", "import", *sum((["--change", c] for c in changes), []), "-", tag]
    proc = subprocess.run(args, input=_rootfs_tar(binary.path), capture_output=True)
    if proc.returncode != 0:
        raise SetupError(f"docker import of {tag} failed: {proc.stderr.decode().strip()}")
    client.images.get(tag)
    return tag


def resolve_registry_image(client: docker.DockerClient, requested: str, *, pull: bool = False,
                           binary: str | None = None) -> str:
    """The image to run: the one made from `binary` (--registry-binary) if given; else the requested
    one if present (or pulled when allowed), else the local build."""
    if binary:
        return image_for_binary(client, binary)
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
