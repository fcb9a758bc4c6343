"""Comparing what a registry did with what its profile expects.

A failed comparison raises `Deviation` whose message names the request, the expectation
(and the profile it comes from) and what the registry did instead. A behaviour the profile
records as unsupported raises `Unsupported` once the recorded answer is confirmed: it is
reported as unsupported, never as a pass; a different answer is still a deviation.
"""

from __future__ import annotations

import fnmatch
import reprlib

import httpx

from regconform.profiles import Expectation, ProfileError
from regconform.registry import limits, media
from regconform.registry.exchange import error_codes_of
from regconform.registry.scrub import safe
from regconform.reports import record

# Values a registry sent, as they appear in messages: bounded in depth, items and length.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlong = 6, 60
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxdict = _BRIEF.maxset = 20
_BRIEF.maxstring = _BRIEF.maxother = 300


def brief(value: object) -> str:
    """repr() of a registry-supplied value for a message: bounded, scrubbed, terminal-safe."""
    return safe(_BRIEF.repr(value))


class Deviation(AssertionError):
    """The registry did not behave as its profile says (the message is bounded, scrubbed and terminal-safe)."""

    def __init__(self, message: str) -> None:
        message = safe(message)
        if len(message) > limits.MAX_MESSAGE:
            message = message[:limits.MAX_MESSAGE] + f" <… cut: {len(message)} characters in all>"
        super().__init__(message)


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
        rec.observe(name, limits.bounded(value, items=limits.MAX_OBSERVED_ITEMS))


def _source(exp: Expectation | None) -> str:
    """` [profile: key] (note)`: where an expectation comes from, and why (the note names the spec section or measurement)."""
    if exp is None:
        return ""
    return f" [{exp.profile}: {exp.key}]" + (f" ({exp.note})" if exp.note else "")


def deviation(exp: Expectation, what: str, got: str) -> Deviation:
    return Deviation(f"{what}: expected {exp.describe()}{_source(exp)}, got {got}")


def expect_answer(resp: httpx.Response, exp: Expectation, what: str | None = None) -> None:
    """Status, error code and headers of one answer against an expectation."""
    note_expectation(exp)
    what = what or request_line(resp)
    if exp.status and resp.status_code not in exp.status:
        raise deviation(exp, what, describe_answer(resp))
    if exp.error and resp.request.method != "HEAD":  # HEAD answers carry no body to hold the code
        codes = error_codes_of(resp.content)
        if exp.error not in codes:
            raise deviation(exp, what, f"{resp.status_code} with error codes {brief(codes) if codes else 'none'} "
                                       f"(body {brief(resp.content[:120].decode('utf-8', 'replace'))})")
    for name, want in exp.headers.items():
        got = resp.headers.get(name)
        if want == "*" and got is None:
            raise deviation(exp, what, f"{resp.status_code} with no {name} header (the profile requires it)")
        if want != "*" and got != want:
            raise deviation(exp, what, f"{name}: {brief(got)} instead of {want!r}")
    if not exp.supported:
        raise Unsupported(f"{what}: unsupported by profile {exp.profile} ({exp.note or exp.key}); "
                          f"the registry answered {describe_answer(resp)} as recorded")


def expect_equal(actual: object, expected: object, exp: Expectation | None, what: str) -> None:
    """Equality check with a message that names both sides."""
    if exp is not None:
        note_expectation(exp)
    if actual != expected:
        raise Deviation(f"{what}: expected {brief(expected)}{_source(exp)}, got {brief(actual)}")


def expect_true(condition: bool, what: str, exp: Expectation | None = None) -> None:
    if exp is not None:
        note_expectation(exp)
    if not condition:
        raise Deviation(f"{what}{_source(exp)}")


def unsupported(exp: Expectation, what: str) -> None:
    """End a check whose behaviour the profile records as unsupported (after verifying the record)."""
    note_expectation(exp)
    raise Unsupported(f"{what}: unsupported by profile {exp.profile} ({exp.note or exp.key})")


# -- the Accept negotiation matrix (pull suite and the content kinds) ------------------------------------

ACCEPTS: dict[str, tuple[str, ...] | None] = {
    "none": None,
    "oci": (media.OCI_MANIFEST, media.OCI_INDEX),
    "schema2": (media.DOCKER_MANIFEST,),
    "list": (media.DOCKER_MANIFEST_LIST,),
    "index": (media.OCI_INDEX,),
    "all": media.ALL_MANIFEST_TYPES,
}


def negotiated_outcome(resp: httpx.Response, stored: bytes, default_platform: bytes | None) -> str:
    """What a GET served: `200 stored`, `200 default-platform`, `200 other` or `<status> <codes or ->`."""
    if resp.status_code == 200:
        if resp.content == stored:
            return "200 stored"
        return "200 default-platform" if resp.content == default_platform else "200 other"
    return f"{resp.status_code} {' '.join(error_codes_of(resp.content)) or '-'}"


def expected_outcomes(exp: Expectation, cell: str) -> list[str]:
    """The profile's outcome patterns for a matrix cell: the first key (an fnmatch pattern) that matches."""
    for pattern, outcome in exp["outcomes"].items():
        if fnmatch.fnmatchcase(cell, pattern):
            return [outcome] if isinstance(outcome, str) else list(outcome)
    raise ProfileError(f"profile {exp.profile}: {exp.key} has no outcome for {cell!r}")


def accept_matrix(registry, repo: str, refs: list[tuple[str, str]], prefix: str, stored: bytes,  # noqa: ANN001
                  default_platform: bytes | None, exp: Expectation, *, head: bool = False) -> tuple[dict, list[str]]:
    """Every Accept set of ACCEPTS for every (label, reference): the outcome of each cell `<prefix>.<label>.<accept>`
    and the cells that deviate from the profile's patterns; with `head`, every cell is asked by HEAD too and a HEAD
    status that differs from the GET's deviates."""
    observed: dict[str, str] = {}
    wrong: list[str] = []
    for label, ref in refs:
        for accept_name, accept in ACCEPTS.items():
            cell = f"{prefix}.{label}.{accept_name}"
            observed[cell] = got = negotiated_outcome(registry.get_manifest(repo, ref, accept=accept), stored,
                                                      default_platform)
            head_status = registry.head_manifest(repo, ref, accept=accept).status_code if head else None
            wanted = expected_outcomes(exp, cell)
            if not any(fnmatch.fnmatchcase(got, w) for w in wanted):
                wrong.append(f"{label}/{accept_name}: expected {' or '.join(wanted)}, got {got}")
            elif head_status is not None and head_status != int(got.split()[0]):
                wrong.append(f"{label}/{accept_name}: HEAD answered {head_status}, GET {got}")
    return observed, wrong


def end_if_unavailable(resp: httpx.Response, exp: Expectation, what: str) -> None:
    """Where the spec lets a registry go without a feature (the referrers API, §Backwards Compatibility; an optional
    digest algorithm; refusing a manifest whose content it does not hold), a profile says `unavailable = <status>`
    (a code or a list; "no-header" for a PUT without OCI-Subject): that answer ends the check as unsupported,
    never as a pass, and any other answer is judged by the rest of the expectation."""
    mark = exp.get("unavailable")
    if mark is None:
        return
    codes = mark if isinstance(mark, list) else [mark]
    if resp.status_code in codes:
        unsupported(exp, f"{what}: answered {resp.status_code}, as the spec lets a registry without this feature answer")
    if mark == "no-header" and resp.status_code in exp.status and "oci-subject" not in resp.headers:
        unsupported(exp, f"{what}: answered {resp.status_code} without OCI-Subject, as a registry without the "
                         "referrers API does")
