"""Locust users that pull and push the harness's fixture images through the harness's client.

`regconform load` runs this module headless. It also works with Locust directly, e.g. for load
beyond one machine (master/worker mode; every worker needs regconform installed):

    locust -f src/regconform/locustfile.py --headless --master --expect-workers 4 \\
        --users 64 --run-time 60s --host http://127.0.0.1:5000 --report-dir reports
    locust -f src/regconform/locustfile.py --worker --master-host <master>   # on each load machine

Every HTTP exchange of a user's RegistryClient becomes one Locust request event (named by
endpoint, e.g. `GET /v2/<name>/blobs/<digest>`); each whole image pull or push is one more
event of type PULL or PUSH. The master (or the only process) writes load.json and load.html.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import ssl
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gevent
import httpx
from locust import User, constant, events, task
from locust import __version__ as locust_version
from locust import stats as locust_stats
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from regconform import __version__
from regconform.content.images import (
    FORMATS,
    PushError,
    fixture_set,
    make_image,
    push_fixture_set,
    push_image,
)
from regconform.load import figures as load
from regconform.registry.client import RegistryClient
from regconform.registry.session import tls_verify
from regconform.registry.errors import ClientError, DigestMismatch
from regconform.registry.exchange import Exchange

# Sub-millisecond resolution for loopback latencies (Locust documents this hook for custom buckets).
locust_stats.bucket_response_time = load.bucket_response_time


class StatusError(Exception):
    """An answer that counts as an error; its text starts with the status so reports group by it."""


class OperationFailed(Exception):
    """A pull or push could not complete (its text names the step)."""


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("regconform")
    group.add_argument("--mix", default=load.DEFAULT_MIX, help="operation weights, e.g. pull=80,push=20")
    group.add_argument("--namespace", default=None, help="repository prefix for everything pushed (default regconform-<id>/load)")
    group.add_argument("--report-dir", default=None, help="write load.json and load.html here when the test ends")
    group.add_argument("--large-layer", type=int, default=1 << 20, help="layer size in bytes of the large image pulled")
    group.add_argument("--max-operations", type=int, default=load.MAX_OPERATIONS_PER_USER,
                       help="each user stops after this many operations")
    group.add_argument("--cleanup", action="store_true", help="delete what the users pushed when the test ends")
    group.add_argument("--insecure", action="store_true", help="do not verify the registry's TLS certificate")
    group.add_argument("--ca-cert", default=None, help="CA bundle to verify the registry's TLS certificate")


class _Run:
    """What this process knows about the test: options, the pull set, the clients, the timeline."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:6]
        self.user_ids = itertools.count(1)
        self.pull_targets: list[tuple[str, str]] = []
        self.clients: list[RegistryClient] = []
        self.started = time.monotonic()
        self.stopped: float | None = None
        self.started_at = ""
        self.timeline: list[dict[str, Any]] = []
        self.sampler: Any = None

    def namespace(self, environment: Any) -> str:
        opts = environment.parsed_options
        ns = getattr(opts, "namespace", None) or os.environ.get("REGCONFORM_NAMESPACE")
        return (ns or f"regconform-{self.token}/load").strip("/")


RUN = _Run()


def _options_of(environment: Any) -> Any:
    return environment.parsed_options


def seed_pull_repositories(client: RegistryClient, namespace: str, large_layer: int) -> list[tuple[str, str]]:
    """Push what the users pull: both fixture sets and one image with a large layer. Returns (repo, tag)s."""
    targets: list[tuple[str, str]] = []
    for fmt in FORMATS:
        repo = f"{namespace}/pull-{fmt}"
        fixtures = fixture_set(fmt)
        push_fixture_set(client, repo, fixtures)
        targets += [(repo, fixtures.alpha.tags[0]), (repo, fixtures.beta.tags[0]), (repo, fixtures.index.tags[0])]
    large = make_image("large", "oci", ["load-large"], tags=("large",), layer_size=large_layer)
    push_image(client, f"{namespace}/pull-large", large)
    targets.append((f"{namespace}/pull-large", "large"))
    return targets


