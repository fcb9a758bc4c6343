"""`regconform run` end to end on both backends, and its usage errors.

The main job as a user runs it: the CLI in a subprocess, an embedded registry (local process or
container), reports in a directory of our choosing. The seed behaviours must be in behaviour.json
as passed, junit.xml must exist, the exit code must be 0.

The process backend runs every suite (CI's `pytest suites` covers the docker backend in full
already); the docker backend runs the seed checks only, to keep the self-tests short.
"""

from __future__ import annotations

import json
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from suiterun import SuiteRun, run_command, run_containers

from regconform.content.images import FORMATS

pytestmark = pytest.mark.selftest_slow

# The five seed behaviours, by the checks that pin them down (each once per fixture format).
SEED_BEHAVIOURS = {
    "tag listing": ["test_tags_list_names_every_pushed_tag", "test_tags_list_follows_deletions"],
    "digest header": ["test_manifest_get_digest_header_is_digest_of_bytes_served",
                      "test_manifest_head_carries_digest_length_and_type",
                      "test_manifest_put_answers_digest_of_bytes_sent", "test_manifest_get_without_accept"],
    "delete semantics": ["test_delete_manifest_by_digest_answers_202_and_removes_it_with_its_tags",
                         "test_delete_manifest_twice_answers_404"],
    "tag-delete rejection": ["test_delete_manifest_by_tag_is_rejected_and_deletes_nothing",
                             "test_every_delete_is_refused_when_deletion_is_disabled"],
    "post-GC blob removal": ["test_gc_removes_blobs_only_the_deleted_image_used",
                             "test_gc_delete_untagged_removes_untagged_manifests_and_their_blobs",
                             "test_gc_delete_untagged_and_the_images_a_tagged_index_references"],
}
SEED_K = " or ".join(name for names in SEED_BEHAVIOURS.values() for name in names)


def regconform_run(report_dir: Path, *args: str, run_id: str | None = None) -> SuiteRun:
    argv = [sys.executable, "-m", "regconform.cli", "run", "--report-dir", str(report_dir), *args]
    return run_command(argv, report_dir=report_dir, extra_env={"REGCONFORM_RUN_ID": run_id} if run_id else None)


def assert_seed_behaviours_passed(run: SuiteRun) -> None:
    assert run.returncode == 0, run.tail()
    for behaviour, names in SEED_BEHAVIOURS.items():
        for name in names:
            for fmt in FORMATS:
                assert run.outcome(f"{name}[{fmt}]") == "passed", f"{behaviour}: {name}[{fmt}]: {run.reason(f'{name}[{fmt}]')}"
    # What 2.8.2 does that the profile records as fact, not failure
    after_all_deleted = run.record("test_tags_list_follows_deletions[docker]")["observations"]["tags"]
    assert after_all_deleted is None, after_all_deleted  # `"tags": null` once no tag is left
    gc = run.record("test_gc_removes_blobs_only_the_deleted_image_used[oci]")["observations"]
    assert gc["stale_cache"] is True, gc  # collected blobs served until the restart
    junit = ET.parse(run.report_dir / "junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) >= len(run.records), "junit.xml lacks the checks"
    assert int(suite.get("failures", "0")) == 0 and int(suite.get("errors", "0")) == 0


def test_regconform_run_process_backend_end_to_end(tmp_path):
    """`regconform run --backend process`: every suite, exit 0, the five seed behaviours passed, reports written."""
    run = regconform_run(tmp_path / "reports", "--backend", "process")
    assert_seed_behaviours_passed(run)
    assert not run.failed_ids(), run.failed_ids()
    target = json.loads((run.report_dir / "behaviour.json").read_text())["target"]
    assert target["backend"] == "process", target


def test_regconform_run_docker_backend_end_to_end(tmp_path):
    """`regconform run` (docker backend): the seed checks pass, reports written, no container left."""
    run_id = f"selftest-backend-{uuid.uuid4().hex[:8]}"
    run = regconform_run(tmp_path / "reports", "--backend", "docker", "-k", SEED_K, run_id=run_id)
    assert_seed_behaviours_passed(run)
    target = json.loads((run.report_dir / "behaviour.json").read_text())["target"]
    assert target["backend"] == "docker", target
    assert run_containers(run_id) == []


def test_unknown_profile_is_a_one_line_usage_error(tmp_path):
    """`regconform run --profile nope`: exit 2, one line on stderr naming the known profiles, no traceback."""
    run = regconform_run(tmp_path / "reports", "--profile", "nope")
    assert run.returncode == 2, run.tail()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("regconform: error: ") and "nope" in lines[0], lines[0]
    assert "distribution-2.8" in lines[0] and "oci-1.1" in lines[0], lines[0]
    assert not (run.report_dir / "behaviour.json").exists()
