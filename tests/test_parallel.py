"""`regconform run -n 2` (pytest-xdist) gives the same results as a serial run, and leaks nothing.

Design under test: each xdist worker starts its own embedded registry and works in its own
namespace (`regconform-<run id>/<worker>`); GC and restart checks get a registry of their own;
read-only checks share one push per worker and format; deletion-disabled checks share one
registry per worker. Both runs are real `regconform run` processes with separate report dirs;
their per-check outcomes in behaviour.json must be identical, and no container labelled with
their run id may remain.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from suiterun import REPO, clean_env

from regconform.registry.client import RegistryClient
from regconform.registry.errors import ClientError

# Every kind of sharing and isolation: read-only shared pushes (pull), fresh pushes that are then
# deleted (content management), the per-worker deletion-disabled registry, GC + restart registries.
SELECTION = ("test_base or test_garbage_collection or deletion_is_disabled or test_delete_manifest_twice"
             " or test_blob_get_serves or test_manifest_etag or test_tags_list_names")


def regconform_run(report_dir: Path, run_id: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "regconform.cli", "run", f"--report-dir={report_dir}", "-k", SELECTION,
                           *args], capture_output=True, text=True, env=clean_env({"REGCONFORM_RUN_ID": run_id}),
                          cwd=REPO, timeout=600)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-2000:]
    doc = json.loads((report_dir / "behaviour.json").read_text())
    return {"returncode": proc.returncode, "doc": doc, "stdout": proc.stdout}


def containers_of(run_id: str) -> list[str]:
    proc = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.regconform.run={run_id}"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.split()


def namespaces_used(report_dir: Path, run_id: str) -> set[str]:
    """The `<worker>` parts of every repository the run's requests named (exchanges.json: id -> exchanges)."""
    found = set()
    for exchanges in json.loads((report_dir / "exchanges.json").read_text())["checks"].values():
        for ex in exchanges:
            if m := re.search(rf"/v2/regconform-{run_id}/([^/]+)/", ex["url"]):
                found.add(m[1])
    return found


@pytest.mark.selftest_slow
def test_parallel_run_gives_the_serial_results_and_leaves_no_container(tmp_path: Path) -> None:
    serial_id, parallel_id = f"par-s-{uuid.uuid4().hex[:6]}", f"par-p-{uuid.uuid4().hex[:6]}"
    serial = regconform_run(tmp_path / "serial", serial_id)
    parallel = regconform_run(tmp_path / "parallel", parallel_id, "-n", "2")

    outcomes = {c["id"]: c["outcome"] for c in serial["doc"]["checks"]}
    assert len(outcomes) >= 10, outcomes  # the selection really ran
    assert {c["id"]: c["outcome"] for c in parallel["doc"]["checks"]} == outcomes
    assert parallel["returncode"] == serial["returncode"]
    # Both workers really took checks, each in its own namespace; the serial run in one.
    assert namespaces_used(tmp_path / "parallel", parallel_id) == {"gw0", "gw1"}
    assert namespaces_used(tmp_path / "serial", serial_id) == {"master"}
    assert containers_of(serial_id) == [] and containers_of(parallel_id) == []


def test_the_client_refuses_writes_to_a_shared_read_only_repository() -> None:
    """The guard that makes sharing one push safe: any write to it fails before a request is sent."""
    client = RegistryClient("http://127.0.0.1:9", namespace="ns")  # port 9 (discard): nothing is sent
    client.read_only.add("ns/gw0/shared-oci")
    for write in (lambda: client.delete_manifest("ns/gw0/shared-oci", "sha256:" + "0" * 64),
                  lambda: client.put_manifest("ns/gw0/shared-oci", "v1", b"{}", "application/json"),
                  lambda: client.start_upload("ns/gw0/shared-oci")):
        with pytest.raises(ClientError, match="shared read-only"):
            write()
    client.close()
