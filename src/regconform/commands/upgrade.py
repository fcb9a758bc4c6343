"""`regconform upgrade`: validate an upgrade of a registry on its own storage.

Embedded: `--from A --to B` (registry images, or paths to registry binaries for the process
backend); A gets the corpus, is stopped, and B is started on the same storage. A deployment:
`--registry-url URL --upgrade-command CMD` (the harness waits for /v2/ after CMD).
Exit 0: continuity green and no behaviour change outside the allow-list; 1: a loss or such a
change; 2: usage or environment error (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from regconform import options

    p = sub.add_parser("upgrade", help="validate an upgrade: the new version serves what the old one stored "
                                       "(continuity), and the behaviour diff of the suites on both")
    options.add_to_parser(p, options.UPGRADE)
    return p


def run(ns: argparse.Namespace, extra: list[str] | None = None) -> int:
    from regconform import options
    from regconform.commands.common import read_password_stdin
    from regconform.errors import SetupError
    from regconform.targets.preflight import check_expression, check_namespace
    from regconform.upgrade.flow import Access, Plan, run_upgrade
    from regconform.upgrade.sides import Side

    if ns.registry_url and (ns.from_side or ns.to_side):
        raise SetupError("give --from/--to (embedded) or --registry-url with --upgrade-command, not both")
    if ns.gc_command and not ns.registry_url:
        raise SetupError("--gc-command applies to --registry-url; embedded versions are collected by the harness")
    old = Side(ns.from_side, ns.backend) if ns.from_side else None
    new = Side(ns.to_side, ns.backend) if ns.to_side else None
    suite_args: list[str] = []
    for flag, value in (("-n", ns.workers), ("-k", ns.keyword), ("-m", ns.markexpr)):
        if value:
            if flag != "-n":
                check_expression(flag, value)
            suite_args += [flag, value]
    if (ns.username or ns.ca_cert or ns.insecure) and not ns.registry_url:
        raise SetupError("--username, --ca-cert and --insecure apply to --registry-url; embedded versions need none")
    read_password_stdin(ns)
    access = Access(username=ns.username, password=os.environ.get("REGCONFORM_PASSWORD"), ca_cert=ns.ca_cert,
                    insecure=ns.insecure, timeout=ns.timeout)
    plan = Plan(report_dir=Path(ns.report_dir), old=old, new=new, registry_url=ns.registry_url,
                upgrade_command=ns.upgrade_command, gc_command=ns.gc_command, allow=Path(ns.allow) if ns.allow else None,
                suites=not ns.continuity_only, suite_args=suite_args, access=access)
    if ns.namespace:
        check_namespace(ns.namespace)
        plan.namespace = ns.namespace
    # --profile (given, not its default) names both versions' profile; --from-profile / --to-profile each one;
    # otherwise each version's own, by its --version.
    given = ns.profile if ns.profile != options.default_of("--profile") else None
    default = given or (old.default_profile() if old else "distribution-2.8")
    plan.old_profile = ns.from_profile or default
    plan.new_profile = ns.to_profile or given or (new.default_profile() if new else plan.old_profile)
    # Ctrl-C and SIGTERM unwind through every `finally` (registries, storage, volume removed); each is
    # also remembered, for the phase boundaries to raise again should a fork hook have swallowed it.
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupt  # the swallowed one is raised again, not printed as a traceback
    try:
        return run_upgrade(plan)
    finally:
        sys.unraisablehook = hook
        for s, handler in previous.items():
            signal.signal(s, handler)


def _quiet_interrupt(unraisable: Any) -> None:
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _interrupt(signum: int, frame: object) -> None:
    from regconform.upgrade.flow import INTERRUPTED

    INTERRUPTED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")
