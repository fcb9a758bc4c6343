"""The one option table: every option of the pytest plugin and of every `regconform` subcommand.

Each row is declared once, with its help text, environment variable (REGCONFORM_<NAME>), default
and validation; `plugin.py` registers the rows marked `plugin` as pytest options, `cli.py` adds the
rows of each subcommand to its parser and passes them on to pytest. A new option is a new row here.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from regconform.stateful.budget import (
    DEFAULT_BUDGET,
    DEFAULT_EXPLORE_BUDGET,
    budget_option,
    seed_option,
)

RUN, MIRROR, COMPARE, UPGRADE, EXPLORE, DIFF, SETUP = (
    "run", "mirror", "compare", "upgrade", "explore", "diff", "setup")
SUITE_COMMANDS = frozenset({RUN, COMPARE, UPGRADE, EXPLORE})  # commands that run the conformance suites
ALL_COMMANDS = SUITE_COMMANDS | {MIRROR}


def positive_float(text: str) -> float:
    """Seconds and other positive amounts: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above zero")
    return value


def workers(text: str) -> str:
    """pytest-xdist `-n`: a positive number, 'auto' or 'logical'."""
    if text in ("auto", "logical") or (text.isdigit() and int(text) >= 0):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers (a number, 'auto' or 'logical')")


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    default: Any = None
    kind: str = "value"  # "value", "flag" (store_true) or "append" (repeatable; env: space-separated)
    choices: tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None
    commands: frozenset[str] = SUITE_COMMANDS
    plugin: bool = True  # a pytest option too (else only the command line knows it)
    metavar: str | None = None
    dest: str | None = None

    @property
    def name(self) -> str:
        return self.dest or self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return "REGCONFORM_" + (self.dest or self.flag.lstrip("-")).replace("-", "_").upper()

    def env_default(self) -> Any:
        raw = os.environ.get(self.env)
        if self.kind == "flag":
            return raw is not None and raw.strip().lower() not in ("", "0", "false", "no")
        if self.kind == "append":
            return raw.split() if raw else []
        # A string default goes through `type` in argparse, so a bad value gets argparse's one-line error.
        return self.default if raw is None else raw

    def help_text(self) -> str:
        shown = f" (default {self.default})" if self.default not in (None, False, [], "") else ""
        return f"{self.help}{shown} [{self.env}]"

    def argparse_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"help": self.help_text(), "dest": self.name}
        if self.kind == "flag":
            kw["action"] = "store_true"
        elif self.kind == "append":
            kw["action"] = "append"
        if self.choices:
            kw["choices"] = list(self.choices)
        if self.type and self.kind != "flag":
            kw["type"] = self.type
        if self.metavar:
            kw["metavar"] = self.metavar
        return kw


def _o(flag: str, help: str, **kw: Any) -> Option:
    if "commands" in kw:
        kw["commands"] = frozenset(kw["commands"])
    return Option(flag, help, **kw)


