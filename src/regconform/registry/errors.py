"""Errors of the harness talking to a registry (never a registry deviation by themselves)."""


class ClientError(Exception):
    """A problem of the harness talking to the registry (not a registry deviation)."""


class UnsafeLocation(ClientError):
    """The registry pointed the client at another origin; the harness never follows it."""


class DigestMismatch(AssertionError):
    """Content served under a digest does not hash to that digest."""
