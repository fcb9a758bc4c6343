"""oci-1.1 judges what the spec requires: the referrers API is optional (§Backwards Compatibility), so a
registry without it (2.8.2's 404, no OCI-Subject) is reported unsupported, never passed and never failed;
a referrers endpoint that answers wrongly still fails, with a message naming the spec section.
"""

from __future__ import annotations

import json

import pytest
from faultproxy import Response, Rule

pytestmark = pytest.mark.selftest_slow

GETS = {"lists_every_manifest_with_the_subject": "§Listing Referrers (end-12a)",
        "filter_by_artifact_type": "§Listing Referrers (end-12b)",
        "of_a_manifest_without_referrers": "§Listing Referrers (end-12a)",
        "with_malformed_digest": "§Listing Referrers (end-12a)"}
PUT = "answers_oci_subject"
SELECT = "test_referrers.py"  # the referrers module alone (the kinds and clients suites use referrers too)


def broken(req):
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "boom"}]}).encode()
    return Response(500, {"Content-Type": "application/json"}, body, req)


def test_missing_referrers_api_is_unsupported_and_a_broken_one_fails(fault_proxy, run_suites):
    clean = run_suites(fault_proxy().url, "-k", SELECT, "--ignore=suites/mirror", profile="oci-1.1")
    for name in [*GETS, PUT]:
        assert clean.outcome(name) == "unsupported", clean.tail()
        assert ("as the spec lets a registry without this feature answer" in clean.reason(name)
                or "without OCI-Subject, as a registry without the referrers API does" in clean.reason(name)), clean.reason(name)
    assert clean.outcome("subject_is_accepted") == "passed" and clean.outcome("tag_schema_fallback") == "passed"

    run = run_suites(fault_proxy([Rule(r"/referrers/", respond=broken)]).url, "-k", SELECT,
                     "--ignore=suites/mirror", profile="oci-1.1")
    assert run.returncode == 1, run.tail()
    assert sorted(run.failed_ids()) == sorted(run.ids(name)[0] for name in GETS), run.tail()
    for name, section in GETS.items():
        reason = run.reason(name)
        assert "got 500 UNKNOWN" in reason and section in reason and "[oci-1.1: referrers." in reason, reason
    assert run.outcome(PUT) == "unsupported"  # the PUT went to the registry untouched
