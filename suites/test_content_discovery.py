"""Content discovery: listing tags (OCI distribution-spec §Listing Tags, end-8a/8b) and _catalog
(Docker Registry API V2 §Listing Repositories), with pagination by n, last and Link."""

import pytest

from regconform.checks import (
    expect_answer,
    expect_equal,
    expect_true,
    observe,
    unsupported,
)
from regconform.content.images import fixture_set, push_image

pytestmark = pytest.mark.workflow("content-discovery")


def served_tags(registry, repo, exp):
    resp = registry.list_tags(repo)
    expect_answer(resp, exp, f"GET /v2/{repo}/tags/list")
    doc = resp.json()
    expect_equal(doc.get("name"), repo, exp, "tags/list name field")
    observe("tags", doc.get("tags"))
    return doc.get("tags")


def expect_each_listed_once(listed, wanted, exp, what):
    """Every wanted name listed, nothing else, none twice, and in lexical order where the profile says so."""
    expect_equal(sorted(set(listed)), sorted(wanted), exp, what)
    expect_equal(len(listed), len(set(listed)), exp, f"{what}, counting repeats")
    if exp["order"] == "lexical":
        expect_equal(listed, sorted(listed), exp, f"order of {what}")


@pytest.mark.spec("distribution-spec end-8a: GET /v2/<name>/tags/list")
def test_tags_list_names_every_pushed_tag(registry, pushed, expect):
    """Every tag pushed is listed, and nothing else."""
    exp = expect("tags.list")
    tags = served_tags(registry, pushed.repo, exp)
    wanted = {t for img in (*pushed.images.images, pushed.images.index) for t in img.tags}
    expect_true(isinstance(tags, list), f"tags/list answered tags={tags!r}, not a list", exp)
    expect_equal(sorted(tags), sorted(wanted), exp, "tags listed after push")
    if exp["order"] == "lexical":
        expect_equal(tags, sorted(tags), exp, "tags/list order")


@pytest.mark.spec("distribution-spec end-8a: GET /v2/<name>/tags/list")
def test_tags_list_follows_deletions(registry, pushed, expect):
    """Deleting a manifest removes its tags from the list; with none left the list is as the profile says."""
    images = pushed.images
    registry.delete_manifest(pushed.repo, images.index.digest)
    registry.delete_manifest(pushed.repo, images.beta.digest)
    remaining = served_tags(registry, pushed.repo, expect("tags.list"))
    expect_equal(sorted(remaining or []), sorted(images.alpha.tags), None,
                 "tags listed after deleting beta and the index")

    registry.delete_manifest(pushed.repo, images.alpha.digest)
    exp = expect("tags.list-after-all-deleted")
    resp = registry.list_tags(pushed.repo)
    expect_answer(resp, exp, "tags/list of a repository with no tag left")
    if resp.status_code == 200:
        tags = resp.json().get("tags")
        observe("tags", tags)
        expect_equal("null" if tags is None else tags, exp["tags"], exp, "tags field with no tag left")


@pytest.mark.spec("distribution-spec end-8a: 404 NAME_UNKNOWN")
def test_tags_list_of_unknown_repository_answers_404_name_unknown(registry, repo, expect):
    """tags/list of a repository that was never pushed: 404 NAME_UNKNOWN."""
    expect_answer(registry.list_tags(repo), expect("tags.unknown-repository"), "GET tags/list of an unknown repository")


PAGE_TAGS = tuple(f"page-{i:02d}" for i in range(7))


def push_tags(registry, repo, tags=PAGE_TAGS):
    """One image under many tags: the material for pagination checks."""
    image = fixture_set("oci").alpha
    push_image(registry, repo, image, tags=tags)
    return list(tags)


