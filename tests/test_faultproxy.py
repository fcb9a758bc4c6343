"""The fault proxy itself: transparent when clean, and each kind of rule does what it says."""

import httpx
from faultproxy import Request, Response, Rule

from regconform.content.images import fixture_set, push_image
from regconform.registry.client import RegistryClient


def test_clean_proxy_is_transparent_for_a_push_and_pull(fault_proxy, upstream):
    """A push through the proxy lands in the registry; Location headers point back at the proxy."""
    proxy = fault_proxy()
    image = fixture_set("oci").alpha
    with RegistryClient(proxy.url) as client:
        push_image(client, "selftest/proxy-clean", image)
        resp = client.get_manifest("selftest/proxy-clean", image.tags[0])
        assert resp.status_code == 200
        assert resp.content == image.manifest
        assert resp.headers["docker-content-digest"] == image.digest
        started = client.start_upload("selftest/proxy-clean")
        assert started.headers["location"].startswith(proxy.url) or started.headers["location"].startswith("/")
        # chunked request bodies (streamed uploads) are decoded and forwarded
        blob = b"streamed through the proxy"
        import io

        from regconform.registry.digests import sha256_digest
        client.push_blob_stream("selftest/proxy-clean", io.BytesIO(blob), sha256_digest(blob))
    with RegistryClient(upstream.url) as direct:
        assert direct.get_manifest("selftest/proxy-clean", image.digest).status_code == 200
        assert direct.pull_blob("selftest/proxy-clean", sha256_digest(blob)) == blob
    assert proxy.hits == []


def test_rules_edit_answers_and_count_hits(fault_proxy):
    """status/drop/set/body, respond, rewrite and times each change exactly what they name."""
    respond = Rule(r"^/v2/canned$", respond=lambda req: Response(418, {"X-Canned": req.method}, b"tea"))
    rewrite = Rule(r"^/v2/elsewhere$", rewrite=lambda req: Request(req.method, "/v2/", req.headers, req.body))
    once = Rule(r"^/v2/$", method="GET", status=503, set_headers={"X-Fault": "yes"}, body=b"down", times=1)
    proxy = fault_proxy([respond, rewrite, once])
    first = httpx.get(proxy.url + "/v2/")
    assert (first.status_code, first.headers["x-fault"], first.content) == (503, "yes", b"down")
    assert httpx.get(proxy.url + "/v2/").status_code == 200  # times=1 used up
    canned = httpx.post(proxy.url + "/v2/canned", content=b"x")
    assert (canned.status_code, canned.headers["x-canned"], canned.content) == (418, "POST", b"tea")
    assert httpx.get(proxy.url + "/v2/elsewhere").status_code == 200
    assert [proxy.hit_count(r) for r in (respond, rewrite, once)] == [1, 1, 1]
    dropped = Rule(r"^/v2/$", drop_headers=("Docker-Distribution-Api-Version",))
    proxy.set_rules([dropped])
    assert "docker-distribution-api-version" not in httpx.get(proxy.url + "/v2/").headers
    assert proxy.hit_count(dropped) == 1


def test_broken_answer_is_passed_on_broken(fault_proxy):
    """A Response(broken=True) keeps its Content-Length and closes early: the client sees a broken body."""
    rule = Rule(r"^/v2/broken$", respond=lambda req: Response(200, {"Content-Length": "100"}, b"short", broken=True))
    proxy = fault_proxy([rule])
    try:
        httpx.get(proxy.url + "/v2/broken")
    except httpx.RemoteProtocolError:
        pass
    else:
        raise AssertionError("a body shorter than its Content-Length arrived as complete")
