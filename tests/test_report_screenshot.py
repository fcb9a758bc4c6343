"""report.html looked at as a person would: headless Chromium (Debian's `chromium`, installed by
setup.sh) renders a real run's report offline, its script fills the matrix counter and applies a
filter from the URL, and a screenshot of the page is an actual picture, not a blank page.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from reportruns import SUBSET, output, regconform, write_strict_profile

WINDOW = (1400, 1000)


def chromium(page: str, *args: str, profile_dir: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("no chromium on PATH: ./setup.sh installs Debian's chromium")
    argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile_dir}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", *args, page]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run with one deviating check (profile expects 201 from GET /v2/) and the rest passing."""
    base = tmp_path_factory.mktemp("screenshot")
    proc = regconform("run", "--report-dir", str(base / "reports"), "--profile",
                      str(write_strict_profile(base / "strict")), "-k", SUBSET)
    assert proc.returncode == 1, output(proc)
    return base / "reports" / "report.html"


def rendered(report: Path, tmp_path: Path, fragment: str = "") -> str:
    proc = chromium(report.as_uri() + fragment, "--dump-dom", profile_dir=tmp_path / "chromium")
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def test_the_browser_renders_the_matrix_after_the_script_ran(report: Path, tmp_path: Path) -> None:
    dom = rendered(report, tmp_path)
    assert 'data-ready="1"' in dom  # set by the page's script once the filters are applied
    rows = re.findall(r'<tr class="check( hidden)?" data-workflow="([^"]+)" data-outcome="([^"]+)"', dom)
    total = len(rows)
    assert total >= 5 and not any(hidden for hidden, _, _ in rows)
    assert f"showing {total} of {total} checks" in dom  # written by the script, not by the template
    assert rows[0][1:] == ("base", "failed")
    assert "last exchange before the failure: GET http://127.0.0.1:" in dom


def test_a_filter_in_the_url_hides_the_other_rows(report: Path, tmp_path: Path) -> None:
    dom = rendered(report, tmp_path, "#outcome=failed")
    rows = re.findall(r'<tr class="check( hidden)?" data-workflow="([^"]+)" data-outcome="([^"]+)"', dom)
    visible = [(wf, outcome) for hidden, wf, outcome in rows if not hidden]
    assert visible == [("base", "failed")]
    assert f"showing 1 of {len(rows)} checks" in dom
    dom = rendered(report, tmp_path, "#workflow=content-discovery")
    visible = [wf for hidden, wf, _ in re.findall(r'<tr class="check( hidden)?" data-workflow="([^"]+)" data-outcome="([^"]+)"', dom)
               if not hidden]
    assert visible and set(visible) == {"content-discovery"}


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values of the decoded image data."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_screenshot_shows_a_page(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = chromium(report.as_uri(), f"--screenshot={shot}", profile_dir=tmp_path / "chromium")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == WINDOW
    assert colours > 100 and shot.stat().st_size > 30_000  # text, badges and tables; a blank page is one colour
