"""`regconform upgrade`: before (corpus on A, the suites on A), upgrade, after (continuity on B, the
suites on B), then the behaviour diff. Everything lands in one folder:

    <report-dir>/before/     the suites on A (behaviour.json, report.html, ...)
    <report-dir>/after/      the suites on B
    <report-dir>/continuity.json, continuity.md
    <report-dir>/diff.txt, diff.md, diff.html
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from regconform.content.images import PushError
from regconform.errors import SetupError
from regconform.profiles import Profile, ProfileError, load_profile
from regconform.registry.client import RegistryClient
from regconform.upgrade.continuity import (
    Verdict,
    continuity_document,
    render_continuity_text,
    run_continuity,
    write_continuity,
)
from regconform.upgrade.corpus import Corpus, push_corpus
from regconform.upgrade.sides import SharedStorage, Side, check_sides, collect_garbage
from regconform.upgrade.state import take_snapshot

COMMAND_TIMEOUT = 600


@dataclass
class Access:
    """How the harness talks to the registry of both phases: credentials, TLS trust, --timeout.

    The password stays in this process and in REGCONFORM_PASSWORD of the suite runs, never in argv."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    insecure: bool = False
    timeout: float = 10.0

    def client(self, url: str, namespace: str) -> RegistryClient:
        from regconform.registry.auth import RegistryAuth
        from regconform.registry.session import tls_verify
        from regconform.registry.limits import Limits

        bounds = Limits(self.timeout)
        auth = RegistryAuth(self.username, self.password, bounds) if self.username else None
        return RegistryClient(url, auth=auth, verify=tls_verify(self.ca_cert, self.insecure), namespace=namespace,
                              limits_=bounds)

    def cli_args(self) -> list[str]:
        args = ["--timeout", f"{self.timeout:g}"]
        if self.username:
            args += ["--username", self.username]
        if self.ca_cert:
            args += ["--ca-cert", self.ca_cert]
        if self.insecure:
            args.append("--insecure")
        return args

    def env(self) -> dict[str, str]:
        return {"REGCONFORM_PASSWORD": self.password} if self.password else {}


@dataclass
class Plan:
    report_dir: Path
    old: Side | None = None  # embedded: the two versions
    new: Side | None = None
    registry_url: str | None = None  # a deployment: the URL and the command that upgrades it
    upgrade_command: str | None = None
    gc_command: str | None = None
    old_profile: str = "distribution-2.8"
    new_profile: str = "distribution-2.8"
    allow: Path | None = None
    namespace: str = field(default_factory=lambda: f"regconform-upgrade-{uuid.uuid4().hex[:8]}")
    suites: bool = True
    suite_args: list[str] = field(default_factory=list)  # -k / -m / -n for both suite runs
    access: Access = field(default_factory=Access)
    timeout: float = 60.0  # seconds the registry may take to answer /v2/ after the upgrade command

    @property
    def old_label(self) -> str:
        return self.old.label if self.old else f"{self.registry_url} (before)"

    @property
    def new_label(self) -> str:
        return self.new.label if self.new else f"{self.registry_url} (after {self.upgrade_command!r})"


def profiles_of(plan: Plan) -> tuple[Profile, Profile]:
    try:
        return load_profile(plan.old_profile), load_profile(plan.new_profile)
    except ProfileError as exc:
        raise SetupError(str(exc)) from None


def preflight(plan: Plan) -> None:
    if plan.registry_url:
        if not plan.upgrade_command:
            raise SetupError("--registry-url needs --upgrade-command (the shell command that upgrades the registry)")
        from regconform.targets.preflight import check_external

        a = plan.access
        check_external(plan.registry_url, username=a.username, password=a.password, ca_cert=a.ca_cert,
                       insecure=a.insecure, timeout=a.timeout)
    else:
        if plan.old is None or plan.new is None:
            raise SetupError("give --from and --to (registry images or binaries), or --registry-url with --upgrade-command")
        check_sides(plan.old, plan.new)
    profiles_of(plan)
    if plan.allow:
        from regconform.reports.diff import DiffInputError, load_allow_list

        try:
            load_allow_list(plan.allow)
        except DiffInputError as exc:
            raise SetupError(str(exc)) from None


# Signals seen (set by the command's handler): a KeyboardInterrupt raised inside an at-fork hook is
# swallowed by Python ("Exception ignored in _releaseLock"), so every phase boundary checks again.
INTERRUPTED: list[int] = []


def checkpoint() -> None:
    if INTERRUPTED:
        raise KeyboardInterrupt(f"signal {INTERRUPTED[0]}")


def say(message: str) -> None:
    checkpoint()
    print(f"regconform upgrade: {message}", flush=True)