OPTIONS: list[Option] = [
    # -- the registry under test
    _o("--registry-url", "test an existing registry at this URL instead of starting one",
       commands=SUITE_COMMANDS - {COMPARE}),
    _o("--registry-image", "image of the embedded registry", default="registry:2",
       commands=ALL_COMMANDS - {COMPARE} | {SETUP}),
    _o("--registry-binary", "run this distribution-compatible registry binary (a patched build, a fork, v3) as the "
       "embedded registry: the process backend runs it, the docker backend an image built from it, named "
       "regconform/registry:<version>-<sha12>", metavar="PATH", commands=SUITE_COMMANDS - {COMPARE} | {SETUP}),
    _o("--backend", "how the embedded registry runs", default="docker", choices=("docker", "process"),
       commands=ALL_COMMANDS),
    _o("--profile", "expected behaviour: a profile name (see `regconform profiles`), or a directory holding "
       "profile.toml and one TOML file per workflow", default="distribution-2.8", commands=ALL_COMMANDS),
    _o("--namespace", "repository prefix for everything the run creates (default regconform-<run id>)",
       commands=ALL_COMMANDS),
    _o("--report-dir", "where behaviour.json and the other reports go", default="reports", commands=ALL_COMMANDS),
    _o("--registry-env", "extra environment of the embedded registry under test, e.g. "
       "REGISTRY_STORAGE_DELETE_ENABLED=false (repeatable)", kind="append", metavar="KEY=VALUE",
       commands=SUITE_COMMANDS - {COMPARE}),
    # -- maintenance of an external registry
    _o("--gc-command", "shell command that garbage-collects the external registry (its output is read)"),
    _o("--restart-command", "shell command that restarts the external registry (the harness then waits for /v2/)"),
    _o("--gc-delete-untagged", "with --gc-command: also run the GC checks that append --delete-untagged, which "
       "deletes every untagged manifest of the whole registry, not only the run's", kind="flag"),
    _o("--require-gc", "with --registry-url: refuse to run (exit 2) instead of skipping the GC checks when "
       "--gc-command and --restart-command are missing", kind="flag"),
    _o("--deletion-disabled-url", "with --registry-url: a registry of the same kind with deletion disabled, for "
       "the deletion-disabled checks (embedded runs start their own)", commands=SUITE_COMMANDS - {COMPARE}),
    # -- credentials and TLS
    _o("--username", "registry user (password from --password-stdin or REGCONFORM_PASSWORD, never from argv)",
       commands=ALL_COMMANDS),
    _o("--password-stdin", "read the password from standard input", kind="flag", plugin=False,
       commands=ALL_COMMANDS),
    _o("--ca-cert", "CA bundle to verify the registry's TLS certificate", commands=ALL_COMMANDS),
    _o("--insecure", "do not verify the registry's TLS certificate (the harness and the clients it drives)",
       kind="flag", commands=ALL_COMMANDS),
    # -- limits
    _o("--timeout", "seconds to wait for a connection or for the next bytes of an answer", default=10.0,
       type=positive_float, commands=ALL_COMMANDS),
    # -- housekeeping
    _o("--pull", "allow pulling --registry-image from its registry when it is not present locally", kind="flag",
       commands=ALL_COMMANDS | {SETUP}),
    _o("--keep", "keep what the run pushed to an external registry", kind="flag", commands=ALL_COMMANDS),
    # -- mirrors (suites/mirror, `regconform mirror`)
    _o("--mirror-url", "mirror (pull-through cache) to check, instead of the embedded mirror pairs",
       commands={MIRROR}),
    _o("--upstream-url", "the registry the mirror at --mirror-url pulls from (one upstream; several: --upstream)",
       commands={MIRROR}),
    _o("--upstream", "an upstream of the mirror at --mirror-url (repeatable); its credentials from "
       "REGCONFORM_UPSTREAM_<NAME>_USERNAME and _PASSWORD", kind="append", metavar="NAME=URL", commands={MIRROR}),
    _o("--mirror-prefix", "the mirror serves the upstream's repositories under PREFIX (mirror repository = PREFIX + "
       "upstream repository); NAME= for one of several --upstream (repeatable)", kind="append",
       metavar="[NAME=]PREFIX", commands={MIRROR}),
    _o("--mirror-ns", "send ns=VALUE with every request to the mirror, as containerd does, to select the upstream "
       "(OCI distribution-spec, Registry Proxying); NAME= for one of several --upstream (repeatable)",
       kind="append", metavar="[NAME=]VALUE", commands={MIRROR}),
    _o("--upstream-username", "user for the upstream (password from REGCONFORM_UPSTREAM_PASSWORD)",
       commands={MIRROR}),
    _o("--upstream-stop-command", "shell command that stops the upstream (enables the upstream-down checks)",
       commands={MIRROR}),
    _o("--upstream-start-command", "shell command that starts the upstream again", commands={MIRROR}),
    _o("--realm-url", "a hostile token realm (regconform.targets.mirrors.realm) that the upstream of the mirror at "
       "--mirror-url names in its Bearer challenge: the credential-boundary check reads what reached it",
       commands={MIRROR}),
    _o("--mirror-binary", "registry binary of the embedded hostile-realm mirror (default Debian's docker-registry, "
       "2.8.2; e.g. ../shared/registries/registry-v3.1.1 with --profile distribution-3)", commands={MIRROR}),
    _o("--image", "existing image (repo:tag or repo@digest) the mirror must serve as the upstream does "
       "(repeatable)", kind="append", metavar="REF", commands={MIRROR}),
    _o("--push-fixtures", "push fixture images to the upstream (never to the mirror) for the full set of checks",
       kind="flag", commands={MIRROR}),
    # -- compare: two sides
    _o("--image", "embedded registry image of a side (give 1 or 2)", kind="append", plugin=False, commands={COMPARE}),
    _o("--registry-url", "existing registry of a side (give 2)", kind="append", plugin=False, commands={COMPARE}),
    _o("--env-a", "registry environment of side A (repeatable)", kind="append", metavar="KEY=VALUE", plugin=False,
       commands={COMPARE}),
    _o("--env-b", "registry environment of side B (repeatable)", kind="append", metavar="KEY=VALUE", plugin=False,
       commands={COMPARE}),
    _o("--deletion-disabled-url", "with --registry-url twice: the deletion-disabled registry of side A, then of "
       "side B", kind="append", plugin=False, commands={COMPARE}),
    _o("--allow", "allow-list (TOML) of expected changes", plugin=False, commands={COMPARE, DIFF, UPGRADE}),
    # -- upgrade: the two versions on one storage, or a deployment upgraded in place
    _o("--from", "the version upgraded from: a registry image, or a path to a registry binary", dest="from_side",
       metavar="IMAGE|BINARY", plugin=False, commands={UPGRADE}),
    _o("--to", "the version upgraded to (same kind as --from: both serve one storage)", dest="to_side",
       metavar="IMAGE|BINARY", plugin=False, commands={UPGRADE}),
    _o("--upgrade-command", "with --registry-url: shell command that upgrades the registry in place (the harness "
       "then waits for /v2/)", plugin=False, commands={UPGRADE}),
    _o("--from-profile", "profile of the old version (default: by its --version, distribution-2.8 or "
       "distribution-3)", plugin=False, commands={UPGRADE}),
    _o("--to-profile", "profile of the new version (default: by its --version)", plugin=False, commands={UPGRADE}),
    _o("--continuity-only", "skip the suites and the behaviour diff", kind="flag", plugin=False, commands={UPGRADE}),
    # -- stateful checks (suites/test_stateful.py, `regconform explore`; see README "Stateful checks")
    _o("--stateful-budget", "stateful checks: SEQUENCESxSTEPS per content format, or a duration (90s, 10m)",
       default=DEFAULT_BUDGET, type=budget_option, commands=SUITE_COMMANDS - {EXPLORE}),
    _o("--budget", "how long to explore: a duration (90s, 10m, 1h) or SEQUENCESxSTEPS", dest="explore_budget",
       default=DEFAULT_EXPLORE_BUDGET, type=budget_option, plugin=False, commands={EXPLORE}),
    _o("--stateful-seed", "seed of the stateful sequences (default: one from the run id); a failure names the "
       "seed that replays it", type=seed_option),
    # -- selection, passed to pytest as they are
    _o("-n", "pytest-xdist workers (a number or 'auto')", dest="workers", type=workers, plugin=False,
       commands=ALL_COMMANDS),
    _o("-k", "only checks matching this pytest expression", dest="keyword", plugin=False, commands=ALL_COMMANDS),
    _o("-m", "only checks matching this marker expression", dest="markexpr", plugin=False, commands=ALL_COMMANDS),
]

