"""distribution-spec §Listing Tags: the order of the tags list. v1.1.1 says lexical (case-insensitive
alphanumeric); main (after v1.1.1) allows lexical or "ASCIIbetical" (Go's sort.Strings)."""

from __future__ import annotations

import pytest

from regconform.checks import expect_answer, expect_true, observe
from regconform.content.images import fixture_set, push_image

pytestmark = pytest.mark.workflow("content-discovery")

# Upper and lower case, digits and separators: ASCIIbetical and case-insensitive orders differ.
TAGS = ("beta", "Alpha", "alpha-2", "ALPHA_3", "b.1", "Zulu", "_under", "9lives", "a", "B")


def lexical(tags):
    """Case-insensitive alphanumeric: non-decreasing when compared case-folded (ties in any order)."""
    return all(a.casefold() <= b.casefold() for a, b in zip(tags, tags[1:], strict=False))


def asciibetical(tags):
    return list(tags) == sorted(tags)


ORDERS = {"lexical": lexical, "asciibetical": asciibetical, "directory": lambda tags: True,
          "lexical-or-asciibetical": lambda tags: lexical(tags) or asciibetical(tags)}


@pytest.mark.spec("distribution-spec end-8a: tags in lexical or ASCIIbetical order")
def test_tags_list_order_with_mixed_case(registry, repo, expect):
    """Ten tags of mixed case, digits and separators: all listed, in the order the profile records (`directory`: any)."""
    exp = expect("tags.order")
    push_image(registry, repo, fixture_set("oci").alpha, tags=TAGS)
    resp = registry.list_tags(repo)
    expect_answer(resp, exp, "GET tags/list")
    try:
        tags = resp.json().get("tags")
    except (ValueError, AttributeError):
        tags = None
    observe("tags", tags)
    expect_true(isinstance(tags, list) and sorted(tags) == sorted(TAGS), f"tags/list answered {str(tags)[:200]}, "
                f"not the {len(TAGS)} tags pushed", exp)
    expect_true(ORDERS[exp["order"]](tags), f"tags/list order {tags} is not {exp['order']}", exp)
