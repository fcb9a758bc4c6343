"""The one secret scrubber, and the one escape of registry text for a terminal.

Every secret the process knows (the password, base64 of `user:password`, every bearer or refresh
token a token service handed out) is remembered here, in every spelling a recorder or a writer can
produce (raw, URL-encoded, JSON-escaped, HTML-escaped). `scrub` replaces each with `<redacted>`; the
recorder (`exchange.Exchange`), the check reasons (plugin), every report writer and the Allure
results all pass through it, so a registry that echoes the Authorization header back, in a body, a
header, a URL or an error message, gets nothing into a file or onto the terminal.

`terminal_safe` escapes control characters (ANSI/OSC sequences, carriage returns, bidi overrides)
so registry-supplied text printed by pytest cannot clear the screen or retitle the window.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from typing import Any
from urllib.parse import quote

REDACTED = "<redacted>"
# A secret shorter than this is not scrubbed: it would mangle every digest and word it occurs in
# (the README asks for real passwords; the self-tests use long ones).
MIN_SECRET = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _spellings(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret, safe="/:@"), json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1], html.escape(secret), html.escape(secret, quote=False)}


def remember(*secrets: str | None) -> None:
    """Scrub these values (and their encoded spellings) from everything recorded from now on."""
    global _pattern
    fresh = {s for secret in secrets if secret and len(secret) >= MIN_SECRET for s in _spellings(secret)}
    with _lock:
        if fresh <= _secrets:
            return
        _secrets.update(fresh)
        alternatives = sorted(_secrets, key=len, reverse=True)  # longest first: a spelling inside another
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def remember_credentials(username: str | None, password: str | None) -> None:
    """The password, and the Basic credentials built from it (with and without base64 padding)."""
    if not password:
        return
    basic = base64.b64encode(f"{username or ''}:{password}".encode()).decode()
    remember(password, basic, basic.rstrip("="), base64.urlsafe_b64encode(f"{username or ''}:{password}".encode()).decode())


def forget_all() -> None:
    """Self-tests only: start again with no secrets."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def scrub(text: str) -> str:
    pattern = _pattern
    return pattern.sub(REDACTED, text) if pattern is not None and text else text


def scrub_value(value: Any) -> Any:
    """`scrub` over every string (keys included) of a JSON-like value."""
    if _pattern is None:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_value(k): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


# C0 controls but tab and newline, DEL, C1 controls, and the bidi/zero-width format characters
# that reorder or hide what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def terminal_safe(text: str) -> str:
    """Control characters as visible escapes (`\\x1b`, `\\u202e`): nothing a registry sends drives the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                        text)


def safe(text: str) -> str:
    """Scrubbed and terminal-safe: what may be printed or written as a check's reason."""
    return terminal_safe(scrub(text))
