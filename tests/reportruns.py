"""`regconform` command runs for the report and diff self-tests (a subprocess each, like a user).

SUBSET: checks with fully deterministic exchanges (fixture pushes, a delete by tag, tag lists,
the version check), so two runs of one registry must give the same behaviour.json.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from suiterun import REPO, clean_env

SUBSET = ("test_api_version_check or test_delete_manifest_by_tag_is_rejected "
          "or test_tags_list_names_every_pushed_tag")


def regconform(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "regconform.cli", *args], cwd=REPO, input=stdin, text=True,
                          capture_output=True, env=clean_env(env), timeout=timeout)


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return (proc.stdout[-4000:] + "\n" + proc.stderr[-3000:]).strip()


def write_strict_profile(folder: Path) -> Path:
    """A profile that expects 201 from GET /v2/: the version check deviates, everything else as 2.8."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.toml").write_text('name = "strict-base"\nextends = "distribution-2.8"\n')
    (folder / "base.toml").write_text('[checks."base.api-version"]\nstatus = 201\n'
                                      'headers = { "docker-distribution-api-version" = "registry/2.0" }\n')
    return folder


__all__ = ["SUBSET", "regconform", "output", "write_strict_profile", "REPO"]
