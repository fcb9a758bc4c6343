"""An embedded registry as a local process (the registry binary run directly)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable

from regconform.errors import SetupError
from regconform.targets.base import GcResult, Target, free_port, wait_until_ready
from regconform.targets.ownership import owned_workdir

PROCESS_WORKDIR_PREFIX = "regconform-registry-"


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: a preexec hook that has the kernel send SIGTERM to the registry when the harness dies,
    even by SIGKILL (a killed run can tear nothing down; a container is reaped later, a process not).

    prctl is looked up here, in the parent: the hook itself only makes the call (fork-safe enough).
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return hook


def terminate_group(proc: subprocess.Popen[bytes] | None, grace: float = 5) -> None:
    """SIGTERM the process group of a child started with start_new_session, SIGKILL after `grace` seconds."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class ProcessTarget(Target):
    """The registry binary run directly (Debian's docker-registry or any `registry` on PATH)."""

    can_gc = True
    can_restart = True

    def __init__(self, env: dict[str, str], binary: str | None = None, storage: str | None = None) -> None:
        """`binary`: any distribution-compatible registry (--registry-binary); default Debian's docker-registry.
        `storage`: an existing root directory to serve (kept on stop; an upgrade starts the next version on it)."""
        from regconform.targets.imagebuild import (
            CONFIG,
            inspect_binary,
            registry_binary,
        )

        found = binary or registry_binary()
        if not found:
            raise SetupError("no registry binary on PATH for --backend process: install Debian's docker-registry (./setup.sh does)")
        named = inspect_binary(found) if binary else None  # a binary the user names is checked and named
        self.binary = found
        self.config = str(CONFIG)
        self.workdir = owned_workdir(PROCESS_WORKDIR_PREFIX)
        port = free_port()
        self.proc_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
            **env,
            "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": storage or os.path.join(self.workdir, "data"),
        }
        what = f"{named.label} ({found})" if named else found
        super().__init__(url=f"http://127.0.0.1:{port}", description=f"process {what}", env=dict(env))
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.log = open(os.path.join(self.workdir, "registry.log"), "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([self.binary, "serve", self.config], env=self.proc_env,
                                     stdout=self.log, stderr=self.log, start_new_session=True,
                                     preexec_fn=_die_with_parent())
        wait_until_ready(self.url)

    def _terminate(self) -> None:
        terminate_group(self.proc)
        if getattr(self, "log", None):
            self.log.close()

    def garbage_collect(self, delete_untagged: bool = False) -> GcResult:
        argv = [self.binary, "garbage-collect", self.config]
        if delete_untagged:
            argv.append("--delete-untagged")
        proc = subprocess.run(argv, env=self.proc_env, capture_output=True, text=True)
        return GcResult(proc.returncode, proc.stdout + proc.stderr)

    def restart(self) -> None:
        self._terminate()
        self._start()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)