def confirm_pagination_ignored(resp, exp, tags, what):
    """A registry the profile records as ignoring n/last: it served every tag and no Link; then report unsupported."""
    expect_true(resp.status_code in exp.status, f"{what}: status {resp.status_code}, the profile records {exp.describe()}", exp)
    served = resp.json().get("tags") or []
    observe("tags", served)
    expect_equal(sorted(served), sorted(tags), exp, f"{what} (the profile records that n/last are ignored: every tag)")
    expect_true("link" not in resp.headers, f"{what}: a Link header ({resp.headers.get('link')}) although the profile records no pagination", exp)
    unsupported(exp, f"{what}: tags/list pagination")


@pytest.mark.spec("distribution-spec end-8b: GET /v2/<name>/tags/list?n=<int> with Link")
def test_tags_list_paginates_with_n_and_link(registry, repo, expect):
    """tags/list?n=3: pages of at most n tags, continued by Link (or `last`), together every tag once, in order."""
    exp = expect("tags.paginate")
    tags = push_tags(registry, repo)
    first = registry.list_tags(repo, n=3)
    if not exp.supported:
        confirm_pagination_ignored(first, exp, tags, "GET tags/list?n=3")
    pages, resp = [], first
    while resp is not None and len(pages) < 20:
        expect_answer(resp, exp, f"GET tags/list page {len(pages) + 1}")
        page = resp.json().get("tags") or []
        pages.append(page)
        expect_true(len(page) <= 3, f"tags/list?n=3 page {len(pages)} holds {len(page)} tags: {page}", exp)
        if "link" in resp.headers:
            expect_true("next" in resp.links, f"Link header without rel=\"next\": {resp.headers['link']}", exp)
            resp = registry.follow_link(resp)
        elif sum(map(len, pages)) >= len(tags) or not page:
            resp = None
        else:
            expect_true(exp["link"] != "required", f"tags/list?n=3 served {sum(map(len, pages))} of {len(tags)} tags "
                        "and no Link header", exp)
            expect_true(len(page) == 3, f"tags/list?n=3 page {len(pages)} holds {len(page)} tags, more remain, and no Link", exp)
            resp = registry.list_tags(repo, n=3, last=page[-1])
    observe("pages", pages)
    collected = [t for page in pages for t in page]
    expect_each_listed_once(collected, tags, exp, "tags collected over every page")


@pytest.mark.spec("distribution-spec end-8b: GET /v2/<name>/tags/list?n=<int>&last=<tag>")
def test_tags_list_last_starts_after_the_named_tag(registry, repo, expect):
    """tags/list?n=2&last=page-02 answers the two tags after page-02; with `last` alone, every tag after it."""
    exp = expect("tags.paginate-last")
    tags = push_tags(registry, repo)
    resp = registry.list_tags(repo, n=2, last="page-02")
    if not exp.supported:
        confirm_pagination_ignored(resp, exp, tags, "GET tags/list?n=2&last=page-02")
    expect_answer(resp, exp, "GET tags/list?n=2&last=page-02")
    expect_equal(resp.json().get("tags"), ["page-03", "page-04"], exp, "tags after page-02, two of them")
    resp = registry.list_tags(repo, last="page-04")
    expect_answer(resp, exp, "GET tags/list?last=page-04")
    expect_equal(resp.json().get("tags"), ["page-05", "page-06"], exp, "tags after page-04")


@pytest.mark.spec("distribution-spec end-8b: n=0")
def test_tags_list_n_zero_answers_an_empty_list_without_link(registry, repo, expect):
    """tags/list?n=0: an empty list and no Link header (OCI MUST)."""
    exp = expect("tags.page-zero")
    tags = push_tags(registry, repo)
    resp = registry.list_tags(repo, n=0)
    if not exp.supported:
        confirm_pagination_ignored(resp, exp, tags, "GET tags/list?n=0")
    expect_answer(resp, exp, "GET tags/list?n=0")
    expect_equal(resp.json().get("tags") or [], [], exp, "tags served for n=0")
    expect_true("link" not in resp.headers, f"tags/list?n=0 has a Link header: {resp.headers.get('link')}", exp)


