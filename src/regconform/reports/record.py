"""What one check expected and observed: the raw material of behaviour.json and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from regconform.registry.exchange import Exchange

KEY_HEADERS = ("content-type", "docker-content-digest", "location", "range", "content-range", "link", "oci-subject",
               "oci-filters-applied",
               "docker-distribution-api-version", "www-authenticate", "content-length", "etag")


@dataclass
class CheckRecord:
    expectations: dict[str, dict[str, Any]] = field(default_factory=dict)
    observations: dict[str, Any] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)

    def observe(self, name: str, value: Any) -> None:
        self.observations[name] = value

    def observed_facts(self) -> list[dict[str, Any]]:
        """Per exchange: the facts that define behaviour (status, key headers, error codes)."""
        facts = []
        for ex in self.exchanges:
            fact: dict[str, Any] = {"request": f"{ex.method} {ex.path}", "status": ex.status}
            headers = {h: ex.response_headers[h] for h in KEY_HEADERS if h in ex.response_headers}
            if headers:
                fact["headers"] = headers
            if codes := ex.error_codes():
                fact["errors"] = codes
            facts.append(fact)
        return facts


_current: CheckRecord | None = None


def begin() -> CheckRecord:
    global _current
    _current = CheckRecord()
    return _current


def current() -> CheckRecord | None:
    return _current


def end() -> CheckRecord | None:
    global _current
    rec, _current = _current, None
    return rec


def on_exchange(ex: Exchange) -> None:
    """Client hook: attach every exchange to the check that is running."""
    if _current is not None:
        _current.exchanges.append(ex)
