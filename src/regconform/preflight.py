"""Checking that a URL is a reachable registry before any check runs: one line per failure."""

from __future__ import annotations

import ssl

import httpx

from regconform.errors import SetupError


def check_registry(url: str, *, username: str | None = None, password: str | None = None,
                   verify: bool | str = True) -> None:
    if not url.startswith(("http://", "https://")):
        raise SetupError(f"--registry-url {url!r} is not an http:// or https:// URL")
    auth = None
    if username:
        from regconform.auth import RegistryAuth

        auth = RegistryAuth(username, password or "", verify=verify)
    try:
        with httpx.Client(verify=verify, timeout=10, auth=auth) as http:
            resp = http.get(url.rstrip("/") + "/v2/")
    except httpx.ConnectError as exc:
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in str(exc).upper() or "SSL" in str(exc).upper():
            raise SetupError(f"TLS failure talking to {url}: {_first_line(exc)} (give --ca-cert FILE, or --insecure)") from None
        raise SetupError(f"cannot connect to {url}: {_first_line(exc)}") from None
    except httpx.TimeoutException:
        raise SetupError(f"{url} did not answer within 10 s") from None
    except httpx.HTTPError as exc:
        raise SetupError(f"cannot talk to {url}: {_first_line(exc)}") from None
    except OSError as exc:
        raise SetupError(f"cannot use the TLS settings for {url}: {exc}") from None
    if resp.status_code == 401:
        if username:
            raise SetupError(f"{url} rejected the credentials of user {username!r} (401)")
        raise SetupError(f"{url} requires authentication (401): give --username and the password via --password-stdin or REGCONFORM_PASSWORD")
    if resp.status_code != 200:
        raise SetupError(f"{url} does not look like a registry: GET /v2/ answered {resp.status_code}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
