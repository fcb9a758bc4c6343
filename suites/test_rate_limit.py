"""distribution-spec main §Error Codes: a 429 Too Many Requests SHOULD carry Retry-After (RFC 9110
§10.2.3). A burst of cheap requests either meets the registry's rate limit (then every 429 must say
when to retry) or not (reported unsupported: nothing to judge)."""

from __future__ import annotations

import pytest

from regconform.checks import expect_answer, expect_true, observe, unsupported
from regconform.registry.session import retry_after_seconds

pytestmark = pytest.mark.workflow("errors")


@pytest.mark.spec("distribution-spec §Error Codes: 429 SHOULD include Retry-After")
def test_rate_limited_answers_carry_retry_after(registry, repo, expect):
    """A burst of GET /v2/ and tags/list: every 429 carries a usable Retry-After; without any 429, unsupported."""
    exp = expect("errors.retry-after")
    budget, registry.retry_after_budget = registry.retry_after_budget, 0.0  # see every 429 (no waiting it out)
    try:
        answers = [registry.ping() if i % 2 else registry.list_tags(repo) for i in range(exp["burst"])]
    finally:
        registry.retry_after_budget = budget
    limited = [r for r in answers if r.status_code == 429]
    observe("answers_429", len(limited))
    if not limited:
        expect_true(exp["rate_limited"] != "required", f"no 429 in a burst of {exp['burst']} requests", exp)
        unsupported(exp, f"no 429 in a burst of {exp['burst']} requests: no rate limit to judge")
    expect_true(exp["rate_limited"] != "absent", f"{len(limited)} of {exp['burst']} requests answered 429, "
                "the profile records no rate limit", exp)
    for resp in limited:
        expect_answer(resp, exp, f"{resp.request.method} {resp.request.url.path} answered 429")
        value = resp.headers.get("retry-after")
        expect_true(value is None or retry_after_seconds(value) is not None,
                    f"Retry-After {value[:64]!r} of a 429 is neither delay-seconds nor an HTTP-date", exp)
