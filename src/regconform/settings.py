"""The run's settings, read once from the pytest options (the option table in options.py) and checked.

Bad values become one-line usage errors before any check runs.
"""

from __future__ import annotations

import os
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from regconform.errors import SetupError
from regconform.profiles import Profile, ProfileError, load_profile
from regconform.registry.session import tls_verify
from regconform.registry.limits import Limits


def parse_registry_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--registry-env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


@dataclass
class Settings:
    registry_url: str | None
    registry_image: str
    backend: str
    profile: Profile
    namespace: str
    report_dir: Path
    gc_command: str | None
    restart_command: str | None
    username: str | None
    password: str | None = field(repr=False)  # never in a repr, a traceback or a report
    ca_cert: str | None
    insecure: bool
    pull: bool
    keep: bool
    run_id: str
    timeout: float = 10.0  # seconds: connect, and between bytes of an answer (registry/limits.py)
    registry_binary: str | None = None  # --registry-binary: the embedded registry's binary (else Debian's 2.8.2)
    binary_label: str | None = None  # what that binary is, by version and sha256 (for the reports)
    registry_env: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    target_info: dict[str, Any] = field(default_factory=dict)

    @property
    def limits(self) -> Limits:
        return Limits(self.timeout)

    @property
    def verify(self) -> bool | ssl.SSLContext:
        return tls_verify(self.ca_cert, self.insecure)

    @property
    def registry_label(self) -> str:
        """What the run tested, stable across runs (no port): the URL, or the image and its extra env."""
        if self.registry_url:
            return self.registry_url.rstrip("/")
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.registry_env.items()))
        return f"{self.binary_label or self.registry_image} {extra}".strip()


SETTINGS = pytest.StashKey[Settings]()


def _run_id(config: pytest.Config) -> str:
    worker_input = getattr(config, "workerinput", None)
    if worker_input and "regconform_run_id" in worker_input:
        return worker_input["regconform_run_id"]
    return os.environ.get("REGCONFORM_RUN_ID") or uuid.uuid4().hex[:10]


def settings_from_config(config: pytest.Config) -> Settings:
    """Read and check every option; raises pytest.UsageError (one line) for values that cannot work."""
    opt = config.getoption
    try:
        profile = load_profile(opt("--profile"))
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    run_id = _run_id(config)
    from regconform.registry.scrub import remember_credentials

    remember_credentials(opt("--username"), os.environ.get("REGCONFORM_PASSWORD"))  # scrubbed from all output
    settings = Settings(
        registry_url=opt("--registry-url"),
        registry_image=opt("--registry-image"),
        backend=opt("--backend"),
        profile=profile,
        namespace=(opt("--namespace") or f"regconform-{run_id}").strip("/"),
        report_dir=Path(opt("--report-dir")),
        gc_command=opt("--gc-command"),
        restart_command=opt("--restart-command"),
        username=opt("--username"),
        password=os.environ.get("REGCONFORM_PASSWORD"),
        ca_cert=opt("--ca-cert"),
        insecure=opt("--insecure"),
        pull=opt("--pull"),
        keep=opt("--keep"),
        run_id=run_id,
        timeout=float(opt("--timeout")),
        registry_env=parse_registry_env(opt("--registry-env") or []),
        registry_binary=opt("--registry-binary"),
    )
    if settings.registry_binary:
        settings.binary_label = _binary_label(settings)
    _check_target_options(settings, opt("--require-gc"))
    if not is_worker(config):
        from regconform.reports.writers import check_report_dir

        try:
            check_report_dir(settings.report_dir)
        except SetupError as exc:
            raise pytest.UsageError(str(exc)) from None
    return settings


def _binary_label(settings: Settings) -> str:
    """--registry-binary checked and named: the image made from it (docker), or its version and sha256 (process)."""
    from regconform.errors import SetupError
    from regconform.targets.imagebuild import inspect_binary

    if settings.registry_url:
        raise pytest.UsageError("--registry-binary runs an embedded registry; it cannot apply to --registry-url")
    try:
        binary = inspect_binary(settings.registry_binary or "")
    except SetupError as exc:
        raise pytest.UsageError(str(exc)) from None
    return binary.image if settings.backend == "docker" else binary.label


def _check_target_options(settings: Settings, require_gc: bool) -> None:
    """Options that cannot work, as one-line usage errors before any check runs."""
    from regconform.targets.preflight import check_namespace

    try:
        check_namespace(settings.namespace)
    except SetupError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        settings.verify  # noqa: B018 - loads --ca-cert
    except (OSError, ssl.SSLError) as exc:
        raise pytest.UsageError(f"--ca-cert {settings.ca_cert!r} is not a readable CA bundle: {exc}") from None
    if require_gc and settings.registry_url:
        missing = [name for name, value in (("--gc-command", settings.gc_command),
                                            ("--restart-command", settings.restart_command)) if not value]
        if missing:
            raise pytest.UsageError(f"--require-gc: no {' and no '.join(missing)} for the registry at "
                                    f"{settings.registry_url} (set them, or REGCONFORM_GC_COMMAND / "
                                    "REGCONFORM_RESTART_COMMAND, or drop --require-gc)")


def raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def reap_orphans_quietly() -> None:
    from regconform.targets.container import reap_orphans

    try:
        reap_orphans()
    except SetupError:
        pass  # no engine: the registry fixture says so, with the fix, when a check needs it


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")
