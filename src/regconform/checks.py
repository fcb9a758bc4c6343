"""Comparing what a registry did with what its profile expects.

A failed comparison raises `Deviation` whose message names the request, the expectation
(and the profile it comes from) and what the registry did instead. A behaviour the profile
records as unsupported raises `Unsupported` once the recorded answer is confirmed: it is
reported as unsupported, never as a pass; a different answer is still a deviation.
"""

from __future__ import annotations

import httpx

from regconform import record
from regconform.client import error_codes_of
from regconform.profiles import Expectation


class Deviation(AssertionError):
    """The registry did not behave as its profile says."""


class Unsupported(Exception):
    """The profile records this behaviour as unsupported, and the registry answered as recorded."""


def describe_answer(resp: httpx.Response) -> str:
    codes = error_codes_of(resp.content) if resp.content else []
    return " ".join([str(resp.status_code), *codes]) if codes else str(resp.status_code)


def request_line(resp: httpx.Response) -> str:
    return f"{resp.request.method} {resp.request.url.raw_path.decode()}"


def note_expectation(exp: Expectation) -> None:
    if (rec := record.current()) is not None:
        rec.expectations[exp.key] = exp.as_dict()


def observe(name: str, value: object) -> None:
    """Record a fact for the reports (e.g. the tag list as served)."""
    if (rec := record.current()) is not None:
        rec.observe(name, value)


def deviation(exp: Expectation, what: str, got: str) -> Deviation:
    note = f" ({exp.note})" if exp.note else ""
    return Deviation(f"{what}: expected {exp.describe()} [{exp.profile}: {exp.key}]{note}, got {got}")


def expect_answer(resp: httpx.Response, exp: Expectation, what: str | None = None) -> None:
    """Status, error code and headers of one answer against an expectation."""
    note_expectation(exp)
    what = what or request_line(resp)
    if exp.status and resp.status_code not in exp.status:
        raise deviation(exp, what, describe_answer(resp))
    if exp.error and resp.request.method != "HEAD":  # HEAD answers carry no body to hold the code
        codes = error_codes_of(resp.content)
        if exp.error not in codes:
            raise deviation(exp, what, f"{resp.status_code} with error codes {codes or 'none'} (body {resp.text[:120]!r})")
    for name, want in exp.headers.items():
        got = resp.headers.get(name)
        if want == "*" and got is None:
            raise deviation(exp, what, f"{resp.status_code} with no {name} header (the profile requires it)")
        if want != "*" and got != want:
            raise deviation(exp, what, f"{name}: {got!r} instead of {want!r}")
    if not exp.supported:
        raise Unsupported(f"{what}: unsupported by profile {exp.profile} ({exp.note or exp.key}); "
                          f"the registry answered {describe_answer(resp)} as recorded")


def expect_equal(actual: object, expected: object, exp: Expectation | None, what: str) -> None:
    """Equality check with a message that names both sides."""
    if exp is not None:
        note_expectation(exp)
    if actual != expected:
        where = f" [{exp.profile}: {exp.key}]" if exp else ""
        raise Deviation(f"{what}: expected {expected!r}{where}, got {actual!r}")


def expect_true(condition: bool, what: str, exp: Expectation | None = None) -> None:
    if exp is not None:
        note_expectation(exp)
    if not condition:
        where = f" [{exp.profile}: {exp.key}]" if exp else ""
        raise Deviation(f"{what}{where}")


def unsupported(exp: Expectation, what: str) -> None:
    """End a check whose behaviour the profile records as unsupported (after verifying the record)."""
    note_expectation(exp)
    raise Unsupported(f"{what}: unsupported by profile {exp.profile} ({exp.note or exp.key})")
