"""`regconform` command line: run the suites, set the machine up, clean up.

Exit codes: 0 the registry behaves as its profile says, 1 a check failed, 2 usage or environment
error (always one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from regconform.errors import SetupError

SUITES = Path(__file__).resolve().parents[2] / "suites"
EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _fail(message: str) -> int:
    print(f"regconform: error: {message}", file=sys.stderr)
    return EXIT_ERROR


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"regconform: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _add_target_options(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--registry-url", default=env("REGCONFORM_REGISTRY_URL"), help="existing registry to test")
    p.add_argument("--registry-image", default=env("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    p.add_argument("--backend", choices=["docker", "process"], default=env("REGCONFORM_BACKEND", "docker"))
    p.add_argument("--profile", default=env("REGCONFORM_PROFILE", "distribution-2.8"))
    p.add_argument("--namespace", default=env("REGCONFORM_NAMESPACE"))
    p.add_argument("--report-dir", default=env("REGCONFORM_REPORT_DIR", "reports"))
    p.add_argument("--gc-command", default=env("REGCONFORM_GC_COMMAND"))
    p.add_argument("--restart-command", default=env("REGCONFORM_RESTART_COMMAND"))
    p.add_argument("--username", default=env("REGCONFORM_USERNAME"))
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--ca-cert", default=env("REGCONFORM_CA_CERT"))
    p.add_argument("--insecure", action="store_true", default=_env_flag("REGCONFORM_INSECURE"),
                   help="do not verify the registry's TLS certificate")
    p.add_argument("--pull", action="store_true", default=_env_flag("REGCONFORM_PULL"),
                   help="allow pulling --registry-image when absent")
    p.add_argument("--keep", action="store_true", default=_env_flag("REGCONFORM_KEEP"),
                   help="keep what the run pushed to an external registry")
    p.add_argument("--require-gc", action="store_true", default=_env_flag("REGCONFORM_REQUIRE_GC"),
                   help="with --registry-url: exit 2 unless --gc-command and --restart-command are given")
    p.add_argument("--gc-delete-untagged", action="store_true", default=_env_flag("REGCONFORM_GC_DELETE_UNTAGGED"),
                   help="with --gc-command: also run the --delete-untagged GC checks (they delete every untagged "
                        "manifest of the whole registry)")
    p.add_argument("--timeout", type=float, default=float(env("REGCONFORM_TIMEOUT", "10")),
                   help="seconds to wait for the registry's first answer (default 10)")
    p.add_argument("--registry-env", action="append", default=os.environ.get("REGCONFORM_REGISTRY_ENV", "").split(),
                   metavar="KEY=VALUE", help="extra environment of the embedded registry (repeatable)")
    p.add_argument("-n", dest="workers", default=env("REGCONFORM_WORKERS"), help="pytest-xdist workers (number or 'auto')")
    p.add_argument("-k", dest="keyword", default=env("REGCONFORM_KEYWORD"), help="only checks matching this pytest expression")
    p.add_argument("-m", dest="markexpr", default=env("REGCONFORM_MARKEXPR"), help="only checks matching this marker expression")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() not in ("", "0", "false", "no")


def _pytest_args(ns: argparse.Namespace, report_dir: Path) -> list[str]:
    args = ["-p", "regconform.plugin", str(SUITES), f"--ignore={SUITES / 'mirror'}", f"--rootdir={SUITES.parent}",
            f"--junitxml={report_dir / 'junit.xml'}", f"--alluredir={report_dir / 'allure-results'}",
            f"--report-dir={report_dir}", f"--profile={ns.profile}", f"--backend={ns.backend}",
            f"--registry-image={ns.registry_image}", "-q", "-rfEs"]
    for opt in ("registry_url", "namespace", "gc_command", "restart_command", "username", "ca_cert"):
        if (value := getattr(ns, opt)) is not None:
            args.append(f"--{opt.replace('_', '-')}={value}")
    args += [f"--registry-env={pair}" for pair in ns.registry_env]
    for flag in ("insecure", "pull", "keep", "require_gc", "gc_delete_untagged"):
        if getattr(ns, flag):
            args.append(f"--{flag.replace('_', '-')}")
    if ns.workers:
        args += ["-n", ns.workers]
    if ns.keyword:
        args += ["-k", ns.keyword]
    if ns.markexpr:
        args += ["-m", ns.markexpr]
    return args


def preflight(ns: argparse.Namespace) -> None:
    """Everything that can be wrong before a single check runs, each a one-line SetupError."""
    from regconform.profiles import ProfileError, load_profile

    try:
        load_profile(ns.profile)
    except ProfileError as exc:
        raise SetupError(str(exc)) from None
    if ns.registry_url and ns.registry_env:
        raise SetupError("--registry-env sets the environment of an embedded registry; it cannot apply to --registry-url")
    bad_env = [pair for pair in ns.registry_env if "=" not in pair or pair.startswith("=")]
    if bad_env:
        raise SetupError(f"--registry-env {bad_env[0]!r}: expected KEY=VALUE")
    from regconform.preflight import check_expression, check_namespace

    if ns.namespace is not None:
        check_namespace(ns.namespace)
    for flag, expression in (("-k", ns.keyword), ("-m", ns.markexpr)):
        if expression:
            check_expression(flag, expression)
    if ns.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise SetupError("--password-stdin: standard input held no password")
        os.environ["REGCONFORM_PASSWORD"] = password  # for the plugin (and xdist workers); never argv
    if ns.registry_url:
        from regconform.preflight import check_external

        check_external(ns.registry_url, username=ns.username, password=os.environ.get("REGCONFORM_PASSWORD"),
                       ca_cert=ns.ca_cert, insecure=ns.insecure, gc_command=ns.gc_command,
                       restart_command=ns.restart_command, require_gc=ns.require_gc, timeout=ns.timeout)
    elif ns.backend == "docker":
        from regconform.engine import docker_client
        from regconform.imagebuild import resolve_registry_image

        resolve_registry_image(docker_client(), ns.registry_image, pull=ns.pull)
    else:
        from regconform.imagebuild import registry_binary

        if not registry_binary():
            raise SetupError("no registry binary on PATH for --backend process: install Debian's docker-registry (./setup.sh does)")


def cmd_run(ns: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    preflight(ns)
    report_dir = Path(ns.report_dir)
    allure_dir = report_dir / "allure-results"
    # Cleaned once here, not by --clean-alluredir in every xdist worker.
    shutil.rmtree(allure_dir, ignore_errors=True)
    code = int(pytest.main(_pytest_args(ns, report_dir) + extra))
    if code in (0, 1):
        return code
    if code == 5:
        return _fail("no check was selected (check -k / -m)")
    return _fail(f"the run stopped early (pytest exit code {code}); the reason is in the output above")


def cmd_setup(ns: argparse.Namespace) -> int:
    from regconform.engine import docker_client, ensure_engine
    from regconform.imagebuild import ensure_registry_binary, resolve_registry_image

    ensure_registry_binary()
    if ns.no_docker:
        print("regconform: registry binary ready (process backend)")
        return EXIT_OK
    ensure_engine()
    image = resolve_registry_image(docker_client(), ns.registry_image, pull=ns.pull)
    print(f"regconform: Docker engine reachable; registry image {image} ready")
    return EXIT_OK


def cmd_cleanup(ns: argparse.Namespace) -> int:
    from regconform.mirror import WORKDIR_PREFIX
    from regconform.targets import PROCESS_WORKDIR_PREFIX, reap_orphans, reap_owned_workdirs

    print(f"regconform: removed {reap_orphans()} orphaned container(s)")
    for prefix in (PROCESS_WORKDIR_PREFIX, WORKDIR_PREFIX):
        reap_owned_workdirs(prefix)  # temporary directories of runs killed outright
    return EXIT_OK


def cmd_profiles(ns: argparse.Namespace) -> int:
    from regconform.profiles import known_profiles, load_profile

    for name in known_profiles():
        print(f"{name:20} {load_profile(name).description}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="regconform", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run the conformance suites against a registry")
    _add_target_options(run)
    setup = sub.add_parser("setup", help="make the Docker engine and the registry image available")
    setup.add_argument("--registry-image", default=os.environ.get("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    setup.add_argument("--pull", action="store_true")
    setup.add_argument("--no-docker", action="store_true", help="only the registry binary (process backend)")
    sub.add_parser("cleanup", help="remove containers left by killed runs")
    sub.add_parser("profiles", help="list the known profiles")
    _add_mirror_parser(sub)
    _add_diff_parsers(sub)
    from regconform import load

    load.add_parser(sub)
    return parser


def _add_diff_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    diff = sub.add_parser("diff", help="behaviour changes between two runs (behaviour.json files)")
    diff.add_argument("old", type=Path, help="behaviour.json of the old (reference) run")
    diff.add_argument("new", type=Path, help="behaviour.json of the new run")
    diff.add_argument("--allow", type=Path, help="allow-list (TOML) of expected changes")
    diff.add_argument("--format", choices=["text", "markdown", "html"], default="text")
    diff.add_argument("-o", "--output", type=Path, help="write the diff here instead of standard output")
    cmp = sub.add_parser("compare", help="run the suites against two registries and diff their behaviour")
    cmp.add_argument("--image", action="append", default=[], help="embedded registry image (give 1 or 2)")
    cmp.add_argument("--registry-url", action="append", default=[], help="existing registry (give 2)")
    cmp.add_argument("--env-a", action="append", default=[], metavar="KEY=VALUE", help="registry env of side A")
    cmp.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE", help="registry env of side B")
    cmp.add_argument("--profile", default=os.environ.get("REGCONFORM_PROFILE", "distribution-2.8"))
    cmp.add_argument("--backend", choices=["docker", "process"], default=os.environ.get("REGCONFORM_BACKEND", "docker"))
    cmp.add_argument("--report-dir", type=Path, default=Path(os.environ.get("REGCONFORM_REPORT_DIR", "reports")))
    cmp.add_argument("--allow", type=Path, help="allow-list (TOML) of expected changes")
    cmp.add_argument("--username", default=os.environ.get("REGCONFORM_USERNAME"))
    cmp.add_argument("--insecure", action="store_true")
    cmp.add_argument("-n", dest="workers")
    cmp.add_argument("-k", dest="keyword")
    cmp.add_argument("-m", dest="markexpr")


def cmd_diff(ns: argparse.Namespace) -> int:
    from regconform.diff import DiffInputError, blocking, diff_files, render

    try:
        changes, old, new = diff_files(ns.old, ns.new, ns.allow)
    except DiffInputError as exc:
        return _fail(str(exc))
    text = render(changes, old, new, ns.format)
    if ns.output:
        ns.output.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_FAILED if blocking(changes) else EXIT_OK


def cmd_compare(ns: argparse.Namespace) -> int:
    """Side A and B: `regconform run` each (own process, own report dir), then diff B against A."""
    import subprocess

    from regconform.diff import DiffInputError, blocking, diff_files, render

    if ns.registry_url and (len(ns.registry_url) != 2 or ns.image or ns.env_a or ns.env_b):
        return _fail("compare: give --registry-url twice, and no --image or --env-a/--env-b with it")
    if not ns.registry_url and not (1 <= len(ns.image) <= 2):
        return _fail("compare: give --image twice (or once, with --env-a/--env-b), or --registry-url twice")
    common = ["--profile", ns.profile, "--backend", ns.backend]
    for flag, value in (("--username", ns.username), ("-n", ns.workers), ("-k", ns.keyword), ("-m", ns.markexpr)):
        if value:
            common += [flag, value]
    common += ["--insecure"] if ns.insecure else []
    sides = []
    for i, name in enumerate(("a", "b")):
        if ns.registry_url:
            target = ["--registry-url", ns.registry_url[i]]
        else:
            target = ["--registry-image", ns.image[min(i, len(ns.image) - 1)]]
            target += [f"--registry-env={pair}" for pair in (ns.env_a if name == "a" else ns.env_b)]
        sides.append(ns.report_dir / name)
        argv = [sys.executable, "-m", "regconform.cli", "run", "--report-dir", str(sides[-1]), *target, *common]
        print(f"regconform compare: side {name.upper()}: {' '.join(argv[3:])}", flush=True)
        if subprocess.run(argv).returncode not in (EXIT_OK, EXIT_FAILED):
            return _fail(f"compare: the run of side {name.upper()} did not complete (see above)")
    try:
        changes, old, new = diff_files(sides[0] / "behaviour.json", sides[1] / "behaviour.json", ns.allow)
    except DiffInputError as exc:
        return _fail(str(exc))
    for fmt, filename in (("text", "diff.txt"), ("markdown", "diff.md"), ("html", "diff.html")):
        (ns.report_dir / filename).write_text(render(changes, old, new, fmt))
    sys.stdout.write(render(changes, old, new, "text"))
    return EXIT_FAILED if blocking(changes) else EXIT_OK


def _add_mirror_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    env = os.environ.get
    p = sub.add_parser("mirror", help="check a mirror (pull-through cache): embedded pairs, or an existing "
                                      "deployment with --mirror-url and --upstream-url")
    p.add_argument("--mirror-url", default=env("REGCONFORM_MIRROR_URL"), help="the mirror to check (read-only)")
    p.add_argument("--upstream-url", default=env("REGCONFORM_UPSTREAM_URL"), help="the registry the mirror pulls from")
    p.add_argument("--image", action="append", default=env("REGCONFORM_IMAGE", "").split(), metavar="REPO:TAG",
                   help="existing image the mirror must serve as the upstream does (repeatable; REPO@DIGEST too)")
    p.add_argument("--push-fixtures", action="store_true", default=_env_flag("REGCONFORM_PUSH_FIXTURES"),
                   help="push fixture images to the upstream (never to the mirror) for the full set of checks")
    p.add_argument("--upstream-username", default=env("REGCONFORM_UPSTREAM_USERNAME"),
                   help="upstream user (password from REGCONFORM_UPSTREAM_PASSWORD)")
    p.add_argument("--upstream-stop-command", default=env("REGCONFORM_UPSTREAM_STOP_COMMAND"),
                   help="shell command that stops the upstream (enables the upstream-down checks)")
    p.add_argument("--upstream-start-command", default=env("REGCONFORM_UPSTREAM_START_COMMAND"))
    p.add_argument("--registry-image", default=env("REGCONFORM_REGISTRY_IMAGE", "registry:2"),
                   help="image of the embedded pairs (without --mirror-url)")
    p.add_argument("--profile", default=env("REGCONFORM_PROFILE", "distribution-2.8"))
    p.add_argument("--namespace", default=env("REGCONFORM_NAMESPACE"))
    p.add_argument("--report-dir", default=env("REGCONFORM_REPORT_DIR", "reports"))
    p.add_argument("--username", default=env("REGCONFORM_USERNAME"), help="mirror user (if the mirror requires one)")
    p.add_argument("--password-stdin", action="store_true", help="read the mirror user's password from standard input")
    p.add_argument("--ca-cert", default=env("REGCONFORM_CA_CERT"))
    p.add_argument("--insecure", action="store_true", default=_env_flag("REGCONFORM_INSECURE"))
    p.add_argument("--pull", action="store_true", help="allow pulling --registry-image when absent")
    p.add_argument("--keep", action="store_true", help="keep the fixture images pushed to the upstream")
    p.add_argument("-n", dest="workers", default=env("REGCONFORM_WORKERS"))
    p.add_argument("-k", dest="keyword", default=env("REGCONFORM_KEYWORD"))
    p.add_argument("-m", dest="markexpr", default=env("REGCONFORM_MARKEXPR"))


def _mirror_preflight(ns: argparse.Namespace) -> None:
    import ssl

    from regconform.preflight import check_registry
    from regconform.profiles import ProfileError, load_profile

    external = [ns.mirror_url, ns.upstream_url]
    if any(external) and not all(external):
        raise SetupError("give both --mirror-url and --upstream-url (or neither, for the embedded mirror pairs)")
    needs_urls = [name for name, value in (("--image", ns.image), ("--push-fixtures", ns.push_fixtures),
                                           ("--upstream-stop-command", ns.upstream_stop_command)) if value]
    if needs_urls and not ns.mirror_url:
        raise SetupError(f"{needs_urls[0]} needs --mirror-url and --upstream-url")
    if bool(ns.upstream_stop_command) != bool(ns.upstream_start_command):
        raise SetupError("give both --upstream-stop-command and --upstream-start-command, or neither")
    try:
        profile = load_profile(ns.profile)
    except ProfileError as exc:
        raise SetupError(str(exc)) from None
    if not any(key.startswith("mirror.") for key in profile.checks):
        raise SetupError(f"profile {profile.name} records no mirror behaviour (no mirror.toml): use one that does, "
                         "e.g. distribution-2.8 or distribution-3")
    if ns.password_stdin:
        os.environ["REGCONFORM_PASSWORD"] = sys.stdin.readline().rstrip("\r\n")
    if not ns.mirror_url:
        from regconform.engine import docker_client
        from regconform.imagebuild import resolve_registry_image

        resolve_registry_image(docker_client(), ns.registry_image, pull=ns.pull)
        return
    try:
        verify: bool | ssl.SSLContext = False if ns.insecure else (
            ssl.create_default_context(cafile=ns.ca_cert) if ns.ca_cert else True)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"--ca-cert {ns.ca_cert!r} is not a readable CA bundle ({exc})") from None
    for url in external:
        if not url.startswith(("http://", "https://")):
            raise SetupError(f"{url!r} is not an http:// or https:// URL")
    check_registry(ns.mirror_url, username=ns.username, password=os.environ.get("REGCONFORM_PASSWORD"), verify=verify)
    try:
        check_registry(ns.upstream_url, username=ns.upstream_username,
                       password=os.environ.get("REGCONFORM_UPSTREAM_PASSWORD"), verify=verify)
    except SetupError as exc:
        if "(401" in str(exc) and not ns.upstream_username:  # name the upstream's own options, not --username
            raise SetupError(f"the upstream {ns.upstream_url} requires authentication (401): give --upstream-username "
                             "and the password in REGCONFORM_UPSTREAM_PASSWORD") from None
        raise SetupError(f"upstream: {exc}") from None


def cmd_mirror(ns: argparse.Namespace, extra: list[str]) -> int:
    """The mirror suites (suites/mirror): same reports and exit codes as `run`."""
    import pytest

    _mirror_preflight(ns)
    report_dir = Path(ns.report_dir)
    shutil.rmtree(report_dir / "allure-results", ignore_errors=True)
    args = ["-p", "regconform.plugin", str(SUITES / "mirror"), f"--rootdir={SUITES.parent}",
            f"--junitxml={report_dir / 'junit.xml'}", f"--alluredir={report_dir / 'allure-results'}",
            f"--report-dir={report_dir}", f"--profile={ns.profile}", f"--registry-image={ns.registry_image}",
            "-q", "-rfEs"]
    for opt in ("mirror_url", "upstream_url", "upstream_username", "upstream_stop_command", "upstream_start_command",
                "namespace", "username", "ca_cert"):
        if (value := getattr(ns, opt)) is not None:
            args.append(f"--{opt.replace('_', '-')}={value}")
    args += [f"--image={ref}" for ref in ns.image]
    for flag in ("push_fixtures", "insecure", "pull", "keep"):
        if getattr(ns, flag):
            args.append(f"--{flag.replace('_', '-')}")
    for flag, value in (("-n", ns.workers), ("-k", ns.keyword), ("-m", ns.markexpr)):
        if value:
            args += [flag, value]
    code = int(pytest.main(args + extra))
    if code in (0, 1):
        return code
    if code == 5:
        return _fail("no check was selected (check -k / -m; without --push-fixtures or --image little is left)")
    return EXIT_ERROR


COMMANDS = {"run": cmd_run, "setup": cmd_setup, "cleanup": cmd_cleanup, "profiles": cmd_profiles,
            "diff": cmd_diff, "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:  # everything after -- goes to pytest unchanged
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ns, unknown = build_parser().parse_known_args(argv)
    if unknown:  # named with the command whose options they are not
        return _fail(f"unrecognized arguments: {' '.join(unknown)} (see regconform {ns.command} --help)")
    try:
        if ns.command == "run":
            return cmd_run(ns, extra)
        if ns.command == "mirror":
            return cmd_mirror(ns, extra)
        if ns.command == "load":
            from regconform.load import cmd_load

            return cmd_load(ns)
        return COMMANDS[ns.command](ns)
    except SetupError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
