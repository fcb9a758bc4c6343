"""A team's own registry checks, written with regconform's fixtures.

`pip install regconform` registers the plugin (a pytest11 entry point), so a test file anywhere can ask
for the registry under test (`registry`: the API client, recorded and fenced to the run's namespace),
a fresh repository (`repo`), the fixture images pushed to one (`pushed`), and the profile's expectations
(`expect`). Run it like the suites:

    pytest examples/own-checks --profile examples/own-checks/team-profile --registry-url http://127.0.0.1:5000

Without --registry-url the plugin starts the embedded registry, as `regconform run` does.
"""

import pytest

from regconform.checks import expect_answer, expect_true

pytestmark = pytest.mark.workflow("team")


def test_every_pushed_manifest_is_served_by_digest(registry, pushed, expect):
    """Every image of the fixture set is served by digest, with its Docker-Content-Digest."""
    exp = expect("team.manifest-by-digest")
    for image in pushed.images.images:
        resp = registry.head_manifest(pushed.repo, image.digest)
        expect_answer(resp, exp)
        expect_true(resp.headers["docker-content-digest"] == image.digest,
                    f"HEAD {image.digest}: Docker-Content-Digest {resp.headers['docker-content-digest']}", exp)


def test_fixture_repositories_stay_small(registry, pushed, expect):
    """tags/list of a fixture repository stays under the team's limit."""
    exp = expect("team.tag-limit")
    resp = registry.list_tags(pushed.repo)
    expect_answer(resp, exp)
    tags = resp.json().get("tags") or []
    expect_true(len(tags) <= exp["max_tags"], f"{len(tags)} tags listed, more than {exp['max_tags']}", exp)
