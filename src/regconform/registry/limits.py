"""The one set of limits on what a registry can make the harness read, wait for or follow.

Every byte a registry sends is hostile until proven otherwise: an answer that never ends, a body
declared at 20 GiB, a gzip bomb, a token service that never answers, a registry dripping 10 bytes a
second, JSON nested 900 levels deep, redirects in circles. The client (`client.py`), the token flow
(`auth.py`) and the recorder (`exchange.py`) all read through this module, so one table says what
the harness will put up with (the README's "Limits" section states the same numbers):

| limit | value | why |
| --- | --- | --- |
| manifest / JSON answer body (after decompression) | 4 MiB | distribution's own manifest limit (`maxManifestBodySize = 4 << 20`); no tag page, catalog page or error of a sane registry comes near it |
| blob read into memory (`get_blob`, `pull_blob`) | the size expected, else 64 MiB | fixture blobs are KiB-sized; a blob never makes the harness read more than the digest's size |
| blob streamed (`stream_blob`) | the size expected, else 4 GiB | streamed and hashed piece by piece: memory stays flat, the cap bounds the time |
| token answer / token | 64 KiB / 16 KiB | real JWTs are 1-4 KiB; nothing larger is ever stored or sent back |
| JSON nesting | 64 levels | Distribution documents nest 5-6 levels; deeper is "not valid/too deep", never a RecursionError |
| connect / read (each wait for the next bytes) | `--timeout` (default 10 s) | one number for every request, the token service's included |
| whole transfer | `--timeout` + size / 256 KiB/s | a 4 KiB answer dripped at 10 B/s is cut off after ~10 s, a 1 GiB blob may take 68 min |
| an answer's head (status line + headers; a token answer whole) | `--timeout` + 100 KiB / 256 KiB/s | httpcore's cap on a head is 100 KiB; a header line every second is cut off at ~10.4 s (transport.py) |
| redirects | 5 hops | Go's http client allows 10, containerd 10; a registry's blob redirect is 1 hop (S3/CDN) |
| cleanup of an external registry at the end | 30 s in all, stops at the first request that times out | a frozen registry never holds the end of a run |
| excerpt of a body in a report | 2 KiB (with the true size) | enough to read an error; a 30 MB tag list is not copied into reports |
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

MAX_BODY = 4 * MiB
MAX_BLOB_BUFFERED = 64 * MiB
MAX_BLOB_STREAMED = 4 * GiB
MAX_TOKEN_ANSWER = 64 * KiB
MAX_TOKEN = 16 * KiB
MAX_JSON_DEPTH = 64
DEFAULT_TIMEOUT = 10.0
MIN_THROUGHPUT = 256 * KiB  # bytes per second, averaged over the whole transfer
MAX_REDIRECTS = 5
MAX_HEAD = 100 * KiB  # httpcore's own cap on an answer's status line and headers (MAX_INCOMPLETE_EVENT_SIZE)
CLEANUP_BUDGET = 30.0
EXCERPT = 2 * KiB
MAX_MESSAGE = 2000  # characters of one check's reason on the terminal and in the reports
MAX_OBSERVED_ITEMS = 100  # items of a list observed by a check (the true length is kept)


class LimitExceeded(httpx.HTTPError):
    """A registry's answer went beyond one of the harness's limits: a deviation of the registry.

    An httpx.HTTPError, so whatever handles a broken transfer (cleanup, tolerant reads) handles this too.
    """

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        if request is not None:
            self.request = request


class BodyTooLarge(LimitExceeded):
    """More bytes than the limit (or than the size declared or expected)."""


class TransferTooSlow(LimitExceeded):
    """An answer arrived slower than the minimum throughput allows."""


class JSONTooDeep(ValueError):
    """A JSON document nested deeper than MAX_JSON_DEPTH (a ValueError: "not valid JSON" to every caller)."""


@dataclass(frozen=True)
class Limits:
    """The limits of one client (only the timeout is a user option; the rest are the table above)."""

    timeout: float = DEFAULT_TIMEOUT
    max_body: int = MAX_BODY
    min_throughput: int = MIN_THROUGHPUT
    max_redirects: int = MAX_REDIRECTS

    def httpx_timeout(self) -> httpx.Timeout:
        # connect, read (per wait), write and pool: each the one --timeout.
        return httpx.Timeout(self.timeout)

    def transfer_deadline(self, size: int) -> float:
        """Seconds a transfer of `size` bytes may take in all."""
        return self.timeout + size / self.min_throughput

    def head_deadline(self) -> float:
        """Seconds an answer's head may take in all, from the first byte awaited."""
        return self.transfer_deadline(MAX_HEAD)


