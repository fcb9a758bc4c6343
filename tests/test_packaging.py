"""Installed like any pytest plugin and CLI: a wheel in a fresh virtual environment runs as the checkout does.

The wheel is built from this checkout and installed (with its dependencies, nothing else) into a new venv;
every command then runs from a directory outside the checkout, so nothing can come from the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from suiterun import REPO, clean_env, read_records

from regconform import __version__
from regconform.content.images import fixture_set, push_fixture_set
from regconform.registry.client import RegistryClient
from regconform.targets import registry_env
from regconform.targets.engine import docker_client
from regconform.targets.imagebuild import resolve_registry_image
from regconform.targets.mirrors.pairs import EmbeddedMirror
from regconform.targets.process import ProcessTarget

pytestmark = pytest.mark.selftest_slow

SELECTION = "test_pull or test_base or tags_list"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding only the built wheel and its dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(root / "dist"), str(REPO)], check=True, capture_output=True, text=True)
    wheels = list((root / "dist").glob("regconform-*.whl"))
    assert [w.name for w in wheels] == [f"regconform-{__version__}-py3-none-any.whl"]
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    proc = subprocess.run([str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check",
                           "-c", str(REPO / "constraints.txt"), str(wheels[0])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return bin_dir


def run_installed(bin_dir: Path, *argv: str, cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=cwd, env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    target = ProcessTarget(registry_env(True))
    try:
        yield target.url
    finally:
        target.stop()


def outcomes(report_dir: Path) -> dict[str, str]:
    return {cid: rec["outcome"] for cid, rec in read_records(report_dir).items()}


def test_the_wheel_carries_suites_profiles_templates_and_fixture_files(installed: Path) -> None:
    site = next((installed.parent / "lib").glob("python3*/site-packages"))
    package = site / "regconform"
    for shipped in ("suites/test_pull.py", "suites/mirror/conftest.py", "profiles/distribution-2.8/profile.toml",
                    "reports/templates/report.html.j2", "fixture_files/registry/config.yml",
                    "fixture_files/tokenissuer/issuer.py", "schemas/behaviour.schema.json"):
        assert (package / shipped).is_file(), shipped
    version = run_installed(installed, "regconform", "--version", cwd=site.parent)
    assert version.stdout.strip() == f"regconform {__version__}"


def test_run_from_the_wheel_matches_the_checkout(installed: Path, registry_url: str, tmp_path: Path) -> None:
    """`regconform run --registry-url` from the wheel: the same checks, the same outcomes as from the checkout."""
    args = ["run", f"--registry-url={registry_url}", "-k", SELECTION]
    wheel = run_installed(installed, "regconform", *args, f"--report-dir={tmp_path / 'wheel'}", cwd=tmp_path)
    assert wheel.returncode == 0, wheel.stdout[-3000:] + wheel.stderr[-2000:]
    checkout = subprocess.run([sys.executable, "-m", "regconform.cli", *args, f"--report-dir={tmp_path / 'checkout'}"],
                              cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert checkout.returncode == 0, checkout.stdout[-3000:]
    from_wheel, from_checkout = outcomes(tmp_path / "wheel"), outcomes(tmp_path / "checkout")
    assert from_wheel == from_checkout and len(from_wheel) > 20
    doc = json.loads((tmp_path / "wheel" / "behaviour.json").read_text())
    assert doc["harness"] == __version__  # the version of one place (regconform.__version__) in every report
    assert f"regconform {__version__}" in (tmp_path / "wheel" / "summary.md").read_text()


def test_mirror_gate_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    """`regconform mirror --mirror-url … --upstream-url …` from the wheel: the outcomes of the checkout."""
    image = resolve_registry_image(docker_client(), os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    pair = EmbeddedMirror(image, f"selftest-wheel-{uuid.uuid4().hex[:8]}", "open")
    try:
        with RegistryClient(pair.upstream_url) as upstream:
            push_fixture_set(upstream, "selftest-wheel/app", fixture_set("docker"))
        args = ["mirror", f"--mirror-url={pair.mirror_url}", f"--upstream-url={pair.upstream_url}",
                "--image", "selftest-wheel/app:v1"]
        wheel = run_installed(installed, "regconform", *args, f"--report-dir={tmp_path / 'wheel'}", cwd=tmp_path)
        checkout = subprocess.run([sys.executable, "-m", "regconform.cli", *args,
                                   f"--report-dir={tmp_path / 'checkout'}"],
                                  cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=600)
    finally:
        pair.close()
    assert wheel.returncode == 0, wheel.stdout[-3000:] + wheel.stderr[-2000:]
    assert checkout.returncode == 0, checkout.stdout[-3000:]
    from_wheel = outcomes(tmp_path / "wheel")
    assert from_wheel == outcomes(tmp_path / "checkout")
    assert [o for cid, o in from_wheel.items() if "test_named_image_served_as_upstream" in cid] == ["passed"]


def test_own_checks_use_the_plugin_fixtures(installed: Path, registry_url: str, tmp_path: Path) -> None:
    """The pytest11 entry point: a team's test file (examples/own-checks) gets `registry`, `pushed`, `expect`."""
    example = tmp_path / "own-checks"  # a copy: nothing of the checkout (its conftest.py) is near
    shutil.copytree(REPO / "examples" / "own-checks", example)
    run = run_installed(installed, "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", str(example),
                        f"--profile={example / 'team-profile'}", f"--registry-url={registry_url}",
                        f"--report-dir={tmp_path / 'r'}", f"--rootdir={example}", cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "4 passed" in run.stdout  # two checks x two fixture formats (docker, oci)
    records = read_records(tmp_path / "r")
    assert {rec["workflow"] for rec in records.values()} == {"team"}
    assert all("team.manifest-by-digest" in rec["expectations"] or "team.tag-limit" in rec["expectations"]
               for rec in records.values())


def test_listing_into_a_closed_pipe_is_quiet(installed: Path, tmp_path: Path) -> None:
    """`regconform profiles | head -1`: one line, exit 0, nothing on stderr."""
    proc = subprocess.run(f"set -o pipefail; {installed / 'regconform'} profiles | head -1", shell=True,
                          executable="/bin/bash", cwd=tmp_path, capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1 and proc.stderr == "", proc
