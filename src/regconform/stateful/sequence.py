"""What one stateful run keeps about its sequences: the steps and exchanges of the one running now
(after a failure, the minimal one: the reproducer), the context every sequence shares, and the
handles on content a sequence put into a repository, from which later steps draw their targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from regconform.content.images import Format
from regconform.registry.client import RegistryClient
from regconform.registry.exchange import Exchange
from regconform.stateful.model import Behaviour


@dataclass
class Step:
    text: str
    start: int            # index of its first exchange in Recorder.exchanges
    checks_from: int = -1  # where the invariant's exchanges begin (-1: none yet)


@dataclass(frozen=True)
class HeldBlob:
    """A blob the sequence put into a repository (later steps draw their targets from these)."""

    repo: str
    blob: int

    def __repr__(self) -> str:
        return f"blob{self.blob}@{self.repo}"


@dataclass(frozen=True)
class HeldManifest:
    repo: str
    manifest: int
    tag: str | None

    def __repr__(self) -> str:
        return f"manifest{self.manifest}@{self.repo}:{self.tag or 'digest'}"


@dataclass
class Recorder:
    """The steps and exchanges of the sequence running now (after a failure: the minimal one)."""

    steps: list[Step] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)

    def begin(self) -> None:
        self.steps.clear()
        self.exchanges.clear()

    def step(self, text: str) -> None:
        self.steps.append(Step(text, len(self.exchanges)))

    def checking(self) -> None:
        if self.steps and self.steps[-1].checks_from < 0:
            self.steps[-1].checks_from = len(self.exchanges)

    def add(self, ex: Exchange) -> None:
        self.exchanges.append(ex)


@dataclass
class Context:
    """What every sequence of one stateful run shares: the target, the profile, the content format."""

    behaviour: Behaviour
    fmt: Format
    namespace: str
    client: RegistryClient
    recorder: Recorder = field(default_factory=Recorder)
    # Garbage collection + restart (None: the target cannot); returns the client to use afterwards.
    collect_and_restart: Callable[[], RegistryClient] | None = None
    sequence: int = 0

    def attach(self, client: RegistryClient) -> RegistryClient:
        """Route a client's exchanges to the recorder (not to the check record: thousands per run)."""
        client.on_exchange = self.recorder.add
        self.client = client
        return client
