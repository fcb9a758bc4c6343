"""The content matrix can fail: fixture kinds are deterministic and what the spec says they are, and
each deviation mode (a FaultProxy in front of a real 2.8.2) turns exactly the matching kind checks red.

The unit part needs no registry. The deviation part runs `suites/test_content_kinds.py` through a
proxy per mode and compares every check with a clean run (tests/deviations.py).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from deviations import (
    Mode,
    assert_clean,
    assert_mode,
    clean_baseline,
    short,
)
from faultproxy import Request, Response, Rule
from suiterun import SuiteRun

from regconform.content import kinds
from regconform.content.images import referrers_tag
from regconform.registry import media
from regconform.registry.digests import digest_of, sha512_digest, verify_digest
from regconform.registry.errors import ClientError, DigestMismatch

KINDS_SUITE = "test_content_kinds.py"
MANIFESTS = r"^/v2/.+/manifests/"
WRONG_DIGEST = "sha256:" + "e" * 64

# -- without a registry ---------------------------------------------------------------------------------


def test_kinds_are_deterministic_and_each_is_what_its_name_says():
    """Two builds give the same bytes; each kind has the property it is named for."""
    again = {k.name: k for k in (make() for make in kinds.KIND_MAKERS)}
    assert [(k.name, [c.data for c in (*k.blobs, *k.manifests)]) for k in kinds.KINDS.values()] == \
           [(k.name, [c.data for c in (*k.blobs, *k.manifests)]) for k in again.values()]
    k = kinds.KINDS
    sha512 = k["sha512-image"]
    assert {c.algorithm for c in (*sha512.blobs, *sha512.manifests)} == {"sha512"}
    assert all(d["digest"].startswith("sha512:") for d in [json.loads(sha512.top.data)["config"],
                                                            *json.loads(sha512.top.data)["layers"]])
    nested = json.loads(k["nested-index"].top.data)
    assert nested["manifests"][0]["mediaType"] == media.OCI_INDEX
    sparse = k["sparse-index"]
    assert sparse.absent and sparse.absent[0].digest in sparse.top.data.decode()
    assert json.loads(k["artifact-no-layers"].top.data)["layers"] == []
    assert json.loads(k["artifact-no-layers"].top.data)["artifactType"] == kinds.ARTIFACT_TYPE
    assert json.loads(k["artifact-empty-config"].top.data)["config"]["mediaType"] == media.OCI_EMPTY
    for desc in [json.loads(k["data-field"].top.data)["config"], *json.loads(k["data-field"].top.data)["layers"]]:
        blob = next(b for b in k["data-field"].blobs if b.digest == desc["digest"])
        assert base64.b64decode(desc["data"]) == blob.data
    foreign = json.loads(k["non-distributable"].top.data)["layers"][1]
    assert foreign["mediaType"] == kinds.NON_DISTRIBUTABLE_LAYER and foreign["urls"]
    assert foreign["digest"] not in {b.digest for b in k["non-distributable"].blobs}
    assert any(b.size == 0 for b in k["empty-blob"].blobs)
    assert json.loads(k["no-layers"].top.data)["layers"] == []
    custom = k["custom-fields"].top.data
    assert json.loads(custom)["zCustomField"] and custom != json.dumps(json.loads(custom), sort_keys=True).encode()
    assert 4 * 1024 * 1024 - 4096 < k["near-size-limit"].top.size <= 4 * 1024 * 1024
    with_subject = json.loads(k["index-with-subject"].top.data)
    assert with_subject["mediaType"] == media.OCI_INDEX and with_subject["subject"]["digest"] == k["index-with-subject"].manifests[0].digest
    assert len(kinds.KINDS) == 12 and all(kd.workflows == kinds.WORKFLOWS for kd in kinds.KINDS.values())


def test_referrers_tag_follows_the_spec_table():
    """distribution-spec §Referrers Tag Schema: its three examples (algorithm ≤ 32, encoded ≤ 64, invalid → '-')."""
    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
    assert referrers_tag("sha512:" + "a" * 128) == "sha512-" + "a" * 64
    odd = ("test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:"
           "alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation")
    assert referrers_tag(odd) == "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot"


def test_sha512_digests_are_verified_and_unknown_algorithms_refused():
    data = b"regconform"
    verify_digest(data, sha512_digest(data), "blob")
    with pytest.raises(DigestMismatch, match="hashes to sha512:"):
        verify_digest(b"other", sha512_digest(data), "blob")
    with pytest.raises(ClientError, match="'md5' is not verified"):
        verify_digest(data, "md5:" + "0" * 32, "blob")
    assert digest_of(data).startswith("sha256:")


# -- deviation modes -----------------------------------------------------------------------------------


def of(base: str, *variants: str) -> Callable[[str, dict[str, str]], bool]:
    """Red: the check `base` for the named kinds, or (none named) for every kind the registry accepts
    (its push check passes in the clean run)."""
    def red(node: str, clean: dict[str, str]) -> bool:
        name, _, variant = node.partition("[")
        kind = variant.rstrip("]")
        return name == base and (kind in variants if variants else clean.get(f"test_kind_push[{kind}]") == "passed")
    return red


def custom_fields_reencoded() -> Mode:
    """The registry re-encodes manifests it serves (canonical JSON): custom fields' bytes change."""
    mode = Mode("manifest re-encoded", [], of("test_kind_pull", "custom-fields"), [r"bytes served for the custom-fields manifest"])

    def reencode(resp: Response) -> Response:
        if resp.status != 200 or b"zCustomField" not in resp.body:
            return resp
        mode.changed.append("custom")
        return replace(resp, body=json.dumps(json.loads(resp.body), sort_keys=True).encode())

    mode.rules = [Rule(MANIFESTS, method="GET", transform=reencode)]
    return mode


