"""Content digests: computed and verified the same way everywhere (sha256 and sha512)."""

from __future__ import annotations

import hashlib
from typing import Any

from regconform.registry.errors import ClientError, DigestMismatch

# OCI image-spec §Digests: the registered algorithms. Encoded lengths are fixed (hex of the hash).
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
CANONICAL = "sha256"


def digest_of(data: bytes, algorithm: str = CANONICAL) -> str:
    """`<algorithm>:<hex>` of the bytes; an algorithm regconform does not know is a ClientError."""
    return f"{algorithm}:{hasher(algorithm, data).hexdigest()}"


def sha256_digest(data: bytes) -> str:
    return digest_of(data, "sha256")


def sha512_digest(data: bytes) -> str:
    return digest_of(data, "sha512")


def algorithm_of(digest: str) -> str:
    return digest.partition(":")[0]


def hasher(algorithm: str, data: bytes = b"") -> Any:
    """A hashlib object for a registered algorithm (fed `data`); anything else is refused, never guessed."""
    if algorithm not in ALGORITHMS:
        raise ClientError(f"digest algorithm {algorithm[:40]!r} is not verified by regconform "
                          f"(known: {', '.join(ALGORITHMS)})")
    return hashlib.new(algorithm, data)


def hasher_for(digest: str) -> Any:
    """An empty hashlib object of the digest's algorithm, for verifying a stream as it arrives."""
    return hasher(algorithm_of(digest))


def verify_digest(data: bytes, digest: str, what: str) -> None:
    got = digest_of(data, algorithm_of(digest))
    if got != digest:
        raise DigestMismatch(f"{what} hashes to {got}")


def names_bytes(digest: str | None, data: bytes) -> bool:
    """Whether `digest` (e.g. a Docker-Content-Digest that MAY use another algorithm than the client's)
    is a digest of exactly these bytes; False for None or an algorithm regconform does not know."""
    if not digest or algorithm_of(digest) not in ALGORITHMS:
        return False
    return digest_of(data, algorithm_of(digest)) == digest
