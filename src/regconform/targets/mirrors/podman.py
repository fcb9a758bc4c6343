"""podman pulling through a mirror the way its users configure one: a registries.conf `[[registry.mirror]]`.

Isolated: its own registries.conf (CONTAINERS_REGISTRIES_CONF), storage root, run root and tmp dir
(vfs driver) under one temporary directory (removed on close, or by `regconform cleanup` after a killed run), no auth file but an empty one, no search registries. The
image's source registry is a name under .invalid whose `location` is 127.0.0.1:9, where nothing
answers: when the mirror fails there is nowhere else to get the image from (podman's fallback from a
mirror to the primary location cannot succeed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from regconform.errors import SetupError
from regconform.targets.ownership import owned_workdir

NOWHERE = "127.0.0.1:9"  # the discard port: nothing listens (the primary location podman falls back to)
TIMEOUT = 300
PODMAN_WORKDIR_PREFIX = "regconform-podman-"


@dataclass(frozen=True)
class PullResult:
    returncode: int
    stderr: str  # last lines only; podman prints no secrets (no credentials are configured)
    digest: str | None  # the manifest digest podman recorded for the reference (the index's, for an index)
    config: str | None  # the image ID as a digest: that of the platform image's config blob
    used_mirror: bool  # podman's debug log names the mirror location it fetched from


class PodmanThroughMirror:
    """podman with a registries.conf whose only way to `source` is the mirror at `mirror` (host:port[/path])."""

    def __init__(self, source: str, mirror: str, *, insecure: bool) -> None:
        self.binary = shutil.which("podman")
        if not self.binary:
            raise SetupError("podman not found (./setup.sh installs Debian's podman)")
        # Short: podman refuses a run root longer than 50 characters. The owner's pid is in the name.
        self.workdir = workdir = Path(owned_workdir(PODMAN_WORKDIR_PREFIX))
        self.source, self.mirror = source, mirror
        conf = workdir / "registries.conf"
        conf.write_text(
            "unqualified-search-registries = []\n\n"
            "[[registry]]\n"
            f'prefix = "{source}"\n'
            f'location = "{NOWHERE}"\n'
            "insecure = true\n\n"
            "[[registry.mirror]]\n"
            f'location = "{mirror}"\n'
            f"insecure = {'true' if insecure else 'false'}\n")
        (workdir / "auth.json").write_text("{}")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
                    "CONTAINERS_REGISTRIES_CONF": str(conf), "REGISTRY_AUTH_FILE": str(workdir / "auth.json"),
                    "TMPDIR": str(workdir / "tmp")}
        (workdir / "tmp").mkdir(exist_ok=True)

    def _podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.binary is not None
        argv = [self.binary, "--root", str(self.workdir / "storage"), "--runroot", str(self.workdir / "run"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none", *args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=TIMEOUT)

    def pull(self, reference: str, arch: str | None = None) -> PullResult:
        """`podman pull source/reference`, then the digest podman recorded for it."""
        ref = f"{self.source}/{reference}"
        extra = ["--arch", arch] if arch else []
        proc = self._podman("--log-level=debug", "pull", "--quiet", *extra, ref)
        digest = config = None
        if proc.returncode == 0:
            inspect = self._podman("image", "inspect", ref)
            if inspect.returncode == 0 and len(inspect.stdout) < 1 << 20:
                found = json.loads(inspect.stdout or "[]")
                if found and isinstance(found[0], dict):
                    digest, image_id = found[0].get("Digest"), found[0].get("Id")
                    config = f"sha256:{image_id}" if image_id else None
        used = f'"{self.mirror}' in proc.stderr or f"{self.mirror}/" in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if "level=debug" not in line]
        return PullResult(proc.returncode, "\n".join(lines[-5:])[-600:], digest, config, used)

    def close(self) -> None:
        self._podman("rmi", "--all", "--force")
        shutil.rmtree(self.workdir, ignore_errors=True)
