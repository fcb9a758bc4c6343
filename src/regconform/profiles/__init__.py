"""The one place where profiles (expected registry behaviour, as data) are loaded."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regconform.resources import PROFILES

KNOWN_FIELDS = {"supported", "status", "error", "headers", "note"}


class ProfileError(Exception):
    """A profile is unknown, malformed, or lacks an expectation a check needs."""


@dataclass(frozen=True)
class Expectation:
    """What a profile expects of one behaviour. `values` holds check-specific facts."""

    key: str
    profile: str
    supported: bool = True
    status: tuple[int, ...] = ()
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise ProfileError(f"profile {self.profile}: expectation {self.key!r} has no field {name!r}") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def describe(self) -> str:
        if not self.supported and not self.status:
            return "unsupported"
        parts = ["/".join(map(str, self.status)) if self.status else "any status"]
        if self.error:
            parts.append(self.error)
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"supported": self.supported}
        if self.status:
            doc["status"] = list(self.status)
        if self.error:
            doc["error"] = self.error
        if self.headers:
            doc["headers"] = dict(self.headers)
        if self.values:
            doc["values"] = dict(sorted(self.values.items()))
        if self.note:
            doc["note"] = self.note
        return doc


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    checks: dict[str, dict[str, Any]]
    source: str

    def expect(self, key: str) -> Expectation:
        try:
            raw = self.checks[key]
        except KeyError:
            raise ProfileError(f"profile {self.name} has no expectation for {key!r}") from None
        status = raw.get("status", ())
        return Expectation(
            key=key,
            profile=self.name,
            supported=bool(raw.get("supported", True)),
            status=tuple(status) if isinstance(status, list) else ((status,) if status else ()),
            error=raw.get("error"),
            headers={k.lower(): v for k, v in raw.get("headers", {}).items()},
            note=raw.get("note", ""),
            values={k: v for k, v in raw.items() if k not in KNOWN_FIELDS},
        )


PROFILE_ROOT = PROFILES


def known_profiles() -> list[str]:
    return sorted(p.name for p in PROFILE_ROOT.iterdir() if (p / "profile.toml").is_file())


def _parse(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile file {path} is not valid TOML: {exc}") from None


def _locate(name_or_path: str) -> Path:
    """A built-in name, or a path to a profile directory (profile.toml plus one file per workflow)."""
    path = Path(name_or_path)
    if (path / "profile.toml").is_file():
        return path
    if "/" not in name_or_path and (PROFILE_ROOT / name_or_path / "profile.toml").is_file():
        return PROFILE_ROOT / name_or_path
    raise ProfileError(f"unknown profile {name_or_path!r}; known profiles: {', '.join(known_profiles())} "
                       "(or a directory holding profile.toml)")


def load_profile(name_or_path: str, _chain: tuple[Path, ...] = ()) -> Profile:
    """Load a profile: `profile.toml` (name, description, extends) and one TOML file per workflow.

    `extends` names a parent profile whose expectations apply unless this one overrides them, key by key.
    A key defined twice in one profile is an error, so no file silently shadows another.
    """
    folder = _locate(name_or_path)
    here = folder.resolve()
    if here in _chain:
        cycle = " → ".join(p.name for p in (*_chain[_chain.index(here):], here))
        raise ProfileError(f"profile {folder.name}: `extends` makes a cycle ({cycle}); a profile cannot extend itself")
    head = _parse(folder / "profile.toml")
    checks: dict[str, dict[str, Any]] = {}
    if parent := head.get("extends"):
        if not isinstance(parent, str):
            raise ProfileError(f"profile {folder.name}: `extends` must name one profile, got {parent!r}")
        checks.update(load_profile(parent, (*_chain, here)).checks)
    own: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        for key, raw in _parse(path).get("checks", {}).items():
            if not isinstance(raw, dict):
                raise ProfileError(f"{path}: checks.{key} must be a table")
            if key in own:
                raise ProfileError(f"profile {folder.name}: {key!r} is defined in both {own[key].name} and {path.name}")
            own[key] = path
            checks[key] = raw
    return Profile(head.get("name", folder.name), head.get("description", ""), checks, str(folder))