def run_suites(plan: Plan, side: Side | None, profile: str, folder: Path) -> None:
    """`regconform run` on a fresh registry of `side` (or on the deployment), reports in `folder`."""
    argv = [sys.executable, "-m", "regconform.cli", "run", "--report-dir", str(folder), "--profile", profile]
    # The side is named on the command line; the environment must not name another target.
    env = {k: v for k, v in os.environ.items() if k not in (
        "REGCONFORM_REGISTRY_URL", "REGCONFORM_REGISTRY_IMAGE", "REGCONFORM_REGISTRY_BINARY", "REGCONFORM_BACKEND",
        "REGCONFORM_PASSWORD")}
    if side is None:  # the deployment, with its credentials and trust (embedded sides need none)
        argv += ["--registry-url", str(plan.registry_url), *plan.access.cli_args()]
        env.update(plan.access.env())
    else:
        argv += side.suite_arguments()
    say(f"suites on {folder.name}: regconform {' '.join(shlex.quote(a) for a in argv[4:] + plan.suite_args)}")
    code = subprocess.run(argv + plan.suite_args, env=env).returncode
    if code not in (0, 1):
        checkpoint()
        raise SetupError(f"the suites on {folder.name} did not complete (exit {code}; see above)")


def _shell(command: str, what: str) -> None:
    say(f"{what}: {command}")
    try:
        proc = subprocess.run(command, shell=True, timeout=COMMAND_TIMEOUT)  # noqa: S602 - the operator's own command
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} did not return within {COMMAND_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise SetupError(f"{what} exited {proc.returncode}")


def continuity_embedded(plan: Plan, new_profile: Profile) -> tuple[list[Verdict], Corpus]:
    assert plan.old is not None and plan.new is not None
    storage = SharedStorage(plan.old.in_process, plan.namespace)
    try:
        say(f"A: {plan.old.label} on {'directory' if storage.volume is None else 'volume'} storage")
        old = storage.start(plan.old)
        try:
            with RegistryClient(old.url, namespace=plan.namespace) as client:
                corpus = push_corpus(client, plan.namespace)
                before = take_snapshot(client, corpus)
        finally:
            old.stop()
        say(f"B: {plan.new.label} on the same storage")
        new = storage.start(plan.new)
        try:
            with RegistryClient(new.url, namespace=plan.namespace) as client:
                verdicts, _ = run_continuity(client, corpus, before, new_profile, lambda: collect_garbage(new))
        finally:
            new.stop()
    finally:
        storage.close()
    return verdicts, corpus


def continuity_deployment(plan: Plan, new_profile: Profile) -> tuple[list[Verdict], Corpus]:
    from regconform.targets.base import wait_until_ready

    url = str(plan.registry_url)
    with plan.access.client(url, plan.namespace) as client:
        corpus = push_corpus(client, plan.namespace)
        before = take_snapshot(client, corpus)
        _shell(str(plan.upgrade_command), "upgrade command")
        wait_until_ready(url, timeout=plan.timeout)
        collect: Callable[[], tuple[int, str]] | None = None
        if plan.gc_command:
            def collect() -> tuple[int, str]:
                _shell(str(plan.gc_command), "GC command")
                wait_until_ready(url, timeout=plan.timeout)
                return 0, f"--gc-command {plan.gc_command!r}"
        try:
            verdicts, _ = run_continuity(client, corpus, before, new_profile, collect)
        finally:
            client.record = False
            client.remove_pushed()
    return verdicts, corpus


def run_upgrade(plan: Plan) -> int:
    """0: continuity green and no behaviour change outside the allow-list; 1 otherwise."""
    from regconform.reports.diff import blocking, diff_files
    from regconform.reports.diff_render import render

    preflight(plan)
    _, new_profile = profiles_of(plan)
    plan.report_dir.mkdir(parents=True, exist_ok=True)
    if plan.suites and plan.registry_url:  # a deployment has one "before": run the suites first
        run_suites(plan, None, plan.old_profile, plan.report_dir / "before")
    elif plan.suites:
        run_suites(plan, plan.old, plan.old_profile, plan.report_dir / "before")
    embedded = plan.registry_url is None
    try:
        verdicts, corpus = (continuity_embedded if embedded else continuity_deployment)(plan, new_profile)
    except httpx.HTTPError as exc:  # a registry that stops answering: one line, everything already removed
        raise SetupError(f"the registry stopped answering during the upgrade ({type(exc).__name__}: {exc})") from None
    except PushError as exc:
        raise SetupError(f"the old version refused the corpus: {exc}") from None
    checkpoint()
    doc = continuity_document(verdicts, plan.old_label, plan.new_label, corpus)
    write_continuity(plan.report_dir, doc)
    sys.stdout.write(render_continuity_text(doc))
    changed = False
    if plan.suites:
        run_suites(plan, plan.new if embedded else None, plan.new_profile, plan.report_dir / "after")
        changes, old, new = diff_files(plan.report_dir / "before" / "behaviour.json",
                                       plan.report_dir / "after" / "behaviour.json", plan.allow)
        for doc_side, label in ((old, plan.old_label), (new, plan.new_label)):  # name the version, not the image option
            doc_side.setdefault("target", {})["registry"] = label
        for fmt, name in (("text", "diff.txt"), ("markdown", "diff.md"), ("html", "diff.html")):
            (plan.report_dir / name).write_text(render(changes, old, new, fmt))
        sys.stdout.write(render(changes, old, new, "summary"))
        changed = bool(blocking(changes))
    say(f"continuity {'green' if doc['passed'] else 'RED'}; "
        + (f"behaviour diff: {'changes outside the allow-list' if changed else 'nothing outside the allow-list'}; "
           if plan.suites else "") + f"reports in {plan.report_dir}")
    return 1 if changed or not doc["passed"] else 0
