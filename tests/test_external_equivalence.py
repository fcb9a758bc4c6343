"""What users run: the whole suite against an external 2.8.2 that already holds other content, with
every external option, gives the same outcome per check as the embedded run.

The external registry is Debian's docker-registry (distribution 2.8.2, the binary `--backend
process` runs) started as a service would be: restarted whenever it exits (`--restart-command`
stops it and waits for the new process), garbage-collected by its own binary and config
(`--gc-command`). Before the run it is filled with other repositories holding the SAME fixture
images the suites push (the plain set, tagged, untagged, and under an index), so a check whose
answer depended on what else the registry holds would come out differently. A second such
registry with deletion disabled serves `--deletion-disabled-url`.

Where independence is impossible the record says why instead of failing: a repository without
any tag anywhere makes 2.8.2's `garbage-collect --delete-untagged` abort for the whole registry,
so the checks that need it are skipped with that reason (a test of its own, on a fresh registry).

The two behaviour.json files are compared check by check. A further test tampers with the
registry (its garbage collection only pretends: `--dry-run`), so the blobs really stay, and
requires exactly the checks that expect them gone to fail, naming the blob.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from suiterun import SuiteRun, run_command

from regconform.content.images import (
    FORMATS,
    fixture_set,
    push_fixture_set,
    push_image,
    push_index,
)
from regconform.registry.client import RegistryClient
from regconform.targets.base import registry_env
from regconform.targets.imagebuild import registry_binary
from regconform.targets.process import ProcessTarget

pytestmark = [pytest.mark.selftest_slow,
              pytest.mark.skipif(registry_binary() is None, reason="no registry binary (Debian's docker-registry) on PATH")]


class ServiceRegistry(ProcessTarget):
    """The registry binary as a service: respawned whenever it exits (like systemd's Restart=always).

    Its pid is in `pidfile` once the process answers; `restart_command` stops it and returns when
    the new process answers. Stopped for good (and its data removed) by `stop()`.
    """

    def __init__(self, delete_enabled: bool = True) -> None:
        self.stopping = False
        self.lock = threading.Lock()
        super().__init__(registry_env(delete_enabled))
        self.watcher = threading.Thread(target=self._respawn, name="registry-service", daemon=True)
        self.watcher.start()

    @property
    def pidfile(self) -> Path:
        return Path(self.workdir) / "registry.pid"

    def _start(self) -> None:
        super()._start()
        assert self.proc is not None
        tmp = self.pidfile.with_suffix(".tmp")
        tmp.write_text(str(self.proc.pid))
        tmp.replace(self.pidfile)

    def _respawn(self) -> None:
        while True:
            proc = self.proc
            if proc is None:
                return
            proc.wait()
            with self.lock:
                if self.stopping:
                    return
                self.log.close()
                self._start()

    @property
    def gc_command(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.proc_env.items()) if k.startswith("REGISTRY_"))
        return f"env {env} {shlex.quote(self.binary)} garbage-collect {shlex.quote(self.config)}"

    @property
    def restart_command(self) -> str:
        pidfile = shlex.quote(str(self.pidfile))
        # Bounded: a registry that never comes back fails the restart (exit 1) instead of hanging the run.
        return (f"old=$(cat {pidfile}); kill $old; i=0; "
                f"while [ \"$(cat {pidfile})\" = \"$old\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
                f"[ \"$(cat {pidfile})\" != \"$old\" ]")

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            super().stop()
        self.watcher.join(10)


@pytest.fixture(scope="module")
def external() -> Iterator[tuple[ServiceRegistry, ServiceRegistry]]:
    """The registry under test (deletion enabled) and its deletion-disabled twin, both holding other content."""
    started: list[ServiceRegistry] = []
    try:
        for delete_enabled in (True, False):
            started.append(ServiceRegistry(delete_enabled))
            fill_with_other_content(started[-1].url)
        yield started[0], started[1]
    finally:
        for reg in started:
            reg.stop()


def fill_with_other_content(url: str) -> None:
    """Other repositories holding the very fixture images the suites push: tagged sets, untagged images,
    images only an index names (what other checks, other runs or other users leave behind)."""
    other = f"other-{uuid.uuid4().hex[:6]}"
    with RegistryClient(url) as client:
        for fmt in FORMATS:
            fixtures = fixture_set(fmt)
            for i in range(2):
                push_fixture_set(client, f"{other}/{fmt}-set-{i}", fixtures)
            # untagged, in a repository that has tags (one without any is a case of its own, below)
            push_image(client, f"{other}/{fmt}-untagged", fixtures.beta)
            push_image(client, f"{other}/{fmt}-untagged", fixtures.alpha, tags=())
            push_index(client, f"{other}/{fmt}-index", fixtures.index)
            for image in fixtures.images:
                push_image(client, f"{other}/{fmt}-{image.name}", image)


def regconform_run(report_dir: Path, *args: str) -> SuiteRun:
    argv = [sys.executable, "-m", "regconform.cli", "run", "--report-dir", str(report_dir), *args]
    return run_command(argv, report_dir=report_dir, timeout=1800)


def external_options(reg: ServiceRegistry, disabled: ServiceRegistry) -> list[str]:
    return ["--registry-url", reg.url, "--require-gc", "--gc-command", reg.gc_command,
            "--restart-command", reg.restart_command, "--gc-delete-untagged", "--deletion-disabled-url", disabled.url]


def behaviour_checks(run: SuiteRun) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads((run.report_dir / "behaviour.json").read_text())["checks"]}


def test_external_run_matches_the_embedded_run_check_by_check(external, tmp_path: Path) -> None:
    """Every check: the same outcome against a busy external 2.8.2 (every external option) as embedded."""
    reg, disabled = external
    embedded = regconform_run(tmp_path / "embedded", "--backend", "process")
    assert embedded.returncode == 0, embedded.tail()
    ext = regconform_run(tmp_path / "external", *external_options(reg, disabled))
    assert ext.returncode == 0, ext.tail()

    want, got = behaviour_checks(embedded), behaviour_checks(ext)
    assert sorted(got) == sorted(want), f"not the same checks: {sorted(set(got) ^ set(want))}"
    differ = {cid: (want[cid]["outcome"], got[cid]["outcome"], got[cid]["reason"])
              for cid in want if want[cid]["outcome"] != got[cid]["outcome"]}
    assert not differ, json.dumps(differ, indent=1)[:4000]
    # Everything ran: GC, restart and deletion-disabled checks passed (not skipped) on the external target.
    for name in ("test_gc_", "after_restart", "deletion_is_disabled", "deletion_disabled_error"):
        ran = [cid for cid in got if name in cid]
        assert ran and all(got[cid]["outcome"] == "passed" for cid in ran), {cid: got[cid]["outcome"] for cid in ran}
    # Nothing skipped for want of an external option (the skips left are those of the embedded run too).
    external_only = ("--gc-command", "--restart-command", "--deletion-disabled-url", "--gc-delete-untagged",
                     "serial run", "embedded registry of its own", "cannot judge its own content")
    skipped = {cid: c["reason"] for cid, c in got.items() if c["outcome"] == "skipped"}
    assert not [cid for cid, reason in skipped.items() if any(s in str(reason) for s in external_only)], skipped
    # What GC deleted of each check's own content (and every other GC observation) is the same, however
    # much else the registry holds.
    gc = [cid for cid in want if want[cid]["workflow"] == "garbage-collection"]
    assert len([cid for cid in gc if want[cid]["observations"].get("gc_eligible")]) == 6, gc
    for cid in gc:
        assert got[cid]["observations"] == want[cid]["observations"], cid


def test_gc_checks_fail_when_the_registry_really_keeps_deleted_blobs(external, tmp_path: Path) -> None:
    """Tampered: garbage collection only pretends (--dry-run), so collected blobs really stay. The GC checks
    that expect blobs gone fail, naming the blob; the content-management restart check is untouched."""
    reg, disabled = external
    options = external_options(reg, disabled)
    options[options.index("--gc-command") + 1] = reg.gc_command + " --dry-run"
    run = regconform_run(tmp_path / "tampered", *options, "-k", "garbage_collection or after_restart")
    assert run.returncode == 1, run.tail()
    red = sorted(cid.rsplit("::", 1)[-1] for cid in run.failed_ids())
    assert red == sorted(f"{name}[{fmt}]" for fmt in FORMATS for name in (
        "test_gc_removes_blobs_only_the_deleted_image_used",
        "test_gc_delete_untagged_removes_untagged_manifests_and_their_blobs",
        "test_gc_delete_untagged_and_the_images_a_tagged_index_references")), run.tail()
    for cid in run.failed_ids():
        reason = run.reason(cid)
        assert "after GC" in reason and "expected 404" in reason and "got 200" in reason, (cid, reason)
        assert "Deviation" in reason and "Traceback" not in reason, (cid, reason)
    assert all(o == "passed" for cid, o in run.outcomes().items() if "after_restart" in cid), run.outcomes()


def test_a_foreign_repository_without_tags_skips_the_delete_untagged_checks_with_the_reason(tmp_path: Path) -> None:
    """2.8.2's --delete-untagged aborts on any repository without tags: the checks that need it say so
    (skipped, naming the repository and the profile's fact), none fails, plain GC still runs and passes."""
    reg, disabled = ServiceRegistry(), ServiceRegistry(delete_enabled=False)
    try:
        with RegistryClient(reg.url) as client:
            push_image(client, "aaa-other/pushed-by-digest", fixture_set("oci").alpha, tags=())
        run = regconform_run(tmp_path / "tagless", *external_options(reg, disabled), "-k", "garbage_collection")
    finally:
        reg.stop()
        disabled.stop()
    assert run.returncode == 0, run.tail()
    outcomes = {cid.rsplit("::", 1)[-1]: o for cid, o in run.outcomes().items()}
    untagged = {n for n in outcomes if "delete_untagged" in n}
    assert len(untagged) == 6 and all(outcomes[n] == "skipped" for n in untagged), outcomes
    assert all(outcomes[n] == "passed" for n in set(outcomes) - untagged), outcomes
    for cid in run.ids("delete_untagged"):
        reason = run.reason(cid)
        assert "aaa-other/pushed-by-digest" in reason and "gc.delete-untagged-tagless-repository" in reason, reason


def test_the_gc_checks_fail_on_a_registry_that_does_not_behave_as_the_profile_records(tmp_path: Path) -> None:
    """2.8.2 judged by distribution-3 (v3 keeps an index's untagged images and skips repositories without
    tags): exactly those two checks turn red, each naming what 2.8.2 did instead."""
    run = regconform_run(tmp_path / "v3-profile", "--backend", "process", "--profile", "distribution-3",
                         "-k", "garbage_collection")
    assert run.returncode == 1, run.tail()
    red = sorted(cid.rsplit("::", 1)[-1] for cid in run.failed_ids())
    assert red == sorted(f"{name}[{fmt}]" for fmt in FORMATS for name in (
        "test_gc_delete_untagged_and_the_images_a_tagged_index_references",
        "test_gc_delete_untagged_with_a_repository_without_tags")), run.tail()
    for cid in run.ids("images_a_tagged_index_references"):
        assert re.search(r"GET image \w+ \(untagged, referenced by the tagged index\).*expected 200.*got 404",
                         run.reason(cid)), run.reason(cid)
    for cid in run.ids("without_tags"):
        reason = run.reason(cid)
        assert "aborted with a repository without tags" in reason and "expected False" in reason, reason
        assert "failed to retrieve tags" in reason, reason
    assert all(o == "passed" for cid, o in run.outcomes().items() if cid not in run.failed_ids()), run.outcomes()


def test_fixture_variants_share_nothing_and_are_stable() -> None:
    """A check's variant: no blob or manifest in common with the plain set or another check's, the same bytes every time."""
    from regconform.content.images import check_variant, make_image

    def digests(fs):
        return {fs.index.digest, *(i.digest for i in fs.images), *(b.digest for i in fs.images for b in i.blobs)}

    for fmt in FORMATS:
        plain = fixture_set(fmt)
        one = fixture_set(fmt, check_variant(f"test_x.py::test_a[{fmt}]"))
        other = fixture_set(fmt, check_variant(f"test_x.py::test_b[{fmt}]"))
        assert not digests(one) & digests(plain) and not digests(one) & digests(other)
        assert one.alpha.layers[0] == one.beta.layers[0]  # alpha and beta still share their base layer
        again = make_image("alpha", fmt, ["base", f"{fmt}-alpha"], tags=one.alpha.tags, variant=check_variant(f"test_x.py::test_a[{fmt}]"))
        assert again.manifest == one.alpha.manifest and again.config == one.alpha.config
