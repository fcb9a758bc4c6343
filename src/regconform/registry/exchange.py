"""One recorded HTTP exchange, redacted before anything keeps it: the raw material of every report.

Redaction happens when an Exchange is made (`__post_init__`): secret headers become `<redacted>`,
and every known secret (scrub.py) is scrubbed from the URL, every header and both excerpts, so
nothing made from an exchange can carry one. Excerpts are bounded (limits.EXCERPT) and say the
true size of what they cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from regconform.registry import limits
from regconform.registry.scrub import REDACTED, scrub

SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
BODY_EXCERPT_LIMIT = limits.EXCERPT


@dataclass
class Exchange:
    """One request and its answer, as the reports show it (credentials already redacted)."""

    method: str
    url: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    request_body_size: int
    response_body_size: int
    response_excerpt: str
    duration_ms: float
    request_excerpt: str = ""  # JSON bodies sent (manifests), bounded; never form bodies
    redirects: list[str] = field(default_factory=list)  # the hops followed before this answer ("302 → URL")

    def __post_init__(self) -> None:
        self.url = scrub(self.url)
        self.request_headers = {k: scrub(v) for k, v in self.request_headers.items()}
        self.response_headers = {scrub(k): scrub(v) for k, v in self.response_headers.items()}
        self.response_excerpt = scrub(self.response_excerpt)
        self.request_excerpt = scrub(self.request_excerpt)
        self.redirects = [scrub(hop) for hop in self.redirects]

    @property
    def path(self) -> str:
        return httpx.URL(self.url).raw_path.decode()

    def error_codes(self) -> list[str]:
        return error_codes_of(self.response_excerpt)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "request_headers": self.request_headers,
            "response_headers": self.response_headers,
            "request_body_size": self.request_body_size,
            "response_body_size": self.response_body_size,
            "response_excerpt": self.response_excerpt,
            "duration_ms": round(self.duration_ms, 2),
            "request_excerpt": self.request_excerpt,
            **({"redirects": self.redirects} if self.redirects else {}),
        }


def error_codes_of(body: str | bytes) -> list[str]:
    """Codes of a Distribution error envelope `{"errors":[{"code":...}]}`; [] if not one."""
    try:
        doc = limits.loads(body)
    except (ValueError, TypeError):
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return []
    return [str(e["code"])[:100] for e in doc["errors"][:limits.MAX_OBSERVED_ITEMS] if isinstance(e, dict) and "code" in e]


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        key = k.lower()
        value = REDACTED if key in SECRET_HEADERS else v
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def redact_body(text: str) -> str:
    """Token endpoint answers carry bearer tokens: never keep them."""
    try:
        doc = limits.loads(text)
    except ValueError:
        return text
    if isinstance(doc, dict) and any(k in doc for k in ("token", "access_token", "refresh_token")):
        for k in ("token", "access_token", "refresh_token"):
            if k in doc:
                doc[k] = REDACTED
        return json.dumps(doc)
    return text


def response_excerpt_of(resp: httpx.Response) -> str:
    ctype = resp.headers.get("content-type", "")
    if not resp.is_stream_consumed and not hasattr(resp, "_content"):
        return ""
    if "json" in ctype or "text" in ctype or ctype == "" or "manifest" in ctype or "index" in ctype:
        return excerpt(resp.content)
    return f"<{len(resp.content)} bytes of {ctype[:100]}>"


def excerpt(body: bytes) -> str:
    """The first BODY_EXCERPT_LIMIT bytes of a text body (token answers redacted), saying the true size when cut."""
    if len(body) <= BODY_EXCERPT_LIMIT:
        return redact_body(body.decode("utf-8", "replace"))
    return body[:BODY_EXCERPT_LIMIT].decode("utf-8", "replace") + f"<… cut: {len(body)} bytes in all>"


def request_excerpt_of(req: httpx.Request) -> str:
    """The manifest or other JSON a request sent, for the reports; blobs and form bodies are left out."""
    ctype = req.headers.get("content-type", "")
    if not ("json" in ctype or "manifest" in ctype or "index" in ctype):
        return ""
    try:
        body = req.content
    except httpx.RequestNotRead:  # streamed: not kept
        return ""
    return excerpt(body)
