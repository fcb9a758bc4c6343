"""The pytest plugin: options (from the one table in options.py), markers, and the modules that hold
the fixtures (fixtures.py) and the behaviour record (reports/recording.py).

Loaded by the repository's conftest.py and by `regconform run` (`-p regconform.plugin`).
Every option also reads an environment variable (REGCONFORM_<NAME>), so CI files stay short.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from regconform import options
from regconform.content.images import FORMATS
from regconform.settings import (
    SETTINGS,
    raise_keyboard_interrupt,
    settings_from_config,
)

pytest_plugins = ["regconform.fixtures", "regconform.fixtures_gc", "regconform.reports.recording"]

MARKERS = [
    "workflow(name): the Distribution API workflow a check belongs to (pull, push, content-discovery, ...)",
    "spec(section): the spec section (OCI distribution-spec or Docker Registry API V2) a check verifies",
    "needs_gc: the check runs garbage collection and restarts the registry (the worker's GC registry, or the external one)",
    "readonly: the check only reads `pushed`, so it shares one push per worker and format (writes to it are refused)",
]



def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_to_pytest(parser.getgroup("regconform", "registry conformance"))


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[SETTINGS] = settings_from_config(config)
    # Ctrl-C and SIGTERM both unwind through fixture teardown, which removes the containers.
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, raise_keyboard_interrupt)


def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the controller's run id (one namespace, one report)."""
    node.workerinput["regconform_run_id"] = node.config.stash[SETTINGS].run_id


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fmt" in metafunc.fixturenames:
        metafunc.parametrize("fmt", FORMATS, ids=list(FORMATS))
