"""`regconform diff` (two behaviour.json files) and `regconform compare` (run two registries, then diff)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from regconform import options
from regconform.commands import EXIT_FAILED, EXIT_OK, fail
from regconform.commands.common import read_password_stdin

SIDE_ONLY = ("--image", "--registry-url", "--env-a", "--env-b", "--deletion-disabled-url", "--allow",
             "--report-dir")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    diff = sub.add_parser("diff", help="behaviour changes between two runs (behaviour.json files)")
    diff.add_argument("old", type=Path, help="behaviour.json of the old (reference) run")
    diff.add_argument("new", type=Path, help="behaviour.json of the new run")
    options.add_to_parser(diff, options.DIFF)
    diff.add_argument("--format", choices=["text", "markdown", "html", "summary"], default="text")
    diff.add_argument("-o", "--output", type=Path, help="write the diff here instead of standard output")
    diff.set_defaults(handler=cmd_diff)
    cmp = sub.add_parser("compare", help="run the suites against two registries and diff their behaviour")
    options.add_to_parser(cmp, options.COMPARE)
    cmp.set_defaults(handler=cmd_compare)


def cmd_diff(ns: argparse.Namespace, extra: list[str]) -> int:
    from regconform.reports.diff import DiffInputError, blocking, diff_files
    from regconform.reports.diff_render import render

    try:
        changes, old, new = diff_files(ns.old, ns.new, ns.allow and Path(ns.allow))
    except DiffInputError as exc:
        return fail(str(exc))
    text = render(changes, old, new, ns.format)
    if ns.output:
        ns.output.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_FAILED if blocking(changes) else EXIT_OK


def side_arguments(ns: argparse.Namespace, side: int) -> list[str]:
    """What makes side A (0) or B (1): a URL (and its deletion-disabled twin), or an image and its env."""
    if ns.registry_url:
        args = ["--registry-url", ns.registry_url[side]]
        if ns.deletion_disabled_url:
            args += ["--deletion-disabled-url", ns.deletion_disabled_url[side]]
        return args
    args = ["--registry-image", ns.image[min(side, len(ns.image) - 1)]]
    return args + [f"--registry-env={pair}" for pair in (ns.env_a if side == 0 else ns.env_b)]


def cmd_compare(ns: argparse.Namespace, extra: list[str]) -> int:
    """Side A and B: `regconform run` each (own process, own report dir), then diff B against A."""
    from regconform.reports.diff import DiffInputError, blocking, diff_files
    from regconform.reports.diff_render import render

    if ns.registry_url and (len(ns.registry_url) != 2 or ns.image or ns.env_a or ns.env_b):
        return fail("compare: give --registry-url twice, and no --image or --env-a/--env-b with it")
    if not ns.registry_url and not (1 <= len(ns.image) <= 2):
        return fail("compare: give --image twice (or once, with --env-a/--env-b), or --registry-url twice")
    if ns.deletion_disabled_url and (not ns.registry_url or len(ns.deletion_disabled_url) != 2):
        return fail("compare: --deletion-disabled-url goes with --registry-url: give it twice (side A's, side B's)")
    read_password_stdin(ns)  # the sides' runs read it from the environment
    report_dir = Path(ns.report_dir)
    common = options.pytest_args(ns, options.COMPARE, skip=SIDE_ONLY)
    sides = []
    for i, name in enumerate(("a", "b")):
        sides.append(report_dir / name)
        argv = [sys.executable, "-m", "regconform.cli", "run", "--report-dir", str(sides[-1]),
                *side_arguments(ns, i), *common]
        print(f"regconform compare: side {name.upper()}: {' '.join(argv[3:])}", flush=True)
        if subprocess.run(argv).returncode not in (EXIT_OK, EXIT_FAILED):
            return fail(f"compare: the run of side {name.upper()} did not complete (see above)")
    try:
        changes, old, new = diff_files(sides[0] / "behaviour.json", sides[1] / "behaviour.json",
                                       ns.allow and Path(ns.allow))
    except DiffInputError as exc:
        return fail(str(exc))
    for fmt, filename in (("text", "diff.txt"), ("markdown", "diff.md"), ("html", "diff.html")):
        (report_dir / filename).write_text(render(changes, old, new, fmt))
    sys.stdout.write(render(changes, old, new, "text"))
    return EXIT_FAILED if blocking(changes) else EXIT_OK
