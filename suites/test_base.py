"""API version check (Docker Registry HTTP API V2 §"API Version Check"; OCI distribution-spec end-1)."""

import pytest

from regconform.checks import expect_answer

pytestmark = pytest.mark.workflow("base")


@pytest.mark.spec("distribution-spec end-1: GET /v2/")
def test_api_version_check_answers_200_with_version_header(registry, expect):
    """GET /v2/ answers 200 and names the API version."""
    expect_answer(registry.ping(), expect("base.api-version"), "GET /v2/")
