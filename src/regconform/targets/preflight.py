"""Checking an external target before any check runs: every failure is one SetupError line.

Order: what needs no network first (URL shape, --require-gc, CA file, credentials given), then
one `GET /v2/` (with the credentials, following a Basic or Bearer challenge). Messages never
carry a password or a token: they name the URL, the user and what to do.
"""

from __future__ import annotations

import re
import socket
import ssl

import httpx

from regconform.errors import SetupError
from regconform.registry.session import tls_verify


def check_external(url: str, *, username: str | None = None, password: str | None = None,
                   ca_cert: str | None = None, insecure: bool = False, gc_command: str | None = None,
                   restart_command: str | None = None, require_gc: bool = False, timeout: float = 10.0) -> None:
    check_url(url)
    if require_gc:
        missing = [name for name, value in (("--gc-command", gc_command), ("--restart-command", restart_command))
                   if not value]
        if missing:
            raise SetupError(f"--require-gc: no {' and no '.join(missing)} for the registry at {url} "
                             "(give them, or REGCONFORM_GC_COMMAND / REGCONFORM_RESTART_COMMAND, or drop --require-gc)")
    try:
        verify = tls_verify(ca_cert, insecure)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"--ca-cert {ca_cert!r} is not a readable CA bundle ({_first_line(exc)})") from None
    if username and not password:
        raise SetupError(f"--username {username!r} given but no password: pipe it to --password-stdin "
                         "or set REGCONFORM_PASSWORD")
    check_registry(url, username=username, password=password, verify=verify, timeout=timeout)


# A repository name component (distribution reference grammar); components joined by "/".
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def check_namespace(namespace: str) -> None:
    """--namespace must be a valid repository path prefix, or every check would fail with NAME_INVALID."""
    parts = namespace.strip("/").split("/")
    if not namespace.strip("/") or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise SetupError(f"--namespace {namespace!r} is not a valid repository prefix: lowercase letters, digits "
                         "and . _ - inside components, components joined by /")
    from regconform.registry.names import (
        NAMESPACE_MAX,
        NAMESPACE_RESERVE,
        REPOSITORY_NAME_MAX,
    )

    if len(namespace.strip("/")) > NAMESPACE_MAX:
        raise SetupError(f"--namespace is {len(namespace.strip('/'))} characters long: at most {NAMESPACE_MAX} "
                         f"(repository names end at {REPOSITORY_NAME_MAX} characters and the run appends up to "
                         f"{NAMESPACE_RESERVE})")


def check_expression(flag: str, expression: str) -> None:
    """-k / -m must parse, else pytest would fail after creating the report folder."""
    try:
        from _pytest.mark.expression import (
            Expression,  # pytest's own parser: the same verdict
        )
    except ImportError:  # private API moved: pytest itself will say it
        return
    try:
        Expression.compile(expression)
    except Exception as exc:  # noqa: BLE001 - SyntaxError in pytest 9, ParseError before
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SetupError(f"{flag} {expression!r} is not a valid pytest expression ({detail})") from None


def check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise SetupError(f"--registry-url {url!r} is not an http:// or https:// URL")
    parsed = httpx.URL(url)
    if parsed.userinfo:
        # Never echo the URL back: it holds a secret.
        raise SetupError("--registry-url must not carry credentials: give --username and the password "
                         "via --password-stdin or REGCONFORM_PASSWORD")
    if not parsed.host:
        raise SetupError(f"--registry-url {url!r} names no host")
    if parsed.path not in ("", "/"):
        raise SetupError(f"--registry-url {url!r}: give the registry's root (scheme://host:port), not a path")


def check_registry(url: str, *, username: str | None = None, password: str | None = None,
                   verify: bool | ssl.SSLContext = True, timeout: float = 10.0) -> None:
    """`GET /v2/` must answer 200 (after authenticating, if the registry asks)."""
    auth = None
    if username:
        from regconform.registry.auth import RegistryAuth
        from regconform.registry.limits import Limits

        auth = RegistryAuth(username, password, Limits(timeout))
    base = url.rstrip("/")
    try:
        from regconform.registry import limits, transport

        bounds = auth.limits if auth is not None else limits.Limits(timeout)
        with httpx.Client(transport=transport.bounded_transport(verify), timeout=timeout, auth=auth,
                          follow_redirects=False) as http, transport.answer_head_deadline(bounds.head_deadline()):
            with http.stream("GET", base + "/v2/") as resp:  # read within the limits: a hostile answer is bounded
                limits.read_body(resp, bounds, limits.MAX_BODY, f"GET {base}/v2/")
    except httpx.ConnectError as exc:
        raise SetupError(_connect_failure(base, exc)) from None
    except httpx.TimeoutException as exc:
        failed = exc.request.url if exc._request is not None else httpx.URL(base)  # noqa: SLF001 - .request raises when unset
        if (failed.host, failed.port) != (httpx.URL(base).host, httpx.URL(base).port):
            raise SetupError(f"the token service {failed.scheme}://{failed.host}:{failed.port} named by {base} did "
                             f"not answer within {timeout:g} s (--timeout sets the wait)") from None
        raise SetupError(f"{base} did not answer within {timeout:g} s (is it reachable? --timeout sets the wait)") from None
    except httpx.HTTPError as exc:
        raise SetupError(f"cannot talk to {base}: {_first_line(exc)}") from None
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"cannot use the TLS settings for {base}: {_first_line(exc)}") from None
    if resp.status_code == 401:
        if username and auth is not None and auth.failure:
            raise SetupError(f"{base} asked for a token and none came: {auth.failure}")
        if username:
            raise SetupError(f"{base} rejected the credentials of user {username!r} (401)")
        scheme = resp.headers.get("www-authenticate", "").split(" ", 1)[0] or "no"
        raise SetupError(f"{base} requires authentication (401, {scheme} challenge): give --username and the "
                         "password via --password-stdin or REGCONFORM_PASSWORD")
    if resp.status_code != 200:
        raise SetupError(f"{base} does not look like a registry: GET /v2/ answered {resp.status_code} "
                         "(expected 200, or 401 with a challenge)")


def _connect_failure(base: str, exc: httpx.ConnectError) -> str:
    where = base
    target = httpx.URL(base)
    failed = exc.request.url if exc._request is not None else target  # noqa: SLF001 - .request raises when unset
    if (failed.host, failed.port) != (target.host, target.port):
        where = f"the token service {failed.scheme}://{failed.host}:{failed.port} named by {base}"
    causes = _causes(exc)
    if any(isinstance(c, ssl.SSLError) for c in causes) or "SSL" in str(exc).upper():
        return f"TLS failure talking to {where}: {_first_line(exc)} (give --ca-cert FILE, or --insecure)"
    if any(isinstance(c, socket.gaierror) for c in causes) or "name or service not known" in str(exc).lower():
        return f"cannot resolve the host of {where} ({_first_line(exc)})"
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in str(exc).lower():
        return f"cannot connect to {where}: connection refused (is the registry running and the port right?)"
    return f"cannot connect to {where}: {_first_line(exc)}"


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
