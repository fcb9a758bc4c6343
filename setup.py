"""Packaging beyond what pyproject.toml can say: the suites, fixture files and schemas live at the top of
the checkout (where people read them) and ship inside the package, so an installed wheel runs as a checkout."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# top-level folder -> the package it becomes inside regconform
SHIPPED_TREES = {"suites": "regconform.suites", "fixtures": "regconform.fixture_files", "schemas": "regconform.schemas"}


def shipped_packages() -> dict[str, str]:
    packages = {}
    for folder, package in SHIPPED_TREES.items():
        for path in [HERE / folder, *sorted(p for p in (HERE / folder).rglob("*") if p.is_dir())]:
            if path.name == "__pycache__" or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(HERE / folder)
            packages[".".join([package, *rel.parts])] = str(path.relative_to(HERE))
    return packages


SHIPPED = shipped_packages()
setup(
    packages=find_packages("src") + list(SHIPPED),
    package_dir={"": "src", **SHIPPED},
    package_data={"regconform": ["profiles/*/*.toml", "reports/templates/*", "allowlists/*.toml",
                                 "clients/node/*.js", "clients/node/package*.json"],
                  **{package: ["*"] for package in SHIPPED}},
)
