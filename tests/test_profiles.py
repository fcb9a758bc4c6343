"""Profiles are complete and consistent: no check can run into a missing expectation."""

import re
from pathlib import Path

import pytest

from regconform.profiles import ProfileError, known_profiles, load_profile

SUITES = Path(__file__).resolve().parents[1] / "suites"
REFERENCE = "distribution-2.8"


def literal_keys_used_by_suites() -> set[str]:
    keys = set()
    for path in SUITES.rglob("*.py"):
        keys |= set(re.findall(r'expect\(\s*"([a-z0-9.\-]+)"', path.read_text()))
    return keys


def test_every_literal_expectation_key_in_the_suites_exists_in_the_reference_profile():
    missing = literal_keys_used_by_suites() - set(load_profile(REFERENCE).checks)
    assert not missing, f"suites ask {REFERENCE} for keys it does not define: {sorted(missing)}"


@pytest.mark.parametrize("name", [p for p in known_profiles() if p != REFERENCE])
def test_profile_defines_every_behaviour_the_reference_defines(name):
    missing = set(load_profile(REFERENCE).checks) - set(load_profile(name).checks)
    # Mirror behaviour is only recorded where it was measured or documented.
    missing = {k for k in missing if not k.startswith("mirror.")}
    assert not missing, f"profile {name} lacks expectations: {sorted(missing)}"


def test_unknown_profile_is_a_one_line_error_naming_the_known_ones():
    with pytest.raises(ProfileError) as err:
        load_profile("no-such-registry")
    message = str(err.value)
    assert "\n" not in message and "no-such-registry" in message
    for name in known_profiles():
        assert name in message


def test_a_key_defined_twice_in_one_profile_is_refused(tmp_path):
    (tmp_path / "profile.toml").write_text('name = "twice"\n')
    for part in ("a", "b"):
        (tmp_path / f"{part}.toml").write_text('[checks."base.api-version"]\nstatus = 200\n')
    with pytest.raises(ProfileError, match="defined in both"):
        load_profile(str(tmp_path))
