"""distribution v3.1.1 behaves as `--profile distribution-3` records, the whole suite: on the process
backend (`--registry-binary`) and as a docker image the one image builder makes from the same binary
(issue 12). Needs ../shared/registries/registry-v3.1.1 beside the checkout; skips with that reason
where it is absent, so a fresh clone elsewhere still passes.

One full run per backend (-n 2): these are the two runs CI makes of v3.1.1, about 70 s each.
"""

from __future__ import annotations

import json
import sys
import uuid

import pytest
from suiterun import run_command, run_containers

from regconform.errors import SetupError
from regconform.profiles import load_profile
from regconform.resources import SHARED_REGISTRIES
from regconform.targets import imagebuild

V3 = SHARED_REGISTRIES / "registry-v3.1.1"
V3_SHA256 = "26b2ae139892cd84d4c488350f8e1ca02d6ae2423e0779eaf6e0cf32a18b73d3"  # ../shared/registries/README.md

pytestmark = [pytest.mark.selftest_slow,
              pytest.mark.skipif(not V3.is_file(), reason=f"{V3} is absent (distribution v3.1.1 from ../shared/registries)")]


# The workflow files whose every expectation a `run` exercises deterministically; mirror.toml belongs to
# `regconform mirror`, upgrade.toml to `regconform upgrade`, stateful.toml to random sequences, and some
# oci-main keys only apply once another answer allows them.
RUN_FILES = ("content-discovery", "content-management", "errors", "garbage-collection", "pull", "push",
             "referrers", "kinds")


def own_keys(profile: str) -> set[str]:
    """The expectations a profile writes itself (not inherited) in the RUN_FILES."""
    import tomllib
    from pathlib import Path

    folder = Path(load_profile(profile).source)
    return {key for name in RUN_FILES if (folder / f"{name}.toml").is_file()
            for key in tomllib.loads((folder / f"{name}.toml").read_text()).get("checks", {})}


def test_binary_is_named_by_version_and_digest_and_its_image_holds_no_libc():
    binary = imagebuild.inspect_binary(str(V3))
    assert (binary.version, binary.sha256) == ("v3.1.1", V3_SHA256)
    assert binary.image == "regconform/registry:v3.1.1-26b2ae139892"
    assert binary.version_line == "github.com/distribution/distribution/v3 v3.1.1"  # argv[0] (a local path) left out
    import io
    import tarfile

    names = tarfile.open(fileobj=io.BytesIO(imagebuild._rootfs_tar(binary.path))).getnames()
    assert "bin/registry" in names and "etc/docker/registry/config.yml" in names
    assert not [n for n in names if n.startswith(("lib/", "lib64/")) and not n.endswith(("lib", "x86_64-linux-gnu", "lib64"))], names


def test_a_binary_that_is_no_registry_is_refused_in_one_line():
    with pytest.raises(SetupError, match=r"is not a registry binary: `--version` exited 0 with 'true"):
        imagebuild.inspect_binary("/bin/true")


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_distribution_3_profile_holds_on_v3_1_1(backend, tmp_path):
    """The whole suite against v3.1.1 exits 0; every expectation distribution-3 writes itself was exercised and held."""
    run_id = f"v3-{uuid.uuid4().hex[:8]}"
    run = run_command([sys.executable, "-m", "regconform.cli", "run", "--profile", "distribution-3", "--backend", backend,
                       "--registry-binary", str(V3), "--report-dir", str(tmp_path), "-n", "2"],
                      report_dir=tmp_path, extra_env={"REGCONFORM_RUN_ID": run_id}, timeout=900)
    assert run.returncode == 0, run.tail()
    assert run.records and not run.failed_ids(), run.tail()
    target = json.loads((tmp_path / "behaviour.json").read_text())["target"]
    if backend == "docker":
        assert target["target"] == "container regconform/registry:v3.1.1-26b2ae139892", target
        assert run_containers(run_id) == []  # the run removed what it started
    else:
        assert target["target"].startswith("process registry binary v3.1.1 sha256:26b2ae139892"), target
    assert target["registry"] == ("regconform/registry:v3.1.1-26b2ae139892" if backend == "docker"
                                  else "registry binary v3.1.1 sha256:26b2ae139892"), target
    # Every own expectation of the RUN_FILES ran and held (passed, or confirmed as unsupported), none was only skipped.
    exercised: dict[str, set[str]] = {}
    for rec in run.records.values():
        for key in rec.get("expectations", {}):
            exercised.setdefault(key, set()).add(rec["outcome"])
    wanted = own_keys("distribution-3")
    assert wanted <= set(exercised), sorted(wanted - set(exercised))
    assert all(exercised[k] <= {"passed", "unsupported"} for k in wanted), {k: exercised[k] for k in wanted}


def test_compare_runs_offline_against_the_image_built_from_v3_1_1(tmp_path):
    """`compare --image registry:2 --image <built from v3.1.1>` needs no pull: both images are local, and the diff
    names what v3.1.1 answers differently (one check, to keep it short)."""
    from regconform.targets.engine import docker_client

    image = imagebuild.image_for_binary(docker_client(), str(V3))
    run = run_command([sys.executable, "-m", "regconform.cli", "compare", "--image", "registry:2", "--image", image,
                       "-k", "upload-id-invalid", "--report-dir", str(tmp_path)], report_dir=tmp_path, timeout=600)
    assert run.returncode == 1, run.tail()  # a blocking change, not a setup error (2)
    diff = (tmp_path / "diff.txt").read_text()
    assert f"NEW {image}" in diff, diff[:400]
    assert "BLOB_UPLOAD_INVALID → BLOB_UPLOAD_UNKNOWN" in diff, diff[:2000]