# -- _catalog (Docker Registry API V2 §Listing Repositories; not part of the OCI spec) ------------------------
# Only names under the check's own prefix are looked at: listing starts at `last=<prefix>` with a
# small n and stops once the names sort past it, so of a shared registry's other repositories at
# most one name per check is ever served, and none is collected.


def catalog_under(registry, prefix, exp, n):
    """Names under `prefix/` from _catalog?n=<n>&last=<prefix>, following Link; and those names page by page."""
    mine, pages = [], []
    past = prefix + "0"  # '0' follows '/' in ASCII: every `prefix/...` name sorts before it
    resp = registry.catalog(n=n, last=prefix)
    while len(pages) < 50:
        expect_answer(resp, exp, f"GET _catalog page {len(pages) + 1}")
        names = resp.json().get("repositories") or []
        pages.append([name for name in names if name.startswith(prefix + "/")])
        mine += pages[-1]
        expect_true(len(names) <= n, f"_catalog?n={n} page {len(pages)} holds {len(names)} names", exp)
        if not names or any(name >= past for name in names):
            break  # sorted past the prefix: nothing of ours follows
        if "link" in resp.headers:
            expect_true("next" in resp.links, f"_catalog Link without rel=\"next\": {resp.headers['link']}", exp)
            resp = registry.follow_link(resp)
        elif len(names) == n:
            expect_true(exp["link"] != "required", f"_catalog?n={n} page {len(pages)} is full, more names follow, "
                        f"and it has no Link header", exp)
            resp = registry.catalog(n=n, last=names[-1])  # no Link: continue the documented way
        else:
            break
    return mine, pages


def push_repositories(registry, prefix, count):
    image = fixture_set("oci").alpha
    names = [f"{prefix}/r{i}" for i in range(count)]
    for name in names:
        push_image(registry, name, image, tags=("v1",))
    return names


@pytest.mark.spec("Docker Registry API V2: Listing Repositories (GET /v2/_catalog)")
def test_catalog_lists_pushed_repositories(registry, repo, expect):
    """_catalog names every repository pushed (looked at from `last=<prefix>`), each once, in lexical order."""
    exp = expect("catalog.list")
    names = push_repositories(registry, repo, 3)
    listed, _ = catalog_under(registry, repo, exp, n=len(names) + 1)  # a page holds at most one name not ours
    observe("repositories", listed)
    expect_each_listed_once(listed, names, exp, "repositories _catalog lists under the check's prefix")


@pytest.mark.spec("Docker Registry API V2: Listing Repositories, Pagination (n, last, Link)")
def test_catalog_paginates_with_n_and_link(registry, repo, expect):
    """_catalog?n=2: pages of at most two names, each continued by a Link rel="next"; together every repository once."""
    exp = expect("catalog.paginate")
    names = push_repositories(registry, repo, 5)
    if not exp.supported:
        expect_answer(registry.catalog(n=2, last=repo), exp, "GET _catalog?n=2")
    listed, pages = catalog_under(registry, repo, exp, n=2)
    observe("pages", pages)
    expect_true(len(pages) >= 3, f"5 repositories with n=2 came in {len(pages)} pages: {pages}", exp)
    expect_equal(listed, names, exp, "repositories collected over every _catalog page (in order, each once)")


@pytest.mark.spec("Docker Registry API V2: Listing Repositories after deletes")
def test_catalog_after_every_manifest_is_deleted(registry, repo, expect):
    """A repository whose every manifest was deleted: listed in _catalog or not, as the profile records."""
    exp = expect("catalog.emptied-repository")
    image = fixture_set("oci").alpha
    name = f"{repo}/emptied"
    push_image(registry, name, image, tags=("v1",))
    expect_answer(registry.delete_manifest(name, image.digest), expect("manifests.delete-by-digest"), "DELETE the only manifest")
    listed, _ = catalog_under(registry, repo, exp, n=2)
    observe("listed", name in listed)
    if exp["listed"] != "any":
        expect_equal(name in listed, exp["listed"], exp, f"{name} (every manifest deleted) in _catalog")
