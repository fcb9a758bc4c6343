"""A private dockerd and a private containerd, started and removed by the harness.

Neither touches the shared Docker engine: each has its own data-root (containerd: root), exec-root
(state), pid file, socket and temp dir, all inside one owned temp dir (`owned_workdir`, so a run
killed outright has its dir reaped by the next one). Each runs in a private mount namespace
(`unshare --mount --propagation private`): every mount it makes vanishes with it, and dockerd sees
its own `/etc/docker` (so `/etc/docker/certs.d`, which dockerd reads for registry TLS, is ours and
the shared `/etc/docker` is never written).

dockerd gets its OWN bridge (`rc<pid>d<n>`, a /24 of 10.213.0.0/16 not routed on this machine),
created here and deleted on stop; it runs with `iptables`, `ip-masq` and `ip-forward` off, so it
creates no iptables chains and changes no sysctl (it only pulls and pushes, it runs no containers).
containerd runs without CRI, so it has no network at all.

Use:
    with PrivateDockerd(daemon_json={"registry-mirrors": [mirror_url]}) as d:
        d.trust_ca("127.0.0.1:5000", ca_pem_path)          # certs.d/<host:port>/ca.crt
        subprocess.run(["docker", "pull", ref], env=d.cli_env())
    with PrivateContainerd() as c:
        c.write_host("127.0.0.1:5000", scheme="https", ca=ca_pem_path)   # hosts.toml in c.hosts_dir
        subprocess.run(["ctr", "images", "pull", "--hosts-dir", str(c.hosts_dir), ref], env=c.cli_env())

Stopping (also on Ctrl-C and SIGTERM, which the plugin turns into KeyboardInterrupt and so into
`__exit__`/`stop()`): SIGTERM to the daemon's process group, SIGKILL after a bound, then any
process still holding the temp dir in its command line (dockerd's own containerd), the bridge,
and the temp dir. The daemons get PR_SET_PDEATHSIG, so a harness killed by SIGKILL takes them along.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from regconform.errors import SetupError
from regconform.targets.ownership import owned_workdir, pid_alive
from regconform.targets.process import _die_with_parent

DOCKERD_PREFIX = "regconform-dockerd-"
CONTAINERD_PREFIX = "regconform-ctrd-"
BRIDGE_RE = re.compile(r"^rc(\d+)d(\d+)$")
SUBNETS = ipaddress.ip_network("10.213.0.0/16")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
NAMESPACE = "regconform"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=check)


def _tail(path: Path, limit: int = 600) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _bridges() -> list[str]:
    return [p.name for p in Path("/sys/class/net").iterdir() if (p / "bridge").is_dir()]


def reap_bridges() -> None:
    """Delete bridges of this kind whose owning process (pid in the name) is gone."""
    for name in _bridges():
        m = BRIDGE_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            _run("ip", "link", "del", name, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    used = []
    for line in _run("ip", "-4", "-o", "addr", "show").stdout.splitlines() + _run("ip", "-4", "route", "show").stdout.splitlines():
        for word in line.split():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    start = os.getpid() % 256
    for i in range(256):
        net = list(SUBNETS.subnets(new_prefix=24))[(start + i) % 256]
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise SetupError("no free /24 in 10.213.0.0/16 for a private dockerd bridge")


def _holders(root: str) -> list[int]:
    """Processes whose command line names `root` (the daemon's own children, e.g. dockerd's containerd)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if root.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class _PrivateDaemon:
    """What both daemons share: an owned temp dir, a process in a private mount namespace, bounded stop."""

    prefix = ""
    binary = ""
    install_hint = ""

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this daemon cannot be started here (None: it can)."""
        if shutil.which(cls.binary) is None or shutil.which("unshare") is None:
            return f"{cls.binary} (and util-linux unshare) needed for a private daemon: {cls.install_hint}"
        if os.geteuid() != 0:
            return f"a private {cls.binary} needs root (it runs in a mount namespace of its own)"
        return None

    def __init__(self) -> None:
        if reason := self.unavailable():
            raise SetupError(reason)
        self.binary_path = shutil.which(self.binary)
        self.root = Path(owned_workdir(self.prefix))
        self.root.chmod(0o700)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "daemon.log"

    def _spawn(self, argv: list[str], binds: list[tuple[Path, str]] = ()) -> None:
        script = "".join(f'mount --bind "{src}" "{dst}" && ' for src, dst in binds) + 'exec "$@"'
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")}
        env["TMPDIR"] = str(self.root / "tmp")
        (self.root / "tmp").mkdir(exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                         start_new_session=True, preexec_fn=_die_with_parent())

    def _wait_ready(self, ready) -> None:  # noqa: ANN001 - a () -> bool
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SetupError(f"private {self.binary} exited with {self.proc.returncode}: {_tail(self.log_path)}")
            if ready():
                return
            time.sleep(0.2)
        raise SetupError(f"private {self.binary} not ready after {START_TIMEOUT:.0f}s: {_tail(self.log_path)}")

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        for pid in _holders(str(self.root)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while _holders(str(self.root)) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _remove_root(self) -> None:
        # The mount namespace died with the daemon; unmount anyway whatever leaked into ours (never expected).
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            point = line.split()[4]
            if point.startswith(str(self.root)):
                _run("umount", "-l", point, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            self._remove_root()

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def version(self) -> str:
        out = _run(self.binary_path, "--version", check=False).stdout.strip()
        return out.splitlines()[0] if out else "unknown"


class PrivateDockerd(_PrivateDaemon):
    """A dockerd of the harness's own; `cli_env()` is the environment for the `docker` CLI.

    `daemon_json`: extra daemon.json keys (e.g. `registry-mirrors`, `insecure-registries`); the keys
    that keep the daemon private (data-root, exec-root, pidfile, hosts, bridge, iptables...) win.
    """

    prefix = DOCKERD_PREFIX
    binary = "dockerd"
    install_hint = "apt-get install docker.io (./setup.sh installs it)"

    def __init__(self, daemon_json: dict[str, object] | None = None, storage_driver: str = "vfs") -> None:
        super().__init__()
        reap_bridges()
        self.bridge = ""
        try:
            self.socket = self.root / "docker.sock"
            self.etc = self.root / "etc"  # bound over /etc/docker inside the daemon's mount namespace
            self.certs_dir = self.etc / "certs.d"
            self.certs_dir.mkdir(parents=True)
            self.config_dir = self.root / "cli"  # DOCKER_CONFIG of the CLI: auth lives here, mode 0600
            self.config_dir.mkdir(mode=0o700)
            (self.config_dir / "config.json").write_text("{}")
            self.bridge, self.subnet = self._make_bridge()
            config = {
                **(daemon_json or {}),
                "data-root": str(self.root / "data"),
                "exec-root": str(self.root / "exec"),
                "pidfile": str(self.root / "dockerd.pid"),
                "hosts": [f"unix://{self.socket}"],
                "bridge": self.bridge,
                "iptables": False,
                "ip6tables": False,
                "ip-masq": False,
                "ip-forward": False,
                "storage-driver": storage_driver,
                "containerd-namespace": NAMESPACE,
                "containerd-plugins-namespace": NAMESPACE + "-plugins",
            }
            self.config_file = self.root / "daemon.json"
            self.config_file.write_text(json.dumps(config, indent=2))
            self._spawn([self.binary_path, "--config-file", str(self.config_file)], binds=[(self.etc, "/etc/docker")])
            self._wait_ready(self._answers)
        except BaseException:
            self.stop()
            raise

    def _make_bridge(self) -> tuple[str, ipaddress.IPv4Network]:
        n = 0
        while f"rc{os.getpid()}d{n}" in _bridges():
            n += 1
        name = f"rc{os.getpid()}d{n}"
        if len(name) > 15:
            raise SetupError(f"bridge name {name} longer than 15 characters")
        subnet = _free_subnet()
        _run("ip", "link", "add", "name", name, "type", "bridge")
        self.bridge = name  # from here on stop() deletes it
        _run("ip", "addr", "add", f"{subnet.network_address + 1}/{subnet.prefixlen}", "dev", name)
        _run("ip", "link", "set", name, "up")
        return name, subnet

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=self.cli_env(),
                              capture_output=True, text=True, timeout=20)
        return proc.returncode == 0

    def cli_env(self) -> dict[str, str]:
        """Environment for the docker CLI: this daemon, the private DOCKER_CONFIG, nothing inherited that points elsewhere."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return {**env, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.config_dir)}

    def trust_ca(self, host: str, ca_pem: Path) -> None:
        """dockerd verifies `host` (host:port) with this CA: certs.d/<host>/ca.crt (read per pull/push)."""
        folder = self.certs_dir / host
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca_pem, folder / "ca.crt")

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if getattr(self, "bridge", ""):
                _run("ip", "link", "del", self.bridge, check=False)
                self.bridge = ""


