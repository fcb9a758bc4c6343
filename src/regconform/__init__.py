"""regconform: conformance and behaviour harness for container registries."""

__version__ = "0.1.0"
