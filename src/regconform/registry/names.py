"""Where an API path points: the repository name and endpoint kind."""

from __future__ import annotations

import re

_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>blobs|manifests|tags|referrers)/")


def repository_of(url: str) -> tuple[str | None, str | None]:
    """The repository name and endpoint kind of an API path, or (None, None) for /v2/ and _catalog."""
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "://" in url else path
    m = _REPO_PATH.match(path.split("?", 1)[0])
    return (m["name"], m["kind"]) if m else (None, None)


# distribution's reference grammar: a repository name is at most 255 characters (NameTotalLengthMax).
REPOSITORY_NAME_MAX = 255
# What a run appends to --namespace: "/<worker>/<check slug, 40>-<counter>" and fixture names.
NAMESPACE_RESERVE = 64
NAMESPACE_MAX = REPOSITORY_NAME_MAX - NAMESPACE_RESERVE
