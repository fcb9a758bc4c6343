"""Stateful checks: random operation sequences, every answer and every step checked against a model.

Hypothesis draws sequences of operations (blob pushes of three kinds, mounts, manifest and index
pushes by tag and digest, retags, deletes by digest and tag, blob deletes, upload sessions started,
continued, queried, cancelled, finished and addressed under another repository, HEAD/GET with each
Accept set, tags/list, _catalog; garbage collection and a restart on a registry of the check's own)
and checks each answer against the reference model (src/regconform/stateful/). A failure is shrunk
to a minimal sequence, reported as numbered steps and HTTP exchanges with the seed that replays it.
The budget (--stateful-budget) and seed (--stateful-seed) bound and fix what runs.
"""

from __future__ import annotations

import pytest

from regconform.checks import Deviation, observe
from regconform.registry.client import RegistryClient
from regconform.reports import record
from regconform.stateful.budget import Budget
from regconform.stateful.model import Behaviour
from regconform.stateful.runner import run, seed_of
from regconform.stateful.sequence import Context

pytestmark = pytest.mark.workflow("stateful")

# A sequence with garbage collection restarts the registry once: those get a tenth of the budget's sequences
# (at least one), in one content format.
GC_SHARE = 10


def run_stateful(pytestconfig, settings, profile, client: RegistryClient, namespace: str, fmt: str, *,
                 variant: str, budget: Budget, restart=None, gc=None) -> None:
    given = pytestconfig.getoption("--stateful-seed")
    first = given if given is not None else seed_of(settings.run_id, f"{variant}-{fmt}")
    ctx = Context(Behaviour(profile), fmt, f"{namespace}/{variant}", client)
    hook = client.on_exchange
    ctx.attach(client)
    if gc is not None:
        def collect_and_restart() -> RegistryClient:
            gc()
            return ctx.attach(restart())

        ctx.collect_and_restart = collect_and_restart
    try:
        result = run(ctx, budget, first)
    finally:
        ctx.client.on_exchange = hook
    observe("budget", str(budget) if budget.seconds is None else f"{budget.seconds:.0f} s of {budget} rounds")
    failure = result.failure
    if failure is None:
        return
    if (rec := record.current()) is not None:
        rec.exchanges.extend(failure.exchanges)  # the minimal sequence: the record's numbered exchanges
    observe("stateful_seed", failure.seed)
    observe("replay", failure.replay)
    observe("reproducer", failure.reproducer())
    if isinstance(failure.error, AssertionError):
        raise Deviation(failure.describe())
    raise RuntimeError(failure.describe()) from failure.error


@pytest.mark.spec("distribution-spec: the registry as a state machine (push, pull, tags, deletion, uploads)")
def test_stateful_sequences_match_the_model(pytestconfig, settings, profile, registry, namespace, fmt):
    """Random operation sequences: every answer and, after every step, everything served equals the reference model."""
    budget = Budget.parse(pytestconfig.getoption("--stateful-budget"))
    run_stateful(pytestconfig, settings, profile, registry, namespace, fmt, variant="stateful", budget=budget)


@pytest.mark.needs_gc
@pytest.mark.spec("distribution docs: garbage collection, as one more operation of the state machine")
def test_stateful_sequences_with_garbage_collection(pytestconfig, settings, profile, gc_registry, namespace):
    """Random sequences that also garbage-collect and restart the registry: afterwards exactly the referenced blobs remain."""
    fmt = "oci"  # GC does not look at media types; one format keeps the registry restarts few
    full = Budget.parse(pytestconfig.getoption("--stateful-budget"))
    budget = Budget(max(1, full.sequences // GC_SHARE), full.steps, full.seconds)
    target = gc_registry.target

    def gc() -> None:
        result = target.garbage_collect()
        assert result.returncode == 0, f"registry garbage-collect exited {result.returncode}: {result.output[-300:]}"

    run_stateful(pytestconfig, settings, profile, gc_registry.client, namespace, fmt, variant="stateful-gc",
                 budget=budget, restart=gc_registry.restart, gc=gc)
