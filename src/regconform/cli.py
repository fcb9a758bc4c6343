"""`regconform` command line: run the suites, check mirrors, compare registries, set the machine up.

Exit codes: 0 the registry behaves as its profile says, 1 a check failed, 2 usage or environment
error (always one line on stderr, never a traceback). Options: the one table in options.py.
"""

from __future__ import annotations

import argparse
import sys

from regconform import __version__
from regconform.commands import EXIT_ERROR, QuietStdout, compare, fail, housekeeping
from regconform.commands import explore as explore_command
from regconform.commands import mirror as mirror_command
from regconform.commands import run as run_command
from regconform.commands import upgrade as upgrade_command
from regconform.errors import SetupError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"regconform: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="regconform", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"regconform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (run_command, mirror_command, upgrade_command, explore_command):
        module.add_parser(sub)
        sub.choices[module.__name__.rsplit(".", 1)[-1]].set_defaults(handler=module.run)
    housekeeping.add_parsers(sub)
    compare.add_parsers(sub)
    from regconform.load import run as load

    load.add_parser(sub)
    sub.choices["load"].set_defaults(handler=lambda ns, extra: load.cmd_load(ns))
    return parser


def main(argv: list[str] | None = None) -> int:
    if not isinstance(sys.stdout, QuietStdout):
        sys.stdout = QuietStdout(sys.stdout)  # type: ignore[assignment]
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:  # everything after -- goes to pytest unchanged
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ns, unknown = build_parser().parse_known_args(argv)
    if unknown:  # named with the command whose options they are not
        return fail(f"unrecognized arguments: {' '.join(unknown)} (see regconform {ns.command} --help)")
    try:
        return int(ns.handler(ns, extra))
    except SetupError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
