"""No container outlives a run: passing, failing, interrupted (SIGINT, SIGTERM) or killed (SIGKILL).

Each run is a real subprocess (`regconform run` or `pytest suites`) with the docker backend and a
run id of our choosing (REGCONFORM_RUN_ID), so `docker ps -a --filter label=org.regconform.run=<id>`
finds exactly its containers. A killed run cannot clean up after itself: its containers carry the
owner's pid and are reaped by `regconform cleanup` or by the next run's start.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from suiterun import REPO, clean_env
from suiterun import run_containers as containers

from regconform.targets.container import PID_LABEL, RUN_LABEL
from regconform.targets.process import PROCESS_WORKDIR_PREFIX

pytestmark = pytest.mark.selftest_slow

# A selection that runs long enough to be interrupted while checks (and private registries) are busy.
LONG_SELECTION = ["-k", "content_management or garbage_collection or test_pull"]


def container_pids(ids: list[str]) -> list[str]:
    if not ids:
        return []
    out = subprocess.run(["docker", "inspect", "-f", f'{{{{index .Config.Labels "{PID_LABEL}"}}}}', *ids],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


# What each test started, so that a test failing half-way still leaves nothing behind.
_RUN_IDS: list[str] = []
_PROCS: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _leave_nothing_behind() -> Iterator[None]:
    yield
    for proc in _PROCS:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for run_id in _RUN_IDS:
        if left := containers(run_id):
            subprocess.run(["docker", "rm", "-f", "-v", *left], capture_output=True)
        if nets := networks(run_id):
            subprocess.run(["docker", "network", "rm", *nets], capture_output=True)
    _PROCS.clear()
    _RUN_IDS.clear()


def new_run_id() -> str:
    _RUN_IDS.append(f"selftest-cleanup-{uuid.uuid4().hex[:8]}")
    return _RUN_IDS[-1]


def regconform_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "regconform.cli", *args]


def pytest_suites_argv(report_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q", f"--report-dir={report_dir}", *args]


def start(argv: list[str], run_id: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:  # a file, not a pipe: a blocked pipe would stall the run under test
        proc = subprocess.Popen(argv, cwd=REPO, env=clean_env({"REGCONFORM_RUN_ID": run_id}), stdout=out,
                                stderr=subprocess.STDOUT)
    _PROCS.append(proc)
    return proc


def wait_for_container(run_id: str, proc: subprocess.Popen[bytes], log: Path, *, running: bool,
                       timeout: float = 120) -> list[str]:
    """Until the run has a container (and, with running=True, that container is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before it started a container:\n{log.read_text()[-2000:]}"
        found = containers(run_id)
        if found and not running:
            return found
        if found:
            state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", *found], capture_output=True,
                                   text=True).stdout.split()
            if "true" in state:
                return found
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no container of run {run_id} within {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the run did not end within {timeout:.0f} s of its signal:\n{log.read_text()[-2000:]}") from None


def networks(run_id: str) -> list[str]:
    out = subprocess.run(["docker", "network", "ls", "-q", "--filter", f"label={RUN_LABEL}={run_id}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def assert_no_containers(run_id: str, log: Path) -> None:
    """Neither containers nor networks (mirror topologies) of the run are left; any found are removed."""
    left, nets = containers(run_id), networks(run_id)
    if left:
        subprocess.run(["docker", "rm", "-f", "-v", *left], capture_output=True)
    if nets:
        subprocess.run(["docker", "network", "rm", *nets], capture_output=True)
    assert not left and not nets, f"run {run_id} left containers {left}, networks {nets}:\n{log.read_text()[-3000:]}"


def test_passing_run_removes_its_containers(tmp_path):
    """`regconform run` that passes (exit 0): nothing left."""
    run_id, log = new_run_id(), tmp_path / "run.log"
    proc = start(regconform_argv("run", "--report-dir", str(tmp_path / "reports"), "-k", "tags_list_names_every_pushed_tag"),
                 run_id, log)
    assert finish(proc, log) == 0, log.read_text()[-3000:]
    assert "passed" in log.read_text()
    assert_no_containers(run_id, log)


def test_failing_run_removes_its_containers(tmp_path):
    """A run whose checks deviate (deletion disabled, profile expects 202) exits 1 and leaves nothing."""
    run_id, log = new_run_id(), tmp_path / "run.log"
    proc = start(regconform_argv("run", "--report-dir", str(tmp_path / "reports"),
                                 "--registry-env", "REGISTRY_STORAGE_DELETE_ENABLED=false",
                                 "-k", "delete_manifest_by_digest or every_delete_is_refused"), run_id, log)
    assert finish(proc, log) == 1, log.read_text()[-3000:]
    assert "failed" in log.read_text()
    assert_no_containers(run_id, log)


MIRROR_SELECTION = ["-k", "mirror"]  # an upstream and a pull-through mirror on a private network


@pytest.mark.parametrize(("how", "sig", "running", "selection"), [
    ("regconform-run-sigint", signal.SIGINT, True, LONG_SELECTION),
    ("pytest-suites-sigterm", signal.SIGTERM, True, LONG_SELECTION),
    ("regconform-run-sigint-while-starting", signal.SIGINT, False, LONG_SELECTION),
    ("pytest-suites-sigint-mirror", signal.SIGINT, True, MIRROR_SELECTION),
], ids=lambda v: v if isinstance(v, str) else "")
def test_interrupted_run_removes_its_containers(tmp_path, how, sig, running, selection):
    """Ctrl-C or SIGTERM while checks run (or while the registry starts): the run unwinds and removes its containers."""
    run_id, log = new_run_id(), tmp_path / "run.log"
    if how.startswith("pytest"):
        argv = pytest_suites_argv(tmp_path / "reports", *selection)
    else:
        argv = regconform_argv("run", "--report-dir", str(tmp_path / "reports"), *selection)
    proc = start(argv, run_id, log)
    wait_for_container(run_id, proc, log, running=running)
    if selection is MIRROR_SELECTION:
        assert networks(run_id), "the mirror pair runs on a network of its own, labelled with the run"
    if running:
        time.sleep(1.5)  # let checks get going (pushes, private registries)
    proc.send_signal(sig)
    code = finish(proc, log)
    assert code != 0, f"an interrupted run must not exit 0:\n{log.read_text()[-2000:]}"
    if how.startswith("regconform"):
        assert code == 2, f"`regconform run` interrupted: exit 2 expected, got {code}"
    assert_no_containers(run_id, log)


@pytest.mark.parametrize("reaper", ["regconform-cleanup", "next-run"])
def test_killed_run_containers_are_reaped(tmp_path, reaper):
    """SIGKILL leaves the container behind (owner pid dead); `regconform cleanup` or the next run's start removes it."""
    run_id, log = new_run_id(), tmp_path / "run.log"
    proc = start(pytest_suites_argv(tmp_path / "reports", *LONG_SELECTION), run_id, log)
    found = wait_for_container(run_id, proc, log, running=True)
    proc.kill()
    proc.wait(30)
    assert container_pids(found) == [str(proc.pid)] * len(found)
    assert containers(run_id), "SIGKILL cannot clean up; the container should still be there"
    if reaper == "regconform-cleanup":
        done = subprocess.run(regconform_argv("cleanup"), cwd=REPO, env=clean_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "removed" in done.stdout
    else:  # any later run reaps when it starts its first registry (merely loading the plugin touches no Docker)
        done = subprocess.run(pytest_suites_argv(tmp_path / "reports2", "-k", "test_api_version_check"), cwd=REPO,
                              env=clean_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_no_containers(run_id, log)
    assert not os.path.exists(f"/proc/{proc.pid}/status") or proc.returncode is not None


def registry_children(pid: int) -> list[int]:
    """Registry processes (`... serve <config>`) whose parent is pid."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()]
    return [int(r[0]) for r in rows if len(r) == 3 and r[1] == str(pid) and " serve " in f" {r[2]} "]


def running(pid: int) -> bool:
    """Alive and not a zombie (a zombie is dead, waiting for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_killed_process_backend_run_leaves_no_registry_process(tmp_path):
    """SIGKILL of a --backend process run: the kernel stops its registry process too (PR_SET_PDEATHSIG)."""
    log = tmp_path / "run.log"
    proc = start(pytest_suites_argv(tmp_path / "reports", "--backend", "process", *LONG_SELECTION), new_run_id(), log)
    deadline = time.monotonic() + 120
    while not (children := registry_children(proc.pid)):
        assert proc.poll() is None and time.monotonic() < deadline, f"no registry process appeared:\n{log.read_text()[-2000:]}"
        time.sleep(0.05)
    proc.kill()
    proc.wait(30)
    deadline = time.monotonic() + 15  # the registry shuts down gracefully on SIGTERM
    while alive := [p for p in children if running(p)]:
        if time.monotonic() > deadline:
            for p in alive:
                os.kill(p, signal.SIGKILL)
            raise AssertionError(f"registry process(es) {alive} outlived the killed run")
        time.sleep(0.1)
    # What the dead run kept on disk (its registry storage) goes with the next `regconform cleanup`.
    leftovers = glob.glob(os.path.join(tempfile.gettempdir(), f"{PROCESS_WORKDIR_PREFIX}{proc.pid}-*"))
    assert leftovers, "the killed run's storage directory should carry its pid"
    done = subprocess.run(regconform_argv("cleanup"), cwd=REPO, env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not any(os.path.exists(p) for p in leftovers), f"regconform cleanup left {leftovers}"
