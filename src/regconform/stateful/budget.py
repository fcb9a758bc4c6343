"""The stateful budget: how many sequences of how many steps, or for how long (no Hypothesis import here:
the option table validates budgets before anything heavy loads).

`SEQUENCESxSTEPS` (e.g. 6x16: at most 6 sequences of at most 16 steps per content format; what
`regconform run` uses) or a duration (`90s`, `10m`, `1h`: rounds of sequences, one seed each, until
the time is up; what `regconform explore` uses).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

DEFAULT_BUDGET = "6x16"
DEFAULT_EXPLORE_BUDGET = "10m"
ROUND_SEQUENCES = 25  # a duration budget runs rounds of this many sequences, one seed each
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh])$")
_COUNTS = re.compile(r"^(\d+)(?:x(\d+))?$")


class BudgetError(ValueError):
    """A --stateful-budget that is neither SEQUENCESxSTEPS nor a duration."""


@dataclass(frozen=True)
class Budget:
    sequences: int
    steps: int
    seconds: float | None = None  # a duration budget: rounds until the time is up

    @classmethod
    def parse(cls, text: str, default_steps: int = 16) -> Budget:
        text = text.strip().lower()
        if m := _DURATION.match(text):
            seconds = float(m[1]) * {"s": 1, "m": 60, "h": 3600}[m[2]]
            if seconds <= 0:
                raise BudgetError(f"--stateful-budget {text!r}: the duration must be positive")
            return cls(ROUND_SEQUENCES, default_steps, seconds)
        if m := _COUNTS.match(text):
            sequences, steps = int(m[1]), int(m[2] or default_steps)
            if sequences < 1 or not 1 <= steps <= 200:
                raise BudgetError(f"--stateful-budget {text!r}: need at least 1 sequence and 1 to 200 steps")
            return cls(sequences, steps)
        raise BudgetError(f"--stateful-budget {text!r}: expected SEQUENCESxSTEPS (e.g. 6x16) or a duration (90s, 10m)")

    def __str__(self) -> str:
        return f"{self.sequences}x{self.steps}"


def budget_option(text: str) -> str:
    """argparse `type=` of --stateful-budget / --budget: the text if it parses, else a one-line error."""
    try:
        Budget.parse(text)
    except BudgetError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    return text


def seed_option(text: str) -> int:
    """argparse `type=` of --stateful-seed: a whole number from 0 to 2**32-1."""
    if not text.strip().isdigit() or int(text) >= 1 << 32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed (a whole number from 0 to {(1 << 32) - 1})")
    return int(text)
