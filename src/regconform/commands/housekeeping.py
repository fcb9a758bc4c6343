"""`regconform setup`, `cleanup` and `profiles`: the machine, leftovers of killed runs, the known profiles."""

from __future__ import annotations

import argparse

from regconform import options
from regconform.commands import EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    setup = sub.add_parser("setup", help="make the Docker engine and the registry image available")
    options.add_to_parser(setup, "setup")
    setup.add_argument("--no-docker", action="store_true", help="only the registry binary (process backend)")
    setup.set_defaults(handler=cmd_setup)
    cleanup = sub.add_parser("cleanup", help="remove containers and temporary directories left by killed runs")
    cleanup.set_defaults(handler=cmd_cleanup)
    profiles = sub.add_parser("profiles", help="list the known profiles")
    profiles.set_defaults(handler=cmd_profiles)


def cmd_setup(ns: argparse.Namespace, extra: list[str]) -> int:
    from regconform.targets.engine import docker_client, ensure_engine
    from regconform.targets.imagebuild import (
        ensure_registry_binary,
        resolve_registry_image,
    )

    if ns.registry_binary:  # bring your own registry: check it, and build its image unless --no-docker
        from regconform.targets.imagebuild import inspect_binary

        binary = inspect_binary(ns.registry_binary)
        if ns.no_docker:
            print(f"regconform: {binary.label} ready (process backend: --registry-binary {binary.path})")
            return EXIT_OK
        ensure_engine()
        image = resolve_registry_image(docker_client(), ns.registry_image, binary=ns.registry_binary)
        print(f"regconform: registry image {image} ready (from {binary.label}; use --registry-image {image})")
        return EXIT_OK
    ensure_registry_binary()
    if ns.no_docker:
        print("regconform: registry binary ready (process backend)")
        return EXIT_OK
    ensure_engine()
    image = resolve_registry_image(docker_client(), ns.registry_image, pull=ns.pull)
    print(f"regconform: Docker engine reachable; registry image {image} ready")
    return EXIT_OK


def cmd_cleanup(ns: argparse.Namespace, extra: list[str]) -> int:
    from regconform.targets.container import reap_orphans
    from regconform.targets.mirrors import WORKDIR_PREFIX
    from regconform.targets.mirrors.nginx import NGINX_WORKDIR_PREFIX
    from regconform.targets.mirrors.podman import PODMAN_WORKDIR_PREFIX
    from regconform.targets.mirrors.realm import HOSTILE_WORKDIR_PREFIX
    from regconform.targets.ownership import reap_owned_workdirs
    from regconform.targets.process import PROCESS_WORKDIR_PREFIX

    print(f"regconform: removed {reap_orphans()} orphaned container(s)")
    for prefix in (PROCESS_WORKDIR_PREFIX, WORKDIR_PREFIX, NGINX_WORKDIR_PREFIX, PODMAN_WORKDIR_PREFIX,
                   HOSTILE_WORKDIR_PREFIX):
        reap_owned_workdirs(prefix)  # temporary directories of runs killed outright
    return EXIT_OK


def cmd_profiles(ns: argparse.Namespace, extra: list[str]) -> int:
    from regconform.profiles import known_profiles, load_profile

    for name in known_profiles():
        print(f"{name:20} {load_profile(name).description}")
    return EXIT_OK
