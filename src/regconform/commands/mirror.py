"""`regconform mirror`: the mirror suites (suites/mirror) against embedded pairs or a deployment by URL."""

from __future__ import annotations

import argparse
import os

from regconform import options
from regconform.commands.common import read_password_stdin, run_pytest
from regconform.errors import SetupError
from regconform.resources import SUITES


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("mirror", help="check a mirror (pull-through cache): embedded pairs, or an existing "
                                      "deployment with --mirror-url and --upstream-url")
    options.add_to_parser(p, options.MIRROR)


def preflight(ns: argparse.Namespace) -> None:
    import ssl

    from regconform.profiles import ProfileError, load_profile
    from regconform.targets.preflight import check_registry

    upstream_given = bool(ns.upstream_url or ns.upstream)
    if bool(ns.mirror_url) != upstream_given:
        raise SetupError("give both --mirror-url and --upstream-url (or --upstream NAME=URL), or neither, for the "
                         "embedded mirrors")
    needs_urls = [name for name, value in (("--image", ns.image), ("--push-fixtures", ns.push_fixtures),
                                           ("--upstream-stop-command", ns.upstream_stop_command),
                                           ("--mirror-prefix", ns.mirror_prefix), ("--mirror-ns", ns.mirror_ns),
                                           ("--realm-url", ns.realm_url)) if value]
    if needs_urls and not ns.mirror_url:
        raise SetupError(f"{needs_urls[0]} needs --mirror-url and --upstream-url")
    if ns.mirror_binary and ns.mirror_url:
        raise SetupError("--mirror-binary is the embedded hostile-realm mirror's binary: not with --mirror-url")
    if ns.mirror_binary and not (os.path.isfile(ns.mirror_binary) and os.access(ns.mirror_binary, os.X_OK)):
        raise SetupError(f"--mirror-binary {ns.mirror_binary!r} is not an executable file")
    if bool(ns.upstream_stop_command) != bool(ns.upstream_start_command):
        raise SetupError("give both --upstream-stop-command and --upstream-start-command, or neither")
    try:
        profile = load_profile(ns.profile)
    except ProfileError as exc:
        raise SetupError(str(exc)) from None
    if not any(key.startswith("mirror.") for key in profile.checks):
        raise SetupError(f"profile {profile.name} records no mirror behaviour (no mirror.toml): use one that does, "
                         "e.g. distribution-2.8 or distribution-3")
    read_password_stdin(ns)
    if not ns.mirror_url:
        from regconform.targets.engine import docker_client
        from regconform.targets.imagebuild import resolve_registry_image

        resolve_registry_image(docker_client(), ns.registry_image, pull=ns.pull)
        return
    try:
        verify: bool | ssl.SSLContext = False if ns.insecure else (
            ssl.create_default_context(cafile=ns.ca_cert) if ns.ca_cert else True)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"--ca-cert {ns.ca_cert!r} is not a readable CA bundle ({exc})") from None
    from regconform.targets.mirrors import external_routes
    from regconform.targets.mirrors.routes import env_key

    routes = external_routes(ns.upstream_url, ns.upstream, ns.mirror_prefix, ns.mirror_ns, ns.upstream_username,
                             os.environ)
    if ns.upstream_stop_command and len(routes) > 1:
        raise SetupError("--upstream-stop-command works with one upstream (--upstream-url), not several")
    if not ns.mirror_url.startswith(("http://", "https://")):
        raise SetupError(f"{ns.mirror_url!r} is not an http:// or https:// URL")
    check_registry(ns.mirror_url, username=ns.username, password=os.environ.get("REGCONFORM_PASSWORD"), verify=verify)
    for route in routes:
        creds = route.credentials
        try:
            check_registry(route.upstream_url, username=creds.username if creds else None,
                           password=creds.password if creds else None, verify=verify)
        except SetupError as exc:
            if "(401" in str(exc) and creds is None:  # name the upstream's own options, not --username
                how = ("--upstream-username and the password in REGCONFORM_UPSTREAM_PASSWORD" if ns.upstream_url else
                       f"REGCONFORM_UPSTREAM_{env_key(route.name)}_USERNAME and _PASSWORD")
                raise SetupError(f"the upstream {route.upstream_url} requires authentication (401): give {how}") from None
            raise SetupError(f"upstream {route.name}: {exc}") from None


def run(ns: argparse.Namespace, extra: list[str]) -> int:
    """Same reports and exit codes as `run`."""
    preflight(ns)
    return run_pytest(ns, options.MIRROR, [str(SUITES / "mirror")], extra,
                      nothing_selected="no check was selected (check -k / -m; without --push-fixtures or --image "
                                       "little is left)")