class RegistryUser(User):
    """One client pulling and pushing images in the proportions of --mix, with no think time."""

    wait_time = constant(0)

    def on_start(self) -> None:
        opts = _options_of(self.environment)
        self.mix = load.parse_mix(getattr(opts, "mix", None) or load.DEFAULT_MIX)
        self.namespace = RUN.namespace(self.environment)
        self.max_operations = int(getattr(opts, "max_operations", load.MAX_OPERATIONS_PER_USER))
        verify = _verify(opts)
        self.uid = next(RUN.user_ids)
        self.operations = 0
        self.client = RegistryClient(self.host, verify=verify, namespace=self.namespace, on_exchange=self._exchange)
        RUN.clients.append(self.client)

    def on_stop(self) -> None:
        self.client.on_exchange = None

    def _exchange(self, ex: Exchange) -> None:
        endpoint = load.endpoint_of(ex.path)
        # A HEAD answer announces a length but carries no body.
        size = ex.request_body_size + (0 if ex.method == "HEAD" else ex.response_body_size)
        error = StatusError(f"HTTP {ex.status}") if load.counts_as_error(ex.method, endpoint, ex.status) else None
        self.environment.events.request.fire(request_type=ex.method, name=endpoint, response_time=ex.duration_ms,
                                             response_length=size, exception=error, context={})

    @task
    def operate(self) -> None:
        if self.operations >= self.max_operations:
            raise StopUser()
        self.operations += 1
        op = random.choices(list(self.mix), weights=list(self.mix.values()))[0]
        started = time.perf_counter()
        size, error = 0, None
        try:
            size = self.pull() if op == "pull" else self.push()
        except (OperationFailed, ClientError, PushError, DigestMismatch, httpx.HTTPError, ValueError, KeyError) as exc:
            error = exc
        finally:
            self.client.exchanges.clear()  # the load has no per-check record; keep memory flat
        what = "image: manifest(s), then config and layers" if op == "pull" else "image: blobs (HEAD, upload), manifest"
        self.environment.events.request.fire(request_type=op.upper(), name=what,
                                             response_time=(time.perf_counter() - started) * 1000,
                                             response_length=size, exception=error, context={})

    def pull(self) -> int:
        """What a client does: manifest by tag, for an index its first platform's manifest, then every blob."""
        repo, tag = random.choice(RUN.pull_targets)
        resp = self.client.get_manifest(repo, tag)
        if resp.status_code != 200:
            raise OperationFailed(f"GET manifest {repo}:{tag}: HTTP {resp.status_code}")
        size = len(resp.content)
        doc = json.loads(resp.content)
        if "manifests" in doc:
            body = self.client.pull_manifest(repo, doc["manifests"][0]["digest"])
            size += len(body)
            doc = json.loads(body)
        for desc in (doc["config"], *doc["layers"]):
            size += len(self.client.pull_blob(repo, desc["digest"]))
        return size

    def push(self) -> int:
        """A new image sharing the fixtures' base layer (as images share base layers), with a layer of its own."""
        n = self.operations
        fmt = random.choice(FORMATS)
        seed = f"{self.namespace}:{RUN.token}:{self.uid}:{n}"
        image = make_image(f"load-{self.uid}-{n}", fmt, ["base", seed], tags=(f"u{self.uid}-{n}",))
        push_image(self.client, f"{self.namespace}/push-{RUN.token}-{self.uid}", image)
        return sum(b.size for b in image.blobs) + len(image.manifest)


# -- timeline, cleanup and the report ---------------------------------------------------------------


def _sample(environment: Any, interval: float = 1.0) -> None:
    """Per second and endpoint: requests and p50/p95 of that second (bounded by the run's length)."""
    previous: dict[str, tuple[dict[Any, int], int]] = {}
    last = time.monotonic()
    for _ in range(int(load.MAX_DURATION / interval) + 60):
        gevent.sleep(interval)
        if RUN.stopped is not None:
            return
        now = time.monotonic()
        sample: dict[str, Any] = {"t": round(now - RUN.started, 2), "endpoints": {}}
        http_requests = 0
        for entry in list(environment.stats.entries.values()):
            key = f"{entry.method} {entry.name}"
            times, count = dict(entry.response_times), entry.num_requests
            before_times, before_count = previous.get(key, ({}, 0))
            previous[key] = (times, count)
            delta = {k: v - before_times.get(k, 0) for k, v in times.items() if v > before_times.get(k, 0)}
            if count > before_count:
                sample["endpoints"][key] = {"requests": count - before_count,
                                            "p50_ms": load.percentile(delta, 0.5), "p95_ms": load.percentile(delta, 0.95)}
                if entry.method.lower() not in load.OPERATIONS:
                    http_requests += count - before_count
        sample["requests_per_s"] = round(http_requests / (now - last), 2)
        last = now
        RUN.timeline.append(sample)


def _verify(opts: Any) -> bool | ssl.SSLContext:
    return tls_verify(getattr(opts, "ca_cert", None), bool(getattr(opts, "insecure", False)))


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    """Push what the users pull, in each process that runs users, before Locust starts its
    --run-time clock: setup is not load."""
    if isinstance(environment.runner, MasterRunner) or not environment.host:
        return
    opts = _options_of(environment)
    seeder = RegistryClient(environment.host, verify=_verify(opts), namespace=RUN.namespace(environment))
    RUN.clients.append(seeder)
    RUN.pull_targets = seed_pull_repositories(seeder, RUN.namespace(environment),
                                              int(getattr(opts, "large_layer", 1 << 20)))
    seeder.exchanges.clear()


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    RUN.started = time.monotonic()
    RUN.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not isinstance(environment.runner, WorkerRunner):
        RUN.sampler = gevent.spawn(_sample, environment)


@events.test_stop.add_listener
def _test_stop(environment: Any, **_: Any) -> None:
    RUN.stopped = time.monotonic()
    if getattr(_options_of(environment), "cleanup", False):
        for client in RUN.clients:
            client.on_exchange = None
            client.record = False
            try:
                client.remove_pushed()
            except (ClientError, httpx.HTTPError):
                pass  # best effort on a registry the user runs; what is left lives under the run's namespace


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    opts = _options_of(environment)
    report_dir = getattr(opts, "report_dir", None)
    if isinstance(environment.runner, WorkerRunner) or not report_dir:
        return
    stats = environment.stats
    entries = [load.Entry.of(e) for e in stats.entries.values()]
    errors = [(e.method, e.name, locust_stats.StatsError.parse_error(e.error), e.occurrences)
              for e in stats.errors.values()]
    elapsed = (RUN.stopped or time.monotonic()) - RUN.started
    meta = {
        "target": environment.host,
        "users": getattr(opts, "num_users", None),
        "duration_s": getattr(opts, "run_time", None),
        "mix": load.parse_mix(getattr(opts, "mix", None) or load.DEFAULT_MIX),
        "namespace": RUN.namespace(environment),
        "large_layer_bytes": getattr(opts, "large_layer", None),
        "started_at": RUN.started_at,
        "harness": __version__,
        "locust": locust_version,
    }
    load.write_report(load.build_report(entries, errors, elapsed, meta, RUN.timeline), Path(report_dir))