# pytest's own spelling of the selection options (the CLI passes them through).
PYTEST_SPELLING = {"workers": "-n", "keyword": "-k", "markexpr": "-m"}


def default_of(flag: str) -> Any:
    """The table's default of `flag` (what an option holds when neither the command line nor REGCONFORM_* set it)."""
    return next(o.default for o in OPTIONS if o.flag == flag)


def for_command(command: str) -> list[Option]:
    return [o for o in OPTIONS if command in o.commands]


def add_to_parser(parser: argparse.ArgumentParser, command: str, skip: Iterable[str] = ()) -> None:
    """The rows of `command` as argparse arguments (defaults read from the environment)."""
    skipped = set(skip)
    for opt in for_command(command):
        if opt.flag not in skipped:
            parser.add_argument(opt.flag, default=opt.env_default(), **opt.argparse_kwargs())


def add_to_pytest(group: Any) -> None:
    """The plugin rows as pytest options (defaults read from the environment)."""
    seen: set[str] = set()
    for opt in OPTIONS:
        if not opt.plugin or opt.flag in seen:
            continue
        seen.add(opt.flag)
        kw = opt.argparse_kwargs()
        kw.pop("dest")
        group.addoption(opt.flag, default=opt.env_default() if opt.kind != "append" else opt.env_default() or None,
                        **kw)


def pytest_args(ns: argparse.Namespace, command: str, skip: Sequence[str] = ()) -> list[str]:
    """The command's parsed options as pytest arguments: plugin rows as --flag=value, selection as -n/-k/-m."""
    args: list[str] = []
    for opt in for_command(command):
        if opt.flag in skip or not hasattr(ns, opt.name):
            continue
        value = getattr(ns, opt.name)
        if opt.name in PYTEST_SPELLING:
            if value:
                args += [PYTEST_SPELLING[opt.name], str(value)]
        elif not opt.plugin:
            continue
        elif opt.kind == "flag":
            args += [opt.flag] if value else []
        elif opt.kind == "append":
            args += [f"{opt.flag}={item}" for item in value or []]
        elif value is not None:
            args.append(f"{opt.flag}={value}")
    return args
