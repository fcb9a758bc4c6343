"""A registry the user runs, named by URL: maintenance only through commands the user gives."""

from __future__ import annotations

import subprocess

from regconform.errors import SetupError
from regconform.targets.base import GcResult, Target, wait_until_ready


class ExternalTarget(Target):
    """A registry named by URL. Maintenance only through commands the user gives explicitly."""

    def __init__(self, url: str, gc_command: str | None = None, restart_command: str | None = None,
                 verify: object = True, gc_delete_untagged: bool = False) -> None:
        super().__init__(url=url.rstrip("/"), description=f"registry at {url}")
        self.gc_command, self.restart_command = gc_command, restart_command
        self.verify = verify  # httpx verify= (bool or ssl.SSLContext), for the readiness poll
        self.can_gc = gc_command is not None
        self.can_restart = restart_command is not None
        # --delete-untagged deletes every untagged manifest of the whole registry (on 2.8 also the
        # images of every multi-arch index), far beyond the run's namespace: only when asked for.
        self.can_gc_delete_untagged = self.can_gc and gc_delete_untagged

    def garbage_collect(self, delete_untagged: bool = False) -> GcResult:
        if not self.gc_command:
            return super().garbage_collect(delete_untagged)
        cmd = self.gc_command + (" --delete-untagged" if delete_untagged else "")
        proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return GcResult(proc.returncode, proc.stdout + proc.stderr)

    def restart(self) -> None:
        if not self.restart_command:
            super().restart()
            return
        proc = subprocess.run(self.restart_command, shell=True, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"--restart-command exited {proc.returncode}: {proc.stderr.strip()[:200]}")
        wait_until_ready(self.url, verify=self.verify)  # type: ignore[arg-type]