class PrivateContainerd(_PrivateDaemon):
    """A containerd of the harness's own (no CRI, so no network); `cli_env()` is the environment for `ctr`.

    `hosts_dir` is for `ctr --hosts-dir` (containerd's hosts.toml: TLS CA, mirrors, headers); write it with `write_host`.
    """

    prefix = CONTAINERD_PREFIX
    binary = "containerd"
    install_hint = "apt-get install containerd (comes with docker.io; ./setup.sh installs it)"

    def __init__(self, snapshotter: str = "native") -> None:
        super().__init__()
        try:
            self.socket = self.root / "containerd.sock"
            self.hosts_dir = self.root / "hosts"
            self.hosts_dir.mkdir(mode=0o700)
            self.snapshotter = snapshotter
            config = "\n".join([
                "version = 2",
                f'root = "{self.root / "root"}"',
                f'state = "{self.root / "state"}"',
                'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",'
                ' "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",'
                ' "io.containerd.snapshotter.v1.devmapper"]',
                "[grpc]", f'  address = "{self.socket}"',
                "[ttrpc]", f'  address = "{self.socket}.ttrpc"',
                "[debug]", '  address = ""',
                "[metrics]", '  address = ""',
                '[plugins."io.containerd.internal.v1.opt"]', f'  path = "{self.root / "opt"}"',
                "",
            ])
            self.config_file = self.root / "config.toml"
            self.config_file.write_text(config)
            self._spawn([self.binary_path, "--config", str(self.config_file)])
            self._wait_ready(self._answers)
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        return subprocess.run(["ctr", "version"], env=self.cli_env(), capture_output=True, timeout=20).returncode == 0

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
        return {**env, "CONTAINERD_ADDRESS": str(self.socket), "CONTAINERD_NAMESPACE": NAMESPACE,
                "CONTAINERD_SNAPSHOTTER": self.snapshotter}

    def write_host(self, host: str, *, scheme: str = "https", ca: Path | None = None, skip_verify: bool = False,
                   headers: dict[str, str] | None = None, mirrors: list[str] = ()) -> Path:
        """hosts_dir/<host>/hosts.toml (containerd's registry host config), mode 0600 (headers may hold credentials).

        `mirrors`: base URLs tried before the registry itself (for pulls through a mirror).
        """
        folder = self.hosts_dir / host
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines = [f'server = "{scheme}://{host}"', ""]
        for url in [*mirrors, f"{scheme}://{host}"]:
            lines.append(f'[host."{url}"]')
            lines.append('  capabilities = ["pull", "resolve"]' if url in mirrors else '  capabilities = ["pull", "resolve", "push"]')
            if ca is not None:
                shutil.copyfile(ca, folder / "ca.pem")
                lines.append(f'  ca = "{folder / "ca.pem"}"')
            if skip_verify:
                lines.append("  skip_verify = true")
            if headers:
                lines.append(f'  [host."{url}".header]')
                lines += [f"    {json.dumps(k)} = {json.dumps(v)}" for k, v in headers.items()]
            lines.append("")
        path = folder / "hosts.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines))
        return path


__all__ = ["PrivateDockerd", "PrivateContainerd", "reap_bridges", "NAMESPACE"]
