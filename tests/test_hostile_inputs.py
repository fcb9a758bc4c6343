"""Issue 11, bad local input: one line on stderr, exit 2, no traceback; and the pure limits (no registry).

The limits themselves are proven end to end against hostile registries in test_hostile_registries.py;
here: the command line, the profile loader, the scrubber, the escapes and the JSON depth scan.
"""

from __future__ import annotations

import base64
import html
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from suiterun import REPO, clean_env

from regconform.profiles import ProfileError, load_profile
from regconform.registry import limits, scrub
from regconform.registry.exchange import Exchange
from regconform.reports.writers import markdown_code, markdown_text


def regconform_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "regconform.cli", "run", *args], cwd=REPO, env=clean_env(),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("regconform: error:") and pattern in lines[0], lines[0]


def write_profile(folder: Path, extends: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "profile.toml").write_text(f'name = "{folder.name}"\nextends = "{extends}"\n')
    return folder


@pytest.mark.parametrize(("args", "pattern"), [
    (["--timeout", "-1"], "finite number above zero"),
    (["--timeout", "nan"], "finite number above zero"),
    (["-n", "abc"], "not a number of workers"),
    (["--namespace", "a" * 200], "at most 191"),
])
def test_bad_option_values_are_one_line_errors(args: list[str], pattern: str) -> None:
    assert_one_line_error(regconform_run(*args), pattern)


def test_report_dir_that_is_a_file_or_under_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert_one_line_error(regconform_run("--report-dir", str(a_file)), "is a file, not a directory")
    assert_one_line_error(regconform_run("--report-dir", str(a_file / "sub")), "cannot be written there")


def test_immutable_report_dir_is_a_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "immutable"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a file system with attributes)")
    try:
        assert_one_line_error(regconform_run("--report-dir", str(folder)), "Operation not permitted")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_profile_extending_itself_or_a_cycle_is_a_profile_error(tmp_path: Path) -> None:
    own = write_profile(tmp_path / "own", str(tmp_path / "own"))
    with pytest.raises(ProfileError, match=r"`extends` makes a cycle \(own → own\)"):
        load_profile(str(own))
    write_profile(tmp_path / "a", str(tmp_path / "b"))
    write_profile(tmp_path / "b", str(tmp_path / "a"))
    with pytest.raises(ProfileError, match=r"cycle \(a → b → a\)"):
        load_profile(str(tmp_path / "a"))
    assert_one_line_error(regconform_run("--profile", str(tmp_path / "a")), "makes a cycle")


# -- the scrubber and the escapes ---------------------------------------------------------------------


def test_every_spelling_of_a_known_secret_is_scrubbed_from_an_exchange() -> None:
    password = 'p"w/ä&<x>-' + "9" * 8
    basic = base64.b64encode(f"user:{password}".encode()).decode()
    scrub.remember_credentials("user", password)
    try:
        spellings = [password, basic, quote(password, safe=""), json.dumps(password)[1:-1], html.escape(password)]
        ex = Exchange("GET", f"http://r/v2/?q={quote(password, safe='')}", 200, {"authorization": f"Basic {basic}"},
                      {"x-echo": f"Basic {basic}"}, 0, 10, " ".join(spellings), 1.0, request_excerpt=password)
        text = json.dumps(ex.as_dict())
        for spelling in spellings:
            assert spelling not in text and json.dumps(spelling)[1:-1] not in text
        assert text.count(scrub.REDACTED) >= len(spellings) + 2
    finally:
        scrub.forget_all()


def test_terminal_and_markdown_escapes_leave_nothing_active() -> None:
    hostile = "\x1b]0;title\x07\x1b[2J<script>x</script> `a` | b\n[c](javascript:d) \u202e"
    shown = scrub.terminal_safe(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and "\\x1b]0;title" in shown
    md = markdown_text(hostile)
    assert "<script>" not in md and "\n" not in md and "](" not in md and "`a`" not in md
    assert "\\|" in md and "&lt;script&gt;" in md
    code = markdown_code("a``b")
    assert code.startswith("```") and code.endswith("```")


def test_json_depth_scan_ignores_brackets_in_strings_and_refuses_deep_documents() -> None:
    assert not limits.json_depth_exceeds(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
    assert limits.json_depth_exceeds(b"[" * 65 + b"]" * 65)
    with pytest.raises(limits.JSONTooDeep):
        limits.loads(b"[" * 100_000)
    assert limits.loads(b"[" * 64 + b"]" * 64)
    cut = limits.bounded({"x": [[[[1]]]], "l": list(range(10))}, depth=3, items=4)
    assert cut == {"x": [["<nested deeper than 64 levels>"]], "l": [0, 1, 2, 3, "<… 6 more, 10 in all>"]}
