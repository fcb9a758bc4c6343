"""What every real client shares: how it reaches the registry, its private workspace, bounded runs.

- `Endpoint`: the registry as the run sees it (URL, credentials, CA, --insecure). Credentials reach
  a client only through files in the workspace (mode 0600) or its stdin, never its argv.
- `Workspace`: a private (0700) temp dir owned by the process (reaped if the run is killed): the
  docker/containers auth file, the CA laid out for `--cert-dir` and docker's certs.d, each client's
  TMPDIR and output. Removed by `close()`.
- `run_bounded`: a client subprocess with a deadline and a cap on what it may write (stdout,
  stderr and the files under its output dir): a hostile registry's endless body kills the client
  rather than filling the disk (issue 11: skopeo wrote 3.2 GB to /tmp in 12 s).
- `Client`: the shared interface (push / pull / inspect / delete / version); one small class per client.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from regconform.registry.digests import sha256_digest
from regconform.targets.ownership import owned_workdir
from regconform.targets.process import _die_with_parent

WORKSPACE_PREFIX = "regconform-clients-"
OUTPUT_CAP = 256 * 1024 * 1024  # what one client run may write (its output dir, TMPDIR, stdout, stderr)
RUN_TIMEOUT = 300.0
EXCERPT = 600


class ClientMissing(Exception):
    """The client is not installed here (the check skips with this reason)."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None
    insecure: bool = False

    @classmethod
    def from_settings(cls, settings, url: str) -> Endpoint:  # noqa: ANN001 - regconform.settings.Settings
        """The run's registry as its clients see it: its credentials, its CA, its --insecure."""
        return cls(url, settings.username, settings.password, Path(settings.ca_cert) if settings.ca_cert else None,
                   settings.insecure)

    @property
    def scheme(self) -> str:
        return httpx.URL(self.url).scheme

    @property
    def host(self) -> str:
        """host:port, the name every client uses for the registry."""
        url = httpx.URL(self.url)
        return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def loopback(self) -> bool:
        host = httpx.URL(self.url).host
        return host in LOOPBACK_HOSTS or host.startswith("127.")

    @property
    def verify(self) -> bool:
        """Whether a client must verify the registry's certificate: always on TLS, unless --insecure."""
        return self.tls and not self.insecure

    def ref(self, repo: str, ref: str) -> str:
        sep = "@" if ref.startswith("sha256:") else ":"
        return f"{self.host}/{repo}{sep}{ref}"

    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()


@dataclass
class RunResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    stopped: str = ""  # why the harness stopped the client ("" if it ended by itself)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.stopped

    def describe(self) -> str:
        why = self.stopped or f"exit {self.returncode}"
        tail = (self.stderr.strip() or self.stdout.strip())[-EXCERPT:]
        return f"`{' '.join(self.argv[:4])} …` {why}: {tail}"


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _read_capped(path: Path, cap: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        return f.read(cap).decode("utf-8", "replace")


def run_bounded(argv: list[str], *, env: dict[str, str], watch: Path, timeout: float = RUN_TIMEOUT,
                cap: int = OUTPUT_CAP, stdin: str | None = None, also: tuple[Path, ...] = ()) -> RunResult:
    """Run a client; kill its process group past `timeout` or once it wrote more than `cap` bytes under
    `watch` plus the growth of `also` (where the client keeps what it pulls: a daemon's data-root, its storage)."""
    watch.mkdir(parents=True, exist_ok=True)
    baseline = sum(_size(p) for p in also)

    def written() -> int:
        return _size(watch) + sum(_size(p) for p in also) - baseline

    out_path, err_path = watch / ".stdout", watch / ".stderr"
    stopped = ""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_parent())
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                stopped = f"stopped by the harness after {timeout:.0f}s"
            elif written() > cap:
                stopped = f"stopped by the harness: wrote more than {cap // (1024 * 1024)} MiB"
            if stopped:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                break
            time.sleep(0.25 if also else 0.05)
        # A client quicker than the polling still went over the cap: the run fails the same way.
        if not stopped and written() > cap:
            stopped = f"stopped by the harness: wrote more than {cap // (1024 * 1024)} MiB"
    result = RunResult(argv, proc.returncode, _read_capped(out_path), _read_capped(err_path), stopped)
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    return result


