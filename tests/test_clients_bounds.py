"""Client runs are bounded: a client that writes without end or never returns is stopped, and says so.

`run_bounded` is what every CLI client runs under (a hostile registry's endless body must fill neither
the disk nor the run's time); each case is a real process writing or waiting.
"""

from __future__ import annotations

import os

import pytest

from regconform.clients.base import Client, Endpoint, Workspace, run_bounded
from regconform.clients.catalog import CLIENTS


def test_a_client_writing_without_end_is_stopped_at_the_cap(tmp_path):
    # ~20 MiB/s: the cap is polled, so the overshoot is what the writer manages between two looks
    # (`yes` at ~1 GB/s overshot by 120 MiB on a loaded CI machine).
    watch = tmp_path / "out"
    result = run_bounded(["sh", "-c", 'while :; do head -c 1048576 /dev/zero; sleep 0.05; done > "$1/endless"', "sh", str(watch)], env=dict(os.environ),
                         watch=watch, cap=2 * 1024 * 1024, timeout=120)
    assert not result.ok
    assert "stopped by the harness: wrote more than 2 MiB" in result.describe()
    assert (watch / "endless").stat().st_size < 64 * 1024 * 1024


def test_a_client_that_never_returns_is_stopped_at_the_deadline(tmp_path):
    result = run_bounded(["sleep", "600"], env=dict(os.environ), watch=tmp_path / "w", timeout=1)
    assert not result.ok
    assert "stopped by the harness after 1s" in result.describe()


def test_stdout_is_read_with_a_bound(tmp_path):
    result = run_bounded(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"], env=dict(os.environ), watch=tmp_path / "w")
    assert result.ok
    assert len(result.stdout) == 1 << 20


def test_credentials_go_to_a_private_auth_file_never_to_argv(tmp_path):
    ws = Workspace(Endpoint("http://127.0.0.1:5000", "user", "s3cret-pw"))
    try:
        assert oct(ws.root.stat().st_mode & 0o777) == "0o700"
        assert oct(ws.auth_file.stat().st_mode & 0o777) == "0o600"
        assert "s3cret-pw" not in repr(ws.endpoint)
    finally:
        ws.close()
    assert not ws.root.exists()


def test_every_client_is_installed_where_setup_ran_as_root():
    """CI runs setup.sh as root, which installs every client: there none may be missing (elsewhere they skip)."""
    if os.geteuid() != 0:
        pytest.skip("not root: setup.sh installs the clients only as root")
    missing = {name: why for name, cls in CLIENTS.items() if (why := cls.missing())}
    assert missing == {}, missing
    assert all(issubclass(cls, Client) for cls in CLIENTS.values())


@pytest.mark.selftest_slow
@pytest.mark.parametrize("name", ["docker", "podman", "ctr", "skopeo"])
def test_what_a_client_stores_counts_against_its_cap(name, upstream, tmp_path):
    """A pull larger than the cap is stopped, also where the client stores outside its scratch dir
    (dockerd's data-root, containerd's root, podman's storage)."""
    from regconform.clients.base import ClientFailed
    from regconform.content.images import make_image, push_image
    from regconform.registry.client import RegistryClient

    if reason := CLIENTS[name].missing():
        pytest.skip(reason)
    big = make_image("big", "oci", [f"big-{name}"], tags=("big",), layer_size=3 * 1024 * 1024)
    with RegistryClient(upstream.url) as harness:
        push_image(harness, f"bounds/{name}", big)
    ws = Workspace(Endpoint(upstream.url))
    client = CLIENTS[name](ws)
    client.cap = 1024 * 1024
    try:
        with pytest.raises(ClientFailed, match="stopped by the harness: wrote more than 1 MiB"):
            client.pull(f"bounds/{name}", "big")
    finally:
        client.close()
        ws.close()


def test_without_root_the_daemon_clients_skip_with_the_reason(monkeypatch):
    """A user who is not root cannot start a private dockerd or containerd: docker and ctr are 'missing', saying why."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for name in ("docker", "ctr"):
        reason = CLIENTS[name].missing()
        assert reason is not None and "needs root" in reason, (name, reason)
    assert CLIENTS["skopeo"].missing() is None or "not installed" in CLIENTS["skopeo"].missing()
