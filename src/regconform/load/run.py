"""Load mode: pull/push traffic from Locust users against a registry (`regconform load`).

Locust runs headless in a child process (it monkey-patches the standard library with gevent, which
must not happen to the CLI process) with the users defined in `regconform.load.locustfile`; that
module writes `load.json` and `load.html` when the test ends. The figures, the report and the
comparison of two reports are in `figures.py`. For load beyond one machine run the locustfile in
Locust's master/worker mode (see README, "Load mode").
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regconform.errors import SetupError
from regconform.load.figures import (
    DEFAULT_MIX,
    MAX_DURATION,
    MAX_OPERATIONS_PER_USER,
    MAX_USERS,
    Finding,
    LoadUsageError,
    build_report,
    compare,
    compare_files,
    counts_as_error,
    endpoint_of,
    load_report,
    parse_mix,
    render_html,
    summary_lines,
    write_report,
)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# The child process gets this long beyond --duration to start, stop its users and write the report.
GRACE_SECONDS = 120


# -- running ---------------------------------------------------------------------------------------


@dataclass
class LoadOptions:
    registry_url: str | None
    users: int = 8
    duration: float = 20.0
    mix: str = DEFAULT_MIX
    report_dir: Path = Path("reports")
    namespace: str | None = None
    spawn_rate: float | None = None
    large_layer: int = 1 << 20
    registry_image: str = "registry:2"
    backend: str = "docker"
    pull: bool = False
    insecure: bool = False
    ca_cert: str | None = None
    keep: bool = False


def validate(opts: LoadOptions) -> dict[str, int]:
    mix = parse_mix(opts.mix)
    if not 1 <= opts.users <= MAX_USERS:
        raise LoadUsageError(f"--users {opts.users}: between 1 and {MAX_USERS}")
    if not 1 <= opts.duration <= MAX_DURATION:
        raise LoadUsageError(f"--duration {opts.duration:g}: between 1 and {MAX_DURATION:g} seconds")
    if opts.registry_url and not opts.registry_url.startswith(("http://", "https://")):
        raise LoadUsageError(f"--registry-url {opts.registry_url!r}: expected http://host:port or https://host:port")
    return mix


def locust_command(opts: LoadOptions, url: str, namespace: str) -> list[str]:
    """The headless Locust run (a child process: Locust patches the standard library with gevent)."""
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "--users", str(opts.users), "--spawn-rate", str(opts.spawn_rate or opts.users),
            "--run-time", f"{int(math.ceil(opts.duration))}s", "--stop-timeout", "10", "--host", url,
            "--loglevel", "WARNING", "--exit-code-on-error", "0",
            "--mix", opts.mix, "--namespace", namespace, "--report-dir", str(opts.report_dir),
            "--large-layer", str(opts.large_layer), "--max-operations", str(MAX_OPERATIONS_PER_USER)]
    if opts.insecure:
        argv.append("--insecure")
    if opts.ca_cert:
        argv += ["--ca-cert", opts.ca_cert]
    if opts.registry_url and not opts.keep:
        argv.append("--cleanup")
    return argv


def _start_embedded(opts: LoadOptions, run_id: str) -> Any:
    from regconform.targets import embedded_target
    from regconform.targets.base import registry_env

    image = opts.registry_image
    if opts.backend == "docker":
        from regconform.targets.engine import docker_client
        from regconform.targets.imagebuild import resolve_registry_image

        image = resolve_registry_image(docker_client(), opts.registry_image, pull=opts.pull)
    return embedded_target(opts.backend, image, run_id, registry_env(True))


def run(opts: LoadOptions, out: Any = sys.stdout) -> dict[str, Any]:
    """Run the load against --registry-url (or an embedded registry started and removed here)."""
    validate(opts)
    run_id = os.environ.get("REGCONFORM_RUN_ID") or uuid.uuid4().hex[:10]
    namespace = (opts.namespace or f"regconform-{run_id}/load").strip("/")
    target = None
    if opts.registry_url:
        from regconform.registry.session import tls_verify
        from regconform.targets.preflight import check_registry

        url = opts.registry_url.rstrip("/")
        try:
            verify = tls_verify(opts.ca_cert, opts.insecure)
        except OSError as exc:  # ssl.SSLError is an OSError
            raise SetupError(f"--ca-cert {opts.ca_cert!r} is not a readable CA bundle ({exc})") from None
        check_registry(url, verify=verify)
    else:
        target = _start_embedded(opts, run_id)
        url = target.url
    json_path = opts.report_dir / "load.json"
    json_path.unlink(missing_ok=True)  # a stale report must never pass for this run's
    try:
        argv = locust_command(opts, url, namespace)
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=opts.duration + GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            raise SetupError(f"the Locust run did not end within {opts.duration + GRACE_SECONDS:g} s") from None
        if not json_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SetupError(f"the Locust run (exit {proc.returncode}, {time.monotonic() - started:.0f} s) wrote no "
                             f"{json_path}: {tail[0][:300]}")
    finally:
        if target is not None:
            target.stop()
    doc = load_report(json_path)
    for line in summary_lines(doc):
        print(line, file=out)
    print(f"  report: {json_path} and {opts.report_dir / 'load.html'}", file=out)
    return doc


__all__ = ["LoadOptions", "run", "compare", "compare_files", "build_report", "parse_mix", "endpoint_of",
           "counts_as_error", "render_html", "write_report", "Finding"]


# -- command line (`regconform load`; cli.py only registers it) ----------------------------------------


def add_parser(sub: Any) -> None:
    env = os.environ.get
    p = sub.add_parser("load", help="pull/push load on a registry with Locust; or compare two load reports",
                       description="Pull/push load (Locust, headless) against --registry-url, or an embedded "
                                   "registry started for it; writes load.json and load.html. With --compare "
                                   "A.json B.json: flag throughput drops and latency rises from A to B (exit 1).")
    p.add_argument("--registry-url", default=env("REGCONFORM_REGISTRY_URL"),
                   help="the registry to load (only ever one you name); default: an embedded registry")
    p.add_argument("--users", type=int, default=8, help="concurrent users (default 8)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20, at most 3600)")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"operation weights (default {DEFAULT_MIX})")
    p.add_argument("--spawn-rate", type=float, default=None, help="users started per second (default: all at once)")
    p.add_argument("--large-layer", type=int, default=1 << 20, help="layer size in bytes of the large image pulled")
    p.add_argument("--report-dir", default=env("REGCONFORM_REPORT_DIR", "reports"), help="where load.json and load.html go")
    p.add_argument("--namespace", default=env("REGCONFORM_NAMESPACE"), help="repository prefix for what the load pushes")
    p.add_argument("--registry-image", default=env("REGCONFORM_REGISTRY_IMAGE", "registry:2"))
    p.add_argument("--backend", choices=["docker", "process"], default=env("REGCONFORM_BACKEND", "docker"))
    p.add_argument("--pull", action="store_true", help="allow pulling --registry-image when absent")
    p.add_argument("--insecure", action="store_true", help="do not verify the registry's TLS certificate")
    p.add_argument("--ca-cert", default=env("REGCONFORM_CA_CERT"))
    p.add_argument("--keep", action="store_true", help="keep what the load pushed to --registry-url")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="compare two load reports instead")
    p.add_argument("--threshold", type=float, default=20.0, help="percent change flagged by --compare (default 20)")


def cmd_load(ns: Any) -> int:
    if ns.compare:
        return compare_files(ns.compare[0], ns.compare[1], ns.threshold)
    opts = LoadOptions(registry_url=ns.registry_url, users=ns.users, duration=ns.duration, mix=ns.mix,
                       report_dir=Path(ns.report_dir), namespace=ns.namespace, spawn_rate=ns.spawn_rate,
                       large_layer=ns.large_layer, registry_image=ns.registry_image, backend=ns.backend,
                       pull=ns.pull, insecure=ns.insecure, ca_cert=ns.ca_cert, keep=ns.keep)
    doc = run(opts)
    return 0 if doc["totals"]["failures"] == 0 and not doc["errors"] else 1
