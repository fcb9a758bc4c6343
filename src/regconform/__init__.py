"""regconform: conformance and behaviour harness for container registries."""

__version__ = "0.1.0"
USER_AGENT = f"regconform/{__version__}"  # on every request, token requests too
