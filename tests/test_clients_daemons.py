"""The private dockerd and containerd leave nothing behind and never touch the shared engine.

Each test starts real daemons (as root; skipped with the reason otherwise) and checks, after a
clean stop, an interrupted owner (SIGTERM) and a killed owner (SIGKILL, reaped by the next start):
no process, no bridge, no temp dir, no mount, the shared engine's iptables rules and /etc/docker
unchanged.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from regconform.clients.daemons import PrivateContainerd, PrivateDockerd

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("containerd"),
                                reason="private daemons need root, dockerd and containerd (./setup.sh installs them)")


def iptables_rules() -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return sorted(line.split(" [")[0] for line in out.splitlines() if not line.startswith("#"))


def etc_docker() -> list[str]:
    return sorted(str(p) for p in Path("/etc/docker").rglob("*")) if Path("/etc/docker").exists() else []


def leftovers(root: Path, bridge: str) -> list[str]:
    found = []
    if root.exists():
        found.append(f"dir {root}")
    if bridge and Path("/sys/class/net", bridge).exists():
        found.append(f"bridge {bridge}")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(root).encode() in (entry / "cmdline").read_bytes():
                    found.append(f"process {entry.name}")
            except OSError:
                pass
    if str(root) in Path("/proc/self/mountinfo").read_text():
        found.append("mount")
    return found


def test_private_daemons_run_and_leave_nothing():
    rules, etc = iptables_rules(), etc_docker()
    with PrivateDockerd() as dockerd, PrivateContainerd() as containerd:
        info = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], env=dockerd.cli_env(),
                              capture_output=True, text=True, check=True).stdout.strip()
        assert info == str(dockerd.root / "data")
        bridge = dockerd.bridge
        assert Path("/sys/class/net", bridge, "bridge").is_dir()
        assert dockerd.bridge != "docker0"
        assert subprocess.run(["ctr", "version"], env=containerd.cli_env(), capture_output=True).returncode == 0
        assert iptables_rules() == rules, "the private dockerd changed iptables"
        assert etc_docker() == etc, "the private dockerd wrote into the shared /etc/docker"
    assert leftovers(dockerd.root, bridge) == []
    assert leftovers(containerd.root, "") == []


OWNER = textwrap.dedent("""
    import signal, sys
    from regconform.clients.daemons import PrivateDockerd, PrivateContainerd
    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    with PrivateDockerd() as d, PrivateContainerd() as c:
        print(d.root, d.bridge, c.root, flush=True)
        signal.pause()
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_owner_interrupted_or_killed_leaves_nothing(sig):
    proc = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        droot, bridge, croot = proc.stdout.readline().split()
        proc.send_signal(sig)
        proc.wait(60)
        if sig == signal.SIGKILL:  # the daemons die with their owner (pdeathsig); the next start reaps the rest
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any("process" in x for x in leftovers(Path(droot), "")):
                time.sleep(0.2)
            PrivateContainerd().stop()
            PrivateDockerd().stop()
        assert leftovers(Path(droot), bridge) == []
        assert leftovers(Path(croot), "") == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def owned_by(pid: int) -> list[str]:
    """Everything of the clients workflow that names `pid` as its owner: temp dirs, bridges, processes."""
    import glob
    import tempfile

    found = [p for prefix in ("regconform-dockerd-", "regconform-ctrd-", "regconform-clients-")
             for p in glob.glob(os.path.join(tempfile.gettempdir(), f"{prefix}{pid}-*"))]
    found += [f"bridge {n}" for n in os.listdir("/sys/class/net") if n.startswith(f"rc{pid}d")]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"regconform-dockerd-{pid}-".encode() in cmd or f"regconform-ctrd-{pid}-".encode() in cmd:
                found.append(f"process {entry.name}")
    return found


@pytest.mark.selftest_slow
def test_sigterm_during_a_clients_run_leaves_nothing(upstream, tmp_path):
    """SIGTERM while the clients workflow has both private daemons up: the run unwinds and removes all of it."""
    from suiterun import REPO, clean_env

    proc = subprocess.Popen([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q",
                             "-k", "test_client_pulls_fixtures and docker", f"--registry-url={upstream.url}",
                             f"--report-dir={tmp_path / 'report'}"], cwd=REPO, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            up = owned_by(proc.pid)
            if any("regconform-dockerd-" in x for x in up) and any("regconform-ctrd-" in x for x in up):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before both daemons were up"
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        assert owned_by(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
