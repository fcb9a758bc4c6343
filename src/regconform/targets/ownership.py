"""Temporary directories owned by a process, so those of runs killed outright can be removed later."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile


def owned_workdir(prefix: str) -> str:
    """A temporary directory named after its owning process, after removing those of dead owners."""
    reap_owned_workdirs(prefix)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def reap_owned_workdirs(prefix: str) -> None:
    """Remove directories a run killed outright left behind (the owner's pid is in the name)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*")):
        pid = os.path.basename(path)[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
