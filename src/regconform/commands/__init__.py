"""The `regconform` subcommands, one module each (`add_parser(sub)` and `run(ns, extra) -> exit code`)."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def fail(message: str) -> int:
    print(f"regconform: error: {message}", file=sys.stderr)
    return EXIT_ERROR


class QuietStdout:
    """Standard output that goes quiet when its reader leaves (`regconform profiles | head -1`).

    SIGPIPE stays ignored (Python's default), so a closed pipe never kills a run before its teardown has
    removed what it started; the first failed write points fd 1 at /dev/null and the command carries on.
    """

    def __init__(self, stream: object) -> None:
        self._stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                return self._stream.write(text)  # type: ignore[attr-defined]
            except BrokenPipeError:
                self._go_quiet()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self._stream.flush()  # type: ignore[attr-defined]
            except BrokenPipeError:
                self._go_quiet()

    def _go_quiet(self) -> None:
        import os

        self.closed_by_reader = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())  # type: ignore[attr-defined]
        os.close(devnull)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)
