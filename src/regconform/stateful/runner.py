"""Running the stateful machine within a budget, deterministically, and turning a failure into a reproducer.

The budget (stateful/budget.py) bounds the sequences and their steps, or the time. The seed makes the run repeatable: Hypothesis draws every sequence from
it, so the same seed against a registry that behaves the same way replays the same sequences, the
same failure and the same shrunk reproducer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.stateful import run_state_machine_as_test

from regconform.registry.exchange import Exchange
from regconform.stateful.budget import Budget
from regconform.stateful.machine import RegistryMachine
from regconform.stateful.sequence import Context, Recorder

SHRINK_SECONDS = 120.0  # shrinking a failure replays sequences against the registry: bounded
REQUEST_HEADERS = ("content-type", "accept", "content-range")
RESPONSE_HEADERS = ("docker-content-digest", "range", "content-type", "location")


def seed_of(run_id: str, fmt: str) -> int:
    """The seed a run uses when none is given: from the run id (so each run explores other sequences)."""
    return int(hashlib.sha256(f"{run_id}:{fmt}".encode()).hexdigest()[:8], 16)


@dataclass
class Failure:
    """The shrunk failing sequence, ready for the reports."""

    message: str
    error: BaseException
    seed: int
    budget: Budget
    steps: list[dict[str, Any]]
    exchanges: list[Exchange]

    @property
    def replay(self) -> str:
        return f"--stateful-seed {self.seed} --stateful-budget {self.budget}"

    def step_lines(self) -> list[str]:
        return [f"{s['step']}. {s['operation']}" for s in self.steps]

    def reproducer(self) -> list[str]:
        """Numbered steps, each with its numbered exchanges (request line, key headers, status, digest)."""
        lines = []
        for s in self.steps:
            lines.append(f"{s['step']}. {s['operation']}")
            lines += [f"   {line}" for line in s["exchanges"]]
        return lines

    def describe(self) -> str:
        first = self.message.splitlines()[0] if self.message else type(self.error).__name__
        return (f"stateful: {first} (after {len(self.steps)} steps, shrunk; seed {self.seed}; replay: {self.replay})\n"
                + "\n".join(self.step_lines()))


@dataclass
class Result:
    seed: int
    budget: Budget
    sequences: int
    failure: Failure | None = None
    rounds: list[int] = field(default_factory=list)


def _bounded(value: str, limit: int = 160) -> str:
    """A registry's header value as one printable line of bounded length (it is hostile input)."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[:limit] + "…"


def exchange_line(number: int, ex: Exchange) -> str:
    req = "; ".join(f"{h}: {_bounded(ex.request_headers[h])}" for h in REQUEST_HEADERS if h in ex.request_headers)
    resp = "; ".join(f"{h}: {_bounded(ex.response_headers[h])}" for h in RESPONSE_HEADERS if h in ex.response_headers)
    codes = " ".join(_bounded(c, 40) for c in ex.error_codes()[:4])
    return (f"#{number} {ex.method} {ex.path}{f' [{req}]' if req else ''} → {ex.status}"
            f"{' ' + codes if codes else ''}{f' [{resp}]' if resp else ''}")


def _steps_of(recorder: Recorder) -> list[dict[str, Any]]:
    out = []
    bounds = [s.start for s in recorder.steps[1:]] + [len(recorder.exchanges)]
    for i, (step, end) in enumerate(zip(recorder.steps, bounds, strict=True), start=1):
        lines = []
        for n in range(step.start, end):
            mark = " (check)" if 0 <= step.checks_from <= n else ""
            lines.append(exchange_line(n + 1, recorder.exchanges[n]) + mark)
        out.append({"step": i, "operation": step.text, "exchanges": lines})
    return out


def machine_for(ctx: Context) -> type[RegistryMachine]:
    return type("RegistryStateMachine", (RegistryMachine,), {"ctx": ctx})


def _settings(budget: Budget) -> settings:
    return settings(max_examples=budget.sequences, stateful_step_count=budget.steps, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False,
                    verbosity=Verbosity.quiet, phases=(Phase.generate, Phase.shrink))


@contextmanager
def shrinking_limited(seconds: float) -> Iterator[None]:
    """Hypothesis shrinks for up to 5 minutes; every shrink step here replays HTTP sequences, so less.

    The knob is internal to Hypothesis (hypothesis.internal.conjecture.engine, present in 6.x, the range
    pyproject.toml allows); without it shrinking just takes its default time.
    """
    from hypothesis.internal.conjecture import engine

    before = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if before is not None:
        engine.MAX_SHRINKING_SECONDS = seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        if before is not None:
            engine.MAX_SHRINKING_SECONDS = before


def run(ctx: Context, budget: Budget, first_seed: int, shrink_seconds: float = SHRINK_SECONDS) -> Result:
    """Sequences within the budget; on the first failure, its shrunk reproducer (Hypothesis replays it last)."""
    result = Result(first_seed, budget, 0)
    deadline = time.monotonic() + budget.seconds if budget.seconds else None
    current = first_seed
    while True:
        result.rounds.append(current)
        machine = seed(current)(machine_for(ctx))
        try:
            with shrinking_limited(shrink_seconds):
                run_state_machine_as_test(machine, settings=_settings(budget))
        except Exception as exc:  # noqa: BLE001 - a Deviation, or the registry broke the protocol
            result.sequences = ctx.sequence
            steps = _steps_of(ctx.recorder)
            result.failure = Failure(str(exc) or type(exc).__name__, exc, current, budget, steps,
                                     list(ctx.recorder.exchanges))
            return result
        result.sequences = ctx.sequence
        if deadline is None or time.monotonic() >= deadline:
            return result
        current = (current + 1) % (1 << 32)


__all__ = ["Budget", "Failure", "Result", "run", "seed_of"]
