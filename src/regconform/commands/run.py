"""`regconform run`: the conformance suites against one registry (embedded, or yours by URL)."""

from __future__ import annotations

import argparse
import os

from regconform import options
from regconform.commands.common import read_password_stdin, run_pytest
from regconform.errors import SetupError
from regconform.resources import SUITES


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the conformance suites against a registry")
    options.add_to_parser(p, options.RUN)


def preflight(ns: argparse.Namespace) -> None:
    """Everything that can be wrong before a single check runs, each a one-line SetupError."""
    from regconform.profiles import ProfileError, load_profile
    from regconform.targets.preflight import check_expression, check_namespace

    try:
        load_profile(ns.profile)
    except ProfileError as exc:
        raise SetupError(str(exc)) from None
    if ns.registry_url and ns.registry_env:
        raise SetupError("--registry-env sets the environment of an embedded registry; it cannot apply to --registry-url")
    bad_env = [pair for pair in ns.registry_env if "=" not in pair or pair.startswith("=")]
    if bad_env:
        raise SetupError(f"--registry-env {bad_env[0]!r}: expected KEY=VALUE")
    if ns.deletion_disabled_url and not ns.registry_url:
        raise SetupError("--deletion-disabled-url goes with --registry-url (embedded runs start their own)")
    if ns.namespace is not None:
        check_namespace(ns.namespace)
    for flag, expression in (("-k", ns.keyword), ("-m", ns.markexpr)):
        if expression:
            check_expression(flag, expression)
    read_password_stdin(ns)
    if ns.registry_url and ns.registry_binary:
        raise SetupError("--registry-binary runs an embedded registry; it cannot apply to --registry-url")
    if ns.registry_url:
        from regconform.targets.preflight import check_external

        check_external(ns.registry_url, username=ns.username, password=os.environ.get("REGCONFORM_PASSWORD"),
                       ca_cert=ns.ca_cert, insecure=ns.insecure, gc_command=ns.gc_command,
                       restart_command=ns.restart_command, require_gc=ns.require_gc, timeout=ns.timeout)
        if ns.deletion_disabled_url:
            try:
                check_external(ns.deletion_disabled_url, username=ns.username,
                               password=os.environ.get("REGCONFORM_PASSWORD"), ca_cert=ns.ca_cert,
                               insecure=ns.insecure, timeout=ns.timeout)
            except SetupError as exc:
                raise SetupError(f"--deletion-disabled-url: {exc}") from None
    elif ns.registry_binary:
        from regconform.targets.imagebuild import (
            UPSTREAM_IMAGE,
            inspect_binary,
            resolve_registry_image,
        )

        if ns.registry_image != UPSTREAM_IMAGE:
            raise SetupError(f"give --registry-binary or --registry-image {ns.registry_image}, not both "
                             "(the binary makes its own image)")

        inspect_binary(ns.registry_binary)  # one line for a path that is no registry binary
        if ns.backend == "docker":
            from regconform.targets.engine import docker_client

            print(f"regconform: registry image {resolve_registry_image(docker_client(), '', binary=ns.registry_binary)}",
                  flush=True)
    elif ns.backend == "docker":
        from regconform.targets.engine import docker_client
        from regconform.targets.imagebuild import resolve_registry_image

        resolve_registry_image(docker_client(), ns.registry_image, pull=ns.pull)
    else:
        from regconform.targets.imagebuild import registry_binary

        if not registry_binary():
            raise SetupError("no registry binary on PATH for --backend process: install Debian's docker-registry "
                             "(./setup.sh does)")


def run(ns: argparse.Namespace, extra: list[str]) -> int:
    preflight(ns)
    return run_pytest(ns, options.RUN, [str(SUITES), f"--ignore={SUITES / 'mirror'}"], extra)
