"""Where the harness finds what it ships besides code: suites, fixture files, schemas, profiles, templates.

In a checkout the suites, fixtures and schemas folders sit at the top (where people read them); an
installed wheel carries them inside the package (setup.py maps them to `regconform.suites`,
`regconform.fixture_files`, `regconform.schemas`). The import system knows which is which.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parents[1]  # only meaningful in a checkout: src/regconform -> the top


def _shipped(package: str, folder: str) -> Path:
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return CHECKOUT / folder  # run from the source tree without installing (PYTHONPATH=src)


SUITES = _shipped("regconform.suites", "suites")
FIXTURES = _shipped("regconform.fixture_files", "fixtures")
SCHEMAS = _shipped("regconform.schemas", "schemas")
PROFILES = PACKAGE / "profiles"
TEMPLATES = PACKAGE / "reports" / "templates"
ALLOWLISTS = PACKAGE / "allowlists"  # known behaviour changes between versions (`regconform upgrade --allow NAME`)
REGISTRY_CONFIG = FIXTURES / "registry" / "config.yml"
BEHAVIOUR_SCHEMA = SCHEMAS / "behaviour.schema.json"


def _project_root() -> Path:
    """The checkout, or for a git worktree (`.git` a file: gitdir: <main>/.git/worktrees/<name>) the main checkout."""
    dot_git = CHECKOUT / ".git"
    if dot_git.is_file():
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text.removeprefix("gitdir:").strip())
            if gitdir.parent.name == "worktrees" and gitdir.parents[1].name == ".git":
                return gitdir.parents[2]
    return CHECKOUT


# Real registry binaries this machine cannot pull as images (README there), found at ../shared/registries
# from the project's root; absent on a fresh clone elsewhere (the tests using them skip).
SHARED_REGISTRIES = _project_root().parent / "shared" / "registries"