def empty_blob_digest_wrong() -> Mode:
    """The closing PUT of the zero-byte blob answers another Docker-Content-Digest."""
    empty = digest_of(b"")
    return Mode("zero-byte blob PUT answers another digest",
                [Rule(rf"/blobs/uploads/.*digest={re.escape(empty)}", method="PUT",
                      set_headers={"Docker-Content-Digest": WRONG_DIGEST})],
                of("test_kind_push", "empty-blob"), [r"blob push of the zero-byte layer", re.escape(WRONG_DIGEST)])


def sha512_manifest_accepted() -> Mode:
    """A registry that stores sha512 manifests where the profile records 2.8's refusal: every check of the kind is red."""
    def created(req: Request) -> Response:
        return Response(201, {"Docker-Content-Digest": req.path.rsplit("/", 1)[-1], "Location": req.path}, b"", req)

    return Mode("sha512 manifest accepted", [Rule(MANIFESTS + "sha512:", method="PUT", respond=created)],
                lambda node, _: node.endswith("[sha512-image]"), [r"kind sha512-image", r"expected 400 DIGEST_INVALID", r"got 201"])


def tags_list_empty() -> Mode:
    """tags/list of the kinds' repositories answers no tags."""
    def empty(resp: Response) -> Response:
        return replace(resp, body=b'{"name":"x","tags":[]}') if resp.status == 200 else resp

    return Mode("tags list empty", [Rule(r"/tags/list", method="GET", transform=empty)], of("test_kind_listed"),
                [r"tags listed for the .* repository", r"got \[\]"])


def head_length_dropped() -> Mode:
    return Mode("HEAD of manifests without Content-Length", [Rule(MANIFESTS, method="HEAD", drop_headers=("Content-Length",))],
                of("test_kind_pull"), [r"Content-Length of HEAD"])


def delete_ignored() -> Mode:
    """DELETE of a manifest answers 202 but deletes nothing."""
    def accepted(req: Request) -> Response:
        return Response(202, {"Content-Length": "0"}, b"", req)

    return Mode("manifest DELETE ignored", [Rule(MANIFESTS + "sha256:", method="DELETE", respond=accepted)],
                of("test_kind_delete"), [r"GET of the deleted .* manifest by digest", r"expected 404", r"got 200"])


def referrers_tag_served_altered() -> Mode:
    """The index under a referrers tag is served with other bytes."""
    mode = Mode("referrers tag served altered", [], of("test_kind_referrers_tag_schema"), [r"bytes served under sha256-"])

    def alter(resp: Response) -> Response:
        if resp.status != 200 or not resp.body:
            return resp
        mode.changed.append("tag")
        return replace(resp, body=resp.body + b" ")

    mode.rules = [Rule(MANIFESTS + r"sha256-[0-9a-f]{64}$", method="GET", transform=alter)]
    return mode


def sha512_referrers_tag_altered() -> Mode:
    """The index under the truncated referrers tag of a sha512 subject is served with other bytes."""
    mode = Mode("sha512 referrers tag served altered", [], of("test_referrers_tag_schema_truncates_a_sha512_subject", ""),
                [r"bytes served under sha512-[0-9a-f]{64}"])

    def alter(resp: Response) -> Response:
        if resp.status != 200 or not resp.body:
            return resp
        mode.changed.append("tag")
        return replace(resp, body=resp.body + b" ")

    mode.rules = [Rule(MANIFESTS + r"sha512-[0-9a-f]{64}$", method="GET", transform=alter)]
    return mode


def referrers_api_appears() -> Mode:
    """A referrers route answers 200 with an empty index where the profile records no referrers API (404)."""
    def index(req: Request) -> Response:
        return Response(200, {"Content-Type": media.OCI_INDEX}, b'{"schemaVersion":2,"mediaType":"%s","manifests":[]}'
                        % media.OCI_INDEX.encode(), req)

    return Mode("referrers API answers an empty index", [Rule(r"/referrers/", method="GET", respond=index)],
                of("test_kind_referrers"), [r"GET referrers of the .* manifest", r"expected 404", r"got 200"])


