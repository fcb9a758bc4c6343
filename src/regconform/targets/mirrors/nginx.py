"""Real nginx (Debian's package) as a local process: the router of the embedded routed mirror.

Its configuration is rendered from fixtures/nginx/routed.conf.j2 into a temporary directory owned by
the harness process (pid file, logs and temp paths there too); it listens on 127.0.0.1 only. The
master process gets SIGTERM from the kernel if the harness dies (prctl PDEATHSIG), and is stopped
(then killed) on close.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

import httpx
import jinja2

from regconform.errors import SetupError
from regconform.resources import FIXTURES
from regconform.targets.base import free_port
from regconform.targets.ownership import owned_workdir
from regconform.targets.process import _die_with_parent, terminate_group

NGINX_WORKDIR_PREFIX = "regconform-nginx-"
TEMPLATE = FIXTURES / "nginx" / "routed.conf.j2"
STARTUP_TIMEOUT = 15.0


@dataclass(frozen=True)
class NginxRoute:
    """One upstream block: its name, the proxy behind it, and how the mirror's names select it."""

    name: str
    backend: str  # host:port of the pull-through cache
    prefix: str = ""  # "hub/": /v2/hub/<name>/... → /v2/<name>/... on the backend
    ns: str | None = None  # `?ns=<value>` selects this upstream for unprefixed names
    listen: int | None = None  # also alone on a port of its own (all names)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not found:
        raise SetupError("nginx not found: install Debian's nginx package (./setup.sh does)")
    return found


class Nginx:
    """nginx serving the routes on 127.0.0.1:<port>; `url` is the routed endpoint."""

    def __init__(self, routes: list[NginxRoute]) -> None:
        self.binary = nginx_binary()
        self.workdir = owned_workdir(NGINX_WORKDIR_PREFIX)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.routes = routes
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.config = os.path.join(self.workdir, "nginx.conf")
            env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
            text = env.from_string(TEMPLATE.read_text()).render(workdir=self.workdir, port=self.port, routes=routes)
            with open(self.config, "w") as fh:
                fh.write(text)
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        argv = [self.binary, "-e", os.path.join(self.workdir, "error.log"), "-p", self.workdir, "-c", self.config,
                "-g", "daemon off;"]
        test = subprocess.run([*argv, "-t"], capture_output=True, text=True)
        if test.returncode != 0:
            raise SetupError(f"nginx rejected its configuration: {test.stderr.strip()[-300:]}")
        self.log = open(os.path.join(self.workdir, "stderr.log"), "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, start_new_session=True,
                                     preexec_fn=_die_with_parent())
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"nginx exited {self.proc.returncode} at start: {self.error_log()[-300:]}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SetupError(f"nginx did not answer on {self.url} within {STARTUP_TIMEOUT:.0f} s")

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.workdir, "error.log"), errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        terminate_group(self.proc)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