def describe_size(size: int) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"


def declared_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length", "")
    return int(value) if value.isdigit() and len(value) < 20 else None


def _decoder(resp: httpx.Response) -> Any:
    """A zlib decompressor for gzip/deflate answers (None: the bytes are the body)."""
    encoding = resp.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def iter_body(resp: httpx.Response, limits: Limits, cap: int, what: str) -> Iterator[bytes]:
    """The decoded body of a streamed answer, piece by piece, never more than `cap` bytes in all.

    Decompression is bounded too (each step asks zlib for at most what is left of the cap, so 8 MB of
    gzip never becomes 8 GiB in memory). Raises BodyTooLarge past the cap, TransferTooSlow when the
    transfer falls below the minimum throughput (after --timeout of grace).
    """
    started = time.monotonic()
    received = 0
    decoder = _decoder(resp)
    request = resp.request
    declared = declared_length(resp)
    if decoder is None and declared is not None and declared > cap:
        raise BodyTooLarge(f"{what}: the answer declares {describe_size(declared)}, more than the "
                           f"{describe_size(cap)} the harness reads; not read", request=request)

    def account(piece: bytes) -> bytes:
        nonlocal received
        received += len(piece)
        if received > cap:
            raise BodyTooLarge(f"{what}: the answer is larger than {describe_size(cap)} "
                               f"(declared {_declared(resp)}); the harness stopped reading", request=request)
        return piece

    for raw in resp.iter_raw():
        if decoder is None:
            yield account(raw)
        else:
            data = raw
            while data:
                piece = decoder.decompress(data, cap - received + 1)
                data = decoder.unconsumed_tail
                if piece:
                    yield account(piece)
        elapsed = time.monotonic() - started
        if elapsed > limits.transfer_deadline(received):
            raise TransferTooSlow(f"{what}: {describe_size(received)} in {elapsed:.1f} s, below the minimum "
                                  f"throughput of {describe_size(limits.min_throughput)}/s after "
                                  f"{limits.timeout:g} s of grace; the harness gave up", request=request)
    if decoder is not None:
        tail = decoder.flush()
        if tail:
            yield account(tail)


def _declared(resp: httpx.Response) -> str:
    length = declared_length(resp)
    return describe_size(length) if length is not None else "no Content-Length"


def read_body(resp: httpx.Response, limits: Limits, cap: int, what: str) -> bytes:
    """The whole decoded body of a streamed answer within `cap` (see iter_body)."""
    return b"".join(iter_body(resp, limits, cap, what))


# -- JSON within limits ---------------------------------------------------------------------------

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth_exceeds(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests deeper than `limit` (strings ignored; no recursion, linear time)."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    depth = 0
    for byte in _STRINGS.sub(b'""', raw):
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def loads(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """json.loads within the depth limit: JSONTooDeep (a ValueError) instead of a RecursionError."""
    if json_depth_exceeds(data, limit):
        raise JSONTooDeep(f"JSON nested deeper than {limit} levels (not parsed)")
    try:
        return json.loads(data)
    except RecursionError:  # belt and braces: the scan above should make this unreachable
        raise JSONTooDeep(f"JSON nested deeper than {limit} levels (not parsed)") from None


def bounded(value: Any, depth: int = MAX_JSON_DEPTH, items: int | None = None) -> Any:
    """A copy of a JSON-like value safe to record: nesting cut at `depth`, lists cut at `items` (with the true length)."""
    if depth <= 0:
        return f"<nested deeper than {MAX_JSON_DEPTH} levels>"
    if isinstance(value, dict):
        return {str(k): bounded(v, depth - 1, items) for k, v in list(value.items())[:items]}
    if isinstance(value, list | tuple):
        kept = [bounded(v, depth - 1, items) for v in list(value)[:items]]
        if items is not None and len(value) > items:
            kept.append(f"<… {len(value) - items} more, {len(value)} in all>")
        return kept
    if isinstance(value, str) and len(value) > EXCERPT * 2:
        return value[:EXCERPT] + f"<… {len(value)} characters in all>"
    return value

# Seconds the client may wait in all, per request, for 429 answers' Retry-After (within the run's deadlines).
RETRY_AFTER_BUDGET = 10.0