class Workspace:
    """The clients' private temp dir: auth file, CA layouts, per-client TMPDIR and output."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.root = Path(owned_workdir(WORKSPACE_PREFIX))
        self.root.chmod(0o700)
        self.auth_file = self.root / "auth.json"  # docker config.json / containers auth.json format
        self.write_private(self.auth_file, json.dumps(self.auths()))
        self.cert_dir = self.root / "certs"  # containers --cert-dir: *.crt
        self.cert_dir.mkdir()
        if endpoint.ca is not None:
            shutil.copyfile(endpoint.ca, self.cert_dir / "ca.crt")
        self._n = 0

    def auths(self) -> dict[str, object]:
        if not self.endpoint.username:
            return {"auths": {}}
        return {"auths": {self.endpoint.host: {"auth": self.endpoint.basic()}}}

    @staticmethod
    def write_private(path: Path, text: str) -> Path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def scratch(self, what: str) -> Path:
        """A fresh dir for one client run's output and temp files."""
        self._n += 1
        path = self.root / f"{self._n:03d}-{what}"
        (path / "tmp").mkdir(parents=True)
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Pulled:
    """What a client got: the digest it resolved, and the bytes it exposes (manifests and blobs by digest)."""

    digest: str | None
    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    platform_digest: str | None = None  # the child it picked (when it reports it)
    config_digest: str | None = None  # the config of the image it stored (docker, podman: the image ID)

    def altered(self) -> list[str]:
        """Digests whose bytes do not hash to them."""
        return [d for d, body in {**self.manifests, **self.blobs}.items() if sha256_digest(body) != d]


class ClientFailed(Exception):
    """The client refused or failed; the message quotes it (bounded)."""


class ClientCannot(Exception):
    """A measured limit of the client itself makes this impossible against this endpoint (the check skips, saying so)."""


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Client:
    """One real client. Subclasses set `name` and `binary` and implement what the client can do."""

    # Whether the way the harness gives this client credentials works with the Docker token flow
    # (a static Basic header, say, cannot); where it does not, its checks skip on token-auth registries.
    token_auth = True

    name = ""
    binary = ""
    install = "./setup.sh installs it"

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.endpoint = ws.endpoint

    @classmethod
    def missing(cls) -> str | None:
        """Why this client cannot run here (None: it can)."""
        if cls.binary and shutil.which(cls.binary) is None:
            return f"{cls.binary} is not installed ({cls.install})"
        return None

    def env(self, scratch: Path) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "HOME", "USER", "XDG_RUNTIME_DIR")
        return {**{k: v for k, v in os.environ.items() if k in keep}, "TMPDIR": str(scratch / "tmp")}

    cap = OUTPUT_CAP

    def stores(self) -> tuple[Path, ...]:
        """Where the client keeps what it pulls, outside its scratch dir (counted against `cap` too)."""
        return ()

    def run(self, argv: list[str], scratch: Path, *, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = RUN_TIMEOUT) -> RunResult:
        return run_bounded(argv, env=env or self.env(scratch), watch=scratch, stdin=stdin, timeout=timeout,
                           cap=self.cap, also=self.stores())

    def must(self, result: RunResult) -> RunResult:
        if not result.ok:
            raise ClientFailed(result.describe())
        return result

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "unknown"

    # The interface; a client that lacks one raises NotImplementedError (the matrix shows "n/a").
    def pull(self, repo: str, ref: str, platform: str | None = None) -> Pulled:
        raise NotImplementedError

    def delete(self, repo: str, ref: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the client started (daemons, storage)."""


__all__ = ["Endpoint", "Workspace", "RunResult", "run_bounded", "Pulled", "Client", "ClientFailed", "ClientCannot", "ClientMissing",
           "OUTPUT_CAP", "RUN_TIMEOUT"]
