"""Bad input and broken environments: `regconform run` prints exactly one line on stderr
(`regconform: error: ...`), exits 2, and leaves nothing behind (no report folder, no container).

Every failing endpoint is local: a closed port, a socket that never answers, a `.invalid` name
(resolution fails locally), a tiny http.server, a TLS server with a certificate nobody trusts,
and a real htpasswd registry for refused credentials.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from authregistries import (
    AuthRegistry,
    clean_env,
    htpasswd_registry,
    token_registry,
    write_tls,
)

from regconform.targets.base import free_port
from regconform.targets.container import PID_LABEL


@dataclass
class Failure:
    code: int
    stderr: str
    stdout: str
    pid: int


def regconform_run(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = "") -> Failure:
    proc = subprocess.Popen([sys.executable, "-m", "regconform.cli", "run", *args], cwd=cwd, env=env or clean_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(stdin, timeout=120)
    return Failure(proc.returncode, err, out, proc.pid)


def assert_one_line_error(result: Failure, *fragments: str, cwd: Path) -> None:
    assert result.code == 2, (result.code, result.stderr[-2000:], result.stdout[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # one line: no traceback, no pytest noise
    assert lines[0].startswith("regconform: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.stdout
    assert not (cwd / "reports").exists()  # nothing written
    assert not _containers_of(result.pid)  # nothing started and left


def _containers_of(pid: int) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={PID_LABEL}={pid}"], capture_output=True, text=True)
    return out.stdout.split()


@pytest.fixture
def silent_socket() -> Iterator[int]:
    """A port that accepts connections (backlog) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    """A plain web server (not a registry): GET /v2/ answers 404."""
    (tmp_path / "www").mkdir()
    handler = lambda *a, **kw: _Quiet(*a, directory=str(tmp_path / "www"), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def untrusted_tls_server(tmp_path: Path) -> Iterator[str]:
    """HTTPS with a certificate from a CA generated here and given to nobody."""
    files = write_tls(tmp_path / "tls")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(files.cert), str(files.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda *a: None  # the failed handshakes are the point: keep them quiet
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with htpasswd_registry(tmp_path_factory.mktemp("htpasswd")) as reg:
        yield reg


def test_connection_refused(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert_one_line_error(regconform_run("--registry-url", url, cwd=tmp_path), f"cannot connect to {url}",
                          "connection refused", cwd=tmp_path)


def test_unreachable_url_that_never_answers(tmp_path: Path, silent_socket: int) -> None:
    url = f"http://127.0.0.1:{silent_socket}"
    result = regconform_run("--registry-url", url, "--timeout", "1", cwd=tmp_path)
    assert_one_line_error(result, f"{url} did not answer within 1 s", cwd=tmp_path)


def test_dns_failure(tmp_path: Path) -> None:
    url = "http://registry.regconform.invalid:5000"
    assert_one_line_error(regconform_run("--registry-url", url, cwd=tmp_path), f"cannot resolve the host of {url}",
                          cwd=tmp_path)


def test_tls_failure(tmp_path: Path, untrusted_tls_server: str) -> None:
    result = regconform_run("--registry-url", untrusted_tls_server, cwd=tmp_path)
    assert_one_line_error(result, f"TLS failure talking to {untrusted_tls_server}", "CERTIFICATE_VERIFY_FAILED",
                          "give --ca-cert FILE, or --insecure", cwd=tmp_path)


def test_unreadable_ca_cert(tmp_path: Path, untrusted_tls_server: str) -> None:
    result = regconform_run("--registry-url", untrusted_tls_server, "--ca-cert", str(tmp_path / "missing.pem"), cwd=tmp_path)
    assert_one_line_error(result, "--ca-cert", "is not a readable CA bundle", cwd=tmp_path)


def test_wrong_credentials(tmp_path: Path, htpasswd: AuthRegistry) -> None:
    wrong = "wrong-" + htpasswd.password
    result = regconform_run("--registry-url", htpasswd.url, "--username", htpasswd.username, "--password-stdin",
                            cwd=tmp_path, stdin=wrong + "\n")
    assert_one_line_error(result, f"{htpasswd.url} rejected the credentials of user {htpasswd.username!r} (401)",
                          cwd=tmp_path)
    assert wrong not in result.stderr + result.stdout


def test_credentials_missing_for_a_registry_with_auth(tmp_path: Path, htpasswd: AuthRegistry) -> None:
    result = regconform_run("--registry-url", htpasswd.url, cwd=tmp_path)
    assert_one_line_error(result, f"{htpasswd.url} requires authentication (401, Basic challenge)",
                          "--password-stdin or REGCONFORM_PASSWORD", cwd=tmp_path)


def test_password_in_the_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    result = regconform_run("--registry-url", "http://someone:s3cret-value@127.0.0.1:5000", cwd=tmp_path)
    assert_one_line_error(result, "--registry-url must not carry credentials", cwd=tmp_path)
    assert "s3cret-value" not in result.stderr


def test_url_that_is_not_a_registry(tmp_path: Path, web_server: str) -> None:
    result = regconform_run("--registry-url", web_server, cwd=tmp_path)
    assert_one_line_error(result, f"{web_server} does not look like a registry: GET /v2/ answered 404", cwd=tmp_path)


def test_unknown_profile(tmp_path: Path) -> None:
    result = regconform_run("--profile", "no-such-profile", cwd=tmp_path)
    assert_one_line_error(result, "unknown profile 'no-such-profile'", "distribution-2.8", cwd=tmp_path)


def test_unknown_option(tmp_path: Path) -> None:
    result = regconform_run("--registry-urll", "http://127.0.0.1:5000", cwd=tmp_path)
    assert_one_line_error(result, "unrecognized arguments: --registry-urll", "see regconform run --help", cwd=tmp_path)


def test_require_gc_without_gc_command(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # never contacted: the option check comes first
    result = regconform_run("--registry-url", url, "--require-gc", "--restart-command", "true", cwd=tmp_path)
    assert_one_line_error(result, f"--require-gc: no --gc-command for the registry at {url}", cwd=tmp_path)


def test_require_gc_from_the_environment(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = clean_env(REGCONFORM_REGISTRY_URL=url, REGCONFORM_REQUIRE_GC="1")
    result = regconform_run(cwd=tmp_path, env=env)
    assert_one_line_error(result, "--require-gc: no --gc-command and no --restart-command", cwd=tmp_path)


def test_docker_not_available_for_the_embedded_target(tmp_path: Path) -> None:
    result = regconform_run(cwd=tmp_path, env=clean_env(DOCKER_HOST="unix:///nonexistent"))
    assert_one_line_error(result, "no Docker engine reachable at unix:///nonexistent", "./setup.sh",
                          "--backend process", cwd=tmp_path)


def test_invalid_namespace(tmp_path: Path) -> None:
    result = regconform_run("--namespace", "My Team", cwd=tmp_path)
    assert_one_line_error(result, "--namespace 'My Team' is not a valid repository prefix", cwd=tmp_path)


def test_invalid_keyword_expression(tmp_path: Path) -> None:
    result = regconform_run("-k", "pull and (", cwd=tmp_path)
    assert_one_line_error(result, "-k 'pull and (' is not a valid pytest expression", cwd=tmp_path)


def test_token_service_unreachable(tmp_path: Path) -> None:
    """The registry's challenge names a realm nobody answers on: the message names the token service."""
    with token_registry(tmp_path / "reg") as reg:
        assert reg.issuer is not None
        realm = reg.issuer.realm
        reg.issuer.stop()
        result = regconform_run("--registry-url", reg.url, "--username", reg.username, cwd=tmp_path,
                                env=clean_env(REGCONFORM_PASSWORD=reg.password))
    origin = realm.rsplit("/", 1)[0]
    assert_one_line_error(result, f"cannot connect to the token service {origin} named by {reg.url}",
                          "connection refused", cwd=tmp_path)
    assert reg.password not in result.stderr