def accept_ignored() -> Mode:
    """Every manifest GET is answered as if it accepted every type: the kinds' Accept matrix changes."""
    def accept_all(req: Request) -> Request:
        headers = req.headers.copy()
        headers["Accept"] = ", ".join(media.ALL_MANIFEST_TYPES)
        return replace(req, headers=headers)

    return Mode("Accept ignored", [Rule(MANIFESTS, method="GET", rewrite=accept_all)], of("test_kind_pull"),
                [r"Accept negotiation for the .* manifest deviates", r"expected 404 MANIFEST_UNKNOWN, got 200 stored"])


MODES: dict[str, Callable[[], Mode]] = {
    "custom-fields-reencoded": custom_fields_reencoded,
    "empty-blob-digest-wrong": empty_blob_digest_wrong,
    "sha512-manifest-accepted": sha512_manifest_accepted,
    "tags-list-empty": tags_list_empty,
    "head-length-dropped": head_length_dropped,
    "delete-ignored": delete_ignored,
    "referrers-tag-served-altered": referrers_tag_served_altered,
    "sha512-referrers-tag-altered": sha512_referrers_tag_altered,
    "referrers-api-appears": referrers_api_appears,
    "accept-ignored": accept_ignored,
}


@pytest.fixture(scope="module")
def kinds_baseline(upstream, tmp_path_factory) -> Iterator[SuiteRun]:
    yield clean_baseline(upstream.url, KINDS_SUITE, tmp_path_factory.mktemp("kinds-clean"))


@pytest.mark.selftest_slow
def test_clean_proxy_keeps_every_kind_as_recorded(kinds_baseline):
    """Through a clean proxy: every kind check passes, or is unsupported as distribution-2.8 records (sha512
    manifests, sparse index, foreign layers, the referrers API); each record names the kind's workflows."""
    assert_clean(kinds_baseline)
    outcomes = {short(i): o for i, o in kinds_baseline.outcomes().items()}
    assert outcomes.pop("test_referrers_tag_schema_truncates_a_sha512_subject") == "passed"
    assert len(outcomes) == 6 * len(kinds.KINDS), sorted(outcomes)
    refused = {"sha512-image", "sparse-index", "non-distributable"}
    for node, outcome in outcomes.items():
        kind = node.partition("[")[2].rstrip("]")
        unsupported = kind in refused or node.startswith("test_kind_referrers[")
        assert outcome == ("unsupported" if unsupported else "passed"), (node, outcome, kinds_baseline.reason(node))
        rec = kinds_baseline.record(f"::{node}")
        assert rec["observations"]["kind"]["workflows"] == list(kinds.WORKFLOWS), node


@pytest.mark.selftest_slow
@pytest.mark.parametrize("mode_name", list(MODES))
def test_kind_deviation_turns_exactly_its_checks_red(mode_name, kinds_baseline, fault_proxy, run_suites):
    """Each deviation: exactly its kind checks fail, naming it; every other check as in the clean run."""
    mode = MODES[mode_name]()
    assert mode.red_checks(kinds_baseline), f"{mode.name}: selects no check"
    proxy = fault_proxy(mode.rules)
    run = run_suites(proxy.url, "-k", KINDS_SUITE, "--ignore=suites/mirror")
    assert_mode(run, mode, kinds_baseline, proxy)
    if mode.rules and mode.rules[0].transform is not None and mode_name != "tags-list-empty":
        assert mode.changed, f"{mode.name}: the rules fired but never changed an answer"


def test_spec_table_has_a_row_per_kind_and_a_column_per_workflow():
    """scripts/spec_table.py: the content matrix section (kind × workflow, outcomes, the kind's profile note)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "spec_table.py"
    spec = importlib.util.spec_from_file_location("spec_table", path)
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)  # type: ignore[union-attr]

    def rec(base: str, kind: str, workflow: str, outcome: str) -> dict:
        return {"id": f"suites/test_content_kinds.py::{base}[{kind}]", "workflow": workflow, "outcome": outcome,
                "expectations": {f"kinds.{kind}": {"supported": outcome == "passed", "note": f"note of {kind}"}}}

    doc = {"checks": [rec("test_kind_delete", "no-layers", "content-management", "passed"),
                      rec("test_kind_push", "no-layers", "push", "passed"),
                      rec("test_kind_referrers_tag_schema", "no-layers", "referrers", "passed"),
                      rec("test_kind_referrers", "no-layers", "referrers", "unsupported"),
                      rec("test_kind_push", "sha512-image", "push", "failed")]}
    text = table.kinds_table(doc)
    assert "| kind | push | referrers | referrers (tag schema) | content-management | profile note on the kind |" in text
    assert "| no-layers | as recorded | unsupported | as recorded | as recorded | note of no-layers |" in text
    assert "| sha512-image | **DEVIATION** | - | - | - | note of sha512-image |" in text
    assert table.kinds_table({"checks": []}) == ""
