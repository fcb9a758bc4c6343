"""Errors that end a run with one clear line and exit code 2 (usage or environment)."""


class SetupError(Exception):
    """The harness cannot run as asked: bad input, or the environment lacks something."""
